"""Synthetic CTPA, abdominal CT and brain MRI: anatomy, labels, contrasts, determinism, files."""

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from monai_genesis.phantoms.abdomen_ct import make_abdomen_ct
from monai_genesis.phantoms.brain_mri import BRATS_LABELS, MODALITIES, make_brain_mri
from monai_genesis.phantoms.ctpa import FALSE_POSITIVE_KINDS, make_ctpa
from monai_genesis.data.io import world_to_voxel
from monai_genesis.phantoms.writers import write_phantom_dataset

CT_SMALL = dict(shape=(96, 96, 48), spacing=(0.9, 0.9, 2.0))


@pytest.fixture(scope="module")
def ctpas():
    return [make_ctpa(**CT_SMALL, seed=seed, num_emboli=3, num_false_positives=8) for seed in range(3)]


@pytest.fixture(scope="module")
def abdomens():
    return [make_abdomen_ct(shape=(64, 64, 48), seed=seed, num_lesions=3) for seed in range(3)]


@pytest.fixture(scope="module")
def brains():
    return [make_brain_mri(shape=(64, 64, 48), spacing=(3.0, 3.0, 3.0), seed=seed) for seed in range(3)]


def test_ctpa_arteries_are_bright_and_emboli_are_filling_defects(ctpas):
    for ct in ctpas:
        image = ct.image.astype(float)
        assert ct.image.dtype == np.int16
        lumen = (ct.artery_mask > 0) & (ct.emboli_mask == 0)
        core = ndimage.binary_erosion(lumen)  # away from the partial-volume rim
        assert 200 < np.median(image[core]) < 450  # contrast-filled arteries, about 300 HU
        assert set(np.unique(ct.emboli_mask)) == {0, 1, 2, 3}
        assert np.all(ct.artery_mask[ct.emboli_mask > 0] == 1)  # emboli sit in the lumen
        for embolus in ct.emboli:
            values = image[ct.emboli_mask == embolus.label]
            assert np.median(values) < np.median(image[core]) - 100  # a defect, darker than contrast
            assert embolus.length_mm > 0 and embolus.diameter_mm > 0
        assert -900 < np.median(image[(ct.lung_mask > 0) & (ct.artery_mask == 0)]) < -700


def test_ctpa_candidates_label_emboli_and_look_alikes(ctpas):
    sources = set()
    for ct in ctpas:
        classes = [row["class"] for row in ct.candidates]
        assert classes.count(1) == len(ct.emboli) == 3 and classes.count(0) == 8
        sources |= set(ct.candidate_sources)
        world = np.array([[r["coordX"], r["coordY"], r["coordZ"]] for r in ct.candidates])
        voxels = np.rint(world_to_voxel(world, ct.affine_lps)).astype(int)
        for voxel, label, source in zip(voxels, classes, ct.candidate_sources):
            assert (source == "embolus") == (label == 1)
            if label == 1:
                assert ct.emboli_mask[tuple(voxel)] > 0
            else:
                assert ct.emboli_mask[tuple(voxel)] == 0
    assert sources == {"embolus", *FALSE_POSITIVE_KINDS}


def test_abdomen_liver_lesions_and_labels(abdomens):
    for ct in abdomens:
        image = ct.image.astype(float)
        assert set(np.unique(ct.liver_mask)) == {0, 1, 2}
        liver = image[ct.liver_mask == 1]
        assert 45 < np.median(liver) < 75  # about 60 HU
        assert (ct.liver_mask > 0).mean() > 0.05  # a large organ
        assert len(ct.lesions) == 3
        for lesion in ct.lesions:
            centre = tuple(int(round(c)) for c in lesion.centre_voxel)
            assert ct.liver_mask[centre] == 2
            assert 5.0 <= lesion.diameter_mm <= 40.0
        lesions = image[ct.liver_mask == 2]
        assert abs(np.median(lesions) - np.median(liver)) > 10  # visible against the liver
        outside = image[ct.liver_mask == 0]
        assert (outside < -900).mean() > 0.1 and ((outside > -150) & (outside < -50)).mean() > 0.05  # air, fat


def test_brain_labels_follow_brats_and_contrasts_make_sense(brains):
    for mri in brains:
        assert set(mri.images) == set(MODALITIES)
        assert set(np.unique(mri.label)) == set(BRATS_LABELS)
        assert all(im.dtype == np.float32 and im.shape == mri.label.shape for im in mri.images.values())
        t1, t1ce, t2, flair = (mri.images[m] for m in MODALITIES)
        enhancing, necrosis, oedema = mri.label == 4, mri.label == 1, mri.label == 2
        healthy = (mri.brain_mask > 0) & (mri.label == 0)
        assert np.median(t1ce[enhancing]) > 1.5 * np.median(t1[enhancing])  # gadolinium enhancement
        assert np.median(flair[oedema]) > 1.3 * np.median(flair[healthy])  # oedema bright on FLAIR
        assert np.median(t2[necrosis]) > np.median(t2[healthy])  # fluid-rich core bright on T2
        assert np.all(t1[mri.brain_mask == 0] == 0)  # skull-stripped like BraTS
        assert np.all(mri.brain_mask[mri.label > 0] == 1)


def test_brain_with_skull_has_signal_outside_the_brain():
    mri = make_brain_mri(shape=(48, 48, 40), spacing=(4.0, 4.0, 4.0), seed=1, skull_stripped=False)
    assert (mri.images["t1"][mri.brain_mask == 0] > 100).mean() > 0.05  # scalp fat


@pytest.mark.parametrize(
    "make, kwargs",
    [
        (make_ctpa, dict(CT_SMALL, num_emboli=2)),
        (make_abdomen_ct, dict(shape=(64, 64, 48), num_lesions=2)),
        (make_brain_mri, dict(shape=(48, 48, 40), spacing=(4.0, 4.0, 4.0))),
    ],
)
def test_same_seed_same_volume(make, kwargs):
    a, b, c = make(**kwargs, seed=4), make(**kwargs, seed=4), make(**kwargs, seed=5)
    first = a.images["flair"] if hasattr(a, "images") else a.image
    again = b.images["flair"] if hasattr(b, "images") else b.image
    other = c.images["flair"] if hasattr(c, "images") else c.image
    assert np.array_equal(first, again) and not np.array_equal(first, other)


@pytest.mark.parametrize(
    "make, kwargs, message",
    [
        (make_ctpa, dict(num_emboli=-1), "num_emboli"),
        (make_ctpa, dict(noise_hu=500), "noise_hu"),
        (make_ctpa, dict(shape=(20, 64, 64)), "shape"),
        (make_abdomen_ct, dict(num_lesions=1000), "num_lesions"),
        (make_abdomen_ct, dict(lesion_diameter_mm=(5, 500)), "lesion_diameter_mm"),
        (make_abdomen_ct, dict(spacing=(0, 1, 1)), "spacing"),
        (make_brain_mri, dict(noise=2.0), "noise"),
        (make_brain_mri, dict(seed="a"), "seed"),
        (make_brain_mri, dict(direction=np.diag([1.0, 2.0, 1.0])), "direction"),
        (make_ctpa, dict(shape=(40, 40, 40), num_emboli=3), "could place only"),  # arteries too thin
    ],
)
def test_bad_arguments_give_clear_errors(make, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


@pytest.mark.parametrize(
    "kind, shape, extra, label_values",
    [
        ("ctpa", (96, 96, 40), "arteries", None),
        ("abdomen-ct", (48, 48, 40), None, {0, 1, 2}),
        ("brain-mri", (40, 40, 32), None, {0, 1, 2, 4}),
    ],
)
def test_dataset_writers_produce_matching_images_and_labels(tmp_path, kind, shape, extra, label_values):
    paths = write_phantom_dataset(kind, tmp_path, num_cases=2, shape=shape, seed=1, formats="nii.gz")
    manifest = json.loads((tmp_path / "dataset.json").read_text())
    assert manifest["kind"] == kind and len(manifest["cases"]) == 2 and all(p.exists() for p in paths)
    for case in manifest["cases"]:
        label = nib.load(str(tmp_path / case["labels"]["nii.gz"]))
        images = case["images"] if kind != "brain-mri" else case["images"]["flair"]
        image = nib.load(str(tmp_path / images["nii.gz"]))
        assert image.shape == label.shape == shape
        assert np.allclose(image.affine, label.affine) and np.allclose(image.affine, case["affine"], atol=1e-5)
        if label_values:
            assert set(np.unique(np.asanyarray(label.dataobj))) == label_values
        if extra:
            assert (tmp_path / case[extra]["nii.gz"]).exists()
    if kind == "ctpa":
        assert (tmp_path / "candidates.csv").read_text().startswith("seriesuid,coordX,coordY,coordZ,class")
