"""MSD-style JSON datalists: deterministic splits from image/label folders or LUNA16 subsets, and the cube datalists
that ``prepare_cubes`` writes, checked before training starts.

The files follow the Medical Segmentation Decathlon layout read by
``monai.data.load_decathlon_datalist``: "training" / "validation" / "test" lists of dicts whose
"image"/"label" paths are relative to the JSON file. Splits depend only on the sorted case ids and
the seed, never on the file system's listing order.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence

import numpy as np
from monai.data import load_decathlon_datalist

from monai_genesis.data.atomic_write import write_json_atomic
from monai_genesis.data.io import VOLUME_SUFFIXES, volume_suffix

__all__ = [
    "SECTIONS",
    "LUNA16_SUBSET_FOLDS",
    "case_id_of",
    "find_volumes",
    "find_luna16_volumes",
    "luna16_subset_of",
    "luna16_section",
    "assign_folds",
    "split_cases",
    "make_datalist",
    "load_cube_datalist",
]

SECTIONS = ("training", "validation", "test")
# docs/method.md §3.1: LUNA16 subsets 0-4 train, 5-6 validation, 7-9 held out.
LUNA16_SUBSET_FOLDS = {**dict.fromkeys(range(5), "training"), 5: "validation", 6: "validation",
                       **dict.fromkeys(range(7, 10), "test")}
_SUBSET_DIR = re.compile(r"^subset(\d)$")


def case_id_of(path: str | os.PathLike) -> str:
    """Case id of a volume file: its name without the volume suffix ("lung_001.nii.gz" -> "lung_001")."""
    name = os.path.basename(os.path.normpath(os.fspath(path)))
    suffix = volume_suffix(name)
    return name[: -len(suffix)] if suffix else name


def luna16_subset_of(path: str | os.PathLike) -> int | None:
    """The LUNA16 subset number (0-9) of a file inside a ``subsetN`` folder, else None."""
    for part in reversed(os.path.normpath(os.fspath(path)).split(os.sep)[:-1]):
        match = _SUBSET_DIR.match(part)
        if match:
            return int(match.group(1))
    return None


def luna16_section(subset: int) -> str:
    """"training", "validation" or "test" for a LUNA16 subset, as in the published pretraining."""
    if subset not in LUNA16_SUBSET_FOLDS:
        raise ValueError(f"LUNA16 subset must be 0-9, got {subset}.")
    return LUNA16_SUBSET_FOLDS[subset]


def _scan_volumes(folder: str | os.PathLike) -> list[str]:
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise FileNotFoundError(f"{folder}: no such folder.")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"{folder}: expected a folder of volumes.")
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        paths += [os.path.join(root, f) for f in files if not f.startswith(".") and volume_suffix(f)]
    if not paths:
        raise ValueError(f"{folder}: no volumes found (looked for {', '.join(VOLUME_SUFFIXES)} files).")
    return sorted(paths)


def find_volumes(folder: str | os.PathLike) -> list[str]:
    """Sorted paths of every NIfTI/MetaImage volume under ``folder`` (recursively, hidden files skipped).

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        NotADirectoryError: ``folder`` is a file.
        ValueError: no volume was found, or two volumes share a case id.
    """
    paths = _scan_volumes(folder)
    _check_unique_ids(paths)
    return paths


def find_luna16_volumes(folder: str | os.PathLike, luna16_subsets: bool | None = None) -> tuple[list[str], dict | None]:
    """Volumes of ``folder`` and, in LUNA16 mode, their subset numbers.

    LUNA16 mode (``luna16_subsets`` True, or None with any ``subset0..9`` folder present) keeps only
    the volumes inside subset folders, so that the LUNA16 root can be given as it is distributed
    (its ``seg-lungs-LUNA16`` masks share the scans' names and are left out).

    Returns:
        (sorted paths, {path: subset} or None when not in LUNA16 mode).
    """
    folder = os.fspath(folder)
    paths = _scan_volumes(folder)
    subsets = {p: luna16_subset_of(os.path.relpath(p, folder)) for p in paths}
    found = any(s is not None for s in subsets.values())
    if luna16_subsets and not found:
        raise ValueError(f"{folder}: luna16_subsets=True but no volume lies in a subset0..subset9 folder.")
    if luna16_subsets is False or not found:
        _check_unique_ids(paths)
        return paths, None
    paths = [p for p in paths if subsets[p] is not None]
    _check_unique_ids(paths)
    return paths, {p: subsets[p] for p in paths}


def _check_unique_ids(paths: Iterable[str]) -> None:
    seen: dict[str, str] = {}
    for path in paths:
        case = case_id_of(path)
        if case in seen:
            raise ValueError(f"two volumes share the case id {case!r}: {seen[case]} and {path}; rename one.")
        seen[case] = path


def assign_folds(case_ids: Sequence[str], num_folds: int = 5, seed: int = 0) -> dict[str, int]:
    """Deterministic cross-validation folds: shuffle the sorted ids with ``seed``, deal them round-robin."""
    if int(num_folds) != num_folds or num_folds < 1:
        raise ValueError(f"num_folds: expected a positive integer, got {num_folds!r}.")
    ordered = sorted(set(case_ids))
    order = np.random.default_rng(seed).permutation(len(ordered))
    return {ordered[i]: int(rank % num_folds) for rank, i in enumerate(order)}


def split_cases(
    case_ids: Sequence[str], val_fraction: float = 0.2, test_fraction: float = 0.1, seed: int = 0
) -> dict[str, str]:
    """Deterministic training/validation/test split of case ids (sorted, then shuffled with ``seed``).

    Each held-out section gets ``round(fraction x n)`` cases, and at least one case when its fraction
    is positive and at least one case stays for training.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name}: expected a value in [0, 1), got {value}.")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}.")
    ordered = sorted(set(case_ids))
    n = len(ordered)
    counts = []
    for fraction in (test_fraction, val_fraction):
        count = int(round(fraction * n))
        if fraction > 0 and count == 0 and n - sum(counts) > 1:
            count = 1
        counts.append(min(count, max(n - sum(counts) - 1, 0)))
    n_test, n_val = counts
    shuffled = [ordered[i] for i in np.random.default_rng(seed).permutation(n)]
    split = {case: "test" for case in shuffled[:n_test]}
    split.update({case: "validation" for case in shuffled[n_test : n_test + n_val]})
    split.update({case: "training" for case in shuffled[n_test + n_val :]})
    return {case: split[case] for case in ordered}


def _relative(path: str, start: str) -> str:
    return os.path.relpath(os.path.abspath(path), start).replace(os.sep, "/")


def _match_labels(images: list[str], labels_dir: str) -> dict[str, str]:
    labels = {case_id_of(p): p for p in find_volumes(labels_dir)}
    missing = [case_id_of(p) for p in images if case_id_of(p) not in labels]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{labels_dir}: no label for {len(missing)} image(s) ({shown}); a label must share its image's "
            "file name (case id)."
        )
    return labels


def make_datalist(
    images_dir: str | os.PathLike,
    output_json: str | os.PathLike | None = None,
    labels_dir: str | os.PathLike | None = None,
    num_folds: int = 5,
    seed: int = 0,
    val_fold: int | None = 0,
    test_dir: str | os.PathLike | None = None,
    luna16_subsets: bool | None = None,
) -> dict:
    """Build (and optionally write) an MSD-style datalist with deterministic folds.

    Two layouts:
        * image (and label) folders: every case goes to "training" with a "fold" in
          0..num_folds-1 (:func:`assign_folds`); cases of fold ``val_fold`` go to "validation"
          instead (keeping their "fold"); volumes under ``test_dir`` form "test".
        * LUNA16 (``subset0`` .. ``subset9`` folders): subsets 0-4 "training", 5-6 "validation",
          7-9 "test"; each item carries its "subset", and "fold" is the subset number.

    Args:
        images_dir: folder of volumes (searched recursively), or the LUNA16 root.
        output_json: where to write the JSON; paths inside are relative to its folder. None: do not write.
        labels_dir: folder of label volumes named like their images; adds "label" to every item.
        num_folds: number of cross-validation folds; default 5.
        seed: seed of the fold assignment; default 0.
        val_fold: fold moved to "validation"; None keeps every case in "training".
        test_dir: optional folder of unlabelled test volumes.
        luna16_subsets: None detects ``subsetN`` folders; True requires them; False ignores them.
            In LUNA16 mode only volumes inside subset folders are listed.

    Returns:
        The datalist dict (as written).
    """
    images_dir = os.fspath(images_dir)
    images, subsets = find_luna16_volumes(images_dir, luna16_subsets)
    luna = subsets is not None
    base = os.path.dirname(os.path.abspath(output_json)) if output_json is not None else os.getcwd()
    if val_fold is not None and not 0 <= val_fold < num_folds:
        raise ValueError(f"val_fold: expected None or 0..{num_folds - 1}, got {val_fold}.")
    labels = _match_labels(images, os.fspath(labels_dir)) if labels_dir is not None else {}

    datalist: dict = {"name": os.path.basename(os.path.abspath(images_dir)), "tensorImageSize": "3D"}
    sections: dict[str, list] = {name: [] for name in SECTIONS}
    folds = assign_folds([case_id_of(p) for p in images], num_folds, seed) if not luna else {}
    for path in images:
        case = case_id_of(path)
        item = {"image": _relative(path, base)}
        if case in labels:
            item["label"] = _relative(labels[case], base)
        if luna:
            item["subset"] = item["fold"] = subsets[path]
            sections[luna16_section(subsets[path])].append(item)
        else:
            item["fold"] = folds[case]
            sections["validation" if folds[case] == val_fold else "training"].append(item)
    if test_dir is not None:
        sections["test"] += [{"image": _relative(p, base)} for p in find_volumes(test_dir)]
    datalist.update(sections)
    datalist.update(
        numTraining=len(sections["training"]),
        numValidation=len(sections["validation"]),
        numTest=len(sections["test"]),
        split={"kind": "luna16_subsets" if luna else "folds", "num_folds": None if luna else num_folds,
               "seed": None if luna else seed, "val_fold": None if luna else val_fold},
    )
    if output_json is not None:
        write_json_atomic(datalist, output_json)
    return datalist


def load_cube_datalist(
    datalist: str | os.PathLike,
    section: str = "training",
    cube_size: Sequence[int] | None = None,
    image_key: str = "image",
    index_key: str = "cube_index",
) -> list[dict]:
    """
    Load one section of a cube datalist (``{"training": [{"image": "cubes/<case>.npy", "cube_index": i}, ...]}``,
    paths relative to the JSON file) and check it, so that a wrong dataset fails here with a clear
    message instead of deep inside a data loader worker.

    Args:
        datalist: path of the datalist JSON written by ``prepare_cubes``.
        section: which list to read ("training", "validation" or "test"). Defaults to "training".
        cube_size: expected (H, W, D) of every cube; None skips the size check.
        image_key: key of the cube file path in each item. Defaults to "image".
        index_key: key of the cube index inside that file. Defaults to "cube_index".

    Returns:
        the items with absolute paths, in file order.

    Raises:
        FileNotFoundError: the datalist or a cube file it names does not exist.
        ValueError: the datalist is not valid JSON, the section is missing or empty, or a cube
            file holds cubes of another size or fewer cubes than an index asks for.
    """
    path = os.path.abspath(os.fspath(datalist))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"cube datalist '{path}' does not exist: set dataset_dir (or datalist) to the output folder of prepare_cubes."
        )
    try:
        with open(path) as f:
            sections = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"cube datalist '{path}' is not valid JSON: {e}.") from e
    if not isinstance(sections, dict) or section not in sections:
        found = sorted(sections) if isinstance(sections, dict) else type(sections).__name__
        raise ValueError(f"cube datalist '{path}' has no '{section}' section (found: {found}).")
    if not sections[section]:
        raise ValueError(f"section '{section}' of cube datalist '{path}' is empty: there are no cubes to use.")
    items = load_decathlon_datalist(path, is_segmentation=False, data_list_key=section)
    _check_cube_files(items, path, section, cube_size, image_key, index_key)
    return items


def _check_cube_files(items, path, section, cube_size, image_key, index_key) -> None:
    """Open each cube file once (memory-mapped: only its header is read) and check sizes and indices."""
    largest_index: dict[str, int] = {}
    for item in items:
        if image_key not in item or index_key not in item:
            raise ValueError(f"an item of section '{section}' in '{path}' lacks '{image_key}' or '{index_key}': {item}.")
        largest_index[item[image_key]] = max(largest_index.get(item[image_key], -1), int(item[index_key]))
    for cube_file, index in largest_index.items():
        if not os.path.isfile(cube_file):
            raise FileNotFoundError(f"cube file '{cube_file}' listed in '{path}' does not exist.")
        try:
            shape = np.load(cube_file, mmap_mode="r").shape
        except (ValueError, OSError, EOFError) as error:  # e.g. "mmap length is greater than file size"
            raise ValueError(
                f"cube file '{cube_file}' listed in '{path}' is truncated or not a .npy array ({error}); "
                "run `genesis prepare-cubes` again on the same output folder: it redoes unreadable shards."
            ) from None
        if len(shape) != 4:
            raise ValueError(f"cube file '{cube_file}' should hold an array (N, H, W, D) of cubes, got shape {shape}.")
        if cube_size is not None and tuple(shape[1:]) != tuple(int(s) for s in cube_size):
            raise ValueError(
                f"cube file '{cube_file}' holds cubes of size {tuple(shape[1:])}, but cube_size is "
                f"{tuple(cube_size)}: prepare the cubes again with this size, or set cube_size to match."
            )
        if index >= shape[0]:
            raise ValueError(f"'{path}' asks for cube {index} of '{cube_file}', which holds only {shape[0]} cubes.")
