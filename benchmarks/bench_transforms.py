"""Cubes per second of the Models Genesis corruptions on one CPU thread (64 x 64 x 32 float32 cubes).

Measured on the input types users feed and the code path the bundle runs, each next to peers
measured in the same run, so that ratios, not absolute numbers, carry over between machines:
- ``RandGenesisCorruptiond`` at the default rates on a numpy array, a CPU torch tensor and a
  ``MetaTensor`` (what ``LoadImaged``/``EnsureTyped`` and ``LoadCubed`` yield);
- the bundle's preprocessing chain: ``train#preprocessing`` of ``bundles/genesis_pretrain/configs/
  train.json`` (``LoadCubed`` reading one cube of a float16 shard written as ``prepare_cubes``
  writes it, then ``RandGenesisCorruptiond``), instantiated from the config itself;
- each step alone (probability 1) on each input type, and the batched torch form;
The headline rows (the corruption on each input type, the chain, the reference pipeline) are
measured in turn, round after round, each on the same cubes from a restarted seed.
- peers: the reference algorithm as Python loops (restated from ``docs/method.md`` §2, with its
  curve table built as the reference builds it: Bernstein polynomials at 100,000 parameters, then
  sorted), and MONAI's ``RandCoarseShuffle(holes=10000, spatial_size=1, max_spatial_size=(6, 6,
  3))``, the closest MONAI building block to local pixel shuffling.
Goals (one core): >= 800 cubes/s on torch and MetaTensor input, >= 700 cubes/s for the bundle's
chain including the shard read, each >= 50x the reference pipeline loops of the same run.

    python benchmarks/bench_transforms.py [--seconds 2] [--no-reference] [--no-steps]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor

from monai_genesis.cli.gallery import synthetic_cube
from monai_genesis.data.atomic_write import save_npy_atomic
from monai_genesis.data.prepare_cubes import SHARD_DTYPE
from monai_genesis.transforms import (
    RandGenesisCorruptionBatch,
    RandGenesisCorruptiond,
    RandGenesisFlip,
    RandInPainting,
    RandLocalPixelShuffle,
    RandNonLinearIntensity,
    RandOutPainting,
)

TRAIN_CONFIG = os.path.join(os.path.dirname(__file__), "..", "bundles", "genesis_pretrain", "configs", "train.json")
GOAL_TENSOR, GOAL_CHAIN, GOAL_RATIO = 800.0, 700.0, 50.0


def _reference_local_shuffle(x, rng):
    out = x.copy()
    _, h, w, d = x.shape
    for _ in range(10000):
        size = [rng.randint(1, s // 10) for s in (h, w, d)]
        corner = [rng.randint(0, s - b) for s, b in zip((h, w, d), size)]
        box = tuple(slice(c, c + b) for c, b in zip(corner, size))
        window = x[(0,) + box].flatten()
        np.random.shuffle(window)
        out[(0,) + box] = window.reshape(size)
    return out


def _reference_curve_table(rng):
    """The reference's intensity table: the Bezier curve from Bernstein polynomials at 100,000 parameters, sorted."""
    control = np.array([[0.0, 0.0], [rng.random(), rng.random()], [rng.random(), rng.random()], [1.0, 1.0]])
    t = np.linspace(0.0, 1.0, 100_000)
    # Bernstein basis in the reference's order: the curve runs from the last control point to the first.
    basis = np.array([c * t ** (3 - i) * (1 - t) ** i for i, c in enumerate((1, 3, 3, 1))])
    xs, ys = control[:, 0] @ basis, control[:, 1] @ basis
    if rng.random() < 0.5:
        return np.sort(xs), ys  # inverted: y in the order of the curve from (1, 1) to (0, 0)
    return np.sort(xs), np.sort(ys)


def _reference_pipeline(x, rng):
    """The reference algorithm as the reference runs it: Python loops, numpy views, its 100,000-point table (random.Random draws)."""
    y = x.copy()
    for _ in range(3):  # flip
        if rng.random() >= 0.4:
            break
        axis = rng.choice([0, 1, 2])
        x, y = np.flip(x, axis), np.flip(y, axis)
    if rng.random() < 0.5:
        x = _reference_local_shuffle(x, rng)
    if rng.random() < 0.9:
        xs, ys = _reference_curve_table(rng)
        x = np.interp(x, xs, ys)
    if rng.random() < 0.9:
        _, h, w, d = x.shape
        if rng.random() < 0.2:
            for _ in range(5):
                if rng.random() >= 0.95:
                    break
                size = [rng.randint(s // 6, s // 3) for s in (h, w, d)]
                corner = [rng.randint(3, s - b - 3) for s, b in zip((h, w, d), size)]
                x[(slice(None),) + tuple(slice(c, c + b) for c, b in zip(corner, size))] = np.random.rand(*size)
        else:
            keep, x = x, np.random.rand(*x.shape)
            for k in range(5):
                if k and rng.random() >= 0.95:
                    break
                size = [s - rng.randint(3 * s // 7, 4 * s // 7) for s in (h, w, d)]
                corner = [rng.randint(3, s - b - 3) for s, b in zip((h, w, d), size)]
                box = (slice(None),) + tuple(slice(c, c + b) for c, b in zip(corner, size))
                x[box] = keep[box]
    return x, y


def _rate(run, seconds: float, min_calls: int = 2) -> float:
    """Calls per second: the best of three timed stretches of about ``seconds`` / 3 each."""
    run()  # warm-up (compilation caches, tables)
    best = 0.0
    for _ in range(3):
        calls, start = 0, time.perf_counter()
        while calls < min_calls or time.perf_counter() - start < seconds / 3:
            run()
            calls += 1
        best = max(best, calls / (time.perf_counter() - start))
    return best


def _interleaved(stretches: dict, rounds: int = 4) -> dict:
    """Cubes per second of each stretch ``() -> number of cubes``, the best of ``rounds`` taken in turn.

    A stretch restarts its own seed and corrupts the same cubes every time, so that a random
    workload (the reference shuffles about half of its cubes, at 100x the cost of the others)
    costs the same in every stretch; taking the stretches in turn exposes them all to the same
    load on a shared machine, so their ratios hold even when the absolute rates drift.
    """
    for stretch in stretches.values():
        stretch()  # warm-up
    best = dict.fromkeys(stretches, 0.0)
    for _ in range(rounds):
        for name, stretch in stretches.items():
            start = time.perf_counter()
            cubes = stretch()
            best[name] = max(best[name], cubes / (time.perf_counter() - start))
    return best


def _repeat(make, calls: int):
    """A stretch of ``calls`` calls of the function ``make()`` returns, made afresh (seed restarted) each time."""

    def stretch() -> int:
        run = make()
        for _ in range(calls):
            run()
        return calls

    return stretch


def _inputs(cube: np.ndarray) -> dict:
    """The cube as each container users feed: numpy, CPU tensor, MetaTensor with an affine and a file name."""
    tensor = torch.from_numpy(cube.copy())
    meta = MetaTensor(tensor.clone(), affine=torch.diag(torch.tensor([0.7, 0.7, 1.25, 1.0], dtype=torch.float64)))
    meta.meta["filename_or_obj"] = "case_000.nii.gz"
    return {"numpy": cube, "torch": tensor, "MetaTensor": meta}


def _bundle_chain(shard_path: str):
    """``train#preprocessing`` of the bundle's train.json (corruption in the loader) and one datalist item."""
    parser = ConfigParser()
    parser.read_config(TRAIN_CONFIG)
    parser["corruption_on_device"] = False
    chain = parser.get_parsed_content("train#preprocessing")
    chain.set_random_state(0)
    return chain, {"image": shard_path, "cube_index": 3}


def main(seconds: float = 2.0, reference: bool = True, steps: bool = True) -> dict:
    torch.set_num_threads(1)
    cube = synthetic_cube(0)
    inputs = _inputs(cube)
    rates: dict[str, float] = {}

    shard_dir = tempfile.TemporaryDirectory()
    shard = os.path.join(shard_dir.name, "case_000.npy")
    save_npy_atomic(np.stack([synthetic_cube(s)[0] for s in range(8)]).astype(SHARD_DTYPE), shard)
    chain, item = _bundle_chain(shard)
    cubes = max(20, int(100 * seconds))
    headline = {}
    for kind, img in inputs.items():

        def corruption(x=img):
            pipeline = RandGenesisCorruptiond("image").set_random_state(0)
            return lambda: pipeline({"image": x})

        headline[f"RandGenesisCorruptiond, {kind}"] = _repeat(corruption, cubes)

    def bundle_chain():
        chain.set_random_state(0)
        return lambda: chain(item)

    headline["bundle chain: LoadCubed + RandGenesisCorruptiond"] = _repeat(bundle_chain, cubes)
    headline["bundle chain: LoadCubed alone (shard read)"] = _repeat(lambda: lambda: chain.transforms[0](item), cubes)
    if reference:

        def reference_loops():
            rng = random.Random(0)
            return lambda: _reference_pipeline(cube.astype(np.float64), rng)

        headline["peer: reference pipeline loops"] = _repeat(reference_loops, max(12, int(6 * seconds)))
    rates.update(_interleaved(headline))
    shard_dir.cleanup()
    if steps:
        for kind, img in inputs.items():
            for name, step in (
                ("flip", RandGenesisFlip(continue_prob=1.0)),
                ("local pixel shuffling", RandLocalPixelShuffle(prob=1.0)),
                ("non-linear intensity", RandNonLinearIntensity(prob=1.0)),
                ("in-painting", RandInPainting(prob=1.0)),
                ("out-painting", RandOutPainting(prob=1.0)),
            ):
                step.set_random_state(0)
                rates[f"step: {name} (prob 1), {kind}"] = _rate(lambda: step(img), seconds / 2)
    batched = RandGenesisCorruptionBatch().set_random_state(0)
    batch = torch.from_numpy(np.repeat(cube[None], 8, 0))
    rates["RandGenesisCorruptionBatch, CPU (per cube, batch 8)"] = 8 * _rate(lambda: batched(batch), seconds, 1)
    if torch.cuda.is_available():
        gpu = batch.cuda()

        def on_gpu():
            batched(gpu)
            torch.cuda.synchronize()

        rates["RandGenesisCorruptionBatch, CUDA (per cube, batch 8)"] = 8 * _rate(on_gpu, seconds, 1)

    from monai.transforms import RandCoarseShuffle

    coarse = RandCoarseShuffle(holes=10000, spatial_size=1, max_spatial_size=(6, 6, 3), prob=1.0)
    coarse.set_random_state(0)
    rates["peer: MONAI RandCoarseShuffle (10000 holes), torch"] = _rate(lambda: coarse(inputs["torch"]), seconds, 2)
    if reference:
        rng = random.Random(0)
        rates["peer: reference local shuffling loop"] = _rate(lambda: _reference_local_shuffle(cube, rng), seconds, 2)

    ref = rates.get("peer: reference pipeline loops")
    ref_shuffle = rates.get("peer: reference local shuffling loop")
    print(f"torch threads: {torch.get_num_threads()}, cube 64 x 64 x 32 float32, load {os.getloadavg()[0]:.2f}")
    print(f"{'transform':58s} {'cubes/s':>9s} {'ms/cube':>8s} {'x reference':>12s}")
    for name, rate in rates.items():
        peer = ref_shuffle if "shuffling" in name and "peer" not in name else ref
        ratio = f"{rate / peer:12.1f}" if peer and "peer" not in name and "alone" not in name else f"{'':12s}"
        print(f"{name:58s} {rate:9.1f} {1e3 / rate:8.2f} {ratio}")

    def goal(text: str, value: float, target: float, unit: str) -> None:
        print(f"goal: {text} >= {target:g}{unit}: {value:.1f}{unit} here, {'met' if value >= target else 'NOT met'}")

    for kind in ("torch", "MetaTensor"):
        goal(f"RandGenesisCorruptiond on {kind}", rates[f"RandGenesisCorruptiond, {kind}"], GOAL_TENSOR, " cubes/s")
    chain_rate = rates["bundle chain: LoadCubed + RandGenesisCorruptiond"]
    goal("bundle chain (shard read included)", chain_rate, GOAL_CHAIN, " cubes/s")
    if ref:
        for name in ("RandGenesisCorruptiond, torch", "RandGenesisCorruptiond, MetaTensor", "bundle chain: LoadCubed + RandGenesisCorruptiond"):
            goal(f"{name} vs reference loops", rates[name] / ref, GOAL_RATIO, "x")
    return rates


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent per measurement")
    parser.add_argument("--no-reference", action="store_true", help="skip the slow reference-loop peers")
    parser.add_argument("--no-steps", action="store_true", help="skip the per-step measurements")
    args = parser.parse_args()
    main(args.seconds, not args.no_reference, not args.no_steps)
