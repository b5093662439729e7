"""The whole transfer experiment: pretrain every arm, fine-tune every (task, label budget, seed, arm), report.

Runs happen in a fixed order (pretraining arms, then per task, label budget and seed: scratch and each arm), each
skipped when its result file exists (``bookkeeping``); one line per finished run with an ETA on stderr.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from monai_genesis.data.atomic_write import write_atomic
from monai_genesis.experiments import bundle_runs, datasets
from monai_genesis.experiments.arms import SCRATCH
from monai_genesis.experiments.bookkeeping import ResultStore, package_versions
from monai_genesis.experiments.report import write_report
from monai_genesis.experiments.settings import experiment_settings
from monai_genesis.experiments.statistics import TEST_DESCRIPTION, baseline_means, summarise_task

DEFAULT_OUTPUT_ROOT = "experiment_output"
PRETRAINING_FIGURES = ("best_val_mse", "corrupted_input_mse", "cube_mean_mse", "skill_vs_cube_mean", "epochs", "iterations",
                       "seconds")


def plan(settings: dict) -> list[tuple]:
    """Every run of the experiment: ("pretrain", arm) and ("finetune", task, n, seed, arm), in running order."""
    runs = [("pretrain", arm) for arm in settings["arms"] if arm != SCRATCH]
    for task in settings["tasks"]:
        for n in settings["label_budgets"]:
            for seed in settings["seeds"]:
                runs += [("finetune", task, n, seed, arm) for arm in settings["arms"]]
    return runs


def _key(run: tuple) -> tuple[str, ...]:
    if run[0] == "pretrain":
        return ("pretrain", run[1])
    _, task, n, seed, arm = run
    return (task, f"n{n}", f"seed{seed}", arm)


def _copy_atomic(source: Path, destination: Path) -> None:
    data = Path(source).read_bytes()
    write_atomic(destination, lambda stream: stream.write(data))


def _kind(run: tuple) -> str:
    return "pretrain" if run[0] == "pretrain" else run[1]


class _Progress:
    """One line per finished run: its figure, its time, and an ETA from the mean time of each kind of run
    (pretraining, NCS, NCC) measured so far; a fine-tuning kind not yet measured counts as the other's mean."""

    def __init__(self, todo: list[tuple], total: int, enabled: bool) -> None:
        self.left = [_kind(r) for r in todo]
        self.total, self.done, self.enabled = total, total - len(todo), enabled
        self.seconds: dict[str, list[float]] = {}

    def __call__(self, run: tuple, text: str, seconds: float) -> None:
        self.done += 1
        self.left.remove(_kind(run))
        self.seconds.setdefault(_kind(run), []).append(seconds)
        mean = {k: sum(v) / len(v) for k, v in self.seconds.items()}
        finetunes = [t for k, times in self.seconds.items() if k != "pretrain" for t in times]
        fallback = sum(finetunes) / len(finetunes) if finetunes else mean["pretrain"] / 10  # fine-tunes are far shorter
        eta = sum(mean.get(k, fallback) for k in self.left)
        if self.enabled:
            print(f"[{self.done}/{self.total}] {text} ({seconds:.0f} s); ETA {eta / 60:.1f} min", file=sys.stderr, flush=True)


def run_experiment(output_dir: str | os.PathLike | None = None, name: str = "transfer", size: str = "default",
                   progress: bool = True, quiet: bool = True, report_only: bool = False, **overrides) -> dict:
    """Run (or continue) the transfer experiment and write its report.

    Args:
        output_dir: the experiment folder; default ``experiment_output/<name>``.
        name: the experiment's name (the default folder and the report's title).
        size: settings preset, "default" (about an hour on 2 cores) or "tiny" (seconds, for tests).
        progress: one line per finished run with an ETA on stderr.
        quiet: hide the bundles' per-epoch logging.
        report_only: write the report of the runs finished so far (marked incomplete if some are missing) and run
            nothing; e.g. while the experiment runs in another process.
        overrides: keys of ``experiment_settings`` (arms, tasks, label_budgets, seeds, budgets, sizes).

    Returns:
        The summary written to ``results.json`` (with "paths" of the written files added).

    Raises:
        ValueError: bad settings, or ``output_dir`` holds an experiment with other settings.
    """
    settings = experiment_settings(size, **overrides)
    root = Path(output_dir if output_dir is not None else Path(DEFAULT_OUTPUT_ROOT) / name).resolve()
    store = ResultStore(root, settings, record_versions=not report_only)
    runs = plan(settings)
    todo = [] if report_only else [r for r in runs if not _finished(store, r)]
    report_progress = _Progress(todo, len(runs), progress)
    if progress:
        done = sum(_finished(store, r) for r in runs) if report_only else len(runs) - len(todo)
        print(f"experiment {root}: {len(runs)} runs, {done} finished before, "
              + ("report only" if report_only else f"{len(todo)} to go"), file=sys.stderr, flush=True)
    data: dict = {}
    for run in todo:
        result = _execute(run, settings, store, root, data, quiet)
        store.put(result, *_key(run))
        report_progress(run, _describe(run, result), result["seconds"])
    summary = summarise(store, settings, name, runs)
    summary["paths"] = write_report(summary, root)
    return summary


def _finished(store: ResultStore, run: tuple) -> bool:
    result = store.get(*_key(run))
    return result is not None and (run[0] != "pretrain" or (store.root / result["checkpoint"]).is_file())


def _describe(run: tuple, result: dict) -> str:
    if run[0] == "pretrain":
        return f"pretrain {run[1]}: best validation MSE {result['best_val_mse']:.4f}"
    _, task, n, seed, arm = run
    return f"{task} {arm} n={n} seed={seed}: {result['score_name']} {result['score']:.3f}"


def _execute(run: tuple, settings: dict, store: ResultStore, root: Path, data: dict, quiet: bool) -> dict:
    work = root / "work"
    if run[0] == "pretrain":
        arm = run[1]
        if "cubes" not in data:
            data["cubes"] = datasets.pretraining_cubes(root / "data", settings)
        result = bundle_runs.pretrain(arm, data["cubes"], work / "pretrain" / arm, settings, quiet=quiet)
        checkpoint = Path("pretrained") / f"{arm}.pt"  # relative to the experiment folder, which may move
        _copy_atomic(Path(result["checkpoint"]), root / checkpoint)
        return {**result, "checkpoint": checkpoint.as_posix()}
    _, task, n, seed, arm = run
    weights = "" if arm == SCRATCH else str(root / store.get("pretrain", arm)["checkpoint"])
    run_dir = work / task / f"n{n}" / f"seed{seed}" / arm
    subsets = root / "data" / "subsets"
    if task == "ncs":
        if "ncs" not in data:
            data["ncs"] = datasets.ncs_data(root / "data", settings)
        datalist = datasets.ncs_subset(data["ncs"], n, seed, subsets / f"ncs_n{n}_seed{seed}.json")
        return bundle_runs.finetune_ncs(data["ncs"], datalist, run_dir, weights, seed, n, settings, quiet=quiet)
    if "ncc" not in data:
        data["ncc"] = datasets.ncc_data(root / "data", settings)
    candidates, counts = datasets.ncc_subset(data["ncc"], n, seed, subsets / f"ncc_n{n}_seed{seed}.csv")
    return bundle_runs.finetune_ncc(data["ncc"], candidates, counts, run_dir, weights, seed, settings, quiet=quiet)


def summarise(store: ResultStore, settings: dict, name: str, runs: list[tuple]) -> dict:
    """Tables of every finished run (an unfinished experiment gives a partial summary, marked as such)."""
    finished = {run: store.get(*_key(run)) for run in runs}
    finished = {run: r for run, r in finished.items() if r is not None}
    tasks = {}
    for task in settings["tasks"]:
        results = {(run[4], run[2], run[3]): r for run, r in finished.items() if run[0] == "finetune" and run[1] == task}
        tasks[task] = {"score_name": "dice" if task == "ncs" else "auc", "baselines": baseline_means(results) if results else {},
                       "rows": summarise_task(results, settings["arms"], settings["label_budgets"], settings["seeds"])}
    timings: dict = {}
    cpu: dict = {}
    for run, r in finished.items():
        timings.setdefault(_kind(run), []).append(r["seconds"])
        if "cpu_seconds" in r:
            cpu.setdefault(_kind(run), []).append(r["cpu_seconds"])
    cpu_means = {k: sum(v) / len(v) for k, v in cpu.items()}
    return {
        "name": name, "settings": settings, "versions": package_versions(), "tests": TEST_DESCRIPTION,
        "planned_runs": len(runs), "finished_runs": len(finished), "complete": len(finished) == len(runs),
        "tasks": tasks,
        "pretraining": {run[1]: {k: r.get(k) for k in PRETRAINING_FIGURES} for run, r in finished.items() if run[0] == "pretrain"},
        "timings": {k: sum(v) / len(v) for k, v in timings.items()},
        # this process's CPU time: about the wall time on an idle core, whatever else shared the machine
        "cpu_timings": cpu_means,
        "total_run_seconds": sum(r["seconds"] for r in finished.values()),
        "estimated_idle_seconds": (sum(cpu_means[_kind(run)] for run in runs)
                                   if all(_kind(run) in cpu_means for run in runs) else None),
    }
