"""Segmentation figures of the target tasks that MONAI does not compute as the reference does (docs/method.md §5.2).

Dice, foreground IoU (``MeanIoU``) and surface Dice (``SurfaceDiceMetric``) are MONAI's. Two pieces
are ours:

* :py:class:`ThresholdAveragedIoU`: the IoU the paper publishes, the mean over the thresholds
  0.5, 0.55, ..., 0.95 of the two-class mean IoU (background and foreground IoU averaged), pooled
  over the whole evaluation set as TensorFlow's streaming ``mean_iou`` pools its confusion matrix.
  MONAI's ``MeanIoU`` is per image, one threshold, foreground only: a different scale.
* :py:class:`MetaSpacingSurfaceDice`: ``SurfaceDiceMetric`` taking the voxel spacing from the
  label's affine, because an ignite metric handler passes no ``spacing`` argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.handlers import IgniteMetricHandler
from monai.handlers.utils import from_engine
from monai.metrics import CumulativeIterationMetric, SurfaceDiceMetric

__all__ = [
    "REFERENCE_IOU_THRESHOLDS",
    "threshold_confusion",
    "threshold_averaged_iou",
    "ThresholdAveragedIoU",
    "ThresholdAveragedIoUHandler",
    "MetaSpacingSurfaceDice",
    "SurfaceDiceHandler",
]

# docs/method.md §5.2: 0.5, 0.55, ..., 0.95 (ten thresholds)
REFERENCE_IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def threshold_confusion(y_pred: torch.Tensor, y: torch.Tensor, thresholds: Sequence[float] = REFERENCE_IOU_THRESHOLDS) -> torch.Tensor:
    """
    Per-sample confusion counts of a probability map binarised at each threshold (``p > t``).

    Args:
        y_pred: probabilities, batch first (B, C, ...); every channel counts as foreground.
        y: binary reference of the same shape (values > 0.5 are foreground).
        thresholds: the binarisation thresholds.

    Returns:
        float64 tensor (B, T, 4): true positives, false positives, false negatives, true negatives.
    """
    if y_pred.shape != y.shape:
        raise ValueError(f"prediction shape {tuple(y_pred.shape)} and label shape {tuple(y.shape)} differ.")
    pred = torch.as_tensor(y_pred).detach().flatten(1).float()
    truth = torch.as_tensor(y).detach().flatten(1) > 0.5
    counts = []
    for t in thresholds:
        positive = pred > float(t)
        tp = (positive & truth).sum(1)
        fp = (positive & ~truth).sum(1)
        fn = (~positive & truth).sum(1)
        tn = truth.shape[1] - tp - fp - fn
        counts.append(torch.stack([tp, fp, fn, tn], dim=1))
    return torch.stack(counts, dim=1).double()


def threshold_averaged_iou(confusion: torch.Tensor) -> float:
    """
    The reference IoU from pooled confusion counts (T, 4) or per-sample counts (B, T, 4), summed over B:
    for each threshold, (IoU_foreground + IoU_background) / 2; then the mean over thresholds. A class
    absent from both prediction and reference is left out of that threshold's mean (as TensorFlow does).
    """
    confusion = torch.as_tensor(confusion, dtype=torch.float64)
    if confusion.ndim == 3:
        confusion = confusion.sum(0)
    tp, fp, fn, tn = confusion.unbind(-1)
    ious = []
    for inter, union in ((tp, tp + fp + fn), (tn, tn + fn + fp)):
        ious.append(torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(union, float("nan"))))
    per_threshold = torch.nanmean(torch.stack(ious), dim=0)
    return float(torch.nanmean(per_threshold))


class ThresholdAveragedIoU(CumulativeIterationMetric):
    """
    The paper's segmentation IoU (docs/method.md §5.2), accumulated over iterations and pooled over
    every voxel of the evaluation set; ``aggregate`` returns a float in [0, 1] (nan before any data).

    Args:
        thresholds: binarisation thresholds of the probability map. Defaults to 0.5, 0.55, ..., 0.95.
    """

    def __init__(self, thresholds: Sequence[float] = REFERENCE_IOU_THRESHOLDS) -> None:
        super().__init__()
        self.thresholds = tuple(float(t) for t in thresholds)
        if not self.thresholds:
            raise ValueError("thresholds must not be empty.")

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        if y is None:
            raise ValueError("ThresholdAveragedIoU needs a label.")
        return threshold_confusion(y_pred, y, self.thresholds)

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        buffer = self.get_buffer()
        if not isinstance(buffer, torch.Tensor) or buffer.numel() == 0:
            return torch.tensor(float("nan"))
        return torch.tensor(threshold_averaged_iou(buffer), dtype=torch.float64)


class ThresholdAveragedIoUHandler(IgniteMetricHandler):
    """
    Ignite metric handler of :py:class:`ThresholdAveragedIoU`, on the probabilities (not a binarised mask).

    Args:
        thresholds: as :py:class:`ThresholdAveragedIoU`.
        output_transform: extracts (probabilities, label). Defaults to ``from_engine(["pred", "label"])``.
    """

    def __init__(self, thresholds: Sequence[float] = REFERENCE_IOU_THRESHOLDS, output_transform=None, save_details: bool = False) -> None:
        output_transform = output_transform or from_engine(["pred", "label"])
        super().__init__(metric_fn=ThresholdAveragedIoU(thresholds), output_transform=output_transform, save_details=save_details)


def _spacing_of(affine: torch.Tensor) -> list:
    affine = torch.as_tensor(affine, dtype=torch.float64)
    columns = affine[..., :3, :3]
    spacing = torch.linalg.norm(columns, dim=-2)  # (3,) or (B, 3)
    return spacing.tolist()


class MetaSpacingSurfaceDice(SurfaceDiceMetric):
    """
    MONAI's ``SurfaceDiceMetric`` (the Decathlon's normalised surface Dice), in millimetres: when no
    ``spacing`` is passed, it is read from the label's (``MetaTensor``) affine, so tolerances are in mm
    in an ignite handler too. Arguments as ``SurfaceDiceMetric`` (``class_thresholds`` in mm).
    """

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        if kwargs.get("spacing") is None and isinstance(y, MetaTensor):
            spacing = _spacing_of(y.affine)
            if spacing and isinstance(spacing[0], list) and len(spacing) != y.shape[0]:
                spacing = spacing[0]
            kwargs["spacing"] = spacing
        return super()._compute_tensor(y_pred, y, **kwargs)


class SurfaceDiceHandler(IgniteMetricHandler):
    """
    Ignite metric handler of :py:class:`MetaSpacingSurfaceDice` for one binary foreground channel.

    Args:
        tolerance_mm: the surface tolerance in millimetres.
        output_transform: extracts (binary prediction, binary label). Defaults to ``from_engine(["pred", "label"])``.
    """

    def __init__(self, tolerance_mm: float, output_transform=None, save_details: bool = False) -> None:
        if not np.isfinite(tolerance_mm) or tolerance_mm < 0:
            raise ValueError(f"tolerance_mm must be a non-negative number of millimetres, got {tolerance_mm!r}.")
        metric = MetaSpacingSurfaceDice(class_thresholds=[float(tolerance_mm)], include_background=True)
        super().__init__(metric_fn=metric, output_transform=output_transform or from_engine(["pred", "label"]),
                         save_details=save_details)
