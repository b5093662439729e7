"""Models Genesis non-linear intensity transformation (``docs/method.md`` §2.3): a random cubic Bezier curve, and its rules."""

from __future__ import annotations

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends

from .containers import host_array, plain, wrap_like
from .dict_wrapper import GenesisDictWrapper
from .kernels import intensity_cpu, intensity_torch
from .validation import check_unit_cube

__all__ = [
    "RandNonLinearIntensity",
    "RandNonLinearIntensityd",
    "BezierLookup",
    "bezier_table",
    "power_coefficients",
    "NONLINEAR_PROB",
    "INVERT_PROB",
    "REFERENCE_TABLE_SIZE",
    "TABLE_SIZE",
]

NONLINEAR_PROB = 0.9  # share of cubes mapped through a curve
INVERT_PROB = 0.5  # share of curves used inverted
REFERENCE_TABLE_SIZE = 100_000  # points of the reference implementation's table
TABLE_SIZE = 32768  # points of the exact-interpolation table (deviation from the reference < 1e-4)
GRID_TABLE_SIZE = 4096  # points of the table the uniform grid is read from
GRID_CELLS = 4096  # uniform intensity grid for O(1) lookups
GRID_TOLERANCE = 2.5e-4  # largest lookup error accepted on the grid, else exact table interpolation


def power_coefficients(p1, p2):
    """
    ``(a, b, c)`` with ``B(u) = ((a u + b) u + c) u``: one coordinate of the cubic Bezier curve
    ``3(1-u)^2 u p1 + 3(1-u) u^2 p2 + u^3`` from 0 to 1 with inner control values ``p1``, ``p2``
    (floats, numpy arrays or torch tensors alike).
    """
    return 1.0 + 3.0 * p1 - 3.0 * p2, 3.0 * p2 - 6.0 * p1, 3.0 * p1


def curve_coefficients(control) -> tuple:
    """The six power-form coefficients (x then y) of the curve through (0,0), (a,b), (c,d), (1,1)."""
    a, b, c, d = control
    return power_coefficients(a, c) + power_coefficients(b, d)


def bezier_table(control, inverted: bool, size: int = TABLE_SIZE):
    """
    Intensity mapping table of Models Genesis (``docs/method.md`` §2.3): the cubic Bezier curve through
    (0,0), (a,b), (c,d), (1,1) at ``size`` evenly spaced parameters, x ascending. The monotone
    mapping pairs them with ascending y; the inverted one with the curve traversed from (1,1) to
    (0,0), so bright becomes roughly dark.

    Args:
        control: (a, b, c, d), the two inner control points, each in [0, 1).
        inverted: use the inverted mapping.
        size: number of table points (the reference uses 100,000).

    Returns:
        (xs, ys) float64 arrays for ``np.interp``.
    """
    return intensity_cpu.curve_table(curve_coefficients([float(v) for v in control]), inverted, size)


class BezierLookup:
    """
    One Bezier intensity mapping, ready to apply to numpy arrays or torch tensors on any device.

    Voxels are looked up in a uniform grid of ``GRID_CELLS`` cells (two gathers and a multiply-add)
    instead of a binary search in the table. Near-vertical stretches of the curve (control points
    close to an axis) make the grid inexact there; the midpoint check of every cell finds those
    cells, whose voxels are interpolated exactly through the table (on the CPU only those voxels,
    on other devices the whole cube).

    Args:
        control: (a, b, c, d).
        inverted: use the inverted mapping.
        table_size: points of the exact table.
    """

    def __init__(self, control, inverted: bool, table_size: int = TABLE_SIZE):
        self.control, self.inverted, self.table_size = tuple(float(v) for v in control), bool(inverted), table_size
        self.coefficients = curve_coefficients(self.control)
        grid_table = min(table_size, GRID_TABLE_SIZE)
        self.start, self.slope, error = intensity_cpu.build_grid(self.coefficients, inverted, grid_table, GRID_CELLS)
        # Where the curve is steepest (square- or cube-root-like) a cell's largest error sits off
        # its midpoint but stays within 1.25x the midpoint's, so the tolerance holds with margin.
        self.steep = np.append(error > GRID_TOLERANCE, False).astype(np.uint8)  # per cell, plus the padding cell
        self.use_grid = not self.steep.any()
        self._exact: tuple | None = None
        self._grids: dict = {}

    def exact_table(self) -> tuple:
        """``(xs, ys, bucket index)`` of exact interpolation, built on first use (steep curves only)."""
        if self._exact is None:
            xs, ys = intensity_cpu.curve_table(self.coefficients, self.inverted, self.table_size)
            self._exact = (xs, ys, intensity_cpu.bucket_starts(xs, GRID_CELLS))
        return self._exact

    def _grid(self, key, make):
        if key not in self._grids:
            self._grids[key] = make()
        return self._grids[key]

    def on_host(self, data: np.ndarray) -> np.ndarray:
        """The mapped copy of a numpy array (float32 arithmetic for float16/32, float64 for float64)."""
        dtype = data.dtype if data.dtype == np.float64 else np.dtype(np.float32)
        start, slope = self._grid(dtype, lambda: (self.start.astype(dtype), self.slope.astype(dtype)))
        exact = None if self.use_grid else (self.steep, *self.exact_table())
        return intensity_cpu.grid_lookup(data, start, slope, GRID_CELLS, exact).astype(data.dtype, copy=False)

    def on_device(self, data: torch.Tensor) -> torch.Tensor:
        """The mapped copy of a torch tensor on its device."""
        if not self.use_grid:
            xs, ys = (torch.as_tensor(t, device=data.device) for t in self.exact_table()[:2])
            return intensity_torch.table_lookup(data, xs, ys)
        dtype = torch.float64 if data.dtype == torch.float64 else torch.float32
        grid = self._grid(
            (data.device, dtype), lambda: tuple(torch.as_tensor(t, dtype=dtype, device=data.device) for t in (self.start, self.slope))
        )
        return intensity_torch.grid_lookup(data, *grid, GRID_CELLS)


class RandNonLinearIntensity(RandomizableTransform):
    """
    Non-linear intensity transformation of Models Genesis (``docs/method.md`` §2.3): every voxel
    goes through a random cubic Bezier curve with control points (0,0), (a,b), (c,d), (1,1),
    a, b, c, d uniform in [0, 1); with probability 1/2 the mapping is inverted (see
    :py:func:`bezier_table`). Expects intensities in [0, 1] (ScaleIntensityRange normalises).

    Args:
        prob: probability of transforming a cube. Defaults to 0.9.
        table_size: points of the exact curve table (steep cells, non-CPU devices). Defaults to 32,768;
            the lookup (a 4096-cell grid, exact in steep cells) stays within 2.6e-4 of the
            reference's 100,000-point table.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, prob: float = NONLINEAR_PROB, table_size: int = TABLE_SIZE) -> None:
        RandomizableTransform.__init__(self, prob)
        if table_size < 2:
            raise ValueError(f"table_size must be >= 2, got {table_size}.")
        self.table_size = table_size
        self.control: np.ndarray | None = None
        self.inverted = False
        self._lookup: BezierLookup | None = None

    def randomize(self, data=None) -> None:
        """Draw whether to map, the control points (a, b, c, d) and the direction."""
        super().randomize(None)
        self._lookup = None
        if self._do_transform:
            self.control = self.R.random_sample(4)
            self.inverted = bool(self.R.rand() < INVERT_PROB)

    def check(self, img) -> None:
        """Raise a ValueError naming the problem unless ``img`` is a (C, H, W, D) float image in [0, 1]."""
        check_unit_cube(img, type(self).__name__)

    def apply_draw(self, img):
        """Map a checked ``img`` through the last drawn curve (``img`` itself when the draw said no)."""
        if not self._do_transform or self.control is None:
            return img
        if self._lookup is None:
            self._lookup = BezierLookup(self.control, self.inverted, self.table_size)
        host = host_array(img)
        out = self._lookup.on_device(plain(img)) if host is None else self._lookup.on_host(host)
        return wrap_like(out, img)

    def __call__(self, img, randomize: bool = True):
        data = plain(img)  # checks and kernels see the plain array; the result goes back in img's container
        self.check(data)
        if randomize:
            self.randomize()
        out = self.apply_draw(data)
        return img if out is data else wrap_like(out, img)


class RandNonLinearIntensityd(GenesisDictWrapper):
    """
    Dictionary form of :py:class:`RandNonLinearIntensity`: the same curve for every key.

    Args:
        keys: keys of the images to transform.
        prob, table_size: as in :py:class:`RandNonLinearIntensity`.
        allow_missing_keys: don't raise when a key is missing.
    """

    backend = RandNonLinearIntensity.backend

    def __init__(
        self, keys: KeysCollection, prob: float = NONLINEAR_PROB, table_size: int = TABLE_SIZE, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, RandNonLinearIntensity(prob, table_size), allow_missing_keys)
