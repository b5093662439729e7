"""Helpers of the segmentation bundle tests (test_bundle_ncs.py, test_bundle_lcs.py): tiny workflows on phantoms."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigWorkflow, verify_metadata, verify_net_in_out

from bundle_cases import BUNDLES_DIR, SEG_TINY

from monai_genesis.networks import UNet3D

SCHEMA = Path(__file__).resolve().parent / "fixtures" / "meta_schema_20220324.json"
SCHEMA_MD5 = "662135097106b71067cd1fc657f8720f"
TINY_WIDTH = SEG_TINY["network_width"]  # the one home: bundle_cases


def configs(bundle: str) -> Path:
    return BUNDLES_DIR / bundle / "configs"


def workflow(bundle: str, files, workflow_type: str, root: Path, data: Path, **overrides) -> ConfigWorkflow:
    folder = configs(bundle)
    return ConfigWorkflow(
        config_file=[str(folder / f) for f in files],
        meta_file=str(folder / "metadata.json"),
        logging_file=False,  # keep pytest's logging (caplog) intact
        workflow_type=workflow_type,
        bundle_root=str(root),
        dataset_dir=str(data),
        **overrides,
    )


def run(bundle: str, files, workflow_type: str, root: Path, data: Path, **overrides) -> ConfigWorkflow:
    """Initialise, check the workflow's properties, run and finalise; returns the workflow."""
    wf = workflow(bundle, files, workflow_type, root, data, **overrides)
    wf.initialize()
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()
    return wf


def check_metadata(bundle: str, tmp_path: Path, output_name: str) -> None:
    schema_copy = tmp_path / "schema.json"
    schema_copy.write_bytes(SCHEMA.read_bytes())
    meta_file = configs(bundle) / "metadata.json"
    verify_metadata(meta_file=str(meta_file), filepath=str(schema_copy), hash_val=SCHEMA_MD5, hash_type="md5")
    meta = json.loads(meta_file.read_text())
    assert meta["version"] in meta["changelog"]
    assert list(meta["network_data_format"]["inputs"]) == ["image"]
    assert list(meta["network_data_format"]["outputs"]) == ["pred"]
    assert meta["network_data_format"]["outputs"]["pred"]["channel_def"] == {"0": "background", "1": output_name}
    verify_net_in_out(net_id="network_def", meta_file=str(meta_file), config_file=str(configs(bundle) / "inference.json"),
                      device="cpu", **{"network_def#width": TINY_WIDTH})


def reference_protocol(bundle: str) -> dict:
    """train.json's top-level values of docs/method.md §5.1 shared by every segmentation task."""
    config = json.loads((configs(bundle) / "train.json").read_text())
    assert config["optimizer"]["_target_"] == "torch.optim.Adam" and config["learning_rate"] == 1e-3
    assert config["loss"]["_target_"].endswith("GenesisDiceLoss") and config["dice_smooth"] == 1.0
    assert config["network_def"]["out_activation"] == "sigmoid"
    assert (config["lr_patience"], config["lr_factor"], config["lr_min_delta"], config["min_lr"]) == (6, 0.5, 1e-4, 1e-6)
    assert config["lr_scheduler"]["_target_"].endswith("KerasReduceLROnPlateau")
    assert config["train"]["handlers"][1]["key_metric_name"] == "val_loss"
    assert config["validate"]["early_stop"]["score_function"]["metric_name"] == "val_loss"
    assert config["epochs"] == 10000 and config["pretrained_path"] == ""
    assert all(s % 16 == 0 for s in config["cube_size"])
    return config


def pretrained_checkpoint(path: Path, seed: int = 3) -> dict:
    """A width-0.125 U-Net saved as genesis_pretrain saves models/model.pt ({"model": state_dict, ...})."""
    torch.manual_seed(seed)
    state = UNet3D(width=TINY_WIDTH).state_dict()
    torch.save({"model": state, "epoch": 1, "iteration": 1}, path)
    return state


def assert_same_geometry(image_path: Path, mask_path: Path) -> np.ndarray:
    """The mask has the image's shape and affine; returns its voxels (0 or 1)."""
    image, mask = nib.load(str(image_path)), nib.load(str(mask_path))
    assert mask.shape == image.shape
    np.testing.assert_allclose(mask.affine, image.affine, atol=1e-4)
    values = np.asarray(mask.dataobj)
    assert set(np.unique(values)) <= {0, 1}
    return values


def all_foreground_dice(labels) -> float:
    """Mean Dice (per label, as MONAI's MeanDice averages) of predicting foreground everywhere: 2 |Y| / (|Y| + N)."""
    scores = [2 * float((np.asarray(y) > 0).sum()) / (float((np.asarray(y) > 0).sum()) + np.asarray(y).size) for y in labels]
    return float(np.mean(scores))


def assert_raised_from(error: BaseException, kind: type, pattern: str) -> None:
    """``error`` is, or was caused by, a ``kind`` whose message matches ``pattern`` (MONAI wraps errors of
    config components and transforms in RuntimeErrors that keep the original as their cause)."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    found = [e for e in chain if isinstance(e, kind) and re.search(pattern, str(e), re.S)]
    assert found, f"no {kind.__name__} matching {pattern!r} in {[f'{type(e).__name__}: {str(e)[:200]}' for e in chain]}"


def check_pretrained_initialisation(bundle: str, tmp_path: Path, data: Path, caplog, **overrides) -> None:
    """A train workflow with ``pretrained_path`` logs the Genesis initialisation, holds the weights, and runs one epoch."""
    import logging

    state = pretrained_checkpoint(tmp_path / "genesis.pt")
    wf = workflow(bundle, ["train.json"], "train", tmp_path / "bundle", data, epochs=1, pretrained_path=str(tmp_path / "genesis.pt"), **overrides)
    with caplog.at_level(logging.INFO):
        wf.initialize()
    assert "initialisation: Genesis weights" in caplog.text
    loaded = wf.parser.get_parsed_content("network_def").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    wf.run()
    assert wf.trainer.state.epoch == 1
