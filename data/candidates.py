"""LUNA16-style candidate lists: reading the CSV, locating candidates in their volumes, cutting cubes.

A candidates file (LUNA16's ``candidates.csv`` / ``candidates_V2.csv``, docs/method.md §5.3) has one row
per candidate: ``seriesuid, coordX, coordY, coordZ`` in LPS world millimetres, and ``class`` (1 nodule,
0 not) when labelled. Other columns are ignored. The table is kept column-wise in numpy arrays (the
755k rows of candidates_V2.csv take about 30 MB), never as one dict per row.

Every problem is reported, never turned into a silently wrong label: a file missing a column, a
value that is not a number, a class other than 0/1 raise a ``ValueError`` naming the file and line;
a candidate whose series has no volume or whose centre lies outside its volume raises, or with
``on_bad="skip"`` is dropped and counted in the returned report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from monai_genesis.data.io import world_to_voxel
from monai_genesis.data.luna16_csv import CANDIDATE_COLUMNS, LABEL_COLUMN, read_luna16_rows

__all__ = [
    "CANDIDATE_COLUMNS",
    "PAD_VALUE",
    "CandidateTable",
    "read_candidates",
    "locate_candidates",
    "cube_bounds",
    "cut_cube",
]

logger = logging.getLogger(__name__)

# Border padding, in the windowed [0, 1] scale: 0 is -1000 HU (air), what surrounds a patient.
PAD_VALUE = 0.0
_SHOWN = 5  # examples named in a message


@dataclass
class CandidateTable:
    """Candidates column-wise; the series are stored once each and referred to by code.

    Attributes:
        series_names: (S,) str, the distinct series of the file in order of appearance.
        series_code: (N,) int32 index into ``series_names`` of each candidate (LUNA16's 755k uids of
            64 characters would take 190 MB as a numpy string column; the codes take 3 MB).
        world: (N, 3) float64 LPS millimetres (coordX, coordY, coordZ).
        label: (N,) int8 class (0 or 1), or None for an unlabelled file.
        row: (N,) int64 index of the candidate among the file's data rows (0 = first after the header).
        source: the file read.
    """

    series_names: np.ndarray
    series_code: np.ndarray
    world: np.ndarray
    label: np.ndarray | None
    row: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.row)

    @property
    def seriesuid(self) -> np.ndarray:
        """(N,) str series of each candidate (built on demand)."""
        return self.series_names[self.series_code]

    def series_of(self, i: int) -> str:
        """The series of candidate ``i``."""
        return str(self.series_names[self.series_code[i]])

    def select(self, mask_or_index) -> CandidateTable:
        """The candidates at a boolean mask or an index array, in that order."""
        label = None if self.label is None else self.label[mask_or_index]
        return CandidateTable(self.series_names, self.series_code[mask_or_index], self.world[mask_or_index], label,
                              self.row[mask_or_index], self.source)


def read_candidates(path: str | os.PathLike, require_label: bool = True) -> CandidateTable:
    """Read a LUNA16 candidates CSV.

    Args:
        path: the CSV file (header row with at least seriesuid, coordX, coordY, coordZ[, class]).
        require_label: the ``class`` column must be present (training, evaluation); False reads an
            unlabelled file (inference) and keeps ``class`` when it is there.

    Raises:
        FileNotFoundError: no such file.
        ValueError: empty file, a missing column, a value that is not a finite number, a class not 0/1.
    """
    columns = CANDIDATE_COLUMNS + ((LABEL_COLUMN,) if require_label else ())
    rows = read_luna16_rows(path, columns, optional=(LABEL_COLUMN,), kind="candidates file")
    if not rows.uids:
        raise ValueError(f"{rows.path}: the candidates file has a header but no candidates.")
    label = None
    if LABEL_COLUMN in rows.columns:
        label = rows.values[:, 3]
        bad = np.flatnonzero((label != 0) & (label != 1))
        if bad.size:
            raise ValueError(f"{rows.path}, line {rows.lines[bad[0]]}: {LABEL_COLUMN} must be 0 or 1, got {label[bad[0]]:g}.")
        label = label.astype(np.int8)
    names: dict[str, int] = {}
    codes = [names.setdefault(uid, len(names)) for uid in rows.uids]  # order of appearance
    return CandidateTable(
        series_names=np.asarray(list(names), dtype=str),
        series_code=np.asarray(codes, dtype=np.int32),
        world=np.ascontiguousarray(rows.values[:, :3]),
        label=label,
        row=np.arange(len(codes), dtype=np.int64),
        source=rows.path,
    )


def locate_candidates(
    table: CandidateTable,
    geometries: Mapping[str, tuple[np.ndarray, Sequence[int]]],
    on_bad: str = "error",
) -> tuple[CandidateTable, np.ndarray, np.ndarray, dict]:
    """Voxel centres of the candidates in their volumes, through each volume's origin, spacing and direction.

    Args:
        table: candidates from :func:`read_candidates`.
        geometries: {seriesuid: (4x4 voxel -> RAS affine, volume shape (X, Y, Z))} of the volumes at hand.
        on_bad: "error" raises on a candidate whose series has no volume or whose centre lies outside
            its volume; "skip" drops such candidates and counts them in the report.

    Returns:
        (kept candidates, (M,) int32 index of each one's series in ``sorted(geometries)``,
        (M, 3) float64 fractional voxel centres, report {"candidates", "kept", "missing_series",
        "outside_volume", "missing_series_examples", "outside_examples"}).

    Raises:
        ValueError: a bad candidate with ``on_bad="error"``, an unknown ``on_bad``, or nothing left.
    """
    if on_bad not in ("error", "skip"):
        raise ValueError(f"on_bad: expected 'error' or 'skip', got {on_bad!r}.")
    names = sorted(geometries)
    series_index = {uid: i for i, uid in enumerate(names)}
    code_to_index = np.array([series_index.get(str(uid), -1) for uid in table.series_names], dtype=np.int32)
    index = code_to_index[table.series_code] if len(table) else np.zeros(0, np.int32)
    missing = index < 0
    report = {"source": table.source, "candidates": int(len(table)),
              "missing_series": int(missing.sum()),
              "missing_series_examples": sorted(set(table.series_names[np.unique(table.series_code[missing])].tolist()))[:_SHOWN]}
    if missing.any() and on_bad == "error":
        raise ValueError(
            f"{table.source}: {report['missing_series']} candidate(s) refer to series with no volume in the volume "
            f"folder ({', '.join(report['missing_series_examples'])}{' ...' if missing.sum() > _SHOWN else ''}); add "
            "the volumes, or set on_bad='skip' to leave those candidates out (they are counted)."
        )
    voxels = np.full((len(table), 3), np.nan)
    outside = np.zeros(len(table), dtype=bool)
    for i in np.unique(index[~missing]):
        rows = np.flatnonzero(index == i)
        affine, shape = geometries[names[i]]
        voxels[rows] = np.atleast_2d(world_to_voxel(table.world[rows], affine, space="LPS"))
        centre = np.rint(voxels[rows])
        outside[rows] = ((centre < 0) | (centre >= np.asarray(shape))).any(axis=1)
    report["outside_volume"] = int(outside.sum())
    report["outside_examples"] = [
        {"line": int(table.row[r]) + 2, "seriesuid": table.series_of(r), "world": table.world[r].tolist(),
         "voxel": np.round(voxels[r], 1).tolist()}
        for r in np.flatnonzero(outside)[:_SHOWN]
    ]
    if outside.any() and on_bad == "error":
        first = report["outside_examples"][0]
        raise ValueError(
            f"{table.source}: {report['outside_volume']} candidate(s) lie outside their volume, e.g. line "
            f"{first['line']} ({first['seriesuid']}, world {first['world']} mm LPS -> voxel {first['voxel']}, volume "
            f"shape {list(geometries[first['seriesuid']][1])}); check that coordX/Y/Z are LPS millimetres, or set "
            "on_bad='skip' to leave them out (they are counted)."
        )
    keep = ~missing & ~outside
    report["kept"] = int(keep.sum())
    if not keep.any():
        raise ValueError(f"{table.source}: none of the {len(table)} candidates lies in an available volume.")
    if report["kept"] < len(table):
        logger.warning(
            "%s: skipped %d of %d candidates (%d with no volume, %d outside their volume)", table.source,
            len(table) - report["kept"], len(table), report["missing_series"], report["outside_volume"],
        )
    return table.select(keep), index[keep], voxels[keep], report


def cube_bounds(centre_voxel, cube_size: Sequence[int]) -> np.ndarray:
    """(3,) start index of a cube of ``cube_size`` whose voxel ``size // 2`` is the centre's nearest voxel."""
    return np.rint(np.asarray(centre_voxel, dtype=np.float64)).astype(np.int64) - np.asarray(cube_size) // 2


def cut_cube(volume, centre_voxel, cube_size: Sequence[int], pad_value: float = PAD_VALUE, dtype=np.float32) -> np.ndarray:
    """Cut a cube centred on a voxel, padding with ``pad_value`` where it reaches past the volume.

    Only the cube's voxels are read, so ``volume`` may be a memory map.

    Args:
        volume: (X, Y, Z) array.
        centre_voxel: (3,) fractional voxel index (rounded to the nearest voxel).
        cube_size: (H, W, D).
        pad_value: value outside the volume; default 0 (air in the windowed [0, 1] scale).
        dtype: output dtype; default float32.
    """
    size = np.asarray(cube_size, dtype=np.int64)
    start = cube_bounds(centre_voxel, size)
    stop = start + size
    shape = np.asarray(volume.shape[:3])
    low, high = np.maximum(start, 0), np.minimum(stop, shape)
    if (low == start).all() and (high == stop).all():
        return np.asarray(volume[start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]], dtype=dtype)
    cube = np.full(tuple(size), pad_value, dtype=dtype)
    if (high > low).all():
        src = tuple(slice(a, b) for a, b in zip(low, high))
        dst = tuple(slice(a - s, b - s) for a, b, s in zip(low, high, start))
        cube[dst] = volume[src]
    return cube
