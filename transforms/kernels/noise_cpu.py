"""Compiled (numba) painting noise on the CPU (``docs/method.md`` §2.4, §2.5): uniform [0, 1) values
hashed from each voxel's flat index and a 96-bit key.

A counter-based draw (as in Random123, Salmon et al., SC 2011) is a pure function of the index, so
the fill loop vectorises and writes floats straight into the output, and the torch form
(``noise_torch``) computes the same values on any device. The value at counter n:
h(n) = mix(((n + k0) ^ k1) + k2) on 32-bit words, mix Chris Wellons' "triple32" (a bijection with
near-ideal avalanche); float32 is the top 24 bits of h(n) / 2**24, float16 the top 11 / 2**11,
float64 27 bits of h(2n) and 26 of h(2n + 1) / 2**53. Every value is exact, so none rounds up to 1.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic, overload

__all__ = ["MIX_STEPS", "MIX_LAST_SHIFT", "fill", "inpaint", "outpaint"]

# triple32: x ^= x >> shift, then x *= multiplier, three times, then a last xorshift.
MIX_STEPS = ((17, 0xED5AD4BB), (11, 0xAC4C1B51), (15, 0x31848BAB))
MIX_LAST_SHIFT = 14

_U = np.uint32
(_S1, _M1), (_S2, _M2), (_S3, _M3) = ((_U(s), _U(m)) for s, m in MIX_STEPS)
_S4 = _U(MIX_LAST_SHIFT)


# numba widens uint32 arithmetic to 64 bits: every step is cut back to 32 bits explicitly,
# which also lets LLVM vectorise the loops in 32-bit lanes.
@numba.njit(cache=True, nogil=True)
def _mix(x):  # pragma: no cover - compiled
    x = _U(_U(x ^ (x >> _S1)) * _M1)
    x = _U(_U(x ^ (x >> _S2)) * _M2)
    x = _U(_U(x ^ (x >> _S3)) * _M3)
    return _U(x ^ (x >> _S4))


@numba.njit(cache=True, nogil=True)
def _hash(n, key):  # pragma: no cover - compiled
    return _mix(_U(_U(_U(_U(n) + key[0]) ^ key[1]) + key[2]))


@intrinsic
def _float32_bits(typingctx, value):  # pragma: no cover - compiled; the bits of a float32
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.uint32))

    return types.uint32(types.float32), codegen


@numba.njit(cache=True, nogil=True)
def _half_bits(k):  # pragma: no cover - compiled
    # float16 bits of k / 2**11 (k < 2**11, exact; numba has no float16): a nonzero value is
    # normal in both formats, so the float32 bits shift down and re-bias (127 - 15) << 10.
    bits = _float32_bits(np.float32(np.int32(k)) * np.float32(2.0**-11))
    return np.uint16(_U((bits >> _U(13)) - _U(112 << 10)) if k else 0)


def _store_noise(out, index, n, key):  # pragma: no cover - typed by the overload below
    raise NotImplementedError


@overload(_store_noise)
def _store_noise_typed(out, index, n, key):  # pragma: no cover - compiled
    """Write the noise of counter ``n`` at ``out[index]``: float32, float64, or float16 bits (uint16)."""
    if out.dtype == types.float32:

        def store(out, index, n, key):
            out[index] = np.float32(np.int32(_hash(n, key) >> _U(8))) * np.float32(2.0**-24)

    elif out.dtype == types.float64:

        def store(out, index, n, key):
            even = np.uint64(n) * np.uint64(2)
            high = np.float64(np.int32(_hash(even, key) >> _U(5)))
            low = np.float64(np.int32(_hash(even + np.uint64(1), key) >> _U(6)))
            out[index] = (high * 67108864.0 + low) * 2.0**-53

    elif out.dtype == types.uint16:

        def store(out, index, n, key):
            out[index] = _half_bits(_hash(n, key) >> _U(21))

    else:
        return None
    return store


@numba.njit(cache=True, nogil=True)
def _fill(flat, start, stop, key):  # pragma: no cover - compiled
    # an unsigned index spares the negative-index wraparound, which kept LLVM from vectorising
    for n in range(np.uint64(start), np.uint64(stop)):
        _store_noise(flat, n, n, key)


@numba.njit(cache=True, nogil=True)
def _copy(source, target, start, stop):  # pragma: no cover - compiled
    for n in range(np.uint64(start), np.uint64(stop)):
        target[n] = source[n]


@numba.njit(cache=True, nogil=True)
def _outpaint(data, out, blocks, key):  # pragma: no cover - compiled
    # Noise everywhere in one flat loop (long runs keep the SIMD body busy), then the kept blocks' rows.
    channels, height, width, depth = out.shape
    source, flat = data.reshape(-1), out.reshape(-1)
    _fill(flat, 0, flat.size, key)
    for b in range(blocks.shape[0]):
        x0, y0, z0, sx, sy, sz = blocks[b, 0], blocks[b, 1], blocks[b, 2], blocks[b, 3], blocks[b, 4], blocks[b, 5]
        for c in range(channels):
            for x in range(x0, x0 + sx):
                start = ((c * height + x) * width + y0) * depth + z0
                for _ in range(sy):
                    _copy(source, flat, start, start + sz)
                    start += depth


@numba.njit(cache=True, nogil=True)
def _inpaint(out, blocks, key):  # pragma: no cover - compiled
    # Channel 0's flat index is the spatial flat index, the counter of the noise all channels share.
    channels, height, width, depth = out.shape
    flat, volume = out.reshape(-1), height * width * depth
    for b in range(blocks.shape[0]):
        x0, y0, z0, sx, sy, sz = blocks[b, 0], blocks[b, 1], blocks[b, 2], blocks[b, 3], blocks[b, 4], blocks[b, 5]
        for x in range(x0, x0 + sx):
            start = (x * width + y0) * depth + z0
            for _ in range(sy):
                _fill(flat, start, start + sz, key)
                for c in range(1, channels):
                    _copy(flat, flat[c * volume :], start, start + sz)
                start += depth


def _kernel_view(array: np.ndarray) -> np.ndarray:
    """float16 arrays as their uint16 bits (numba has no float16); float32/float64 as they are."""
    return array.view(np.uint16) if array.dtype == np.float16 else array


def fill(out: np.ndarray, key: tuple) -> None:
    """Write the noise of counter n at flat position n of the C-contiguous float16/32/64 ``out``."""
    flat = _kernel_view(out).reshape(-1)
    _fill(flat, 0, flat.size, key)


def outpaint(data: np.ndarray, blocks: np.ndarray, key: tuple) -> np.ndarray:
    """
    A new array: ``data`` inside the kept blocks, the noise of the flat index elsewhere.

    Args:
        data: (C, H, W, D) float16/32/64 array.
        blocks: int64 (n, 6) rows (corner x, y, z, size x, y, z), inside the cube.
        key: three ``np.uint32`` words.
    """
    data = np.ascontiguousarray(data)
    out = np.empty_like(data)
    _outpaint(_kernel_view(data), _kernel_view(out), blocks, key)
    return out


def inpaint(data: np.ndarray, blocks: np.ndarray, key: tuple) -> np.ndarray:
    """A copy of the (C, H, W, D) float16/32/64 ``data`` whose blocks (as in :func:`outpaint`) hold the noise of the spatial index in every channel."""
    out = np.array(data, order="C", copy=True)
    _inpaint(_kernel_view(out), blocks, key)
    return out
