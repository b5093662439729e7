"""The genesis_lung_nodule_segmentation bundle (NCS): reference defaults, train / evaluate / inference workflows on
chest phantoms with nodule masks (the layout `genesis lidc-mask` leaves), mask geometry, pretrained and scratch
initialisation, bad input, and one learning run."""

import json
import logging
import re

import pytest
import torch
from bundle_cases import TINY as BUNDLE_TINY

from monai_genesis.data.segmentation import paired_datalist
from monai_genesis.phantoms.layouts import write_nodule_layout
from segmentation_bundles import (
    check_pretrained_initialisation,
    all_foreground_dice,
    assert_raised_from,
    assert_same_geometry,
    check_metadata,
    configs,
    reference_protocol,
    run,
    workflow,
)

BUNDLE = "genesis_lung_nodule_segmentation"
pytestmark = pytest.mark.filterwarnings("ignore:Detected deprecated name 'optional_packages_version'")
TINY = BUNDLE_TINY["genesis_lung_nodule_segmentation"]  # one home: tests/bundle_cases.py


@pytest.fixture(scope="module")
def chest(tmp_path_factory):
    """8 chest CTs (cases cycle identity / oblique / feet first) with 3 nodules each: 5 training, 1 validation, 2 test."""
    root = tmp_path_factory.mktemp("chest")
    write_nodule_layout(root, num_cases=8, shape=(48, 48, 32), spacing=(1.6, 1.6, 2.5))
    datalist = paired_datalist(root / "images", root / "labels", root / "datalist.json", val_fraction=0.125, test_fraction=0.25, seed=0)
    assert [len(datalist[s]) for s in ("training", "validation", "test")] == [5, 1, 2]
    return root


def test_metadata_and_network(tmp_path):
    check_metadata(BUNDLE, tmp_path, "nodule")


def test_reference_defaults():
    config = reference_protocol(BUNDLE)
    assert config["batch_size"] == 16 and config["patience"] == 50 and config["cube_size"] == [64, 64, 32]
    assert config["train"]["crop"]["_target_"] == "RandCropByPosNegLabeld" and (config["pos_ratio"], config["neg_ratio"]) == (1.0, 0.0)
    assert config["validate"]["preprocessing"]["_target_"].endswith("FixedSeedPerItemd")
    inference = json.loads((configs(BUNDLE) / "inference.json").read_text())
    assert inference["inferer"]["_target_"] == "SlidingWindowInferer"
    assert [t["_target_"] for t in inference["postprocessing"]["transforms"]] == ["AsDiscreted", "Invertd", "SaveImaged"]


@pytest.mark.slow
def test_train_evaluate_infer_from_scratch(tmp_path, chest, caplog):
    root = tmp_path / "bundle"
    with caplog.at_level(logging.INFO):
        wf = run(BUNDLE, ["train.json"], "train", root, chest, epochs=2, **TINY)
    assert "initialisation: from scratch" in caplog.text
    assert wf.trainer.state.epoch == 2 and wf.trainer.state.iteration == 2 * 3  # 5 cases, 2 per batch
    assert (root / "models" / "model.pt").is_file() and (root / "models" / "latest.pt").is_file()
    first = torch.load(root / "models" / "latest.pt", weights_only=True)
    assert first["lr_scheduler"]["last_epoch"] == 2  # one plateau step per validation

    # resuming continues the plateau schedule and the early-stopping count where they were
    wf = run(BUNDLE, ["train.json"], "train", root, chest, epochs=3, resume=True, **TINY)
    assert wf.trainer.state.epoch == 3
    resumed = torch.load(root / "models" / "latest.pt", weights_only=True)
    assert resumed["lr_scheduler"]["last_epoch"] == 3 and resumed["iteration"] == 3 * 3
    assert resumed["early_stopping"]["counter"] in (0, first["early_stopping"]["counter"] + 1)

    wf = run(BUNDLE, ["train.json", "evaluate.json"], "eval", root, chest, **TINY)
    with open(root / "eval" / "metrics.csv") as f:
        rows = dict(re.split(r"[,\t]", line.strip()) for line in f if line.strip())
    assert set(rows) == {"dice", "iou", "reference_iou", "loss"}
    assert all(0.0 <= float(v) <= 1.0 for v in rows.values())

    volumes = [chest / "images" / f"chest_00{i}.nii.gz" for i in (0, 1, 2)]  # identity, oblique, feet first
    run(BUNDLE, ["inference.json"], "infer", root, chest, datalist=[str(v) for v in volumes], output_dir=str(tmp_path / "masks"), **TINY)
    for volume in volumes:
        assert_same_geometry(volume, tmp_path / "masks" / volume.name.replace(".nii.gz", "_nodule.nii.gz"))


@pytest.mark.slow
def test_pretrained_initialisation(tmp_path, chest, caplog):
    check_pretrained_initialisation(BUNDLE, tmp_path, chest, caplog, **TINY)
    with pytest.raises(Exception) as caught:
        workflow(BUNDLE, ["train.json"], "train", tmp_path / "b2", chest, pretrained_path=str(tmp_path / "missing.pt"), **TINY).initialize()
    assert_raised_from(caught.value, FileNotFoundError, "missing.pt")


def test_volume_smaller_than_the_crop_names_the_case(tmp_path, chest):
    wf = workflow(BUNDLE, ["train.json"], "train", tmp_path / "bundle", chest, **{**TINY, "cube_size": [64, 64, 32], "pad_to_crop": False})
    with pytest.raises(Exception) as caught:
        wf.initialize()  # the training cache loads the volumes
    assert_raised_from(caught.value, ValueError, r"chest_00\d.nii.gz: volume \(48, 48, 32\) is smaller than the crop \(64, 64, 32\)")


@pytest.mark.slow
def test_learns_nodules(tmp_path, chest):
    """A tiny network trained for a bounded number of iterations with the default Adam 1e-3 segments the synthetic
    nodules in the test patches (2 per test case, around nodules) with a Dice far above the all-background (0) and
    all-foreground guesses on those same patches. Measured: see the bundle's docs/README.md."""
    root = tmp_path / "bundle"
    run(BUNDLE, ["train.json"], "train", root, chest, epochs=NCS_EPOCHS, val_interval=NCS_EPOCHS, **TINY)
    wf = run(BUNDLE, ["train.json", "evaluate.json"], "eval", root, chest, **TINY)
    metrics = wf.evaluator.state.metrics
    labels = [item["label"].numpy() for case in wf.parser.get_parsed_content("validate#dataset") for item in case]
    all_foreground = all_foreground_dice(labels)
    print(f"NCS synthetic: Dice {metrics['dice']:.3f}, IoU {metrics['iou']:.3f}, reference IoU {metrics['reference_iou']:.3f}; "
          f"all-foreground Dice {all_foreground:.3f}, all-background 0 ({len(labels)} test patches)")
    assert all_foreground < NCS_ALL_FOREGROUND_BELOW
    assert metrics["dice"] > NCS_DICE_ABOVE


# Calibration (this fixture, width 0.125, 16^3 patches, 4 per step, Adam 1e-3): Dice 0.55 after 42 iterations,
# 0.78 after 81 iterations, on 4 test patches whose all-foreground Dice is 0.17; hence 81 iterations and 0.55.
NCS_EPOCHS = 27  # 3 iterations each: 81 iterations
NCS_ALL_FOREGROUND_BELOW = 0.3
NCS_DICE_ABOVE = 0.55
