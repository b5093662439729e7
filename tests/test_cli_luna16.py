"""`genesis luna16-eval`: the challenge's CSV files in, froc.json and froc.png out; bad files end in one line, exit 2."""

import json
import struct
import sys

import pytest

from monai_genesis.cli.main import main
from monai_genesis.metrics.froc import evaluate_luna16, read_seriesuids

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ANNOTATIONS = "seriesuid,coordX,coordY,coordZ,diameter_mm\n1.3.6.a,-100.5,20.0,-300.25,10.0\n1.3.6.a,50,50,-250,6\n1.3.6.b,0,0,0,8\n"
EXCLUDED = "seriesuid,coordX,coordY,coordZ,diameter_mm\n1.3.6.b,80,0,0,-1\n"
# Hits: a's first nodule at 0.9 (twice: 0.9 and 0.3), b's at 0.7; a's second nodule missed; the 0.95 mark
# on b's excluded finding is ignored; false positives 0.8 (a) and 0.6 (c, a scan without nodules).
# Curve over 3 scans: 0.9 -> (0, 1/3), 0.8 -> (1/3, 1/3), 0.7 -> (1/3, 2/3), 0.6 -> (2/3, 2/3):
# sensitivities [1/3, 1/3, 2/3, 2/3, 2/3, 2/3, 2/3], CPM (2 / 3 + 5 * 2 / 3) / 7 = 4 / 7.
SUBMISSION = (
    "seriesuid,coordX,coordY,coordZ,probability\n"
    "1.3.6.a,-101,20.5,-300,0.9\n1.3.6.a,-99,20,-301,0.3\n1.3.6.a,0,0,0,0.8\n"
    "1.3.6.b,1,1,1,0.7\n1.3.6.b,82,0,0,0.95\n1.3.6.c,5,5,5,0.6\n"
)
SERIESUIDS = "1.3.6.a\n1.3.6.b\n1.3.6.c\n"


def write_files(folder, **overrides):
    contents = {"annotations": ANNOTATIONS, "excluded": EXCLUDED, "seriesuids": SERIESUIDS, "submission": SUBMISSION}
    contents.update(overrides)
    paths = {}
    for name, text in contents.items():
        paths[name] = folder / f"{name}.csv"
        paths[name].write_text(text)
    return paths


def run_genesis(monkeypatch, paths, output_dir, *extra):
    argv = ["genesis", "luna16-eval", "--output_dir", str(output_dir), *extra]
    for name in ("annotations", "excluded", "seriesuids", "submission"):
        argv += [f"--{name}", str(paths[name])]
    monkeypatch.setattr(sys, "argv", argv)
    main()


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_cli_writes_froc_json_and_png(tmp_path, monkeypatch, capsys):
    paths = write_files(tmp_path)
    out = tmp_path / "out"
    run_genesis(monkeypatch, paths, out)
    printed = capsys.readouterr().out
    assert "CPM 0.5714" in printed and "sensitivity at     8 FP/scan: 0.6667" in printed
    report = json.loads((out / "froc.json").read_text())
    assert report["cpm"] == pytest.approx(4 / 7)
    assert list(report["sensitivities"]) == ["0.125", "0.25", "0.5", "1", "2", "4", "8"]
    assert list(report["sensitivities"].values()) == pytest.approx([1 / 3, 1 / 3] + [2 / 3] * 5)
    assert report["num_nodules"] == 3 and report["num_scans"] == 3 and report["num_detected"] == 2
    assert report["num_ignored_excluded"] == 1 and report["num_double_hits"] == 1 and report["num_false_positives"] == 2
    width, height = png_size(out / "froc.png")
    assert 400 <= width <= 2000 and 300 <= height <= 2000 and (out / "froc.png").stat().st_size > 10_000
    assert not list(out.glob("*.tmp"))


def test_seriesuids_with_a_header_and_a_submission_with_extra_columns(tmp_path):
    submission = "id," + SUBMISSION.replace("\n", "\nx,").rstrip("x,")
    paths = write_files(tmp_path, seriesuids="seriesuid\n" + SERIESUIDS, submission=submission)
    assert read_seriesuids(paths["seriesuids"]) == ["1.3.6.a", "1.3.6.b", "1.3.6.c"]
    result = evaluate_luna16(*(paths[k] for k in ("annotations", "excluded", "seriesuids", "submission")), tmp_path / "o")
    assert result["cpm"] == pytest.approx(4 / 7)


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"submission": SUBMISSION.replace("probability", "prob")}, "submission.csv: missing column(s) probability"),
        ({"annotations": ANNOTATIONS.replace(",6\n", ",six\n")}, "annotations.csv, line 3: diameter_mm is not a number ('six')"),
        ({"submission": SUBMISSION.replace("0.7", "nan")}, "submission.csv, line 5: probability is not finite ('nan')"),
        ({"submission": SUBMISSION + "1.3.6.z,0,0,0,0.5\n"}, "1 candidates of 1 series not in seriesuids, e.g. 1.3.6.z"),
        ({"submission": "seriesuid,coordX,coordY,coordZ,probability\n"}, "submission.csv: the submission holds no candidates"),
        ({"seriesuids": ""}, "seriesuids.csv: lists no series"),
        ({"submission": SUBMISSION + ",1,1,1,0.5\n"}, "submission.csv, line 8: empty seriesuid"),
        ({"excluded": EXCLUDED + "1.3.6.b,1\n"}, "excluded.csv, line 3: 2 values, expected at least 5"),
    ],
)
def test_bad_files_end_in_one_line_with_exit_code_2(tmp_path, monkeypatch, capsys, override, expected):
    paths = write_files(tmp_path, **override)
    with pytest.raises(SystemExit) as stop:
        run_genesis(monkeypatch, paths, tmp_path / "out")
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("genesis: error: ") and error.count("\n") == 1 and expected in error
    assert not (tmp_path / "out" / "froc.json").exists()


def test_missing_file_and_skip_option(tmp_path, monkeypatch, capsys):
    paths = write_files(tmp_path, submission=SUBMISSION + "1.3.6.z,0,0,0,0.5\n")
    paths["excluded"].unlink()
    with pytest.raises(SystemExit) as stop:
        run_genesis(monkeypatch, paths, tmp_path / "out")
    assert stop.value.code == 2 and "excluded.csv: no such file" in capsys.readouterr().err
    paths = write_files(tmp_path, submission=SUBMISSION + "1.3.6.z,0,0,0,0.5\n")
    run_genesis(monkeypatch, paths, tmp_path / "out", "--skip_unknown_series")
    assert "skipped 1 candidates" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "froc.json").read_text())["num_skipped_unknown_series"] == 1
