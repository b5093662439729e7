"""MSD-style datalists with deterministic folds (monai_genesis.data.datalist, `genesis datalist`)."""

import json
import os

import fire
import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from monai_genesis.cli.data_commands import datalist_command
from monai_genesis.data.datalist import (
    assign_folds,
    case_id_of,
    find_volumes,
    luna16_subset_of,
    make_datalist,
    split_cases,
)


def _touch_nifti(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), path)


def _image_label_folders(root, n=10):
    for i in range(n):
        _touch_nifti(root / "images" / f"case_{i:02d}.nii.gz")
        _touch_nifti(root / "labels" / f"case_{i:02d}.nii.gz")
    return root / "images", root / "labels"


def test_case_ids_and_luna16_subsets():
    assert case_id_of("/d/lung_001.nii.gz") == "lung_001"
    assert case_id_of("1.3.6.1.4.1.14519.5.2.1.6279.mhd") == "1.3.6.1.4.1.14519.5.2.1.6279"
    assert luna16_subset_of(os.path.join("luna", "subset7", "x.mhd")) == 7
    assert luna16_subset_of(os.path.join("luna", "other", "x.mhd")) is None


def test_folds_are_deterministic_balanced_and_order_free():
    ids = [f"c{i}" for i in range(23)]
    folds = assign_folds(ids, num_folds=5, seed=0)
    assert folds == assign_folds(list(reversed(ids)), num_folds=5, seed=0)
    assert sorted(np.bincount(list(folds.values()))) == [4, 4, 5, 5, 5]
    assert folds != assign_folds(ids, num_folds=5, seed=1)


def test_split_cases_fractions_and_determinism():
    ids = [f"c{i}" for i in range(20)]
    split = split_cases(ids, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert list(split.values()).count("validation") == 4 and list(split.values()).count("test") == 2
    assert split == split_cases(ids[::-1], 0.2, 0.1, seed=3)
    small = split_cases(["a", "b", "c"], 0.2, 0.1)
    assert sorted(small.values()) == ["test", "training", "validation"]
    assert split_cases(["a"], 0.2, 0.1) == {"a": "training"}
    with pytest.raises(ValueError, match="val_fraction"):
        split_cases(ids, 1.5, 0.0)
    with pytest.raises(ValueError, match="must be < 1"):
        split_cases(ids, 0.6, 0.4)


def test_image_label_datalist_resolves_with_monai(tmp_path):
    images, labels = _image_label_folders(tmp_path)
    out = tmp_path / "lists" / "datalist.json"
    data = make_datalist(images, out, labels_dir=labels, num_folds=5, seed=0, val_fold=0)
    assert json.loads(out.read_text()) == data
    assert data["numTraining"] == 8 and data["numValidation"] == 2 and data["test"] == []
    assert {item["fold"] for item in data["validation"]} == {0}
    assert {item["fold"] for item in data["training"]} == {1, 2, 3, 4}
    assert data["training"][0]["image"].startswith("../images/")  # relative to the JSON file
    for section in ("training", "validation"):
        for item in load_decathlon_datalist(out, data_list_key=section):
            assert os.path.isfile(item["image"]) and os.path.isfile(item["label"])
            assert os.path.basename(item["image"]) == os.path.basename(item["label"])
    # Same inputs, same seed: the same file; val_fold=None keeps every case in training.
    assert make_datalist(images, None, labels_dir=labels, seed=0)["training"] != []
    everything = make_datalist(images, tmp_path / "all.json", labels_dir=labels, val_fold=None)
    assert everything["numTraining"] == 10 and everything["validation"] == []


def test_luna16_subsets_datalist(tmp_path):
    for subset in range(10):
        _touch_nifti(tmp_path / "luna" / f"subset{subset}" / f"scan{subset}.nii.gz")
    data = make_datalist(tmp_path / "luna", tmp_path / "luna.json")
    assert [i["subset"] for i in data["training"]] == [0, 1, 2, 3, 4]
    assert [i["subset"] for i in data["validation"]] == [5, 6]
    assert [i["subset"] for i in data["test"]] == [7, 8, 9]
    assert data["split"]["kind"] == "luna16_subsets"
    plain = make_datalist(tmp_path / "luna", None, luna16_subsets=False, val_fold=None)
    assert plain["numTraining"] == 10
    # The distributed LUNA16 root also holds lung masks named like the scans: they are left out.
    _touch_nifti(tmp_path / "luna" / "seg-lungs-LUNA16" / "scan3.nii.gz")
    assert make_datalist(tmp_path / "luna", None) == make_datalist(tmp_path / "luna", None, luna16_subsets=True)
    assert make_datalist(tmp_path / "luna", None)["numTraining"] == 5


def test_test_dir_and_cli(tmp_path, capsys):
    images, labels = _image_label_folders(tmp_path, n=4)
    _touch_nifti(tmp_path / "imagesTs" / "new_case.nii.gz")
    out = tmp_path / "dl.json"
    fire.Fire(
        {"datalist": datalist_command},
        command=["datalist", str(images), str(out), "--labels_dir", str(labels), "--num_folds", "2",
                 "--test_dir", str(tmp_path / "imagesTs")],
    )
    data = json.loads(out.read_text())
    assert data["test"] == [{"image": "imagesTs/new_case.nii.gz"}]
    assert data["numTraining"] + data["numValidation"] == 4
    assert f"{data['numTraining']} training, {data['numValidation']} validation, 1 test" in capsys.readouterr().out


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        make_datalist(tmp_path / "nowhere", None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no volumes found"):
        make_datalist(tmp_path / "empty", None)
    images, labels = _image_label_folders(tmp_path / "a", n=3)
    os.remove(labels / "case_01.nii.gz")
    with pytest.raises(ValueError, match=r"no label for 1 image\(s\) \(case_01\)"):
        make_datalist(images, None, labels_dir=labels)
    _touch_nifti(images / "deeper" / "case_00.nii")
    with pytest.raises(ValueError, match="share the case id 'case_00'"):
        find_volumes(images)
    with pytest.raises(ValueError, match="val_fold"):
        make_datalist(tmp_path / "a" / "labels", None, val_fold=7, num_folds=5)
    with pytest.raises(ValueError, match="luna16_subsets=True but no volume lies in a subset0..subset9"):
        make_datalist(tmp_path / "a" / "labels", None, luna16_subsets=True)
