"""Building blocks of the Models Genesis 3D U-Net, named so the published weights load as they are.

MONAI's ``Convolution``/``UnetBasicBlock`` would name their layers differently (``conv``, ``adn.N``),
so the published checkpoint keys (``down_tr64.ops.0.conv1.weight``, ``...bn1.running_mean``,
``up_tr256.up_conv.weight``, ``out_tr.final_conv.bias``) could not load without renaming; these few
small blocks keep the reference layout instead.
"""

from typing import Optional

import torch
from torch import nn

from .batchnorm import GenesisBatchNorm3d

__all__ = ["ConvBlock", "DownTransition", "UpTransition", "OutputTransition", "OUT_ACTIVATIONS"]

OUT_ACTIVATIONS = ("sigmoid", "softmax", "none")


class ConvBlock(nn.Module):
    """
    3x3x3 convolution (with bias) -> batch norm -> ReLU, one unit of the Models Genesis U-Net.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        batch_stats_in_eval: see :py:class:`GenesisBatchNorm3d`.
    """

    def __init__(self, in_channels: int, out_channels: int, batch_stats_in_eval: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn1 = GenesisBatchNorm3d(out_channels, batch_stats_in_eval=batch_stats_in_eval)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)))


def _two_conv_blocks(in_channels: int, mid_channels: int, out_channels: int, batch_stats_in_eval: bool):
    return nn.Sequential(
        ConvBlock(in_channels, mid_channels, batch_stats_in_eval),
        ConvBlock(mid_channels, out_channels, batch_stats_in_eval),
    )


class DownTransition(nn.Module):
    """
    One encoder level: two conv blocks (``ops``); the max pooling between levels is the encoder's.

    Args:
        in_channels: input channels.
        mid_channels: output channels of the first block.
        out_channels: output channels of the second block.
        batch_stats_in_eval: see :py:class:`GenesisBatchNorm3d`.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, batch_stats_in_eval: bool = False):
        super().__init__()
        self.ops = _two_conv_blocks(in_channels, mid_channels, out_channels, batch_stats_in_eval)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops(x)


class UpTransition(nn.Module):
    """
    One decoder level: 2x2x2 transposed conv keeping the channel count, concatenation with the skip
    (upsampled features first, as the reference), then two conv blocks.

    Args:
        in_channels: channels of the deeper features (kept by the transposed conv).
        skip_channels: channels of the skip connection.
        out_channels: output channels of both conv blocks.
        batch_stats_in_eval: see :py:class:`GenesisBatchNorm3d`.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, batch_stats_in_eval: bool = False):
        super().__init__()
        self.up_conv = nn.ConvTranspose3d(in_channels, in_channels, kernel_size=2, stride=2)
        self.ops = _two_conv_blocks(in_channels + skip_channels, out_channels, out_channels, batch_stats_in_eval)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.ops(torch.cat((self.up_conv(x), skip), dim=1))


class OutputTransition(nn.Module):
    """
    1x1x1 convolution to the output channels, then the output activation.

    Args:
        in_channels: input channels.
        out_channels: output channels (classes).
        activation: "sigmoid" (the published restoration head), "softmax" (over channels) or
            "none"/None for logits (losses such as ``DiceCELoss``/``BCEWithLogitsLoss``).
    """

    def __init__(self, in_channels: int, out_channels: int, activation: Optional[str] = "sigmoid") -> None:
        super().__init__()
        name = "none" if activation is None else str(activation).lower()
        if name not in OUT_ACTIVATIONS:
            raise ValueError(f"out_activation must be 'sigmoid', 'softmax' or None, got {activation!r}.")
        self.final_conv = nn.Conv3d(in_channels, out_channels, kernel_size=1)
        self.activation = name  # a string, not Optional, so TorchScript compares it simply

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.final_conv(x)
        if self.activation == "sigmoid":
            return torch.sigmoid(out)
        if self.activation == "softmax":
            return torch.softmax(out, dim=1)
        return out
