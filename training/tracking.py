"""Where `monai.bundle run --tracking mlflow` records a training run: a SQLite store in the bundle's output folder.

MONAI's default MLflow settings (``monai.bundle.utils.DEFAULT_MLFLOW_SETTINGS``) take ``tracking_uri`` from the
config when it defines one. monai 1.6 defaults to ``<output_dir>/mlruns.db`` (SQLite), monai 1.5.2 to the
``<output_dir>/mlruns`` file store, which mlflow 3 refuses unless ``MLFLOW_ALLOW_FILE_STORE=true``. The train
configs set ``tracking_uri`` to :func:`sqlite_tracking_uri`, so both monai versions write the same local store.

MONAI's default MLflow trainer handler reads the loss with ``from_engine(["loss"], first=True)``, which needs a
decollated output (a list of dicts). genesis_pretrain trains with ``decollate: false`` (one dict per batch, no
per-item split on every step); its own handlers read the loss with :func:`loss_of`, which takes either form, so
``--tracking mlflow --train#trainer#decollate true`` works there too.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

__all__ = ["loss_of", "sqlite_tracking_uri"]


def sqlite_tracking_uri(path: str | os.PathLike) -> str:
    """The MLflow tracking URI of the SQLite file ``path`` (made absolute), its folder created (SQLite needs it)."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from monai.utils import path_to_sqlite_uri  # monai >= 1.6
    except ImportError:  # monai 1.5.2: the same URI form, posix path, special characters quoted
        return f"sqlite:///{quote(path.as_posix(), safe='/:')}"
    return path_to_sqlite_uri(path)


def loss_of(output):
    """The loss of a trainer's ``engine.state.output``: one batch dict (``decollate: false``) or a decollated list."""
    return (output[0] if isinstance(output, (list, tuple)) else output)["loss"]
