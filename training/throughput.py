"""Measure training throughput and how long each step waits for data."""

from __future__ import annotations

import time

from monai.utils import IgniteInfo, min_version, optional_import

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["ThroughputHandler"]


class ThroughputHandler:
    """
    Ignite handler for the trainer: per epoch, the items per second and the share of each step spent
    waiting for the data loader (from ``GET_BATCH_STARTED`` to ``GET_BATCH_COMPLETED``; the rest of
    the step is moving, corrupting on the device, forward, backward and optimiser step). Logs one
    line per epoch; :py:meth:`summary` returns the totals.

    Args:
        batch_size: items per step, to turn steps into items. Defaults to 1.
        skip_first: steps to leave out at the start of each epoch (data loader workers starting). Defaults to 0.
        log: whether to log a line per epoch. Defaults to True.
    """

    def __init__(self, batch_size: int = 1, skip_first: int = 0, log: bool = True) -> None:
        self.batch_size = int(batch_size)
        self.skip_first = int(skip_first)
        self.log = log
        self.steps = 0
        self.data_seconds = 0.0
        self.step_seconds = 0.0
        self._epoch = [0, 0.0, 0.0]  # steps, data seconds, step seconds of the current epoch
        self._step_start = self._batch_start = self._batch_seconds = 0.0
        self._step_in_epoch = 0

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.GET_BATCH_STARTED, self._get_batch_started)
        engine.add_event_handler(Events.GET_BATCH_COMPLETED, self._get_batch_completed)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)

    def _epoch_started(self, engine) -> None:
        self._epoch = [0, 0.0, 0.0]
        self._step_in_epoch = 0

    def _get_batch_started(self, engine) -> None:
        self._step_start = self._batch_start = time.perf_counter()

    def _get_batch_completed(self, engine) -> None:
        self._batch_seconds = time.perf_counter() - self._batch_start

    def _iteration_completed(self, engine) -> None:
        step = time.perf_counter() - self._step_start
        self._step_in_epoch += 1
        if self._step_in_epoch <= self.skip_first:
            return
        self._epoch[0] += 1
        self._epoch[1] += self._batch_seconds
        self._epoch[2] += step
        self.steps += 1
        self.data_seconds += self._batch_seconds
        self.step_seconds += step

    def _epoch_completed(self, engine) -> None:
        steps, data, total = self._epoch
        if self.log and steps and total > 0:
            engine.logger.info(
                f"epoch {engine.state.epoch}: {steps * self.batch_size / total:.1f} items/s, "
                f"data wait {100 * data / total:.1f}% of step time ({1000 * data / steps:.1f} of {1000 * total / steps:.1f} ms)"
            )

    def summary(self) -> dict:
        """Totals over all measured steps: steps, items_per_second, data_fraction, seconds_per_step."""
        if self.steps == 0 or self.step_seconds <= 0:
            return {"steps": 0, "items_per_second": 0.0, "data_fraction": 0.0, "seconds_per_step": 0.0}
        return {
            "steps": self.steps,
            "items_per_second": self.steps * self.batch_size / self.step_seconds,
            "data_fraction": self.data_seconds / self.step_seconds,
            "seconds_per_step": self.step_seconds / self.steps,
        }
