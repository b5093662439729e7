"""`genesis demo`: the main job end to end on synthetic data, in a few minutes on a laptop CPU.

Writes synthetic chest CTs, extracts pretraining cubes, pretrains a tiny-width Models Genesis 3D
U-Net with the genesis_pretrain bundle (train.json + tiny.json), evaluates restoration on held-out
cubes, and saves corrupted / restored / target images. Example:

    genesis demo --output_dir demo_output --minutes 2
"""

from __future__ import annotations

import time
from pathlib import Path

BUNDLE_DIR = Path(__file__).resolve().parents[1] / "bundles" / "genesis_pretrain"


def _workflow(bundle_dir: Path, configs: list[str], workflow_type: str, **overrides):
    from monai.bundle import ConfigWorkflow

    config_dir = bundle_dir / "configs"
    return ConfigWorkflow(
        config_file=[str(config_dir / c) for c in configs],
        meta_file=str(config_dir / "metadata.json"),
        logging_file=str(config_dir / "logging.conf"),
        workflow_type=workflow_type,
        **overrides,
    )


def run_demo(
    output_dir: str = "demo_output",
    minutes: float = 2.0,
    num_cases: int = 8,
    seed: int = 0,
    bundle_dir: str | None = None,
    threads: int = 1,
    num_workers: int = 1,
) -> dict:
    """Run the demo and return what it did (paths, counts, metrics, throughput).

    Args:
        output_dir: folder for everything the demo writes. Defaults to "demo_output".
        minutes: training time budget; training stops at the first epoch end after it. Defaults to 2.
        num_cases: synthetic chest CT volumes (128 x 128 x 96). Defaults to 8.
        seed: seed of the phantoms, the cube crops and the training. Defaults to 0.
        bundle_dir: the genesis_pretrain bundle folder; default the one in this repository.
        threads: torch threads of the training process. Defaults to 1: with ``num_workers=1`` the
            corruption runs on a second core, and on a busy machine more OpenMP threads than free
            cores slow every convolution down several times.
        num_workers: data loader processes corrupting cubes. Defaults to 1.
    """
    import torch
    from ignite.engine import Events
    from ignite.handlers import TimeLimit

    from monai_genesis.data import prepare_cubes
    from monai_genesis.phantoms.chest_ct import write_chest_ct_dataset

    if minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {minutes!r}.")
    if int(num_cases) != num_cases or num_cases < 3:
        raise ValueError(f"--num_cases: the demo needs at least 3 volumes (training, validation, test), got {num_cases!r}.")
    if threads < 1 or num_workers < 0:
        raise ValueError(f"--threads must be >= 1 and --num_workers >= 0, got {threads!r} and {num_workers!r}.")
    torch.set_num_threads(threads)
    bundle = Path(bundle_dir) if bundle_dir is not None else BUNDLE_DIR
    if not (bundle / "configs" / "train.json").is_file():
        raise FileNotFoundError(f"genesis_pretrain bundle not found at '{bundle}': pass --bundle_dir.")
    out = Path(output_dir).resolve()
    timings, started = {}, time.perf_counter()

    write_chest_ct_dataset(out / "chest_ct", num_cases=num_cases, shape=(128, 128, 96), seed=seed, formats="nii.gz")
    timings["synthetic_ct_s"] = time.perf_counter() - started

    # tiny.json's cube size; margins small enough for 128 x 128 x 96 phantoms
    t = time.perf_counter()
    cubes = prepare_cubes(out / "chest_ct" / "images", out / "cubes", scale=32, cube_size=(32, 32, 16),
                          margins=(16, 16, 8), seed=seed, val_fraction=0.2, test_fraction=0.2, progress=False)
    timings["cube_extraction_s"] = time.perf_counter() - t

    t = time.perf_counter()
    common = {"bundle_root": str(out), "dataset_dir": str(out / "cubes"), "ckpt_dir": str(out / "models"),
              "output_dir": str(out / "tensorboard"), "seed": seed, "device": "cpu", "num_workers": num_workers}
    train = _workflow(bundle, ["train.json", "tiny.json"], "train", epochs=1000,
                      png_dir=str(out / "restorations" / "validation"), **common)
    train.initialize()
    trainer = train.parser.get_parsed_content("train#trainer")
    losses = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output["loss"].item()))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, TimeLimit(limit_sec=max(1, int(round(minutes * 60)))))
    train.run()
    train.finalize()
    throughput = next(h for h in train.parser.get_parsed_content("train#handlers") if hasattr(h, "summary")).summary()
    timings["training_s"] = time.perf_counter() - t

    t = time.perf_counter()
    evaluate = _workflow(bundle, ["train.json", "tiny.json", "evaluate.json"], "eval",
                         png_dir=str(out / "restorations" / "test"), **{**common, "output_dir": str(out / "evaluation")})
    evaluate.initialize()
    evaluator = evaluate.parser.get_parsed_content("validate#evaluator")
    evaluate.run()
    timings["evaluation_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - started

    first = sum(losses[:10]) / max(len(losses[:10]), 1)
    last = sum(losses[-10:]) / max(len(losses[-10:]), 1)
    return {
        "output_dir": str(out),
        "num_cases": num_cases,
        "cubes": cubes["cubes"],
        "epochs": trainer.state.epoch,
        "iterations": trainer.state.iteration,
        "train_loss_first_10": first,
        "train_loss_last_10": last,
        "test_metrics": {k: float(v) for k, v in evaluator.state.metrics.items()},
        "throughput": throughput,
        "timings": timings,
        "best_checkpoint": str(out / "models" / "model.pt"),
        "test_images": sorted(str(p) for p in (out / "restorations" / "test").glob("*.png")),
        "validation_images": sorted(str(p) for p in (out / "restorations" / "validation").glob("*.png")),
        "tensorboard": str(out / "tensorboard"),
    }


def demo(output_dir: str = "demo_output", minutes: float = 2.0, num_cases: int = 8, seed: int = 0, bundle_dir=None,
         threads: int = 1, num_workers: int = 1) -> None:
    """Pretrain a tiny Models Genesis model on synthetic chest CT and show what it learned.

    Args:
        output_dir: folder for everything the demo writes (default demo_output).
        minutes: training time budget in minutes (default 2).
        num_cases: number of synthetic chest CT volumes (default 8).
        seed: random seed (default 0).
        bundle_dir: the genesis_pretrain bundle folder (default: the repository's).
        threads: torch threads for training (default 1; the data loader worker uses another core).
        num_workers: data loader processes (default 1).
    """
    r = run_demo(output_dir, minutes, num_cases, seed, bundle_dir, threads, num_workers)
    m, tp, tm, n = r["test_metrics"], r["throughput"], r["timings"], r["cubes"]
    lines = [
        f"Models Genesis demo: done in {tm['total_s']:.0f} s. Outputs in {r['output_dir']}",
        f"  1. synthetic chest CT: {r['num_cases']} volumes of 128x128x96 ({tm['synthetic_ct_s']:.0f} s) -> chest_ct/images",
        f"  2. pretraining cubes (32x32x16): {n['training']} training, {n['validation']} validation, {n['test']} test "
        f"({tm['cube_extraction_s']:.0f} s) -> cubes/",
        f"  3. pretrained the 3D U-Net (width 0.125) for {r['epochs']} epochs, {r['iterations']} iterations ({tm['training_s']:.0f} s):",
        f"     train loss {r['train_loss_first_10']:.4f} (first 10 iterations) -> {r['train_loss_last_10']:.4f} (last 10); "
        f"{tp['items_per_second']:.1f} cubes/s, data wait {100 * tp['data_fraction']:.1f}% of step time",
        f"  4. held-out test cubes: restored MSE {m['mse']:.4f} (mean PSNR {m['psnr']:.1f} dB) "
        f"vs corrupted input MSE {m['corrupted_mse']:.4f}",
        "  Images (rows: cubes; columns: corrupted | restored | target, middle axial slice):",
        *[f"     {p}" for p in r["test_images"]],
        f"     per-epoch validation grids in {Path(r['output_dir']) / 'restorations' / 'validation'}",
        f"  Checkpoints: {r['best_checkpoint']} (best) and latest.pt beside it",
        f"  TensorBoard: tensorboard --logdir {r['tensorboard']}",
    ]
    print("\n" + "\n".join(lines))
