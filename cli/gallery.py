"""`genesis show-corruptions`: a PNG gallery of the Models Genesis corruptions on one cube."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["show_corruptions", "synthetic_cube"]

CUBE_SIZE = (64, 64, 32)  # the pretraining cube of Models Genesis
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mhd", ".mha", ".nrrd")


def synthetic_cube(seed: int = 0, size=CUBE_SIZE) -> np.ndarray:
    """A (1, H, W, D) float32 cube in [0, 1]: smooth textured background and a few bright or dark balls."""
    rng = np.random.RandomState(seed)
    grid = np.stack(np.meshgrid(*(np.linspace(0, 1, s) for s in size), indexing="ij"))
    cube = 0.35 + 0.1 * np.sin(6 * grid[0] + 2 * grid[2]) * np.cos(5 * grid[1])
    for value in (0.9, 0.75, 0.15, 0.6, 0.05):
        centre, radius = rng.uniform(0.2, 0.8, 3), rng.uniform(0.08, 0.2)
        ball = (((grid - centre[:, None, None, None]) / np.array([1, 1, 2])[:, None, None, None]) ** 2).sum(0) < radius**2
        cube[ball] = value
    cube += rng.normal(0, 0.02, size)
    return np.clip(cube, 0, 1).astype(np.float32)[None]


def _load(image: str, window) -> np.ndarray:
    """A (1, 64, 64, 32) cube in [0, 1] from a .npy cube or a NIfTI/MetaImage volume (centre crop)."""
    path = Path(image)
    if not path.is_file():
        raise FileNotFoundError(f"show-corruptions: image '{image}' does not exist.")
    name = path.name.lower()
    if name.endswith(".npy"):
        cube = np.load(path).astype(np.float32)
        cube = cube[None] if cube.ndim == 3 else cube
        if cube.ndim != 4:
            raise ValueError(f"show-corruptions: '{image}' holds shape {cube.shape}; expected (H, W, D) or (C, H, W, D).")
        if not np.isfinite(cube).all() or cube.min() < 0 or cube.max() > 1:
            raise ValueError(
                f"show-corruptions: '{image}' must hold finite values in [0, 1] (a normalised cube); "
                "pass a NIfTI/MetaImage volume instead to window it with ScaleIntensityRange."
            )
    elif name.endswith(VOLUME_SUFFIXES):
        from monai.transforms import LoadImage, ScaleIntensity, ScaleIntensityRange

        volume = LoadImage(image_only=True, ensure_channel_first=True)(str(path))
        if window is None:  # MRI: per-volume min-max scaling
            cube = ScaleIntensity(minv=0.0, maxv=1.0)(volume)
        else:  # CT: clip the window (default -1000 .. 1000 HU), then scale to [0, 1]
            lo, hi = (float(v) for v in window)
            cube = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)(volume)
        cube = np.asarray(cube, dtype=np.float32)
    else:
        raise ValueError(
            f"show-corruptions: unsupported file '{image}'; give a .npy cube or a volume ({', '.join(VOLUME_SUFFIXES)})."
        )
    from monai.transforms import ResizeWithPadOrCrop

    return np.asarray(ResizeWithPadOrCrop(CUBE_SIZE)(cube), dtype=np.float32)


def _panels(cube: np.ndarray, seed: int) -> list:
    """(title, corrupted cube) for the original, each step alone and the full pipeline."""
    from monai_genesis.transforms import (
        RandGenesisCorruptiond,
        RandGenesisFlip,
        RandInPainting,
        RandLocalPixelShuffle,
        RandNonLinearIntensity,
        RandOutPainting,
    )

    steps = [
        ("flip", RandGenesisFlip(continue_prob=1.0)),
        ("local pixel shuffling", RandLocalPixelShuffle(prob=1.0)),
        ("non-linear intensity", RandNonLinearIntensity(prob=1.0)),
        ("in-painting", RandInPainting(prob=1.0)),
        ("out-painting", RandOutPainting(prob=1.0)),
    ]
    panels = [("original", cube)]
    for title, step in steps:
        step.set_random_state(seed)
        out = step(cube)
        if isinstance(step, RandNonLinearIntensity):
            title += " (inverted)" if step.inverted else " (monotone)"
        panels.append((title, out))
    pair = RandGenesisCorruptiond("image").set_random_state(seed)({"image": cube})
    panels += [("full pipeline: input", pair["image"]), ("full pipeline: target", pair["target"])]
    return panels


def show_corruptions(
    image: str | None = None,
    output: str = "genesis_corruptions.png",
    seed: int = 0,
    key_slice: int | None = None,
    window=(-1000, 1000),
) -> None:
    """
    Write a PNG gallery of the Models Genesis corruptions (Zhou et al., MICCAI 2019) on one cube.

    Shows the mid axial slice of the original, of each corruption alone (flip, local pixel shuffling,
    non-linear intensity, in-painting, out-painting) and of the full pipeline's input and target.

    Args:
        image: a NIfTI/MetaImage volume (windowed with ScaleIntensityRange, then centre-cropped or
            padded to 64 x 64 x 32) or a .npy cube in [0, 1]; None: a built-in synthetic cube.
        output: PNG file to write. Defaults to "genesis_corruptions.png".
        seed: seed of every corruption. Defaults to 0.
        key_slice: axial slice to show; defaults to the middle one.
        window: (low, high) intensity window of a volume, e.g. (-1000, 1000) HU for CT; None scales
            each volume by its own min and max (MRI).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cube = synthetic_cube(seed) if image is None else _load(image, window)
    depth = cube.shape[-1]
    index = depth // 2 if key_slice is None else int(key_slice)
    if not 0 <= index < depth:
        raise ValueError(f"show-corruptions: key_slice must lie in 0 .. {depth - 1}, got {key_slice}.")
    panels = _panels(cube, int(seed))
    figure, axes = plt.subplots(2, 4, figsize=(12, 6.6))
    for axis, (title, volume) in zip(axes.ravel(), panels):
        axis.imshow(np.asarray(volume)[0, :, :, index].T, cmap="gray", vmin=0, vmax=1, origin="lower")
        axis.set_title(title, fontsize=10)
        axis.axis("off")
    source = "synthetic cube" if image is None else os.path.basename(str(image))
    figure.suptitle(f"Models Genesis corruptions - {source}, slice {index}, seed {seed}")
    figure.tight_layout()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    print(f"wrote {out}")
