"""Torch kernels of the Bezier intensity curve, any device (``docs/method.md`` §2.3).

- ``grid_lookup``: one cube through a uniform grid drawn on the host (``intensity_cpu.build_grid``).
- ``table_lookup``: exact linear interpolation through a sorted table, in float64 (as ``np.interp``).
- ``batched_curve_lookup``: each cube of a batch through its own curve, tables built on the device.
"""

from __future__ import annotations

import torch

__all__ = ["grid_lookup", "table_lookup", "batched_curve_lookup"]


def grid_lookup(data: torch.Tensor, start: torch.Tensor, slope: torch.Tensor, cells: int) -> torch.Tensor:
    """``data`` through the grid (``start``/``slope`` per cell, one padding cell), computed in ``start``'s dtype."""
    t = (data.to(start.dtype) * cells).clamp_(0, cells).reshape(-1)
    cell = t.floor().long()
    out = start.index_select(0, cell).addcmul_(t - cell, slope.index_select(0, cell))
    return out.reshape(data.shape).to(data.dtype)


def _interpolate(values: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Row-wise linear interpolation of (N, V) ``values`` through (N, T) sorted tables (as np.interp)."""
    v = values.to(torch.float64).clamp(0.0, 1.0)
    right = torch.searchsorted(xs, v, right=True).clamp_(1, xs.shape[-1] - 1)
    x0, x1 = xs.gather(-1, right - 1), xs.gather(-1, right)
    y0, y1 = ys.gather(-1, right - 1), ys.gather(-1, right)
    width = x1 - x0
    frac = torch.where(width > 0, (v - x0) / torch.where(width > 0, width, 1.0), 0.0)
    return y0 + frac * (y1 - y0)


def table_lookup(data: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """``data`` through the float64 table ``(xs, ys)`` on its device."""
    return _interpolate(data.reshape(1, -1), xs.view(1, -1), ys.view(1, -1)).reshape(data.shape).to(data.dtype)


def _horner(coefficients, u: torch.Tensor) -> torch.Tensor:
    a, b, c = coefficients
    return ((a * u + b) * u + c) * u


def batched_curve_lookup(x: torch.Tensor, x_coefficients, y_coefficients, inverted: torch.Tensor, size: int):
    """
    Map each cube of ``x`` (B, ...) through its own curve, exactly, via a ``size``-point table per cube.

    Args:
        x: (B, ...) batch.
        x_coefficients, y_coefficients: three (B, 1) float64 tensors each, the power form of x(u) and y(u).
        inverted: (B, 1) bool, pair the x values with the curve traversed backwards.
        size: table points.
    """
    batch = x.shape[0]
    u = torch.linspace(0.0, 1.0, size, device=x.device, dtype=torch.float64).view(1, -1)
    xs = torch.cummax(_horner(x_coefficients, u), dim=1).values
    ys = torch.cummax(_horner(y_coefficients, u), dim=1).values
    ys = torch.where(inverted, ys.flip(1), ys)
    return _interpolate(x.reshape(batch, -1), xs, ys).to(x.dtype).view_as(x)
