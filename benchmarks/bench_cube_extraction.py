"""Cube extraction speed and storage (docs/method.md §3.1), one CPU core.

1. Lung filter of one 64x64x(32+3) crop: ``lung_crop_score`` versus the spec's rule written as the
   reference's four nested per-voxel Python loops (timed on a few crops only), same crops, same
   run; the scores must agree. Goal: >= 200x.
2. 32 cubes from a crude synthetic 512x512x300 chest CT (int16 HU, as LUNA16 stores it, and float32
   as LoadImage returns by default). Goal: < 2 s.
3. Storage of a LUNA16-scale set (15,000 cubes) as float16 shards, measured from a real shard.
   Goal: <= 4 GB on disk; the reference keeps float64 arrays in RAM.
4. Reading one cube through ``LoadCube`` (cached memmap) versus ``np.load`` of its whole shard.

    python benchmarks/bench_cube_extraction.py            # about a minute
    python benchmarks/bench_cube_extraction.py --quick    # fewer repeats
"""

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
    os.environ[_var] = "1"  # one core, set before numpy/torch load their thread pools

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from monai_genesis.data.cube_extraction import extract_cubes, lung_crop_score  # noqa: E402
from monai_genesis.data.cube_loading import LoadCube  # noqa: E402

LUNA16_CUBES = 15_000


def per_voxel_lung_score(crop_window, depth=32, window=3, threshold=-150.0):
    """The spec's filter as the reference writes it: four nested loops, one voxel at a time."""
    rows, cols, _ = crop_window.shape
    offsets = np.zeros((rows, cols, depth))
    for d in range(depth):
        for i in range(rows):
            for j in range(cols):
                for k in range(window):
                    if crop_window[i, j, d + k] >= threshold:
                        offsets[i, j, d] = k
                        break
                    if k == window - 1:
                        offsets[i, j, d] = k
    return float(np.sum(1.0 - offsets / (window - 1)))


def synthetic_chest(shape=(512, 512, 300), seed=0):
    """Crude chest CT in HU: air, a +40 HU body ellipse, two -850 HU lung ellipsoids, vessel specks."""
    x, y, z = (np.arange(n, dtype=np.float32) for n in shape)
    xx, yy = x[:, None], y[None, :]
    volume = np.full(shape, -1000, np.int16)
    volume[((xx - shape[0] / 2) / (0.45 * shape[0])) ** 2 + ((yy - shape[1] / 2) / (0.35 * shape[1])) ** 2 <= 1] = 40
    for centre in (0.3 * shape[0], 0.7 * shape[0]):
        in_plane = ((xx - centre) / (0.17 * shape[0])) ** 2 + ((yy - shape[1] / 2) / (0.27 * shape[1])) ** 2
        axial = ((z - shape[2] / 2) / (0.45 * shape[2])) ** 2
        volume[in_plane[:, :, None] + axial[None, None, :] <= 1] = -850
    specks = np.random.default_rng(seed).random(shape, dtype=np.float32) < 0.02
    volume[specks & (volume == -850)] = 60
    return volume


def bench_filter(quick: bool) -> None:
    rng = np.random.default_rng(0)
    crops = [rng.choice([-900.0, -600.0, 40.0], size=(64, 64, 35), p=[0.6, 0.2, 0.2]).astype(np.float32)
             for _ in range(2 if quick else 3)]
    loop_times, fast_times = [], []
    for crop in crops:
        start = time.perf_counter()
        expected = per_voxel_lung_score(crop)
        loop_times.append(time.perf_counter() - start)
        repeats = 200 if quick else 1000
        start = time.perf_counter()
        for _ in range(repeats):
            score = lung_crop_score(crop, depth=32)
        fast_times.append((time.perf_counter() - start) / repeats)
        assert abs(score - expected) < 1e-6, (score, expected)
    loop, fast = statistics.median(loop_times), statistics.median(fast_times)
    ratio = loop / fast
    print(f"[filter] per-voxel loop {loop * 1e3:.1f} ms/crop, vectorised {fast * 1e6:.0f} us/crop: "
          f"{ratio:.0f}x faster (goal >= 200x: {'met' if ratio >= 200 else 'NOT met'})")


def bench_extraction(quick: bool) -> None:
    start = time.perf_counter()
    volume = synthetic_chest()
    print(f"[extract] synthetic 512x512x300 chest CT built in {time.perf_counter() - start:.1f} s")
    for name, vol in (("int16", volume), ("float32", volume.astype(np.float32))):
        times = []
        for seed in range(2 if quick else 5):
            start = time.perf_counter()
            cubes = extract_cubes(vol, num_cubes=32, seed=seed)
            times.append(time.perf_counter() - start)
        best, median = min(times), statistics.median(times)
        print(f"[extract] {name}: {len(cubes)} cubes of {cubes.shape[1:]} in median {median:.3f} s "
              f"(best {best:.3f} s) (goal < 2 s: {'met' if median < 2 else 'NOT met'})")


def bench_storage_and_loading(quick: bool) -> None:
    cubes = np.random.default_rng(0).random((32, 64, 64, 32), dtype=np.float32).astype(np.float16)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "case.npy")
        np.save(path, cubes)
        per_cube = os.path.getsize(path) / len(cubes)
        total_gb = per_cube * LUNA16_CUBES / 1e9
        reference_gb = LUNA16_CUBES * 64 * 64 * 32 * 8 / 1e9
        print(f"[storage] 15,000 float16 cubes: {total_gb:.2f} GB on disk ({total_gb * 1e9 / 2**30:.2f} GiB), "
              f"read lazily; reference float64 in RAM: {reference_gb:.1f} GB, {reference_gb / total_gb:.1f}x more "
              f"(goal <= 4 GB: {'met' if total_gb <= 4 else 'NOT met'})")
        load = LoadCube(cube_size=(64, 64, 32))
        load(path, 0)  # open and cache the memmap
        repeats = 200 if quick else 1000
        indices = np.random.default_rng(1).integers(0, len(cubes), repeats)
        start = time.perf_counter()
        for i in indices:
            load(path, int(i))
        memmap_time = (time.perf_counter() - start) / repeats
        start = time.perf_counter()
        for i in indices[: repeats // 10]:
            torch.from_numpy(np.load(path)[int(i)].astype(np.float32))
        whole_time = (time.perf_counter() - start) / (repeats // 10)
        print(f"[loading] LoadCube (cached memmap) {memmap_time * 1e6:.0f} us/cube, np.load of the whole "
              f"32-cube shard {whole_time * 1e6:.0f} us/cube: {whole_time / memmap_time:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench_filter(args.quick)
    bench_extraction(args.quick)
    bench_storage_and_loading(args.quick)


if __name__ == "__main__":
    main()
