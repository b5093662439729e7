"""Random number helpers: bulk draws seeded from a MONAI transform's ``self.R``."""

from __future__ import annotations

import numpy as np

__all__ = ["spawn_generator", "uniform_noise"]


def spawn_generator(state: np.random.RandomState) -> np.random.Generator:
    """
    A fast numpy Generator seeded from ``state`` (a transform's ``self.R``).

    Bulk draws (noise volumes, shuffle keys) come from it, so ``set_random_state`` still makes every
    draw reproducible while the per-voxel numbers are made by PCG64 rather than the slower MT19937.
    """
    return np.random.Generator(np.random.PCG64(state.randint(0, 2**32, size=4, dtype=np.uint64)))


def uniform_noise(rng: np.random.Generator, shape, dtype=np.float32) -> np.ndarray:
    """
    Uniform noise in [0, 1) of ``dtype``: k / 2**m with k uniform, m the dtype's mantissa bits + 1.

    Every value is exactly representable, so none rounds up to 1.0 (as a float64 draw cast to
    float32 or float16 can).
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    bits = np.finfo(dtype).nmant + 1
    if bits <= 32:
        raw = rng.bit_generator.random_raw(-(-size // 2)).view(np.uint32)[:size]
        values = (raw >> np.uint32(32 - bits)).astype(np.float32 if bits <= 24 else np.float64)
    else:
        values = (rng.bit_generator.random_raw(size) >> np.uint64(64 - bits)).astype(np.float64)
    values *= values.dtype.type(2.0**-bits)
    return values.astype(dtype, copy=False).reshape(shape)
