"""Bulk random draws: uniform noise from a numpy Generator (seeded from a transform's ``self.R``)."""

from __future__ import annotations

import numpy as np

__all__ = ["uniform_noise"]


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
