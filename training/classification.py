"""Classification target tasks (NCC, ECC; docs/method.md §5): class balance, scores, submission CSV.

Candidate lists hold hundreds of negatives per positive (LUNA16: 1,557 nodules among 754,975
candidates). Two ways to train on them, chosen by a bundle's ``class_balance`` key and written
beside the results (:func:`write_run_settings`):

* "sampler" (default): :class:`BalancedCandidateSampler` draws every positive and fresh negatives
  each epoch, walking a reshuffled permutation of the negatives so every negative is reached;
* "weights": every candidate each epoch, the BCE positive term weighted by negatives / positives.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections.abc import Sequence

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.metrics import compute_roc_auc

from monai_genesis.data.atomic_write import write_atomic, write_json_atomic
from monai_genesis.data.luna16_csv import ANNOTATION_COLUMNS, SUBMISSION_COLUMNS, read_luna16_rows
from monai_genesis.metrics.froc import candidate_froc, luna16_froc, read_luna16_csv

__all__ = [
    "CLASS_BALANCE_CHOICES",
    "BalancedCandidateSampler",
    "train_sampler",
    "bce_loss",
    "fixed_validation_subset",
    "CandidateScoreWriter",
    "write_submission",
    "read_submission",
    "roc_auc",
    "write_run_settings",
    "SamplerEpochHandler",
    "classification_report",
]

logger = logging.getLogger(__name__)

CLASS_BALANCE_CHOICES = ("sampler", "weights")


def _check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.isin(labels, (0, 1)).all():
        raise ValueError("labels: expected a 1D array of 0/1 classes.")
    if not (labels == 1).any() or not (labels == 0).any():
        raise ValueError(
            f"labels: the training candidates need both classes, got {int((labels == 1).sum())} positive(s) and "
            f"{int((labels == 0).sum())} negative(s)."
        )
    return labels


def _check_balance(class_balance: str) -> str:
    if class_balance not in CLASS_BALANCE_CHOICES:
        raise ValueError(f"class_balance: expected one of {', '.join(CLASS_BALANCE_CHOICES)}, got {class_balance!r}.")
    return class_balance


class BalancedCandidateSampler(torch.utils.data.Sampler):
    """Each epoch: all positives and ``negatives_per_positive`` times as many negatives, shuffled.

    The negatives of successive epochs are consecutive stretches of a random permutation of all
    negatives, reshuffled each time it runs out: every negative is drawn once per
    ``n_negatives / (negatives_per_positive x n_positives)`` epochs. The epoch's draw depends only on
    ``seed`` and the epoch number (``set_epoch``, or counted by ``__iter__``), so a resumed run sees
    the same draws. Under ``torch.distributed`` each rank takes every ``world_size``-th index.

    Args:
        labels: (N,) 0/1 classes of the dataset's items.
        negatives_per_positive: negatives per positive in an epoch; default 1 (balanced).
        seed: seed of the draws.
        num_replicas: ranks sharing an epoch (default: the process group's size, else 1).
        rank: this rank (default: the process group's rank, else 0).
    """

    def __init__(self, labels, negatives_per_positive: float = 1.0, seed: int = 0,
                 num_replicas: int | None = None, rank: int | None = None) -> None:
        labels = _check_labels(labels)
        if not float(negatives_per_positive) > 0:
            raise ValueError(f"negatives_per_positive: expected a positive number, got {negatives_per_positive!r}.")
        self.positives = np.flatnonzero(labels == 1)
        self.negatives = np.flatnonzero(labels == 0)
        self.negatives_per_epoch = min(len(self.negatives), max(1, round(negatives_per_positive * len(self.positives))))
        self.seed = int(seed)
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.num_replicas = num_replicas or (torch.distributed.get_world_size() if dist else 1)
        self.rank = rank if rank is not None else (torch.distributed.get_rank() if dist else 0)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s negatives at the next ``__iter__`` (0-based)."""
        self.epoch = int(epoch)

    def epoch_negatives(self, epoch: int) -> np.ndarray:
        """Indices of the negatives of epoch ``epoch``."""
        n, k = len(self.negatives), self.negatives_per_epoch
        start = epoch * k
        parts = []
        while k > 0:
            cycle, offset = divmod(start, n)
            order = np.random.default_rng([self.seed, cycle]).permutation(n)
            take = order[offset: offset + k]
            parts.append(self.negatives[take])
            k -= len(take)
            start += len(take)
        return np.concatenate(parts)

    def _epoch_indices(self, epoch: int) -> np.ndarray:
        indices = np.concatenate([self.positives, self.epoch_negatives(epoch)])
        indices = indices[np.random.default_rng([self.seed, epoch, 1]).permutation(len(indices))]
        per_rank = math.ceil(len(indices) / self.num_replicas)
        indices = np.resize(indices, per_rank * self.num_replicas)  # even split, as DistributedSampler pads
        return indices[self.rank::self.num_replicas]

    def __len__(self) -> int:
        return math.ceil((len(self.positives) + self.negatives_per_epoch) / self.num_replicas)

    def __iter__(self):
        indices = self._epoch_indices(self.epoch)
        self.epoch += 1
        return iter(indices.tolist())


def train_sampler(dataset, class_balance: str = "sampler", negatives_per_positive: float = 1.0, seed: int = 0):
    """The training sampler of ``class_balance``: balanced draws, or every candidate in random order."""
    if _check_balance(class_balance) == "sampler":
        return BalancedCandidateSampler(dataset.labels, negatives_per_positive, seed)
    _check_labels(dataset.labels)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.utils.data.distributed.DistributedSampler(dataset, shuffle=True, seed=seed)
    return torch.utils.data.RandomSampler(dataset, generator=torch.Generator().manual_seed(int(seed)))


def bce_loss(labels=None, class_balance: str = "sampler") -> torch.nn.BCEWithLogitsLoss:
    """BCE on logits; with ``class_balance="weights"`` the positive term is weighted negatives / positives."""
    if _check_balance(class_balance) == "sampler":
        return torch.nn.BCEWithLogitsLoss()
    labels = _check_labels(labels)
    weight = float((labels == 0).sum()) / float((labels == 1).sum())
    logger.info("class balance by weights: positive weight %.2f (%d negatives / %d positives)", weight,
                (labels == 0).sum(), (labels == 1).sum())
    return torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([weight]))


def fixed_validation_subset(dataset, negatives_per_positive: float | None = None, seed: int = 0):
    """All positives and a fixed draw of negatives (the same every epoch, so validation losses compare).

    ``negatives_per_positive`` None (or 0) keeps every candidate. Returns ``dataset`` or a ``Subset``.
    """
    if not negatives_per_positive:
        return dataset
    labels = np.asarray(dataset.labels)
    positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    k = min(len(negatives), max(1, round(negatives_per_positive * max(len(positives), 1))))
    chosen = np.random.default_rng([int(seed), 2]).choice(negatives, size=k, replace=False)
    indices = np.sort(np.concatenate([positives, chosen]))
    subset = torch.utils.data.Subset(dataset, indices.tolist())
    subset.labels = labels[indices]
    return subset


def write_submission(path: str | os.PathLike, seriesuid: Sequence[str], world, probability) -> None:
    """Write a LUNA16 submission CSV (seriesuid, coordX, coordY, coordZ, probability) atomically."""
    world = np.asarray(world, dtype=np.float64).reshape(-1, 3)
    probability = np.asarray(probability, dtype=np.float64).reshape(-1)
    if not len(seriesuid) == len(world) == len(probability):
        raise ValueError(f"write_submission: {len(seriesuid)} series, {len(world)} points, {len(probability)} scores.")

    def _write(stream):
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(SUBMISSION_COLUMNS)
        for uid, (x, y, z), p in zip(seriesuid, world, probability):
            writer.writerow([uid, repr(float(x)), repr(float(y)), repr(float(z)), repr(float(p))])

    write_atomic(path, _write, binary=False)


def read_submission(path: str | os.PathLike) -> dict:
    """Read a submission CSV: {"seriesuid": (N,) str, "world": (N, 3), "probability": (N,)}."""
    rows = read_luna16_rows(path, SUBMISSION_COLUMNS, kind="submission")
    return {"seriesuid": np.asarray(rows.uids, dtype=str), "world": rows.values[:, :3], "probability": rows.values[:, 3]}


def roc_auc(probability, labels) -> float:
    """Area under the ROC curve (MONAI ``compute_roc_auc``); NaN when only one class is present."""
    labels = np.asarray(labels).reshape(-1)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(compute_roc_auc(torch.as_tensor(np.asarray(probability, dtype=np.float64)).reshape(-1),
                                 torch.as_tensor(labels.astype(np.float64))))


class CandidateScoreWriter:
    """Evaluator handler: the sigmoid score of every candidate, written as a LUNA16 submission CSV.

    Reads "pred" (logits) from the engine output and "seriesuid", "world", "row" (and "label" when
    present) from the batch; at the end of the run writes ``submission_path`` ordered by the row
    in the candidates file, and keeps the arrays in ``self.results`` for metrics.

    Args:
        submission_path: where the CSV goes; None keeps the scores in memory only.
        logits: "pred" holds logits (a sigmoid is applied here); False: already probabilities.
    """

    def __init__(self, submission_path: str | os.PathLike | None, logits: bool = True) -> None:
        self.submission_path = None if submission_path in (None, "") else os.fspath(submission_path)
        self.logits = bool(logits)
        self.results: dict = {}
        self._parts: list = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._finish)

    def _reset(self, engine: Engine) -> None:
        self._parts = []

    def _collect(self, engine: Engine) -> None:
        output, batch = engine.state.output, engine.state.batch
        if isinstance(output, list):  # decollated
            pred = torch.stack([torch.as_tensor(o["pred"]).reshape(-1)[:1] for o in output])
        else:
            pred = torch.as_tensor(output["pred"])
        if isinstance(batch, list):
            uids = [b["seriesuid"] for b in batch]
            world = torch.stack([torch.as_tensor(b["world"]) for b in batch])
            rows = torch.as_tensor([int(b["row"]) for b in batch])
            label = torch.stack([torch.as_tensor(b["label"]).reshape(-1)[:1] for b in batch]) if "label" in batch[0] else None
        else:
            uids, world, rows = list(batch["seriesuid"]), torch.as_tensor(batch["world"]), torch.as_tensor(batch["row"])
            label = torch.as_tensor(batch["label"]) if "label" in batch else None
        score = pred.detach().float().reshape(len(uids), -1)[:, 0]
        probability = (torch.sigmoid(score) if self.logits else score).cpu().numpy()
        labels = None if label is None else label.detach().cpu().reshape(len(uids), -1)[:, 0].numpy()
        self._parts.append((uids, world.detach().cpu().numpy().reshape(-1, 3), rows.cpu().numpy(), probability, labels))

    def _finish(self, engine: Engine) -> None:
        if not self._parts:
            return
        uids = np.concatenate([np.asarray(p[0], dtype=str) for p in self._parts])
        world = np.concatenate([p[1] for p in self._parts])
        rows = np.concatenate([p[2] for p in self._parts])
        probability = np.concatenate([p[3] for p in self._parts])
        labels = None if self._parts[0][4] is None else np.concatenate([p[4] for p in self._parts])
        order = np.argsort(rows, kind="stable")
        self.results = {"seriesuid": uids[order], "world": world[order], "row": rows[order],
                        "probability": probability[order], "label": None if labels is None else labels[order]}
        if self.submission_path is not None:
            write_submission(self.submission_path, uids[order], world[order], probability[order])
            logger.info("wrote %d candidate scores to %s", len(order), self.submission_path)


def write_run_settings(output_dir: str | os.PathLike, settings: dict) -> str:
    """Write ``settings`` (class balance, split, initialisation, ...) to ``output_dir/run_settings.json``."""
    path = os.path.join(os.fspath(output_dir), "run_settings.json")
    write_json_atomic({"written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       **json.loads(json.dumps(settings, default=str))}, path)
    return path


class SamplerEpochHandler:
    """Trainer handler: tell the sampler which epoch comes next, so a resumed run draws what an uninterrupted one would.

    Args:
        sampler: anything with ``set_epoch`` (:class:`BalancedCandidateSampler`, ``DistributedSampler``);
            other samplers are left alone.
    """

    def __init__(self, sampler) -> None:
        self.sampler = sampler

    def attach(self, engine: Engine) -> None:
        if hasattr(self.sampler, "set_epoch"):
            engine.add_event_handler(Events.EPOCH_STARTED, self._set)

    def _set(self, engine: Engine) -> None:
        self.sampler.set_epoch(engine.state.epoch - 1)  # ignite counts epochs from 1


def classification_report(
    scores: CandidateScoreWriter,
    output_path: str | os.PathLike,
    seriesuids: Sequence[str] | None = None,
    annotations_csv: str | os.PathLike | None = None,
    excluded_csv: str | os.PathLike | None = None,
    froc: str = "candidate",
    settings: dict | None = None,
) -> dict:
    """AUC (with its chance baseline) and the FROC of scored candidates, written to ``output_path`` (JSON).

    Args:
        scores: the evaluator's :class:`CandidateScoreWriter` after the run (labelled candidates).
        output_path: the JSON file (e.g. ``eval/evaluate.json``).
        seriesuids: every scan of the evaluated section (the FROC divides false positives by their
            number); default the scans that have candidates.
        annotations_csv: LUNA16 annotations.csv; with ``froc="luna16"`` the CPM and the seven
            sensitivities of the challenge are computed from it.
        excluded_csv: LUNA16 annotations_excluded.csv; "" or None: no excluded findings.
        froc: "luna16" (NCC: hits within the nodule radius, docs/method.md §5.2), "candidate" (ECC:
            every positive candidate a target), or "none".
        settings: run settings recorded beside the figures.
    """
    results = scores.results
    if not results:
        raise ValueError("classification_report: the evaluator scored no candidate.")
    if results["label"] is None:
        raise ValueError("classification_report: the candidates carry no class; AUC and FROC need labels.")
    labels = results["label"].astype(np.int64)
    scans = sorted(set(seriesuids)) if seriesuids else sorted(set(results["seriesuid"].tolist()))
    report = {
        "num_candidates": int(len(labels)),
        "num_positives": int(labels.sum()),
        "num_scans": len(scans),
        "auc": roc_auc(results["probability"], labels),
        "auc_chance": 0.5,  # the baseline: a random ranking
    }
    if froc == "luna16":
        if not annotations_csv:
            raise ValueError("froc='luna16' needs annotations_csv (LUNA16 annotations.csv).")
        annotations = read_luna16_csv(annotations_csv, ANNOTATION_COLUMNS)
        excluded = read_luna16_csv(excluded_csv, ANNOTATION_COLUMNS) if excluded_csv else []
        submission = [{"seriesuid": u, "coordX": w[0], "coordY": w[1], "coordZ": w[2], "probability": p}
                      for u, w, p in zip(results["seriesuid"], results["world"], results["probability"])]
        curve = luna16_froc(annotations, excluded, scans, submission)
        report["froc"] = {k: v for k, v in curve.items() if k not in ("fps_per_scan", "sensitivity_curve", "thresholds")}
        report["cpm"] = curve["cpm"]
    elif froc == "candidate":
        curve = candidate_froc(results["probability"], labels, results["seriesuid"], num_cases=len(scans))
        report["froc"] = {k: v for k, v in curve.items() if k not in ("fps_per_case", "sensitivity_curve", "thresholds")}
    elif froc != "none":
        raise ValueError(f"froc: expected 'luna16', 'candidate' or 'none', got {froc!r}.")
    if settings:
        report["settings"] = json.loads(json.dumps(settings, default=str))
    write_json_atomic(report, output_path)
    logger.info("evaluation: AUC %.4f (chance 0.5) on %d candidates%s", report["auc"], report["num_candidates"],
                f", CPM {report['cpm']:.4f}" if "cpm" in report else "")
    return report
