"""The genesis_liver_segmentation bundle (LCS): reference defaults, train / evaluate / inference workflows on LiTS-layout
phantoms, geometry of the written masks, pretrained and scratch initialisation, bad input, and one learning run."""

import csv
import json
import logging
import re

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_cases import TINY as BUNDLE_TINY
from bundle_cases import torchrun

from monai_genesis.data.segmentation import lits_datalist
from monai_genesis.phantoms.layouts import write_lits_layout
from segmentation_bundles import (
    check_pretrained_initialisation,
    all_foreground_dice,
    configs,
    assert_raised_from,
    assert_same_geometry,
    check_metadata,
    reference_protocol,
    run,
    workflow,
)

BUNDLE = "genesis_liver_segmentation"
pytestmark = pytest.mark.filterwarnings("ignore:Detected deprecated name 'optional_packages_version'")
# cases 0-3 training, 100-101 validation, 115-116 test (the §5.1 split by case number); case N % 3 gives the
# geometry: 0 identity, 1 oblique, 2 feet first
CASES = (0, 1, 2, 3, 100, 101, 115, 116)
TINY = BUNDLE_TINY["genesis_liver_segmentation"]  # one home: tests/bundle_cases.py


@pytest.fixture(scope="module")
def lits(tmp_path_factory):
    root = tmp_path_factory.mktemp("lits")
    write_lits_layout(root, case_numbers=CASES, shape=(32, 32, 32), spacing=(4.5, 4.5, 4.5))
    lits_datalist(root, root / "datalist.json")
    return root


def test_metadata_and_network(tmp_path):
    check_metadata(BUNDLE, tmp_path, "liver")


def test_reference_defaults():
    config = reference_protocol(BUNDLE)
    assert config["batch_size"] == 16 and config["patience"] == 20
    assert config["train"]["crop"]["_target_"] == "RandCropByPosNegLabeld" and config["pos_ratio"] == config["neg_ratio"] == 1.0
    assert config["validate"]["inferer"]["_target_"] == "SlidingWindowInferer"
    assert config["train"]["pad"]["_target_"] == "SpatialPadd" and config["pad_to_crop"] is True
    inference = json.loads((configs(BUNDLE) / "inference.json").read_text())
    assert inference["inferer"]["_target_"] == "SlidingWindowInferer"
    assert [t["_target_"] for t in inference["postprocessing"]["transforms"]] == ["AsDiscreted", "Invertd", "SaveImaged"]


@pytest.mark.slow
def test_train_evaluate_infer_from_scratch(tmp_path, lits, caplog):
    root = tmp_path / "bundle"
    with caplog.at_level(logging.INFO):
        wf = run(BUNDLE, ["train.json"], "train", root, lits, epochs=2, **TINY)
    assert "initialisation: from scratch" in caplog.text
    assert wf.trainer.state.epoch == 2 and wf.trainer.state.iteration == 2 * 2  # 4 cases / 2 per batch
    latest = torch.load(root / "models" / "latest.pt", weights_only=True)
    assert {"model", "optimizer", "lr_scheduler", "early_stopping"} <= set(latest) and latest["best_epoch"] >= 1
    assert (root / "models" / "model.pt").is_file()

    run(BUNDLE, ["train.json", "evaluate.json"], "eval", root, lits, **TINY)
    with open(root / "eval" / "metrics.csv") as f:
        rows = dict(re.split(r"[,\t]", line.strip()) for line in f if line.strip())
    assert set(rows) == {"dice", "iou", "reference_iou", "surface_dice", "loss"}
    assert all(0.0 <= float(v) <= 1.0 for v in rows.values())
    with open(root / "eval" / "dice_raw.csv") as f:
        assert len(list(csv.reader(f))) == 1 + 2  # header and the two test cases

    volumes = [lits / f"volume-{n}.nii" for n in (0, 1, 2)]  # identity, oblique, feet first
    run(BUNDLE, ["inference.json"], "infer", root, lits, datalist=[str(v) for v in volumes],
        output_dir=str(tmp_path / "masks"), **TINY)
    for volume in volumes:
        assert_same_geometry(volume, tmp_path / "masks" / volume.name.replace(".nii", "_liver.nii.gz"))


@pytest.mark.slow
def test_pretrained_initialisation(tmp_path, lits, caplog):
    check_pretrained_initialisation(BUNDLE, tmp_path, lits, caplog, **TINY)


def test_bad_input_names_the_case(tmp_path, lits):
    datalist = json.loads((lits / "datalist.json").read_text())
    datalist["training"][1]["label"] = datalist["training"][2]["label"]  # case 2 is feet first: another affine
    (tmp_path / "bad.json").write_text(json.dumps(datalist))
    wf = workflow(BUNDLE, ["train.json"], "train", tmp_path / "bundle", lits, datalist=str(tmp_path / "bad.json"), **TINY)
    with pytest.raises(Exception) as caught:  # the config parser wraps the datalist check's ValueError
        wf.initialize()
    assert_raised_from(caught.value, ValueError, r"case volume-1 .*segmentation-2.nii and image .*volume-1.nii have different affines")


@pytest.mark.slow
def test_learns_the_liver(tmp_path, lits):
    """A tiny network (width 0.125) trained for 80 iterations (40 epochs of 2 steps of 4 patches of 16^3) with the
    default Adam 1e-3 segments the synthetic liver of the two test cases (whole volumes, sliding window) with a
    Dice far above the all-background (0) and all-foreground (0.19) guesses.
    Calibration (this fixture, phantom seeds 0 / 1): Dice 0.81 / 0.88 after 80 iterations, 0.37 after 40;
    hence 80 iterations and the threshold 0.6."""
    root = tmp_path / "bundle"
    run(BUNDLE, ["train.json"], "train", root, lits, epochs=40, val_interval=40, **TINY)
    wf = run(BUNDLE, ["train.json", "evaluate.json"], "eval", root, lits, **TINY)
    dice = wf.evaluator.state.metrics["dice"]
    labels = [np.asarray(nib.load(str(lits / f"segmentation-{n}.nii")).dataobj) for n in (115, 116)]
    all_foreground = all_foreground_dice(labels)
    print(f"LCS synthetic: Dice {dice:.3f}, IoU {wf.evaluator.state.metrics['iou']:.3f}, reference IoU "
          f"{wf.evaluator.state.metrics['reference_iou']:.3f}; all-foreground Dice {all_foreground:.3f}, all-background 0")
    assert all_foreground < 0.25
    assert dice > 0.6


@pytest.mark.slow
def test_two_process_torchrun(tmp_path, lits):
    """multi_gpu_train.json on two CPU processes (gloo): each rank trains on half the cases and validates
    whole volumes on half the validation cases; the metrics are gathered and rank 0 writes the checkpoints."""
    result, root = torchrun(configs(BUNDLE), tmp_path / "bundle", {**TINY, "dataset_dir": str(lits), "epochs": 1})
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    latest = torch.load(root / "models" / "latest.pt", weights_only=True)
    assert latest["epoch"] == 1 and latest["iteration"] == 1  # 4 training cases / 2 ranks / 2 per batch
    assert np.isfinite(latest["best_metric"]) and not any(k.startswith("module.") for k in latest["model"])
