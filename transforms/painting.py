"""Models Genesis in-painting and out-painting (``docs/method.md`` §2.4, §2.5), array and dictionary forms, and their rules."""

from __future__ import annotations

import numpy as np
from monai.config import KeysCollection
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends

from .containers import host_array, plain, wrap_like
from .dict_wrapper import GenesisDictWrapper
from .kernels import noise_cpu, noise_torch
from .validation import check_min_spatial_size, check_unit_cube

__all__ = [
    "RandInPainting",
    "RandInPaintingd",
    "RandOutPainting",
    "RandOutPaintingd",
    "PAINT_PROB",
    "INPAINT_PROB",
    "MARGIN",
    "MAX_BLOCKS",
    "CONTINUE_PROB",
    "INPAINT_MIN_SIDE",
    "OUTPAINT_MIN_SIDE",
    "INPAINT_RULE",
    "OUTPAINT_RULE",
    "inpaint_side_range",
    "outpaint_side_range",
    "check_inpaint_shape",
    "check_outpaint_shape",
    "box_union",
]

PAINT_PROB = 0.9  # share of cubes painted
INPAINT_PROB = 0.2  # share of the painted cubes in-painted; the rest are out-painted
MARGIN = 3  # voxels between a block and the cube border
MAX_BLOCKS = 5  # most blocks per cube
CONTINUE_PROB = 0.95  # probability of each further block
INPAINT_MIN_SIDE = 8  # smallest side with room for a block of side // 6 .. side // 3 and both margins
OUTPAINT_MIN_SIDE = 14  # likewise for kept blocks of side - (3 side // 7 .. 4 side // 7)
INPAINT_RULE = f"in-painting blocks of side s // 6 .. s // 3 with {MARGIN}-voxel margins"
OUTPAINT_RULE = f"out-painting kept blocks of side s - (3s // 7 .. 4s // 7) with {MARGIN}-voxel margins"
# MONAI's RandCoarseDropout/RandCoarseShuffle draw a fixed number of holes of sizes set per call;
# Genesis needs a geometric block count, these size rules and margins, and (for out-painting)
# noise *outside* the blocks, so the block rules are written here.


def inpaint_side_range(side: int) -> tuple[int, int]:
    """Smallest and largest in-painting block side (inclusive) along an axis of ``side`` voxels."""
    return side // 6, side // 3


def outpaint_side_range(side: int) -> tuple[int, int]:
    """Smallest and largest kept out-painting block side (inclusive) along an axis of ``side`` voxels."""
    return side - 4 * side // 7, side - 3 * side // 7


def check_inpaint_shape(spatial_shape, name: str) -> None:
    """A ValueError naming ``name`` when in-painting blocks do not fit ``spatial_shape``."""
    check_min_spatial_size(spatial_shape, INPAINT_MIN_SIDE, name, INPAINT_RULE)


def check_outpaint_shape(spatial_shape, name: str) -> None:
    """A ValueError naming ``name`` when out-painting blocks do not fit ``spatial_shape``."""
    check_min_spatial_size(spatial_shape, OUTPAINT_MIN_SIDE, name, OUTPAINT_RULE)


def block_count(state: np.random.RandomState, max_blocks: int, continue_prob: float) -> int:
    """Number of continuation draws below ``continue_prob``, stopping at the first failure or at ``max_blocks``."""
    count = 0
    while count < max_blocks and state.rand() < continue_prob:
        count += 1
    return count


def _blocks(state: np.random.RandomState, spatial_shape, side_range, count: int) -> np.ndarray:
    """(count, 6) int64 rows (corner, size): each side uniform in ``side_range(s)``, each corner uniform with MARGIN voxels to the border."""
    if count == 0:
        return np.zeros((0, 6), np.int64)
    shape = [int(s) for s in spatial_shape]
    ranges = [side_range(s) for s in shape]
    u_sizes, u_corners = state.random_sample((2, count, len(shape))).tolist()  # one draw for all sides and corners
    rows = []  # plain Python: a handful of numbers, where numpy's per-call overhead would dominate
    for us, uc in zip(u_sizes, u_corners):
        sizes = [lo + int(u * (hi - lo + 1)) for u, (lo, hi) in zip(us, ranges)]
        rows.append([MARGIN + int(u * (s - b - 2 * MARGIN + 1)) for u, s, b in zip(uc, shape, sizes)] + sizes)
    return np.array(rows, np.int64)


def box_union(spatial_shape, blocks) -> np.ndarray:
    """Bool array of ``spatial_shape``, True inside any of ``blocks`` ((n, 6) corner + size rows)."""
    mask = np.zeros(tuple(int(s) for s in spatial_shape), bool)
    for row in np.asarray(blocks, np.int64).reshape(-1, 6):
        mask[tuple(slice(int(c), int(c) + int(s)) for c, s in zip(row[:3], row[3:]))] = True
    return mask


def _draw_key(state: np.random.RandomState) -> tuple:
    """A noise key (three 32-bit words) cut from two uniform doubles (106 random bits; doubles are k / 2**53)."""
    a, b = (int(u * 2.0**53) for u in state.random_sample(2))
    return np.uint32(a & 0xFFFFFFFF), np.uint32(b & 0xFFFFFFFF), np.uint32(a >> 32 | (b >> 32 & 0x7FF) << 21)


_HOST_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


class _RandPainting(RandomizableTransform):
    """Shared draw bookkeeping of the two painting transforms."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, prob: float, max_blocks: int, continue_prob: float) -> None:
        RandomizableTransform.__init__(self, prob)
        if max_blocks < 1:
            raise ValueError(f"max_blocks must be >= 1, got {max_blocks}.")
        if not 0.0 <= continue_prob <= 1.0:
            raise ValueError(f"continue_prob must lie in [0, 1], got {continue_prob}.")
        self.max_blocks = max_blocks
        self.continue_prob = continue_prob
        self.blocks: list = []  # (corner, size) per block, as last drawn
        self._block_rows = np.zeros((0, 6), np.int64)
        self._noise_key: tuple | None = None

    def check(self, img) -> None:
        """Raise a ValueError naming the problem unless ``img`` is a (C, H, W, D) float image in [0, 1] the blocks fit."""
        check_unit_cube(img, type(self).__name__)
        self.check_shape(img.shape[1:], type(self).__name__)

    def check_shape(self, spatial_shape, name: str) -> None:
        raise NotImplementedError

    def _draw_blocks(self, spatial_shape) -> np.ndarray:
        raise NotImplementedError

    def randomize(self, data=None) -> None:
        """Draw whether to paint, the blocks and the noise key; ``data`` is the spatial shape."""
        super().randomize(None)
        self.blocks, self._block_rows, self._noise_key = [], np.zeros((0, 6), np.int64), None
        if self._do_transform:
            if data is None:
                raise ValueError(f"{type(self).__name__}.randomize needs the spatial shape of the image.")
            self._block_rows = self._draw_blocks(data)
            self.blocks = [(tuple(row[:3]), tuple(row[3:])) for row in self._block_rows.tolist()]
            self._noise_key = _draw_key(self.R)

    def painted_mask(self, spatial_shape) -> np.ndarray:
        """Bool array of ``spatial_shape``: the voxels the last draw replaces by noise (all False when it paints nothing)."""
        raise NotImplementedError

    def _paint(self, img, on_host, on_device):
        """``img`` painted as last drawn by the host (float16/32/64 numpy view) or the torch kernel."""
        if not self._do_transform or not self.blocks:
            return img
        blocks = self._block_rows
        host = host_array(img)
        if host is not None and host.dtype in _HOST_DTYPES:
            return wrap_like(on_host(host, blocks, self._noise_key), img)
        return wrap_like(on_device(plain(img), blocks, self._noise_key), img)

    def __call__(self, img, randomize: bool = True):
        data = plain(img)  # checks and kernels see the plain array; the result goes back in img's container
        self.check(data)
        if randomize:
            self.randomize(data.shape[1:])
        out = self.apply_draw(data)
        return img if out is data else wrap_like(out, img)


class RandInPainting(_RandPainting):
    """
    Image in-painting of Models Genesis (``docs/method.md`` §2.4): up to ``max_blocks`` times, each
    time continuing only while a uniform draw is below ``continue_prob``, a block of side
    s // 6 .. s // 3 per axis, at least 3 voxels from the border, is filled with uniform [0, 1)
    noise; one noise block serves all channels. The noise is a hash of each voxel's index and a key
    drawn from this transform, so every container and device gets the same values.
    Expects intensities in [0, 1] (ScaleIntensityRange normalises).

    Args:
        prob: probability of painting a cube. Defaults to 0.18 = 0.9 x 0.2, its rate in the full
            pipeline (painting 0.9, of which in-painting 0.2).
        max_blocks: most blocks. Defaults to 5.
        continue_prob: probability of each further block. Defaults to 0.95.
    """

    def __init__(
        self, prob: float = PAINT_PROB * INPAINT_PROB, max_blocks: int = MAX_BLOCKS, continue_prob: float = CONTINUE_PROB
    ) -> None:
        super().__init__(prob, max_blocks, continue_prob)

    def check_shape(self, spatial_shape, name: str) -> None:
        """Raise a ValueError naming ``name`` unless the blocks fit ``spatial_shape``."""
        check_inpaint_shape(spatial_shape, name)

    def _draw_blocks(self, spatial_shape) -> np.ndarray:
        return _blocks(self.R, spatial_shape, inpaint_side_range, block_count(self.R, self.max_blocks, self.continue_prob))

    def painted_mask(self, spatial_shape) -> np.ndarray:
        """Bool array of ``spatial_shape``: inside the noise blocks of the last draw."""
        if not self._do_transform:
            return np.zeros(tuple(int(s) for s in spatial_shape), bool)
        return box_union(spatial_shape, self._block_rows)

    def apply_draw(self, img):
        """Paint a checked ``img`` as last drawn (``img`` itself when the draw said no)."""
        return self._paint(img, noise_cpu.inpaint, noise_torch.inpaint)


class RandOutPainting(_RandPainting):
    """
    Image out-painting of Models Genesis (``docs/method.md`` §2.5): the whole cube becomes uniform
    [0, 1) noise except inside one block, then up to ``max_blocks - 1`` more (each continuing while
    a uniform draw is below ``continue_prob``), where the original image is kept. Block side
    s - r with r in 3s // 7 .. 4s // 7 per axis, at least 3 voxels from the border. The noise is
    a hash of each voxel's index and a key drawn from this transform.
    Expects intensities in [0, 1] (ScaleIntensityRange normalises).

    Args:
        prob: probability of painting a cube. Defaults to 0.72 = 0.9 x 0.8, its rate in the full
            pipeline (painting 0.9, of which out-painting 0.8).
        max_blocks: most kept blocks, the first included. Defaults to 5.
        continue_prob: probability of each further block. Defaults to 0.95.
    """

    def __init__(
        self,
        prob: float = PAINT_PROB * (1.0 - INPAINT_PROB),
        max_blocks: int = MAX_BLOCKS,
        continue_prob: float = CONTINUE_PROB,
    ) -> None:
        super().__init__(prob, max_blocks, continue_prob)

    def check_shape(self, spatial_shape, name: str) -> None:
        """Raise a ValueError naming ``name`` unless the blocks fit ``spatial_shape``."""
        check_outpaint_shape(spatial_shape, name)

    def _draw_blocks(self, spatial_shape) -> np.ndarray:
        count = 1 + block_count(self.R, self.max_blocks - 1, self.continue_prob)  # the first block always
        return _blocks(self.R, spatial_shape, outpaint_side_range, count)

    def painted_mask(self, spatial_shape) -> np.ndarray:
        """Bool array of ``spatial_shape``: outside the kept blocks of the last draw (all False when it paints nothing)."""
        if not self._do_transform or not self.blocks:
            return np.zeros(tuple(int(s) for s in spatial_shape), bool)
        return ~box_union(spatial_shape, self._block_rows)

    def apply_draw(self, img):
        """Out-paint a checked ``img`` as last drawn (``img`` itself when the draw said no)."""
        return self._paint(img, noise_cpu.outpaint, noise_torch.outpaint)


class RandInPaintingd(GenesisDictWrapper):
    """
    Dictionary form of :py:class:`RandInPainting`: the same blocks and noise for every key.

    Args:
        keys: keys of the images to paint.
        prob, max_blocks, continue_prob: as in :py:class:`RandInPainting`.
        allow_missing_keys: don't raise when a key is missing.
    """

    backend = RandInPainting.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = PAINT_PROB * INPAINT_PROB,
        max_blocks: int = MAX_BLOCKS,
        continue_prob: float = CONTINUE_PROB,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, RandInPainting(prob, max_blocks, continue_prob), allow_missing_keys)


class RandOutPaintingd(GenesisDictWrapper):
    """
    Dictionary form of :py:class:`RandOutPainting`: the same blocks and noise for every key.

    Args:
        keys: keys of the images to paint.
        prob, max_blocks, continue_prob: as in :py:class:`RandOutPainting`.
        allow_missing_keys: don't raise when a key is missing.
    """

    backend = RandOutPainting.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = PAINT_PROB * (1.0 - INPAINT_PROB),
        max_blocks: int = MAX_BLOCKS,
        continue_prob: float = CONTINUE_PROB,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, RandOutPainting(prob, max_blocks, continue_prob), allow_missing_keys)
