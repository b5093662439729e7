"""The genesis_pretrain bundle: train / evaluate / inference workflows on synthetic cubes, resume, errors.

Tiny settings throughout (32x32x16 cubes, network width 0.125, a few iterations); the end-to-end runs
are marked slow but still take seconds.
"""

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_cases import TINY as BUNDLE_TINY
from bundle_cases import torchrun
from ignite.engine import Events
from monai.bundle import ConfigWorkflow, verify_metadata, verify_net_in_out

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "genesis_pretrain"
CONFIGS = BUNDLE / "configs"
SCHEMA = Path(__file__).resolve().parent / "fixtures" / "meta_schema_20220324.json"
SCHEMA_MD5 = "662135097106b71067cd1fc657f8720f"
pytestmark = pytest.mark.filterwarnings("ignore:Detected deprecated name 'optional_packages_version'")
TINY = BUNDLE_TINY["genesis_pretrain"]  # one home: tests/bundle_cases.py
CUBE = tuple(TINY["cube_size"])


def write_cubes(root: Path, sections=None, cube_size=CUBE, seed=0) -> Path:
    """Shards and datalist in the layout prepare_cubes writes: smooth random blobs in [0, 1], float16."""
    sections = sections or {"training": 3, "validation": 1, "test": 1}
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(0, 1, s) for s in cube_size], indexing="ij"), -1)
    (root / "cubes").mkdir(parents=True, exist_ok=True)
    datalist = {}
    for name, n_files in sections.items():
        datalist[name] = []
        for f in range(n_files):
            cubes = []
            for _ in range(4):
                centres, widths = rng.uniform(0, 1, (5, 3)), rng.uniform(0.1, 0.3, 5)
                d2 = ((grid[..., None, :] - centres) ** 2).sum(-1)
                cubes.append(np.clip(0.2 + (0.7 * np.exp(-d2 / widths**2)).max(-1), 0, 1))
            np.save(root / "cubes" / f"{name}{f}.npy", np.stack(cubes).astype(np.float16))
            datalist[name] += [{"image": f"cubes/{name}{f}.npy", "cube_index": i} for i in range(4)]
    (root / "datalist.json").write_text(json.dumps(datalist))
    return root


def workflow(configs, workflow_type, root: Path, data: Path, **overrides) -> ConfigWorkflow:
    settings = {**TINY, "bundle_root": str(root), "dataset_dir": str(data), **overrides}
    return ConfigWorkflow(
        config_file=[str(CONFIGS / c) for c in configs],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=False,  # logging.conf is exercised by the subprocess tests; keep pytest's logging intact
        workflow_type=workflow_type,
        **settings,
    )


def train(root, data, epochs=2, configs=("train.json",), **overrides) -> ConfigWorkflow:
    wf = workflow(configs, "train", root, data, epochs=epochs, **overrides)
    wf.initialize()
    return wf


@pytest.fixture(scope="module")
def cubes(tmp_path_factory):
    return write_cubes(tmp_path_factory.mktemp("cubes"))


def _cause_chain(exc):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def test_metadata_matches_schema(tmp_path):
    schema_copy = tmp_path / "schema.json"
    schema_copy.write_bytes(SCHEMA.read_bytes())
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(schema_copy), hash_val=SCHEMA_MD5, hash_type="md5")
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert meta["version"] in meta["changelog"]
    assert list(meta["network_data_format"]["inputs"]) == ["image"]
    assert list(meta["network_data_format"]["outputs"]) == ["pred"]


def test_network_matches_metadata():
    verify_net_in_out(net_id="network_def", meta_file=str(CONFIGS / "metadata.json"),
                      config_file=str(CONFIGS / "inference.json"), device="cpu", **{"network_def#width": 0.125})


def test_published_defaults():
    config = json.loads((CONFIGS / "train.json").read_text())
    assert config["cube_size"] == [64, 64, 32] and config["batch_size"] == 6 and config["network_width"] == 1.0
    assert (config["learning_rate"], config["momentum"], config["lr_step_epochs"], config["lr_gamma"]) == (1.0, 0.9, 40, 0.5)
    assert config["patience"] == 50 and config["optimizer"]["_target_"] == "torch.optim.SGD"
    probs = [config[k] for k in ("flip_prob", "local_shuffle_prob", "nonlinear_prob", "paint_prob", "inpaint_prob")]
    assert probs == [0.4, 0.5, 0.9, 0.9, 0.2]


@pytest.mark.slow
def test_train_evaluate_infer(tmp_path, cubes):
    root = tmp_path / "bundle"
    wf = train(root, cubes, epochs=2, png_dir=str(tmp_path / "png"))
    assert wf.check_properties() == []
    trainer = wf.parser.get_parsed_content("train#trainer")
    wf.run()
    assert trainer.state.epoch == 2 and trainer.state.iteration == 2 * (12 // 4)  # epoch: cubes // batch size
    wf.finalize()

    latest = torch.load(root / "models" / "latest.pt", weights_only=True)
    best = torch.load(root / "models" / "model.pt", weights_only=True)
    assert latest["epoch"] == 2 and latest["iteration"] == 6
    assert {"model", "optimizer", "lr_scheduler", "early_stopping"} <= set(latest)
    # the network settings inference reads back (no --network_width / --cube_size to guess)
    assert latest["settings"] == {"network_width": 0.125, "cube_size": list(CUBE), "in_channels": 1, "out_channels": 1}
    assert best["epoch"] == latest["best_epoch"] and best["best_metric"] == latest["best_metric"]
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [
        "corrupted_restored_target_epoch0001.png", "corrupted_restored_target_epoch0002.png"]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {"scalars": set(), "images": set()}
    for event_file in (root / "eval").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(event_file)).Reload()
        for kind in tags:
            tags[kind] |= set(acc.Tags()[kind])
    restoration = {"mean_mse", "skill", "skill_ceiling", "skill_ci_low", "skill_ci_high", "nopaint_mse",
                   "nopaint_corrupted_mse", "nopaint_mean_mse", "nopaint_skill", "nopaint_skill_ci_low", "nopaint_skill_ci_high"}
    assert {"train_loss", "val_mse", "val_psnr", "val_corrupted_mse"} | {f"val_{k}" for k in restoration} <= tags["scalars"]
    assert "corrupted_restored_target" in tags["images"]

    ev = workflow(["train.json", "evaluate.json"], "eval", root, cubes, png_dir=str(tmp_path / "test_png"))
    ev.initialize()
    assert ev.check_properties() == []
    ev.run()
    with open(root / "eval" / "metrics.csv") as f:
        metrics = {row[0]: float(row[1]) for row in csv.reader(f)}
    assert set(metrics) == {"mse", "psnr", "corrupted_mse"} | restoration
    assert 0 < metrics["mse"] < 1 and metrics["psnr"] == pytest.approx(-10 * np.log10(metrics["mse"]), rel=0.2)
    # the skills are one minus the model's MSE over the per-cube-mean predictor's, on each view's cubes
    assert metrics["skill"] == pytest.approx(1 - metrics["mse"] / metrics["mean_mse"], rel=1e-5)
    assert metrics["nopaint_skill"] == pytest.approx(1 - metrics["nopaint_mse"] / metrics["nopaint_mean_mse"], rel=1e-5)
    assert metrics["nopaint_mean_mse"] == pytest.approx(metrics["mean_mse"])  # same cubes, same flips: same targets
    assert metrics["skill_ci_low"] <= metrics["skill"] <= metrics["skill_ci_high"] and 0 < metrics["skill_ceiling"] < 1
    assert len(list((tmp_path / "test_png").glob("*.png"))) == 1

    volume = np.random.default_rng(0).uniform(-1000, 1000, (40, 36, 20)).astype(np.float32)
    (tmp_path / "volumes").mkdir()
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "volumes" / "case.nii.gz")
    inf = ConfigWorkflow(config_file=str(CONFIGS / "inference.json"), meta_file=str(CONFIGS / "metadata.json"),
                         logging_file=False, workflow_type="infer", bundle_root=str(root), device="cpu",
                         dataset_dir=str(tmp_path / "volumes"), output_dir=str(tmp_path / "restored"),
                         corrupt_input=True)  # width and cube size come from models/model.pt
    inf.initialize()
    assert inf.check_properties() == []
    inf.run()
    restored = nib.load(tmp_path / "restored" / "case_restored.nii.gz").get_fdata()
    corrupted = nib.load(tmp_path / "restored" / "case_corrupted.nii.gz").get_fdata()
    assert restored.shape == corrupted.shape == volume.shape
    assert restored.min() >= 0 and restored.max() <= 1


@pytest.mark.slow
def test_loss_goes_down(tmp_path):
    data = write_cubes(tmp_path / "data", {"training": 6, "validation": 1})  # 24 cubes: 6 steps per epoch
    wf = train(tmp_path / "bundle", data, epochs=4, val_interval=4)  # 24 iterations, validated at the end
    losses = []
    trainer = wf.parser.get_parsed_content("train#trainer")
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output["loss"].item()))
    evaluator = wf.parser.get_parsed_content("validate#evaluator")
    evaluator.run()  # the untrained network on the fixed corrupted validation cubes
    untrained = evaluator.state.metrics["val_mse"]
    wf.run()
    trained = evaluator.state.metrics["val_mse"]
    assert len(losses) == 24 and all(np.isfinite(losses))
    assert trained < 0.7 * untrained
    assert np.mean(losses[-8:]) < np.mean(losses[:8])


@pytest.mark.slow
def test_corruption_on_device(tmp_path, cubes):
    wf = train(tmp_path, cubes, epochs=1, corruption_on_device=True)
    prepare = wf.parser.get_parsed_content("train#prepare_batch")
    assert prepare.corruption is not None
    assert wf.parser.get_parsed_content("train#dataset")[0].keys() >= {"image"}
    assert "target" not in wf.parser.get_parsed_content("train#dataset")[0]  # not corrupted by the workers
    wf.run()
    assert torch.load(tmp_path / "models" / "latest.pt", weights_only=True)["epoch"] == 1


@pytest.mark.slow
def test_other_network_by_network_def_alone(tmp_path, cubes):
    dynunet = {"_target_": "DynUNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 1,
               "kernel_size": [3, 3, 3], "strides": [1, 2, 2], "upsample_kernel_size": [2, 2],
               "filters": [4, 8, 16], "res_block": True}
    wf = train(tmp_path, cubes, epochs=1, network_def=dynunet)
    wf.run()
    state = torch.load(tmp_path / "models" / "latest.pt", weights_only=True)["model"]
    net = wf.parser.get_parsed_content("network_def")
    assert type(net).__name__ == "DynUNet" and state.keys() == net.state_dict().keys()


@pytest.mark.slow
def test_resume_after_kill(tmp_path, cubes):
    """Kill a running `monai.bundle run` with SIGKILL, then resume it with `--resume true`."""
    root = tmp_path / "bundle"
    latest = root / "models" / "latest.pt"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "train.json"),
           "--meta_file", str(CONFIGS / "metadata.json"), "--logging_file", str(CONFIGS / "logging.conf"),
           "--bundle_root", str(root), "--dataset_dir", str(cubes), "--epochs", "1000"]
    cmd += [a for k, v in TINY.items() for a in (f"--{k}", json.dumps(v) if not isinstance(v, str) else v)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not latest.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # into the next epoch
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    assert latest.exists(), err[-2000:]
    saved = torch.load(latest, weights_only=True)  # never torn, whenever the kill landed
    epoch = saved["epoch"]
    assert epoch >= 1 and saved["iteration"] == 3 * epoch

    wf = train(root, cubes, epochs=epoch + 1, resume="true")
    trainer = wf.parser.get_parsed_content("train#trainer")
    optimizer = wf.parser.get_parsed_content("optimizer")
    scheduler = wf.parser.get_parsed_content("lr_scheduler")
    at_start, epochs_run = {}, []

    @trainer.on(Events.STARTED)
    def record(engine):  # attached after the checkpointer, so it sees the restored state
        at_start.update(epoch=engine.state.epoch, iteration=engine.state.iteration, sched=scheduler.last_epoch,
                        momentum=[s["momentum_buffer"].clone() for s in optimizer.state.values()])

    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs_run.append(e.state.epoch))
    wf.run()
    assert at_start["epoch"] == epoch and at_start["iteration"] == 3 * epoch and at_start["sched"] == epoch
    saved_momentum = [s["momentum_buffer"] for s in saved["optimizer"]["state"].values()]
    assert len(saved_momentum) == len(at_start["momentum"]) > 0
    assert all(torch.equal(a, b) for a, b in zip(saved_momentum, at_start["momentum"]))
    assert epochs_run == [epoch + 1]
    assert torch.load(latest, weights_only=True)["epoch"] == epoch + 1


@pytest.mark.slow
def test_two_process_torchrun(tmp_path):
    data = write_cubes(tmp_path / "data", {"training": 4, "validation": 1})  # 16 training cubes
    result, root = torchrun(CONFIGS, tmp_path / "bundle", {**TINY, "dataset_dir": str(data), "epochs": 1}, timeout=240)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    latest = torch.load(root / "models" / "latest.pt", weights_only=True)
    # each rank saw half of the 16 cubes: 8 // batch 4 = 2 iterations per epoch (one process: 4)
    assert latest["epoch"] == 1 and latest["iteration"] == 2
    assert not any(k.startswith("module.") for k in latest["model"])


@pytest.mark.parametrize(
    "sections, overrides, error, message",
    [
        ({"training": 0, "validation": 1}, {}, ValueError, "'training'.*empty"),
        ({"training": 1, "validation": 1}, {"cube_size": [64, 64, 32]}, ValueError, "cube_size"),
        (None, {"dataset_dir": "/nonexistent/cubes"}, FileNotFoundError, "/nonexistent/cubes/datalist.json"),
    ],
)
def test_clear_errors_for_bad_data(tmp_path, sections, overrides, error, message):
    data = write_cubes(tmp_path, sections) if sections is not None else tmp_path
    wf = workflow(["train.json"], "train", tmp_path / "bundle", data, **overrides)
    with pytest.raises(Exception) as info:
        wf.initialize()
    causes = [e for e in _cause_chain(info.value) if isinstance(e, error)]
    assert causes, f"expected a {error.__name__} in {list(_cause_chain(info.value))}"
    assert re.search(message, str(causes[0]))
