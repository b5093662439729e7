"""The reference's threshold-averaged two-class IoU (docs/method.md §5.2) and surface Dice in millimetres."""

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor

from monai_genesis.metrics.segmentation import (
    REFERENCE_IOU_THRESHOLDS,
    MetaSpacingSurfaceDice,
    SurfaceDiceHandler,
    ThresholdAveragedIoU,
    ThresholdAveragedIoUHandler,
)


def _hand_iou(probabilities, labels):
    """By hand, as the reference: for t in 0.5, 0.55, .. 0.95 the mean of background and foreground IoU over all voxels."""
    p = np.concatenate([np.ravel(x) for x in probabilities])
    y = np.concatenate([np.ravel(x) for x in labels]).astype(bool)
    scores = []
    for t in np.arange(0.5, 1.0, 0.05):
        b = p > t
        ious = []
        for pred, truth in ((b, y), (~b, ~y)):
            union = np.sum(pred | truth)
            if union:
                ious.append(np.sum(pred & truth) / union)
        scores.append(np.mean(ious))
    return float(np.mean(scores))


def test_thresholds_are_the_reference_ten():
    assert REFERENCE_IOU_THRESHOLDS == pytest.approx(tuple(np.arange(0.5, 1.0, 0.05)))
    assert len(REFERENCE_IOU_THRESHOLDS) == 10


def test_equals_a_hand_computation_pooled_over_batches():
    rng = np.random.default_rng(0)
    metric = ThresholdAveragedIoU()
    probs, labels = [], []
    for _ in range(3):
        y = (rng.uniform(size=(2, 1, 6, 5, 4)) > 0.7).astype(np.float32)
        p = np.clip(y * 0.6 + rng.uniform(0, 0.5, y.shape), 0, 1).astype(np.float32)
        probs.append(p)
        labels.append(y)
        metric(torch.from_numpy(p), torch.from_numpy(y))
    value = float(metric.aggregate())
    assert value == pytest.approx(_hand_iou(probs, labels), abs=1e-9)
    # pooled, not a mean of per-batch values
    per_batch = np.mean([_hand_iou([p], [y]) for p, y in zip(probs, labels)])
    assert abs(value - per_batch) > 1e-6


def test_a_tiny_example_by_hand():
    # 4 voxels, label 1 1 0 0, probabilities 0.9 0.6 0.7 0.1
    p = torch.tensor([0.9, 0.6, 0.7, 0.1]).reshape(1, 1, 4, 1, 1)
    y = torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 1, 4, 1, 1)
    # t=0.5,0.55: predicted {0,1,2}: fg 2/3, bg 1/2 ; t=0.6..0.65 predicted {0,2}: fg 1/3, bg 1/3
    # t=0.7..0.85 predicted {0}: fg 1/2, bg 2/3 ; t=0.9,0.95 predicted {} (0.9 > 0.9 is false): fg 0, bg 1/2
    expected = np.mean([(2 / 3 + 1 / 2) / 2] * 2 + [(1 / 3 + 1 / 3) / 2] * 2 + [(1 / 2 + 2 / 3) / 2] * 4 + [(0 + 1 / 2) / 2] * 2)
    metric = ThresholdAveragedIoU()
    metric(p, y)
    assert float(metric.aggregate()) == pytest.approx(expected)


def test_perfect_and_all_background_guesses():
    y = torch.zeros(1, 1, 8, 8, 8)
    y[..., 2:5, 2:5, 2:5] = 1
    metric = ThresholdAveragedIoU()
    metric(y.clone(), y)
    assert float(metric.aggregate()) == pytest.approx(1.0)
    metric.reset()
    metric(torch.zeros_like(y), y)  # foreground IoU 0, background IoU (512 - 27) / 512
    assert float(metric.aggregate()) == pytest.approx((485 / 512) / 2)


def test_handler_on_decollated_items():
    rng = np.random.default_rng(1)
    items = [{"pred": torch.from_numpy(rng.uniform(size=(1, 4, 4, 4)).astype(np.float32)),
              "label": torch.from_numpy((rng.uniform(size=(1, 4, 4, 4)) > 0.5).astype(np.float32))} for _ in range(3)]
    engine = Engine(lambda e, batch: batch)
    ThresholdAveragedIoUHandler().attach(engine, "iou")
    engine.run([items[:2], items[2:]], max_epochs=1)
    assert engine.state.metrics["iou"] == pytest.approx(_hand_iou([i["pred"].numpy() for i in items], [i["label"].numpy() for i in items]))


def _cube(shift=0, spacing=(2.0, 2.0, 2.0)):
    x = torch.zeros(1, 1, 20, 20, 20)
    x[..., 5 + shift:13 + shift, 5:13, 5:13] = 1
    return MetaTensor(x, affine=torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64)))


def test_surface_dice_reads_the_spacing_from_the_label_affine():
    pred, label = _cube(shift=1), _cube()  # one voxel = 2 mm apart along x
    tight = MetaSpacingSurfaceDice(class_thresholds=[1.5], include_background=True)
    loose = MetaSpacingSurfaceDice(class_thresholds=[2.5], include_background=True)
    assert float(tight(pred, label).mean()) < 0.9
    assert float(loose(pred, label).mean()) == pytest.approx(1.0)
    engine = Engine(lambda e, batch: batch)
    SurfaceDiceHandler(tolerance_mm=2.5).attach(engine, "nsd")
    engine.run([[{"pred": pred[0], "label": label[0]}]], max_epochs=1)
    assert engine.state.metrics["nsd"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="tolerance_mm"):
        SurfaceDiceHandler(tolerance_mm=-1)
