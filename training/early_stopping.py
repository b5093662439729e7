"""MONAI's early stopping with its counter and best score saved in checkpoints."""

from __future__ import annotations

from collections.abc import Mapping

from monai.handlers import EarlyStopHandler

__all__ = ["ResumableEarlyStopHandler"]


class ResumableEarlyStopHandler(EarlyStopHandler):
    """
    :py:class:`monai.handlers.EarlyStopHandler` with ``state_dict`` / ``load_state_dict`` (ignite's
    ``EarlyStopping`` counter and best score), so that a resumed run stops after the same number of
    epochs without improvement as an uninterrupted one (Models Genesis: patience 50).

    A state loaded before ``set_trainer`` (a checkpoint is restored when the trainer starts, the
    bundle calls ``set_trainer`` earlier or later) is kept and applied once the trainer is set.
    Arguments as :py:class:`monai.handlers.EarlyStopHandler`.
    """

    _pending_state: Mapping | None = None

    def set_trainer(self, trainer) -> None:
        super().set_trainer(trainer)
        if self._pending_state is not None:
            self._apply(self._pending_state)
            self._pending_state = None

    def state_dict(self) -> dict:
        """``{"counter", "best_score"}`` of the wrapped ignite ``EarlyStopping`` (empty before ``set_trainer``)."""
        if self._handler is None:
            return dict(self._pending_state or {})
        # Only these two attributes: ignite's own state_dict gained keys in 0.5 that 0.4 cannot load.
        return {"counter": int(self._handler.counter), "best_score": self._handler.best_score}

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore the counter and best score; an empty dict leaves a fresh state."""
        if not state_dict:
            return
        if self._handler is None:
            self._pending_state = dict(state_dict)
        else:
            self._apply(state_dict)

    def _apply(self, state: Mapping) -> None:
        self._handler.counter = int(state["counter"])
        self._handler.best_score = state["best_score"]
