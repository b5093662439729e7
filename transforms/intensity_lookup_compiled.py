"""Compiled (numba) kernels of the Models Genesis Bezier intensity curve (numpy input).

Why compiled: the curve changes with every cube, so building its lookup costs as much as using it.
- ``build_grid``: the curve table, its uniform grid and the grid's error check in one pass each
  (the numpy form takes about 0.17 ms per curve, mostly small temporaries; this about 0.06 ms).
- ``grid_lookup``: scale, clip, cell index, two gathers and a multiply-add in one pass instead of
  seven numpy passes through temporaries (same float arithmetic).
- exact interpolation through the table where the grid cannot follow a steep curve: only in those
  cells (``grid_lookup(..., exact=...)``), with the binary search confined to one bucket of a
  uniform index. Per 64 x 64 x 32 cube: ``np.interp`` everywhere about 11 ms (a 15-step search per
  voxel), the bucketed search everywhere (tried first) about 3.5 ms, the grid with its steep cells
  exact about 0.27 ms (0.17 ms for a curve without steep cells).
``BezierLookup`` uses these when numba is importable and keeps numpy forms as the fallback.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba is a declared dependency; this keeps a fallback
    numba = None

__all__ = ["AVAILABLE", "build_grid", "grid_lookup", "bucket_starts"]

AVAILABLE = numba is not None

if AVAILABLE:

    @numba.njit(cache=True, nogil=True)
    def _grid_lookup(values, start, slope, cells, out):  # pragma: no cover - compiled
        zero = cells - cells  # constants in the tables' dtype: float32 math stays float32 (1.9x faster)
        for n in range(values.size):
            t = min(max(values[n] * cells, zero), cells)
            whole = np.floor(t)
            out[n] = slope[int(whole)] * (t - whole) + start[int(whole)]

    @numba.njit(cache=True, nogil=True)
    def _table(a, b, c, d, inverted, size):  # pragma: no cover - compiled; as nonlinear_intensity.bezier_table
        xs, ys = np.empty(size), np.empty(size)
        ax, bx, cx = 1.0 + 3.0 * a - 3.0 * c, 3.0 * c - 6.0 * a, 3.0 * a
        ay, by, cy = 1.0 + 3.0 * b - 3.0 * d, 3.0 * d - 6.0 * b, 3.0 * b
        step = 1.0 / (size - 1)
        for i in range(size):
            u = i * step if i < size - 1 else 1.0  # np.linspace's endpoint is exact
            xs[i] = ((ax * u + bx) * u + cx) * u
            ys[i] = ((ay * u + by) * u + cy) * u
            if i > 0:
                xs[i] = max(xs[i], xs[i - 1])
                if not inverted:
                    ys[i] = max(ys[i], ys[i - 1])
        if inverted:
            ys = ys[::-1].copy()
        return xs, ys

    @numba.njit(cache=True, nogil=True)
    def _interp_sorted(queries, xs, ys, out):  # pragma: no cover - compiled; np.interp for ascending queries
        last, j = xs.size - 1, 0
        for i in range(queries.size):
            q = queries[i]
            while j < last - 1 and xs[j + 1] <= q:
                j += 1
            if q >= xs[last]:
                out[i] = ys[last]
            elif q <= xs[0]:
                out[i] = ys[0]
            elif q == xs[j]:
                out[i] = ys[j]
            else:
                out[i] = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j]) * (q - xs[j]) + ys[j]

    @numba.njit(cache=True, nogil=True)
    def _build_grid(a, b, c, d, inverted, table_size, cells, start, slope, error):  # pragma: no cover - compiled
        xs, ys = _table(a, b, c, d, inverted, table_size)
        nodes, mids = np.empty(cells + 1), np.empty(cells)
        for i in range(cells + 1):
            nodes[i] = i / cells
        for i in range(cells):
            mids[i] = (i + 0.5) / cells
        grid, exact = np.empty(cells + 1), np.empty(cells)
        _interp_sorted(nodes, xs, ys, grid)
        _interp_sorted(mids, xs, ys, exact)
        for i in range(cells):
            start[i], slope[i] = grid[i], grid[i + 1] - grid[i]
            error[i] = abs(start[i] + 0.5 * slope[i] - exact[i])
        start[cells], slope[cells] = grid[cells], 0.0

    @numba.njit(cache=True, nogil=True)
    def _bucket_starts(xs, buckets, first):  # pragma: no cover - compiled
        j = 0
        for k in range(buckets + 1):  # first[k]: the last table point at or left of k / buckets
            edge = k / buckets
            while j < xs.size - 1 and xs[j + 1] <= edge:
                j += 1
            first[k] = j

    @numba.njit(cache=True, nogil=True)
    def _interp_one(q, xs, ys, first):  # pragma: no cover - compiled; np.interp(q, xs, ys) for one value
        last, buckets = xs.size - 1, first.size - 1
        if q >= xs[last]:
            return ys[last]
        if q <= xs[0]:
            return ys[0]
        k = min(int(q * buckets), buckets - 1)
        lo, hi = first[k], min(first[k + 1] + 1, last)
        while lo > 0 and xs[lo] > q:  # rounding of q * buckets can miss the bucket by one
            lo -= 1
        while hi < last and xs[hi] <= q:
            hi += 1
        while hi - lo > 1:  # invariant: xs[lo] <= q < xs[hi]
            mid = (lo + hi) >> 1
            if xs[mid] <= q:
                lo = mid
            else:
                hi = mid
        if q == xs[lo]:
            return ys[lo]
        return (ys[hi] - ys[lo]) / (xs[hi] - xs[lo]) * (q - xs[lo]) + ys[lo]

    @numba.njit(cache=True, nogil=True)
    def _hybrid_lookup(values, start, slope, cells, steep, xs, ys, first, out):  # pragma: no cover - compiled
        zero = cells - cells
        for n in range(values.size):
            t = min(max(values[n] * cells, zero), cells)
            whole = np.floor(t)
            cell = int(whole)
            if steep[cell]:  # the grid is inexact here: interpolate through the table
                out[n] = _interp_one(float(values[n]), xs, ys, first)
            else:
                out[n] = slope[cell] * (t - whole) + start[cell]


def build_grid(control, inverted: bool, table_size: int, cells: int):
    """``(start, slope, error)``: the curve's uniform grid (one padding cell) and each cell's midpoint error.

    The same construction as ``BezierLookup``'s numpy form: a ``table_size``-point table of the curve,
    ``np.interp`` at the ``cells + 1`` grid nodes, and the error against the table at each cell's midpoint.
    """
    a, b, c, d = (float(v) for v in control)
    start, slope, error = np.empty(cells + 1), np.empty(cells + 1), np.empty(cells)
    _build_grid(a, b, c, d, bool(inverted), int(table_size), int(cells), start, slope, error)
    return start, slope, error


def grid_lookup(data: np.ndarray, start: np.ndarray, slope: np.ndarray, cells: int, exact=None) -> np.ndarray:
    """Map ``data`` through the grid (``start``/``slope`` per cell, one padding cell) in ``start``'s dtype.

    ``exact``: optional ``(steep, xs, ys, first)``: voxels in cells where ``steep`` (uint8, one per cell
    plus padding) is set are interpolated through the table ``xs, ys`` instead (``first``: :func:`bucket_starts`).
    """
    values = np.ascontiguousarray(data, dtype=start.dtype).reshape(-1)
    out = np.empty_like(values)
    if exact is None:
        _grid_lookup(values, start, slope, start.dtype.type(cells), out)
    else:
        _hybrid_lookup(values, start, slope, start.dtype.type(cells), *exact, out)
    return out.reshape(data.shape)


def bucket_starts(xs: np.ndarray, buckets: int) -> np.ndarray:
    """Index of the last table point at or left of each bucket edge k / buckets (the search index of :func:`grid_lookup`'s exact cells)."""
    first = np.empty(buckets + 1, np.int64)
    _bucket_starts(xs, int(buckets), first)
    return first

