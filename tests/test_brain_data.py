"""BMS data: datalists from the BraTS and Decathlon Task01 layouts, the §5.1 split, checks, target transforms."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from monai_genesis.data.brain import (
    BratsRegionsToLabeld,
    BratsTargetd,
    SelectModalitiesd,
    brain_inference_data,
    brain_split,
    make_brain_datalist,
    modality_indices,
)
from monai_genesis.phantoms.brain_layouts import write_brats_folders, write_decathlon_task01

SHAPE, PATCH = (48, 48, 32), (32, 32, 16)


@pytest.fixture(scope="module")
def brats(tmp_path_factory):
    root = tmp_path_factory.mktemp("brats")
    write_brats_folders(root / "data", 9, shape=SHAPE, unlabelled=1)
    return root / "data"


@pytest.fixture(scope="module")
def task01(tmp_path_factory):
    root = tmp_path_factory.mktemp("task01") / "Task01_BrainTumour"
    write_decathlon_task01(root, 3, shape=SHAPE, num_test=1)
    return root


def _copy(src, tmp_path):
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_brats_datalist_follows_the_reference_split(brats, tmp_path):
    out = tmp_path / "datalist.json"
    datalist = make_brain_datalist(brats, out, patch_size=PATCH, progress=False)
    assert json.loads(out.read_text()) == datalist
    items = {i["case"]: (s, i) for s in ("training", "validation", "test") for i in datalist[s]}
    assert len(items) == 9 and len(datalist["unlabelled"]) == 1
    # folds drawn with seed 4 when no fold file is given (said in the file), fold 3 is the test set
    assert datalist["split"]["seed"] == 4 and datalist["split"]["folds"].startswith("drawn")
    assert {c for c, (s, i) in items.items() if s == "test"} == {c for c, (s, i) in items.items() if i["fold"] == 3}
    pool = sorted(c for c, (s, i) in items.items() if i["fold"] in (1, 2))
    expected_val = {pool[k] for k in np.random.default_rng(4).permutation(len(pool))[: round(len(pool) / 8)]}
    assert {c for c, (s, i) in items.items() if s == "validation"} == expected_val and len(expected_val) == 1
    case, (section, item) = next(iter(items.items()))
    assert item["image"] == [f"{case}/{case}_{m}.nii.gz" for m in ("flair", "t1", "t1ce", "t2")]
    assert item["label"] == f"{case}/{case}_seg.nii.gz"
    assert datalist["modalities"] == ["FLAIR", "T1w", "T1gd", "T2w"]

    # the split is never recomputed silently: same settings pass, another seed needs overwrite
    assert make_brain_datalist(brats, out, patch_size=PATCH, progress=False) == datalist
    with pytest.raises(ValueError, match="exists with another content"):
        make_brain_datalist(brats, out, seed=5, patch_size=PATCH, progress=False)
    assert make_brain_datalist(brats, out, seed=5, patch_size=PATCH, overwrite=True, progress=False)["split"]["seed"] == 5


def test_given_folds_are_used(brats, tmp_path):
    cases = sorted(p.name for p in brats.iterdir() if (p / f"{p.name}_seg.nii.gz").exists())
    folds = {c: 1 + k % 3 for k, c in enumerate(cases)}
    (tmp_path / "folds.csv").write_text("case,fold\n" + "".join(f"{c},{f}\n" for c, f in folds.items()))
    datalist = make_brain_datalist(brats, tmp_path / "d.json", folds=tmp_path / "folds.csv", patch_size=PATCH,
                                   progress=False)
    assert datalist["split"]["folds"] == "given: folds.csv"
    assert sorted(i["case"] for i in datalist["test"]) == [c for c, f in folds.items() if f == 3]
    assert all(folds[i["case"]] == i["fold"] for s in ("training", "validation") for i in datalist[s])
    with pytest.raises(ValueError, match="no fold for 1 case"):
        brain_split(cases, {c: f for c, f in folds.items() if c != cases[0]})
    with pytest.raises(ValueError, match="BraTS folds are 1, 2 and 3"):
        brain_split(cases, {c: 4 for c in cases})


def test_decathlon_labels_are_converted_to_brats_values(task01):
    datalist = make_brain_datalist(task01, patch_size=PATCH, progress=False)
    assert datalist["layout"] == "decathlon_task01" and datalist["source_labels"] == {"0": 0, "1": 2, "2": 1, "3": 4}
    assert datalist["unlabelled"] == [{"image": "imagesTs/BRATS_004.nii.gz"}]
    item = (datalist["training"] + datalist["validation"] + datalist["test"])[0]
    assert item["image"].startswith("imagesTr/") and item["label"].startswith("labels_brats/")
    source = np.asarray(nib.load(task01 / "labelsTr" / f"{item['case']}.nii.gz").dataobj)
    converted = nib.load(task01 / item["label"])
    assert np.allclose(converted.affine, nib.load(task01 / item["image"]).affine)
    expected = np.array([0, 2, 1, 4])[source]  # Decathlon 1 oedema, 2 non-enhancing, 3 enhancing
    np.testing.assert_array_equal(np.asarray(converted.dataobj), expected)
    assert set(np.unique(expected)) == {0, 1, 2, 4}


def _rewrite(path, array=None, affine=None):
    image = nib.load(path)
    array = np.asarray(image.dataobj) if array is None else array
    nib.save(nib.Nifti1Image(array, image.affine if affine is None else affine), path)
    return path


def test_bad_cases_fail_naming_the_case(brats, task01, tmp_path):
    data = _copy(brats, tmp_path)
    case = sorted(p.name for p in data.iterdir())[0]
    seg = data / case / f"{case}_seg.nii.gz"
    original, affine = np.asarray(nib.load(seg).dataobj), nib.load(seg).affine

    def fails(match, **kwargs):
        with pytest.raises(ValueError, match=match) as info:
            make_brain_datalist(data, tmp_path / "d.json", patch_size=kwargs.pop("patch_size", PATCH), progress=False)
        assert case in str(info.value) or "case" in match

    _rewrite(seg, original[:-1], affine)
    fails("label .* has shape")
    _rewrite(seg, original, affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    fails("another affine")
    _rewrite(seg, np.zeros_like(original), affine)
    fails("is empty")
    _rewrite(seg, np.where(original == 4, 3, original).astype(np.uint8), affine)
    fails(r"holds values \[3\]")
    shutil.copy(brats / case / f"{case}_seg.nii.gz", seg)
    fails("smaller than the training patch", patch_size=(64, 64, 32))
    (data / case / f"{case}_t1ce.nii.gz").unlink()
    fails("no file for \\['T1gd'\\]")

    decathlon = _copy(task01, tmp_path)
    image = decathlon / "imagesTr" / "BRATS_001.nii.gz"
    _rewrite(image, np.asarray(nib.load(image).dataobj)[..., :3])
    with pytest.raises(ValueError, match="'BRATS_001'.*expected a 4D volume with 4 channels"):
        make_brain_datalist(decathlon, patch_size=PATCH, progress=False, overwrite=True)


def test_modalities_and_targets(brats, task01):
    assert modality_indices(["flair"]) == [0] and modality_indices(["FLAIR", "T1w", "T1gd", "T2w"]) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="unknown MRI modality"):
        modality_indices(["T3"])
    case = sorted(p for p in brats.iterdir() if p.is_dir())[0]
    files = [str(case / f"{case.name}_{m}.nii.gz") for m in ("flair", "t1", "t1ce", "t2")]
    load = Compose([LoadImaged(["image", "label"], image_only=True), EnsureChannelFirstd(["image", "label"])])
    data = load({"image": files, "label": str(case / f"{case.name}_seg.nii.gz")})
    flair = SelectModalitiesd("image", ["FLAIR"])(data)["image"]
    np.testing.assert_array_equal(flair[0].numpy(), np.asarray(nib.load(files[0]).dataobj))
    assert SelectModalitiesd("image", ["T2w", "FLAIR"])(data)["image"].shape[0] == 2
    with pytest.raises(ValueError, match="expected 4 MRI channels"):
        SelectModalitiesd("image", ["FLAIR", "T1w"])({"image": data["image"][:2]})

    label = data["label"]
    whole = BratsTargetd("label")(data)["label"]
    assert whole.shape == label.shape and torch.equal(whole > 0, label > 0)
    regions = BratsTargetd("label", target="subregions")(data)["label"]
    assert regions.shape[0] == 3
    assert torch.equal(regions[0] > 0, (label[0] == 1) | (label[0] == 4))  # tumour core
    assert torch.equal(regions[2] > 0, label[0] == 4)  # enhancing tumour
    assert torch.equal(BratsRegionsToLabeld("pred")({"pred": regions})["pred"], label.to(torch.uint8))
    with pytest.raises(ValueError, match=r"label values \[3\] are not BraTS labels"):
        BratsTargetd("label")({"label": MetaTensor(torch.full((1, 4, 4, 4), 3.0), meta={"filename_or_obj": "x.nii"})})
    with pytest.raises(ValueError, match="target must be one of"):
        BratsTargetd("label", target="core")

    found = brain_inference_data(brats)
    assert len(found) == 10 and all(isinstance(i["image"], list) and len(i["image"]) == 4 for i in found)
    assert [i["image"].endswith("BRATS_004.nii.gz") for i in brain_inference_data(task01 / "imagesTs")] == [True]


def test_cli_reports_bad_input_in_one_line(brats, tmp_path, capsys, monkeypatch):
    from monai_genesis.cli.main import main

    monkeypatch.setattr("sys.argv", ["genesis", "brain-datalist", str(brats), "--output_json", str(tmp_path / "d.json"),
                                     "--patch_size", "32,32,16", "--progress", "False"])
    main()
    assert "brats: 5 training, 1 validation, 3 test, 1 unlabelled" in capsys.readouterr().out
    monkeypatch.setattr("sys.argv", ["genesis", "brain-datalist", str(brats), "--output_json", str(tmp_path / "d.json"),
                                     "--patch_size", "32,32,16", "--seed", "1", "--progress", "False"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and "exists with another content" in capsys.readouterr().err


def test_segmentation_datalist_reads_modality_lists(brats, tmp_path):
    from monai_genesis.data.segmentation import load_segmentation_datalist

    data = _copy(brats, tmp_path)
    make_brain_datalist(data, patch_size=PATCH, progress=False)
    items = load_segmentation_datalist(data / "datalist.json", "training", base_dir=data, num_channels=4)
    assert all(len(i["image"]) == 4 for i in items)
    case = items[0]["image"][2]
    _rewrite(case, np.asarray(nib.load(case).dataobj)[:-2], nib.load(case).affine)
    with pytest.raises(ValueError, match="_t1ce.nii.gz .* is not on the grid of"):
        load_segmentation_datalist(data / "datalist.json", "training", base_dir=data, num_channels=4)
