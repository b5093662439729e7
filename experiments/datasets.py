"""Synthetic data of the experiment: unlabelled pretraining cubes and the labelled NCS / NCC target data.

Each dataset is written once into the experiment folder and marked finished (``done.json``, written atomically
last); an unfinished one is rewritten from scratch on resume. The labelled subsets of a target task (the first
``n`` cases of a seeded permutation of the training pool, the same for every arm) are files beside it: a
datalist for NCS, a candidates CSV without the unused training scans for NCC.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np

from monai_genesis.data.atomic_write import write_atomic, write_json_atomic
from monai_genesis.experiments.settings import training_pool_size

DONE = "done.json"


def _finished(folder: Path, description: dict) -> bool:
    marker = folder / DONE
    if marker.is_file() and json.loads(marker.read_text()) == description:
        return True
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted or stale write: start it again
    return False


def pretraining_cubes(root: Path, settings: dict) -> Path:
    """Unlabelled synthetic chest CTs cut into Genesis cubes (``data.prepare_cubes``); returns the cube folder."""
    from monai_genesis.data import prepare_cubes
    from monai_genesis.phantoms.chest_ct import write_chest_ct_dataset

    folder = Path(root) / "pretrain_data"
    keys = ("pretrain_cases", "pretrain_shape", "pretrain_spacing", "pretrain_cubes_per_volume", "pretrain_cube_size",
            "pretrain_data_seed")
    description = {k: settings[k] for k in keys}
    if not _finished(folder, description):
        n = int(settings["pretrain_cases"])
        write_chest_ct_dataset(folder / "chest_ct", num_cases=n, shape=settings["pretrain_shape"],
                               spacing=settings["pretrain_spacing"], seed=settings["pretrain_data_seed"], formats="nii.gz")
        size = settings["pretrain_cube_size"]
        prepare_cubes(folder / "chest_ct" / "images", folder / "cubes", scale=settings["pretrain_cubes_per_volume"],
                      cube_size=size, margins=[s // 8 for s in size], seed=settings["pretrain_data_seed"],
                      val_fraction=max(1, round(0.2 * n)) / n if n > 1 else 0.0, test_fraction=0.0, progress=False,
                      allow_empty_validation=n < 2)
        write_json_atomic(description, folder / DONE)
    return folder / "cubes"


def _sizes(settings: dict, task: str) -> tuple[int, int, int]:
    pool = training_pool_size(settings)
    return pool, int(settings[f"{task}_validation_cases"]), int(settings[f"{task}_test_cases"])


def ncs_data(root: Path, settings: dict) -> Path:
    """Chest CTs with nodule masks (the layout ``genesis lidc-mask`` leaves) and their datalist; returns the folder."""
    from monai_genesis.data.segmentation import paired_datalist
    from monai_genesis.phantoms.layouts import write_nodule_layout

    folder = Path(root) / "ncs_data"
    pool, val, test = _sizes(settings, "ncs")
    description = {"pool": pool, "validation": val, "test": test,
                   **{k: settings[k] for k in ("ncs_shape", "ncs_spacing", "ncs_data_seed")}}
    if not _finished(folder, description):
        total = pool + val + test
        write_nodule_layout(folder, num_cases=total, shape=settings["ncs_shape"], spacing=settings["ncs_spacing"],
                            seed=settings["ncs_data_seed"])
        datalist = paired_datalist(folder / "images", folder / "labels", folder / "datalist.json", val_fraction=val / total,
                                   test_fraction=test / total, seed=settings["ncs_data_seed"])
        counts = [len(datalist[s]) for s in ("training", "validation", "test")]
        if counts != [pool, val, test]:
            raise RuntimeError(f"NCS split of {total} cases gave {counts}, expected {[pool, val, test]}.")
        write_json_atomic(description, folder / DONE)
    return folder


def ncc_data(root: Path, settings: dict) -> Path:
    """Chest CTs with nodules and look-alike candidates, prepared for the NCC bundle; returns the folder
    (``raw/`` as ``write_chest_ct_dataset`` writes it, ``prep/`` as ``genesis prepare-candidates`` does)."""
    from monai_genesis.data.candidate_volumes import prepare_candidate_volumes, read_split
    from monai_genesis.phantoms.chest_ct import write_chest_ct_dataset

    folder = Path(root) / "ncc_data"
    pool, val, test = _sizes(settings, "ncc")
    keys = ("ncc_shape", "ncc_spacing", "ncc_nodules", "ncc_false_positives", "ncc_data_seed")
    description = {"pool": pool, "validation": val, "test": test, **{k: settings[k] for k in keys}}
    if not _finished(folder, description):
        total = pool + val + test
        write_chest_ct_dataset(folder / "raw", num_cases=total, shape=settings["ncc_shape"], spacing=settings["ncc_spacing"],
                               seed=settings["ncc_data_seed"], formats=("nii.gz",), num_nodules=settings["ncc_nodules"],
                               num_false_positives=settings["ncc_false_positives"])
        prepare_candidate_volumes(folder / "raw" / "images", folder / "prep", val_fraction=val / total,
                                  test_fraction=test / total, seed=settings["ncc_data_seed"], progress=False)
        counts = [len(v) for v in read_split(folder / "prep").values()]
        if counts != [pool, val, test]:
            raise RuntimeError(f"NCC split of {total} scans gave {counts}, expected {[pool, val, test]}.")
        write_json_atomic(description, folder / DONE)
    return folder


def labelled_cases(pool: list, num_labeled: int, seed: int) -> list:
    """The first ``num_labeled`` of a permutation of ``pool`` drawn with ``seed`` (nested: 4 of a seed are in its 8)."""
    if num_labeled > len(pool):
        raise ValueError(f"num_labeled {num_labeled} exceeds the {len(pool)} labelled training cases written.")
    order = np.random.default_rng([seed, 14]).permutation(len(pool))
    return [pool[i] for i in order[:num_labeled]]


def ncs_subset(data: Path, num_labeled: int, seed: int, output_json: Path) -> Path:
    """A datalist with ``num_labeled`` training cases (validation and test unchanged); paths relative to ``data``."""
    datalist = json.loads((Path(data) / "datalist.json").read_text())
    datalist["training"] = labelled_cases(datalist["training"], num_labeled, seed)
    datalist["numTraining"] = num_labeled
    write_json_atomic(datalist, output_json)
    return Path(output_json)


def ncc_subset(data: Path, num_labeled: int, seed: int, output_csv: Path) -> tuple[Path, dict]:
    """A candidates CSV without the training scans left out; returns it and the chosen scans' class counts."""
    from monai_genesis.data.candidate_volumes import read_split

    training = read_split(Path(data) / "prep")["training"]
    dropped = set(training) - set(labelled_cases(sorted(training), num_labeled, seed))
    with open(Path(data) / "raw" / "candidates.csv", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    uid, label = header.index("seriesuid"), header.index("class")
    body = [r for r in rows[1:] if r[uid] not in dropped]
    kept_training = [r for r in body if r[uid] in set(training)]
    positives = sum(float(r[label]) == 1 for r in kept_training)
    counts = {"positives": positives, "negatives": len(kept_training) - positives}

    def _write(stream):
        csv.writer(stream, lineterminator="\n").writerows([header, *body])

    write_atomic(output_csv, _write, binary=False)
    return Path(output_csv), counts
