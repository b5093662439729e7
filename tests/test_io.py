"""Reading NIfTI / MetaImage / DICOM volumes and world <-> voxel conversion (monai_genesis.data.io)."""

import os

import itk
import nibabel as nib
import numpy as np
import pytest
import torch

from monai_genesis.data.io import load_volume, voxel_to_world, world_to_voxel

# A rotated direction (x -> -y, y -> x) so that a transposed or sign-flipped conversion fails.
DIRECTION_LPS = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
SPACING = (0.7, 0.8, 2.5)
ORIGIN_LPS = (10.0, -20.0, 30.0)


def _volume_xyz(shape=(7, 5, 4), seed=0):
    return np.random.default_rng(seed).integers(-1000, 1000, size=shape).astype(np.int16)


def _write_mhd(path, array_xyz, direction=DIRECTION_LPS, spacing=SPACING, origin=ORIGIN_LPS):
    image = itk.image_from_array(np.ascontiguousarray(array_xyz.transpose(2, 1, 0)))  # ITK arrays are z, y, x
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(itk.matrix_from_array(np.asarray(direction, dtype=np.float64)))
    itk.imwrite(image, str(path))
    return image


def _itk_lps(image, continuous_index):
    index = itk.ContinuousIndex[itk.D, 3]()
    for axis, value in enumerate(continuous_index):
        index.SetElement(axis, float(value))
    return np.array(image.TransformContinuousIndexToPhysicalPoint(index))


def test_mhd_round_trip_keeps_values_and_geometry(tmp_path):
    array = _volume_xyz()
    image = _write_mhd(tmp_path / "scan.mhd", array)
    volume = load_volume(tmp_path / "scan.mhd")
    assert volume.shape == array.shape and volume.dtype == torch.float32
    np.testing.assert_array_equal(volume.numpy(), array)
    assert load_volume(tmp_path / "scan.mhd", dtype=None).dtype == torch.int16
    # Every corner voxel lands where ITK itself puts it (ITK reports LPS millimetres).
    for index in [(0, 0, 0), (6, 0, 0), (0, 4, 3), (6, 4, 3), (3, 2, 1)]:
        lps = np.array(image.TransformIndexToPhysicalPoint([int(i) for i in index]))
        np.testing.assert_allclose(voxel_to_world(index, volume, space="LPS"), lps, atol=1e-9)
        np.testing.assert_allclose(voxel_to_world(index, volume), lps * [-1, -1, 1], atol=1e-9)
        np.testing.assert_allclose(world_to_voxel(lps, volume, space="LPS"), index, atol=1e-9)


def test_world_to_voxel_for_luna16_style_candidates(tmp_path):
    # LUNA16 candidates.csv gives (coordX, coordY, coordZ) in ITK/LPS mm: a point 2.5 voxels along i.
    array = _volume_xyz()
    image = _write_mhd(tmp_path / "scan.mhd", array)
    volume = load_volume(tmp_path / "scan.mhd")
    candidates = np.array([_itk_lps(image, [2.5, 1.0, 3.0]), _itk_lps(image, [0.0, 4.0, 0.5])])
    indices = world_to_voxel(candidates, volume, space="LPS")
    np.testing.assert_allclose(indices, [[2.5, 1.0, 3.0], [0.0, 4.0, 0.5]], atol=1e-9)
    # Treating LPS coordinates as RAS gives a different (wrong) voxel: the space argument matters.
    assert not np.allclose(world_to_voxel(candidates, volume, space="RAS"), indices)


def test_nifti_round_trip_keeps_values_and_affine(tmp_path):
    array = _volume_xyz(seed=1)
    affine = np.array([[0.0, -0.8, 0.0, 12.0], [0.7, 0.0, 0.0, -3.0], [0.0, 0.0, 2.5, 40.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(array, affine), tmp_path / "scan.nii.gz")
    volume = load_volume(tmp_path / "scan.nii.gz")
    np.testing.assert_array_equal(volume.numpy(), array)
    np.testing.assert_allclose(volume.affine.numpy(), affine, atol=1e-6)
    ras = affine @ np.array([3, 2, 1, 1.0])
    np.testing.assert_allclose(voxel_to_world((3, 2, 1), volume), ras[:3], atol=1e-5)
    np.testing.assert_allclose(world_to_voxel(ras[:3], volume), (3, 2, 1), atol=1e-5)
    np.testing.assert_allclose(world_to_voxel(ras[:3] * [-1, -1, 1], volume, space="LPS"), (3, 2, 1), atol=1e-5)


def test_nifti_with_trailing_singleton_axis_loads_as_3d(tmp_path):
    array = _volume_xyz(seed=2)
    nib.save(nib.Nifti1Image(array[..., None], np.eye(4)), tmp_path / "scan.nii")
    assert tuple(load_volume(tmp_path / "scan.nii").shape) == array.shape


def test_dicom_series_folder(tmp_path):
    array = _volume_xyz((6, 5, 4), seed=3)
    image = itk.image_from_array(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing(SPACING)
    folder = tmp_path / "series"
    folder.mkdir()
    names = [str(folder / f"slice{k:03d}.dcm") for k in range(array.shape[2])]
    writer = itk.ImageSeriesWriter[itk.Image[itk.SS, 3], itk.Image[itk.SS, 2]].New(
        Input=image, ImageIO=itk.GDCMImageIO.New(), FileNames=names
    )
    writer.Update()
    volume = load_volume(folder)
    np.testing.assert_array_equal(volume.numpy(), array)
    np.testing.assert_allclose(np.abs(np.diag(volume.affine.numpy())[:2]), SPACING[:2], atol=1e-4)


def test_round_trip_of_many_points_with_rotated_affine():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    affine = np.eye(4)
    affine[:3, :3] = q * [0.7, 0.9, 2.0]
    affine[:3, 3] = [-100.0, 50.0, 7.0]
    indices = rng.uniform(0, 100, size=(20, 3))
    for space in ("RAS", "LPS"):
        world = voxel_to_world(indices, affine, space=space)
        assert world.shape == (20, 3)
        np.testing.assert_allclose(world_to_voxel(world, torch.as_tensor(affine), space=space), indices, atol=1e-9)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda d: d / "absent.nii.gz", FileNotFoundError, "absent.nii.gz"),
        (lambda d: (d / "scan.txt").write_text("x") and d / "scan.txt", ValueError, "unsupported file type"),
        (lambda d: (d / "broken.nii.gz").write_bytes(b"not a nifti") and d / "broken.nii.gz", ValueError,
         "could not read"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, make, error, words):
    path = make(tmp_path)
    with pytest.raises(error, match=words) as info:
        load_volume(path)
    assert os.path.basename(str(path)) in str(info.value)


def test_truncated_mhd_is_unreadable(tmp_path):
    header = "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_SHORT\nElementDataFile = LOCAL\n"
    (tmp_path / "short.mhd").write_bytes(header.encode() + b"xx")
    with pytest.raises(ValueError, match=r"short\.mhd: could not read the volume \(RuntimeError: ITK ERROR"):
        load_volume(tmp_path / "short.mhd")


def test_mhd_without_its_raw_file(tmp_path):
    _write_mhd(tmp_path / "scan.mhd", _volume_xyz())
    os.remove(tmp_path / "scan.raw")
    with pytest.raises(FileNotFoundError, match=r"scan\.mhd: its data file .*scan\.raw does not exist"):
        load_volume(tmp_path / "scan.mhd")


@pytest.mark.parametrize(
    "shape, words",
    [((8, 9), r"expected a 3D scalar volume, got a 2D image"), ((4, 4, 4, 3), r"a 4D volume .* channel=0\.\.2"),
     ((4, 4, 4, 2, 2), r"expected a 3D scalar volume, got an array")],
)
def test_not_3d_is_rejected(tmp_path, shape, words):
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), tmp_path / "odd.nii.gz")
    with pytest.raises(ValueError, match=r"odd\.nii\.gz: " + words):
        load_volume(tmp_path / "odd.nii.gz")


def test_a_4d_volume_loads_with_an_explicit_channel(tmp_path):
    array = np.random.default_rng(0).random((4, 5, 6, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / "multi.nii.gz")
    np.testing.assert_array_equal(load_volume(tmp_path / "multi.nii.gz", channel=2).numpy(), array[..., 2])
    with pytest.raises(ValueError, match="channel 3 does not exist"):
        load_volume(tmp_path / "multi.nii.gz", channel=3)


def test_nan_is_rejected(tmp_path):
    array = np.zeros((5, 5, 5), np.float32)
    array[1, 2, 3] = np.nan
    nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(ValueError, match=r"nan\.nii\.gz: the volume contains NaN"):
        load_volume(tmp_path / "nan.nii.gz")


def test_bad_conversion_arguments():
    with pytest.raises(ValueError, match="space"):
        world_to_voxel((0, 0, 0), np.eye(4), space="XYZ")
    with pytest.raises(ValueError, match="4x4"):
        voxel_to_world((0, 0, 0), np.eye(3))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        world_to_voxel([(0, 0)], np.eye(4))
