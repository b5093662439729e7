"""Restoration metrics with baselines: the per-cube-mean predictor, the skill score, its ceiling, a bootstrap CI.

A restoration MSE alone says little: a network that outputs each cube's mean intensity already
beats the corrupted input by far. So the validation and evaluation report, on the same held-out
cubes as the model's MSE:

- ``mean_mse``: the MSE of the *per-cube-mean predictor*, which predicts every voxel of a cube as
  that cube's own target mean (per channel);
- ``skill = 1 - SE_model / SE_mean``: the share of the mean predictor's squared error the model
  removes (0: no better than the cube mean; 1: perfect restoration; negative: worse);
- ``skill_ceiling = 1 - SE_mean(painted voxels) / SE_mean``: the skill of a model that restores
  every unpainted voxel exactly and predicts the cube mean on painted ones (in- and out-painting
  replace them by noise, ``docs/method.md`` §2.4, §2.5). It is a reference, not a strict bound: a
  model may guess painted voxels from their context better than the cube mean;
- ``skill_ci_low`` / ``skill_ci_high``: a percentile bootstrap confidence interval of the skill,
  resampling cubes with replacement (the cubes are the independent units).

Aggregation: every sum runs over all voxels of all cubes, and the dataset's skill is one minus the
ratio of the two *sums* (a ratio of totals, i.e. of the dataset MSEs: ``skill == 1 - mse / mean_mse``
for equal-sized cubes), not the mean of per-cube skills: nearly uniform cubes (air, or a cube out-painted
almost everywhere) have a tiny mean-predictor error, and their per-cube ratios would be unstable
and dominate a mean of ratios.

:py:class:`RestorationSkill` and :py:class:`MeanPredictorMSE` are ignite metrics for MONAI
evaluators; :py:class:`SecondViewEvaluation` runs a second evaluator (e.g. the same cubes corrupted
without painting) at the end of each evaluation and adds its metrics under a prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from monai.utils import IgniteInfo, min_version, optional_import

Metric, _ = optional_import("ignite.metrics", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Metric")
Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
idist, _ = optional_import("ignite.distributed")

__all__ = [
    "NUM_BOOTSTRAP",
    "CONFIDENCE",
    "cube_squared_errors",
    "skill_score",
    "skill_ceiling",
    "bootstrap_skill_interval",
    "restoration_summary",
    "MeanPredictorMSE",
    "RestorationSkill",
    "SecondViewEvaluation",
]

NUM_BOOTSTRAP = 2000  # bootstrap resamples of the cubes
CONFIDENCE = 0.95  # coverage of the bootstrap interval


def _batch(x) -> torch.Tensor:
    """A (B, C, ...) float64 CPU tensor from a batch tensor or a list of (C, ...) items."""
    if isinstance(x, (list, tuple)):
        x = torch.stack([torch.as_tensor(i) for i in x])
    return torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)


def cube_squared_errors(pred, target, painted=None) -> dict:
    """
    Per-cube sums of squared errors of a batch: ``model`` (pred vs target), ``mean`` (the cube's own
    target mean per channel vs target), ``mean_painted`` (the latter on painted voxels only; absent
    without ``painted``) and ``voxels`` (elements per cube).

    Args:
        pred, target: (B, C, H, W, D) tensors or lists of (C, H, W, D) items.
        painted: optional painted-voxel masks, (B, 1 or C, H, W, D) or a list of items; nonzero = painted.

    Returns:
        dict of float64 tensors of shape (B,).
    """
    pred, target = _batch(pred), _batch(target)
    if pred.shape != target.shape or pred.ndim < 3:
        raise ValueError(f"pred and target need one (B, C, spatial...) shape, got {tuple(pred.shape)} and {tuple(target.shape)}.")
    spatial = tuple(range(2, target.ndim))
    mean_error = (target - target.mean(dim=spatial, keepdim=True)) ** 2
    out = {
        "model": ((pred - target) ** 2).flatten(1).sum(1),
        "mean": mean_error.flatten(1).sum(1),
        "voxels": torch.full((target.shape[0],), float(target[0].numel()), dtype=torch.float64),
    }
    if painted is not None:
        mask = _batch(painted) != 0
        if mask.shape[0] != target.shape[0] or mask.shape[2:] != target.shape[2:]:
            raise ValueError(f"painted mask of shape {tuple(mask.shape)} does not match the target's {tuple(target.shape)}.")
        out["mean_painted"] = (mean_error * mask).flatten(1).sum(1)
    return out


def skill_score(model_se, mean_se) -> float:
    """``1 - sum(model_se) / sum(mean_se)`` over cubes (NaN when the mean predictor has no error)."""
    total = float(np.sum(mean_se))
    return 1.0 - float(np.sum(model_se)) / total if total > 0 else float("nan")


def skill_ceiling(mean_painted_se, mean_se) -> float:
    """``1 - sum(mean_painted_se) / sum(mean_se)``: the skill of exact restoration outside painted voxels."""
    return skill_score(mean_painted_se, mean_se)


def bootstrap_skill_interval(
    model_se, mean_se, num_bootstrap: int = NUM_BOOTSTRAP, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float]:
    """
    Percentile bootstrap interval of :py:func:`skill_score`, resampling cubes with replacement.

    Args:
        model_se, mean_se: per-cube squared-error sums of the model and of the mean predictor.
        num_bootstrap: resamples. Defaults to 2000.
        confidence: coverage. Defaults to 0.95.
        seed: seed of the resampling (fixed, so a report is reproducible). Defaults to 0.
    """
    model_se, mean_se = np.asarray(model_se, np.float64), np.asarray(mean_se, np.float64)
    n = len(model_se)
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    chunk, skills = max(1, 2_000_000 // n), []  # resamples per step: bounded memory for large evaluations
    for start in range(0, num_bootstrap, chunk):
        idx = rng.integers(0, n, (min(chunk, num_bootstrap - start), n))
        totals = mean_se[idx].sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            skills.append(np.where(totals > 0, 1.0 - model_se[idx].sum(1) / totals, np.nan))
    skills = np.concatenate(skills)
    alpha = (1.0 - confidence) / 2
    low, high = np.nanquantile(skills, [alpha, 1.0 - alpha]) if np.isfinite(skills).any() else (np.nan, np.nan)
    return float(low), float(high)


def restoration_summary(errors: Mapping[str, Sequence[float]], num_bootstrap: int = NUM_BOOTSTRAP,
                        confidence: float = CONFIDENCE, seed: int = 0) -> dict:
    """
    ``mean_mse``, ``skill``, ``skill_ci_low``, ``skill_ci_high`` and (with ``mean_painted``) ``skill_ceiling``
    from per-cube errors as :py:func:`cube_squared_errors` returns them (concatenated over batches).
    """
    errors = {k: np.asarray(v, np.float64) for k, v in errors.items()}
    model_se, mean_se, voxels = errors["model"], errors["mean"], float(errors["voxels"].sum())
    low, high = bootstrap_skill_interval(model_se, mean_se, num_bootstrap, confidence, seed)
    out = {
        "mean_mse": float(mean_se.sum()) / voxels if voxels else float("nan"),
        "skill": skill_score(model_se, mean_se),
        "skill_ci_low": low,
        "skill_ci_high": high,
    }
    if "mean_painted" in errors:
        out["skill_ceiling"] = skill_ceiling(errors["mean_painted"], mean_se)
    return out


def _pair(output) -> tuple:
    if not isinstance(output, (list, tuple)) or len(output) not in (2, 3):
        raise ValueError("the output_transform must give (pred, target) or (pred, target, painted mask).")
    return tuple(output)


def _all_gather_1d(values: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's 1-D tensor (shards may differ in length: padded, gathered, trimmed)."""
    sizes = [int(n) for n in idist.all_gather(torch.tensor([values.numel()]))]
    padded = torch.zeros(max(sizes), dtype=values.dtype)
    padded[: values.numel()] = values
    gathered = idist.all_gather(padded).view(len(sizes), -1)
    return torch.cat([row[:n] for row, n in zip(gathered, sizes)])


class _CubeErrors(Metric):
    """
    Accumulates :py:func:`cube_squared_errors` per cube, gathered across processes at compute time.
    ``painted_key`` names the painted-voxel masks in ``engine.state.batch`` (the engine's output holds
    only image, label and pred).
    """

    def __init__(self, output_transform: Callable = lambda x: x, painted_key: str | None = None, device="cpu") -> None:
        self.painted_key = painted_key
        super().__init__(output_transform=output_transform, device=device)

    def reset(self) -> None:
        self._errors: dict = {}

    def update(self, output) -> None:
        for key, value in cube_squared_errors(*_pair(output)).items():
            self._errors.setdefault(key, []).append(value)

    def iteration_completed(self, engine) -> None:
        # Whole batches (or decollated lists) go to update: ignite 0.5 would otherwise unroll lists item by item.
        output = tuple(self._output_transform(engine.state.output))[:2]
        if self.painted_key is not None:
            batch = engine.state.batch
            painted = batch[self.painted_key] if isinstance(batch, Mapping) else [item[self.painted_key] for item in batch]
            output = (*output, painted)
        self.update(output)

    def _gathered(self) -> dict:
        if not self._errors:
            raise RuntimeError(f"{type(self).__name__} needs at least one batch before it can be computed.")
        errors = {k: torch.cat(v) for k, v in self._errors.items()}
        if idist.get_world_size() > 1:
            errors = {k: _all_gather_1d(v) for k, v in errors.items()}
        return {k: v.numpy() for k, v in errors.items()}


class MeanPredictorMSE(_CubeErrors):
    """
    Ignite metric: the MSE of the per-cube-mean predictor (each cube's own target mean everywhere) on
    the evaluated cubes, the baseline a restoration model must beat. Aggregated like MONAI's
    ``MeanSquaredError`` (the mean over cubes of each cube's MSE, for equal-sized cubes the mean over voxels).

    Args:
        output_transform: engine output -> (pred, target), e.g. ``monai.handlers.from_engine(['pred', 'label'])``.
        device: ignite's metric device. Defaults to "cpu".
    """

    def __init__(self, output_transform: Callable = lambda x: x, device="cpu") -> None:
        super().__init__(output_transform=output_transform, device=device)

    def compute(self) -> float:
        errors = self._gathered()
        return float(errors["mean"].sum() / errors["voxels"].sum())


class RestorationSkill(_CubeErrors):
    """
    Ignite metric: the skill score ``1 - SE_model / SE_mean`` against the per-cube-mean predictor
    (ratio of sums over all cubes, see the module docstring), stored under the metric's name, plus
    ``<name>_ci_low`` / ``<name>_ci_high`` (percentile bootstrap over cubes) and, when the output
    batch holds painted-voxel masks under ``painted_key`` (``RandGenesisCorruptiond(painted_key=...)``),
    ``<name>_ceiling``. These extra entries are written into ``engine.state.metrics`` as scalars,
    so every handler (StatsHandler, TensorBoardStatsHandler, MetricsSaver) sees them like any metric.

    Args:
        output_transform: engine output -> (pred, target), e.g. ``monai.handlers.from_engine(['pred', 'label'])``.
        painted_key: batch key of the painted-voxel masks, or None (no ceiling). Defaults to None.
        num_bootstrap: bootstrap resamples. Defaults to 2000.
        confidence: coverage of the interval. Defaults to 0.95.
        seed: seed of the resampling. Defaults to 0.
        device: ignite's metric device. Defaults to "cpu".
    """

    def __init__(self, output_transform: Callable = lambda x: x, painted_key: str | None = None,
                 num_bootstrap: int = NUM_BOOTSTRAP, confidence: float = CONFIDENCE, seed: int = 0, device="cpu") -> None:
        if num_bootstrap < 1 or not 0 < confidence < 1:
            raise ValueError(f"num_bootstrap must be >= 1 and confidence in (0, 1), got {num_bootstrap} and {confidence}.")
        self.num_bootstrap, self.confidence, self.seed = int(num_bootstrap), float(confidence), int(seed)
        super().__init__(output_transform=output_transform, painted_key=painted_key, device=device)

    def compute(self) -> dict:
        """``skill``, ``skill_ci_low``, ``skill_ci_high`` and (with masks) ``skill_ceiling``; ``mean_mse`` too."""
        return restoration_summary(self._gathered(), self.num_bootstrap, self.confidence, self.seed)

    def completed(self, engine, name: str) -> None:
        # Flat scalar entries whatever ignite's version does with a dict result (0.4 also stores the dict).
        summary = self.compute()
        engine.state.metrics[name] = summary["skill"]
        for key in ("ci_low", "ci_high", "ceiling"):
            if f"skill_{key}" in summary:
                engine.state.metrics[f"{name}_{key}"] = summary[f"skill_{key}"]


class SecondViewEvaluation:
    """
    Handler for a MONAI evaluator: when it completes an epoch, run ``evaluator`` (another view of the
    same cubes, e.g. corrupted without painting, on the same network) and add that evaluator's
    metrics to this engine's ``state.metrics`` as ``<prefix><name>``. List it first among the
    evaluator's handlers, so the statistics, TensorBoard and metrics-saving handlers see the entries.

    Args:
        evaluator: the second evaluator (its metrics attached as usual).
        prefix: prefix of the copied metric names, e.g. "val_nopaint_".
    """

    def __init__(self, evaluator, prefix: str) -> None:
        if not prefix:
            raise ValueError("prefix must be a non-empty string, so the second view's metrics cannot overwrite the first's.")
        self.evaluator = evaluator
        self.prefix = prefix

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine) -> None:
        self.evaluator.run()
        for name, value in self.evaluator.state.metrics.items():
            engine.state.metrics[f"{self.prefix}{name}"] = value
