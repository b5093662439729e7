"""Models Genesis non-linear intensity transformation: a random cubic Bezier intensity curve."""

from __future__ import annotations

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends

from . import intensity_lookup_compiled
from .dict_wrapper import GenesisDictWrapper
from .type_utils import like, plain
from .validation import check_unit_cube

__all__ = ["RandNonLinearIntensity", "RandNonLinearIntensityd", "bezier_table", "BezierLookup"]

REFERENCE_TABLE_SIZE = 100_000  # points of the reference implementation's table
TABLE_SIZE = 32768  # points of the exact-interpolation table (measured deviation from the reference < 1e-4)
GRID_TABLE_SIZE = 4096  # points of the table the uniform grid is read from
GRID_CELLS = 4096  # uniform intensity grid for O(1) lookups
GRID_TOLERANCE = 2.5e-4  # largest lookup error accepted on the grid, else exact table interpolation


def bezier_table(control, inverted: bool, size: int = TABLE_SIZE):
    """
    Intensity mapping table of Models Genesis: cubic Bezier through (0,0), (a,b), (c,d), (1,1).

    The curve is evaluated at ``size`` evenly spaced parameters; x values are sorted ascending. The
    monotone mapping sorts the y values too; the inverted one pairs them with the curve traversed
    from (1,1) to (0,0) instead, so bright becomes roughly dark (both as in the reference).

    Args:
        control: (a, b, c, d), the two inner control points, each in [0, 1).
        inverted: use the inverted mapping.
        size: number of table points (the reference uses 100,000).

    Returns:
        (xs, ys) float64 arrays for ``np.interp``.
    """
    a, b, c, d = (float(v) for v in control)
    u = np.linspace(0.0, 1.0, size)
    # Power form of B(u) = 3(1-u)^2 u P1 + 3(1-u) u^2 P2 + u^3 P3, evaluated by Horner's rule.
    xs = ((1.0 + 3.0 * a - 3.0 * c) * u + (3.0 * c - 6.0 * a)) * u + 3.0 * a
    xs *= u
    ys = ((1.0 + 3.0 * b - 3.0 * d) * u + (3.0 * d - 6.0 * b)) * u + 3.0 * b
    ys *= u
    # With inner control points in [0, 1]^2 both coordinates are monotone in u, so the reference's
    # sorts only repair rounding; a running maximum does that in one pass.
    np.maximum.accumulate(xs, out=xs)
    if inverted:
        return xs, ys[::-1].copy()
    return xs, np.maximum.accumulate(ys, out=ys)


def _numpy_grid(control, inverted: bool, table_size: int, cells: int):
    """``(start, slope, error)`` of the uniform grid in numpy (used without numba; see ``intensity_lookup_compiled``)."""
    xs, ys = bezier_table(control, inverted, table_size)
    grid = np.interp(np.linspace(0.0, 1.0, cells + 1), xs, ys)
    start, slope = grid[:-1], np.diff(grid)
    # Check the grid against the table at every cell's midpoint (sorted queries: fast).
    error = np.abs(start + 0.5 * slope - np.interp((np.arange(cells) + 0.5) / cells, xs, ys))
    # Pad one cell so that x == 1 (t == cells) needs no clamp of the cell index.
    return np.append(start, grid[-1]), np.append(slope, 0.0), error


class BezierLookup:
    """
    Fast evaluation of one Bezier intensity mapping on numpy arrays or torch tensors (any device).

    Voxels are looked up in a uniform grid of ``GRID_CELLS`` cells (two gathers and a multiply-add)
    instead of a binary search in the table. Near-vertical stretches of the curve (control points
    close to an axis) make the grid inexact there; the midpoint check of every cell finds those
    cells. On numpy input (compiled) only their voxels are interpolated exactly through the table;
    on tensors, and without numba, such a curve is interpolated exactly everywhere.
    """

    def __init__(self, control, inverted: bool, table_size: int = TABLE_SIZE, cells: int = GRID_CELLS):
        self.cells = cells
        self.control, self.inverted, self.table_size = tuple(float(v) for v in control), bool(inverted), table_size
        grid_table = min(table_size, GRID_TABLE_SIZE)
        build = intensity_lookup_compiled.build_grid if intensity_lookup_compiled.AVAILABLE else _numpy_grid
        self.start, self.slope, error = build(control, inverted, grid_table, cells)
        # Where the curve is steepest (square- or cube-root-like) a cell's largest error sits off
        # its midpoint but stays within 1.25x the midpoint's, so the tolerance holds with margin.
        self.steep = np.append(error > GRID_TOLERANCE, False).astype(np.uint8)  # per cell, plus the padding cell
        self.use_grid = not self.steep.any()
        self._exact: tuple | None = None
        self._cache: dict = {}

    def exact_table(self) -> tuple:
        """``(xs, ys, bucket index or None)`` of exact interpolation, built on first use (steep curves only)."""
        if self._exact is None:
            xs, ys = bezier_table(self.control, self.inverted, self.table_size)
            first = intensity_lookup_compiled.bucket_starts(xs, self.cells) if intensity_lookup_compiled.AVAILABLE else None
            self._exact = (xs, ys, first)
        return self._exact

    def _tables(self, like_array):
        key = (like_array.device, like_array.dtype) if isinstance(like_array, torch.Tensor) else like_array.dtype
        if key not in self._cache:
            if isinstance(like_array, torch.Tensor):
                dtype = like_array.dtype if like_array.dtype in (torch.float32, torch.float64) else torch.float32
                self._cache[key] = tuple(
                    torch.as_tensor(t, dtype=dtype, device=like_array.device) for t in (self.start, self.slope)
                ) + (None, None)
            else:
                dtype = like_array.dtype if like_array.dtype in (np.float32, np.float64) else np.float32
                self._cache[key] = tuple(t.astype(dtype) for t in (self.start, self.slope))
        return self._cache[key]

    def __call__(self, data):
        if isinstance(data, torch.Tensor):
            return self._torch(data)
        start, slope = self._tables(data)
        if intensity_lookup_compiled.AVAILABLE:  # one compiled pass instead of seven numpy passes
            # Steep curves: exact interpolation through the table in the few cells the grid cannot follow.
            exact = None if self.use_grid else (self.steep, *self.exact_table())
            return intensity_lookup_compiled.grid_lookup(data, start, slope, self.cells, exact).astype(data.dtype, copy=False)
        if not self.use_grid:
            return np.interp(data, *self.exact_table()[:2]).astype(data.dtype)
        t = np.clip(data.astype(start.dtype, copy=False) * start.dtype.type(self.cells), 0, self.cells)
        cell = t.astype(np.int32)
        t -= cell
        out = np.take(slope, cell)
        out *= t
        out += np.take(start, cell)
        return out.astype(data.dtype, copy=False)

    def _torch(self, data: torch.Tensor) -> torch.Tensor:
        start, slope, xs, ys = self._tables(data)
        if not self.use_grid:  # rare: exact interpolation, in float64 as np.interp does
            xs, ys = (torch.as_tensor(t, device=data.device) for t in self.exact_table()[:2])
            x = data.reshape(-1).to(torch.float64).clamp(0.0, 1.0)
            right = torch.searchsorted(xs, x, right=True).clamp_(1, xs.numel() - 1)
            x0, x1, y0, y1 = (t.index_select(0, i) for t, i in ((xs, right - 1), (xs, right), (ys, right - 1), (ys, right)))
            width = x1 - x0
            frac = torch.where(width > 0, (x - x0) / torch.where(width > 0, width, 1.0), 0.0)
            return (y0 + frac * (y1 - y0)).reshape(data.shape).to(data.dtype)
        t = (data.to(start.dtype) * self.cells).clamp_(0, self.cells).reshape(-1)
        cell = t.long()
        out = start.index_select(0, cell).addcmul_(t - cell, slope.index_select(0, cell))
        return out.reshape(data.shape).to(data.dtype)


class RandNonLinearIntensity(RandomizableTransform):
    """
    Non-linear intensity transformation of Models Genesis (Zhou et al., "Models Genesis", MICCAI 2019).

    Maps every voxel through a random cubic Bezier curve with control points (0,0), (a,b), (c,d),
    (1,1), a, b, c, d uniform in [0, 1); with probability 1/2 the mapping is monotone, else inverted
    (see :py:func:`bezier_table`). Expects intensities in [0, 1] (ScaleIntensityRange normalises).

    Args:
        prob: probability of transforming a cube. Defaults to 0.9.
        table_size: points of the exact curve table (steep cells, tensors). Defaults to 32,768; the
            lookup (a 4096-cell grid, exact in steep cells) stays within 2.6e-4 of the reference's
            100,000-point table.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, prob: float = 0.9, table_size: int = TABLE_SIZE) -> None:
        RandomizableTransform.__init__(self, prob)
        if table_size < 2:
            raise ValueError(f"table_size must be >= 2, got {table_size}.")
        self.table_size = table_size
        self.control: np.ndarray | None = None
        self.inverted = False
        self._lookup: BezierLookup | None = None

    def randomize(self, data=None) -> None:
        super().randomize(None)
        self._lookup = None
        if self._do_transform:
            self.control = self.R.random_sample(4)  # (a, b, c, d)
            self.inverted = bool(self.R.rand() < 0.5)

    def check(self, img) -> None:
        check_unit_cube(img, type(self).__name__)

    def apply_draw(self, img):
        """Map ``img`` through the last drawn curve (``img`` itself when the draw said no)."""
        if not self._do_transform or self.control is None:
            return img
        if self._lookup is None:
            self._lookup = BezierLookup(self.control, self.inverted, self.table_size)
        return like(self._lookup(plain(img)), img)

    def __call__(self, img, randomize: bool = True):
        self.check(img)
        if randomize:
            self.randomize()
        return self.apply_draw(img)


class RandNonLinearIntensityd(GenesisDictWrapper):
    """
    Dictionary form of :py:class:`RandNonLinearIntensity`: the same curve for every key.

    Args:
        keys: keys of the images to transform.
        prob, table_size: as in :py:class:`RandNonLinearIntensity`.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self, keys: KeysCollection, prob: float = 0.9, table_size: int = TABLE_SIZE, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, RandNonLinearIntensity(prob, table_size), allow_missing_keys)
