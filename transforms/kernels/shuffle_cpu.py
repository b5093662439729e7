"""Compiled (numba) local pixel shuffling of one cube on the CPU (``docs/method.md`` §2.2).

The rule is sequential by nature: each box permutes voxels of the *unshuffled* input and later
boxes overwrite earlier ones, so the kernel runs it as a loop. The plan is the number of boxes,
the largest side per axis and a 64-bit seed; every random number comes from a SplitMix64 stream
started at the seed, as unbiased bounded integers (Lemire's method): per box its sides (uniform in
1 .. largest side), its corner (uniform over the places where it fits), then a Fisher-Yates
permutation of its voxels.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numba
import numpy as np

__all__ = ["source_map", "gather"]

# Offset lists of every box shape are kept while they hold at most this many entries
# (2,646 for boxes up to 6 x 6 x 3); larger boxes build each box's list in the kernel instead.
_MAX_TABLE_ENTRIES = 1 << 20

_U = np.uint64  # array indices go through _U: unsigned indices skip numba's negative-index fix-up
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)
_TWO32 = np.uint64(0x100000000)


@numba.njit(cache=True, nogil=True)
def _next(state):  # pragma: no cover - compiled; SplitMix64: (new state, 64 random bits)
    state += _GOLDEN
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return state, z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _bounded(state, spare, have_spare, bound):  # pragma: no cover - compiled
    """A uniform integer in [0, bound) (bound < 2**32); each 64-bit draw serves two 32-bit words."""
    if have_spare:
        r, have_spare = spare, False
    else:
        state, z = _next(state)
        r, spare, have_spare = z >> np.uint64(32), z & _LOW32, True
    m = r * bound  # Lemire: the high 32 bits of m are uniform in [0, bound) ...
    if (m & _LOW32) < bound:  # ... once the rare values that would bias them are redrawn
        threshold = (_TWO32 - bound) % bound
        while (m & _LOW32) < threshold:
            state, z = _next(state)
            m = (z >> np.uint64(32)) * bound
    return state, spare, have_spare, m >> np.uint64(32)


@numba.njit(cache=True, nogil=True)
def _box_offsets(s0, s1, mx, my, mz):  # pragma: no cover - compiled
    """Flat offsets (C order) of every box shape up to mx x my x mz, and where each shape's list starts."""
    start = np.empty(mx * my * mz, np.int64)
    total = 0
    for shape_id in range(mx * my * mz):
        total += (shape_id // (my * mz) + 1) * ((shape_id // mz) % my + 1) * (shape_id % mz + 1)
    offsets = np.empty(total, np.int32)
    c = 0
    for shape_id in range(mx * my * mz):
        start[_U(shape_id)] = c
        for i in range(shape_id // (my * mz) + 1):
            for j in range((shape_id // mz) % my + 1):
                for k in range(shape_id % mz + 1):
                    offsets[_U(c)] = i * s0 + j * s1 + k
                    c += 1
    return start, offsets


@numba.njit(cache=True, nogil=True)
def _fill_box_offsets(shape_id, s0, s1, my, mz, dst, pool):  # pragma: no cover - compiled
    """The flat offsets (C order) of one box shape into dst and pool (kept out of the hot loop)."""
    c = 0
    for i in range(shape_id // (my * mz) + 1):
        for j in range((shape_id // mz) % my + 1):
            for k in range(shape_id % mz + 1):
                dst[_U(c)] = i * s0 + j * s1 + k
                pool[_U(c)] = i * s0 + j * s1 + k
                c += 1


@numba.njit(cache=True, nogil=True)
def _shuffle(shape, max_block, num_boxes, seed, start, offsets, src_of):  # pragma: no cover - compiled
    """Write into src_of (flat, -1 filled) the source voxel each voxel shows after ``num_boxes`` boxes.

    start/offsets: the tables of :func:`_box_offsets`; with start empty, offsets is scratch space of
    at least max_block's product (0 read as 1) entries where each box's offsets are built in turn.
    """
    h, w, d = shape[0], shape[1], shape[2]
    s0, s1 = w * d, d
    mx, my, mz = max(max_block[0], 1), max(max_block[1], 1), max(max_block[2], 1)
    tables = start.size > 0
    dst = offsets
    # One working copy of the offset lists serves every box: Fisher-Yates ends in a uniform order
    # whatever order it starts from, so a box that starts from the order an earlier box of its
    # shape left is still uniformly permuted, and independently of that earlier box.
    pool = offsets.copy()
    bases = np.empty(num_boxes, np.int32)
    shape_ids = np.empty(num_boxes, np.int32)
    firsts = np.empty(num_boxes, np.int32)
    lasts = np.empty(num_boxes, np.int32)
    state = np.uint64(seed)
    spare, have_spare = np.uint64(0), False
    for b in range(num_boxes):
        state, spare, have_spare, rx = _bounded(state, spare, have_spare, np.uint64(mx))
        state, spare, have_spare, ry = _bounded(state, spare, have_spare, np.uint64(my))
        state, spare, have_spare, rz = _bounded(state, spare, have_spare, np.uint64(mz))
        bx, by, bz = int(rx) + 1, int(ry) + 1, int(rz) + 1
        state, spare, have_spare, cx = _bounded(state, spare, have_spare, np.uint64(h - bx + 1))
        state, spare, have_spare, cy = _bounded(state, spare, have_spare, np.uint64(w - by + 1))
        state, spare, have_spare, cz = _bounded(state, spare, have_spare, np.uint64(d - bz + 1))
        bases[_U(b)] = int(cx) * s0 + int(cy) * s1 + int(cz)
        shape_id = ((bx - 1) * my + by - 1) * mz + bz - 1
        shape_ids[_U(b)] = shape_id
        t0 = start[_U(shape_id)] if tables else 0
        firsts[_U(b)] = t0
        lasts[_U(b)] = t0 + bx * by * bz - 1
    for b in range(num_boxes):
        base = bases[_U(b)]
        t0 = firsts[_U(b)]
        if not tables:
            _fill_box_offsets(shape_ids[_U(b)], s0, s1, my, mz, dst, pool)
        # Fisher-Yates from the top: slot i takes a uniform pick among slots t0 .. i; box voxel
        # dst[i] then shows pool[i] (at the end slot t0 holds the last one left).
        for i in range(lasts[_U(b)], t0, -1):
            state, spare, have_spare, r = _bounded(state, spare, have_spare, np.uint64(i - t0 + 1))
            pick = _U(t0) + r
            o = pool[pick]
            pool[pick] = pool[_U(i)]
            pool[_U(i)] = o
            src_of[_U(base + dst[_U(i)])] = base + o
        src_of[_U(base + dst[_U(t0)])] = base + pool[_U(t0)]


@numba.njit(cache=True, nogil=True)
def _gather(flat, src_of, out):  # pragma: no cover - compiled; out[:, n] = flat[:, src_of[n]] where covered
    for c in range(flat.shape[0]):
        for n in range(flat.shape[1]):
            s = src_of[_U(n)]
            out[_U(c), _U(n)] = flat[_U(c), _U(s if s >= 0 else n)]


@lru_cache(maxsize=8)
def _cached_offsets(s0: int, s1: int, sides: tuple):
    return _box_offsets(s0, s1, *sides)


def _offset_tables(shape: tuple, max_block: tuple):
    """``(start, offsets)`` of every box shape, cached per cube shape; too large: scratch offsets for one box."""
    sides = tuple(max(m, 1) for m in max_block)
    if math.prod(m * (m + 1) // 2 for m in sides) > _MAX_TABLE_ENTRIES:
        return np.zeros(0, np.int64), np.empty(math.prod(sides), np.int32)
    return _cached_offsets(shape[1] * shape[2], shape[2], sides)


def source_map(spatial_shape, max_block, num_boxes: int, seed: int) -> np.ndarray:
    """Flat int32 array: the source voxel each voxel shows after one plan's boxes, -1 where none covers it.

    Args:
        spatial_shape: (H, W, D) of the cube.
        max_block: largest box side per axis (0 read as 1), each at most the cube's side.
        num_boxes: number of boxes.
        seed: start of the random stream, an integer in [0, 2**64).
    """
    shape = tuple(int(s) for s in spatial_shape)
    max_block = tuple(int(m) for m in max_block)
    # The kernel indexes without bounds checks: boxes must fit inside the cube.
    if len(shape) != 3 or len(max_block) != 3 or min(shape) < 1 or math.prod(shape) >= 2**31:
        raise ValueError(f"spatial_shape must be 3 positive sides under 2**31 voxels in all, got {shape}.")
    if any(not 0 <= m <= s for m, s in zip(max_block, shape)):
        raise ValueError(f"max_block {max_block} must lie in 0 .. {shape} per axis.")
    src_of = np.full(math.prod(shape), -1, np.int32)
    start, offsets = _offset_tables(shape, max_block)
    _shuffle(_shape_array(shape), _shape_array(max_block), int(num_boxes), np.uint64(seed), start, offsets, src_of)
    return src_of


@lru_cache(maxsize=32)
def _shape_array(values: tuple) -> np.ndarray:
    return np.array(values, np.int64)


_SAME_WIDTH = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def gather(data: np.ndarray, src_of: np.ndarray) -> np.ndarray:
    """A shuffled copy of the channel-first array ``data`` given its :func:`source_map` (any dtype of 1-8 bytes)."""
    flat = np.ascontiguousarray(data).reshape(data.shape[0], -1)
    if flat.dtype.itemsize not in _SAME_WIDTH:  # e.g. complex: numpy's gather
        return flat[:, np.where(src_of >= 0, src_of, np.arange(src_of.size))].reshape(data.shape)
    bits = flat.view(_SAME_WIDTH[flat.dtype.itemsize])  # moving values only: an integer view serves every dtype
    out = np.empty_like(bits)
    _gather(bits, src_of, out)
    return out.view(data.dtype).reshape(data.shape)
