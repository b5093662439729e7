"""Last and best checkpoints of a training run, written atomically, and resuming from them."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist
from monai.utils import IgniteInfo, min_version, optional_import

from monai_genesis.data.atomic_write import write_atomic

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = [
    "save_atomic",
    "read_checkpoint",
    "resolve_resume_path",
    "network_settings",
    "NetworkWeightsLoader",
    "TrainingCheckpointer",
]

# Run-state entries of a TrainingCheckpointer file, besides the saved objects.
_RUN_STATE = ("epoch", "iteration", "best_metric", "best_epoch", "settings")
# The network settings training saves and inference reads back (command-line override names).
SETTING_NAMES = ("network_width", "cube_size", "in_channels", "out_channels")
DEFAULT_CUBE_SIZE = (64, 64, 32)  # docs/method.md §3.1

_TRUE_WORDS = ("true", "yes", "1", "latest")
_FALSE_WORDS = ("", "false", "no", "0", "none", "null")


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """
    ``torch.save`` into a temporary file next to ``path``, flush it to disk, then rename it over
    ``path``: a crash at any moment leaves either the previous file or the new one, never a torn one.

    Args:
        obj: what to save.
        path: destination file; its folder is created if missing.
    """
    write_atomic(path, lambda stream: torch.save(obj, stream))


def read_checkpoint(path: str | os.PathLike, what: str = "checkpoint", map_location: Any = "cpu") -> dict:
    """``torch.load(path, weights_only=True)`` of a checkpoint dict; any failure is one ValueError naming the file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable, truncated, not a PyTorch file, or not a dict.
    """
    from monai_genesis.networks.weights import _load_error

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: {what} not found.")
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise ValueError(f"{path}: cannot read the {what}: {_load_error(error)}.") from None
    if not isinstance(content, Mapping):
        raise ValueError(f"{path}: the {what} holds a {type(content).__name__}, not a dict.")
    return dict(content)


def _setting_mismatch(saved: Mapping, current: Mapping) -> list[str]:
    return [f"--{k} {_cli(saved[k])} (this run: {_cli(current[k])})"
            for k in SETTING_NAMES if k in saved and k in current and _norm(saved[k]) != _norm(current[k])]


def _norm(value):
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)


def _cli(value) -> str:
    return '"' + str(list(value)).replace(" ", "") + '"' if isinstance(value, (list, tuple)) else f"{value:g}"


def resolve_resume_path(
    resume: Any, ckpt_dir: str | os.PathLike, filename: str = "latest.pt", settings: Mapping | None = None
) -> str | None:
    """
    Turn the bundle's ``resume`` setting into a checkpoint path.

    Args:
        resume: False / None / "false" to start fresh; True / "true" / "latest" for ``ckpt_dir/filename``;
            any other string is the path of a checkpoint.
        ckpt_dir: folder of the run's checkpoints.
        filename: name of the latest checkpoint in ``ckpt_dir``. Defaults to "latest.pt".
        settings: this run's network settings (``network_width``, ``cube_size``, ...); a checkpoint
            saved with others is refused here, before any data is loaded, with the overrides to pass.

    Raises:
        FileNotFoundError: resuming was asked for but the checkpoint does not exist.
        ValueError: the file is not a checkpoint written by :class:`TrainingCheckpointer`, or its
            network settings differ from ``settings``.
    """
    if resume is None or resume is False or (isinstance(resume, str) and resume.strip().lower() in _FALSE_WORDS):
        return None
    if resume is True or (isinstance(resume, str) and resume.strip().lower() in _TRUE_WORDS):
        path = os.path.join(os.fspath(ckpt_dir), filename)
    elif isinstance(resume, (str, os.PathLike)):
        path = os.fspath(resume)
    else:
        raise ValueError(f"resume must be a bool or a checkpoint path, got {resume!r}.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"cannot resume: checkpoint '{path}' does not exist (resume={resume!r}).")
    _check_resumable(read_checkpoint(path), path, settings)
    return path


def _check_resumable(ckpt: Mapping, path: str, settings: Mapping | None, names=("model",)) -> None:
    hint = "--resume takes true (ckpt_dir/latest.pt) or the path of a latest.pt/model.pt written by this bundle's training"
    missing = [k for k in list(names) + ["epoch", "iteration"] if k not in ckpt]
    if missing:
        raise ValueError(f"{path}: not a training checkpoint of this bundle (it lacks {missing}); {hint}.")
    mismatch = _setting_mismatch(ckpt.get("settings") or {}, settings or {})
    if mismatch:
        raise ValueError(f"{path}: saved by a run with other network settings; pass {' '.join(mismatch)}, "
                         "or start afresh with --resume false.")


def network_settings(
    ckpt_path: str | os.PathLike,
    network_width: float | None = None,
    cube_size: Any = None,
    in_channels: int | None = None,
    out_channels: int | None = None,
) -> dict:
    """The network settings of inference: each override if given, else the checkpoint's saved ``settings``,
    else what its weights show (width and channels of a Models Genesis U-Net), else the published
    network (width 1, one channel, 64 x 64 x 32 cubes).

    A missing or unreadable checkpoint gives the published settings (so that the network can be built
    and checked without weights, e.g. by ``monai.bundle verify_net_in_out``); the weight loader
    (:class:`NetworkWeightsLoader`) then reports the file.
    """
    from monai_genesis.networks.weights import FIRST_CONV, read_state_dict

    try:
        ckpt = read_checkpoint(ckpt_path)
    except (OSError, ValueError):
        ckpt = {}
    saved = dict(ckpt.get("settings") or {})
    try:  # this project's checkpoints, plain state dicts and the published Genesis_Chest_CT.pt alike
        state = read_state_dict(ckpt)
    except ValueError:
        state = {}
    if isinstance(state, Mapping):
        if isinstance(state.get(FIRST_CONV), torch.Tensor):
            first = state[FIRST_CONV]
            saved.setdefault("network_width", first.shape[0] / 32)  # 32 filters at width 1
            saved.setdefault("in_channels", int(first.shape[1]))
        if isinstance(state.get("out_tr.final_conv.weight"), torch.Tensor):
            saved.setdefault("out_channels", int(state["out_tr.final_conv.weight"].shape[0]))
    defaults = {"network_width": 1.0, "cube_size": list(DEFAULT_CUBE_SIZE), "in_channels": 1, "out_channels": 1}
    given = {"network_width": network_width, "cube_size": cube_size, "in_channels": in_channels,
             "out_channels": out_channels}
    result = {k: v if v is not None else saved.get(k, defaults[k]) for k, v in given.items()}
    result["cube_size"] = [int(v) for v in result["cube_size"]]
    return result


class NetworkWeightsLoader:
    """Load the ``model`` entry of a checkpoint (or a plain state dict) into ``network``, strictly; a
    mismatch is one ValueError naming the file and the overrides to pass (the bundles' replacement
    for MONAI's ``CheckpointLoader``, whose error is PyTorch's list of every key).

    Call it with an engine (``"$@checkpointloader(@evaluator)"``) or attach it (loads on STARTED).
    """

    def __init__(self, load_path: str | os.PathLike, network: torch.nn.Module, map_location: Any = "cpu",
                 settings: Mapping | None = None) -> None:
        self.load_path, self.network, self.map_location, self.settings = os.fspath(load_path), network, map_location, settings

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine=None) -> None:
        ckpt = read_checkpoint(self.load_path, what="trained model (set ckpt_dir, or train first)",
                               map_location=self.map_location)
        state = ckpt.get("model", ckpt)
        net = self.network.module if hasattr(self.network, "module") else self.network
        _load_state(net, state, self.load_path, "model", ckpt.get("settings"), self.settings)


def _load_state(obj, state, path: str, name: str, saved_settings=None, settings=None) -> None:
    """``obj.load_state_dict(state)``; PyTorch's key-by-key error becomes one line with the fix."""
    try:
        obj.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        mismatch = _setting_mismatch(saved_settings or {}, settings or {})
        if mismatch:
            fix = f"pass {' '.join(mismatch)}"
        elif saved_settings:
            fix = "it was saved with " + ", ".join(f"{k}={v}" for k, v in saved_settings.items())
        else:
            fix = "pass the --network_width and --in_channels it was trained with"
        first = " ".join(str(error).split())[:200]
        raise ValueError(f"{path}: its '{name}' does not fit this run's {type(obj).__name__} ({first} ...); {fix}.") from None


def _is_main_process() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class TrainingCheckpointer:
    """
    Ignite handler for the trainer: at the end of every epoch it writes the run's state to
    ``latest_filename``, and to ``best_filename`` when the validation metric improved; at the start
    it can restore such a file, so that training continues from the saved epoch with the same
    optimizer, scheduler and early-stopping state.

    Why not MONAI's ``CheckpointSaver`` / ``CheckpointLoader``: ``CheckpointSaver`` writes in place
    (``atomic=False``) and deletes a fixed-name file before writing its replacement, so a crash
    during the write can leave no valid "latest"; here every write goes through :py:func:`save_atomic`.
    A loader in the trainer's handler list cannot reference the trainer in a bundle config (a
    reference cycle); this handler takes the trainer from the event instead.

    Each file holds ``{name: obj.state_dict() for name, obj in save_dict}`` plus ``epoch``,
    ``iteration``, ``best_metric``, ``best_epoch``; it loads with ``torch.load(weights_only=True)``,
    and MONAI's ``CheckpointLoader(load_dict={"model": net})`` reads its "model" entry.
    Only the main process writes in distributed training; every process resumes.

    Args:
        save_dir: folder of the checkpoint files.
        save_dict: objects to save and restore, e.g. ``{"model": net, "optimizer": opt, "lr_scheduler": sched}``;
            each needs ``state_dict`` and ``load_state_dict``. Save the bare network, not a DDP wrapper.
        validator: evaluator whose metric selects the best checkpoint; None writes only the latest.
            A validator with an empty data loader (MONAI Label's default ``val_split`` 0.2 leaves no
            validation study while one or two are labelled) selects nothing: then every epoch is saved as
            the best too, so that the served ``model.pt`` follows the training, with a warning.
        key_metric_name: metric in ``validator.state.metrics``; default the validator's key metric.
        lower_is_better: True for error metrics such as MSE (default), False for scores.
        latest_filename: file written every epoch. Defaults to "latest.pt".
        best_filename: file written when the metric improves. Defaults to "model.pt" (the name MONAI
            bundles and MONAI Label load).
        resume_from: checkpoint to restore when the trainer starts; None starts fresh.
        map_location: ``torch.load`` map_location for resuming. Defaults to "cpu".
        settings: the network settings to save with every checkpoint (``network_width``,
            ``cube_size``, ``in_channels``, ``out_channels``), which inference reads back.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        save_dict: Mapping[str, Any],
        validator: Any | None = None,
        key_metric_name: str | None = None,
        lower_is_better: bool = True,
        latest_filename: str = "latest.pt",
        best_filename: str = "model.pt",
        resume_from: str | os.PathLike | None = None,
        map_location: Any = "cpu",
        settings: Mapping | None = None,
    ) -> None:
        if not save_dict:
            raise ValueError("save_dict must name at least one object to save, e.g. {'model': network}.")
        reserved = set(_RUN_STATE) & set(save_dict)
        if reserved:
            raise ValueError(f"save_dict keys {sorted(reserved)} are reserved for the run state.")
        self.save_dir = os.fspath(save_dir)
        self.save_dict = dict(save_dict)
        self.validator = validator
        self.key_metric_name = key_metric_name
        self.lower_is_better = lower_is_better
        self.latest_filename = latest_filename
        self.best_filename = best_filename
        self.resume_from = None if resume_from is None else os.fspath(resume_from)
        self.map_location = map_location
        self.settings = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in (settings or {}).items()}
        self.best_metric = math.inf if lower_is_better else -math.inf
        self.best_epoch = 0
        self.logger = logging.getLogger(__name__)
        self._warned_no_validation = False

    def attach(self, engine) -> None:
        """Register with the trainer: resume on STARTED, save on EPOCH_COMPLETED."""
        self.logger = engine.logger
        if self.resume_from is not None:
            engine.add_event_handler(Events.STARTED, self.resume)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)

    def state(self, engine) -> dict:
        """The checkpoint content at the trainer's current state."""
        ckpt = {name: obj.state_dict() for name, obj in self.save_dict.items()}
        ckpt.update(
            epoch=int(engine.state.epoch),
            iteration=int(engine.state.iteration),
            best_metric=float(self.best_metric),
            best_epoch=int(self.best_epoch),
        )
        if self.settings:
            ckpt["settings"] = dict(self.settings)
        return ckpt

    def epoch_completed(self, engine) -> None:
        """Save "best" when the validator's metric improved this epoch, then "latest"."""
        improved = self._update_best(engine.state.epoch)
        if not _is_main_process():
            return
        ckpt = self.state(engine)
        if improved:
            save_atomic(ckpt, os.path.join(self.save_dir, self.best_filename))
            what = f"new best {self._metric_name()} {self.best_metric:.6f}" if self.best_epoch == engine.state.epoch else "no validation data"
            self.logger.info(f"epoch {engine.state.epoch}: {what}, saved {self.best_filename}")
        save_atomic(ckpt, os.path.join(self.save_dir, self.latest_filename))

    def resume(self, engine) -> None:
        """Restore the objects and the trainer's epoch and iteration from ``resume_from``."""
        ckpt = read_checkpoint(self.resume_from, map_location=self.map_location)
        missing = [k for k in list(self.save_dict) + ["epoch", "iteration"] if k not in ckpt]
        if missing:
            raise ValueError(f"checkpoint '{self.resume_from}' lacks {missing}; it was not written by TrainingCheckpointer.")
        for name, obj in self.save_dict.items():
            _load_state(obj, ckpt[name], self.resume_from, name, ckpt.get("settings"), self.settings)
        # Set epoch/iteration directly (not Engine.load_state_dict, whose keys differ between ignite
        # versions), and keep the configured max_epochs so that a resumed run can be extended.
        engine.state.epoch = int(ckpt["epoch"])
        engine.state.iteration = int(ckpt["iteration"])
        self.best_metric = float(ckpt.get("best_metric", self.best_metric))
        self.best_epoch = int(ckpt.get("best_epoch", 0))
        self.logger.info(f"resumed from '{self.resume_from}' at epoch {engine.state.epoch}, iteration {engine.state.iteration}")
        if engine.state.max_epochs is not None and engine.state.epoch >= engine.state.max_epochs:
            self.logger.warning(f"the checkpoint is at epoch {engine.state.epoch} >= max_epochs {engine.state.max_epochs}: nothing to train.")

    def _metric_name(self) -> str | None:
        if self.key_metric_name is not None:
            return self.key_metric_name
        return getattr(self.validator.state, "key_metric_name", None) if self.validator is not None else None

    def _no_validation_data(self) -> bool:
        loader = getattr(self.validator, "data_loader", None)
        try:
            return loader is not None and len(loader) == 0
        except TypeError:  # an iterable without a length
            return False

    def _update_best(self, epoch: int) -> bool:
        if self.validator is not None and self._no_validation_data():
            if not self._warned_no_validation:
                self.logger.warning(f"the validation data is empty: every epoch is saved as {self.best_filename}.")
                self._warned_no_validation = True
            return True
        name = self._metric_name()
        if self.validator is None or name is None or name not in self.validator.state.metrics:
            return False
        # only when the validator ran at this epoch (it may run every N epochs)
        if getattr(self.validator.state, "epoch", None) != epoch:
            return False
        value = float(self.validator.state.metrics[name])
        better = value < self.best_metric if self.lower_is_better else value > self.best_metric
        if better:
            self.best_metric, self.best_epoch = value, epoch
        return better
