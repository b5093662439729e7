"""Synthetic phantom generation and writing speed, one CPU core.

1. Seconds per volume for each anatomy at 128x128x96 (median of repeats, after a warm-up).
   Goal: chest CT under 1 s. The peer measured in the same run is one 3D Gaussian filter
   (sigma 1) of a float32 volume of the same size, so the ratio does not depend on the machine.
2. Writing one chest volume as NIfTI (.nii.gz, nibabel) and MetaImage (.mhd/.raw, ITK), against
   ``np.save`` of the same array.
3. With --demo-scale: a 256x256x160 chest volume, its generation time and the fraction of random
   64x64x32 crops that pass Models Genesis' lung test (spec section 3) with demo margins.

    python benchmarks/bench_phantoms.py              # about half a minute
    python benchmarks/bench_phantoms.py --quick      # one repeat
    python benchmarks/bench_phantoms.py --demo-scale
"""

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
    os.environ[_var] = "1"  # one core, set before numpy loads its thread pool

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from monai_genesis.phantoms.abdomen_ct import make_abdomen_ct  # noqa: E402
from monai_genesis.phantoms.brain_mri import make_brain_mri  # noqa: E402
from monai_genesis.phantoms.chest_ct import make_chest_ct  # noqa: E402
from monai_genesis.phantoms.ctpa import make_ctpa  # noqa: E402
from monai_genesis.phantoms.writers import write_metaimage, write_nifti  # noqa: E402

SHAPE = (128, 128, 96)
MAKERS = {"chest-ct": make_chest_ct, "ctpa": make_ctpa, "abdomen-ct": make_abdomen_ct, "brain-mri": make_brain_mri}
CHEST_GOAL_S = 1.0


def median_seconds(function, repeats: int) -> float:
    function()  # warm-up: imports, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def genesis_acceptance(image, crop=(64, 64, 32), margin=(40, 40, 12), draws=400, seed=0) -> float:
    """Fraction of random crops that pass the spec's lung test (score <= 0.15 of the crop)."""
    nonlung = image >= -150
    rng = np.random.default_rng(seed)
    accepted = 0
    for _ in range(draws):
        x, y, z = (rng.integers(m, s - m - c - 2) for s, m, c in zip(image.shape, margin, crop))
        window = nonlung[x : x + crop[0], y : y + crop[1], z : z + crop[2] + 2]
        score = np.where(window[:, :, : crop[2]], 1.0, np.where(window[:, :, 1 : crop[2] + 1], 0.5, 0.0)).sum()
        accepted += score <= 0.15 * np.prod(crop)
    return accepted / draws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one repeat instead of five")
    parser.add_argument("--demo-scale", action="store_true", help="also time a 256x256x160 chest volume")
    args = parser.parse_args()
    repeats = 1 if args.quick else 5

    volume = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    peer = median_seconds(lambda: ndimage.gaussian_filter(volume, 1.0), repeats)
    print(f"peer: gaussian_filter(sigma=1) of a float32 {SHAPE} volume: {peer:.3f} s")
    print(f"\n1. generation, {SHAPE} voxels, one core (median of {repeats})")
    print(f"{'anatomy':<12} {'s/volume':>9} {'x peer':>7}")
    results = {}
    for kind, make in MAKERS.items():
        seconds = median_seconds(lambda make=make: make(SHAPE, seed=0), repeats)
        results[kind] = seconds
        print(f"{kind:<12} {seconds:>9.3f} {seconds / peer:>7.1f}")
    verdict = "meets" if results["chest-ct"] < CHEST_GOAL_S else "MISSES"
    print(f"chest-ct: {results['chest-ct']:.3f} s per volume, {verdict} the goal of < {CHEST_GOAL_S:.0f} s")

    ct = make_chest_ct(SHAPE, seed=0)
    print("\n2. writing one chest volume (int16)")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        save = median_seconds(lambda: np.save(folder / "peer.npy", ct.image), repeats)
        nifti = median_seconds(lambda: write_nifti(folder / "c.nii.gz", ct.image, ct.affine), repeats)
        meta = median_seconds(lambda: write_metaimage(folder / "c.mhd", ct.image, ct.affine), repeats)
    print(f"np.save (peer) {save:.3f} s, NIfTI .nii.gz {nifti:.3f} s ({nifti / save:.0f}x), "
          f"MetaImage .mhd/.raw {meta:.3f} s ({meta / save:.1f}x)")

    if args.demo_scale:
        start = time.perf_counter()
        big = make_chest_ct((256, 256, 160), seed=0)
        seconds = time.perf_counter() - start
        rate = genesis_acceptance(big.image)
        print(f"\n3. 256x256x160 chest: {seconds:.2f} s; random 64x64x32 crops (margins 40/40/12) passing "
              f"the Genesis lung test: {rate:.1%}; lungs {big.lung_mask.mean():.1%} of the volume")


if __name__ == "__main__":
    main()
