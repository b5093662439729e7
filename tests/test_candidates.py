"""Candidates: CSV errors, world -> voxel on oblique / feet-first volumes, cube cutting, prepared volumes, sampler."""

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_genesis.data.candidate_volumes import CandidateDataset, prepare_candidate_volumes, read_geometries, read_split
from monai_genesis.data.candidates import PAD_VALUE, cut_cube, locate_candidates, read_candidates
from monai_genesis.data.io import load_volume
from monai_genesis.metrics.froc import SUBMISSION_COLUMNS, read_luna16_csv
from monai_genesis.phantoms.chest_ct import write_chest_ct_dataset
from monai_genesis.training.classification import (
    BalancedCandidateSampler,
    bce_loss,
    fixed_validation_subset,
    read_submission,
    write_submission,
)

CUBE = (24, 24, 16)


@pytest.fixture(scope="module")
def chest(tmp_path_factory):
    """Three LUNA16-like .mhd scans (identity, oblique, feet-first directions) and their candidates, prepared."""
    root = tmp_path_factory.mktemp("chest")
    write_chest_ct_dataset(root / "raw", num_cases=3, shape=(48, 48, 40), spacing=(1.2, 1.2, 1.5), seed=3,
                           formats=("mhd",), num_nodules=2, num_false_positives=4, nodule_diameter_mm=(4.0, 10.0))
    prepare_candidate_volumes(root / "raw" / "images", root / "prep", progress=False)
    return root


def write_csv(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_cube_centred_on_each_nodule_through_direction_and_origin(chest):
    dataset = CandidateDataset(chest / "prep", chest / "raw" / "candidates.csv", section="all", cube_size=CUBE)
    records = read_geometries(chest / "prep")
    directions = [np.asarray(r["affine"])[:3, :3] / np.linalg.norm(np.asarray(r["affine"])[:3, :3], axis=0) for r in records.values()]
    assert sum(not np.allclose(d, np.diag([-1, -1, 1])) for d in directions) >= 2  # oblique and feet-first, not LPS-aligned
    assert all(np.abs(np.asarray(r["affine"])[:3, 3]).max() > 1 for r in records.values())  # non-zero origins
    positives = np.flatnonzero(dataset.labels == 1)
    assert len(positives) == 6 and len(dataset) == 18
    for i in range(len(dataset)):
        uid = dataset.table.seriesuid[i]
        labels = np.asarray(load_volume(chest / "raw" / "labels" / f"{uid}.mhd", dtype=None))
        mask_cube = cut_cube(labels, dataset.voxels[i], CUBE, pad_value=0)
        centre = tuple(s // 2 for s in CUBE)
        if dataset.labels[i] == 1:
            assert mask_cube[centre] > 0  # the cube's centre voxel lies in the nodule
            assert (mask_cube == mask_cube[centre]).sum() >= 8
        else:
            assert mask_cube[centre] == 0
    # the prepared cube equals the raw scan windowed to [0, 1] (float16 precision)
    uid = dataset.table.seriesuid[positives[0]]
    raw = np.asarray(load_volume(chest / "raw" / "images" / f"{uid}.mhd"), dtype=np.float32)
    expected = cut_cube(np.clip((raw + 1000) / 2000, 0, 1), dataset.voxels[positives[0]], CUBE)
    item = dataset[int(positives[0])]
    assert item["image"].shape == (1, *CUBE) and item["label"].tolist() == [1.0]
    np.testing.assert_allclose(item["image"][0].numpy(), expected, atol=1e-3)


def test_cut_cube_pads_at_the_borders():
    volume = np.arange(6 * 5 * 4, dtype=np.float32).reshape(6, 5, 4)
    cube = cut_cube(volume, (0.2, 4.4, 3.6), (4, 4, 2), pad_value=-1.0)
    # start = rint(centre) - size // 2 = (-2, 2, 3): x -2..1, y 2..5, z 3..4
    expected = np.full((4, 4, 2), -1.0, np.float32)
    expected[2:4, 0:3, 0:1] = volume[0:2, 2:5, 3:4]
    np.testing.assert_array_equal(cube, expected)
    inside = cut_cube(volume, (3, 2, 2), (2, 2, 2))
    np.testing.assert_array_equal(inside, volume[2:4, 1:3, 1:3])
    assert cut_cube(volume, (50, 50, 50), (2, 2, 2)).tolist() == np.full((2, 2, 2), PAD_VALUE).tolist()


def test_csv_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        read_candidates(tmp_path / "nothere.csv")
    bad = write_csv(tmp_path / "nocol.csv", "seriesuid,coordX,coordY,class\n1.2,0,0,1\n")
    with pytest.raises(ValueError, match=r"nocol.csv: missing column\(s\) coordZ"):
        read_candidates(bad)
    bad = write_csv(tmp_path / "nan.csv", "seriesuid,coordX,coordY,coordZ,class\n1.2,0,0,0,1\n1.2,0,abc,0,0\n")
    with pytest.raises(ValueError, match=r"nan.csv, line 3: coordY is not a number \('abc'\)"):
        read_candidates(bad)
    bad = write_csv(tmp_path / "cls.csv", "seriesuid,coordX,coordY,coordZ,class\n1.2,0,0,0,2\n")
    with pytest.raises(ValueError, match=r"cls.csv, line 2: class must be 0 or 1"):
        read_candidates(bad)
    bad = write_csv(tmp_path / "empty.csv", "seriesuid,coordX,coordY,coordZ,class\n")
    with pytest.raises(ValueError, match="no candidates"):
        read_candidates(bad)
    unlabelled = write_csv(tmp_path / "unlabelled.csv", "seriesuid,coordX,coordY,coordZ\n1.2,0,0,0\n")
    with pytest.raises(ValueError, match="missing column"):
        read_candidates(unlabelled)
    assert read_candidates(unlabelled, require_label=False).label is None


def test_missing_series_and_outside_candidates_error_or_counted_skip(chest, tmp_path):
    rows = (chest / "raw" / "candidates.csv").read_text().splitlines()
    uid = rows[1].split(",")[0]
    extra = [f"9.9.999,1.0,2.0,3.0,1", f"9.9.999,1.0,2.0,4.0,0", f"{uid},5000.0,0.0,0.0,1"]
    path = tmp_path / "candidates.csv"
    path.write_text("\n".join(rows + extra) + "\n")
    table = read_candidates(path)
    geometries = {u: (r["affine"], r["shape"]) for u, r in read_geometries(chest / "prep").items()}
    with pytest.raises(ValueError, match=r"2 candidate\(s\) refer to series with no volume in the volume folder \(9.9.999\)"):
        locate_candidates(table, geometries)
    without_missing = table.select(table.seriesuid != "9.9.999")
    with pytest.raises(ValueError, match=r"1 candidate\(s\) lie outside their volume, e.g. line 22 "):
        locate_candidates(without_missing, geometries)
    kept, _, _, report = locate_candidates(table, geometries, on_bad="skip")
    assert (report["candidates"], report["missing_series"], report["outside_volume"], report["kept"]) == (21, 2, 1, 18)
    assert len(kept) == 18 and 5000.0 not in kept.world[:, 0]
    dataset = CandidateDataset(chest / "prep", path, section="all", cube_size=CUBE, on_bad="skip")
    assert len(dataset) == 18 and dataset.report["missing_series"] == 2
    with pytest.raises(ValueError, match="none of the 2 candidates"):
        locate_candidates(table.select(table.seriesuid == "9.9.999"), geometries, on_bad="skip")


def test_split_written_once_and_never_redrawn(chest):
    split = read_split(chest / "prep")
    assert sorted(sum(split.values(), [])) == sorted(read_geometries(chest / "prep"))
    summary = prepare_candidate_volumes(chest / "raw" / "images", chest / "prep", progress=False)
    assert summary["reused"] == 3 and summary["prepared_now"] == 0
    with pytest.raises(ValueError, match="never redrawn silently"):
        prepare_candidate_volumes(chest / "raw" / "images", chest / "prep", seed=1, progress=False)
    with pytest.raises(ValueError, match="fold: expected 0..0"):
        read_split(chest / "prep", fold=1)


KILLED_RUN = """
import sys, time
import monai_genesis.data.candidate_volumes as cv
real = cv.load_volume
calls = []
def slow(path, dtype=None):
    calls.append(path)
    if len(calls) == 2:
        time.sleep(600)  # killed here, after the first volume is finished
    return real(path, dtype=dtype)
cv.load_volume = slow
cv.prepare_candidate_volumes(sys.argv[1], sys.argv[2], num_folds=3, progress=False)
"""


def test_prepare_resumes_after_a_kill(chest, tmp_path):
    images, out = chest / "raw" / "images", tmp_path / "prep"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(images), str(out)])
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list((out / "volumes").glob("*.json"))) < 1:
            assert proc.poll() is None, "the preparation ended before it could be killed"
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = list((out / "volumes").glob("*.json"))
    assert len(finished) == 1 and (out / "split.json").exists()
    (out / "volumes" / "torn.npy.123.abcd.tmp").write_bytes(b"partial")  # what a kill during a write leaves
    summary = prepare_candidate_volumes(images, out, num_folds=3, progress=False)
    assert (summary["reused"], summary["prepared_now"]) == (1, 2)
    assert not list((out / "volumes").glob("*.tmp"))
    fresh = prepare_candidate_volumes(images, tmp_path / "fresh", num_folds=3, progress=False)
    assert fresh["prepared_now"] == 3
    for npy in sorted((tmp_path / "fresh" / "volumes").glob("*.npy")):
        assert (out / "volumes" / npy.name).read_bytes() == npy.read_bytes()
    assert json.loads((out / "split.json").read_text()) == json.loads((tmp_path / "fresh" / "split.json").read_text())
    folds = json.loads((out / "split.json").read_text())["folds"]
    assert len(folds) == 3 and sorted(u for f in folds for u in f["test"]) == sorted(p.stem for p in finished + [
        p for p in (out / "volumes").glob("*.json") if p not in finished])


def test_submission_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    uids = [f"1.3.6.1.4.1.14519.{i % 3}" for i in range(7)]
    world = rng.normal(0, 100, (7, 3))
    prob = rng.uniform(0, 1, 7)
    path = tmp_path / "submission.csv"
    write_submission(path, uids, world, prob)
    assert path.read_text().splitlines()[0] == ",".join(SUBMISSION_COLUMNS)
    back = read_submission(path)
    assert back["seriesuid"].tolist() == uids
    np.testing.assert_array_equal(back["world"], world)  # exact: repr of float64
    np.testing.assert_array_equal(back["probability"], prob)
    rows = read_luna16_csv(path, SUBMISSION_COLUMNS)  # what genesis luna16-eval reads
    assert len(rows) == 7 and float(rows[3]["probability"]) == prob[3]
    table = read_candidates(path, require_label=False)
    np.testing.assert_array_equal(table.world, world)


def test_balanced_sampler_reaches_every_negative():
    labels = np.array([1] * 4 + [0] * 30 + [1] * 2 + [0] * 7)
    sampler = BalancedCandidateSampler(labels, negatives_per_positive=2.0, seed=5)
    positives, negatives = set(np.flatnonzero(labels == 1)), set(np.flatnonzero(labels == 0))
    seen = set()
    epochs = []
    for _ in range(4):  # 37 negatives, 12 per epoch: all drawn within ceil(37 / 12) = 4 epochs
        epoch = list(sampler)
        epochs.append(epoch)
        assert len(epoch) == len(sampler) == 18 and len(set(epoch)) == 18
        assert positives <= set(epoch) and len(set(epoch) & negatives) == 12
        seen |= set(epoch) & negatives
    assert seen == negatives
    assert epochs[0] != epochs[1]
    resumed = BalancedCandidateSampler(labels, negatives_per_positive=2.0, seed=5)
    resumed.set_epoch(2)
    assert list(resumed) == epochs[2]  # a resumed run draws what the uninterrupted one drew
    ranks = [list(BalancedCandidateSampler(labels, 2.0, seed=5, num_replicas=4, rank=r)) for r in range(4)]
    assert set().union(*ranks) == set(epochs[0]) and all(len(r) == 5 for r in ranks)


def test_class_balance_by_weights_and_fixed_validation_subset():
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    loss = bce_loss(labels, "weights")
    assert loss.pos_weight.item() == pytest.approx(4.0)
    logits, target = torch.tensor([[0.3], [-0.2]]), torch.tensor([[1.0], [0.0]])
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    assert loss(logits, target).item() == pytest.approx(((4 * plain[0] + plain[1]) / 2).item())
    assert bce_loss(labels, "sampler").pos_weight is None
    with pytest.raises(ValueError, match="class_balance"):
        bce_loss(labels, "oversample")
    with pytest.raises(ValueError, match="both classes"):
        BalancedCandidateSampler(np.zeros(5, int))

    class Labelled(torch.utils.data.Dataset):
        def __len__(self):
            return len(labels)

        def __getitem__(self, i):
            return i

    Labelled.labels = labels
    subset = fixed_validation_subset(Labelled(), negatives_per_positive=1.5, seed=0)
    assert len(subset) == 5 and subset.labels.sum() == 2
    assert list(subset.indices) == list(fixed_validation_subset(Labelled(), 1.5, seed=0).indices)
    assert fixed_validation_subset(Labelled(), None).__class__ is Labelled


def test_prepare_candidates_command(chest, tmp_path, monkeypatch, capsys):
    from monai_genesis.cli.main import main

    images, csv_path = chest / "raw" / "images", chest / "raw" / "candidates.csv"
    argv = ["genesis", "prepare-candidates", str(images), str(tmp_path / "out"), "--candidates", str(csv_path),
            "--num_folds", "3", "--progress", "False"]
    monkeypatch.setattr(sys, "argv", argv)
    main()
    out = capsys.readouterr().out
    assert "3/3 volumes prepared (3 now, 0 reused); split: cross_validation, 3 fold(s)." in out
    assert "candidates: 18/18 located (0 with no volume, 0 outside their volume)." in out
    monkeypatch.setattr(sys, "argv", argv[:4] + ["--num_folds", "2"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "genesis: error:" in capsys.readouterr().err
