"""phantoms/dicom.py: a synthetic CT written as a DICOM series reads back with its array and geometry."""

import numpy as np

from monai_genesis.data.io import load_volume
from monai_genesis.phantoms.dicom import write_dicom_series
from monai_genesis.phantoms.geometry import affine_from_geometry, lps_to_ras, rotation_deg


def test_dicom_series_round_trip_oblique(tmp_path):
    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 1000, size=(12, 10, 7)).astype(np.int16)
    affine = lps_to_ras(affine_from_geometry((0.7, 0.8, 2.5), (-120.0, 30.0, -300.0), rotation_deg(5, -3, 10)))
    paths = write_dicom_series(tmp_path / "series", hu, affine)
    assert len(paths) == 7
    volume = load_volume(tmp_path / "series")
    assert tuple(volume.shape) == hu.shape
    np.testing.assert_array_equal(volume.numpy(), hu)
    np.testing.assert_allclose(volume.affine.numpy(), affine, atol=1e-4)
