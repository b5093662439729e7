"""Pretraining throughput of the genesis_pretrain bundle on CPU, and how long each step waits for data.

Runs the bundle's real trainer (train.json with overrides) on synthetic cubes for a few dozen
iterations in three set-ups, in the same run:
  A. corruption in data loader worker processes (``num_workers`` >= 1), the bundle's default;
  B. corruption in the training process (``num_workers=0``): the peer, what a plain loop does;
  C. batched corruption after the batch reached the training device (``corruption_on_device``).
For each: cubes per second, and the data wait (``GET_BATCH_STARTED`` -> ``GET_BATCH_COMPLETED``) as a
share of the step time. Goal: with workers, data wait < 10 % of the step time.

    python benchmarks/bench_training.py                                   # tiny: 32x32x16, width 0.125, ~40 s
    python benchmarks/bench_training.py --cube 64,64,32 --width 0.25 --iterations 12   # ~7 min on 2 cores

Measured on the 2-core development VM (torch 2.13 CPU, 1 torch thread, 1 worker, other jobs running):
tiny: A 15.6 cubes/s, data wait 2.1 %; B 15.4 cubes/s, 5.2 %; C 14.5 cubes/s, 1.6 %.
64x64x32, width 0.25: A 0.62 cubes/s, data wait 0.1 %; B 0.65, 0.5 %; C 0.63, 0.0 %.
On a CPU the network step dominates; the data pipeline is not the bottleneck in any set-up.
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigWorkflow

from monai_genesis.training.throughput import ThroughputHandler

CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / "genesis_pretrain" / "configs"


def write_cubes(root: Path, n_cubes: int, cube, seed=0) -> Path:
    """Smooth random cubes in [0, 1] as one float16 shard plus a datalist (the prepare_cubes layout)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, (n_cubes, *[max(s // 8, 1) for s in cube]))
    cubes = np.stack([np.kron(c, np.ones((8, 8, 8)))[: cube[0], : cube[1], : cube[2]] for c in coarse])
    cubes += 0.05 * rng.standard_normal(cubes.shape)
    (root / "cubes").mkdir(parents=True, exist_ok=True)
    np.save(root / "cubes" / "bench.npy", np.clip(cubes, 0, 1).astype(np.float16))
    items = [{"image": "cubes/bench.npy", "cube_index": i} for i in range(n_cubes)]
    (root / "datalist.json").write_text(json.dumps({"training": items, "validation": items[:1]}))
    return root


def measure(data: Path, out: Path, args, **overrides) -> dict:
    settings = {"bundle_root": str(out), "dataset_dir": str(data), "device": "cpu", "cube_size": list(args.cube),
                "network_width": args.width, "batch_size": args.batch_size, "epochs": 1, "val_interval": 10**6,
                "cache_rate": 1.0, "seed": 0, **overrides}
    wf = ConfigWorkflow(config_file=str(CONFIGS / "train.json"), meta_file=str(CONFIGS / "metadata.json"),
                        logging_file=False, workflow_type="train", **settings)
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    meter = ThroughputHandler(batch_size=args.batch_size, skip_first=args.warmup, log=False)
    meter.attach(trainer)
    wf.run()
    return meter.summary()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cube", default="32,32,16", type=lambda s: tuple(int(v) for v in s.split(",")))
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--batch_size", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    setups = {
        f"A. corruption in {args.num_workers} worker(s)": {"num_workers": args.num_workers},
        "B. corruption in the training process": {"num_workers": 0},
        "C. batched corruption on the device": {"num_workers": args.num_workers, "corruption_on_device": True},
    }
    n_cubes = args.batch_size * (args.iterations + args.warmup)
    print(f"cubes {args.cube}, width {args.width}, batch {args.batch_size}, {args.iterations} timed iterations "
          f"after {args.warmup} warm-up, torch threads {args.threads}, CPU")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_cubes(Path(tmp) / "data", n_cubes, args.cube)
        for i, (name, overrides) in enumerate(setups.items()):
            results[name] = measure(data, Path(tmp) / f"run{i}", args, **overrides)
    peer = results["B. corruption in the training process"]["items_per_second"]
    print(f"{'set-up':42s} {'cubes/s':>8s} {'step ms':>8s} {'data wait':>10s} {'vs B':>6s}")
    for name, r in results.items():
        print(f"{name:42s} {r['items_per_second']:8.2f} {1000 * r['seconds_per_step']:8.0f} "
              f"{100 * r['data_fraction']:9.1f}% {r['items_per_second'] / peer:5.2f}x")
    a = results[next(iter(setups))]
    verdict = "met" if a["data_fraction"] < 0.10 else "NOT met"
    print(f"goal (A: data wait < 10% of step time): {verdict} ({100 * a['data_fraction']:.1f}%)")


if __name__ == "__main__":
    main()
