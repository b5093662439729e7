"""The one LUNA16 CSV parser: candidates, annotations and submissions read alike, errors name file, line and column."""

import numpy as np
import pytest

from monai_genesis.data.candidates import read_candidates
from monai_genesis.data.luna16_csv import ANNOTATION_COLUMNS, SUBMISSION_COLUMNS, read_luna16_rows, read_seriesuids
from monai_genesis.metrics.froc import read_luna16_csv
from monai_genesis.training.classification import read_submission


def write(path, text):
    path.write_text(text)
    return path


def test_rows_are_read_column_wise_with_their_lines(tmp_path):
    path = write(tmp_path / "sub.csv", "extra,seriesuid,coordX,coordY,coordZ,probability\n"
                 "x,1.2, 1.5,-2,3,0.25\n\n x ,1.3,4,5,6,1e-3\n")
    rows = read_luna16_rows(path, SUBMISSION_COLUMNS)
    assert rows.uids == ["1.2", "1.3"] and rows.lines.tolist() == [2, 4]
    np.testing.assert_array_equal(rows.values, [[1.5, -2, 3, 0.25], [4, 5, 6, 1e-3]])
    assert rows.columns == SUBMISSION_COLUMNS
    # the three readers of the project agree, as they share the parser
    submission = read_submission(path)
    np.testing.assert_array_equal(submission["world"], rows.values[:, :3])
    assert read_luna16_csv(path, SUBMISSION_COLUMNS)[1] == {"seriesuid": "1.3", "coordX": 4.0, "coordY": 5.0,
                                                          "coordZ": 6.0, "probability": 1e-3}
    table = read_candidates(path, require_label=False)
    assert table.label is None and table.series_names.tolist() == ["1.2", "1.3"] and table.row.tolist() == [0, 1]


def test_optional_columns_are_read_when_present(tmp_path):
    path = write(tmp_path / "c.csv", "seriesuid,coordX,coordY,coordZ,class\nb,0,0,0,1\na,1,1,1,0\nb,2,2,2,0\n")
    rows = read_luna16_rows(path, ANNOTATION_COLUMNS[:4], optional=("class", "diameter_mm"))
    assert rows.columns == ("seriesuid", "coordX", "coordY", "coordZ", "class")
    table = read_candidates(path)
    assert table.series_names.tolist() == ["b", "a"] and table.series_code.tolist() == [0, 1, 0]  # order of appearance
    assert table.label.tolist() == [1, 0, 0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", r"s.csv: the submission is empty"),
        ("seriesuid,coordX,coordY,probability\n", r"s.csv: missing column\(s\) coordZ \(the header has"),
        ("seriesuid,coordX,coordY,coordZ,probability\na,0,0,0\n", r"s.csv, line 2: 4 values, expected at least 5"),
        ("seriesuid,coordX,coordY,coordZ,probability\n ,0,0,0,1\n", r"s.csv, line 2: empty seriesuid"),
        ("seriesuid,coordX,coordY,coordZ,probability\na,0,0,0,1\na,0,x1,0,1\n", r"s.csv, line 3: coordY is not a number \('x1'\)"),
        ("seriesuid,coordX,coordY,coordZ,probability\na,0,0,0,nan\n", r"s.csv, line 2: probability is not finite"),
    ],
)
def test_errors_name_the_file_line_and_column(tmp_path, text, message):
    path = write(tmp_path / "s.csv", text)
    with pytest.raises(ValueError, match=message):
        read_luna16_rows(path, SUBMISSION_COLUMNS, kind="submission")


def test_missing_files_and_series_lists(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent.csv: no such file \(expected the submission\)"):
        read_submission(tmp_path / "absent.csv")
    assert read_seriesuids(write(tmp_path / "uids.csv", "seriesuid\n1.2\n\n1.3\n")) == ["1.2", "1.3"]
    with pytest.raises(ValueError, match="lists no series"):
        read_seriesuids(write(tmp_path / "none.csv", "seriesuid\n"))
