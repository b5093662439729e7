"""The smallest training data and tiny overrides for every bundle's train.json, for tests that run each bundle once
(tracking, bundle errors, the wheel install) and the overrides the bundles' own tests (test_bundle_<short>.py) use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BUNDLES_DIR = Path(__file__).resolve().parents[1] / "bundles"
TINY_WIDTH = 0.125  # every bundle's tiny network
SEG_TINY = {"device": "cpu", "network_width": TINY_WIDTH, "cube_size": [16, 16, 16], "batch_size": 4, "num_samples": 2,
            "num_workers": 0, "cache_rate": 1.0, "val_cache_rate": 1.0, "channels_last": False}
# bundle -> the tiny overrides of its train / evaluate / inference configs (test_bundle_<short>.py imports them)
TINY = {
    "genesis_pretrain": {"device": "cpu", "network_width": TINY_WIDTH, "cube_size": [32, 32, 16], "batch_size": 4,
                         "num_workers": 0, "cache_rate": 1.0, "val_cache_rate": 1.0},
    "genesis_lung_nodule_segmentation": SEG_TINY,
    "genesis_liver_segmentation": {**SEG_TINY, "sw_batch_size": 8},
    "genesis_brain_tumor_segmentation": {**SEG_TINY, "cube_size": [32, 32, 16]},
    "genesis_lung_nodule_fpr": {"device": "cpu", "network_width": TINY_WIDTH, "cube_size": [32, 32, 16], "batch_size": 8,
                                "num_workers": 0},
    "genesis_pe_fpr": {"device": "cpu", "network_width": TINY_WIDTH, "cube_size": [32, 32, 32], "batch_size": 8,
                       "num_workers": 0},
}
BUNDLES = sorted(TINY)


def write_cubes(root: Path) -> dict:
    """genesis_pretrain: one float16 shard of 4 cubes per section, in the layout prepare_cubes writes."""
    import numpy as np

    (root / "cubes").mkdir(parents=True)
    rng = np.random.default_rng(0)
    datalist = {}
    for section in ("training", "validation"):
        np.save(root / "cubes" / f"{section}.npy", rng.uniform(0, 1, (4, 32, 32, 16)).astype(np.float16))
        datalist[section] = [{"image": f"cubes/{section}.npy", "cube_index": i} for i in range(4)]
    (root / "datalist.json").write_text(json.dumps(datalist))
    return {"dataset_dir": str(root)}


def write_data(bundle: str, root: Path) -> dict:
    """Write a tiny training set for ``bundle`` under ``root``; returns the overrides that point the bundle at it."""
    if bundle == "genesis_pretrain":
        return write_cubes(root)
    if bundle == "genesis_lung_nodule_segmentation":
        from monai_genesis.data.segmentation import paired_datalist
        from monai_genesis.phantoms.layouts import write_nodule_layout

        write_nodule_layout(root, num_cases=3, shape=(32, 32, 32), spacing=(2.0, 2.0, 2.5))
        paired_datalist(root / "images", root / "labels", root / "datalist.json", val_fraction=0.34, test_fraction=0.0,
                        seed=0)
        return {"dataset_dir": str(root)}
    if bundle == "genesis_liver_segmentation":
        from monai_genesis.data.segmentation import lits_datalist
        from monai_genesis.phantoms.layouts import write_lits_layout

        write_lits_layout(root, case_numbers=(0, 100, 115), shape=(32, 32, 32), spacing=(4.5, 4.5, 4.5))
        lits_datalist(root, root / "datalist.json")
        return {"dataset_dir": str(root)}
    if bundle == "genesis_brain_tumor_segmentation":
        from monai_genesis.data.brain import make_brain_datalist
        from monai_genesis.phantoms.brain_layouts import write_brats_folders

        write_brats_folders(root, 3, shape=(32, 32, 32))
        make_brain_datalist(root, patch_size=TINY[bundle]["cube_size"], progress=False)
        return {"dataset_dir": str(root)}
    from monai_genesis.data.candidate_volumes import prepare_candidate_volumes

    if bundle == "genesis_lung_nodule_fpr":
        from monai_genesis.phantoms.chest_ct import write_chest_ct_dataset

        write_chest_ct_dataset(root / "raw", num_cases=3, shape=(48, 48, 32), spacing=(1.2, 1.2, 1.5), seed=1,
                               formats=("nii.gz",), num_nodules=2, num_false_positives=4,
                               nodule_diameter_mm=(4.0, 8.0))
        prepare_candidate_volumes(root / "raw" / "images", root / "prep", val_fraction=0.34, test_fraction=0.0,
                                  progress=False)
    elif bundle == "genesis_pe_fpr":
        from monai_genesis.phantoms.ctpa import write_ctpa_dataset

        write_ctpa_dataset(root / "raw", num_cases=3, shape=(48, 48, 40), seed=2, num_emboli=2,
                           num_false_positives=3)
        prepare_candidate_volumes(root / "raw" / "images", root / "prep", num_folds=3, val_fraction=0.34,
                                  progress=False)
    else:
        raise KeyError(bundle)
    return {"dataset_dir": str(root / "prep"), "candidates_csv": str(root / "raw" / "candidates.csv")}


def cli_args(settings: dict) -> list:
    """``--key value`` pairs for ``python -m monai.bundle run``: strings as they are, True / False / None as Python
    writes them (fire reads ``false`` as a string), other values as JSON."""
    def text(v):
        return v if isinstance(v, str) else str(v) if v is None or isinstance(v, bool) else json.dumps(v)

    return [a for k, v in settings.items() for a in (f"--{k}", text(v))]


# What a rank prints when it aborts in interpreter teardown after a finished gloo run (a torch
# teardown race, seen about once in 20 two-process runs on a loaded 2-core machine).
TEARDOWN_ABORT = "terminate called without an active exception"


def torchrun(configs: Path, root: Path, settings: dict, timeout: int = 300) -> tuple[subprocess.CompletedProcess, Path]:
    """``monai.bundle run`` of ``configs``' train.json + multi_gpu_train.json on two CPU processes (torchrun).

    ``settings`` become ``--key value`` pairs (:func:`cli_args`; a "device" entry is dropped: each rank
    picks its own). Returns the finished process and the bundle root it wrote. A run that wrote its
    final checkpoint and then lost a rank to the teardown abort above is repeated once in a fresh
    root; any other failure, and a second abort, is returned as it is.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    settings = {k: v for k, v in settings.items() if k != "device"}

    def run(bundle_root: Path) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "monai.bundle",
               "run", "--config_file", json.dumps([str(configs / "train.json"), str(configs / "multi_gpu_train.json")]),
               "--meta_file", str(configs / "metadata.json"), "--logging_file", str(configs / "logging.conf"),
               *cli_args({**settings, "bundle_root": str(bundle_root)})]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)

    result = run(root)
    finished = (root / "models" / "latest.pt").is_file()
    if result.returncode != 0 and finished and TEARDOWN_ABORT in result.stdout + result.stderr:
        root = root.with_name(root.name + "_rerun")
        result = run(root)
    return result, root
