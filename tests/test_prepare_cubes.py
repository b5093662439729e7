"""`genesis prepare-cubes`: shards, split, datalist, skip reasons, resume (monai_genesis.data.prepare_cubes)."""

import importlib
import json
import os

import fire
import itk
import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from monai_genesis.cli.data_commands import prepare_cubes_command
from monai_genesis.data.cube_loading import LoadCubed
from monai_genesis.data.prepare_cubes import prepare_cubes

# The package exports the function prepare_cubes, which hides the module of the same name.
prepare_module = importlib.import_module("monai_genesis.data.prepare_cubes")
SMALL = dict(scale=3, cube_size=(8, 8, 4), margins=(2, 2, 2), progress=False)


def _ct(shape=(24, 24, 20), seed=0, lung=True):
    """+40 HU body around a -850 HU lung box, with a few tissue specks."""
    rng = np.random.default_rng(seed)
    volume = np.full(shape, 40, np.int16)
    if lung:
        volume[3:-3, 3:-3, 2:-2] = -850
        volume[rng.random(shape) < 0.02] = 40
    return volume


def _nifti(path, volume):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume, np.diag([0.7, 0.7, 2.5, 1.0])), path)


def _mhd(path, volume):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = itk.image_from_array(np.ascontiguousarray(volume.transpose(2, 1, 0)))
    image.SetDirection(itk.matrix_from_array(np.array([[0.0, 1, 0], [-1, 0, 0], [0, 0, 1]])))
    image.SetOrigin((5.0, -7.0, 100.0))
    itk.imwrite(image, str(path))


def _folder(root, n=3):
    for i in range(n):
        _nifti(root / f"case{i}.nii.gz", _ct(seed=i))
    return root


def _shards(output_dir):
    cubes_dir = output_dir / "cubes"
    return {name: np.load(cubes_dir / name) for name in sorted(os.listdir(cubes_dir))}


def test_folder_gives_float16_shards_split_and_a_loadable_datalist(tmp_path):
    inputs = _folder(tmp_path / "in")
    _mhd(tmp_path / "in" / "nested" / "scan_mhd.mhd", _ct(seed=9))
    out = tmp_path / "out"
    summary = prepare_cubes(inputs, out, **SMALL)

    shards = {name: np.load(out / "cubes" / name, mmap_mode="r") for name in os.listdir(out / "cubes")}
    assert sorted(shards) == ["case0.npy", "case1.npy", "case2.npy", "scan_mhd.npy"]
    for cubes in shards.values():
        assert isinstance(cubes, np.memmap) and cubes.dtype == np.float16
        assert cubes.shape[1:] == (8, 8, 4) and 1 <= cubes.shape[0] <= 3
        assert 0.0 <= float(cubes.min()) and float(cubes.max()) <= 1.0

    split = json.loads((out / "split.json").read_text())
    assert set(split) == {"case0", "case1", "case2", "scan_mhd"}
    datalist = json.loads((out / "datalist.json").read_text())
    assert datalist["cube_size"] == [8, 8, 4] and datalist["dtype"] == "float16"
    total = 0
    for section in ("training", "validation", "test"):
        for item in datalist[section]:
            assert split[item["case_id"]] == section
        total += len(datalist[section])
    assert total == sum(c.shape[0] for c in shards.values()) == sum(summary["cubes"].values())
    assert summary["processed_now"] == 4 and summary["reused"] == 0 and summary["skipped"] == []
    assert json.loads((out / "summary.json").read_text()) == summary

    items = load_decathlon_datalist(out / "datalist.json", data_list_key="training")
    loaded = LoadCubed(keys="image", cube_size=(8, 8, 4))(items[-1])["image"]
    expected = shards[f"{items[-1]['case_id']}.npy"][items[-1]["cube_index"]].astype(np.float32)
    np.testing.assert_array_equal(loaded[0].numpy(), expected)


def test_skipped_volumes_are_reported_with_reasons(tmp_path):
    inputs = _folder(tmp_path / "in", n=1)
    (inputs / "broken.nii.gz").write_bytes(b"not a volume")
    _nifti(inputs / "narrow.nii.gz", _ct(shape=(12, 24, 20)))
    _nifti(inputs / "thin.nii.gz", _ct(shape=(24, 24, 10)))
    _nifti(inputs / "solid.nii.gz", _ct(lung=False))
    summary = prepare_cubes(inputs, tmp_path / "out", allow_empty_validation=True, **SMALL)
    reasons = {item["case_id"]: item["reason"] for item in summary["skipped"]}
    assert reasons["broken"].startswith("unreadable: ") and "broken.nii.gz" in reasons["broken"]
    assert reasons["narrow"].startswith("too small: axis 0 has 12 voxels")
    assert reasons["thin"].startswith("too few slices: axis 2 has 10 voxels")
    assert reasons["solid"].startswith("no lung-like crops: none of 150 random crops")
    assert sorted(os.listdir(tmp_path / "out" / "cubes")) == ["case0.npy"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["skipped"] == summary["skipped"]


def test_resume_after_ctrl_c_keeps_finished_shards_and_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    inputs = _folder(tmp_path / "in", n=3)
    out = tmp_path / "out"
    real_extract = prepare_module.extract_cubes
    calls = []

    def interrupted_on_second_volume(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_extract(*args, **kwargs)

    monkeypatch.setattr(prepare_module, "extract_cubes", interrupted_on_second_volume)
    with pytest.raises(KeyboardInterrupt):
        prepare_cubes(inputs, out, **SMALL)
    assert os.listdir(out / "cubes") == ["case0.npy"]
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True
    first = os.stat(out / "cubes" / "case0.npy")

    monkeypatch.setattr(prepare_module, "extract_cubes", real_extract)
    summary = prepare_cubes(inputs, out, **SMALL)
    assert summary["reused"] == 1 and summary["processed_now"] == 2 and summary["interrupted"] is False
    again = os.stat(out / "cubes" / "case0.npy")
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # not redone

    fresh = tmp_path / "fresh"
    prepare_cubes(inputs, fresh, **SMALL)
    resumed, uninterrupted = _shards(out), _shards(fresh)
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name])
    assert (out / "datalist.json").read_text() == (fresh / "datalist.json").read_text()


def test_interrupt_while_writing_leaves_no_partial_shard(tmp_path, monkeypatch):
    inputs = _folder(tmp_path / "in", n=1)
    real_save = np.save

    def save_half_then_interrupt(stream, array, *args, **kwargs):
        real_save(stream, array[:1])
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", save_half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        prepare_cubes(inputs, tmp_path / "out", **SMALL)
    assert os.listdir(tmp_path / "out" / "cubes") == []  # neither the shard nor its temporary file


def test_rerun_reuses_the_split_and_refuses_other_settings(tmp_path):
    inputs = _folder(tmp_path / "in", n=5)
    out = tmp_path / "out"
    prepare_cubes(inputs, out, val_fraction=0.2, test_fraction=0.2, **SMALL)
    split = (out / "split.json").read_text()
    assert sorted(json.loads(split).values()).count("test") == 1
    _nifti(inputs / "case9.nii.gz", _ct(seed=9))
    prepare_cubes(inputs, out, val_fraction=0.0, test_fraction=0.0, allow_empty_validation=True, **SMALL)
    updated = json.loads((out / "split.json").read_text())
    assert {k: v for k, v in updated.items() if k != "case9"} == json.loads(split)  # old cases kept
    assert updated["case9"] == "training"
    with pytest.raises(ValueError, match=r"other settings \(cube_size: \[8, 8, 4\] -> \[8, 8, 6\]\)"):
        prepare_cubes(inputs, out, **{**SMALL, "cube_size": (8, 8, 6)})


def test_luna16_subsets_datalist_input_and_split_file(tmp_path):
    luna = tmp_path / "luna"
    for subset in (0, 5, 8):
        _mhd(luna / f"subset{subset}" / f"1.3.6.{subset}.mhd", _ct(seed=subset))
    _mhd(luna / "seg-lungs-LUNA16" / "1.3.6.0.mhd", _ct(seed=0))  # lung masks: not pretraining input
    summary = prepare_cubes(luna, tmp_path / "out_luna", **SMALL)
    split = json.loads((tmp_path / "out_luna" / "split.json").read_text())
    assert split == {"1.3.6.0": "training", "1.3.6.5": "validation", "1.3.6.8": "test"}
    assert all(count > 0 for count in summary["cubes"].values())

    inputs = _folder(tmp_path / "in", n=3)
    listing = {"training": [{"image": "in/case0.nii.gz"}], "validation": ["in/case1.nii.gz"],
               "test": [{"image": str(inputs / "case2.nii.gz")}]}
    (tmp_path / "list.json").write_text(json.dumps(listing))
    prepare_cubes(tmp_path / "list.json", tmp_path / "out_list", **SMALL)
    assert json.loads((tmp_path / "out_list" / "split.json").read_text()) == {
        "case0": "training", "case1": "validation", "case2": "test"}

    (tmp_path / "split.json").write_text(json.dumps({"training": ["case1", "case2"], "test": ["case0"]}))
    prepare_cubes(inputs, tmp_path / "out_split", split=tmp_path / "split.json", allow_empty_validation=True, **SMALL)
    datalist = json.loads((tmp_path / "out_split" / "datalist.json").read_text())
    assert {i["case_id"] for i in datalist["test"]} == {"case0"} and datalist["validation"] == []
    (tmp_path / "partial.json").write_text(json.dumps({"case0": "training"}))
    with pytest.raises(ValueError, match=r"partial.json: no section for case\(s\) \['case1', 'case2'\]"):
        prepare_cubes(inputs, tmp_path / "out_partial", split=tmp_path / "partial.json", **SMALL)


@pytest.mark.slow
def test_two_workers_give_the_same_cubes_as_one(tmp_path):
    inputs = _folder(tmp_path / "in", n=3)
    prepare_cubes(inputs, tmp_path / "one", workers=1, **SMALL)
    summary = prepare_cubes(inputs, tmp_path / "two", workers=2, **SMALL)
    assert summary["processed_now"] == 3 and summary["skipped"] == []
    one, two = _shards(tmp_path / "one"), _shards(tmp_path / "two")
    assert one.keys() == two.keys()
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])


def test_cli_parses_triples_and_prints_a_summary(tmp_path, capsys):
    inputs = _folder(tmp_path / "in", n=3)
    _nifti(inputs / "thin.nii.gz", _ct(shape=(24, 24, 10)))
    fire.Fire(
        {"prepare-cubes": prepare_cubes_command},
        command=["prepare-cubes", str(inputs), str(tmp_path / "out"), "--scale", "2", "--margins", "2,2,2",
                 "--cube_size", "8,8,4", "--progress", "False"],
    )
    printed = capsys.readouterr()
    assert "3/4 volumes gave cubes" in printed.out and "skipped thin: too few slices" in printed.err
    assert json.loads((tmp_path / "out" / "datalist.json").read_text())["cube_size"] == [8, 8, 4]
    with pytest.raises(ValueError, match="--margins: expected three comma-separated integers"):
        prepare_cubes_command(str(inputs), str(tmp_path / "out2"), margins=100)


@pytest.mark.parametrize(
    "make_input, kwargs, error, words",
    [
        (lambda d: d / "absent", {}, FileNotFoundError, "absent: no such folder or datalist"),
        (lambda d: (d / "empty").mkdir() or d / "empty", {}, ValueError, "no volumes found"),
        (lambda d: (d / "notes.txt").write_text("x") and d / "notes.txt", {}, ValueError, "expected a folder"),
        (lambda d: (d / "bad.json").write_text("{") and d / "bad.json", {}, ValueError, "not valid JSON"),
        (lambda d: (d / "odd.json").write_text("{}") and d / "odd.json", {}, ValueError, "needs a 'training'"),
        (lambda d: _folder(d / "in", 1), {"margins": "1,2"}, ValueError, "margins: expected three integers"),
        (lambda d: _folder(d / "in", 1), {"workers": 0}, ValueError, "workers"),
        (lambda d: _folder(d / "in", 1), {"scale": 0}, ValueError, "scale"),
        (lambda d: _folder(d / "in", 1), {"split": "missing_split.json"}, FileNotFoundError, "split file not found"),
        (lambda d: _folder(d / "in", 1), {"luna16_subsets": True}, ValueError, "no volume lies in a subset0"),
    ],
)
def test_bad_inputs_give_clear_errors(tmp_path, make_input, kwargs, error, words):
    with pytest.raises(error, match=words):
        prepare_cubes(make_input(tmp_path), tmp_path / "out", **{**SMALL, **kwargs})
