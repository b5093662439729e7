"""training/image_grid.py, throughput.py and early_stopping.py: handlers of the pretraining bundle."""

import time

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events

from monai_genesis.training.early_stopping import ResumableEarlyStopHandler
from monai_genesis.training import image_grid
from monai_genesis.training.image_grid import RestorationImageHandler, restoration_grid, save_grid_png
from monai_genesis.training.throughput import ThroughputHandler


def test_restoration_grid_layout():
    corrupted = torch.zeros(3, 1, 4, 5, 6)
    restored = torch.full((3, 1, 4, 5, 6), 0.5)
    target = torch.zeros(3, 1, 4, 5, 6)
    target[:, :, :, :, 3] = 2.0  # only the middle axial slice (index 6 // 2) is shown; clipped to 1
    grid = restoration_grid(corrupted, restored, [t for t in target], max_items=2, border=1)
    assert grid.shape == (2 * 5 - 1, 3 * 6 - 1)
    assert np.all(grid[:4, :5] == 0) and np.all(grid[:4, 6:11] == 0.5) and np.all(grid[:4, 12:] == 1.0)
    assert np.all(grid[4, :] == 1.0)  # white border between rows
    with pytest.raises(ValueError, match="same shape"):
        restoration_grid(corrupted, restored[:, :, :2], target)


def test_grid_png_keeps_the_pixels_under_a_labelled_header(tmp_path):
    grid = np.zeros((20, 30), dtype=np.float32)
    grid[:, 20:] = 1.0  # the third column white
    import matplotlib.image

    png = matplotlib.image.imread(save_grid_png(grid, tmp_path / "g.png", zoom=4))
    header = png.shape[0] - 80
    assert png.shape[1] == 120 and header > 10  # zoomed grid plus room for the column names
    assert np.allclose(png[header:, :80, :3], 0.0) and np.allclose(png[header:, 80:, :3], 1.0)
    assert png[:header, :, :3].min() < 0.5  # dark text in the header


def test_restoration_image_handler_first_batch_only(tmp_path, monkeypatch):
    batches = [torch.rand(2, 1, 8, 8, 4) for _ in range(3)]
    engine = Engine(lambda e, b: {"image": b, "pred": b * 0.5, "label": b})

    class Writer:
        images = []

        def add_image(self, tag, img, global_step, dataformats):
            self.images.append((tag, img.shape, global_step, dataformats))

        def flush(self):
            pass

    handler = RestorationImageHandler(png_dir=tmp_path, summary_writer=Writer(), tag="val")
    handler.attach(engine)
    engine.run(batches, max_epochs=2)
    assert [i[2] for i in Writer.images] == [1, 2]  # one grid per run epoch, from its first batch
    assert Writer.images[0][1] == (1, 2 * 9 - 1, 3 * 9 - 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["val_epoch0001.png", "val_epoch0002.png"]

    titles = []
    monkeypatch.setattr(image_grid, "save_grid_png", lambda grid, path, title=None: titles.append(title) or str(path))
    for title, expected in ((None, ["epoch 1, middle axial slices"]), ("test cubes", ["test cubes"])):
        titles.clear()
        engine = Engine(lambda e, b: {"image": b, "pred": b, "label": b})
        RestorationImageHandler(png_dir=tmp_path, tag="t", title=title).attach(engine)
        engine.run(batches, max_epochs=1)
        assert titles == expected


def test_throughput_measures_data_wait():
    def slow_data():
        for i in range(4):
            time.sleep(0.03)  # the loader is the bottleneck here
            yield i

    engine = Engine(lambda e, b: None)
    meter = ThroughputHandler(batch_size=6, log=False)
    meter.attach(engine)
    engine.run(slow_data(), max_epochs=1, epoch_length=4)
    summary = meter.summary()
    assert summary["steps"] == 4
    assert summary["data_fraction"] > 0.8
    assert summary["items_per_second"] == pytest.approx(6 / summary["seconds_per_step"])


def test_throughput_skip_first_and_empty():
    assert ThroughputHandler().summary()["steps"] == 0
    engine = Engine(lambda e, b: None)
    meter = ThroughputHandler(skip_first=2, log=False)
    meter.attach(engine)
    engine.run(range(3), max_epochs=2)
    assert meter.summary()["steps"] == 2


def _early_stopper(scores):
    trainer = Engine(lambda e, b: None)
    evaluator = Engine(lambda e, b: None)
    it = iter(scores)
    evaluator.add_event_handler(Events.EPOCH_STARTED, lambda e: setattr(e.state, "score", next(it)))
    stopper = ResumableEarlyStopHandler(patience=2, score_function=lambda e: e.state.score)
    stopper.attach(evaluator)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: evaluator.run([0]))
    return trainer, stopper


def test_early_stop_state_round_trip():
    trainer, stopper = _early_stopper([1.0, 0.5, 0.6, 0.4, 0.3])
    assert stopper.state_dict() == {}
    stopper.set_trainer(trainer)
    trainer.run([0], max_epochs=5)
    assert trainer.state.epoch == 3  # two epochs without improvement after 1.0
    assert dict(stopper.state_dict()) == {"counter": 2, "best_score": 1.0}

    # a state loaded before set_trainer (as when a checkpoint is restored) is applied later
    trainer2, resumed = _early_stopper([0.9, 0.8])
    resumed.load_state_dict({"counter": 1, "best_score": 1.0})
    assert resumed.state_dict()["counter"] == 1
    resumed.set_trainer(trainer2)
    trainer2.run([0], max_epochs=5)
    assert trainer2.state.epoch == 1  # one more epoch without improvement reaches patience 2
