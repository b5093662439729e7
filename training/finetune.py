"""Fine-tuning pieces shared by the target-task bundles (docs/method.md §5.1).

The reference fine-tunes with Keras: ``ReduceLROnPlateau`` and ``EarlyStopping`` on the validation
loss, the checkpoint with the lowest validation loss kept, and (segmentation) the Dice loss with
smooth 1 on the sigmoid output. Here the same rules are built from MONAI and PyTorch pieces:

* :py:class:`GenesisDiceLoss`: MONAI's ``DiceLoss`` with the reference's smoothing, pooled over the batch.
* :py:class:`KerasReduceLROnPlateau`: PyTorch's ``ReduceLROnPlateau`` counting patience as Keras does;
  its ``state_dict`` goes into the ``TrainingCheckpointer``, so a resumed run keeps its counter.
* :py:class:`PlateauLrHandler`: MONAI's ``LrScheduleHandler`` stepping that scheduler on a
  validation metric; attach it to the evaluator, after the metrics.
* :py:func:`validation_loss_metric`: the training loss computed on validation batches, as a metric
  handler (MONAI's ``IgniteMetricHandler`` over ``LossMetric``), named ``val_loss`` in the bundles.
* :py:func:`stack_batch`: an ``output_transform`` giving a metric the whole batch at once.

Early stopping is :py:class:`~monai_genesis.training.early_stopping.ResumableEarlyStopHandler` with
``score_function=lower_is_better("val_loss")``; the best checkpoint is
:py:class:`~monai_genesis.training.checkpoint.TrainingCheckpointer` with ``key_metric_name="val_loss"``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.handlers import IgniteMetricHandler, LrScheduleHandler
from monai.handlers.utils import from_engine
from monai.losses import DiceLoss
from torch.optim.lr_scheduler import ReduceLROnPlateau

__all__ = [
    "DICE_SMOOTH",
    "PLATEAU_FACTOR",
    "PLATEAU_PATIENCE",
    "PLATEAU_MIN_DELTA",
    "PLATEAU_MIN_LR",
    "GenesisDiceLoss",
    "KerasReduceLROnPlateau",
    "PlateauLrHandler",
    "validation_loss_metric",
    "stack_batch",
    "lower_is_better",
]

# docs/method.md §5.1, common to every target task
DICE_SMOOTH = 1.0
PLATEAU_FACTOR = 0.5
PLATEAU_PATIENCE = 6
PLATEAU_MIN_DELTA = 1e-4
PLATEAU_MIN_LR = 1e-6


class GenesisDiceLoss(DiceLoss):
    """
    The reference's segmentation loss, 1 - (2 |X.Y| + s) / (|X| + |Y| + s) with s = 1, computed on
    the network's sigmoid output (no activation here) over the whole batch flattened, as Keras
    flattens ``y_true`` and ``y_pred`` (docs/method.md §5.1).

    Args:
        smooth: s, added to numerator and denominator. Defaults to 1.
        batch: pool the batch into one Dice (the reference); False gives one loss per sample, averaged.
    """

    def __init__(self, smooth: float = DICE_SMOOTH, batch: bool = True) -> None:
        super().__init__(include_background=True, sigmoid=False, softmax=False, squared_pred=False,
                         smooth_nr=float(smooth), smooth_dr=float(smooth), batch=batch, reduction="mean")


class KerasReduceLROnPlateau(ReduceLROnPlateau):
    """
    ``torch.optim.lr_scheduler.ReduceLROnPlateau`` with Keras' meaning of its arguments: the rate is
    multiplied by ``factor`` at the ``patience``-th consecutive epoch whose value did not improve on
    the best by more than ``min_delta`` (an absolute threshold), never below ``min_lr``.
    PyTorch reduces one epoch later (when the count *exceeds* its patience), hence ``patience - 1``
    below. Defaults: docs/method.md §5.1 (x0.5 after 6 epochs, threshold 1e-4, floor 1e-6).

    ``state_dict`` / ``load_state_dict`` are PyTorch's (best value, counter, last rates), so the
    schedule survives a resume when the scheduler is in the checkpointer's ``save_dict``.

    Args:
        optimizer: the wrapped optimizer.
        patience: epochs without improvement before a reduction (Keras counting), at least 1.
        factor: multiplier of the learning rate, in (0, 1).
        min_delta: the least decrease that counts as an improvement.
        min_lr: the floor of the learning rate.
        mode: "min" for a loss (default), "max" for a score.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, patience: int = PLATEAU_PATIENCE,
                 factor: float = PLATEAU_FACTOR, min_delta: float = PLATEAU_MIN_DELTA,
                 min_lr: float = PLATEAU_MIN_LR, mode: str = "min") -> None:
        if isinstance(patience, bool) or int(patience) != patience or patience < 1:
            raise ValueError(f"patience must be a positive integer (epochs), got {patience!r}.")
        if not 0.0 < float(factor) < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}.")
        super().__init__(optimizer, mode=mode, factor=float(factor), patience=int(patience) - 1,
                         threshold=float(min_delta), threshold_mode="abs", cooldown=0, min_lr=float(min_lr))


class PlateauLrHandler(LrScheduleHandler):
    """
    MONAI's ``LrScheduleHandler`` stepping a plateau scheduler with an evaluator metric once per
    evaluation. Add it to the evaluator's ``val_handlers`` (the metrics are computed before it runs),
    so that the step happens exactly when a validation value exists, whatever ``val_interval`` is.

    Args:
        lr_scheduler: e.g. :py:class:`KerasReduceLROnPlateau`.
        metric_name: the metric in ``evaluator.state.metrics`` to step on. Defaults to "val_loss".
        print_lr: log the learning rate after each step. Defaults to True.
    """

    def __init__(self, lr_scheduler, metric_name: str = "val_loss", print_lr: bool = True) -> None:
        self.metric_name = metric_name
        super().__init__(lr_scheduler, print_lr=print_lr, epoch_level=True, step_transform=self._metric_value)

    def _metric_value(self, engine) -> float:
        metrics = engine.state.metrics
        if self.metric_name not in metrics:
            raise KeyError(f"PlateauLrHandler: metric '{self.metric_name}' not computed by this engine (has {sorted(metrics)}).")
        return float(metrics[self.metric_name])


def stack_batch(keys: Sequence[str] = ("pred", "label")) -> Callable:
    """
    An ``output_transform`` that gathers the decollated batch items under ``keys`` back into
    batch-first tensors (items of one shape), so that a loss metric sees the batch as the loss
    did in training (one pooled Dice per batch, as Keras evaluates); items of different shapes
    (whole volumes) come as a list, one value per item.
    """
    pick = from_engine(list(keys))

    def transform(output):
        values = pick(output)
        stacked = []
        for items in values:
            if isinstance(items, (list, tuple)) and items and all(i.shape == items[0].shape for i in items):
                stacked.append(torch.stack([torch.as_tensor(i) for i in items]))
            else:
                stacked.append(items)
        return tuple(stacked)

    return transform


def validation_loss_metric(loss_fn: torch.nn.Module, keys: Sequence[str] = ("pred", "label"),
                           pooled_batches: bool = True) -> IgniteMetricHandler:
    """
    The training loss on validation data as an ignite metric (MONAI ``LossMetric``), averaged over
    the validation batches; the bundles name it ``val_loss`` and stop, schedule and keep the best
    checkpoint on it (docs/method.md §5.1).

    Args:
        loss_fn: the training loss, e.g. :py:class:`GenesisDiceLoss`.
        keys: the prediction and label keys of the evaluator output. Defaults to ("pred", "label").
        pooled_batches: give the loss whole batches (:py:func:`stack_batch`, as Keras); False gives it one item at a time.
    """
    transform = stack_batch(keys) if pooled_batches else from_engine(list(keys))
    return IgniteMetricHandler(loss_fn=loss_fn, output_transform=transform, save_details=False)


def lower_is_better(metric_name: str = "val_loss") -> Callable:
    """An early-stopping ``score_function`` (higher is better for ignite) for a loss metric: its negative."""

    def score(engine) -> float:
        return -float(engine.state.metrics[metric_name])

    return score
