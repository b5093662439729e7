"""Restoration skill against training time for the demo's pretraining setting (or another one).

Runs `genesis demo` (synthetic chest CT -> cubes -> genesis_pretrain with train.json + tiny.json +
demo.json) with a time budget and optional bundle overrides, and writes to ``--output_dir``:
``skill_curve.png`` (validation skill with full corruption and without painting, 95 % bootstrap
bands, the ceiling, against the seconds spent in optimiser steps), ``skill_curve.json`` (the points)
and ``result.json`` (the held-out test metrics, iterations, cubes/s). Training time excludes
validation, so on a busy machine compare iterations and cubes/s, not wall-clock. Examples:

    python benchmarks/pretrain_skill_curve.py                      # the demo's setting and budget
    python benchmarks/pretrain_skill_curve.py --minutes 30 --set '{"val_interval": 4}'   # the longer run
    python benchmarks/pretrain_skill_curve.py --output_dir sgd --set '{"learning_rate": 1.0, \
"optimizer": {"_target_": "torch.optim.SGD", "params": "$@network.parameters()", "lr": "@learning_rate", "momentum": 0.9}}'
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from monai_genesis.cli.demo import DEMO_CASES, DEMO_MINUTES, run_demo, skill_line


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="skill_curve_output")
    parser.add_argument("--minutes", type=float, default=DEMO_MINUTES, help=f"training budget (default {DEMO_MINUTES:g})")
    parser.add_argument("--num_cases", type=int, default=DEMO_CASES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--set", default="{}", help="JSON dict of bundle overrides")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    overrides = json.loads(args.set)
    r = run_demo(args.output_dir, args.minutes, args.num_cases, args.seed, num_workers=args.num_workers, overrides=overrides,
                 finetune_task=None)  # the restoration skill only
    keep = ("num_cases", "cubes", "epochs", "iterations", "batch_size", "network_width", "test_metrics",
            "restoration_skill", "throughput", "timings", "skill_curve_png")
    result = {"overrides": overrides, **{k: r[k] for k in keep}}
    Path(args.output_dir, "result.json").write_text(json.dumps(result, indent=1))
    print(f"{r['iterations']} iterations, {r['throughput']['items_per_second']:.1f} cubes/s; {skill_line(r['restoration_skill'])}")
    print(f"curve: {r['skill_curve_png']}")
    return result


if __name__ == "__main__":
    main()
