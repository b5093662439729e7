"""Candidate cubes per second from a prepared volume, and classifier inference cubes per second.

1. Cutting: a 512x512x300 int16 CT written as .mhd/.raw (LUNA16's format), prepared once by
   ``prepare_candidate_volumes`` (windowed float16 .npy), then 1,000 candidate cubes of 64x64x32 cut
   through ``CandidateDataset`` (the bundles' code path: memory map, world -> voxel done once,
   padding at the borders). Peer, measured in the same run: reading and windowing the raw volume for
   each cube (what a pipeline without the prepared form does per candidate), timed on a few cubes.
2. Inference: ``GenesisClassifier`` at the published width on batches of 64x64x32 cubes, one
   thread, NCDHW against channels_last_3d, alternating so that load from other processes hits both.

Ratios are printed as prepared / peer (cutting) and NCDHW time / channels_last time (inference);
CPU seconds of this process are printed beside wall seconds (steadier on a shared machine).

    python benchmarks/bench_candidates.py            # full size
    python benchmarks/bench_candidates.py --quick    # 128x128x64 volume, width 0.25
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import torch

from monai_genesis.data.candidate_volumes import CandidateDataset, prepare_candidate_volumes, window
from monai_genesis.data.candidates import cut_cube, read_candidates
from monai_genesis.data.io import load_volume, voxel_to_world
from monai_genesis.networks import GenesisClassifier
from monai_genesis.phantoms.writers import write_case_volumes


def _clock():
    return time.perf_counter(), time.process_time()


def _since(start):
    return time.perf_counter() - start[0], time.process_time() - start[1]


def bench_cutting(root: str, shape, num_candidates: int, cube, peer_cubes: int) -> None:
    rng = np.random.default_rng(0)
    volume = rng.integers(-1024, 1500, size=shape, dtype=np.int16)
    affine = np.array([[-0.7, 0, 0, 180.0], [0, -0.7, 0, 200.0], [0, 0, 1.25, -300.0], [0, 0, 0, 1]])  # RAS
    uid = "1.2.3.4"
    from pathlib import Path

    write_case_volumes(Path(root), uid, {"images": volume}, affine, ("mhd",))
    image_path = os.path.join(root, "images", f"{uid}.mhd")
    start = _clock()
    prepare_candidate_volumes(os.path.join(root, "images"), os.path.join(root, "prep"), progress=False)
    prep_wall, prep_cpu = _since(start)
    raw_mb = os.path.getsize(os.path.join(root, "images", f"{uid}.raw")) / 2**20
    npy_mb = os.path.getsize(os.path.join(root, "prep", "volumes", f"{uid}.npy")) / 2**20
    print(f"volume {tuple(shape)}: raw {raw_mb:.0f} MB, prepared {npy_mb:.0f} MB; prepared once in "
          f"{prep_wall:.2f} s wall ({prep_cpu:.2f} s CPU)")

    voxels = rng.uniform(0, np.asarray(shape) - 1, size=(num_candidates, 3))  # borders included: padding
    world = voxel_to_world(voxels, load_volume(image_path), space="LPS")
    csv_path = os.path.join(root, "candidates.csv")
    with open(csv_path, "w") as f:
        f.write("seriesuid,coordX,coordY,coordZ,class\n")
        for i, (x, y, z) in enumerate(world):
            f.write(f"{uid},{float(x)!r},{float(y)!r},{float(z)!r},{int(i % 100 == 0)}\n")
    dataset = CandidateDataset(os.path.join(root, "prep"), read_candidates(csv_path), section="all", cube_size=cube)
    for name in ("first pass", "second pass"):
        start = _clock()
        checksum = sum(float(dataset.cube(i)[0, 0, 0]) for i in range(len(dataset)))
        wall, cpu = _since(start)
        print(f"prepared memory map ({name}): {len(dataset) / wall:9.1f} cubes/s wall, {len(dataset) / cpu:9.1f} per CPU s "
              f"(checksum {checksum:.1f})")
    prepared_rate = len(dataset) / wall

    start = _clock()
    for i in range(peer_cubes):
        hu = np.asarray(load_volume(image_path, dtype=None).as_tensor())
        cut_cube(window(hu), dataset.voxels[i], cube)
    wall, cpu = _since(start)
    print(f"peer, raw volume read and windowed per cube: {peer_cubes / wall:9.3f} cubes/s wall, {peer_cubes / cpu:9.3f} per CPU s")
    print(f"ratio prepared / peer: {prepared_rate / (peer_cubes / wall):.0f}x")


def bench_inference(width: float, cube, batch: int, reps: int) -> None:
    torch.manual_seed(0)
    nets = {"NCDHW": GenesisClassifier(width=width, channels_last=False).eval()}
    nets["channels_last_3d"] = GenesisClassifier(width=width, channels_last=True).eval()
    nets["channels_last_3d"].load_state_dict(nets["NCDHW"].state_dict())
    x = torch.rand(batch, 1, *cube)
    times = {k: [] for k in nets}
    outputs = {}
    with torch.inference_mode():
        for name, net in nets.items():
            outputs[name] = net(x)  # warm-up
        for _ in range(reps):
            for name, net in nets.items():
                start = _clock()
                net(x)
                times[name].append(_since(start))
    diff = (outputs["NCDHW"] - outputs["channels_last_3d"]).abs().max().item()
    for name, values in times.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        print(f"inference {name:17s} width {width}: {batch / wall:7.2f} cubes/s wall, {batch / cpu:7.2f} per CPU s "
              f"(median of {reps} batches of {batch})")
    ratio_wall = statistics.median(v[0] for v in times["NCDHW"]) / statistics.median(v[0] for v in times["channels_last_3d"])
    ratio_cpu = statistics.median(v[1] for v in times["NCDHW"]) / statistics.median(v[1] for v in times["channels_last_3d"])
    print(f"ratio NCDHW / channels_last_3d time: {ratio_wall:.2f} wall, {ratio_cpu:.2f} CPU (outputs agree to {diff:.1e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="128x128x64 volume, width 0.25")
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--peer_cubes", type=int, default=3)
    parser.add_argument("--width", type=float, default=None, help="classifier width (default 1.0, the published)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = (128, 128, 64) if args.quick else (512, 512, 300)
    width = args.width or (0.25 if args.quick else 1.0)
    cube = (64, 64, 32)
    with tempfile.TemporaryDirectory() as root:
        bench_cutting(root, shape, args.candidates, cube, args.peer_cubes)
    bench_inference(width, cube, args.batch, args.reps)


if __name__ == "__main__":
    main()
