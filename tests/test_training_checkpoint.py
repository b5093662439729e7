"""training/checkpoint.py: atomic writes, resume path resolution, last/best checkpoints and resuming."""

import os

import pytest
import torch
from ignite.engine import Engine, Events

from monai_genesis.training import checkpoint as ckpt_module
from monai_genesis.training.checkpoint import TrainingCheckpointer, resolve_resume_path, save_atomic


def test_save_atomic_round_trip(tmp_path):
    path = tmp_path / "sub" / "latest.pt"
    save_atomic({"a": torch.arange(3), "epoch": 2}, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 2 and torch.equal(loaded["a"], torch.arange(3))
    assert os.listdir(path.parent) == ["latest.pt"]


def test_crash_during_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    save_atomic({"epoch": 1}, path)

    def torn_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")  # the process dies in the middle of serialising
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(ckpt_module.torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["latest.pt"]  # no temporary file left behind


@pytest.mark.parametrize("resume", [False, None, "false", "False", "", "none"])
def test_resolve_resume_path_fresh_start(tmp_path, resume):
    assert resolve_resume_path(resume, tmp_path) is None


def test_resolve_resume_path_latest_and_explicit(tmp_path):
    latest = tmp_path / "latest.pt"
    with pytest.raises(FileNotFoundError, match="latest.pt"):
        resolve_resume_path(True, tmp_path)
    minimal = {"model": {}, "epoch": 1, "iteration": 1}
    save_atomic(minimal, latest)
    for resume in (True, "true", "True", "latest"):
        assert resolve_resume_path(resume, tmp_path) == str(latest)
    other = tmp_path / "other.pt"
    save_atomic(minimal, other)
    assert resolve_resume_path(str(other), tmp_path / "elsewhere") == str(other)
    with pytest.raises(ValueError, match="resume"):
        resolve_resume_path(3.5, tmp_path)


class _Validator:
    """Stands in for an evaluator: a state with an epoch and metrics."""

    def __init__(self):
        self.state = type("State", (), {"epoch": 0, "metrics": {}})()


def _run(tmp_path, losses, max_epochs, resume_from=None, epoch_length=3):
    """Train a linear model for max_epochs; the validator 'measures' losses[epoch - 1]."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    validator = _Validator()
    x = torch.ones(4, 2)

    def step(engine, batch):
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    trainer = Engine(step)
    seen_epochs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: seen_epochs.append(e.state.epoch))

    @trainer.on(Events.EPOCH_COMPLETED)
    def validate_and_step(engine):
        sched.step()
        validator.state.epoch = engine.state.epoch
        validator.state.metrics = {"val_mse": losses[engine.state.epoch - 1]}

    saver = TrainingCheckpointer(
        tmp_path, {"model": model, "optimizer": opt, "lr_scheduler": sched}, validator=validator,
        key_metric_name="val_mse", resume_from=resume_from,
    )
    saver.attach(trainer)
    trainer.run(range(epoch_length), max_epochs=max_epochs)
    return trainer, model, opt, sched, saver, seen_epochs


def test_latest_and_best_checkpoints(tmp_path):
    _, model, opt, sched, saver, _ = _run(tmp_path, losses=[0.5, 0.3, 0.4], max_epochs=3)
    latest = torch.load(tmp_path / "latest.pt", weights_only=True)
    best = torch.load(tmp_path / "model.pt", weights_only=True)
    assert latest["epoch"] == 3 and latest["iteration"] == 9
    assert best["epoch"] == 2 and best["best_metric"] == pytest.approx(0.3)  # epoch 3 was worse
    assert latest["best_epoch"] == 2 and saver.best_epoch == 2
    assert set(latest) >= {"model", "optimizer", "lr_scheduler"}
    assert torch.equal(latest["model"]["weight"], model.state_dict()["weight"])
    assert latest["lr_scheduler"]["last_epoch"] == 3


def test_resume_continues_epoch_optimizer_and_scheduler(tmp_path):
    losses = [0.5, 0.4, 0.45, 0.2]
    _run(tmp_path / "a", losses, max_epochs=2)
    saved = torch.load(tmp_path / "a" / "latest.pt", weights_only=True)
    trainer, model, opt, sched, saver, seen = _run(
        tmp_path / "b", losses, max_epochs=4, resume_from=tmp_path / "a" / "latest.pt"
    )
    assert seen == [3, 4]  # continued after the saved epoch
    assert trainer.state.epoch == 4 and trainer.state.iteration == 12
    assert sched.last_epoch == 4 and opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.25)
    assert saver.best_epoch == 4  # best tracking carried over: 0.2 beats the saved 0.4

    # the uninterrupted run reaches the same weights: model, momentum and scheduler all resumed
    _, model_full, _, _, _, _ = _run(tmp_path / "c", losses, max_epochs=4)
    assert torch.allclose(model.weight, model_full.weight) and torch.allclose(model.bias, model_full.bias)
    assert saved["epoch"] == 2


def test_resume_rejects_foreign_checkpoint(tmp_path):
    save_atomic({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="lacks"):
        _run(tmp_path, [0.1], max_epochs=1, resume_from=tmp_path / "foreign.pt")


def test_reserved_and_empty_save_dict(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        TrainingCheckpointer(tmp_path, {"epoch": torch.nn.Linear(1, 1)})
    with pytest.raises(ValueError, match="at least one"):
        TrainingCheckpointer(tmp_path, {})


def test_empty_validation_saves_every_epoch_as_best(tmp_path, caplog):
    """MONAI Label's default val_split leaves validation empty with one or two labelled studies:
    model.pt then follows the training instead of never being written."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    validator = _Validator()
    validator.data_loader = []
    trainer = Engine(lambda engine, batch: model.weight.data.add_(1.0))
    TrainingCheckpointer(tmp_path, {"model": model}, validator=validator, key_metric_name="val_loss").attach(trainer)
    with caplog.at_level("WARNING"):
        trainer.run(range(2), max_epochs=3)
    best = torch.load(tmp_path / "model.pt", weights_only=True)
    assert best["epoch"] == 3 and torch.equal(best["model"]["weight"], model.state_dict()["weight"])
    assert sum("validation data is empty" in r.getMessage() for r in caplog.records) == 1
