"""Segmentation datalists from the real layouts (LiTS, Decathlon Task03_Liver, image/label folders) and the checks
that name the bad case."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_genesis.data.segmentation import (
    CheckSegmentationCased,
    decathlon_liver_datalist,
    liver_section,
    lits_datalist,
    load_segmentation_datalist,
    paired_datalist,
)
from monai_genesis.phantoms.layouts import write_decathlon_liver_layout, write_lits_layout, write_nodule_layout
from monai_genesis.phantoms.writers import write_nifti

SMALL = {"shape": (32, 32, 32), "spacing": (4.0, 4.0, 4.0)}


def test_reference_liver_split():
    assert [liver_section(n) for n in (0, 99, 100, 114, 115, 129, 130)] == [
        "training", "training", "validation", "validation", "test", "test", None]


def test_lits_layout_gives_the_reference_split(tmp_path):
    write_lits_layout(tmp_path / "lits" / "batch1", case_numbers=(0, 100), **SMALL)
    write_lits_layout(tmp_path / "lits" / "batch2", case_numbers=(115, 130), compressed=True, **SMALL)
    out = tmp_path / "lits" / "datalist.json"
    datalist = lits_datalist(tmp_path / "lits", out)
    assert json.loads(out.read_text()) == datalist
    assert datalist["training"] == [{"image": "batch1/volume-0.nii", "label": "batch1/segmentation-0.nii"}]
    assert [len(datalist[s]) for s in ("training", "validation", "test")] == [1, 1, 1]
    assert datalist["split"]["unused"] == ["volume-130"]
    items = load_segmentation_datalist(out, "test", base_dir=tmp_path / "lits")
    assert items[0]["image"].endswith("batch2/volume-115.nii.gz")
    (tmp_path / "lits" / "batch1" / "segmentation-0.nii").unlink()
    with pytest.raises(ValueError, match=r"segmentation-N.nii for volume\(s\) \[0\]"):
        lits_datalist(tmp_path / "lits", out)


def test_decathlon_liver_layout(tmp_path):
    write_decathlon_liver_layout(tmp_path / "Task03_Liver", case_numbers=(3, 105, 120), **SMALL)
    out = tmp_path / "Task03_Liver" / "datalist.json"
    datalist = decathlon_liver_datalist(tmp_path / "Task03_Liver", out)
    assert datalist["training"] == [{"image": "imagesTr/liver_3.nii.gz", "label": "labelsTr/liver_3.nii.gz"}]
    assert datalist["validation"][0]["image"] == "imagesTr/liver_105.nii.gz"
    assert datalist["test"][0]["label"] == "labelsTr/liver_120.nii.gz"
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        decathlon_liver_datalist(tmp_path, out)


def test_paired_layout_splits_by_seed(tmp_path):
    write_nodule_layout(tmp_path / "lidc", num_cases=6, shape=(32, 32, 32), spacing=(3.0, 3.0, 3.0))
    a = paired_datalist(tmp_path / "lidc" / "images", tmp_path / "lidc" / "labels", tmp_path / "lidc" / "datalist.json",
                        val_fraction=0.2, test_fraction=0.2, seed=1)
    b = paired_datalist(tmp_path / "lidc" / "images", tmp_path / "lidc" / "labels", tmp_path / "d2.json",
                        val_fraction=0.2, test_fraction=0.2, seed=1)
    assert [len(a[s]) for s in ("training", "validation", "test")] == [4, 1, 1]
    assert [i["image"].split("/")[-1] for i in a["training"]] == [i["image"].split("/")[-1] for i in b["training"]]
    assert a["training"][0]["label"].startswith("labels/")


def _pair(tmp_path, image, label, image_affine=None, label_affine=None):
    write_nifti(tmp_path / "img.nii.gz", image, np.eye(4) if image_affine is None else image_affine)
    write_nifti(tmp_path / "lab.nii.gz", label, np.eye(4) if label_affine is None else label_affine)
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": [{"image": "img.nii.gz", "label": "lab.nii.gz"}], "validation": []}))
    return path


def test_header_checks_name_the_case(tmp_path):
    image = np.zeros((16, 16, 8), np.int16)
    label = np.zeros((16, 16, 8), np.uint8)
    path = _pair(tmp_path, image, label[:, :, :6])
    with pytest.raises(ValueError, match=r"case img .*lab.nii.gz has shape \(16, 16, 6\)"):
        load_segmentation_datalist(path)
    shifted = np.eye(4)
    shifted[0, 3] = 2.0
    path = _pair(tmp_path, image, label, label_affine=shifted)
    with pytest.raises(ValueError, match="different affines"):
        load_segmentation_datalist(path)
    with pytest.raises(ValueError, match="section 'validation' .* is empty"):
        load_segmentation_datalist(path, "validation")
    with pytest.raises(ValueError, match="no 'test' list"):
        load_segmentation_datalist(path, "test")
    img4 = nib.Nifti1Image(np.zeros((16, 16, 8, 4), np.float32), np.eye(4))
    nib.save(img4, str(tmp_path / "img.nii.gz"))
    write_nifti(tmp_path / "lab.nii.gz", label, np.eye(4))
    with pytest.raises(ValueError, match="4 channel"):
        load_segmentation_datalist(path, num_channels=1)
    assert load_segmentation_datalist(path, num_channels=4)[0]["label"].endswith("lab.nii.gz")
    (tmp_path / "lab.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="label file"):
        load_segmentation_datalist(path)


def _item(image_shape=(1, 16, 16, 8), label_shape=(1, 16, 16, 8), foreground=True, label_affine=None):
    image = MetaTensor(torch.zeros(image_shape), affine=torch.eye(4), meta={"filename_or_obj": "case_7.nii.gz"})
    label = torch.zeros(label_shape)
    if foreground:
        label[..., 2:4, 2:4, 2:4] = 1
    label = MetaTensor(label, affine=torch.eye(4) if label_affine is None else label_affine, meta={"filename_or_obj": "case_7_seg.nii.gz"})
    return {"image": image, "label": label}


def test_transform_checks_name_the_case():
    check = CheckSegmentationCased(("image", "label"), num_channels=1, min_size=(16, 16, 8))
    assert check(_item())["image"].shape == (1, 16, 16, 8)
    with pytest.raises(ValueError, match="case_7.nii.gz: image has 4 channel"):
        check(_item(image_shape=(4, 16, 16, 8), label_shape=(1, 16, 16, 8)))
    with pytest.raises(ValueError, match="case_7_seg.nii.gz: label shape"):
        check(_item(label_shape=(1, 16, 16, 6)))
    moved = torch.eye(4)
    moved[2, 3] = 3.0
    with pytest.raises(ValueError, match="case_7_seg.nii.gz: label affine differs"):
        check(_item(label_affine=moved))
    with pytest.raises(ValueError, match="case_7_seg.nii.gz: the label has no foreground"):
        check(_item(foreground=False))
    with pytest.raises(ValueError, match=r"case_7.nii.gz: volume \(16, 16, 6\) is smaller than the crop"):
        check(_item(image_shape=(1, 16, 16, 6), label_shape=(1, 16, 16, 6)))
    assert CheckSegmentationCased(("image", "label"), min_size=None)(_item(image_shape=(1, 16, 16, 6), label_shape=(1, 16, 16, 6)))
    nan = _item()
    nan["image"][0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        check(nan)
    unlabelled = {"image": _item()["image"]}
    assert CheckSegmentationCased(("image", "label"), allow_missing_keys=True)(unlabelled)["image"] is unlabelled["image"]


def test_cli_writes_the_datalist(tmp_path, capsys):
    from monai_genesis.cli.segmentation_data import segmentation_datalist_command

    write_lits_layout(tmp_path / "lits", case_numbers=(1, 101), **SMALL)
    segmentation_datalist_command("lits", str(tmp_path / "lits"))
    assert "1 training, 1 validation, 0 test" in capsys.readouterr().out
    assert json.loads((tmp_path / "lits" / "datalist.json").read_text())["validation"][0]["image"] == "volume-101.nii"
    with pytest.raises(ValueError, match="labels_dir"):
        segmentation_datalist_command("pairs", str(tmp_path / "lits"))
    with pytest.raises(ValueError, match="layout must be"):
        segmentation_datalist_command("brats", str(tmp_path))
