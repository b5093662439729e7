"""Batch norm of the Models Genesis U-Net, optionally using batch statistics in evaluation too."""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GenesisBatchNorm3d"]


class GenesisBatchNorm3d(nn.BatchNorm3d):
    """
    3D batch norm that can keep normalising with the current batch's statistics in evaluation.

    The reference Models Genesis implementation (Zhou et al., MICCAI 2019) always normalises with
    batch statistics, in training and in evaluation alike, and its published weights were trained
    (and evaluated) that way. ``batch_stats_in_eval=True`` reproduces it; ``False`` is ordinary
    ``nn.BatchNorm3d`` (running statistics in evaluation). In training both behave the same.

    Unlike the reference, evaluation with ``batch_stats_in_eval=True`` does not update the running
    statistics (the outputs are identical; the buffers simply stay as loaded).

    Args:
        num_features: number of channels.
        batch_stats_in_eval: normalise with batch statistics in evaluation mode too. Defaults to False.
        eps: added to the variance for numerical stability. Defaults to 1e-5 (as the reference).
        momentum: running statistics momentum. Defaults to 0.1 (as the reference).
    """

    def __init__(
        self, num_features: int, batch_stats_in_eval: bool = False, eps: float = 1e-5, momentum: float = 0.1
    ) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.batch_stats_in_eval = batch_stats_in_eval

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # written out in full (no super().forward) because TorchScript cannot compile super() calls
        self._check_input_dim(input)
        if self.training:
            momentum = 0.0 if self.momentum is None else self.momentum
            if self.num_batches_tracked is not None:
                self.num_batches_tracked.add_(1)
                if self.momentum is None:  # cumulative moving average, as nn.BatchNorm3d
                    momentum = 1.0 / float(self.num_batches_tracked)
            return F.batch_norm(
                input, self.running_mean, self.running_var, self.weight, self.bias, True, momentum, self.eps
            )
        if self.batch_stats_in_eval:
            # batch statistics without running buffers, so evaluation leaves them untouched
            return F.batch_norm(input, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return F.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", batch_stats_in_eval={self.batch_stats_in_eval}"
