"""Bad input under `python -m monai.bundle run` ends in the project's one line `<bundle>: error: <file>: <problem>`:
a missing datalist, a missing pretrained checkpoint, a volume smaller than the crop (found while the volumes are
cached, or while the trainer runs). No traceback on stdout or stderr; the output stays short."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bundle_cases import BUNDLES, BUNDLES_DIR, TINY, cli_args, write_data
from monai_genesis.data.datalist import load_cube_datalist
from monai_genesis.training.bundle_errors import install_short_errors

HOOK = "monai_genesis.training.bundle_errors.install_short_errors"
NCS = "genesis_lung_nodule_segmentation"
MAX_OUTPUT = 3000  # characters on each stream: MONAI's start-up notices and the input summary, then the one line


@pytest.mark.parametrize("bundle", BUNDLES)
def test_every_initialize_starts_with_the_short_errors_hook(bundle):
    for config in sorted((BUNDLES_DIR / bundle / "configs").glob("*.json")):
        steps = json.loads(config.read_text()).get("initialize")
        if steps is not None:
            assert steps[0] == {"_target_": HOOK, "name": bundle}, config


def _bundle_run(bundle: str, tmp_path: Path, **settings):
    env = {k: v for k, v in os.environ.items() if k != "GENESIS_DEBUG"}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLES_DIR / bundle / "configs" / "train.json"),
           *cli_args({**TINY[bundle], "epochs": 1, "bundle_root": str(tmp_path / "bundle"), **settings})]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)


def _assert_one_line(result, bundle: str, message: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output and "Failed to " not in output, output[-4000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{bundle}: error: {message}") and last.endswith("(GENESIS_DEBUG=1 shows the traceback)"), last
    assert len(result.stdout) < MAX_OUTPUT and len(result.stderr) < MAX_OUTPUT, (len(result.stdout), len(result.stderr))


@pytest.mark.slow
@pytest.mark.parametrize("bundle", [NCS, "genesis_lung_nodule_fpr"])  # the segmentation and the candidate datasets
def test_a_missing_dataset(bundle, tmp_path):
    absent = tmp_path / "absent"
    expected = (f"dataset_dir '{absent}' holds no prepared volumes" if bundle.endswith("_fpr")
                else f"datalist '{absent / 'datalist.json'}' does not exist")
    _assert_one_line(_bundle_run(bundle, tmp_path, dataset_dir=str(absent)), bundle, expected)


@pytest.fixture(scope="module")
def chest(tmp_path_factory):
    return write_data(NCS, tmp_path_factory.mktemp("chest"))


@pytest.mark.slow
def test_a_missing_pretrained_checkpoint(tmp_path, chest):
    missing = tmp_path / "genesis.pt"
    result = _bundle_run(NCS, tmp_path, pretrained_path=str(missing), **chest)
    _assert_one_line(result, NCS, f"pretrained_path '{missing}' does not exist")


@pytest.mark.slow
def test_a_volume_smaller_than_the_crop_found_while_training(tmp_path, chest):
    """Nothing cached: the check fails inside the trainer, where MONAI's StatsHandler and ignite log the error."""
    result = _bundle_run(NCS, tmp_path, cube_size=[64, 64, 64], pad_to_crop=False, cache_rate=0.0, val_cache_rate=0.0,
                         **chest)
    _assert_one_line(result, NCS, f"{chest['dataset_dir']}/images/chest_000.nii.gz: volume (32, 32, 32) is smaller "
                                  "than the crop (64, 64, 64)")
    assert "Engine run resuming" in result.stdout  # it did fail inside the run
    assert result.stdout.count(f"{NCS}: error: ") == 1  # MONAI's logged traceback, shortened to the one line


def test_the_log_filter_shortens_only_records_about_our_checks(tmp_path, monkeypatch):
    monkeypatch.delenv("GENESIS_DEBUG", raising=False)
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("genesis_test_filter")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = Keep()
    logger.addHandler(handler)
    try:
        assert install_short_errors("genesis_test") is True
        try:
            load_cube_datalist(tmp_path / "absent.json")
        except FileNotFoundError:
            logger.exception("Exception: ours")  # as StatsHandler logs it
            logger.error("Engine run is terminating due to exception: ours")  # as ignite logs it
            logger.info("kept: not an error record")
        try:
            raise ValueError("a bug, not an input check")
        except ValueError:
            logger.exception("kept: foreign")
        logger.error("kept: no exception")
    finally:
        logger.removeHandler(handler)
    message = f"cube datalist '{tmp_path / 'absent.json'}' does not exist"
    assert records[0].startswith(f"genesis_test: error: {message}")  # once, one line (a server keeps it in its log)
    assert records[1:] == ["kept: not an error record", "kept: foreign", "kept: no exception"]
