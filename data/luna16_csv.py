"""LUNA16's CSV files (docs/method.md §5.3): their column names and the one parser they all go through.

candidates.csv (``class`` labels), annotations.csv (``diameter_mm``), a submission (``probability``) and
seriesuids.csv share one layout: a header, then one row per finding with its series and LPS world
millimetres. The parser reads column-wise into numpy (a candidates or submission file holds ~750,000
rows); every error names the file, the line and the column.
"""

from __future__ import annotations

import csv
import os
from typing import NamedTuple, Sequence

import numpy as np

__all__ = [
    "SERIES_COLUMN",
    "WORLD_COLUMNS",
    "CANDIDATE_COLUMNS",
    "LABEL_COLUMN",
    "LABELLED_CANDIDATE_COLUMNS",
    "ANNOTATION_COLUMNS",
    "SUBMISSION_COLUMNS",
    "Luna16Rows",
    "read_luna16_rows",
    "read_seriesuids",
]

SERIES_COLUMN = "seriesuid"
WORLD_COLUMNS = ("coordX", "coordY", "coordZ")
CANDIDATE_COLUMNS = (SERIES_COLUMN, *WORLD_COLUMNS)
LABEL_COLUMN = "class"
LABELLED_CANDIDATE_COLUMNS = (*CANDIDATE_COLUMNS, LABEL_COLUMN)
ANNOTATION_COLUMNS = (*CANDIDATE_COLUMNS, "diameter_mm")
SUBMISSION_COLUMNS = (*CANDIDATE_COLUMNS, "probability")


class Luna16Rows(NamedTuple):
    """The rows of a LUNA16 CSV, column-wise.

    Attributes:
        uids: the series id of each row.
        values: (N, len(columns) - 1) float64, the numeric columns in the order asked for (all finite).
        lines: (N,) int64, the file line of each row (the header is line 1), for messages.
        columns: the columns read: the required ones, then the optional ones the file has.
        path: the file.
    """

    uids: list
    values: np.ndarray
    lines: np.ndarray
    columns: tuple
    path: str


def read_luna16_rows(path, columns: Sequence[str], optional: Sequence[str] = (), kind: str = "LUNA16 file") -> Luna16Rows:
    """Read a LUNA16 CSV: the series column first in ``columns``, then numeric columns.

    Args:
        path: the CSV file (comma-separated, header first; other columns are ignored; blank lines skipped).
        columns: the required columns, ``seriesuid`` first.
        optional: numeric columns read when the header has them (e.g. ``class`` of candidates.csv).
        kind: what the file is, for messages ("candidates file", "submission", ...).

    Raises:
        FileNotFoundError: no such file.
        ValueError: an empty file, a missing column, a short row, an empty series id, or a value that is
            not a finite number; the message names the file, the line and the column.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file (expected the {kind}).")
    columns = tuple(columns)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: the {kind} is empty; expected a header with the columns {','.join(columns)}.")
        header = [name.strip() for name in header]
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {', '.join(missing)} (the header has: {', '.join(header)}); "
                f"a {kind} has {', '.join(columns + tuple(optional))}."
            )
        read = columns + tuple(c for c in optional if c in header)
        index = [header.index(c) for c in read]
        needed = max(index) + 1
        uids, numbers, lines = [], [], []
        for fields in reader:
            if len(fields) < needed:
                if not "".join(fields).strip():
                    continue  # a blank line
                raise ValueError(f"{path}, line {reader.line_num}: {len(fields)} values, expected at least {needed}.")
            uid = fields[index[0]].strip()
            if not uid:
                raise ValueError(f"{path}, line {reader.line_num}: empty {SERIES_COLUMN}.")
            uids.append(uid)
            numbers.append([fields[i] for i in index[1:]])
            lines.append(reader.line_num)
    values = _numbers(numbers, read[1:], lines, path)
    return Luna16Rows(uids, values, np.asarray(lines, dtype=np.int64), read, path)


def _numbers(texts: list, columns: Sequence[str], lines: list, path: str) -> np.ndarray:
    """One numpy conversion of every value (spaces allowed); on a failure, the first bad value is named."""
    try:
        block = np.array(texts, dtype=np.float64).reshape(len(texts), len(columns))
        if np.isfinite(block).all():
            return block
    except ValueError:
        pass
    for row, line in zip(texts, lines):
        for column, text in zip(columns, row):
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"{path}, line {line}: {column} is not a number ({text!r}).") from None
            if not np.isfinite(number):
                raise ValueError(f"{path}, line {line}: {column} is not finite ({text!r}).")
    raise AssertionError("unreachable: a value failed the numpy conversion but none failed alone")


def read_seriesuids(path) -> list[str]:
    """The first field of each line of seriesuids.csv; a first line reading ``seriesuid`` is a header."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file (expected the series list).")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        uids = [fields[0].strip() for fields in csv.reader(handle) if fields and fields[0].strip()]
    if uids and uids[0].lower() == SERIES_COLUMN:
        uids = uids[1:]
    if not uids:
        raise ValueError(f"{path}: lists no series.")
    return uids
