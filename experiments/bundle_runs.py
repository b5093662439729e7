"""One pretraining or fine-tuning run through a bundle's own configs (monai.bundle ConfigWorkflow + overrides).

Budgets are counted in training iterations, the same for every arm of a comparison: a run's epochs are the
iterations over the iterations per epoch of its labelled cases, and ``validations`` validations (the bundles
keep the checkpoint of the lowest validation loss) are spread over them, the last one at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from monai_genesis import bundles as workflows
from monai_genesis.experiments.arms import PRETRAINING_ARMS

NCS_BUNDLE = workflows.bundle_path("genesis_lung_nodule_segmentation")
NCC_BUNDLE = workflows.bundle_path("genesis_lung_nodule_fpr")
PRETRAIN_BUNDLE = workflows.bundle_path("genesis_pretrain")
FROC_CHANCE_DRAWS = 20  # random rankings averaged for the FROC baseline


@contextlib.contextmanager
def _quiet(enabled: bool = True):
    """Silence the bundles' per-epoch INFO logging during a run (warnings and errors still show)."""
    if enabled:
        previous = logging.root.manager.disable
        logging.disable(logging.INFO)
    try:
        yield
    finally:
        if enabled:
            logging.disable(previous)


def bundle_workflow(bundle: Path, configs: list[str], workflow_type: str, **overrides):
    """An initialised workflow of ``bundle`` (:func:`monai_genesis.bundles.bundle_workflow`, logging left as it is)."""
    wf = workflows.bundle_workflow(bundle, configs, workflow_type, logging_file=False, **overrides)
    wf.initialize()
    return wf


def schedule(steps: int, steps_per_epoch: int, validations: int) -> tuple[int, int]:
    """(epochs, val_interval) for about ``steps`` iterations with ``validations`` validations, the last at the end."""
    epochs = max(1, math.ceil(steps / max(1, steps_per_epoch)))
    interval = max(1, epochs // max(1, validations))
    return math.ceil(epochs / interval) * interval, interval


def _fresh(run_dir: Path) -> Path:
    """An empty run folder: what an interrupted earlier attempt left there is discarded."""
    run_dir = Path(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    return run_dir


NO_CACHE_BARS = {"train#dataset#progress": False, "validate#dataset#progress": False}


def _run(wf) -> None:
    wf.run()
    wf.finalize()


def pretrain_overrides(arm: str, cubes_dir: Path, run_dir: Path, settings: dict) -> dict:
    """genesis_pretrain train.json's overrides for arm ``arm``: its corruption probabilities, the experiment's sizes,
    budget and optimiser, everything written under ``run_dir``."""
    run_dir = Path(run_dir)
    name = settings["pretrain_optimizer"]
    optimizer = {"_target_": f"torch.optim.{name}", "params": "$@network.parameters()", "lr": "@learning_rate"}
    if name == "SGD":
        optimizer["momentum"] = "@momentum"
    return {
        "bundle_root": str(run_dir), "dataset_dir": str(cubes_dir), "ckpt_dir": str(run_dir / "models"),
        "output_dir": str(run_dir / "tensorboard"), "seed": settings["pretrain_seed"], "device": "cpu", "num_workers": 0,
        "cube_size": settings["pretrain_cube_size"], "network_width": settings["network_width"],
        "batch_size": settings["pretrain_batch_size"], "epochs": settings["pretrain_epochs"], "cache_rate": 1.0,
        "val_cache_rate": 1.0, "learning_rate": settings["pretrain_learning_rate"], "optimizer": optimizer,
        **PRETRAINING_ARMS[arm], **NO_CACHE_BARS,
    }


def pretrain(arm: str, cubes_dir: Path, run_dir: Path, settings: dict, quiet: bool = True) -> dict:
    """Pretrain arm ``arm`` (genesis_pretrain train.json with ``pretrain_overrides``); returns its best checkpoint,
    validation MSE with the restoration baselines on the same cubes, iterations and seconds."""
    run_dir = _fresh(run_dir)
    overrides = pretrain_overrides(arm, cubes_dir, run_dir, settings)
    started, cpu_started = time.perf_counter(), time.process_time()
    with _quiet(quiet):
        wf = bundle_workflow(PRETRAIN_BUNDLE, ["train.json"], "train", **overrides)
        trainer = wf.parser.get_parsed_content("train#trainer")
        evaluator = wf.parser.get_parsed_content("validate#evaluator")
        _run(wf)
    # the baselines do not depend on the model: the validator's last epoch measured them on the same fixed-seed cubes
    baselines = {"corrupted_input_mse": float(evaluator.state.metrics["val_corrupted_mse"]),
                 "cube_mean_mse": float(evaluator.state.metrics["val_mean_mse"])}
    best = float(evaluator.state.best_metric)
    return {
        "arm": arm,
        "checkpoint": str(run_dir / "models" / "model.pt"),
        "best_val_mse": best,
        **baselines,
        "skill_vs_cube_mean": 1.0 - best / baselines["cube_mean_mse"] if baselines["cube_mean_mse"] > 0 else None,
        "epochs": int(trainer.state.epoch),
        "iterations": int(trainer.state.iteration),
        "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu_started,
    }


def _dice_of_constant(labels: list[torch.Tensor], value: float) -> float:
    """MONAI MeanDice (as the bundle's evaluate.json computes it) of predicting ``value`` everywhere."""
    from monai.metrics import DiceMetric

    metric = DiceMetric(include_background=True)
    for y in labels:
        metric(torch.full_like(y, value)[None], y[None])
    return float(metric.aggregate().item())


def finetune_ncs(data: Path, datalist: Path, run_dir: Path, pretrained: str, seed: int, num_labeled: int, settings: dict,
                 keep_sample: bool = False, quiet: bool = True) -> dict:
    """Fine-tune NCS (genesis_lung_nodule_segmentation train.json) and evaluate it on the test cases (evaluate.json).

    Returns the test Dice / IoU with the all-background and all-foreground Dice of the same test patches; with
    ``keep_sample`` also "sample": image, label and predicted probability of the test patch with most nodule.
    """
    run_dir = _fresh(run_dir)
    cases_per_step = max(1, settings["ncs_batch_size"] // settings["ncs_num_samples"])
    epochs, interval = schedule(settings["ncs_steps"], math.ceil(num_labeled / cases_per_step), settings["ncs_validations"])
    common = {
        "bundle_root": str(run_dir), "dataset_dir": str(data), "datalist": str(datalist), "device": "cpu",
        "network_width": settings["network_width"], "cube_size": settings["ncs_cube_size"],
        "batch_size": settings["ncs_batch_size"], "num_samples": settings["ncs_num_samples"], "num_workers": 0,
        "cache_rate": 1.0, "val_cache_rate": 1.0, "channels_last": False, "seed": int(seed), **NO_CACHE_BARS,
    }
    started, cpu_started = time.perf_counter(), time.process_time()
    with _quiet(quiet):
        wf = bundle_workflow(NCS_BUNDLE, ["train.json"], "train", pretrained_path=pretrained or "", epochs=epochs,
                             val_interval=interval, **common)
        trainer = wf.parser.get_parsed_content("train#trainer")
        _run(wf)
        ev = bundle_workflow(NCS_BUNDLE, ["train.json", "evaluate.json"], "eval", **common)
        evaluator = ev.parser.get_parsed_content("validate#evaluator")
        ev.run()
        patches = [item for case in ev.parser.get_parsed_content("validate#dataset") for item in case]
    labels = [torch.as_tensor(p["label"]).float() for p in patches]
    result = {
        "task": "ncs", "score_name": "dice", "score": float(evaluator.state.metrics["dice"]),
        "metrics": {k: float(v) for k, v in evaluator.state.metrics.items()},
        "baselines": {"all_background_dice": _dice_of_constant(labels, 0.0), "all_foreground_dice": _dice_of_constant(labels, 1.0)},
        "epochs": int(trainer.state.epoch), "iterations": int(trainer.state.iteration), "val_interval": interval,
        "test_patches": len(patches), "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu_started,
    }
    if keep_sample:
        best = max(range(len(patches)), key=lambda i: float(labels[i].sum()))
        network = ev.parser.get_parsed_content("network").eval()
        with torch.no_grad():
            prob = network(torch.as_tensor(patches[best]["image"]).float()[None])[0]
        result["sample"] = {"image": np.asarray(patches[best]["image"])[0], "label": labels[best].numpy()[0],
                            "probability": prob.numpy()[0]}
    return result


def random_ranking_cpm(submission_csv: Path, annotations_csv: Path, seriesuids: list[str], seed: int = 0) -> float:
    """Mean LUNA16 CPM of random scores for the submission's candidates: the FROC of a chance ranking."""
    from monai_genesis.metrics.froc import ANNOTATION_COLUMNS, luna16_froc, read_luna16_csv
    from monai_genesis.training.classification import read_submission

    submission = read_submission(submission_csv)
    annotations = read_luna16_csv(annotations_csv, ANNOTATION_COLUMNS)
    rng = np.random.default_rng(seed)
    cpms = []
    for _ in range(FROC_CHANCE_DRAWS):
        scores = rng.random(len(submission["probability"]))
        rows = [{"seriesuid": u, "coordX": w[0], "coordY": w[1], "coordZ": w[2], "probability": p}
                for u, w, p in zip(submission["seriesuid"], submission["world"], scores)]
        cpms.append(luna16_froc(annotations, [], seriesuids, rows)["cpm"])
    return float(np.mean(cpms))


def finetune_ncc(data: Path, candidates_csv: Path, counts: dict, run_dir: Path, pretrained: str, seed: int,
                 settings: dict, quiet: bool = True) -> dict:
    """Fine-tune NCC (genesis_lung_nodule_fpr train.json) and evaluate it on the test scans (evaluate.json).

    ``counts``: positives and negatives among the labelled training candidates (they set the iterations per
    epoch of the balanced sampler). Returns the test AUC and CPM with their chance baselines.
    """
    from monai_genesis.data.candidate_volumes import read_split

    run_dir = _fresh(run_dir)
    npp = settings["ncc_negatives_per_positive"]
    per_epoch = counts["positives"] + min(counts["negatives"], max(1, round(npp * counts["positives"])))
    epochs, interval = schedule(settings["ncc_steps"], math.ceil(per_epoch / settings["ncc_batch_size"]), settings["ncc_validations"])
    common = {
        "bundle_root": str(run_dir), "dataset_dir": str(Path(data) / "prep"), "candidates_csv": str(candidates_csv),
        "device": "cpu", "network_width": settings["network_width"], "cube_size": settings["ncc_cube_size"],
        "batch_size": settings["ncc_batch_size"], "num_workers": 0, "seed": int(seed),
    }
    annotations = Path(data) / "raw" / "annotations.csv"
    started, cpu_started = time.perf_counter(), time.process_time()
    with _quiet(quiet):
        wf = bundle_workflow(NCC_BUNDLE, ["train.json"], "train", pretrained_path=pretrained or "", epochs=epochs,
                             val_interval=interval, negatives_per_positive=npp, **common)
        trainer = wf.parser.get_parsed_content("train#trainer")
        _run(wf)
        ev = bundle_workflow(NCC_BUNDLE, ["train.json", "evaluate.json"], "eval", annotations_csv=str(annotations),
                             excluded_csv="", **common)
        ev.run()
    report = json.loads((run_dir / "eval" / "evaluate.json").read_text())
    test_scans = read_split(Path(data) / "prep")["test"]
    return {
        "task": "ncc", "score_name": "auc", "score": float(report["auc"]),
        "metrics": {"auc": float(report["auc"]), "cpm": float(report["cpm"])},
        "baselines": {"chance_auc": 0.5,
                      "random_ranking_cpm": random_ranking_cpm(run_dir / "eval" / "submission_test.csv", annotations, test_scans)},
        "epochs": int(trainer.state.epoch), "iterations": int(trainer.state.iteration), "val_interval": interval,
        "test_candidates": int(report["num_candidates"]), "test_positives": int(report["num_positives"]),
        "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu_started,
    }
