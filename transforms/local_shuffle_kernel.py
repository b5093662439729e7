"""Vectorised index kernel of Models Genesis local pixel shuffling for one cube (numpy).

The reference draws 10,000 boxes one after the other, permutes the voxels of each box of the
*unshuffled* input and writes them back, later boxes overwriting earlier ones. This kernel gives
the same result as two flat index arrays (``out[dst] = x[src]``, all other voxels unchanged),
with no Python loop over boxes or voxels:

1. Ownership: a voxel shows the *last* box covering it. Boxes are cut into lines along one axis;
   a scatter-max of the box id into one grid per line length, then a short shift-max recurrence,
   gives every voxel's owner. A max is order-free, so overlapping boxes resolve to the last one
   deterministically (plain fancy assignment with repeated indices gives no such guarantee).
2. Permutations: every box gets a uniformly random order of its voxels by sorting random keys
   in fixed-width rows (boxes grouped by row width 1, 2, 3, 4, 6, 8, 12, ...; padding sorts
   last). Rows whose random keys tie are drawn again (rejection), so every permutation is
   exactly equally likely.
3. Only voxels that stay visible look up their permuted source.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["check_box_budget", "local_shuffle_indices", "max_block_sizes"]

# Local shuffling is meant for pretraining cubes (64 x 64 x 32 needs about 250,000 box voxels);
# beyond this many expected box voxels per draw it asks for a crop instead of exhausting memory.
_MAX_EXPECTED_BOX_VOXELS = 30_000_000

# Lookup tables for the visible-voxel stage are used while they stay this small (entries);
# larger cubes decode box offsets arithmetically instead (same result, a little slower).
_MAX_TABLE_ENTRIES = 1 << 22


def check_box_budget(spatial_shape, num_blocks: int, max_block=None) -> tuple:
    """``(shape, max_block)`` as int tuples; a ValueError when a draw would move too many voxels (a whole volume)."""
    shape = tuple(int(s) for s in spatial_shape)
    max_block = tuple(int(m) for m in (max_block or max_block_sizes(shape)))
    expected = num_blocks * np.prod([(m + 1) / 2 for m in max_block])
    if expected > _MAX_EXPECTED_BOX_VOXELS:
        raise ValueError(
            f"local pixel shuffling of a {shape} image with {num_blocks} boxes up to {max_block} would move about "
            f"{expected:.3g} voxels; crop pretraining cubes (e.g. 64 x 64 x 32) first."
        )
    return shape, max_block


def max_block_sizes(spatial_shape, divisor: int = 10) -> tuple:
    """Largest box side per axis: side // divisor (the reference uses 10)."""
    return tuple(int(s) // divisor for s in spatial_shape)


class _Plan:
    """Tables that depend only on the cube shape and the largest box (cached per shape)."""

    def __init__(self, spatial_shape: tuple, max_block: tuple):
        h, w, d = spatial_shape
        mx, my, mz = max_block
        self.shape, self.max_block = spatial_shape, max_block
        self.voxels = h * w * d
        self.strides = (w * d, d, 1)
        self.max_n = mx * my * mz
        # Row widths 1, 2, 3, 4, 6, 8, 12, ...: a box of n voxels sorts in the first width >= n
        # (about 15 % padding with few groups).
        candidates = sorted({1 << k for k in range(32)} | {3 << k for k in range(31)})
        widths = candidates[: next(i for i, c in enumerate(candidates) if c >= self.max_n) + 1]
        self.widths = np.array(widths, dtype=np.int64)
        self.group_of_count = np.searchsorted(self.widths, np.arange(self.max_n + 1)).astype(np.int8)
        # Key layout: [padding flag | random bits | local index of the source voxel].
        self.low_bits = max(1, int(np.ceil(np.log2(self.max_n))))
        self.key_dtype = np.uint32 if 31 - self.low_bits >= 20 else np.uint64
        self.key_bits = np.dtype(self.key_dtype).itemsize * 8
        top = self.key_dtype(1) << self.key_dtype(self.key_bits - 1)
        # Column part of the keys for a box of n voxels: the column, plus the flag on padding.
        self.column_keys = None
        if (self.max_n + 1) * int(self.widths.sum()) <= _MAX_TABLE_ENTRIES:
            n = np.arange(self.max_n + 1)[:, None]
            self.column_keys = []
            for w in widths:
                cols = np.arange(w, dtype=self.key_dtype)[None, :]
                self.column_keys.append(cols | np.where(cols >= n, top, self.key_dtype(0)).astype(self.key_dtype))
        # Lines run along the axis with the longest possible box side: fewest lines to scatter.
        self.line_axis = int(np.argmax(max_block))
        self.others = [a for a in range(3) if a != self.line_axis]
        m_a, m_b = (max_block[a] for a in self.others)
        s_a, s_b = (self.strides[a] for a in self.others)
        t = np.arange(m_a * m_b)
        # Offset of line t (t < n_a * n_b) inside a box whose second "other" extent is n_b.
        self.line_table = np.stack([(t // nb) * s_a + (t % nb) * s_b for nb in range(1, m_b + 1)]).ravel()
        self.line_row = m_a * m_b
        # Offset range of a voxel inside a box: delta = i * s0 + j * s1 + k.
        self.delta_range = (mx - 1) * self.strides[0] + (my - 1) * self.strides[1] + mz
        self.use_tables = self.max_n * max(self.delta_range, widths[-1]) <= _MAX_TABLE_ENTRIES
        if self.use_tables:
            self._build_tables()

    def _build_tables(self):
        mx, my, mz = self.max_block
        width = int(self.widths[-1])
        shapes = np.stack(np.meshgrid(np.arange(mx), np.arange(my), np.arange(mz), indexing="ij"), -1).reshape(-1, 3) + 1
        # offset_table[shape id, local index] -> spatial offset; rank_table[shape id, delta] -> local index.
        self.offset_table = np.zeros((self.max_n, width), dtype=np.int32)
        self.rank_table = np.zeros((self.max_n, self.delta_range), dtype=np.int16 if self.max_n > 127 else np.int8)
        for sid, (bx, by, bz) in enumerate(shapes):
            i, j, k = (a.ravel() for a in np.meshgrid(np.arange(bx), np.arange(by), np.arange(bz), indexing="ij"))
            delta = i * self.strides[0] + j * self.strides[1] + k
            self.offset_table[sid, : delta.size] = delta
            self.rank_table[sid, delta] = np.arange(delta.size)
        self.offset_table = self.offset_table.ravel()
        self.rank_table = self.rank_table.ravel()
        self.offset_width = width


@lru_cache(maxsize=16)
def _plan(spatial_shape: tuple, max_block: tuple) -> _Plan:
    return _Plan(spatial_shape, max_block)


def _owners(plan: _Plan, sizes, base) -> np.ndarray:
    """Id of the last box covering each voxel (-1 where none does), flat over the cube."""
    axis, (oa, ob) = plan.line_axis, plan.others
    vox, count = plan.voxels, base.size
    n_lines = (sizes[oa] * sizes[ob]).astype(np.int32)
    first = np.cumsum(n_lines, dtype=np.int64) - n_lines
    box = np.repeat(np.arange(count, dtype=np.int32), n_lines)
    # np.take: faster than fancy indexing for these int32 index arrays.
    table_row = ((sizes[ob] - 1) * plan.line_row - first).astype(np.int64)
    line = np.take(plan.line_table, np.take(table_row, box) + np.arange(box.size))
    line += np.take((sizes[axis] - 1) * vox + base, box)
    longest = plan.max_block[axis]
    id_dtype = np.int16 if count < 2**15 else np.int32  # smaller grids: less memory traffic
    grids = np.full(longest * vox, -1, dtype=id_dtype)
    np.maximum.at(grids, line, box.astype(id_dtype, copy=False))
    grids = grids.reshape(longest, vox)
    # owner = max over e of shift_e(max over L > e of G_L): a Horner-like recurrence of shifts.
    # A line never crosses the cube border, so flat shifts need no masks.
    step = plan.strides[axis]
    suffix = grids[longest - 1].copy()
    owner = suffix.copy()
    shifted = np.empty_like(owner)
    for e in range(longest - 2, -1, -1):
        np.maximum(suffix, grids[e], out=suffix)
        shifted[:step] = suffix[:step]
        np.maximum(suffix[step:], owner[:-step], out=shifted[step:])
        owner, shifted = shifted, owner
    return owner


def _random_keys(plan: _Plan, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` keys with uniform random bits in the random field, zeros elsewhere."""
    raw = rng.bit_generator.random_raw(-(-size * np.dtype(plan.key_dtype).itemsize // 8))
    keys = raw.view(plan.key_dtype)[:size]
    keys &= plan.key_dtype(((1 << (plan.key_bits - 1)) - 1) ^ ((1 << plan.low_bits) - 1))
    return keys


def _finish_rows(plan: _Plan, rows: np.ndarray, group: int, counts: np.ndarray) -> None:
    """Add the column index (and the padding flag) to random keys, then sort each row."""
    key_dtype = plan.key_dtype
    w = rows.shape[1]
    if plan.column_keys is not None:
        rows |= plan.column_keys[group][counts]
    else:
        cols = np.arange(w, dtype=key_dtype)
        rows |= cols
        rows |= (cols >= counts[:, None].astype(key_dtype)).astype(key_dtype) << key_dtype(plan.key_bits - 1)
    rows.sort(axis=1)


def _tied(plan: _Plan, keys: np.ndarray) -> np.ndarray:
    """Positions p where sorted neighbours p, p + 1 share their random field (closer than 2**low).

    Keys are compared across row ends too: a rare false alarm that depends only on two rows'
    extreme random values, never on their order, so redrawing those rows keeps exactness.
    Padding never ties with a voxel (flag bit), at most with other padding: a harmless redraw.
    """
    gap = keys[1:] - keys[:-1]
    limit = plan.key_dtype(1 << plan.low_bits)
    if gap.size == 0 or gap.min() >= limit:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(gap < limit)


def _row_keys(plan: _Plan, rng: np.random.Generator, counts: np.ndarray):
    """Sorted random keys, one row per box; the low bits of entry r hold the source of voxel r."""
    groups = np.take(plan.group_of_count, counts)  # int8: the stable argsort is a radix sort
    order = np.argsort(groups, kind="stable")
    per_group = np.bincount(groups, minlength=plan.widths.size)
    group_start = np.concatenate([[0], np.cumsum(per_group * plan.widths)])
    first = np.concatenate([[0], np.cumsum(per_group)])
    rank = np.empty(counts.size, dtype=np.int64)
    rank[order] = np.arange(counts.size)
    row_start = group_start[groups] + (rank - first[groups]) * plan.widths[groups]
    keys = _random_keys(plan, rng, int(group_start[-1]))  # one draw for every row of every group
    present = np.flatnonzero(per_group)
    group_counts = {g: counts[order[first[g] : first[g + 1]]] for g in present}
    for g in present:
        w = int(plan.widths[g])
        _finish_rows(plan, keys[group_start[g] : group_start[g + 1]].reshape(-1, w), g, group_counts[g])
    # Rare: tied random fields. Redraw the whole rows involved until none tie (exact rejection).
    tied = _tied(plan, keys)
    while tied.size:
        rows_by_group: dict = {}
        for position in np.concatenate([tied, tied + 1]):
            g = int(np.searchsorted(group_start, position, side="right") - 1)
            rows_by_group.setdefault(g, set()).add(int((position - group_start[g]) // plan.widths[g]))
        for g, rows in rows_by_group.items():
            w, rows = int(plan.widths[g]), np.array(sorted(rows))
            fresh = _random_keys(plan, rng, rows.size * w).reshape(-1, w)
            _finish_rows(plan, fresh, g, group_counts[g][rows])
            keys[group_start[g] : group_start[g + 1]].reshape(-1, w)[rows] = fresh
        tied = _tied(plan, keys)
    return keys, row_start


def local_shuffle_indices(spatial_shape, rng: np.random.Generator, num_blocks: int = 10000, max_block=None):
    """Flat ``(dst, src)`` voxel indices of one local pixel shuffling draw (Zhou et al., Models Genesis).

    ``out.reshape(C, -1)[:, dst] = x.reshape(C, -1)[:, src]`` reproduces the reference's
    ``num_blocks`` sequential box shuffles (all channels move together); other voxels keep their value.

    Args:
        spatial_shape: (H, W, D) of the cube.
        rng: numpy Generator that supplies every random number (seed it to reproduce a draw).
        num_blocks: number of boxes (10,000 in the reference).
        max_block: largest box side per axis; default (H // 10, W // 10, D // 10).
    """
    shape, max_block = check_box_budget(spatial_shape, num_blocks, max_block)
    plan = _plan(shape, max_block)
    u = rng.random((6, num_blocks))
    sizes = [(u[a] * max_block[a]).astype(np.int32) + 1 for a in range(3)]
    corner = [(u[3 + a] * (shape[a] - sizes[a] + 1)).astype(np.int32) for a in range(3)]
    s0, s1, _ = plan.strides
    base = corner[0] * s0 + corner[1] * s1 + corner[2]
    owner = _owners(plan, sizes, base)
    counts = sizes[0] * sizes[1] * sizes[2]
    keys, row_start = _row_keys(plan, rng, counts)
    dst = np.flatnonzero(owner >= 0)
    box = np.take(owner, dst)
    mask = (1 << plan.low_bits) - 1
    if plan.use_tables:
        mx, my, mz = max_block
        sid = ((sizes[0] - 1) * my + sizes[1] - 1) * mz + sizes[2] - 1
        local = np.take(plan.rank_table, np.take(sid * plan.delta_range - base, box) + dst)
        index = np.take(row_start, box)
        index += local
        if plan.key_dtype == np.uint32:  # real keys have the flag bit clear: read them as int32
            source = np.take(keys.view(np.int32), index)
        else:
            source = np.take(keys, index).astype(np.int64)
        source &= mask
        source += np.take(sid * plan.offset_width, box)
        src = np.take(plan.offset_table, source)
        src += np.take(base, box)
        return dst, src
    # Arithmetic path: decode (i, j, k) of the destination and of the source by division.
    delta = dst - base[box]
    yz, bz = (sizes[1] * sizes[2])[box].astype(np.int64), sizes[2][box].astype(np.int64)
    i = delta // s0
    rest = delta - i * s0
    j = rest // s1
    local = i * yz + j * bz + (rest - j * s1)
    source = (keys[row_start[box] + local] & plan.key_dtype(mask)).astype(np.int64)
    si = np.floor(source / yz.astype(np.float64)).astype(np.int64)  # exact for these integers
    rest = source - si * yz
    sj = np.floor(rest / bz.astype(np.float64)).astype(np.int64)
    return dst, base[box] + si * s0 + sj * s1 + (rest - sj * bz)
