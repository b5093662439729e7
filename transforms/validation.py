"""Input checks shared by the Models Genesis transforms: clear errors instead of silent garbage."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .containers import host_array, plain

__all__ = ["check_unit_cube", "check_min_spatial_size", "check_probabilities", "NORMALISE_HINT", "UNIT_RANGE_TOLERANCE"]

# Values this far outside [0, 1] are accepted (float rounding after intensity scaling).
UNIT_RANGE_TOLERANCE = 1e-3

NORMALISE_HINT = (
    "normalise intensities to [0, 1] first: for CT use MONAI ScaleIntensityRange(d)(a_min=-1000, a_max=1000, "
    "b_min=0.0, b_max=1.0, clip=True); for MRI ScaleIntensityRange(d) with the chosen window and clip=True, "
    "or ScaleIntensity(d) for per-volume min-max scaling"
)


def check_unit_cube(img, transform_name: str, check_range: bool = True, tolerance: float = UNIT_RANGE_TOLERANCE):
    """
    Raise a ValueError unless ``img`` is a channel-first 3D image (C, H, W, D) ready for Models Genesis.

    Args:
        img: numpy array or torch tensor (MetaTensor included), any device.
        transform_name: named in the error messages.
        check_range: also require a floating dtype, finite voxels and values in [0, 1]
            (the noise fills and the intensity curve assume normalised data).
        tolerance: accepted overshoot beyond [0, 1].
    """
    if not isinstance(img, (np.ndarray, torch.Tensor)):
        raise ValueError(f"{transform_name} expects a numpy array or torch tensor, got {type(img).__name__}.")
    if img.ndim != 4:
        hint = " (add a channel dimension first, e.g. EnsureChannelFirst)" if img.ndim == 3 else ""
        raise ValueError(
            f"{transform_name} expects a channel-first 3D image (C, H, W, D); got shape {tuple(img.shape)}{hint}."
        )
    if 0 in img.shape:
        raise ValueError(f"{transform_name} got an empty image of shape {tuple(img.shape)}.")
    if not check_range:
        return
    floating = img.dtype.is_floating_point if isinstance(img, torch.Tensor) else np.issubdtype(img.dtype, np.floating)
    if not floating:
        raise ValueError(f"{transform_name} expects a floating-point image in [0, 1], got dtype {img.dtype}; {NORMALISE_HINT}.")
    lo, hi = _value_range(img)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{transform_name} got NaN or infinite voxels; clean the image (e.g. nan_to_num) first.")
    if lo < -tolerance or hi > 1 + tolerance:
        raise ValueError(
            f"{transform_name} expects values in [0, 1] (tolerance {tolerance}), found [{lo:.4g}, {hi:.4g}]; "
            f"{NORMALISE_HINT}."
        )


def _value_range(img) -> tuple[float, float]:
    """(min, max); NaN propagates and inf shows, so the two values cover all three checks."""
    host = host_array(img)  # numpy, or a plain tensor's memory: no MetaTensor dispatch
    if host is not None:
        return float(host.min()), float(host.max())  # numpy's two passes beat torch.aminmax's one on the CPU
    lo, hi = torch.aminmax(plain(img).detach())
    return float(lo), float(hi)


def check_min_spatial_size(spatial_shape: Sequence[int], minimum: int, transform_name: str, rule: str):
    """Raise a ValueError naming ``rule`` when a spatial side is below ``minimum`` voxels."""
    if min(spatial_shape) < minimum:
        raise ValueError(
            f"{transform_name} needs every spatial side >= {minimum} voxels ({rule}); "
            f"got spatial shape {tuple(int(s) for s in spatial_shape)}."
        )


def check_probabilities(**probabilities: float) -> None:
    """Raise a ValueError naming the first argument that is not a probability in [0, 1]."""
    for name, p in probabilities.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {p}.")
