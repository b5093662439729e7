"""Entry point of the `genesis` console command: one fire subcommand per job.

Each subcommand lives in the module of the job it runs; this file only registers them.
"""

import os
import sys

import fire


def _commands() -> dict:
    # Imported here so that `genesis --help` does not pay for torch/monai imports twice.
    from monai_genesis.cli.gallery import show_corruptions
    from monai_genesis.cli.data_commands import datalist_command, prepare_cubes_command
    from monai_genesis.cli.synth import synth
    from monai_genesis.cli.demo import demo
    from monai_genesis.cli.convert import convert_weights
    from monai_genesis.cli.luna16 import luna16_eval
    from monai_genesis.cli.candidates import prepare_candidates_command
    from monai_genesis.cli.segmentation_data import segmentation_datalist_command

    return {
        "show-corruptions": show_corruptions,
        "prepare-cubes": prepare_cubes_command,
        "datalist": datalist_command,
        "synth": synth,
        "demo": demo,
        "convert-weights": convert_weights,
        "luna16-eval": luna16_eval,
        "prepare-candidates": prepare_candidates_command,
        "segmentation-datalist": segmentation_datalist_command,
    }


def main() -> None:
    """Run a subcommand; bad input (missing file, wrong shape, NaNs, ...) ends in one clear line, exit code 2."""
    try:
        fire.Fire(_commands(), name="genesis")
    except (FileNotFoundError, ValueError) as error:
        if os.environ.get("GENESIS_DEBUG"):  # the full traceback, for bug reports
            raise
        print(f"genesis: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
