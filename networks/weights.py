"""Load Models Genesis weights (published, plain or this project's checkpoints) into the networks."""

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Union

import torch
from torch import nn

__all__ = ["load_genesis_weights", "read_state_dict", "GenesisLoadReport", "ENCODER_PREFIXES"]

logger = logging.getLogger(__name__)

# top-level module names of the encoder (as the reference implementation names them)
ENCODER_PREFIXES = ("down_tr64.", "down_tr128.", "down_tr256.", "down_tr512.")
# the first convolution, adapted when the target has another number of input channels
FIRST_CONV = "down_tr64.ops.0.conv1.weight"
# output layers, left freshly initialised when the target has another number of classes
OUTPUT_LAYERS = ("out_tr.final_conv.", "dense_2.")
# wrappers under which checkpoints may hold the weights: published ('state_dict'), ignite/MONAI ('model')
CHECKPOINT_KEYS = ("state_dict", "model", "network", "net")
PARTS = ("all", "encoder")

Source = Union[str, os.PathLike, Mapping]


@dataclass
class GenesisLoadReport:
    """What :py:func:`load_genesis_weights` did, key by key (target names, without 'module.').
    ``loaded`` includes the adapted keys; ``reinitialised`` keys were left as the model had them."""

    source: str
    part: str
    loaded: List[str] = field(default_factory=list)
    adapted: List[str] = field(default_factory=list)
    reinitialised: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"loaded {len(self.loaded)} tensors from {self.source} (part={self.part})"
        for name in ("adapted", "reinitialised", "missing", "unexpected", "mismatched"):
            keys = getattr(self, name)
            if keys:
                text += f"; {name}: {', '.join(keys)}"
        return text


def _describe(source: Source) -> str:
    return f"'{os.fspath(source)}'" if isinstance(source, (str, os.PathLike)) else "the given dict"


def _read(source: Source) -> Mapping:
    if isinstance(source, Mapping):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a file path or a dict of weights, got {type(source).__name__}.")
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file '{path}' does not exist.")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types; report them with the file name
        raise ValueError(f"could not read weights from '{path}': {_load_error(e)}.") from None
    if not isinstance(content, Mapping):
        raise ValueError(f"weights file '{path}' holds a {type(content).__name__}, not a dict of weights.")
    return content


def _load_error(error: Exception) -> str:
    """torch.load's failure in one line, without its advice to retry with weights_only=False (which
    runs arbitrary code from the file: never a fix for a file of unknown origin)."""
    text = str(error)
    unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsupported:
        return (f"it holds a Python object ({unsupported.group(1)}) that the safe loader "
                "torch.load(weights_only=True) refuses; only tensors and plain containers are read")
    if "zip archive" in text or isinstance(error, EOFError):
        return f"the file is truncated or not a PyTorch checkpoint ({' '.join(text.split())[:160]})"
    lines = [line.strip() for line in text.splitlines() if line.strip() and "weights_only" not in line]
    return f"not a PyTorch checkpoint ({type(error).__name__}: {(lines[0] if lines else text)[:160]})"


def _keys(keys: List[str], limit: int = 5) -> str:
    shown = repr(keys[:limit])
    return shown if len(keys) <= limit else shown[:-1] + f", ... {len(keys) - limit} more]"


def read_state_dict(source: Source) -> Dict[str, torch.Tensor]:
    """
    Plain state dict (no 'module.' prefixes) from a Models Genesis checkpoint, always read with
    ``torch.load(weights_only=True)``.

    Args:
        source: a path or a dict, in any of these formats: the published checkpoint
            (``{"epoch", "state_dict", "optimizer_state_dict"}`` with 'module.' keys), a plain
            state dict, or an ignite/MONAI checkpoint (``{"model": state_dict, ...}``).
    """
    content = _read(source)
    where = _describe(source)
    if content and all(isinstance(v, torch.Tensor) for v in content.values()):
        state = content
    else:
        wrapped = [k for k in CHECKPOINT_KEYS if isinstance(content.get(k), Mapping)]
        if not wrapped:
            raise ValueError(
                f"{where} is not a state dict and has none of the keys {list(CHECKPOINT_KEYS)} holding one; "
                f"its top-level keys are {sorted(map(str, content))[:20]}."
            )
        state = content[wrapped[0]]
    result = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{where}: entry '{key}' is a {type(value).__name__}, not a tensor.")
        name = str(key)
        while name.startswith("module."):  # saved from nn.DataParallel / DistributedDataParallel
            name = name[len("module.") :]
        result[name] = value
    return result


def _is_channel_expansion(value: torch.Tensor, target: torch.Tensor) -> bool:
    """True when only the input-channel axis differs and the target has a multiple of its channels."""
    return (
        value.dim() == target.dim() == 5
        and value.shape[0] == target.shape[0]
        and value.shape[2:] == target.shape[2:]
        and target.shape[1] > value.shape[1]
        and target.shape[1] % value.shape[1] == 0
    )


def _adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Repeat the input-channel axis to ``in_channels`` (a multiple of the original count) and divide
    by the ratio, so an input whose channels repeat x responds as x did with the original weights."""
    ratio = in_channels // weight.shape[1]
    return weight.repeat(1, ratio, 1, 1, 1) / ratio


def load_genesis_weights(
    model: nn.Module, source: Source, part: str = "all", strict: bool = True, source_name: str | None = None
) -> GenesisLoadReport:
    """
    Load Models Genesis weights (Zhou et al., MICCAI 2019) into a :py:class:`UNet3D`,
    :py:class:`GenesisClassifier` or :py:class:`GenesisEncoder`, and log what was done.

    Two differences are bridged and reported: a first convolution with a multiple of the input
    channels (e.g. BraTS' 4 modalities from the 1-channel CT model) is adapted by repeating its
    weights over the channels and dividing by the channel ratio; an output layer (``out_tr.final_conv``,
    ``dense_2``) whose class count differs is left freshly initialised. Any other difference raises
    a ValueError listing the missing, unexpected and shape-mismatched keys (with ``strict=True``).

    Args:
        model: the target network (an ``nn.DataParallel``/DDP wrapper is unwrapped).
        source: a path or a dict: the published checkpoint (``{"state_dict": ...}`` with 'module.'
            keys), a plain state dict, or an ignite/MONAI checkpoint (``{"model": ...}``). Files are
            read with ``torch.load(weights_only=True)``.
        part: "all" loads every layer; "encoder" loads only the encoder (``down_tr*``) and leaves the
            rest of the model as it is (use it for :py:class:`GenesisClassifier`). Defaults to "all".
        strict: raise on missing, unexpected or mismatched keys; when False, load what matches and
            list the rest in the report and a warning. Defaults to True.
        source_name: how messages name a dict ``source`` (e.g. the file it was read from).

    Returns:
        a :py:class:`GenesisLoadReport` with the loaded, adapted, reinitialised, missing,
        unexpected and mismatched keys.
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}.")
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    source_state = read_state_dict(source)
    target_state = model.state_dict()
    report = GenesisLoadReport(source=f"'{source_name}'" if source_name else _describe(source), part=part)

    def in_part(key: str) -> bool:
        return part == "all" or key.startswith(ENCODER_PREFIXES)

    expected = [k for k in target_state if in_part(k)]
    if not expected:
        raise ValueError(
            f"{type(model).__name__} has no parameters named like the Models Genesis networks "
            f"(part={part}, encoder prefixes {ENCODER_PREFIXES})."
        )
    report.missing = [k for k in expected if k not in source_state]
    report.unexpected = [k for k in source_state if in_part(k) and k not in target_state]
    to_load = {}
    for key in expected:
        if key not in source_state:
            continue
        value, target = source_state[key], target_state[key]
        if value.shape == target.shape:
            to_load[key] = value
            report.loaded.append(key)
        elif key == FIRST_CONV and _is_channel_expansion(value, target):
            to_load[key] = _adapt_first_conv(value, target.shape[1])
            report.adapted.append(f"{key} (input channels {value.shape[1]} -> {target.shape[1]})")
            report.loaded.append(key)
        elif key.startswith(OUTPUT_LAYERS) and value.shape[1:] == target.shape[1:]:
            report.reinitialised.append(f"{key} (outputs {value.shape[0]} -> {target.shape[0]})")
        else:
            report.mismatched.append(f"{key} (checkpoint {list(value.shape)}, model {list(target.shape)})")

    problems = report.missing or report.unexpected or report.mismatched
    if problems and strict:
        decoder_into_encoder = part == "all" and any(k.startswith("up_tr") for k in report.unexpected) and not any(
            k.startswith("up_tr") for k in target_state
        )
        raise ValueError(
            f"weights from {report.source} do not fit {type(model).__name__}{'' if part == 'all' else f' (part={part})'}: "
            f"missing keys ({len(report.missing)}): {_keys(report.missing)}; "
            f"unexpected keys ({len(report.unexpected)}): {_keys(report.unexpected)}; "
            f"shape-mismatched keys ({len(report.mismatched)}): {_keys(report.mismatched)}"
            + ("; a U-Net checkpoint loads into this network with part='encoder'" if decoder_into_encoder else "")
            + "."
        )
    model.load_state_dict(to_load, strict=False)
    (logger.warning if problems else logger.info)("Genesis weights: %s", report.summary())
    return report
