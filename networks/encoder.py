"""The encoder of the Models Genesis 3D U-Net, shared by the U-Net and the classifier."""

from typing import Any, List, Mapping, Tuple

import torch
from torch import nn

from .blocks import DownTransition
from .weights import read_state_dict

__all__ = ["GenesisEncoder", "PUBLISHED_FILTERS", "scaled_filters", "POOLING_FACTOR"]

# filter counts of the published network (Zhou et al., MICCAI 2019), multiplied by `width`
PUBLISHED_FILTERS = (32, 64, 128, 256, 512)
# three 2x2x2 poolings between the four levels: spatial sizes must be divisible by 2**3
POOLING_FACTOR = 8


def scaled_filters(width: float) -> Tuple[int, int, int, int, int]:
    """
    Filter counts (32, 64, 128, 256, 512) multiplied by ``width`` and rounded; width=0.125 gives 4..64.

    Args:
        width: positive multiplier of the published filter counts (1.0 is the published network).
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"width must be a positive number (1.0 = published size), got {width!r}.")
    filters = tuple(int(round(f * width)) for f in PUBLISHED_FILTERS)
    if min(filters) < 1:
        raise ValueError(f"width={width} leaves a layer with no filters {filters}; use width >= {1 / 64}.")
    return filters  # type: ignore[return-value]


class GenesisEncoder(nn.Module):
    """
    Encoder of the Models Genesis 3D U-Net (Zhou et al., "Models Genesis", MICCAI 2019): four levels
    of two (3x3x3 conv -> batch norm -> ReLU) blocks, with 2x2x2 max pooling between levels.
    Its forward returns the deepest feature map (512 channels at width 1, 1/8 of the input size).

    Module names follow the reference implementation (``down_tr64`` ... ``down_tr512``), so the
    encoder part of the published checkpoint loads into it, and into every subclass, unchanged.

    Args:
        in_channels: input channels (1 for the published CT model). Defaults to 1.
        width: multiplier of the published filter counts (32, 64, 128, 256, 512). Defaults to 1.0.
        batch_stats_in_eval: normalise with batch statistics in evaluation too, as the reference
            implementation does and as its published weights expect; False (default) is ordinary
            batch norm. See :py:class:`GenesisBatchNorm3d`.
        channels_last: run in ``torch.channels_last_3d`` memory format (parameters and input; outputs
            come out in that format too: call ``.contiguous()`` before ``.view``). On CPU (torch 2.13,
            oneDNN) a training step is only slightly faster than in NCDHW (1.02x CPU time, 1.07x
            wall-clock at 64x64x32, benchmarks/bench_networks.py); it is the default as the faster
            path. Outputs agree with NCDHW within float rounding. Defaults to True.
    """

    def __init__(
        self,
        in_channels: int = 1,
        width: float = 1.0,
        batch_stats_in_eval: bool = False,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}.")
        f = scaled_filters(width)
        self.in_channels = in_channels
        self.width = float(width)
        self.filters = f
        self.feature_channels = f[4]
        self.channels_last = bool(channels_last)
        self.size_divisor = POOLING_FACTOR  # an attribute, as TorchScript cannot read module globals
        self.network_name = type(self).__name__  # for error messages (TorchScript has no __class__)
        self.down_tr64 = DownTransition(in_channels, f[0], f[1], batch_stats_in_eval)
        self.down_tr128 = DownTransition(f[1], f[1], f[2], batch_stats_in_eval)
        self.down_tr256 = DownTransition(f[2], f[2], f[3], batch_stats_in_eval)
        self.down_tr512 = DownTransition(f[3], f[3], f[4], batch_stats_in_eval)
        self.pool = nn.MaxPool3d(2)
        self._use_memory_format()

    def _use_memory_format(self) -> None:
        """Move the parameters to channels_last_3d when asked; subclasses call it after adding layers."""
        if self.channels_last:
            self.to(memory_format=torch.channels_last_3d)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Raise a clear ValueError on a wrong input shape; return x in the network's memory format."""
        if x.dim() != 5:
            raise ValueError(
                "{} expects a 5D input (batch, channels, H, W, D), got shape {}.".format(
                    self.network_name, list(x.shape)
                )
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                "{} was built with in_channels={}, got an input with {} channels (shape {}).".format(
                    self.network_name, self.in_channels, x.shape[1], list(x.shape)
                )
            )
        for size in x.shape[2:]:
            if size % self.size_divisor != 0:
                raise ValueError(
                    "{} input spatial size {} must be divisible by {} in every dimension "
                    "(three 2x2x2 poolings).".format(self.network_name, list(x.shape[2:]), self.size_divisor)
                )
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` that also takes the checkpoint formats of :py:func:`read_state_dict`:
        the published ``Genesis_Chest_CT.pt`` (``{"state_dict": {"module.<name>": ...}, "epoch", ...}``) and
        this project's training checkpoints (``{"model": ..., "settings": ...}``), unwrapped, still strict.
        MONAI's loaders call this method (``monai.bundle ckpt_export`` / ``onnx_export``, ``CheckpointLoader``),
        so they read those files as they are, with no conversion."""
        plain = all(isinstance(v, torch.Tensor) for v in state_dict.values()) and not any(
            str(k).startswith("module.") for k in state_dict)
        return super().load_state_dict(state_dict if plain and state_dict else read_state_dict(state_dict),
                                       strict=strict, assign=assign)

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Deepest features and the three skip feature maps (shallowest first); checks the input."""
        x = self._check_input(x)
        skip64 = self.down_tr64(x)
        skip128 = self.down_tr128(self.pool(skip64))
        skip256 = self.down_tr256(self.pool(skip128))
        deepest = self.down_tr512(self.pool(skip256))
        return deepest, [skip64, skip128, skip256]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deepest, _ = self.encode(x)
        return deepest
