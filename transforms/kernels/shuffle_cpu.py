"""Compiled (numba) local pixel shuffling of one cube on the CPU (``docs/method.md`` §2.2).

The rule is sequential by nature: each box permutes voxels of the *unshuffled* input and later
boxes overwrite earlier ones, so the kernel runs it as a loop. The plan is the number of boxes,
the largest side per axis and a 64-bit seed; every random number comes from one SplitMix64 stream
started at the seed, as unbiased bounded integers (Lemire's method): per box its sides (uniform in
1 .. largest side) and its corner (uniform over the places where it fits), then for every box a
Fisher-Yates permutation of its voxels. SplitMix64's k-th output depends only on seed + k, so the
random words of each phase are filled in one vectorisable pass before the loop that uses them:
two 32-bit words per output for the sides and corners, four 16-bit words per output for the
Fisher-Yates steps (a box of more than 2**16 voxels draws 32 bits from the stream per step).
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
_LOW16 = np.uint64(0xFFFF)
_TWO16 = np.uint64(0x10000)
_NARROW_BOX = 1 << 16  # boxes of up to this many voxels are permuted with 16-bit words


@numba.njit(cache=True, nogil=True)
def _next(state):  # pragma: no cover - compiled; SplitMix64: (new state, 64 random bits)
    state += _GOLDEN
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return state, z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _fill(state, words):  # pragma: no cover - compiled; the stream's next words.size outputs, and the new state
    for k in range(words.size):  # output k depends on k alone: one vectorisable pass
        z = state + np.uint64(k + 1) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        words[_U(k)] = z ^ (z >> np.uint64(31))
    return state + np.uint64(words.size) * _GOLDEN


@numba.njit(cache=True, nogil=True)
def _bounded32(word, state, bound):  # pragma: no cover - compiled
    """(new state, uniform in [0, bound)) for bound < 2**32 from a 32-bit ``word``; redraws use the stream."""
    m = np.uint64(word) * bound  # Lemire: the high 32 bits of m are uniform in [0, bound) ...
    if (m & _LOW32) < bound:  # ... once the rare values that would bias them are redrawn
        threshold = (_TWO32 - bound) % bound
        while (m & _LOW32) < threshold:
            state, z = _next(state)
            m = (z >> np.uint64(32)) * bound
    return state, m >> np.uint64(32)


@numba.njit(cache=True, nogil=True)
def _bounded16(word, state, bound):  # pragma: no cover - compiled
    """(new state, uniform in [0, bound)) for bound <= 2**16 from a 16-bit ``word``; redraws use the stream."""
    m = np.uint64(word) * bound  # as _bounded32, on 16 bits
    if (m & _LOW16) < bound:
        threshold = (_TWO16 - bound) % bound
        while (m & _LOW16) < threshold:
            state, z = _next(state)
            m = (z >> np.uint64(48)) * bound
    return state, m >> np.uint64(16)


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
def _permute_boxes(b0, b1, bases, firsts, sizes, offsets, pool, step_words, step, state, src_of):  # pragma: no cover
    """Fisher-Yates of boxes b0 .. b1 - 1 (each of at most 2**16 voxels) into src_of, one 16-bit word per step.

    Slot i takes a uniform pick among slots t0 .. i; box voxel offsets[i] then shows pool[i] (at the
    end slot t0 holds the last one left). Returns the state and the next step word.
    """
    for b in range(b0, b1):
        base, t0, n = bases[_U(b)], firsts[_U(b)], sizes[_U(b)]
        for i in range(t0 + n - 1, t0, -1):
            state, r = _bounded16(step_words[_U(step)], state, np.uint64(i - t0 + 1))
            step += 1
            pick = _U(t0) + r
            o = pool[pick]
            pool[pick] = pool[_U(i)]
            pool[_U(i)] = o
            src_of[_U(base + offsets[_U(i)])] = base + o
        src_of[_U(base + offsets[_U(t0)])] = base + pool[_U(t0)]
    return state, step


@numba.njit(cache=True, nogil=True)
def _permute_wide_box(base, n, offsets, pool, state, src_of):  # pragma: no cover
    """:func:`_permute_boxes` for one box of more than 2**16 voxels (its lists at 0 .. n - 1), 32 bits per step from the stream."""
    for i in range(n - 1, 0, -1):
        state, z = _next(state)
        state, r = _bounded32(z >> np.uint64(32), state, np.uint64(i + 1))
        o = pool[r]
        pool[r] = pool[_U(i)]
        pool[_U(i)] = o
        src_of[_U(base + offsets[_U(i)])] = base + o
    src_of[_U(base + offsets[0])] = base + pool[0]
    return state


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
    # One working copy of the offset lists serves every box: Fisher-Yates ends in a uniform order
    # whatever order it starts from, so a box that starts from the order an earlier box of its
    # shape left is still uniformly permuted, and independently of that earlier box.
    pool = offsets.copy()
    bases = np.empty(num_boxes, np.int32)
    shape_ids = np.empty(num_boxes, np.int32)
    firsts = np.empty(num_boxes, np.int32)
    sizes = np.empty(num_boxes, np.int32)
    plan = np.empty(3 * num_boxes, np.uint64)  # six 32-bit words per box
    state = _fill(np.uint64(seed), plan)
    plan_words = plan.view(np.uint32)
    narrow_steps = 0
    for b in range(num_boxes):
        k = 6 * b
        state, rx = _bounded32(plan_words[_U(k)], state, np.uint64(mx))
        state, ry = _bounded32(plan_words[_U(k + 1)], state, np.uint64(my))
        state, rz = _bounded32(plan_words[_U(k + 2)], state, np.uint64(mz))
        bx, by, bz = int(rx) + 1, int(ry) + 1, int(rz) + 1
        state, cx = _bounded32(plan_words[_U(k + 3)], state, np.uint64(h - bx + 1))
        state, cy = _bounded32(plan_words[_U(k + 4)], state, np.uint64(w - by + 1))
        state, cz = _bounded32(plan_words[_U(k + 5)], state, np.uint64(d - bz + 1))
        bases[_U(b)] = int(cx) * s0 + int(cy) * s1 + int(cz)
        shape_id = ((bx - 1) * my + by - 1) * mz + bz - 1
        shape_ids[_U(b)] = shape_id
        firsts[_U(b)] = start[_U(shape_id)] if tables else 0
        sizes[_U(b)] = bx * by * bz
        if bx * by * bz <= _NARROW_BOX:
            narrow_steps += bx * by * bz - 1
    permutation = np.empty((narrow_steps + 3) // 4, np.uint64)  # a 16-bit word per step of a narrow box
    state = _fill(state, permutation)
    step_words = permutation.view(np.uint16)
    if tables:  # every box shape has a table only when max_block's product is at most 2**16 (narrow boxes)
        _permute_boxes(0, num_boxes, bases, firsts, sizes, offsets, pool, step_words, 0, state, src_of)
    else:  # each box's offset list is built in turn, outside the loop of the tabled case
        step = 0
        for b in range(num_boxes):
            _fill_box_offsets(shape_ids[_U(b)], s0, s1, my, mz, offsets, pool)
            if sizes[_U(b)] <= _NARROW_BOX:
                state, step = _permute_boxes(b, b + 1, bases, firsts, sizes, offsets, pool, step_words, step, state, src_of)
            else:
                state = _permute_wide_box(bases[_U(b)], sizes[_U(b)], offsets, pool, state, src_of)


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
    # The entries are at least (product of sides)**2 / 8, so tabled boxes are narrow, as _shuffle assumes.
    assert math.prod(sides) <= _NARROW_BOX
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
