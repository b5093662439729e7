"""Compiled (numba) kernels of the Bezier intensity curve on the CPU (``docs/method.md`` §2.3).

The curve changes with every cube, so building its lookup costs as much as using it; both are
single compiled passes. A curve is given by its power-form coefficients per coordinate,
``x(u) = ((ax u + bx) u + cx) u`` and likewise y (``nonlinear_intensity.power_coefficients``).
- ``curve_table``: the curve at evenly spaced parameters, repaired to be non-decreasing.
- ``build_grid``: a uniform grid over intensities read from the table, and each cell's error at
  its midpoint, so the caller knows where the grid cannot follow a steep curve.
- ``grid_lookup``: scale, clip, cell, two gathers and a multiply-add per voxel; voxels in steep
  cells are interpolated through the table instead (binary search within one bucket of a uniform
  index over the table).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["curve_table", "build_grid", "grid_lookup", "bucket_starts"]

_U = np.uint64  # unsigned indices spare numba's negative-index fix-up in the per-voxel loops
_FMA = {"contract"}  # the per-voxel multiply-add as one fused instruction (no other fast-math licence)


@numba.njit(cache=True, nogil=True, fastmath=_FMA)
def _grid_lookup(values, start, slope, cells, out):  # pragma: no cover - compiled
    zero = cells - cells  # constants in the tables' dtype keep float32 arithmetic in float32
    for n in range(_U(values.size)):
        t = min(max(values[n] * cells, zero), cells)
        whole = np.floor(t)
        cell = _U(int(whole))
        out[n] = slope[cell] * (t - whole) + start[cell]


@numba.njit(cache=True, nogil=True)
def _table(ax, bx, cx, ay, by, cy, inverted, size):  # pragma: no cover - compiled
    xs, ys = np.empty(size), np.empty(size)
    step = 1.0 / (size - 1)
    for i in range(size):
        u = i * step if i < size - 1 else 1.0  # the last parameter is exactly 1
        xs[i] = ((ax * u + bx) * u + cx) * u
        ys[i] = ((ay * u + by) * u + cy) * u
        if i > 0:  # both coordinates are monotone in u: a running maximum only repairs rounding
            xs[i] = max(xs[i], xs[i - 1])
            if not inverted:
                ys[i] = max(ys[i], ys[i - 1])
    if inverted:  # pair the x values with the curve traversed from (1, 1) to (0, 0)
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
def _build_grid(ax, bx, cx, ay, by, cy, inverted, table_size, cells, start, slope, error):  # pragma: no cover
    xs, ys = _table(ax, bx, cx, ay, by, cy, inverted, table_size)
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
    start[cells], slope[cells] = grid[cells], 0.0  # padding cell: x == 1 needs no clamp


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


@numba.njit(cache=True, nogil=True, fastmath=_FMA)
def _hybrid_lookup(values, start, slope, cells, steep, xs, ys, first, out):  # pragma: no cover - compiled
    zero = cells - cells
    for n in range(_U(values.size)):
        t = min(max(values[n] * cells, zero), cells)
        whole = np.floor(t)
        cell = _U(int(whole))
        if steep[cell]:  # the grid is inexact here: interpolate through the table
            out[n] = _interp_one(float(values[n]), xs, ys, first)
        else:
            out[n] = slope[cell] * (t - whole) + start[cell]


def curve_table(coefficients, inverted: bool, size: int):
    """``(xs, ys)`` float64 tables of the curve at ``size`` parameters (``coefficients``: ax, bx, cx, ay, by, cy)."""
    return _table(*(float(v) for v in coefficients), bool(inverted), int(size))


def build_grid(coefficients, inverted: bool, table_size: int, cells: int):
    """``(start, slope, error)``: the curve's uniform grid of ``cells`` cells (plus one padding cell) and each cell's midpoint error."""
    start, slope, error = np.empty(cells + 1), np.empty(cells + 1), np.empty(cells)
    _build_grid(*(float(v) for v in coefficients), bool(inverted), int(table_size), int(cells), start, slope, error)
    return start, slope, error


def grid_lookup(data: np.ndarray, start: np.ndarray, slope: np.ndarray, cells: int, exact=None) -> np.ndarray:
    """Map ``data`` through the grid (``start``/``slope`` per cell), computed in ``start``'s dtype.

    ``exact``: optional ``(steep, xs, ys, first)``: voxels in cells where ``steep`` (uint8, one per
    cell plus padding) is set are interpolated through the table ``xs, ys`` (``first``: :func:`bucket_starts`).
    """
    values = np.ascontiguousarray(data, dtype=start.dtype).reshape(-1)
    out = np.empty_like(values)
    if exact is None:
        _grid_lookup(values, start, slope, start.dtype.type(cells), out)
    else:
        _hybrid_lookup(values, start, slope, start.dtype.type(cells), *exact, out)
    return out.reshape(data.shape)


def bucket_starts(xs: np.ndarray, buckets: int) -> np.ndarray:
    """Index of the last table point at or left of each bucket edge k / buckets (the search index of the exact cells)."""
    first = np.empty(buckets + 1, np.int64)
    _bucket_starts(xs, int(buckets), first)
    return first
