"""Every expected failure of the `genesis` command ends in one line and exit code 2 (130 for Ctrl-C).

Each case runs the real entry point (`monai_genesis.cli.main.main`, with sys.argv set) in-process and
checks the exit code and the last line printed on stderr, and that no traceback is printed.
"""

import importlib
import io
import json
import os
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_genesis.cli import main as cli_main
from monai_genesis.networks import UNet3D

prepare_module = importlib.import_module("monai_genesis.data.prepare_cubes")
SMALL = ["--scale", "2", "--margins", "2,2,2", "--cube_size", "8,8,4", "--progress", "False"]


def genesis(monkeypatch, capsys, *args):
    """Run `genesis ARGS`; return (exit code, stderr lines)."""
    monkeypatch.setattr(sys, "argv", ["genesis", *map(str, args)])
    monkeypatch.delenv("GENESIS_DEBUG", raising=False)
    code = 0
    try:
        cli_main.main()
    except SystemExit as exit_:
        code = exit_.code or 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line.strip()]


def _nifti(path, array, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([0.7, 0.7, 2.5, 1.0]) if affine is None else affine), path)
    return path


def _ct(shape=(24, 24, 20), seed=0):
    rng = np.random.default_rng(seed)
    volume = np.full(shape, 40, np.int16)
    volume[3:-3, 3:-3, 2:-2] = -850
    volume[rng.random(shape) < 0.02] = 40
    return volume


# --- show-corruptions ------------------------------------------------------------------------------


def _damaged(kind, folder):
    path = folder / f"{kind}.nii.gz"
    if kind == "truncated":
        _nifti(path, np.random.default_rng(0).random((30, 30, 30)).astype(np.float32))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(np.random.default_rng(1).bytes(4000))
    return path


@pytest.mark.parametrize(
    "kind, words",
    [("truncated", "could not read the volume (EOFError"), ("empty", "the file is empty (0 bytes)"),
     ("random", "could not read the volume (ImageFileError")],
)
def test_damaged_nifti_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys, kind, words):
    path = _damaged(kind, tmp_path)
    code, lines = genesis(monkeypatch, capsys, "show-corruptions", "--image", path, "--output", tmp_path / "g.png")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"genesis: error: {path}: ") and words in lines[0]


@pytest.mark.parametrize(
    "shape, words",
    [((20, 20, 12, 3), "a 4D volume of shape (20, 20, 12, 3) (3 channels or time points); choose one with "
      "channel=0..2 (--channel on the command line)"),
     ((20, 20), "expected a 3D scalar volume, got a 2D image of shape (20, 20)")],
)
def test_wrong_dimensions(tmp_path, monkeypatch, capsys, shape, words):
    path = _nifti(tmp_path / "odd.nii.gz", np.zeros(shape, np.float32))
    code, lines = genesis(monkeypatch, capsys, "show-corruptions", "--image", path)
    assert code == 2 and lines == [f"genesis: error: {path}: {words}."]


def test_nan_voxels_name_the_file(tmp_path, monkeypatch, capsys):
    array = np.zeros((20, 20, 12), np.float32)
    array[3, 4, 5] = np.nan
    path = _nifti(tmp_path / "nan.nii.gz", array)
    code, lines = genesis(monkeypatch, capsys, "show-corruptions", "--image", path)
    assert code == 2 and lines == [f"genesis: error: {path}: the volume contains NaN or infinite values (1 voxels)."]


def test_inverted_window_and_bad_center_are_refused(tmp_path, monkeypatch, capsys):
    path = _nifti(tmp_path / "ct.nii.gz", _ct())
    code, lines = genesis(monkeypatch, capsys, "show-corruptions", "--image", path, "--window", "1000,-1000")
    assert code == 2 and lines == ["genesis: error: --window: low must be below high, got 1000,-1000 (did you mean -1000,1000?)."]
    code, lines = genesis(monkeypatch, capsys, "show-corruptions", "--image", path, "--center", "5,6,99")
    assert code == 2 and lines == ["genesis: error: --center 5,6,99: outside the volume (voxels; the volume is (24, 24, 20) voxels)."]
    code, lines = genesis(monkeypatch, capsys, "show-corruptions", "--image", path, "--center", "1,2")
    assert code == 2 and lines[0].startswith("genesis: error: --center: expected x,y,z voxel indices or x,y,z mm")


def test_missing_image(tmp_path, monkeypatch, capsys):
    code, lines = genesis(monkeypatch, capsys, "show-corruptions", "--image", tmp_path / "absent.nii.gz")
    assert code == 2 and lines == [f"genesis: error: {tmp_path / 'absent.nii.gz'}: no such file or folder."]


def test_a_dicom_series_folder_is_read_as_one_volume(tmp_path, monkeypatch, capsys):
    from monai_genesis.phantoms.dicom import write_dicom_series

    hu = _ct((40, 36, 20)).astype(np.float32) - 100
    write_dicom_series(tmp_path / "series", hu, np.diag([-0.8, -0.8, 2.0, 1.0]))
    out = tmp_path / "dicom.png"
    code, lines = genesis(monkeypatch, capsys, "show-corruptions", "--image", tmp_path / "series", "--output", out)
    assert code == 0 and out.stat().st_size > 10_000 and lines == []


# --- convert-weights --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_state():
    torch.manual_seed(0)
    return UNet3D(width=0.125).state_dict()


def test_convert_weights_onto_an_existing_file(tmp_path, monkeypatch, capsys, tiny_state):
    src, dst = tmp_path / "genesis.pt", tmp_path / "model.pt"
    torch.save(tiny_state, src)
    dst.write_bytes(b"keep me")
    code, lines = genesis(monkeypatch, capsys, "convert-weights", src, dst)
    assert code == 2 and lines == [f"genesis: error: {dst}: exists; pass --overwrite to replace it."]
    assert dst.read_bytes() == b"keep me"


class _Payload:
    pass


@pytest.mark.parametrize("kind", ["random", "truncated", "pickled_object"])
def test_convert_weights_of_an_unreadable_file_never_advises_weights_only_false(
        tmp_path, monkeypatch, capsys, tiny_state, kind):
    src = tmp_path / f"{kind}.pt"
    if kind == "random":
        src.write_bytes(np.random.default_rng(0).bytes(3000))
    elif kind == "truncated":
        torch.save(tiny_state, src)
        src.write_bytes(src.read_bytes()[:5000])
    else:
        torch.save({"state_dict": tiny_state, "extra": _Payload()}, src)
    code, lines = genesis(monkeypatch, capsys, "convert-weights", src, tmp_path / "out.pt")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"genesis: error: could not read weights from '{src}': ")
    assert "weights_only=False" not in lines[0] and "weights_only` set to `False" not in lines[0]
    expected = {"random": "not a PyTorch checkpoint", "truncated": "truncated",
                "pickled_object": "holds a Python object (test_cli_errors._Payload)"}[kind]
    assert expected in lines[0]


def test_convert_weights_of_a_unet_without_its_output_layer(tmp_path, monkeypatch, capsys, tiny_state):
    src = tmp_path / "partial.pt"
    torch.save({k: v for k, v in tiny_state.items() if not k.startswith("out_tr.")}, src)
    code, lines = genesis(monkeypatch, capsys, "convert-weights", src, tmp_path / "out.pt")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"genesis: error: {src}: a U-Net checkpoint without its output layer")
    assert "Encoder" not in lines[0] and "part=" not in lines[0] and "the given dict" not in lines[0]


def test_convert_weights_of_inconsistent_tensors_names_the_file(tmp_path, monkeypatch, capsys, tiny_state):
    src = tmp_path / "odd.pt"
    state = dict(tiny_state)
    state["up_tr64.ops.1.conv1.weight"] = torch.zeros(4, 4, 3, 3, 1)
    torch.save(state, src)
    code, lines = genesis(monkeypatch, capsys, "convert-weights", src, tmp_path / "out.pt")
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"genesis: error: {src}: its tensors do not form")
    assert "shape-mismatched keys (1): ['up_tr64.ops.1.conv1.weight (checkpoint [4, 4, 3, 3, 1]" in lines[0]
    assert "the given dict" not in lines[0] and "part=" not in lines[0]


# --- prepare-cubes ----------------------------------------------------------------------------------


def test_prepare_cubes_into_a_file(tmp_path, monkeypatch, capsys):
    _nifti(tmp_path / "in" / "a.nii.gz", _ct())
    (tmp_path / "out").write_text("a file")
    code, lines = genesis(monkeypatch, capsys, "prepare-cubes", tmp_path / "in", tmp_path / "out", *SMALL)
    assert code == 2 and lines == [f"genesis: error: {tmp_path / 'out'}: output_dir is a file."]


def test_a_skipped_label_map_takes_no_split_slot(tmp_path, monkeypatch, capsys):
    inputs = tmp_path / "in"
    for i in range(4):
        _nifti(inputs / f"ct{i}.nii.gz", _ct(seed=i))
    labels = np.zeros((24, 24, 20), np.uint8)
    labels[5:15, 5:15, 4:12] = 1
    _nifti(inputs / "ct0_seg.nii.gz", labels)
    code, lines = genesis(monkeypatch, capsys, "prepare-cubes", inputs, tmp_path / "out", *SMALL,
                          "--val_fraction", "0.25", "--test_fraction", "0.25")
    assert code == 0 and lines == ["skipped ct0_seg: a label map, not a CT in HU (values [0, 1])"]
    split = json.loads((tmp_path / "out" / "split.json").read_text())
    assert sorted(split) == ["ct0", "ct1", "ct2", "ct3"]  # drawn among the volumes that gave cubes
    assert sorted(split.values()) == ["test", "training", "training", "validation"]


def test_one_volume_gives_no_validation_split_unless_allowed(tmp_path, monkeypatch, capsys):
    inputs = tmp_path / "in"
    _nifti(inputs / "ct.nii.gz", _ct())
    out = tmp_path / "out"
    code, lines = genesis(monkeypatch, capsys, "prepare-cubes", inputs, out, *SMALL)
    assert code == 2 and lines == [
        f"genesis: error: {out}: no validation cubes (1 volume(s) gave cubes); the pretraining bundle validates "
        "every epoch: add volumes or raise --val_fraction, or pass --allow_empty_validation to keep the run "
        "without validation."]
    code, lines = genesis(monkeypatch, capsys, "prepare-cubes", inputs, out, *SMALL, "--allow_empty_validation")
    assert code == 0 and lines == [
        f"genesis: warning: {out}: no validation cubes (1 volume(s) gave cubes); the pretraining bundle "
        "validates every epoch; kept (allow_empty_validation)."]
    assert json.loads((out / "datalist.json").read_text())["numTraining"] > 0


def test_every_volume_skipped_fails(tmp_path, monkeypatch, capsys):
    inputs = tmp_path / "in"
    _nifti(inputs / "thin.nii.gz", _ct(shape=(24, 24, 8)))
    (inputs / "broken.nii.gz").write_bytes(b"not a volume")
    out = tmp_path / "out"
    code, lines = genesis(monkeypatch, capsys, "prepare-cubes", inputs, out, *SMALL)
    assert code == 2 and len(lines) == 3
    assert lines[0].startswith("skipped broken: unreadable: ") and lines[1].startswith("skipped thin: too few slices")
    assert lines[2] == (f"genesis: error: {out}: no training cubes were written (all 2 volumes were skipped; "
                        f"see {out}/summary.json).")


def test_air_cubes_are_flagged(tmp_path, monkeypatch, capsys):
    """A head in air: with low margins the lung filter accepts crops of the air around it."""
    head = np.full((30, 30, 20), -1000, np.int16)
    head[10:20, 10:20, 5:15] = 40
    inputs = tmp_path / "in"
    for i in range(3):
        _nifti(inputs / f"head{i}.nii.gz", head)
    code, lines = genesis(monkeypatch, capsys, "prepare-cubes", inputs, tmp_path / "out", "--scale", "2",
                          "--margins", "0,0,0", "--cube_size", "8,8,4", "--progress", "False")
    assert code == 0 and len(lines) == 3
    assert all(line.startswith(f"warning head{i}: ") and "are air (<= -950 HU), not lung" in line
               for i, line in enumerate(lines))
    assert set(json.loads((tmp_path / "out" / "summary.json").read_text())["warnings"]) == {"head0", "head1", "head2"}


def test_ctrl_c_exits_130_saying_what_was_kept(tmp_path, monkeypatch, capsys):
    inputs = tmp_path / "in"
    for i in range(3):
        _nifti(inputs / f"ct{i}.nii.gz", _ct(seed=i))
    real, calls = prepare_module.extract_cubes, []

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare_module, "extract_cubes", interrupt_second)
    out = tmp_path / "out"
    code, lines = genesis(monkeypatch, capsys, "prepare-cubes", inputs, out, *SMALL)
    assert code == 130 and lines == [
        f"genesis: interrupted: the finished volumes' shards are kept in {out}/cubes; run the same command again to resume."]
    assert os.listdir(out / "cubes") == ["ct0.npy"]


def test_demo_with_too_few_volumes(monkeypatch, capsys):
    code, lines = genesis(monkeypatch, capsys, "demo", "--num_cases", "2")
    assert code == 2 and lines == [
        "genesis: error: --num_cases: the demo needs at least 3 volumes (training, validation, test), got 2."]
    code, lines = genesis(monkeypatch, capsys, "demo", "--overrides", "val_interval")
    assert code == 2 and lines == [
        "genesis: error: --overrides must be a JSON object of bundle settings, got 'val_interval'."]


def test_genesis_debug_keeps_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["genesis", "show-corruptions", "--image", str(tmp_path / "absent.nii.gz")])
    monkeypatch.setenv("GENESIS_DEBUG", "1")
    with pytest.raises(FileNotFoundError, match="absent.nii.gz: no such file"):
        cli_main.main()


def test_an_mri_under_the_ct_window_is_flagged(tmp_path):
    from monai_genesis.data.io import InputWarning, check_window

    mri = np.random.default_rng(0).random((20, 20, 10)).astype(np.float32)  # normalised MRI, 0..1
    with pytest.warns(InputWarning, match="under 5% of the window"):
        assert "flat grey" in check_window(mri, (-1000, 1000), name="t1.nii.gz")
    assert check_window(_ct(), (-1000, 1000)) is None
    head_air = np.full((20, 20, 10), -1000.0)
    with pytest.warns(InputWarning, match="100% of the voxels lie outside the window"):
        check_window(head_air, (-900, 1000))


def test_the_warning_is_one_genesis_line(monkeypatch, capsys):
    from monai_genesis.data.io import check_window

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    import warnings

    monkeypatch.setattr(warnings, "showwarning", cli_main._show_input_warning)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = cli_main._show_input_warning
        check_window(np.zeros((4, 4, 4)) + 0.5, (-1000, 1000), name="mri.nii.gz")
    assert sys.stderr.getvalue().startswith("genesis: warning: mri.nii.gz: the values span 0")
