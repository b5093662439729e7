"""Classification target network of Models Genesis: the pretrained encoder plus a small dense head."""

import torch
from torch import nn

from .encoder import GenesisEncoder

__all__ = ["GenesisClassifier"]

HIDDEN_UNITS = 1024


class GenesisClassifier(GenesisEncoder):
    """
    Models Genesis classification network (Zhou et al., MICCAI 2019): the U-Net encoder (deepest,
    512-channel feature map at width 1), global average pooling, a 1024-unit dense layer with ReLU,
    then a dense layer to ``num_classes``. Returns logits (use ``BCEWithLogitsLoss`` or
    ``CrossEntropyLoss``).

    The encoder keeps the reference names (``down_tr64`` ... ``down_tr512``), so an encoder-only
    checkpoint load (``load_genesis_weights(model, src, part="encoder")``) fills it and leaves the
    dense head (``dense_1``, ``dense_2``) freshly initialised.

    Args:
        in_channels: input channels. Defaults to 1.
        num_classes: output logits. Defaults to 1 (binary, as the paper's false-positive reduction).
        width: multiplier of the published filter counts. Defaults to 1.0.
        batch_stats_in_eval: batch statistics in evaluation too, as the reference; see
            :py:class:`GenesisBatchNorm3d`. Defaults to False.
        channels_last: compute in ``torch.channels_last_3d`` memory format (see
            :py:class:`GenesisEncoder`). Defaults to True.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 1,
        width: float = 1.0,
        batch_stats_in_eval: bool = False,
        channels_last: bool = True,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
        super().__init__(in_channels, width, batch_stats_in_eval, channels_last)
        self.num_classes = num_classes
        self.dense_1 = nn.Linear(self.feature_channels, HIDDEN_UNITS)
        self.relu = nn.ReLU(inplace=True)
        self.dense_2 = nn.Linear(HIDDEN_UNITS, num_classes)
        self._use_memory_format()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deepest, _ = self.encode(x)
        pooled = deepest.mean(dim=(2, 3, 4))  # global average pooling
        return self.dense_2(self.relu(self.dense_1(pooled)))
