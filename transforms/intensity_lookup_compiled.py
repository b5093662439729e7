"""Compiled (numba) uniform-grid lookup of the Models Genesis Bezier intensity curve (numpy input).

Why compiled: the numpy form of the lookup (scale, clip, cell index, two gathers, multiply-add)
walks the cube seven times through temporaries; one compiled pass is several times faster and
gives the same float arithmetic. ``BezierLookup`` uses it when numba is importable.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba is a declared dependency; this keeps a fallback
    numba = None

__all__ = ["AVAILABLE", "grid_lookup"]

AVAILABLE = numba is not None

if AVAILABLE:

    @numba.njit(cache=True, nogil=True)
    def _grid_lookup(values, start, slope, cells, out):  # pragma: no cover - compiled
        for n in range(values.size):
            t = values[n] * cells
            t = min(max(t, 0.0), cells)
            cell = int(t)
            out[n] = slope[cell] * (t - cell) + start[cell]


def grid_lookup(data: np.ndarray, start: np.ndarray, slope: np.ndarray, cells: int) -> np.ndarray:
    """Map ``data`` through the grid (``start``/``slope`` per cell, one padding cell) in ``start``'s dtype."""
    values = np.ascontiguousarray(data, dtype=start.dtype).reshape(-1)
    out = np.empty_like(values)
    _grid_lookup(values, start, slope, start.dtype.type(cells), out)
    return out.reshape(data.shape)
