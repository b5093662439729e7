"""`genesis demo`: the main job end to end on synthetic data, in a few minutes on a laptop CPU.

Writes synthetic chest CTs, extracts pretraining cubes, pretrains a tiny-width Models Genesis 3D
U-Net with the genesis_pretrain bundle (train.json + tiny.json + demo.json: the demo's learning
setting, see the bundle docs), evaluates restoration on held-out cubes against the per-cube-mean
baseline (skill, with and without painting), plots the validation skill against training time and
saves corrupted / restored / target images. Example:

    genesis demo --output_dir demo_output             # 5 minutes of pretraining, then NCS fine-tuning
    genesis demo --minutes 30 --overrides '{"val_interval": 4}'   # the longer run of the bundle docs
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from monai_genesis.bundles import bundle_path, bundle_workflow

BUNDLE_DIR = bundle_path("genesis_pretrain")
DEMO_CONFIGS = ("train.json", "tiny.json", "demo.json")
DEMO_CUBE_SIZE = (32, 32, 16)  # tiny.json's cube size
VOLUME_SHAPE = (128, 128, 96)
# Chosen by measurement (bundle docs, "The demo"): 12 training volumes instead of 4 bring the test skill near the
# validation skill, and 5 minutes is where the full-corruption skill's interval clears 0 on the 2-core VM.
DEMO_CASES = 20
DEMO_MINUTES = 5.0


def prepare_demo_data(out: Path, num_cases: int, seed: int, timings: dict) -> dict:
    """Synthetic chest CTs under ``out/chest_ct`` and their pretraining cubes under ``out/cubes``; returns the cube counts."""
    from monai_genesis.data import prepare_cubes
    from monai_genesis.phantoms.chest_ct import write_chest_ct_dataset

    t = time.perf_counter()
    write_chest_ct_dataset(out / "chest_ct", num_cases=num_cases, shape=VOLUME_SHAPE, seed=seed, formats="nii.gz")
    timings["synthetic_ct_s"] = time.perf_counter() - t
    t = time.perf_counter()  # margins small enough for 128 x 128 x 96 phantoms
    cubes = prepare_cubes(out / "chest_ct" / "images", out / "cubes", scale=32, cube_size=DEMO_CUBE_SIZE,
                          margins=(16, 16, 8), seed=seed, val_fraction=0.2, test_fraction=0.2, progress=False)
    timings["cube_extraction_s"] = time.perf_counter() - t
    return cubes["cubes"]


class _SkillCurve:
    """After each validation: training seconds so far (steps only), iteration, and the validation metrics."""

    KEYS = ("val_mse", "val_mean_mse", "val_skill", "val_skill_ci_low", "val_skill_ci_high", "val_skill_ceiling",
            "val_nopaint_skill", "val_nopaint_skill_ci_low", "val_nopaint_skill_ci_high")

    def __init__(self, trainer, throughput) -> None:
        self.trainer, self.throughput, self.rows = trainer, throughput, []

    def __call__(self, evaluator) -> None:
        metrics = evaluator.state.metrics
        self.rows.append({"train_s": self.throughput.step_seconds, "iteration": self.trainer.state.iteration,
                          "epoch": self.trainer.state.epoch, **{k: float(metrics[k]) for k in self.KEYS if k in metrics}})


def plot_skill_curve(rows: list, path: Path, title: str) -> str:
    """PNG of the validation skill (full corruption and without painting, 95 % CI bands, the ceiling) against training time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    t = [r["train_s"] / 60 for r in rows]
    for key, label, colour in (("val_nopaint_skill", "without painting", "tab:blue"), ("val_skill", "full corruption", "tab:red")):
        ax.plot(t, [r[key] for r in rows], "o-", color=colour, label=label, markersize=3)
        ax.fill_between(t, [r[key + "_ci_low"] for r in rows], [r[key + "_ci_high"] for r in rows], color=colour, alpha=0.2)
    ax.plot(t, [r["val_skill_ceiling"] for r in rows], "--", color="tab:red", label="ceiling (full corruption)")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_ylim(max(-1.0, min([r["val_skill_ci_low"] for r in rows] + [0.0]) - 0.05), 1.0)
    ax.set_xlabel("training time (min, optimiser steps only)")
    ax.set_ylabel("skill vs per-cube mean (validation)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return str(path)


def pretrain(out: Path, bundle: Path, minutes: float, seed: int, num_workers: int, overrides: dict | None = None) -> dict:
    """Pretrain with the bundle's demo setting for ``minutes``, then evaluate the best checkpoint on the test cubes."""
    from ignite.engine import Events
    from ignite.handlers import TimeLimit

    timings = {}
    t = time.perf_counter()
    common = {"bundle_root": str(out), "dataset_dir": str(out / "cubes"), "ckpt_dir": str(out / "models"),
              "output_dir": str(out / "tensorboard"), "seed": seed, "device": "cpu", "num_workers": num_workers,
              **(overrides or {})}
    train = bundle_workflow(bundle, DEMO_CONFIGS, "train", epochs=100000,
                      png_dir=str(out / "restorations" / "validation"), **common)
    train.initialize()
    trainer = train.parser.get_parsed_content("train#trainer")
    throughput = next(h for h in train.parser.get_parsed_content("train#handlers") if hasattr(h, "summary"))
    curve = _SkillCurve(trainer, throughput)
    train.parser.get_parsed_content("validate#evaluator").add_event_handler(Events.EPOCH_COMPLETED, curve)
    losses = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output["loss"].item()))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, TimeLimit(limit_sec=max(1, int(round(minutes * 60)))))
    train.run()
    train.finalize()
    timings["training_s"] = time.perf_counter() - t

    t = time.perf_counter()
    evaluate = bundle_workflow(bundle, [*DEMO_CONFIGS, "evaluate.json"], "eval",
                         png_dir=str(out / "restorations" / "test"), **{**common, "output_dir": str(out / "evaluation")})
    evaluate.initialize()
    evaluator = evaluate.parser.get_parsed_content("validate#evaluator")
    evaluate.run()
    timings["evaluation_s"] = time.perf_counter() - t
    m = {k: float(v) for k, v in evaluator.state.metrics.items()}
    (out / "skill_curve.json").write_text(json.dumps(curve.rows, indent=1))
    settings = train.parser.get_parsed_content("network_settings")
    title = (f"{trainer.state.iteration} iterations of batch {train.parser['batch_size']}, width {settings['network_width']}, "
             f"{throughput.summary()['items_per_second']:.1f} cubes/s")
    first, last = (sum(x) / max(len(x), 1) for x in (losses[:10], losses[-10:]))
    return {
        "epochs": trainer.state.epoch,
        "iterations": trainer.state.iteration,
        "batch_size": int(train.parser["batch_size"]),
        "network_width": float(settings["network_width"]),
        "train_loss_first_10": first,
        "train_loss_last_10": last,
        "test_metrics": m,
        "restoration_skill": {
            "full": m["skill"], "full_ci": (m["skill_ci_low"], m["skill_ci_high"]), "ceiling": m["skill_ceiling"],
            "without_painting": m["nopaint_skill"], "without_painting_ci": (m["nopaint_skill_ci_low"], m["nopaint_skill_ci_high"]),
        },
        "validation_curve": curve.rows,
        "skill_curve_png": plot_skill_curve(curve.rows, out / "skill_curve.png", title) if curve.rows else None,
        "throughput": throughput.summary(),
        "timings": timings,
        "best_checkpoint": str(out / "models" / "model.pt"),
        "test_images": sorted(str(p) for p in (out / "restorations" / "test").glob("*.png")),
        "validation_images": sorted(str(p) for p in (out / "restorations" / "validation").glob("*.png")),
        "tensorboard": str(out / "tensorboard"),
    }


def run_demo(
    output_dir: str = "demo_output",
    minutes: float = DEMO_MINUTES,
    num_cases: int = DEMO_CASES,
    seed: int = 0,
    bundle_dir: str | None = None,
    threads: int = 1,
    num_workers: int = 1,
    overrides: dict | None = None,
    finetune_task: str | None = "ncs",
    num_labeled: int = 4,
    finetune_settings: dict | None = None,
) -> dict:
    """Run the demo and return what it did (paths, counts, metrics with their baselines, throughput).

    Args:
        output_dir: folder for everything the demo writes. Defaults to "demo_output".
        minutes: pretraining time budget; training stops at the first epoch end after it. Defaults to 5.
        num_cases: synthetic chest CT volumes (128 x 128 x 96; 60 % train, 20 % validation, 20 % test). Defaults to 20.
        seed: seed of the phantoms, the cube crops and the training. Defaults to 0.
        bundle_dir: the genesis_pretrain bundle folder; default the one in this repository.
        threads: torch threads of the training process. Defaults to 1: with ``num_workers=1`` the
            corruption runs on a second core, and on a busy machine more OpenMP threads than free
            cores slow every convolution down several times.
        num_workers: data loader processes corrupting cubes. Defaults to 1.
        overrides: further bundle settings (e.g. ``{"learning_rate": 0.001}``), for experiments.
        finetune_task: the target task fine-tuned from the pretrained weights and from scratch on the same
            few labels ("ncs" or "ncc", :func:`monai_genesis.experiments.finetune_comparison`); None skips it.
            Defaults to "ncs".
        num_labeled: labelled training cases of that comparison. Defaults to 4.
        finetune_settings: further settings of the comparison (``experiments/settings.py`` keys, e.g.
            ``{"ncs_steps": 2}``).
    """
    import torch

    if minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {minutes!r}.")
    if int(num_cases) != num_cases or num_cases < 3:
        raise ValueError(f"--num_cases: the demo needs at least 3 volumes (training, validation, test), got {num_cases!r}.")
    if threads < 1 or num_workers < 0:
        raise ValueError(f"--threads must be >= 1 and --num_workers >= 0, got {threads!r} and {num_workers!r}.")
    if finetune_task not in (None, "ncs", "ncc"):
        raise ValueError(f"--finetune_task must be ncs, ncc or None, got {finetune_task!r}.")
    torch.set_num_threads(threads)
    bundle = Path(bundle_dir) if bundle_dir is not None else BUNDLE_DIR
    if not all((bundle / "configs" / c).is_file() for c in DEMO_CONFIGS):
        raise FileNotFoundError(
            f"genesis_pretrain bundle (with {', '.join(DEMO_CONFIGS)}) not found at '{bundle}': pass --bundle_dir.")
    out = Path(output_dir).resolve()
    timings, started = {}, time.perf_counter()
    cubes = prepare_demo_data(out, num_cases, seed, timings)
    result = pretrain(out, bundle, minutes, seed, num_workers, overrides)
    timings.update(result.pop("timings"))
    if finetune_task is not None:
        from monai_genesis.experiments import finetune_comparison

        t = time.perf_counter()
        result["finetune"] = finetune_comparison(result["best_checkpoint"], out / "finetune", task=finetune_task,
                                                 num_labeled=num_labeled, seed=seed, **(finetune_settings or {}))
        timings["finetune_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - started
    return {"output_dir": str(out), "num_cases": num_cases, "cubes": cubes, **result, "timings": timings}


def skill_line(skill: dict) -> str:
    """The summary's one line of restoration skill."""
    return (f"restoration skill: {skill['full']:.3f} (full corruption, ceiling {skill['ceiling']:.3f}), "
            f"{skill['without_painting']:.3f} (without painting)")


def _data_lines(r: dict) -> list[str]:
    tm, n = r["timings"], r["cubes"]
    size = "x".join(map(str, DEMO_CUBE_SIZE))
    return [
        f"  1. synthetic chest CT: {r['num_cases']} volumes of {'x'.join(map(str, VOLUME_SHAPE))} "
        f"({tm['synthetic_ct_s']:.0f} s) -> chest_ct/images",
        f"  2. pretraining cubes ({size}): {n['training']} training, {n['validation']} validation, {n['test']} test "
        f"({tm['cube_extraction_s']:.0f} s) -> cubes/",
    ]


def _pretraining_lines(r: dict) -> list[str]:
    m, tp, tm, s = r["test_metrics"], r["throughput"], r["timings"], r["restoration_skill"]
    return [
        f"  3. pretrained the 3D U-Net (width {r['network_width']:g}, configs {' + '.join(DEMO_CONFIGS)}) for {r['epochs']} epochs, "
        f"{r['iterations']} iterations of {r['batch_size']} cubes ({tm['training_s']:.0f} s with validation):",
        f"     train loss {r['train_loss_first_10']:.4f} (first 10 iterations) -> {r['train_loss_last_10']:.4f} (last 10); "
        f"{tp['items_per_second']:.1f} cubes/s, data wait {100 * tp['data_fraction']:.1f}% of step time",
        f"  4. held-out test cubes: restored MSE {m['mse']:.4f} (mean PSNR {m['psnr']:.1f} dB); baselines: "
        f"per-cube mean {m['mean_mse']:.4f}, corrupted input {m['corrupted_mse']:.4f}",
        f"     without painting: restored MSE {m['nopaint_mse']:.4f}; per-cube mean {m['nopaint_mean_mse']:.4f}, "
        f"corrupted input {m['nopaint_corrupted_mse']:.4f}",
        f"     {skill_line(s)}",
        f"     95% bootstrap CI over cubes: full [{s['full_ci'][0]:.3f}, {s['full_ci'][1]:.3f}], "
        f"without painting [{s['without_painting_ci'][0]:.3f}, {s['without_painting_ci'][1]:.3f}]",
    ]


def _finetune_lines(r: dict) -> list[str]:
    f = r.get("finetune")
    if f is None:
        return []
    name = {"ncs": "lung nodule segmentation (NCS)", "ncc": "lung nodule false-positive reduction (NCC)"}[f["task"]]
    score = f["score_name"]
    baselines = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in f["baselines"].items())
    return [
        f"  5. fine-tuned {name} on {f['num_labeled']} labelled cases, same budget and seed for both "
        f"({r['timings']['finetune_s']:.0f} s):",
        f"     test {score}: from the pretrained weights {f['pretrained']['score']:.3f}, "
        f"from scratch {f['scratch']['score']:.3f}; baselines: {baselines}",
        *[f"     {p}" for p in f["images"]],
        "     (one seed, a few labels: `genesis experiment` measures this over arms, label budgets and seeds)",
    ]


def _output_lines(r: dict) -> list[str]:
    return [
        "  Images (rows: cubes; columns: corrupted | restored | target, middle axial slice):",
        *[f"     {p}" for p in r["test_images"]],
        f"     per-epoch validation grids in {Path(r['output_dir']) / 'restorations' / 'validation'}",
        *([f"  Validation skill against training time: {r['skill_curve_png']}"] if r.get("skill_curve_png") else []),
        f"  Checkpoints: {r['best_checkpoint']} (best) and latest.pt beside it",
        f"  TensorBoard: tensorboard --logdir {r['tensorboard']}",
    ]


SUMMARY_SECTIONS = [_data_lines, _pretraining_lines, _finetune_lines, _output_lines]


def summary(r: dict) -> str:
    """The demo's printed summary: a header, then each of ``SUMMARY_SECTIONS``."""
    lines = [f"Models Genesis demo: done in {r['timings']['total_s']:.0f} s. Outputs in {r['output_dir']}"]
    for section in SUMMARY_SECTIONS:
        lines += section(r)
    return "\n".join(lines)


def demo(output_dir: str = "demo_output", minutes: float = DEMO_MINUTES, num_cases: int = DEMO_CASES, seed: int = 0,
         bundle_dir=None, threads: int = 1, num_workers: int = 1, finetune_task: str | None = "ncs", num_labeled: int = 4,
         overrides: dict | None = None) -> None:
    """Pretrain a tiny Models Genesis model on synthetic chest CT, show what it learned, and fine-tune a target task.

    Args:
        output_dir: folder for everything the demo writes (default demo_output).
        minutes: pretraining time budget in minutes (default 5).
        num_cases: number of synthetic chest CT volumes (default 20).
        seed: random seed (default 0).
        bundle_dir: the genesis_pretrain bundle folder (default: the repository's).
        threads: torch threads for training (default 1; the data loader worker uses another core).
        num_workers: data loader processes (default 1).
        finetune_task: ncs (default) or ncc, fine-tuned from the pretrained weights and from scratch; None skips it.
        num_labeled: labelled cases of that fine-tuning (default 4).
        overrides: further genesis_pretrain settings, e.g. '{"val_interval": 4}' (the documented longer run).
    """
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError(f"--overrides must be a JSON object of bundle settings, got {overrides!r}.")
    r = run_demo(output_dir, minutes, num_cases, seed, bundle_dir, threads, num_workers, overrides=overrides,
                 finetune_task=finetune_task, num_labeled=num_labeled)
    print("\n" + summary(r))
