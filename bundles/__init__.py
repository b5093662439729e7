"""The MONAI bundles of this package, shipped as package data: ``monai_genesis.bundles`` is the folder holding one
complete bundle per sub-folder (``configs/``, ``docs/``, ``LICENSE``, ...), in a checkout and in an installed wheel.

``list_bundles()`` reads each bundle's ``configs/metadata.json``; ``bundle_path(name)`` is its folder;
``copy_bundle(name, folder)`` writes a copy from which ``python -m monai.bundle run`` works.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BUNDLES_ROOT", "RUN_OUTPUTS", "bundle_path", "bundle_workflow", "copy_bundle", "list_bundles"]

BUNDLES_ROOT = Path(__file__).resolve().parent
# what a run writes inside a bundle folder (.gitignore): never shipped (setup.cfg exclude_package_data) nor copied
RUN_OUTPUTS = ("models", "eval", "runs", "mlruns", "__pycache__")


def _names() -> list[str]:
    return sorted(p.name for p in BUNDLES_ROOT.iterdir() if (p / "configs" / "metadata.json").is_file())


def bundle_path(name: str) -> Path:
    """The folder of the bundle ``name``; ValueError naming the bundles there are when it is not one of them."""
    if name not in _names():
        raise ValueError(f"no bundle named '{name}'; the bundles are: {', '.join(_names())} (genesis bundles).")
    return BUNDLES_ROOT / name


def list_bundles() -> list[dict]:
    """One dict per bundle, sorted by name: ``name``, ``version``, ``task`` (metadata.json), ``path``."""
    listed = []
    for name in _names():
        meta = json.loads((BUNDLES_ROOT / name / "configs" / "metadata.json").read_text())
        listed.append({"name": name, "version": meta.get("version", "?"), "task": meta.get("task", ""),
                       "path": str(BUNDLES_ROOT / name)})
    return listed


def copy_bundle(name: str, folder: str | os.PathLike) -> Path:
    """Copy the bundle ``name`` to ``folder/name`` (without run outputs); returns the new bundle folder.

    Raises:
        ValueError: an unknown bundle name.
        FileExistsError: ``folder/name`` exists and is not an empty folder.
    """
    source = bundle_path(name)
    target = Path(folder) / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target}: exists and is not empty; choose another folder or remove it.")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*RUN_OUTPUTS), dirs_exist_ok=True)
    return target


def bundle_workflow(bundle: str | os.PathLike, configs: Sequence[str], workflow_type: str, logging_file: bool = True,
                    **overrides):
    """A MONAI ``ConfigWorkflow`` (not initialised) of ``configs`` (file names in ``configs/``, merged in order).

    Args:
        bundle: a bundle name (:func:`bundle_path`) or a bundle folder.
        configs: e.g. ``["train.json", "evaluate.json"]``.
        workflow_type: "train", "eval" or "infer".
        logging_file: True uses the bundle's ``configs/logging.conf``; False leaves logging as it is.
        overrides: top-level config values.
    """
    from monai.bundle import ConfigWorkflow

    folder = (Path(bundle) if Path(bundle).is_dir() else bundle_path(str(bundle))) / "configs"
    return ConfigWorkflow(config_file=[str(folder / c) for c in configs], meta_file=str(folder / "metadata.json"),
                          logging_file=str(folder / "logging.conf") if logging_file else False,
                          workflow_type=workflow_type, **overrides)
