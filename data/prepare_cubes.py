"""`genesis prepare-cubes`: pretraining cubes from a folder or datalist of CT volumes (docs/method.md §3.1).

Output layout (all paths relative to ``output_dir``):
    cubes/<case_id>.npy   float16 (N, H, W, D) cubes in [0, 1], ``np.load(mmap_mode="r")``-able.
    split.json            {case_id: "training" | "validation" | "test"}, written once and reused.
    datalist.json         MSD-style {"training": [{"image": "cubes/<case>.npy", "cube_index": i}, ...], ...}.
    summary.json          counts and the skipped volumes with their reasons.
    prepare_config.json   the extraction settings; a re-run with different settings is refused.

Resumable: every file is written to a temporary name and renamed into place, and a re-run skips
cases whose shard exists, so an interrupted run (Ctrl-C, crash) loses only the volumes in flight.
"""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import signal
import sys
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
import torch
from tqdm import tqdm

from monai_genesis.data.atomic_write import save_npy_atomic, write_json_atomic
from monai_genesis.data.cube_extraction import VolumeTooSmallError, extract_cubes
from monai_genesis.data.datalist import (
    SECTIONS,
    case_id_of,
    find_luna16_volumes,
    luna16_section,
    split_cases,
)
from monai_genesis.data.io import CANONICAL_AXCODES, InputWarning, load_volume

__all__ = ["SHARD_DTYPE", "NoTrainingCubesError", "collect_cases", "load_split", "prepare_cubes"]

SHARD_DTYPE = np.float16  # 2 bytes per voxel: 15,000 cubes of 64x64x32 take 3.9 GB.
# A volume with at most this many distinct values (in a strided sample) is a label map, not a CT.
_MAX_LABEL_VALUES = 32
# Kept cubes whose voxels are mostly at or below this HU are air (around a head, outside the body).
_AIR_HU = -950.0
_AIR_SHARE_WARNING = 0.9
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")


class NoTrainingCubesError(ValueError):
    """The run wrote no training cubes (every volume skipped, or none assigned to training)."""


def _parse_triple(value, name: str) -> tuple[int, int, int]:
    """Accept (a, b, c) or "a,b,c" (as typed on the command line)."""
    if isinstance(value, str):
        value = [v for v in value.replace("x", ",").split(",") if v.strip()]
    try:
        values = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected three integers such as 100,100,30, got {value!r}.") from None
    if len(values) != 3:
        raise ValueError(f"{name}: expected three integers such as 100,100,30, got {value!r}.")
    return values


def _read_json(path: str, what: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: {what} not found.")
    try:
        with open(path) as stream:
            return json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: {what} is not valid JSON ({err}).") from None


def collect_cases(inputs: str | os.PathLike, luna16_subsets: bool | None = None) -> list[dict]:
    """List the cases of a folder of volumes or of an MSD-style datalist JSON.

    Args:
        inputs: a folder (NIfTI/MetaImage files, recursively) or a JSON datalist whose
            "training"/"validation"/"test" items are paths or dicts with an "image" path.
        luna16_subsets: None detects LUNA16 ``subset0..9`` folders; True requires them; False ignores them.
            In LUNA16 mode only volumes inside subset folders are used (not ``seg-lungs-LUNA16``).

    Returns:
        Sorted list of {"case_id", "image", "section"} dicts; "section" is the datalist section or
        the LUNA16 subset's section, None when the split is still to be drawn.
    """
    inputs = os.fspath(inputs)
    if not os.path.exists(inputs):
        raise FileNotFoundError(f"{inputs}: no such folder or datalist file.")
    cases = []
    if os.path.isdir(inputs):
        paths, subsets = find_luna16_volumes(inputs, luna16_subsets)
        for path in paths:
            section = luna16_section(subsets[path]) if subsets is not None else None
            cases.append({"case_id": case_id_of(path), "image": path, "section": section})
    elif inputs.lower().endswith(".json"):
        data = _read_json(inputs, "datalist")
        if not isinstance(data, dict) or not any(isinstance(data.get(s), list) for s in SECTIONS):
            raise ValueError(f"{inputs}: a datalist needs a 'training', 'validation' or 'test' list.")
        base = os.path.dirname(os.path.abspath(inputs))
        for section in SECTIONS:
            for item in data.get(section) or []:
                image = item.get("image") if isinstance(item, dict) else item
                if not isinstance(image, str):
                    raise ValueError(f"{inputs}: every '{section}' item needs an 'image' path, got {item!r}.")
                path = image if os.path.isabs(image) else os.path.normpath(os.path.join(base, image))
                cases.append({"case_id": case_id_of(path), "image": path, "section": section})
        seen: dict[str, str] = {}
        for case in cases:
            if seen.setdefault(case["case_id"], case["image"]) != case["image"]:
                raise ValueError(f"{inputs}: two images share the case id {case['case_id']!r}; rename one.")
    else:
        raise ValueError(f"{inputs}: expected a folder of volumes or a .json datalist.")
    if not cases:
        raise ValueError(f"{inputs}: the datalist lists no images.")
    return sorted(cases, key=lambda c: c["case_id"])


def load_split(path: str | os.PathLike) -> dict[str, str]:
    """Read a split file: {case_id: section} or {section: [case_id, ...]} (sections training/validation/test)."""
    path = os.fspath(path)
    data = _read_json(path, "split file")
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        data = {case: section for section, ids in data.items() for case in ids}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path}: expected {{case_id: section}} or {{section: [case_id, ...]}}.")
    bad = sorted({v for v in data.values() if v not in SECTIONS})
    if bad:
        raise ValueError(f"{path}: unknown section(s) {bad}; expected {list(SECTIONS)}.")
    return data


def _given_split(cases, output_dir, split) -> tuple[dict[str, str], dict[str, str]]:
    """(split.json of an earlier run, that plus `split` and the cases' own sections), checked before any work."""
    split_path = os.path.join(output_dir, "split.json")
    existing = load_split(split_path) if os.path.exists(split_path) else {}
    assigned = dict(existing)
    if split is not None:
        given = load_split(split)
        conflicts = sorted(c for c in given if c in existing and existing[c] != given[c])
        if conflicts:
            raise ValueError(
                f"{split}: disagrees with {split_path} for {conflicts[:5]}; use a new output_dir to change the split."
            )
        missing = [c["case_id"] for c in cases if c["case_id"] not in given and c["case_id"] not in existing]
        if missing:
            raise ValueError(f"{split}: no section for case(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}.")
        assigned.update(given)
    assigned.update({c["case_id"]: c["section"] for c in cases if c["case_id"] not in assigned and c["section"]})
    return existing, assigned


def _draw_split(assigned, existing, with_cubes, output_dir, val_fraction, test_fraction, seed) -> dict[str, str]:
    """Draw the split of the volumes that gave cubes and have no section yet (after reading them, so that a
    skipped volume takes no validation or test slot); write split.json."""
    undecided = [case for case in with_cubes if case not in assigned]
    if undecided:
        assigned = {**assigned, **split_cases(undecided, val_fraction, test_fraction, seed)}
    if assigned != existing:
        write_json_atomic(dict(sorted(assigned.items())), os.path.join(output_dir, "split.json"))
    return assigned


def _check_config(output_dir: str, config: dict) -> None:
    path = os.path.join(output_dir, "prepare_config.json")
    if os.path.exists(path):
        previous = _read_json(path, "prepare_config.json")
        changed = sorted(k for k in config if previous.get(k) != config[k])
        if changed:
            details = ", ".join(f"{k}: {previous.get(k)} -> {config[k]}" for k in changed)
            raise ValueError(
                f"{output_dir} holds cubes prepared with other settings ({details}); use a new output_dir "
                "or delete the old one."
            )
    else:
        write_json_atomic(config, path)


def _case_rng(seed: int, case_id: str) -> np.random.Generator:
    # Per-case stream: results do not depend on worker count or processing order.
    return np.random.default_rng([int(seed), zlib.crc32(case_id.encode("utf-8"))])


def _process_case(case_id: str, image: str, shard: str, seed: int, options: dict) -> dict:
    """Load one volume, extract its cubes, write its shard; return {"case_id", "num_cubes"} or a skip "reason"."""
    try:
        # stored dtype (int16 for LUNA16): half the memory; canonical orientation: the axial axis last
        volume = load_volume(image, dtype=None, orientation=CANONICAL_AXCODES)
    except (FileNotFoundError, ValueError) as err:
        return {"case_id": case_id, "reason": f"unreadable: {err}"}
    array = np.asarray(volume.as_tensor())
    label_values = _label_values(array)
    if label_values is not None:
        return {"case_id": case_id, "reason": f"a label map, not a CT in HU (values {label_values})"}
    try:
        cubes = extract_cubes(array, seed=_case_rng(seed, case_id), **options)
    except VolumeTooSmallError as err:
        return {"case_id": case_id, "reason": str(err)}
    except ValueError as err:
        return {"case_id": case_id, "reason": f"unreadable: {err}"}
    if len(cubes) == 0:
        draws = options["num_cubes"] * options.get("max_draws_per_cube", 50)
        reason = f"no lung-like crops: none of {draws} random crops passed the lung filter"
        return {"case_id": case_id, "reason": reason}
    save_npy_atomic(cubes.astype(SHARD_DTYPE), shard)
    result = {"case_id": case_id, "num_cubes": int(len(cubes))}
    low, high = options["hu_window"]
    air_share = float((cubes <= (_AIR_HU - low) / (high - low)).mean())
    if air_share >= _AIR_SHARE_WARNING:
        result["warning"] = (
            f"{air_share:.0%} of its cube voxels are air (<= {_AIR_HU:g} HU), not lung: is it a chest CT? "
            "(air around a head or the body passes the lung filter; keep the margins inside the body)"
        )
    return result


def _label_values(array: np.ndarray) -> list | None:
    """The distinct values of an integer volume that has only a few (a label map), else None."""
    if not np.issubdtype(array.dtype, np.integer):
        return None
    sample = array.reshape(-1)[:: max(1, array.size // 2_000_000)]
    values = np.unique(sample)
    # labels: a background of 0 and a few classes; a CT in HU has air (-1000) and many values
    if len(values) < 2 or len(values) > _MAX_LABEL_VALUES or values[0] != 0:
        return None
    return [int(v) for v in values[:8]] + (["..."] if len(values) > 8 else [])


def _init_worker() -> None:
    """Single-threaded workers that leave Ctrl-C to the parent (which lets in-flight volumes finish)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)  # ITK reads ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1 from the environment


def _shard_cube_count(path: str, cube_size: tuple[int, int, int]) -> int | None:
    """Cubes in an existing shard, None when it is absent or unreadable (then it is redone)."""
    if not os.path.isfile(path):
        return None
    try:
        shape = np.load(path, mmap_mode="r").shape
    except (ValueError, OSError):
        return None
    if len(shape) != 4 or tuple(shape[1:]) != tuple(cube_size):
        raise ValueError(
            f"{path}: holds cubes of shape {shape[1:]}, expected {tuple(cube_size)}; use a new output_dir."
        )
    return int(shape[0])


def _write_outputs(output_dir, cases, assigned, cube_size, skipped, warned, counts, interrupted, config) -> dict:
    sections: dict[str, list] = {name: [] for name in SECTIONS}
    cubes_per_section = dict.fromkeys(SECTIONS, 0)
    for case in cases:
        case_id = case["case_id"]
        n = _shard_cube_count(os.path.join(output_dir, "cubes", f"{case_id}.npy"), cube_size)
        if not n or case_id not in assigned:  # no cubes, or an interrupted run whose split is not drawn yet
            continue
        section = assigned[case_id]
        sections[section] += [
            {"image": f"cubes/{case_id}.npy", "cube_index": i, "case_id": case_id} for i in range(n)
        ]
        cubes_per_section[section] += n
    datalist = {
        "name": "Models Genesis pretraining cubes",
        "description": "float16 cubes in [0, 1] (HU window clipped and scaled); load with LoadCubed(keys='image').",
        "tensorImageSize": "3D",
        "cube_size": list(cube_size),
        "dtype": np.dtype(SHARD_DTYPE).name,
        "hu_window": config["hu_window"],
        **sections,
        "numTraining": len(sections["training"]),
        "numValidation": len(sections["validation"]),
        "numTest": len(sections["test"]),
    }
    write_json_atomic(datalist, os.path.join(output_dir, "datalist.json"))
    summary = {
        "interrupted": interrupted,
        "volumes": len(cases),
        "volumes_with_cubes": len({i["case_id"] for s in SECTIONS for i in sections[s]}),
        "processed_now": counts["processed"],
        "reused": counts["reused"],
        "cubes": cubes_per_section,
        "skipped": [skipped[c] for c in sorted(skipped)],
        "warnings": dict(sorted(warned.items())),
        "settings": config,
    }
    write_json_atomic(summary, os.path.join(output_dir, "summary.json"))
    return summary


def prepare_cubes(
    inputs: str | os.PathLike,
    output_dir: str | os.PathLike,
    scale: int = 32,
    cube_size: Sequence[int] | str = (64, 64, 32),
    margins: Sequence[int] | str = (100, 100, 30),
    workers: int = 1,
    seed: int = 0,
    split: str | os.PathLike | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.1,
    luna16_subsets: bool | None = None,
    hu_window: Sequence[float] = (-1000.0, 1000.0),
    progress: bool = True,
    allow_empty_validation: bool = False,
) -> dict:
    """Extract Models Genesis pretraining cubes from every volume into float16 shards and an MSD datalist.

    Args:
        inputs: folder of NIfTI/MetaImage volumes (recursive; LUNA16 ``subset0..9`` folders give the
            spec's split: 0-4 training, 5-6 validation, 7-9 test) or an MSD-style datalist JSON
            (its sections give the split).
        output_dir: output folder (see the module docstring for its layout); created if needed.
        scale: the most cubes per volume; default 32.
        cube_size: (H, W, D) or "64,64,32"; default (64, 64, 32).
        margins: border margins (x, y, z) or "100,100,30"; default (100, 100, 30).
        workers: processes working on volumes in parallel (each single-threaded); default 1 (in-process).
            Scripts calling this with workers > 1 need the ``if __name__ == "__main__":`` guard of
            Python multiprocessing (the ``genesis`` command has it).
        seed: seed of the crops (per case, independent of ``workers``) and of a drawn split; default 0.
        split: optional split file ({case_id: section} or {section: [case_id]}); must cover every case.
        val_fraction: share of validation cases when the split is drawn; default 0.2.
        test_fraction: share of test cases when the split is drawn; default 0.1.
        luna16_subsets: None detects LUNA16 subset folders; True requires them; False ignores them.
        hu_window: HU clipping window scaled to [0, 1]; default (-1000, 1000).
        progress: show a tqdm progress bar; default True.
        allow_empty_validation: accept a run without validation cubes (with a warning); by default it
            is refused, as the pretraining bundle needs validation cubes.

    Volumes are read in the canonical orientation (``data.io.CANONICAL_AXCODES``: the axial axis
    last whatever the storage order). The split is drawn after reading, among the volumes that gave
    cubes. Each skipped volume is reported on stderr as it is skipped and listed in the summary.

    Returns:
        The summary written to ``output_dir/summary.json``.

    Raises:
        NoTrainingCubesError: no training cubes were written (the outputs are still written).
        ValueError: bad arguments or inputs, or no validation cubes without ``allow_empty_validation``.
        KeyboardInterrupt: Ctrl-C; finished shards are kept and a re-run resumes.
    """
    cube_size = _parse_triple(cube_size, "cube_size")
    margins = _parse_triple(margins, "margins")
    if min(cube_size) < 1 or min(margins) < 0:
        raise ValueError(f"cube_size must be positive and margins non-negative, got {cube_size} and {margins}.")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale: expected a positive integer, got {scale!r}.")
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers: expected a positive integer, got {workers!r}.")
    hu_window = [float(v) for v in hu_window]
    if len(hu_window) != 2 or not hu_window[0] < hu_window[1]:
        raise ValueError(f"hu_window: expected (low, high) with low < high, got {hu_window}.")
    output_dir = os.fspath(output_dir)
    if os.path.isfile(output_dir):
        raise NotADirectoryError(f"{output_dir}: output_dir is a file.")
    cases = collect_cases(inputs, luna16_subsets)
    cubes_dir = os.path.join(output_dir, "cubes")
    os.makedirs(cubes_dir, exist_ok=True)
    config = {"scale": int(scale), "cube_size": list(cube_size), "margins": list(margins), "seed": int(seed),
              "hu_window": hu_window, "threshold_hu": -150.0, "max_tissue_fraction": 0.15, "lookahead": 2,
              "orientation": CANONICAL_AXCODES}
    existing, assigned = _given_split(cases, output_dir, split)
    split_cases([], val_fraction, test_fraction, seed)  # checks the fractions before any work
    _check_config(output_dir, config)
    for stale in glob.glob(os.path.join(glob.escape(cubes_dir), "*.tmp")):
        os.remove(stale)  # left by a killed run; the finished shards are untouched

    options = {"num_cubes": int(scale), "cube_size": cube_size, "margins": margins, "hu_window": hu_window}
    counts = {"processed": 0, "reused": 0}
    jobs = []
    for case in cases:
        shard = os.path.join(cubes_dir, f"{case['case_id']}.npy")
        if _shard_cube_count(shard, cube_size):
            counts["reused"] += 1
        else:
            jobs.append((case["case_id"], case["image"], shard, int(seed), options))
    skipped: dict[str, dict] = {}
    images = {c["case_id"]: c["image"] for c in cases}

    warned: dict[str, str] = {}

    def record(result: dict) -> None:
        counts["processed"] += 1
        case_id = result["case_id"]
        if "reason" in result:
            skipped[case_id] = {**result, "image": images[case_id]}
            tqdm.write(f"skipped {case_id}: {result['reason']}", file=sys.stderr)
        if "warning" in result:
            warned[case_id] = result["warning"]
            tqdm.write(f"warning {case_id}: {result['warning']}", file=sys.stderr)

    interrupted = True
    bar = tqdm(total=len(jobs), desc="prepare-cubes", unit="volume", disable=not progress)
    try:
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                record(_process_case(*job))
                bar.update()
        else:
            _run_pool(jobs, int(workers), record, bar)
        interrupted = False
    finally:
        bar.close()
        if not interrupted:  # an interrupted run draws no split: the re-run draws it once every volume is read
            shards = {c["case_id"]: os.path.join(cubes_dir, f"{c['case_id']}.npy") for c in cases}
            with_cubes = [case for case, shard in shards.items() if _shard_cube_count(shard, cube_size)]
            assigned = _draw_split(assigned, existing, with_cubes, output_dir, val_fraction, test_fraction, seed)
        summary = _write_outputs(output_dir, cases, assigned, cube_size, skipped, warned, counts, interrupted, config)
    _check_sections(summary, output_dir, allow_empty_validation)
    return summary


def _check_sections(summary: dict, output_dir: str, allow_empty_validation: bool) -> None:
    cubes = summary["cubes"]
    if cubes["training"] == 0:
        why = (f"all {summary['volumes']} volumes were skipped" if summary["volumes_with_cubes"] == 0
               else f"none of the {summary['volumes_with_cubes']} volumes with cubes is in the training split")
        raise NoTrainingCubesError(f"{output_dir}: no training cubes were written ({why}; see {output_dir}/summary.json).")
    if cubes["validation"] == 0:
        message = (f"{output_dir}: no validation cubes ({summary['volumes_with_cubes']} volume(s) gave cubes); "
                   "the pretraining bundle validates every epoch")
        if not allow_empty_validation:
            raise ValueError(f"{message}: add volumes or raise --val_fraction, or pass --allow_empty_validation "
                             "to keep the run without validation.")
        warnings.warn(f"{message}; kept (allow_empty_validation).", InputWarning, stacklevel=3)


def _run_pool(jobs, workers, record, bar) -> None:
    # forkserver: workers fork from a clean server process that imported this module once (forking
    # this process, which may hold torch/ITK threads, can hang; spawn re-imports torch per worker).
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = multiprocessing.get_context("spawn")
    saved = {k: os.environ.get(k) for k in _THREAD_ENV}
    os.environ.update(dict.fromkeys(_THREAD_ENV, "1"))  # inherited by the server and the workers
    executor = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context, initializer=_init_worker)
    try:
        futures = [executor.submit(_process_case, *job) for job in jobs]
        for future in as_completed(futures):
            record(future.result())
            bar.update()
    except BaseException:
        # Ctrl-C or a failure: drop queued volumes, let the ones in flight finish their atomic writes.
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        executor.shutdown(wait=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
