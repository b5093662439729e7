"""Random lung cubes from one CT volume, the pretraining data of Models Genesis (docs/method.md §3.1).

Zhou et al., "Models Genesis", MedIA 2021; reference: ``infinite_generator_3D.py`` of MrGiovanni/ModelsGenesis.
The reference scores every crop with four nested Python loops; here the same rule runs as a few
whole-array comparisons per crop, on the raw Hounsfield units of the crop only (the volume is never
copied, clipped or rescaled as a whole: only kept cubes are).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "VolumeTooSmallError",
    "crop_start_ranges",
    "lung_crop_score",
    "is_lung_crop",
    "extract_cubes",
]


class VolumeTooSmallError(ValueError):
    """The volume cannot hold a crop inside the margins; ``reason`` is "too small" or "too few slices"."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def _triple(value, name: str, minimum: int) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in value)
    except TypeError:
        raise ValueError(f"{name}: expected three integers, got {value!r}.") from None
    if len(values) != 3 or any(v != float(o) for v, o in zip(values, value)):
        raise ValueError(f"{name}: expected three integers, got {value!r}.")
    if any(v < minimum for v in values):
        raise ValueError(f"{name}: every value must be >= {minimum}, got {values}.")
    return values


def crop_start_ranges(
    shape: Sequence[int],
    cube_size: Sequence[int] = (64, 64, 32),
    margins: Sequence[int] = (100, 100, 30),
    lookahead: int = 2,
) -> list[tuple[int, int]]:
    """Inclusive (low, high) range of a crop's corner along each axis, as the reference draws it.

    The crop is ``cube_size`` plus ``lookahead + 1`` slices; the reference keeps one more voxel
    clear of the far border than of the near one (``randint(m, n - size - 1 - m)``).

    Args:
        shape: volume shape (X, Y, Z).
        cube_size: kept cube size (H, W, D); default 64x64x32.
        margins: voxels to keep clear of each border (in-plane, in-plane, axial); default (100, 100, 30).
        lookahead: slices the lung filter looks ahead; the crop holds D + lookahead + 1 slices.

    Raises:
        VolumeTooSmallError: the volume is too small in-plane ("too small") or axially ("too few slices").
    """
    cube_size = _triple(cube_size, "cube_size", 1)
    margins = _triple(margins, "margins", 0)
    crop = (cube_size[0], cube_size[1], cube_size[2] + lookahead + 1)
    ranges = []
    for axis, (n, size, margin) in enumerate(zip(shape, crop, margins)):
        low, high = margin, n - size - 1 - margin
        if high < low:
            reason = "too few slices" if axis == 2 else "too small"
            raise VolumeTooSmallError(
                f"{reason}: axis {axis} has {n} voxels but a crop of {size} with margins of {margin} "
                f"needs at least {size + 1 + 2 * margin} (volume shape {tuple(shape)}; lower `margins` "
                "for small volumes).",
                reason,
            )
        ranges.append((low, high))
    return ranges


def lung_crop_score(crops_hu, depth: int | None = None, lookahead: int = 2, threshold_hu: float = -150.0):
    """Lung filter score of crops: the sum over voxels of ``1 - k / lookahead`` (Models Genesis, section 3).

    For every voxel of the first ``depth`` slices, k is the offset (0..lookahead) of the first slice,
    looking at the voxel and the next ``lookahead`` slices, at or above ``threshold_hu``; k is
    ``lookahead`` when there is none. High scores mean tissue, low scores lung/air.

    Args:
        crops_hu: array of shape (..., H, W, D + lookahead + 1) in HU (only D + lookahead - 1 slices are read).
        depth: slices scored, D; default: the crop's depth minus ``lookahead + 1``.
        lookahead: slices looked ahead (2 in the reference, i.e. a window of 3).
        threshold_hu: tissue threshold in HU (-150).

    Returns:
        float64 scores of shape crops_hu.shape[:-3] (a Python float for one 3D crop).
    """
    crops = np.asarray(crops_hu)
    if crops.ndim < 3:
        raise ValueError(f"crops_hu: expected (..., H, W, D) crops, got shape {crops.shape}.")
    if depth is None:
        depth = crops.shape[-1] - lookahead - 1
    if depth < 1 or lookahead < 1 or crops.shape[-1] < depth + lookahead - 1:
        raise ValueError(
            f"crops_hu: {crops.shape[-1]} slices cannot score depth={depth} with lookahead={lookahead}."
        )
    # Vectorised over voxels: one boolean slab per look-ahead offset instead of a per-voxel loop.
    # Only offsets below `lookahead` can raise the score; k = lookahead scores 0 either way.
    tissue = crops[..., :depth] >= threshold_hu
    score = _count(tissue)
    unresolved = ~tissue
    for k in range(1, lookahead):
        tissue = crops[..., k : k + depth] >= threshold_hu
        tissue &= unresolved  # first tissue voxel at offset k
        score = score + (1.0 - k / lookahead) * _count(tissue)
        unresolved &= ~tissue
    return score


def _count(mask: np.ndarray):
    """Number of True voxels per crop (the last three axes), as float64."""
    if mask.ndim == 3:
        return float(np.count_nonzero(mask))
    return np.count_nonzero(mask.reshape(mask.shape[:-3] + (-1,)), axis=-1).astype(np.float64)


def is_lung_crop(crop_hu, depth: int, lookahead: int = 2, threshold_hu: float = -150.0, max_tissue_fraction=0.15):
    """True when a crop passes the lung filter: score <= ``max_tissue_fraction`` x H x W x depth."""
    crop = np.asarray(crop_hu)
    limit = max_tissue_fraction * crop.shape[-3] * crop.shape[-2] * depth
    return bool(lung_crop_score(crop, depth, lookahead, threshold_hu) <= limit)


def _as_volume(volume_hu) -> np.ndarray:
    if isinstance(volume_hu, torch.Tensor):
        volume_hu = volume_hu.detach().cpu().numpy()
    volume = np.asarray(volume_hu)
    if volume.ndim == 4 and volume.shape[0] == 1:  # channel-first (1, X, Y, Z)
        volume = volume[0]
    if volume.ndim != 3:
        raise ValueError(f"volume_hu: expected a 3D (X, Y, Z) or (1, X, Y, Z) array, got shape {volume.shape}.")
    if not (np.issubdtype(volume.dtype, np.integer) or np.issubdtype(volume.dtype, np.floating)):
        raise ValueError(f"volume_hu: expected a numeric array, got dtype {volume.dtype}.")
    return volume


def extract_cubes(
    volume_hu,
    num_cubes: int = 32,
    cube_size: Sequence[int] = (64, 64, 32),
    seed: int | np.random.Generator | None = None,
    margins: Sequence[int] = (100, 100, 30),
    hu_window: Sequence[float] = (-1000.0, 1000.0),
    threshold_hu: float = -150.0,
    max_tissue_fraction: float = 0.15,
    lookahead: int = 2,
    max_draws_per_cube: int = 50,
) -> np.ndarray:
    """Draw up to ``num_cubes`` mostly-lung cubes from a CT volume, clipped and scaled to [0, 1].

    Models Genesis cube extraction (docs/method.md §3.1): random crops of
    H x W x (D + lookahead + 1) kept clear of the borders by ``margins``; a crop is kept when its
    :func:`lung_crop_score` is at most ``max_tissue_fraction`` x H x W x D; its first D slices are
    clipped to ``hu_window`` and scaled to [0, 1]. Gives up after ``max_draws_per_cube`` x ``num_cubes`` draws.

    Args:
        volume_hu: (X, Y, Z) or (1, X, Y, Z) array/tensor in Hounsfield units, any numeric dtype.
        num_cubes: the most cubes to keep ("scale" in the reference); default 32.
        cube_size: (H, W, D) of a cube; default (64, 64, 32).
        seed: int, ``np.random.Generator`` or None (fresh entropy).
        margins: voxels kept clear of the borders (x, y, z); default (100, 100, 30). Lower them for
            small volumes such as demo phantoms.
        hu_window: (low, high) HU clipping window mapped to [0, 1]; default (-1000, 1000).
        threshold_hu: tissue threshold of the lung filter; default -150.
        max_tissue_fraction: largest accepted score per voxel; default 0.15.
        lookahead: slices the filter looks ahead; default 2.
        max_draws_per_cube: draws allowed per requested cube before giving up; default 50.

    Returns:
        float32 array (N, H, W, D) with values in [0, 1], N <= num_cubes (N = 0 when no crop passes).

    Raises:
        VolumeTooSmallError: the crop and margins do not fit in the volume (``reason`` says which axis).
        ValueError: bad arguments, or non-finite values in ``volume_hu``.
    """
    volume = _as_volume(volume_hu)
    if int(num_cubes) != num_cubes or num_cubes < 1:
        raise ValueError(f"num_cubes: expected a positive integer, got {num_cubes!r}.")
    low_hu, high_hu = (float(v) for v in hu_window)
    if not high_hu > low_hu:
        raise ValueError(f"hu_window: expected (low, high) with low < high, got {tuple(hu_window)}.")
    if not 0.0 <= max_tissue_fraction <= 1.0:
        raise ValueError(f"max_tissue_fraction: expected a value in [0, 1], got {max_tissue_fraction}.")
    if int(lookahead) != lookahead or lookahead < 1:
        raise ValueError(f"lookahead: expected an integer >= 1, got {lookahead!r}.")
    if max_draws_per_cube < 1:
        raise ValueError(f"max_draws_per_cube: expected >= 1, got {max_draws_per_cube}.")
    height, width, depth = _triple(cube_size, "cube_size", 1)
    ranges = crop_start_ranges(volume.shape, (height, width, depth), margins, lookahead)
    if np.issubdtype(volume.dtype, np.floating) and not np.isfinite(volume).all():
        raise ValueError("volume_hu: contains NaN or infinite values.")

    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    num_cubes = int(num_cubes)
    crop_depth = depth + lookahead + 1
    limit = max_tissue_fraction * height * width * depth
    cubes = np.empty((num_cubes, height, width, depth), dtype=np.float32)
    kept = 0
    for _ in range(max_draws_per_cube * num_cubes):
        x, y, z = (int(rng.integers(low, high + 1)) for low, high in ranges)
        crop = volume[x : x + height, y : y + width, z : z + crop_depth]
        if lung_crop_score(crop, depth, lookahead, threshold_hu) > limit:
            continue
        cube = cubes[kept]
        cube[...] = crop[..., :depth]
        np.clip(cube, low_hu, high_hu, out=cube)
        cube -= low_hu
        cube /= high_hu - low_hu
        kept += 1
        if kept == num_cubes:
            break
    return cubes[:kept]
