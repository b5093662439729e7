"""Entry point of the `genesis` console command: one fire subcommand per job.

Each subcommand lives in the module of the job it runs; this file only registers them.
"""

import os
import sys
import warnings

import fire


def _commands() -> dict:
    # Imported here so that `genesis --help` does not pay for torch/monai imports twice.
    from monai_genesis.cli.gallery import show_corruptions
    from monai_genesis.cli.data_commands import datalist_command, prepare_cubes_command
    from monai_genesis.cli.synth import synth
    from monai_genesis.cli.demo import demo
    from monai_genesis.cli.convert import convert_weights
    from monai_genesis.cli.luna16 import luna16_eval
    from monai_genesis.cli.segmentation_data import segmentation_datalist_command
    from monai_genesis.cli.lidc import lidc_mask
    from monai_genesis.cli.brain_data import brain_datalist_command
    from monai_genesis.cli.candidates import prepare_candidates_command
    from monai_genesis.cli.bundles import bundle_copy, list_bundles_command
    from monai_genesis.cli.experiment import experiment

    return {
        "show-corruptions": show_corruptions,
        "prepare-cubes": prepare_cubes_command,
        "datalist": datalist_command,
        "synth": synth,
        "demo": demo,
        "convert-weights": convert_weights,
        "luna16-eval": luna16_eval,
        "segmentation-datalist": segmentation_datalist_command,
        "lidc-mask": lidc_mask,
        "brain-datalist": brain_datalist_command,
        "prepare-candidates": prepare_candidates_command,
        "bundles": list_bundles_command,
        "bundle-copy": bundle_copy,
        "experiment": experiment,
    }


# Expected failures: bad input or a bad output path. Each ends in one line and exit code 2.
EXPECTED_ERRORS = (OSError, ValueError)  # OSError: FileNotFoundError, FileExistsError, NotADirectoryError, ...
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


class Interrupted(KeyboardInterrupt):
    """Ctrl-C in a command that can say what it kept and how to resume (the message)."""


def _show_input_warning(message, category, filename, lineno, file=None, line=None):
    from monai_genesis.data.io import InputWarning

    if issubclass(category, InputWarning):
        print(f"genesis: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def main() -> None:
    """Run a subcommand; bad input (missing file, wrong shape, NaNs, ...) ends in one clear line, exit code 2."""
    debug = bool(os.environ.get("GENESIS_DEBUG"))  # the full traceback, for bug reports
    warnings.showwarning = _show_input_warning
    try:
        fire.Fire(_commands(), name="genesis")
    except KeyboardInterrupt as interrupt:
        if debug:
            raise
        detail = (str(interrupt) if isinstance(interrupt, Interrupted)
                  else "stopped by Ctrl-C; files it had finished are kept; run the same command again")
        print(f"genesis: interrupted: {detail}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except EXPECTED_ERRORS as error:
        if debug:
            raise
        print(f"genesis: error: {_one_line(error)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and error.filename and not text.startswith(str(error.filename)):
        text = f"{error.filename}: {error.strerror or text}"  # e.g. PermissionError from open()
    return text or type(error).__name__


if __name__ == "__main__":
    main()
