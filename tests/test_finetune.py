"""Shared fine-tuning pieces (docs/method.md §5.1): the Dice loss, the Keras plateau schedule and its resume, the
validation-loss metric, early stopping on it."""

import pytest
import torch
from ignite.engine import Engine, Events

from monai_genesis.training.early_stopping import ResumableEarlyStopHandler
from monai_genesis.training.finetune import (
    GenesisDiceLoss,
    KerasReduceLROnPlateau,
    PlateauLrHandler,
    lower_is_better,
    validation_loss_metric,
)


def test_dice_loss_is_the_reference_formula_pooled_over_the_batch():
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 1, 4, 5, 6, generator=gen)
    label = (torch.rand(3, 1, 4, 5, 6, generator=gen) > 0.7).float()
    expected = 1 - (2 * (pred * label).sum() + 1) / (pred.sum() + label.sum() + 1)
    assert torch.allclose(GenesisDiceLoss()(pred, label), expected, atol=1e-6)
    per_sample = torch.stack([1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1) for p, y in zip(pred, label)]).mean()
    assert torch.allclose(GenesisDiceLoss(batch=False)(pred, label), per_sample, atol=1e-6)
    assert not torch.allclose(per_sample, expected, atol=1e-4)  # the two poolings do differ


def _lrs(scheduler, values):
    out = []
    for v in values:
        scheduler.step(v)
        out.append(scheduler.optimizer.param_groups[0]["lr"])
    return out


def _optimizer(lr=1e-3):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_plateau_halves_at_the_sixth_epoch_without_improvement_as_keras():
    sched = KerasReduceLROnPlateau(_optimizer())
    # epoch 1 sets the best; 2..6 are 5 bad epochs (no change); the 6th bad epoch (7) halves the rate
    lrs = _lrs(sched, [1.0] + [1.0] * 6 + [1.0] * 6)
    assert lrs[:6] == [1e-3] * 6 and lrs[6] == pytest.approx(5e-4)
    assert lrs[7:12] == [pytest.approx(5e-4)] * 5 and lrs[12] == pytest.approx(2.5e-4)  # counter restarts after a cut


def test_plateau_threshold_is_absolute_min_delta_and_floor_holds():
    sched = KerasReduceLROnPlateau(_optimizer())
    # improvements smaller than 1e-4 do not count; improvements larger do
    lrs = _lrs(sched, [1.0, 0.99995, 0.99992, 0.99991, 0.99993, 0.99994, 0.99995])
    assert lrs[-1] == pytest.approx(5e-4)
    sched = KerasReduceLROnPlateau(_optimizer())
    lrs = _lrs(sched, [1.0, 0.9998, 0.9996, 0.9994, 0.9992, 0.999, 0.9988, 0.9986])
    assert lrs[-1] == pytest.approx(1e-3)
    sched = KerasReduceLROnPlateau(_optimizer(lr=3e-6))
    assert _lrs(sched, [1.0] * 20)[-1] == pytest.approx(1e-6)


def test_plateau_state_survives_a_resume():
    values = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]
    straight = _lrs(KerasReduceLROnPlateau(_optimizer()), values)
    first = KerasReduceLROnPlateau(_optimizer())
    _lrs(first, values[:5])
    state_opt, state_sched = first.optimizer.state_dict(), first.state_dict()
    resumed = KerasReduceLROnPlateau(_optimizer())
    resumed.optimizer.load_state_dict(state_opt)
    resumed.load_state_dict(state_sched)
    assert _lrs(resumed, values[5:]) == straight[5:]
    assert straight[-1] < straight[0]


def test_bad_plateau_arguments():
    with pytest.raises(ValueError, match="patience"):
        KerasReduceLROnPlateau(_optimizer(), patience=0)
    with pytest.raises(ValueError, match="factor"):
        KerasReduceLROnPlateau(_optimizer(), factor=1.5)


def _batches(n=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        items = [{"pred": torch.rand(1, 4, 4, 4, generator=gen), "label": (torch.rand(1, 4, 4, 4, generator=gen) > 0.6).float()}
                 for _ in range(2)]
        out.append(items)
    return out


def _evaluator(losses):
    """An engine whose epoch is one validation pass yielding a fixed val_loss per epoch."""
    engine = Engine(lambda e, batch: batch)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.__setitem__("val_loss", losses[e.state.epoch - 1]))
    return engine


def test_validation_loss_metric_pools_each_batch_then_averages_batches():
    batches = _batches()
    engine = Engine(lambda e, batch: batch)
    validation_loss_metric(GenesisDiceLoss()).attach(engine, "val_loss")
    engine.run(batches, max_epochs=1)
    loss = GenesisDiceLoss()
    expected = torch.stack([loss(torch.stack([i["pred"] for i in b]), torch.stack([i["label"] for i in b])) for b in batches]).mean()
    assert engine.state.metrics["val_loss"] == pytest.approx(float(expected), abs=1e-6)
    engine = Engine(lambda e, batch: batch)
    validation_loss_metric(GenesisDiceLoss(), pooled_batches=False).attach(engine, "val_loss")
    engine.run(batches, max_epochs=1)
    per_item = torch.stack([loss(i["pred"][None], i["label"][None]) for b in batches for i in b]).mean()
    assert engine.state.metrics["val_loss"] == pytest.approx(float(per_item), abs=1e-6)


def test_plateau_handler_steps_on_the_validation_loss():
    opt = _optimizer()
    engine = _evaluator([1.0] * 8)
    PlateauLrHandler(KerasReduceLROnPlateau(opt), "val_loss").attach(engine)
    engine.run([0], max_epochs=7)
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4)
    engine = Engine(lambda e, batch: batch)
    PlateauLrHandler(KerasReduceLROnPlateau(_optimizer()), "val_loss").attach(engine)
    with pytest.raises(KeyError, match="val_loss"):
        engine.run([0], max_epochs=1)


def test_early_stopping_on_validation_loss_stops_after_patience_epochs():
    trainer = Engine(lambda e, batch: None)
    evaluator = _evaluator([1.0, 0.5] + [0.6] * 10)
    stop = ResumableEarlyStopHandler(patience=3, score_function=lower_is_better("val_loss"), epoch_level=True)
    stop.attach(evaluator)
    stop.set_trainer(trainer)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: evaluator.run([0], max_epochs=e.state.epoch))
    trainer.run([0], max_epochs=20)
    assert trainer.state.epoch == 5  # best at epoch 2, three epochs without improvement
