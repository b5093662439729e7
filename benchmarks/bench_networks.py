"""CPU training-step time of the Models Genesis UNet3D: NCDHW versus channels_last_3d, same run.

One step = forward, MSE loss against a target, backward, SGD update (the pretraining step of
Zhou et al., MICCAI 2019), batch 2, 64x64x32, default (published) width unless told otherwise.
Both memory formats start from identical weights; the first step's outputs must agree within 1e-4.
Steps alternate between the two paths so that load from other processes hits both alike; the
ratios printed are median(NCDHW) / median(channels_last_3d) (> 1 means channels_last is faster),
of wall-clock time and of this process's CPU time (steadier when other processes share the cores;
with --threads 1 it is the compute time itself).

    python benchmarks/bench_networks.py              # full size: about 2 minutes on 2 idle cores
    python benchmarks/bench_networks.py --quick      # 32x32x16, width 0.5: seconds
    python benchmarks/bench_networks.py --threads 1  # steadier on a busy machine
"""

import argparse
import statistics
import time

import torch

from monai_genesis.networks import UNet3D

TOLERANCE = 1e-4


def _train_step(model, optimiser, image, target) -> torch.Tensor:
    optimiser.zero_grad(set_to_none=True)
    output = model(image)
    torch.nn.functional.mse_loss(output, target).backward()
    optimiser.step()
    return output.detach()


def _timed_step(model, optimiser, image, target):
    """Wall-clock seconds, CPU seconds of this process (less sensitive to other processes), output."""
    start, cpu_start = time.perf_counter(), time.process_time()
    output = _train_step(model, optimiser, image, target)
    return time.perf_counter() - start, time.process_time() - cpu_start, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="32x32x16 input, width 0.5")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per path, after one warm-up (default 2)")
    parser.add_argument("--width", type=float, default=None, help="UNet3D width (default 1.0; quick 0.5)")
    parser.add_argument("--size", type=int, nargs=3, default=None, help="H W D (default 64 64 32)")
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    size = args.size or ([32, 32, 16] if args.quick else [64, 64, 32])
    width = args.width or (0.5 if args.quick else 1.0)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image = torch.rand(args.batch, 1, *size)
    target = torch.rand(args.batch, 1, *size)
    models = {"NCDHW": UNet3D(width=width, channels_last=False)}
    models["channels_last_3d"] = UNet3D(width=width, channels_last=True)
    models["channels_last_3d"].load_state_dict(models["NCDHW"].state_dict())
    optimisers = {k: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for k, m in models.items()}
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, size {size}, "
        f"width {width}, {sum(p.numel() for p in models['NCDHW'].parameters()):,} parameters"
    )

    # warm-up step (also the equality check: same weights, same input, first step)
    first = {k: _timed_step(m, optimisers[k], image, target) for k, m in models.items()}
    difference = (first["NCDHW"][2] - first["channels_last_3d"][2]).abs().max().item()
    print(f"first-step outputs: max |NCDHW - channels_last_3d| = {difference:.2e} (tolerance {TOLERANCE:.0e})")
    for k, (seconds, cpu, _) in first.items():
        print(f"warm-up step {k}: {seconds:.2f} s (CPU {cpu:.2f} s)")

    wall, cpu = {k: [] for k in models}, {k: [] for k in models}
    for _ in range(args.steps):  # alternate the paths so background load affects both
        for k, m in models.items():
            seconds, cpu_seconds, _ = _timed_step(m, optimisers[k], image, target)
            wall[k].append(seconds)
            cpu[k].append(cpu_seconds)
    for k in models:
        print(f"{k:>16}: median {statistics.median(wall[k]):.2f} s/step, min {min(wall[k]):.2f} "
              f"({', '.join(f'{v:.2f}' for v in wall[k])}); CPU median {statistics.median(cpu[k]):.2f} s")
    for name, values in (("wall-clock", wall), ("CPU time", cpu)):
        ratio = statistics.median(values["NCDHW"]) / statistics.median(values["channels_last_3d"])
        print(f"speed-up of channels_last_3d over NCDHW ({name}): {ratio:.2f}x (goal >= 1.30x)")
    if difference > TOLERANCE:
        raise SystemExit(f"outputs differ by {difference:.2e} > {TOLERANCE:.0e}")


if __name__ == "__main__":
    main()
