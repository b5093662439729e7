"""Restoration metrics: the per-cube-mean baseline, the skill score, its ceiling and CI, the painted-voxel mask."""

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events

from monai_genesis.training.restoration_metrics import (
    MeanPredictorMSE,
    RestorationSkill,
    SecondViewEvaluation,
    bootstrap_skill_interval,
    cube_squared_errors,
    restoration_summary,
)
from monai_genesis.transforms import RandGenesisCorruptiond

# Two cubes of 2x2x1 voxels, one channel, worked by hand:
# cube A: target 0, 1, 0, 1 (mean 0.5, mean-predictor SE 4 x 0.25 = 1.0), pred 0, 1, 0, 0.5 (SE 0.25),
#         last voxel painted (mean-predictor SE there 0.25);
# cube B: target 0.2, 0.2, 0.2, 0.6 (mean 0.3, SE 3 x 0.01 + 0.09 = 0.12), pred exact, nothing painted.
TARGET = torch.tensor([[0, 1, 0, 1], [0.2, 0.2, 0.2, 0.6]], dtype=torch.float64).view(2, 1, 2, 2, 1)
PRED = torch.tensor([[0, 1, 0, 0.5], [0.2, 0.2, 0.2, 0.6]], dtype=torch.float64).view(2, 1, 2, 2, 1)
PAINTED = torch.tensor([[0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.bool).view(2, 1, 2, 2, 1)
SKILL = 1 - 0.25 / 1.12  # ratio of sums; the mean of per-cube skills would be (0.75 + 1) / 2
CEILING = 1 - 0.25 / 1.12


def test_skill_and_ceiling_by_hand():
    errors = cube_squared_errors(PRED, TARGET, PAINTED)
    np.testing.assert_allclose(errors["model"], [0.25, 0.0], atol=1e-12)
    np.testing.assert_allclose(errors["mean"], [1.0, 0.12], atol=1e-12)
    np.testing.assert_allclose(errors["mean_painted"], [0.25, 0.0], atol=1e-12)
    summary = restoration_summary({k: v.numpy() for k, v in errors.items()})
    assert summary["mean_mse"] == pytest.approx(1.12 / 8)
    assert summary["skill"] == pytest.approx(SKILL) and summary["skill_ceiling"] == pytest.approx(CEILING)
    assert summary["skill_ci_low"] <= summary["skill"] <= summary["skill_ci_high"]
    # a list of items (a decollated batch) gives the same sums; no mask, no ceiling
    assert "skill_ceiling" not in restoration_summary(cube_squared_errors(list(PRED), list(TARGET)))


def test_bootstrap_interval():
    rng = np.random.default_rng(0)
    mean_se = rng.uniform(0.5, 1.5, 200)
    model_se = mean_se * rng.uniform(0.3, 0.5, 200)  # every cube restored: skill about 0.6
    low, high = bootstrap_skill_interval(model_se, mean_se)
    assert 0.55 < low < 1 - model_se.sum() / mean_se.sum() < high < 0.65
    assert bootstrap_skill_interval(model_se, mean_se) == (low, high)  # seeded
    low, high = bootstrap_skill_interval(mean_se * rng.uniform(0.5, 1.5, 200), mean_se)  # no skill
    assert low < 0 < high
    assert bootstrap_skill_interval([1.0, 1.0], [2.0, 2.0]) == pytest.approx((0.5, 0.5))


def _engine_run(batches, metrics):
    def step(engine, item):  # the metric reads the mask from state.batch, as in a MONAI evaluator
        engine.state.batch = item["batch"]
        return item["output"]

    engine = Engine(step)
    for name, metric in metrics.items():
        metric.attach(engine, name)
    return engine.run(batches, max_epochs=1)


def test_ignite_metrics_batches_and_decollated_lists():
    out = lambda o: (o["pred"], o["label"])  # noqa: E731
    batches = [  # one cube per batch: a batch tensor first, then a decollated list
        {"output": {"pred": PRED[:1], "label": TARGET[:1]}, "batch": {"painted": PAINTED[:1]}},
        {"output": {"pred": list(PRED[1:]), "label": list(TARGET[1:])}, "batch": [{"painted": PAINTED[1]}]},
    ]
    state = _engine_run(batches, {"skill": RestorationSkill(out, painted_key="painted"), "mean_mse": MeanPredictorMSE(out)})
    assert set(state.metrics) == {"skill", "skill_ci_low", "skill_ci_high", "skill_ceiling", "mean_mse"}
    assert all(isinstance(v, float) for v in state.metrics.values())
    assert state.metrics["skill"] == pytest.approx(SKILL) and state.metrics["skill_ceiling"] == pytest.approx(CEILING)
    assert state.metrics["mean_mse"] == pytest.approx(1.12 / 8)


def test_second_view_adds_prefixed_metrics():
    second = Engine(lambda e, b: None)
    second.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(skill=0.5, mse=0.01))
    view = SecondViewEvaluation(_Runner(second), prefix="nopaint_")
    first = Engine(lambda e, b: None)
    view.attach(first)
    first.run([0], max_epochs=1)
    assert first.state.metrics == {"nopaint_skill": 0.5, "nopaint_mse": 0.01}
    with pytest.raises(ValueError, match="prefix"):
        SecondViewEvaluation(second, prefix="")


class _Runner:
    """A MONAI evaluator's interface: run() and state."""

    def __init__(self, engine):
        self.engine = engine

    def run(self):
        self.engine.run([0], max_epochs=1)

    @property
    def state(self):
        return self.engine.state


def test_painted_mask_is_what_was_painted():
    # flips, shuffling and intensity off: exactly the painted voxels differ from the target
    corrupt = RandGenesisCorruptiond("image", flip_prob=0, local_shuffle_prob=0, nonlinear_prob=0, paint_prob=0.9,
                                     inpaint_prob=0.2, painted_key="painted")
    rng = np.random.default_rng(0)
    kinds, shares = [], []
    for seed in range(40):
        corrupt.set_random_state(seed)
        d = corrupt({"image": rng.uniform(0.2, 0.8, (1, 32, 32, 16)).astype(np.float32)})
        assert d["painted"].shape == (1, 32, 32, 16) and d["painted"].dtype == bool
        np.testing.assert_array_equal(d["painted"], d["image"] != d["target"])
        kinds.append(type(corrupt.painter).__name__ if corrupt.painter is not None else "none")
        shares.append(d["painted"].mean())
    shares, kinds = np.array(shares), np.array(kinds)
    assert (shares[kinds == "none"] == 0).all() and (kinds == "none").any()
    assert 0 < shares[kinds == "RandInPainting"].max() < 0.35 and shares[kinds == "RandOutPainting"].min() > 0.35
    # off by default: no mask key, and the same draws with or without it
    plain = RandGenesisCorruptiond("image", flip_prob=0, local_shuffle_prob=0, nonlinear_prob=0).set_random_state(3)
    corrupt.set_random_state(3)
    x = rng.uniform(0.2, 0.8, (1, 32, 32, 16)).astype(np.float32)
    a, b = plain({"image": x.copy()}), corrupt({"image": x.copy()})
    assert "painted" not in a and np.array_equal(a["image"], b["image"])


def test_painted_key_errors():
    with pytest.raises(ValueError, match="painted_key"):
        RandGenesisCorruptiond("image", painted_key="target")
    with pytest.raises(ValueError, match="painted_key"):
        RandGenesisCorruptiond("image", painted_key=["a", "b"])
