"""`genesis show-corruptions`: PNG gallery from the synthetic cube, a .npy cube or a CT volume."""

import subprocess
import sys

import fire
import nibabel as nib
import numpy as np
import pytest

from monai_genesis.cli.gallery import show_corruptions, synthetic_cube
from monai_genesis.cli.main import _commands

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 10_000


def test_synthetic_cube_is_a_normalised_genesis_cube():
    cube = synthetic_cube(3)
    assert cube.shape == (1, 64, 64, 32) and cube.dtype == np.float32
    assert cube.min() >= 0 and cube.max() <= 1 and cube.std() > 0.05
    np.testing.assert_array_equal(cube, synthetic_cube(3))


def test_gallery_of_the_synthetic_cube_through_the_cli(tmp_path, capsys):
    out = tmp_path / "sub" / "gallery.png"
    fire.Fire(_commands(), command=["show-corruptions", "--output", str(out), "--seed", "2"], name="genesis")
    assert _is_png(out)
    assert str(out) in capsys.readouterr().out


def test_gallery_of_a_npy_cube(tmp_path):
    cube = tmp_path / "cube.npy"
    np.save(cube, synthetic_cube(1)[0])
    out = tmp_path / "npy.png"
    show_corruptions(str(cube), output=str(out), key_slice=3)
    assert _is_png(out)


def test_gallery_of_a_ct_volume_is_windowed(tmp_path):
    hu = np.full((80, 70, 40), -800.0, np.float32)
    hu[20:50, 20:50, 10:30] = 400.0
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(hu, np.eye(4)), str(path))
    out = tmp_path / "ct.png"
    show_corruptions(str(path), output=str(out))
    assert _is_png(out)


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        show_corruptions(str(tmp_path / "missing.nii.gz"), output=str(tmp_path / "x.png"))
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="unsupported file"):
        show_corruptions(str(text), output=str(tmp_path / "x.png"))
    raw = tmp_path / "raw.npy"
    np.save(raw, np.full((64, 64, 32), 300.0, np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        show_corruptions(str(raw), output=str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="key_slice"):
        show_corruptions(output=str(tmp_path / "x.png"), key_slice=32)


def test_genesis_command_reports_bad_input_in_one_line(tmp_path):
    missing = tmp_path / "missing.nii.gz"
    run = subprocess.run(
        [sys.executable, "-m", "monai_genesis.cli.main", "show-corruptions", "--image", str(missing)],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2
    assert "genesis: error:" in run.stderr and str(missing) in run.stderr and "Traceback" not in run.stderr
