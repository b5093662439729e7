"""`genesis show-corruptions`: a PNG gallery of the Models Genesis corruptions on one cube."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["show_corruptions", "synthetic_cube", "lung_centre"]

CUBE_SIZE = (64, 64, 32)  # the pretraining cube of Models Genesis


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


def _load(image: str, window, center=None, channel=None) -> tuple[np.ndarray, str]:
    """(a (1, 64, 64, 32) cube in [0, 1], where it was cut) from a .npy cube or a volume read by the one loader."""
    path = Path(image)
    if path.name.lower().endswith(".npy"):
        if not path.is_file():
            raise FileNotFoundError(f"{image}: no such file.")
        cube = np.load(path).astype(np.float32)
        cube = cube[None] if cube.ndim == 3 else cube
        if cube.ndim != 4:
            raise ValueError(f"{image}: holds shape {cube.shape}; expected (H, W, D) or (C, H, W, D).")
        if not np.isfinite(cube).all() or cube.min() < 0 or cube.max() > 1:
            raise ValueError(
                f"{image}: must hold finite values in [0, 1] (a normalised cube); "
                "pass a NIfTI/MetaImage volume instead to window it with ScaleIntensityRange."
            )
        from monai.transforms import ResizeWithPadOrCrop

        return np.asarray(ResizeWithPadOrCrop(CUBE_SIZE)(cube), dtype=np.float32), "centre"
    from monai.transforms import ResizeWithPadOrCrop, ScaleIntensityRange

    from monai_genesis.data.io import CANONICAL_AXCODES, check_window, load_volume

    window = _check_window_arg(window)
    volume = load_volume(image, channel=channel, orientation=CANONICAL_AXCODES)  # the axial axis last
    if window is not None:
        check_window(volume, window, name=str(image))
    centre, where = _crop_centre(volume, center, window)
    starts = [int(np.clip(c - s // 2, 0, max(n - s, 0))) for c, s, n in zip(centre, CUBE_SIZE, volume.shape)]
    crop = volume[tuple(slice(b, b + s) for b, s in zip(starts, CUBE_SIZE))][None]
    if window is None:  # MRI: min-max scaling of the whole volume
        low, high = float(volume.min()), float(volume.max())
        crop = ScaleIntensityRange(a_min=low, a_max=max(high, low + 1e-6), b_min=0.0, b_max=1.0, clip=True)(crop)
    else:  # CT: clip the window (default -1000 .. 1000 HU), then scale to [0, 1]
        crop = ScaleIntensityRange(a_min=window[0], a_max=window[1], b_min=0.0, b_max=1.0, clip=True)(crop)
    cube = np.asarray(ResizeWithPadOrCrop(CUBE_SIZE)(np.asarray(crop, dtype=np.float32)), dtype=np.float32)
    return cube, f"{where}, voxel {tuple(int(c) for c in centre)} RAS"


def _check_window_arg(window):
    if window is None:
        return None
    if isinstance(window, str):
        window = [v for v in window.split(",") if v.strip()]
    try:
        low, high = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"--window: expected low,high such as -1000,1000, got {window!r}.") from None
    if not low < high:
        raise ValueError(f"--window: low must be below high, got {low:g},{high:g} (did you mean {high:g},{low:g}?).")
    return low, high


def _crop_centre(volume, center, window) -> tuple[tuple[int, int, int], str]:
    """The crop centre in canonical voxels: ``center`` if given, else inside the lungs of a CT, else the middle."""
    from monai_genesis.data.io import voxel_to_world, world_to_voxel

    shape = volume.shape
    if center is None:
        lung = lung_centre(np.asarray(volume.as_tensor())) if window is not None else None
        if lung is not None:
            return lung, "inside the lung mask"
        return tuple(n // 2 for n in shape), "centre"
    text = ",".join(str(v) for v in center) if isinstance(center, (tuple, list)) else str(center)
    world = text.strip().lower().endswith("mm")
    try:
        values = [float(v) for v in text.strip().lower().removesuffix("mm").split(",") if v.strip()]
    except ValueError:
        values = []
    if len(values) != 3:
        raise ValueError(f"--center: expected x,y,z voxel indices or x,y,z mm (RAS world), got {center!r}.")
    if world:  # RAS millimetres
        index = world_to_voxel(values, volume)
    else:  # voxel indices of the file as stored, before reorientation
        original = volume.meta.get("original_affine", volume.affine)
        index = world_to_voxel(voxel_to_world(values, original), volume)
    index = np.rint(index).astype(int)
    if np.any(index < 0) or np.any(index >= np.array(shape)):
        unit = "mm" if world else "voxels"
        raise ValueError(f"--center {text}: outside the volume ({unit}; the volume is {tuple(shape)} voxels).")
    return tuple(int(i) for i in index), "--center"


def lung_centre(volume_hu: np.ndarray, air_hu: float = -400.0) -> tuple[int, int, int] | None:
    """A voxel inside the largest lung-like region of a CT in HU (air not connected to the border), or None.

    ``volume_hu`` is in the canonical orientation (axial axis last). Air connected to the in-plane
    borders of the volume is outside the body; the largest remaining air region is
    a lung. Returns its voxel nearest to its centroid (the centroid of both lungs is the mediastinum),
    or None when no such region holds 0.5 % of the volume (not a chest CT).
    """
    from scipy import ndimage

    step = max(1, int(round((volume_hu.size / 2_000_000) ** (1 / 3))))  # about 2 M voxels are enough
    air = np.asarray(volume_hu)[::step, ::step, ::step] < air_hu
    labels, count = ndimage.label(air)
    if count == 0:
        return None
    # in-plane borders only (the volume is RAS): lungs often reach the first or last axial slice
    border = np.unique(np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel()]))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    sizes[border] = 0
    largest = int(np.argmax(sizes))
    if sizes[largest] < 0.005 * labels.size:
        return None
    points = np.argwhere(labels == largest)
    nearest = points[np.argmin(((points - points.mean(0)) ** 2).sum(1))]
    return tuple(int(v) * step for v in nearest)


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
    center=None,
    channel: int | None = None,
) -> None:
    """
    Write a PNG gallery of the Models Genesis corruptions (Zhou et al., MICCAI 2019) on one cube.

    Shows the mid axial slice of the original, of each corruption alone (flip, local pixel shuffling,
    non-linear intensity, in-painting, out-painting) and of the full pipeline's input and target.

    Args:
        image: a NIfTI/MetaImage volume or a DICOM series folder (read by ``data.io.load_volume``,
            reoriented to RAS so that the panels are axial, windowed with ScaleIntensityRange, then a
            64 x 64 x 32 crop, padded where the volume is smaller) or a .npy cube in [0, 1]; None: a
            built-in synthetic cube.
        output: PNG file to write. Defaults to "genesis_corruptions.png".
        seed: seed of every corruption. Defaults to 0.
        key_slice: axial slice to show; defaults to the middle one.
        window: (low, high) intensity window of a volume, e.g. (-1000, 1000) HU for CT; None scales
            each volume by its own min and max (MRI). A warning is printed when almost every voxel
            falls outside it, or the values fill under 5 % of it.
        center: the crop centre: "x,y,z" voxel indices of the file as stored, or "x,y,zmm" RAS world
            millimetres (e.g. ``--center=-20,35,-150mm``). Default: with a window, a voxel inside the
            largest lung region when the volume has one (chest CT), else the middle of the volume.
        channel: the channel of a 4D volume (required for one).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cube, where = (synthetic_cube(seed), "") if image is None else _load(image, window, center, channel)
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
    source = "synthetic cube" if image is None else f"{os.path.basename(os.path.normpath(str(image)))} ({where})"
    figure.suptitle(f"Models Genesis corruptions - {source}, slice {index}, seed {seed}")
    figure.tight_layout()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    print(f"wrote {out}")
