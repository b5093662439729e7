"""Compiled (numba) kernel of Models Genesis local pixel shuffling for one cube on the CPU.

Why compiled: the reference's sequential rule (10,000 boxes, each a uniform permutation of its
voxels of the *unshuffled* input, later boxes overwriting earlier ones) is a loop by nature. The
vectorised kernel (``local_shuffle_kernel``) needs ownership scatters, sorts and gathers and stays
near 4.5 ms per 64 x 64 x 32 cube; run sequentially in compiled code the rule itself is about
four times faster. Box sizes and corners are drawn exactly as the vectorised kernel draws them;
each box is permuted by (inside-out) Fisher-Yates with an unbiased bounded integer (Lemire's method) from a
SplitMix64 stream seeded by the caller's generator, so a seed reproduces the draw.
Used when numba is importable; ``local_shuffle_kernel`` serves otherwise and for torch devices.
"""

from __future__ import annotations

import numpy as np

from .local_shuffle_kernel import check_box_budget

try:
    import numba
except ImportError:  # pragma: no cover - numba is a declared dependency; this keeps a fallback
    numba = None

__all__ = ["AVAILABLE", "source_map", "sequential_shuffle_indices", "shuffle_array"]

AVAILABLE = numba is not None

if AVAILABLE:
    _GOLDEN = np.uint64(0x9E3779B97F4A7C15)
    _MIX1 = np.uint64(0xBF58476D1CE4E5B9)
    _MIX2 = np.uint64(0x94D049BB133111EB)
    _LOW32 = np.uint64(0xFFFFFFFF)

    @numba.njit(cache=True, nogil=True)
    def _next(state):  # pragma: no cover - compiled; SplitMix64: (new state, 64 random bits)
        state += _GOLDEN
        z = state
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return state, z ^ (z >> np.uint64(31))

    @numba.njit(cache=True, nogil=True)
    def _shuffle(strides, sizes, corners, seed, src_of):  # pragma: no cover - compiled
        s0, s1 = strides[0], strides[1]
        state = np.uint64(seed)
        spare, have_spare = np.uint64(0), False
        buf = np.empty(int(sizes[0].max() * sizes[1].max() * sizes[2].max()), np.int32)
        for b in range(sizes.shape[1]):
            bx, by, bz = sizes[0, b], sizes[1, b], sizes[2, b]
            base = corners[0, b] * s0 + corners[1, b] * s1 + corners[2, b]
            # Inside-out Fisher-Yates written straight into src_of: box voxel n (C order, position
            # buf[n]) takes the source of a uniform earlier slot pick <= n, which takes voxel n.
            n = 0
            for i in range(bx):
                for j in range(by):
                    row = base + i * s0 + j * s1
                    for k in range(bz):
                        p = row + k
                        buf[n] = p
                        if n == 0:
                            src_of[p] = p
                            n = 1
                            continue
                        bound = np.uint64(n + 1)
                        if have_spare:  # each 64-bit draw serves two 32-bit uniforms
                            r, have_spare = spare, False
                        else:
                            state, z = _next(state)
                            r, spare, have_spare = z >> np.uint64(32), z & _LOW32, True
                        m = r * bound  # Lemire: the high 32 bits of m are uniform in [0, bound) ...
                        if (m & _LOW32) < bound:  # ... once the rare values that would bias them are redrawn
                            threshold = (np.uint64(0x100000000) - bound) % bound
                            while (m & _LOW32) < threshold:
                                state, z = _next(state)
                                m = (z >> np.uint64(32)) * bound
                        q = buf[int(m >> np.uint64(32))]
                        src_of[p] = src_of[q]  # q == p: overwritten on the next line, as it should be
                        src_of[q] = p
                        n += 1


    @numba.njit(cache=True, nogil=True)
    def _gather(flat, src_of, out):  # pragma: no cover - compiled; out[:, n] = flat[:, src_of[n]] where covered
        for c in range(flat.shape[0]):
            for n in range(flat.shape[1]):
                s = src_of[n]
                out[c, n] = flat[c, s if s >= 0 else n]


def source_map(spatial_shape, rng: np.random.Generator, num_blocks: int = 10000, max_block=None) -> np.ndarray:
    """Flat int32 array: the source voxel each voxel shows after one local shuffling draw, -1 where no box covers it.

    Args:
        spatial_shape: (H, W, D) of the cube.
        rng: numpy Generator that supplies every random number (seed it to reproduce a draw).
        num_blocks: number of boxes (10,000 in the reference).
        max_block: largest box side per axis; default (H // 10, W // 10, D // 10).
    """
    if not AVAILABLE:
        raise RuntimeError("numba is not installed: use local_shuffle_kernel.local_shuffle_indices.")
    shape, max_block = check_box_budget(spatial_shape, num_blocks, max_block)
    u = rng.random((6, num_blocks))  # the vectorised kernel's first draw, so boxes are the same
    sizes = np.stack([(u[a] * max_block[a]).astype(np.int64) + 1 for a in range(3)])
    corners = np.stack([(u[3 + a] * (shape[a] - sizes[a] + 1)).astype(np.int64) for a in range(3)])
    src_of = np.full(shape[0] * shape[1] * shape[2], -1, np.int32)
    seed = rng.integers(0, 2**64, dtype=np.uint64)
    _shuffle(np.array([shape[1] * shape[2], shape[2]], np.int64), sizes, corners, seed, src_of)
    return src_of


def sequential_shuffle_indices(spatial_shape, rng: np.random.Generator, num_blocks: int = 10000, max_block=None):
    """Flat ``(dst, src)`` indices of one draw, as ``local_shuffle_indices`` returns them (arguments of :func:`source_map`)."""
    src_of = source_map(spatial_shape, rng, num_blocks, max_block)
    dst = np.flatnonzero(src_of >= 0)
    return dst, src_of[dst].astype(np.int64)


def shuffle_array(data: np.ndarray, src_of: np.ndarray) -> np.ndarray:
    """A shuffled copy of a channel-first numpy image, given its :func:`source_map` (one compiled pass)."""
    flat = np.ascontiguousarray(data).reshape(data.shape[0], -1)
    out = np.empty_like(flat)
    _gather(flat, src_of, out)
    return out.reshape(data.shape)
