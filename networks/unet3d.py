"""The 3D U-Net of Models Genesis, layer for layer as the reference PyTorch implementation."""

from typing import Optional

import torch

from .blocks import OutputTransition, UpTransition
from .encoder import GenesisEncoder

__all__ = ["UNet3D"]


class UNet3D(GenesisEncoder):
    """
    3D U-Net of Models Genesis (Zhou et al., "Models Genesis", MICCAI 2019; MedIA 2021), as the
    reference PyTorch implementation: the :py:class:`GenesisEncoder` (four levels of two
    conv-BN-ReLU blocks, 32/64 ... 256/512 filters), then three decoder levels (2x2x2 transposed conv
    keeping the channel count, concatenation with the skip, two conv blocks to 256, 128, 64), then a
    1x1x1 convolution and the output activation. 19,073,665 parameters at width 1 with one output.

    The module names are the reference's, so the published ``Genesis_Chest_CT.pt`` state dict loads
    after stripping its ``module.`` prefix (:py:func:`load_genesis_weights` does that).
    Input (B, in_channels, H, W, D) with H, W, D divisible by 8; output (B, out_channels, H, W, D).

    Batch norm: the reference normalises with batch statistics in evaluation too. Use
    ``batch_stats_in_eval=True`` to run the published weights faithfully; the default (False) is
    ordinary batch norm, which uses running statistics in evaluation (better for small or
    single-sample inference once the running statistics were trained with this network).

    Args:
        in_channels: input channels (1 for the published CT model; 4 for BraTS modalities). Defaults to 1.
        out_channels: output channels. Defaults to 1.
        width: multiplier of the published filter counts; 0.125 gives 4..64 filters. Defaults to 1.0.
        out_activation: "sigmoid" (the published restoration head, default), "softmax" (over
            channels) or None for logits (for losses that take logits).
        batch_stats_in_eval: batch statistics in evaluation too, as the reference. Defaults to False.
        channels_last: compute in ``torch.channels_last_3d`` memory format, slightly faster on CPU
            than NCDHW (see :py:class:`GenesisEncoder`); outputs come out channels-last. Defaults to True.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: float = 1.0,
        out_activation: Optional[str] = "sigmoid",
        batch_stats_in_eval: bool = False,
        channels_last: bool = True,
    ) -> None:
        if isinstance(out_channels, bool) or not isinstance(out_channels, int) or out_channels < 1:
            raise ValueError(f"out_channels must be a positive integer, got {out_channels!r}.")
        super().__init__(in_channels, width, batch_stats_in_eval, channels_last)
        f = self.filters
        self.out_channels = out_channels
        self.up_tr256 = UpTransition(f[4], f[3], f[3], batch_stats_in_eval)
        self.up_tr128 = UpTransition(f[3], f[2], f[2], batch_stats_in_eval)
        self.up_tr64 = UpTransition(f[2], f[1], f[1], batch_stats_in_eval)
        self.out_tr = OutputTransition(f[1], out_channels, out_activation)
        self._use_memory_format()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deepest, skips = self.encode(x)
        out = self.up_tr256(deepest, skips[2])
        out = self.up_tr128(out, skips[1])
        out = self.up_tr64(out, skips[0])
        return self.out_tr(out)
