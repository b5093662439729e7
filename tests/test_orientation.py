"""Any storage order works: volumes are read in RAS (axial axis last) and outputs go back in the input's geometry.

The same voxels are written stored RAS, LAS, LPS, LSA and oblique (nibabel reorders the array and the
affine together), then read by the one loader, prepare-cubes, the gallery and the bundle's inference.
"""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from nibabel.orientations import axcodes2ornt, ornt_transform

from monai_genesis.cli.gallery import _crop_centre, _load, lung_centre
from monai_genesis.data.io import load_volume, voxel_to_world, world_to_voxel
from monai_genesis.data.prepare_cubes import prepare_cubes

CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / "genesis_pretrain" / "configs"
RAS_AFFINE = np.array([[0.7, 0, 0, -10.0], [0, 0.8, 0, 20.0], [0, 0, 2.5, -150.0], [0, 0, 0, 1]])
ORIENTATIONS = ["RAS", "LAS", "LPS", "LSA", "oblique", "oblique LSA"]


def _rotation(degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])


def stored(array: np.ndarray, orientation: str, affine=RAS_AFFINE) -> nib.Nifti1Image:
    """The RAS ``array`` as a file stored in ``orientation`` (the same voxels at the same places,
    rotated by 12 degrees about z for the oblique ones)."""
    image = nib.Nifti1Image(array, affine)
    codes = orientation.split()[-1] if orientation != "oblique" else "RAS"
    image = image.as_reoriented(ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(tuple(codes))))
    if orientation.startswith("oblique"):
        image = nib.Nifti1Image(np.asarray(image.dataobj), _rotation(12) @ image.affine)
    return image


def _save(image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


def _ras_volume(shape=(12, 10, 8), seed=0):
    return np.random.default_rng(seed).integers(-1000, 1000, shape).astype(np.int16)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_every_storage_order_reads_as_the_same_ras_volume(tmp_path, orientation):
    array = _ras_volume()
    image = stored(array, orientation)
    path = _save(image, tmp_path / "scan.nii.gz")
    if orientation not in ("RAS", "oblique"):
        assert np.asarray(image.dataobj).shape != array.shape or not np.array_equal(np.asarray(image.dataobj), array)
    volume = load_volume(path, dtype=None, orientation="RAS")
    np.testing.assert_array_equal(volume.numpy(), array)
    assert nib.aff2axcodes(volume.affine.numpy()) == ("R", "A", "S")  # the axial axis is the last one
    # a voxel is where the file puts it: world positions are unchanged by the reorientation
    expected = (_rotation(12) if orientation.startswith("oblique") else np.eye(4)) @ RAS_AFFINE
    np.testing.assert_allclose(voxel_to_world([3, 4, 5], volume), (expected @ [3, 4, 5, 1])[:3], atol=1e-4)
    np.testing.assert_allclose(volume.meta["original_affine"], image.affine, atol=1e-6)


def _lung_box(shape=(30, 30, 12), seed=0):
    rng = np.random.default_rng(seed)
    volume = np.full(shape, 40, np.int16)
    volume[2:-2, 2:-2, 1:-1] = -850
    volume[rng.random(shape) < 0.02] = 40
    return volume


def test_prepare_cubes_cuts_the_same_cubes_from_an_lsa_file(tmp_path):
    """Stored LSA, the axial axis is axis 1: read as stored, the margins would not fit ("too small")."""
    options = dict(scale=3, cube_size=(8, 8, 4), margins=(6, 6, 2), progress=False, val_fraction=0.0,
                   test_fraction=0.0, allow_empty_validation=True)
    for orientation in ("RAS", "LSA"):
        for i in range(2):
            _save(stored(_lung_box(seed=i), orientation), tmp_path / orientation / f"case{i}.nii.gz")
        assert np.asarray(nib.load(tmp_path / orientation / "case0.nii.gz").dataobj).shape == (
            (30, 30, 12) if orientation == "RAS" else (30, 12, 30))
        summary = prepare_cubes(tmp_path / orientation, tmp_path / f"out_{orientation}", **options)
        assert summary["skipped"] == [] and summary["cubes"]["training"] > 0
    for i in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / "out_LSA" / "cubes" / f"case{i}.npy"),
                                      np.load(tmp_path / "out_RAS" / "cubes" / f"case{i}.npy"))
    assert json.loads((tmp_path / "out_LSA" / "prepare_config.json").read_text())["orientation"] == "RAS"


@pytest.mark.parametrize("orientation", ["LSA", "LPS", "oblique LSA"])
def test_gallery_panels_are_axial_whatever_the_storage_order(tmp_path, orientation):
    mri = np.random.default_rng(1).random((40, 44, 20)).astype(np.float32) * 800  # an MRI: min-max scaled
    ras, _ = _load(str(_save(stored(mri, "RAS"), tmp_path / "ras.nii.gz")), None)
    other, where = _load(str(_save(stored(mri, orientation), tmp_path / "other.nii.gz")), None)
    np.testing.assert_allclose(other, ras, atol=1e-6)
    assert ras.shape == (1, 64, 64, 32) and "voxel (20, 22, 10) RAS" in where


def test_center_in_stored_voxels_or_world_mm(tmp_path):
    array = _ras_volume((30, 40, 20))
    path = _save(stored(array, "LSA"), tmp_path / "lsa.nii.gz")
    volume = load_volume(path, orientation="RAS")
    ras_voxel = np.array([7, 25, 4])
    stored_voxel = np.rint(world_to_voxel(voxel_to_world(ras_voxel, volume), volume.meta["original_affine"]))
    assert tuple(stored_voxel) != tuple(ras_voxel)
    assert _crop_centre(volume, tuple(int(v) for v in stored_voxel), None) == (tuple(ras_voxel), "--center")
    mm = ",".join(f"{v:.3f}" for v in voxel_to_world(ras_voxel, volume)) + "mm"
    assert _crop_centre(volume, mm, None) == (tuple(ras_voxel), "--center")


def test_default_crop_of_a_chest_ct_is_inside_the_lungs(tmp_path):
    from monai_genesis.phantoms.chest_ct import make_chest_ct

    ct = make_chest_ct(shape=(64, 64, 40), seed=3, num_nodules=1, num_false_positives=0)
    path = _save(stored(ct.image, "LSA", affine=ct.affine), tmp_path / "chest_lsa.nii.gz")
    volume = load_volume(path, orientation="RAS")
    centre, where = _crop_centre(volume, None, (-1000, 1000))
    assert where == "inside the lung mask" and ct.lung_mask[32, 32, 20] == 0  # the middle: mediastinum
    index = np.rint(world_to_voxel(voxel_to_world(centre, volume), ct.affine)).astype(int)
    assert ct.lung_mask[tuple(index)] == 1
    assert lung_centre(np.full((40, 40, 20), 40.0)) is None  # no lungs (a head, an abdomen): the middle


def test_inference_writes_back_in_the_input_geometry_with_settings_from_the_checkpoint(tmp_path):
    from monai.bundle import ConfigWorkflow

    from monai_genesis.networks import UNet3D

    torch.manual_seed(0)
    models = tmp_path / "bundle" / "models"
    models.mkdir(parents=True)
    settings = {"network_width": 0.125, "cube_size": [16, 16, 16], "in_channels": 1, "out_channels": 1}
    torch.save({"model": UNet3D(width=0.125).state_dict(), "epoch": 1, "iteration": 1, "settings": settings},
               models / "model.pt")
    volume = _ras_volume((20, 24, 16), seed=2)
    restored = {}
    for orientation in ("RAS", "LSA"):
        _save(stored(volume, orientation), tmp_path / orientation / "case.nii.gz")
        wf = ConfigWorkflow(config_file=str(CONFIGS / "inference.json"), meta_file=str(CONFIGS / "metadata.json"),
                            logging_file=False, workflow_type="infer", bundle_root=str(tmp_path / "bundle"),
                            device="cpu", dataset_dir=str(tmp_path / orientation),
                            output_dir=str(tmp_path / f"out_{orientation}"))  # no network overrides
        wf.initialize()
        assert wf.parser.get_parsed_content("network_settings") == settings
        wf.run()
        written = nib.load(tmp_path / f"out_{orientation}" / "case_restored.nii.gz")
        source = nib.load(tmp_path / orientation / "case.nii.gz")
        assert written.shape == source.shape
        np.testing.assert_allclose(written.affine, source.affine, atol=1e-5)
        restored[orientation] = written
    back = stored(np.asarray(restored["RAS"].dataobj), "LSA")
    np.testing.assert_allclose(np.asarray(restored["LSA"].dataobj), np.asarray(back.dataobj), atol=1e-5)
