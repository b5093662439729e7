"""Whole-volume CPU inference of the Models Genesis UNet3D with MONAI's SlidingWindowInferer: seconds and memory.

The code path of the segmentation bundles' inference: ``SlidingWindowInferer(roi_size, sw_batch_size,
overlap)`` over one (1, 1, H, W, D) volume, ``UNet3D`` at the published width with its sigmoid
output, ``torch.inference_mode()``. Each configuration runs in a fresh process, so its peak resident
memory (``ru_maxrss``) is its own; each is printed next to the baseline measured in the same run
(roi 64x64x32, sw_batch_size 1, NCDHW, same thread count): time and memory ratios, and the 2-thread
against the 1-thread time. Configurations with the same roi must give the same output (checked).

Columns: windows (network inputs), redundancy (window voxels per volume voxel: overlap and padding
cost), wall and CPU seconds, window throughput (million window voxels per wall second), peak RSS and
what the inference added to the RSS it started from.

The full mode (512x512x133, the CT size of the issue) runs every window of every configuration: on
2 shared cores that is hours per configuration (a 64x64x32 window at width 1 takes seconds), so
``--quick`` runs a 96x96x48 volume for real and also prints, for 512x512x133, the window count, the
measured cost of MONAI's stitching alone (a network-free run at full size: its seconds and memory)
and an estimate per configuration: full windows x measured seconds per window + stitching; for
rois the small volume cannot hold (128x128x64, 160x160x80) the network's time and memory per window
voxel are those of the largest roi measured.

    python benchmarks/bench_inference.py --quick             # about 40 minutes on 2 busy shared cores
    python benchmarks/bench_inference.py                     # the full volume: hours on 2 cores
    python benchmarks/bench_inference.py --quick --width 0.5 # cheaper still
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

FULL_VOLUME = (512, 512, 133)
QUICK_VOLUME = (96, 96, 48)
BASELINE = {"roi": [64, 64, 32], "sw_batch_size": 1, "channels_last": False}
OVERLAP = 0.25  # SlidingWindowInferer's default
TOLERANCE = 1e-4
LARGE_ROIS = ([128, 128, 64], [160, 160, 80])  # divisible by 16, as the network needs


def _voxels(roi) -> int:
    count = 1
    for size in roi:
        count *= size
    return count


def _configs(quick: bool) -> list[dict]:
    """(roi, sw_batch_size, channels_last) combinations; larger rois only where the volume holds them."""
    small = [64, 64, 32]
    configs = [dict(BASELINE), {"roi": small, "sw_batch_size": 1, "channels_last": True}]
    configs.append({"roi": small, "sw_batch_size": 2, "channels_last": True})
    if quick:
        configs.append({"roi": [96, 96, 48], "sw_batch_size": 1, "channels_last": True})
        return configs
    configs.append({"roi": small, "sw_batch_size": 4, "channels_last": True})
    for roi in LARGE_ROIS:
        configs.append({"roi": roi, "sw_batch_size": 1, "channels_last": True})
        configs.append({"roi": roi, "sw_batch_size": 1, "channels_last": False})
    return configs


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def _worker(spec: dict) -> dict:
    """One configuration in this (fresh) process; returns its figures."""
    import torch
    from monai.inferers import SlidingWindowInferer

    from monai_genesis.networks import UNet3D

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    volume = torch.rand(1, 1, *spec["volume"])
    windows = [0]
    if spec.get("network") == "none":  # MONAI's windowing and stitching alone

        def network(x):
            windows[0] += x.shape[0]
            return x

    else:
        model = UNet3D(width=spec["width"], channels_last=spec["channels_last"]).eval()

        def network(x):
            windows[0] += x.shape[0]
            return model(x)

        with torch.inference_mode():  # warm-up: one batch of windows, not timed
            model(torch.rand(spec["sw_batch_size"], 1, *spec["roi"]))
    inferer = SlidingWindowInferer(spec["roi"], spec["sw_batch_size"], OVERLAP, progress=False)
    windows[0] = 0
    rss_before = _rss_mb()
    start, cpu_start = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        output = inferer(volume, network)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if tuple(output.shape) != tuple(volume.shape):
        raise SystemExit(f"output shape {tuple(output.shape)} != input {tuple(volume.shape)}")
    roi_voxels = _voxels(spec["roi"])
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "windows": windows[0],
        "redundancy": windows[0] * roi_voxels / volume[0, 0].numel(),
        "mvox_per_s": windows[0] * roi_voxels / seconds / 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "added_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before,
        "output_mean": float(output.double().mean()),
    }


def _run(spec: dict) -> dict:
    """Run one configuration in a fresh interpreter (its own peak memory)."""
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"configuration {spec} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _name(config: dict) -> str:
    layout = "channels_last_3d" if config["channels_last"] else "NCDHW"
    return f"roi {'x'.join(map(str, config['roi']))}, sw_batch {config['sw_batch_size']}, {layout}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"a {'x'.join(map(str, QUICK_VOLUME))} volume, four configurations")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts (default 1 2)")
    parser.add_argument("--width", type=float, default=1.0, help="UNet3D width (default 1.0, the published network)")
    parser.add_argument("--volume", type=int, nargs=3, default=None, help="H W D (default 512 512 133; quick 96 96 48)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return

    import torch

    volume = list(args.volume or (QUICK_VOLUME if args.quick else FULL_VOLUME))
    configs = _configs(args.quick)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"volume {'x'.join(map(str, volume))}, UNet3D width {args.width:g} (sigmoid), overlap {OVERLAP}")  # fmt: skip
    header = f"{'configuration':<44} {'threads':>7} {'windows':>7} {'redund.':>7} {'wall s':>8} {'CPU s':>8} " \
             f"{'Mvox/s':>7} {'peak MB':>8} {'added MB':>8}  vs baseline (time, memory)"  # fmt: skip
    print(header)
    results = {}
    for threads in args.threads:
        for config in configs:
            spec = {**config, "threads": threads, "volume": volume, "width": args.width}
            r = results[(_name(config), threads)] = _run(spec)
            base = results[(_name(BASELINE), threads)]
            print(f"{_name(config):<44} {threads:>7} {r['windows']:>7} {r['redundancy']:>7.2f} {r['seconds']:>8.1f} "
                  f"{r['cpu_seconds']:>8.1f} {r['mvox_per_s']:>7.3f} {r['peak_rss_mb']:>8.0f} {r['added_rss_mb']:>8.0f}  "
                  f"{base['seconds'] / r['seconds']:.2f}x faster, {r['peak_rss_mb'] / base['peak_rss_mb']:.2f}x memory",
                  flush=True)  # fmt: skip
    if len(args.threads) > 1:
        first = args.threads[0]
        for threads in args.threads[1:]:
            for config in configs:
                ratio = results[(_name(config), first)]["seconds"] / results[(_name(config), threads)]["seconds"]
                print(f"{threads} threads against {first}: {_name(config)}: {ratio:.2f}x faster")
    # Same roi, same weights: the memory format and the batching of windows must not change the output.
    for config in configs:
        for threads in args.threads:
            peer = next(c for c in configs if c["roi"] == config["roi"])
            difference = abs(results[(_name(config), threads)]["output_mean"] - results[(_name(peer), threads)]["output_mean"])
            if difference > TOLERANCE:
                raise SystemExit(f"{_name(config)} output mean differs from {_name(peer)} by {difference:.2e}")
    print(f"outputs of configurations with the same roi agree (mean within {TOLERANCE:.0e}); "
          f"load average now {os.getloadavg()[0]:.1f}")

    if volume != list(FULL_VOLUME):
        _estimate_full(configs, args, results)


def _estimate_full(configs, args, results) -> None:
    """At 512x512x133: stitching measured without a network, network time and memory added from the run above."""
    print(f"\n{'x'.join(map(str, FULL_VOLUME))}: MONAI's windowing and stitching alone (network-free run, measured), "
          "then the estimate: full windows x measured wall seconds per window + stitching; peak = stitching peak "
          "+ what the network added above")  # fmt: skip
    for config in configs:
        spec = {**config, "threads": args.threads[0], "volume": list(FULL_VOLUME), "width": args.width, "network": "none"}
        stitch = _run(spec)
        line = (f"{_name(config):<44} {stitch['windows']:>5} windows, redundancy {stitch['redundancy']:.2f}, "
                f"stitching {stitch['seconds']:.1f} s, {stitch['added_rss_mb']:.0f} MB added")  # fmt: skip
        quick = results[(_name(config), args.threads[0])]
        line += f"; peak ~{stitch['peak_rss_mb'] + quick['added_rss_mb']:.0f} MB"
        for threads in args.threads:
            r = results[(_name(config), threads)]
            estimate = stitch["windows"] * r["seconds"] / r["windows"] + stitch["seconds"]
            line += f"; {threads} thread(s) ~{estimate / 60:.1f} min"
            if threads == 1:  # CPU time: what one otherwise idle core would take
                cpu_estimate = stitch["windows"] * r["cpu_seconds"] / r["windows"] + stitch["cpu_seconds"]
                line += f" (CPU time ~{cpu_estimate / 60:.1f} min)"
        print(line, flush=True)
    # Rois the small volume cannot hold: their windows and stitching measured, the network's cost per
    # window voxel (time and memory) taken from the largest roi measured above.
    largest = max(configs, key=lambda c: _voxels(c["roi"]))
    for roi in LARGE_ROIS:
        config = {"roi": roi, "sw_batch_size": 1, "channels_last": True}
        if any(c["roi"] == roi for c in configs):
            continue
        spec = {**config, "threads": args.threads[0], "volume": list(FULL_VOLUME), "width": args.width, "network": "none"}
        stitch = _run(spec)
        scale = _voxels(roi) / _voxels(largest["roi"])
        added = results[(_name(largest), args.threads[0])]["added_rss_mb"] * scale
        line = (f"{_name(config):<44} {stitch['windows']:>5} windows, redundancy {stitch['redundancy']:.2f}, "
                f"stitching {stitch['seconds']:.1f} s, {stitch['added_rss_mb']:.0f} MB added; "
                f"peak ~{stitch['peak_rss_mb'] + added:.0f} MB")  # fmt: skip
        for threads in args.threads:
            r = results[(_name(largest), threads)]
            estimate = stitch["windows"] * scale * r["seconds"] / r["windows"] + stitch["seconds"]
            line += f"; {threads} thread(s) ~{estimate / 60:.1f} min"
            if threads == 1:
                cpu_estimate = stitch["windows"] * scale * r["cpu_seconds"] / r["windows"] + stitch["cpu_seconds"]
                line += f" (CPU time ~{cpu_estimate / 60:.1f} min)"
        print(line + f" (per-voxel cost of roi {'x'.join(map(str, largest['roi']))} assumed)", flush=True)


if __name__ == "__main__":
    main()
