"""Resumable results of an experiment folder: one JSON file per finished run, the settings they belong to.

Layout: ``settings.json`` (the experiment's settings, compared on every start: a folder never mixes results
of two configurations), ``versions.json`` (Python, packages, git commit of the latest start) and
``results/<kind>/.../<arm>.json``, each written atomically (``data/atomic_write.py``) once its run is over, so
an interrupted experiment restarts with exactly the runs that have no result file.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from monai_genesis.data.atomic_write import write_json_atomic

SETTINGS_FILE = "settings.json"
VERSIONS_FILE = "versions.json"
PACKAGES = ("torch", "monai", "numpy", "scipy", "pytorch-ignite", "nibabel", "matplotlib", "monai-genesis")


def package_versions() -> dict:
    """Python, the packages that shape the results, the platform and the repository's git commit."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        versions["git_commit"] = commit.stdout.strip() or None
        versions["git_dirty"] = bool(dirty.stdout.strip()) if commit.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        versions["git_commit"] = versions["git_dirty"] = None
    return versions


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k, '<absent>')!r} there, {new.get(k, '<absent>')!r} now" for k in keys if old.get(k) != new.get(k)]


class ResultStore:
    """The results folder of one experiment configuration.

    Args:
        root: the experiment folder (created if missing).
        settings: the experiment's settings (JSON-able). A folder holding results of other settings is refused.
        record_versions: write ``versions.json`` (False for a start that runs nothing, e.g. a report).

    Raises:
        ValueError: ``root`` already holds an experiment with different settings (the differences are named).
    """

    def __init__(self, root: str | os.PathLike, settings: dict, record_versions: bool = True) -> None:
        self.root = Path(root)
        self.settings = json.loads(json.dumps(settings))
        path = self.root / SETTINGS_FILE
        if path.is_file():
            try:
                previous = json.loads(path.read_text())
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: not valid JSON ({error}); move the folder aside to start again.") from None
            if previous != self.settings:
                raise ValueError(
                    f"{self.root} holds an experiment with other settings ({'; '.join(_differences(previous, self.settings))}): "
                    "run with the same arguments to continue it, or choose another output folder."
                )
        elif self.root.exists() and any((self.root / "results").glob("**/*.json")):
            raise ValueError(f"{self.root} holds results but no {SETTINGS_FILE}: choose another output folder.")
        else:
            write_json_atomic(self.settings, path)
        if record_versions or not (self.root / VERSIONS_FILE).is_file():
            write_json_atomic(package_versions(), self.root / VERSIONS_FILE)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath("results", *parts[:-1], f"{parts[-1]}.json")

    def get(self, *parts: str) -> dict | None:
        """The finished result of run ``parts`` (e.g. "ncs", "n4", "seed0", "full"), or None."""
        path = self.path(*parts)
        return json.loads(path.read_text()) if path.is_file() else None

    def put(self, result: dict, *parts: str) -> dict:
        write_json_atomic(result, self.path(*parts))
        return result
