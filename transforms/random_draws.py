"""Bulk random draws: counter-based uniform noise, a keyed hash of each value's index (key drawn from ``self.R``)."""

from __future__ import annotations

import numpy as np

from . import noise_compiled

__all__ = ["KEY_WORDS", "MAX_COUNTER", "noise_key", "noise_at", "uniform_noise"]

KEY_WORDS = 3  # 96-bit key: three 32-bit words
MAX_COUNTER = 2**31  # float64 noise spends two 32-bit counters per value
FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def noise_key(words) -> tuple:
    """The key as the kernels take it: a tuple of three ``np.uint32`` (e.g. from ``R.randint(0, 2**32, size=3)``)."""
    words = np.asarray(words)
    if words.shape != (KEY_WORDS,) or words.dtype.kind not in "iu" or words.min() < 0 or words.max() >= 2**32:
        raise ValueError(f"a noise key is {KEY_WORDS} integers in [0, 2**32), got {words!r}.")
    return tuple(np.uint32(w) for w in words)


def _hash(counters: np.ndarray, key: tuple) -> np.ndarray:
    """h(n) = mix(((n + k0) ^ k1) + k2) on uint32 words, mix Wellons' triple32 (``noise_compiled.MIX_STEPS``)."""
    x = counters.astype(np.uint32)
    x += key[0]
    x ^= key[1]
    x += key[2]
    for shift, multiplier in noise_compiled.MIX_STEPS:
        x ^= x >> shift
        x *= np.uint32(multiplier)
    x ^= x >> noise_compiled.MIX_LAST_SHIFT
    return x


def noise_at(key: tuple, counters, dtype=np.float32) -> np.ndarray:
    """
    Uniform [0, 1) noise of ``dtype`` for each counter: k / 2**m with m the dtype's mantissa bits + 1.

    k is the top m bits of h(n) = mix(((n + k0) ^ k1) + k2) (float64: 27 bits of h(2n), 26 of
    h(2n + 1)), in 32-bit words, mix Wellons' triple32, a bijective hash with near-ideal avalanche:
    the noise is a pure function of index and key (counter-based, as Random123's generators). Every
    value is exactly representable, so none rounds up to 1.0. ``noise_compiled`` computes the same
    values.

    Args:
        key: from :func:`noise_key`.
        counters: integer array of indices in [0, MAX_COUNTER).
        dtype: float16, float32 or float64.
    """
    dtype = np.dtype(dtype)
    counters = np.asarray(counters)
    if dtype not in FLOATS:
        raise ValueError(f"noise dtype must be float16, float32 or float64, got {dtype}.")
    if counters.size and (counters.min() < 0 or counters.max() >= MAX_COUNTER):
        raise ValueError(f"noise counters must lie in [0, 2**31), got [{counters.min()}, {counters.max()}].")
    if dtype == np.float64:
        high = (_hash(2 * counters, key) >> 5).astype(np.float64)
        low = (_hash(2 * counters + 1, key) >> 6).astype(np.float64)
        return (high * 2.0**26 + low) * 2.0**-53
    bits = np.finfo(dtype).nmant + 1
    values = (_hash(counters, key) >> (32 - bits)).astype(np.float32)
    values *= np.float32(2.0**-bits)
    return values.astype(dtype, copy=False)


def uniform_noise(key: tuple, shape, dtype=np.float32) -> np.ndarray:
    """Noise of ``shape`` whose value at flat position n is ``noise_at(key, n)`` (compiled when numba is present)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    if dtype not in FLOATS:
        raise ValueError(f"noise dtype must be float16, float32 or float64, got {dtype}.")
    if size > MAX_COUNTER:
        raise ValueError(f"uniform_noise draws at most 2**31 values, got shape {tuple(shape)}.")
    if noise_compiled.AVAILABLE:
        out = np.empty(shape, dtype)
        noise_compiled.fill(out, key)
        return out
    return noise_at(key, np.arange(size), dtype).reshape(shape)
