"""Prepared candidate volumes: each CT read and windowed once, candidate cubes cut from memory maps.

LUNA16's candidates_V2.csv lists 754,975 candidates in 888 scans; their 64x64x32 cubes one by one
would take about 200 GB as float16. Instead each volume is read once (``load_volume``), windowed to
[0, 1] (docs/method.md §5.1: clipped to [-1000, 1000] HU and scaled) and written as one float16
``.npy``, 2 bytes per voxel like LUNA16's int16 ``.raw`` files, so the prepared data take about the
raw download's size. Cubes are then cut from ``np.load(mmap_mode="r")`` maps: only the cube's
voxels are read, and memory stays bounded whatever the number of scans.

Layout of ``output_dir``:
    volumes/<seriesuid>.npy    float16 (X, Y, Z) in [0, 1].
    volumes/<seriesuid>.json   {"seriesuid", "image", "shape", "affine" (voxel -> RAS), "subset"};
                               written after the .npy, so it marks a finished volume.
    split.json                 the series of each fold's training / validation / test sections,
                               written once and reused (never drawn again silently).
    prepare_config.json        the settings; a re-run with other settings is refused.
    summary.json               counts, skipped volumes, and the candidates report when a CSV was given.

Resumable: every file is written atomically; a re-run skips finished volumes, so a killed run loses
only the volume in flight.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import apply_transform
from tqdm import tqdm

from monai_genesis.data.atomic_write import save_npy_atomic, write_json_atomic
from monai_genesis.data.candidates import CandidateTable, cut_cube, locate_candidates, read_candidates
from monai_genesis.data.cube_loading import open_shard
from monai_genesis.data.datalist import SECTIONS, assign_folds, case_id_of, find_luna16_volumes, luna16_section, split_cases
from monai_genesis.data.io import load_volume

__all__ = [
    "HU_WINDOW",
    "VOLUME_DTYPE",
    "prepare_candidate_volumes",
    "read_split",
    "read_geometries",
    "CandidateDataset",
    "ensure_prepared",
]

logger = logging.getLogger(__name__)

HU_WINDOW = (-1000.0, 1000.0)  # docs/method.md §5.1: CT clipped to [-1000, 1000] HU, scaled to [0, 1]
VOLUME_DTYPE = np.float16  # 2 bytes per voxel, as LUNA16's int16 .raw files
_SLAB = 32  # x-slices windowed at a time: no float32 copy of a whole volume


def _read_json(path: str, what: str):
    try:
        with open(path) as stream:
            return json.load(stream)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: {what} is not valid JSON ({err}).") from None


def window(volume: np.ndarray, hu_window: Sequence[float] = HU_WINDOW) -> np.ndarray:
    """Clip HU to ``hu_window`` and scale to [0, 1] as float16, a slab at a time."""
    low, high = (float(v) for v in hu_window)
    out = np.empty(volume.shape, dtype=VOLUME_DTYPE)
    for start in range(0, volume.shape[0], _SLAB):
        slab = np.asarray(volume[start:start + _SLAB], dtype=np.float32)
        out[start:start + _SLAB] = np.clip((slab - low) / (high - low), 0.0, 1.0)
    return out


def _prepare_one(uid: str, image: str, subset, volumes_dir: str, hu_window) -> dict:
    """Read, window and write one volume; returns its geometry record (or a skip "reason")."""
    try:
        volume = load_volume(image, dtype=None)  # stored dtype (int16 for LUNA16): half the memory
    except (FileNotFoundError, ValueError) as err:
        return {"seriesuid": uid, "image": image, "reason": str(err)}
    save_npy_atomic(window(np.asarray(volume.as_tensor()), hu_window), os.path.join(volumes_dir, f"{uid}.npy"))
    record = {"seriesuid": uid, "image": image, "shape": [int(s) for s in volume.shape],
              "affine": np.asarray(volume.affine, dtype=np.float64).tolist(), "subset": subset}
    write_json_atomic(record, os.path.join(volumes_dir, f"{uid}.json"))
    return record


def _finished(volumes_dir: str, uid: str) -> dict | None:
    """The geometry record of a finished volume, None when it is to be (re)done."""
    meta_path, npy_path = (os.path.join(volumes_dir, f"{uid}{ext}") for ext in (".json", ".npy"))
    if not (os.path.isfile(meta_path) and os.path.isfile(npy_path)):
        return None
    try:
        record = _read_json(meta_path, "volume record")
        shape = np.load(npy_path, mmap_mode="r").shape
    except (ValueError, OSError):
        return None
    return record if list(shape) == record.get("shape") else None


def _draw_split(uids: list[str], subsets: dict | None, num_folds: int, val_fraction: float, test_fraction: float,
                seed: int) -> dict:
    """Folds of series: LUNA16 subsets when known, else cross-validation by series (num_folds > 1) or one drawn split."""
    if subsets is not None:
        fold = {name: sorted(u for u in uids if luna16_section(subsets[u]) == name) for name in SECTIONS}
        return {"kind": "luna16_subsets", "num_folds": 1, "seed": None, "folds": [fold]}
    if num_folds > 1:
        # each series is one patient's scan: test = fold f, validation drawn from the other folds
        assigned = assign_folds(uids, num_folds, seed)
        folds = []
        for f in range(num_folds):
            rest = sorted(u for u in uids if assigned[u] != f)
            inner = split_cases(rest, val_fraction, 0.0, seed + f)
            folds.append({"training": [u for u in rest if inner[u] == "training"],
                          "validation": [u for u in rest if inner[u] == "validation"],
                          "test": sorted(u for u in uids if assigned[u] == f)})
        return {"kind": "cross_validation", "num_folds": int(num_folds), "seed": int(seed), "folds": folds}
    drawn = split_cases(uids, val_fraction, test_fraction, seed)
    fold = {name: [u for u in sorted(uids) if drawn[u] == name] for name in SECTIONS}
    return {"kind": "drawn", "num_folds": 1, "seed": int(seed), "folds": [fold]}


def read_split(prepared_dir: str | os.PathLike, fold: int = 0) -> dict[str, list[str]]:
    """{"training": [seriesuid, ...], "validation": [...], "test": [...]} of one fold of ``split.json``."""
    path = os.path.join(os.fspath(prepared_dir), "split.json")
    split = _read_json(path, "split file (run `genesis prepare-candidates` first?)")
    folds = split.get("folds") if isinstance(split, dict) else None
    if not isinstance(folds, list) or not folds:
        raise ValueError(f"{path}: expected {{'folds': [{{'training': [...], 'validation': [...], 'test': [...]}}]}}.")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < len(folds):
        raise ValueError(f"fold: expected 0..{len(folds) - 1} ({path} holds {len(folds)} fold(s)), got {fold!r}.")
    return {name: list(folds[fold].get(name, [])) for name in SECTIONS}


def read_geometries(prepared_dir: str | os.PathLike, seriesuids: Sequence[str] | None = None) -> dict[str, dict]:
    """Geometry records {seriesuid: {"shape", "affine", "image", "subset"}} of the prepared volumes."""
    volumes_dir = os.path.join(os.fspath(prepared_dir), "volumes")
    if not os.path.isdir(volumes_dir):
        raise FileNotFoundError(f"{volumes_dir}: no prepared volumes (run `genesis prepare-candidates` first?).")
    if seriesuids is None:
        seriesuids = [os.path.basename(p)[:-5] for p in glob.glob(os.path.join(glob.escape(volumes_dir), "*.json"))]
    records = {}
    for uid in sorted(seriesuids):
        record = _finished(volumes_dir, uid)
        if record is not None:
            records[uid] = record
    return records


def prepare_candidate_volumes(
    images_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    candidates: str | os.PathLike | None = None,
    num_folds: int = 1,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    hu_window: Sequence[float] = HU_WINDOW,
    luna16_subsets: bool | None = None,
    progress: bool = True,
) -> dict:
    """Read and window every volume of ``images_dir`` once into ``output_dir`` (layout in the module docstring).

    Args:
        images_dir: folder of volumes named ``<seriesuid>.mhd`` / ``.nii.gz`` (recursive), e.g. the LUNA16
            root with its ``subset0..9`` folders.
        output_dir: where the prepared volumes, ``split.json`` and ``summary.json`` go.
        candidates: optional candidates CSV, checked against the prepared volumes (the report in summary.json).
        num_folds: without LUNA16 subsets, > 1 draws cross-validation folds by series (ECC: 3); 1 draws
            one training / validation / test split.
        val_fraction: share of validation series (of the non-test series with ``num_folds`` > 1).
        test_fraction: share of test series of the single drawn split.
        seed: seed of a drawn split.
        hu_window: HU window scaled to [0, 1]; default (-1000, 1000).
        luna16_subsets: None detects ``subsetN`` folders; True requires them; False ignores them.
        progress: show a tqdm progress bar.

    Returns:
        The summary written to ``output_dir/summary.json``.
    """
    output_dir = os.fspath(output_dir)
    hu_window = [float(v) for v in hu_window]
    if len(hu_window) != 2 or not hu_window[0] < hu_window[1]:
        raise ValueError(f"hu_window: expected (low, high) with low < high, got {hu_window}.")
    if isinstance(num_folds, bool) or not isinstance(num_folds, int) or num_folds < 1:
        raise ValueError(f"num_folds: expected a positive integer, got {num_folds!r}.")
    paths, subsets = find_luna16_volumes(images_dir, luna16_subsets)
    uids = [case_id_of(p) for p in paths]
    volumes_dir = os.path.join(output_dir, "volumes")
    os.makedirs(volumes_dir, exist_ok=True)

    config = {"hu_window": hu_window, "dtype": np.dtype(VOLUME_DTYPE).name}
    config_path = os.path.join(output_dir, "prepare_config.json")
    if os.path.exists(config_path):
        previous = _read_json(config_path, "prepare_config.json")
        if previous != config:
            raise ValueError(f"{output_dir} holds volumes prepared with {previous}, not {config}; use a new output_dir.")
    else:
        write_json_atomic(config, config_path)

    split_path = os.path.join(output_dir, "split.json")
    split_subsets = {u: subsets[p] for u, p in zip(uids, paths)} if subsets is not None else None
    wanted = _draw_split(uids, split_subsets, num_folds, val_fraction, test_fraction, seed)
    if os.path.exists(split_path):
        existing = _read_json(split_path, "split file")
        if existing != wanted:
            existing_ids = {u for fold in existing.get("folds", []) for s in SECTIONS for u in fold.get(s, [])}
            reason = ("other series" if existing_ids != set(uids) else
                      f"other settings (kind {existing.get('kind')}, {existing.get('num_folds')} fold(s), seed "
                      f"{existing.get('seed')})")
            raise ValueError(
                f"{split_path} was written for {reason}; it is never redrawn silently: use a new output_dir, or "
                "delete split.json to draw the split again."
            )
    else:
        write_json_atomic(wanted, split_path)

    for stale in glob.glob(os.path.join(glob.escape(volumes_dir), "*.tmp")):
        os.remove(stale)  # left by a killed run; finished volumes are untouched
    counts = {"prepared_now": 0, "reused": 0}
    skipped = []
    todo = []
    for uid, path in zip(uids, paths):
        if _finished(volumes_dir, uid) is not None:
            counts["reused"] += 1
        else:
            todo.append((uid, path))
    for uid, path in tqdm(todo, desc="prepare-candidates", unit="volume", disable=not progress):
        subset = subsets[path] if subsets is not None else None
        record = _prepare_one(uid, path, subset, volumes_dir, hu_window)
        if "reason" in record:
            skipped.append(record)
        else:
            counts["prepared_now"] += 1
    summary = {"volumes": len(uids), **counts, "skipped": skipped, "split": wanted["kind"],
               "num_folds": wanted["num_folds"], "settings": config}
    if candidates is not None:
        geometries = {u: (r["affine"], r["shape"]) for u, r in read_geometries(output_dir, uids).items()}
        table = read_candidates(candidates, require_label=False)
        _, _, _, report = locate_candidates(table, geometries, on_bad="skip")
        summary["candidates"] = report
    write_json_atomic(summary, os.path.join(output_dir, "summary.json"))
    return summary


class CandidateDataset(torch.utils.data.Dataset):
    """Candidate cubes of one section of a prepared folder, cut on demand from memory-mapped volumes.

    Items are dicts: "image" (1, H, W, D) float32 ``MetaTensor`` in [0, 1], "label" (1,) float32
    (absent for an unlabelled file), "seriesuid", "world" (3,) float64 LPS mm and "row" (the
    candidate's data row in the CSV), so that scores can be written back as a submission.

    Args:
        prepared_dir: output folder of :func:`prepare_candidate_volumes`.
        candidates: the candidates CSV (LUNA16 columns).
        section: "training", "validation", "test", or "all" (every prepared series).
        fold: fold of ``split.json`` (cross-validation); 0 for LUNA16 subsets.
        cube_size: (H, W, D); NCC 64x64x32, ECC 64x64x64.
        on_bad: "error" or "skip" for candidates whose series has no prepared volume or that lie
            outside their volume (see :func:`~monai_genesis.data.candidates.locate_candidates`).
        require_label: the CSV must hold ``class``.
        transform: optional transform applied to each item dict.
    """

    def __init__(
        self,
        prepared_dir: str | os.PathLike,
        candidates: str | os.PathLike | CandidateTable,
        section: str = "training",
        fold: int = 0,
        cube_size: Sequence[int] = (64, 64, 32),
        on_bad: str = "error",
        require_label: bool = True,
        transform=None,
    ) -> None:
        self.prepared_dir = os.path.abspath(os.fspath(prepared_dir))
        self.cube_size = tuple(int(s) for s in cube_size)
        if len(self.cube_size) != 3 or min(self.cube_size) < 1:
            raise ValueError(f"cube_size: expected three positive integers (H, W, D), got {cube_size!r}.")
        if section not in (*SECTIONS, "all"):
            raise ValueError(f"section: expected one of {', '.join(SECTIONS)} or 'all', got {section!r}.")
        records = read_geometries(self.prepared_dir)
        if not records:
            raise ValueError(f"{self.prepared_dir}: no finished prepared volume (run `genesis prepare-candidates`).")
        table = candidates if isinstance(candidates, CandidateTable) else read_candidates(candidates, require_label)
        if require_label and table.label is None:
            raise ValueError(f"{table.source}: the candidates have no 'class' column.")
        geometries = {u: (r["affine"], r["shape"]) for u, r in records.items()}
        table, index, voxels, self.report = locate_candidates(table, geometries, on_bad=on_bad)
        names = sorted(geometries)
        if section != "all":
            members = set(read_split(self.prepared_dir, fold)[section])
            keep = np.array([names[i] in members for i in index], dtype=bool)
            table, index, voxels = table.select(keep), index[keep], voxels[keep]
        self.report.update(section=section, fold=fold, in_section=int(len(table)))
        self.table = table
        self.volume_index = index
        self.voxels = voxels.astype(np.float32)
        self.volume_paths = [os.path.join(self.prepared_dir, "volumes", f"{u}.npy") for u in names]
        self.transform = transform

    @property
    def labels(self) -> np.ndarray | None:
        """(N,) int8 classes of the candidates (None when unlabelled)."""
        return self.table.label

    def __len__(self) -> int:
        return len(self.table)

    def cube(self, i: int) -> np.ndarray:
        """The float32 (H, W, D) cube of candidate ``i``."""
        return cut_cube(open_shard(self.volume_paths[self.volume_index[i]]), self.voxels[i], self.cube_size)

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        uid = self.table.series_of(i)
        meta = {"filename_or_obj": self.volume_paths[self.volume_index[i]], "seriesuid": uid,
                "candidate_voxel": self.voxels[i].tolist()}
        item = {"image": MetaTensor(torch.from_numpy(self.cube(i))[None], meta=meta), "seriesuid": uid,
                "world": torch.from_numpy(self.table.world[i].copy()), "row": int(self.table.row[i])}
        if self.table.label is not None:
            item["label"] = torch.tensor([float(self.table.label[i])])
        return apply_transform(self.transform, item) if self.transform is not None else item


def ensure_prepared(
    prepared_dir: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    num_folds: int = 1,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> str:
    """The bundles' ``dataset_dir``: prepared from ``images_dir`` first when that is given, else checked.

    With ``images_dir`` set, :func:`prepare_candidate_volumes` runs (resumable: finished volumes are
    only checked, so a second run costs a folder scan) and the split it writes is reused as it stands.

    Returns:
        ``prepared_dir`` as a string.

    Raises:
        FileNotFoundError: no ``images_dir`` and ``prepared_dir`` holds no ``split.json``.
    """
    prepared_dir = os.fspath(prepared_dir)
    if images_dir not in (None, "") and str(images_dir).strip():
        prepare_candidate_volumes(images_dir, prepared_dir, num_folds=num_folds, val_fraction=val_fraction,
                                  test_fraction=test_fraction, seed=seed)
    elif not os.path.isfile(os.path.join(prepared_dir, "split.json")):
        raise FileNotFoundError(
            f"dataset_dir '{prepared_dir}' holds no prepared volumes (no split.json): run `genesis prepare-candidates "
            "IMAGES_DIR DATASET_DIR` first, or set images_dir to the folder of scans to prepare them now."
        )
    return prepared_dir
