"""genesis_pretrain under `monai.bundle run`: shard, checkpoint, resume and datalist problems are one line
naming the file and the fix; inference reads its network settings from the checkpoint; empty input fails.

MONAI wraps config errors in "Failed to instantiate/evaluate ..."; the bundles' ``install_short_errors``
hook prints the innermost cause when it is one of our checks. The in-process cases check that cause
(``input_error_of``); one subprocess run checks what the user actually sees.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow

from monai_genesis.networks import UNet3D
from monai_genesis.data.datalist import load_cube_datalist
from monai_genesis.training.bundle_errors import input_error_of, install_short_errors
from monai_genesis.training.checkpoint import NetworkWeightsLoader, network_settings, resolve_resume_path

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "genesis_pretrain"
CONFIGS = BUNDLE / "configs"
pytestmark = pytest.mark.filterwarnings("ignore:Detected deprecated name 'optional_packages_version'")
TINY = {"device": "cpu", "network_width": 0.125, "cube_size": [16, 16, 8], "batch_size": 2, "num_workers": 0}
SETTINGS = {"network_width": 0.125, "cube_size": [16, 16, 8], "in_channels": 1, "out_channels": 1}


def _cubes(root: Path) -> Path:
    (root / "cubes").mkdir(parents=True)
    datalist = {}
    for section in ("training", "validation"):
        np.save(root / "cubes" / f"{section}.npy", np.full((2, 16, 16, 8), 0.5, np.float16))
        datalist[section] = [{"image": f"cubes/{section}.npy", "cube_index": i} for i in range(2)]
    (root / "datalist.json").write_text(json.dumps(datalist))
    return root


def _workflow(configs, kind, root, **overrides):
    return ConfigWorkflow(config_file=[str(CONFIGS / c) for c in configs], meta_file=str(CONFIGS / "metadata.json"),
                          logging_file=False, workflow_type=kind, bundle_root=str(root), **overrides)


def _first_line_error(wf) -> str:
    with pytest.raises(Exception) as info:
        wf.initialize()
        wf.run()
    error = input_error_of(info.value)
    assert error is not None, f"not one of our checks: {info.value!r}"
    message = " ".join(str(error).split())
    assert len(message) < 500
    return message


def _checkpoint(path: Path, width=0.25, settings=True):
    torch.manual_seed(0)
    ckpt = {"model": UNet3D(width=width).state_dict(), "epoch": 1, "iteration": 2}
    if settings:
        ckpt["settings"] = {**SETTINGS, "network_width": width}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def test_a_truncated_shard_names_the_file_and_the_fix(tmp_path):
    data = _cubes(tmp_path / "data")
    shard = data / "cubes" / "training.npy"
    shard.write_bytes(shard.read_bytes()[:1000])
    message = _first_line_error(_workflow(["train.json"], "train", tmp_path / "b", dataset_dir=str(data), **TINY))
    assert message.startswith(f"cube file '{shard}' listed in '{data / 'datalist.json'}' is truncated")
    assert "run `genesis prepare-cubes` again on the same output folder" in message


def test_resume_from_a_checkpoint_of_another_width(tmp_path):
    data = _cubes(tmp_path / "data")
    ckpt = _checkpoint(tmp_path / "old" / "latest.pt", width=0.25)
    wf = _workflow(["train.json"], "train", tmp_path / "b", dataset_dir=str(data), resume=str(ckpt), **TINY)
    assert _first_line_error(wf) == (f"{ckpt}: saved by a run with other network settings; pass --network_width 0.25 "
                                     "(this run: 0.125), or start afresh with --resume false.")


@pytest.mark.parametrize("content", ["text", "tensor"])
def test_resume_from_a_file_that_is_not_a_checkpoint(tmp_path, content):
    data = _cubes(tmp_path / "data")
    path = tmp_path / "not_a_checkpoint.pt"
    if content == "text":
        path.write_text("hello")
        expected = f"{path}: cannot read the checkpoint: not a PyTorch checkpoint ("
    else:
        torch.save({"weights": torch.zeros(2)}, path)
        expected = (f"{path}: not a training checkpoint of this bundle (it lacks ['model', 'epoch', 'iteration']); "
                    "--resume takes true")
    wf = _workflow(["train.json"], "train", tmp_path / "b", dataset_dir=str(data), resume=str(path), **TINY)
    message = _first_line_error(wf)
    assert message.startswith(expected) and "weights_only=False" not in message


def test_a_mismatched_width_at_load_time_is_one_line(tmp_path):
    ckpt = _checkpoint(tmp_path / "model.pt", width=0.25, settings=False)
    with pytest.raises(ValueError) as info:
        NetworkWeightsLoader(ckpt, UNet3D(width=0.125))()
    message = str(info.value)
    assert message.startswith(f"{ckpt}: its 'model' does not fit this run's UNet3D (")
    assert message.endswith("pass the --network_width and --in_channels it was trained with.") and len(message) < 500
    _checkpoint(ckpt, width=0.25)
    with pytest.raises(ValueError, match=r"pass --network_width 0\.25 \(this run: 0\.125\)"):
        NetworkWeightsLoader(ckpt, UNet3D(width=0.125), settings=SETTINGS)()


def test_inference_settings_come_from_the_checkpoint(tmp_path):
    ckpt = _checkpoint(tmp_path / "model.pt", width=0.25)
    assert network_settings(ckpt) == {**SETTINGS, "network_width": 0.25}
    assert network_settings(ckpt, network_width=0.5)["network_width"] == 0.5  # an override wins
    bare = _checkpoint(tmp_path / "bare.pt", width=0.125, settings=False)  # e.g. converted published weights
    assert network_settings(bare) == {"network_width": 0.125, "cube_size": [64, 64, 32], "in_channels": 1,
                                      "out_channels": 1}
    assert network_settings(tmp_path / "absent.pt")["network_width"] == 1.0  # the network builds; the loader reports


def test_resume_checks_before_training(tmp_path):
    ckpt = _checkpoint(tmp_path / "latest.pt", width=0.125)
    assert resolve_resume_path(True, tmp_path, settings=SETTINGS) == str(ckpt)


def test_inference_on_an_empty_folder_or_without_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    wf = _workflow(["inference.json"], "infer", tmp_path / "b", dataset_dir=str(tmp_path / "empty"), device="cpu")
    message = _first_line_error(wf)
    assert message.startswith(f"{tmp_path / 'empty'}: no volumes found")
    import nibabel as nib

    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 10), np.float32), np.eye(4)), tmp_path / "in" / "ct.nii.gz")
    wf = _workflow(["inference.json"], "infer", tmp_path / "b", dataset_dir=str(tmp_path / "in"), device="cpu")
    assert _first_line_error(wf) == (f"{tmp_path / 'b' / 'models' / 'model.pt'}: trained model (set ckpt_dir, "
                                     "or train first) not found.")


def test_the_user_sees_one_line_under_monai_bundle_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GENESIS_DEBUG"}
    run = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.json", "--dataset_dir",
         str(tmp_path / "absent")], cwd=BUNDLE, capture_output=True, text=True, timeout=300, env=env,
    )
    assert run.returncode != 0 and "Traceback" not in run.stderr + run.stdout
    assert run.stderr.strip().splitlines()[-1] == (
        f"genesis_pretrain: error: cube datalist '{tmp_path / 'absent' / 'datalist.json'}' does not exist: set "
        "dataset_dir (or datalist) to the output folder of prepare_cubes. (GENESIS_DEBUG=1 shows the traceback)")


def test_the_hook_shortens_only_our_checks(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    monkeypatch.setenv("GENESIS_DEBUG", "1")
    assert install_short_errors("genesis_pretrain") is False and sys.excepthook is sys.__excepthook__
    monkeypatch.delenv("GENESIS_DEBUG")
    assert install_short_errors("genesis_pretrain") is True
    try:
        try:
            load_cube_datalist(tmp_path / "absent.json")
        except FileNotFoundError as error:  # as MONAI's instantiate wraps it
            raise RuntimeError("Failed to instantiate component 'load_cube_datalist'") from error
    except RuntimeError as wrapped:
        sys.excepthook(type(wrapped), wrapped, wrapped.__traceback__)
    assert capsys.readouterr().err.startswith(
        f"genesis_pretrain: error: cube datalist '{tmp_path / 'absent.json'}' does not exist")
    try:
        raise ValueError("a bug, not an input check")
    except ValueError as foreign:
        assert input_error_of(foreign) is None
        sys.excepthook(type(foreign), foreign, foreign.__traceback__)
    assert "Traceback" in capsys.readouterr().err  # printed in full
