"""Models Genesis in-painting and out-painting: blocks of uniform noise, or noise around kept blocks."""

from __future__ import annotations

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends

from .dict_wrapper import GenesisDictWrapper
from .random_draws import uniform_noise
from .type_utils import like, plain
from .validation import check_min_spatial_size, check_unit_cube

__all__ = [
    "RandInPainting",
    "RandInPaintingd",
    "RandOutPainting",
    "RandOutPaintingd",
    "block_count",
    "inpaint_block",
    "outpaint_block",
    "MARGIN",
]

MARGIN = 3  # voxels between a block and the cube border, as in the reference
# MONAI's RandCoarseDropout/RandCoarseShuffle draw a fixed number of holes of sizes set per call;
# Genesis needs a geometric block count, these exact size rules and 3-voxel margins, and (for
# out-painting) noise *outside* the blocks, so the block rules are written here.


def block_count(state: np.random.RandomState, max_blocks: int, continue_prob: float) -> int:
    """Number of continuation draws below ``continue_prob``, stopping at the first failure or at ``max_blocks``."""
    count = 0
    while count < max_blocks and state.rand() < continue_prob:
        count += 1
    return count


def inpaint_block(state: np.random.RandomState, spatial_shape):
    """One in-painting block: side in {s // 6 .. s // 3} per axis; returns (corner, size)."""
    sizes = [int(state.randint(s // 6, s // 3 + 1)) for s in spatial_shape]
    corner = [int(state.randint(MARGIN, s - b - MARGIN + 1)) for s, b in zip(spatial_shape, sizes)]
    return tuple(corner), tuple(sizes)


def outpaint_block(state: np.random.RandomState, spatial_shape):
    """One out-painting block: side s - r with r in {3s // 7 .. 4s // 7} per axis; returns (corner, size)."""
    sizes = [int(s - state.randint(3 * s // 7, 4 * s // 7 + 1)) for s in spatial_shape]
    corner = [int(state.randint(MARGIN, s - b - MARGIN + 1)) for s, b in zip(spatial_shape, sizes)]
    return tuple(corner), tuple(sizes)


def _box(corner, size) -> tuple:
    return (slice(None),) + tuple(slice(c, c + s) for c, s in zip(corner, size))


def _to_like(noise: np.ndarray, data):
    if isinstance(data, torch.Tensor):
        return torch.from_numpy(noise).to(device=data.device, dtype=data.dtype, non_blocking=True)
    return noise.astype(data.dtype, copy=False)


def _noise_dtype(data):
    dtype = data.dtype
    if isinstance(data, torch.Tensor):
        return {torch.float64: np.float64, torch.float16: np.float16}.get(dtype, np.float32)
    return dtype if dtype in (np.float16, np.float32, np.float64) else np.float32


class _RandPainting(RandomizableTransform):
    """Shared draw bookkeeping of the two painting transforms."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]
    min_side = 1
    rule = ""

    def __init__(self, prob: float, max_blocks: int, continue_prob: float) -> None:
        RandomizableTransform.__init__(self, prob)
        if max_blocks < 1:
            raise ValueError(f"max_blocks must be >= 1, got {max_blocks}.")
        if not 0.0 <= continue_prob <= 1.0:
            raise ValueError(f"continue_prob must lie in [0, 1], got {continue_prob}.")
        self.max_blocks = max_blocks
        self.continue_prob = continue_prob
        self.blocks: list = []
        self._noise_seed: np.ndarray | None = None

    def check(self, img) -> None:
        check_unit_cube(img, type(self).__name__)
        check_min_spatial_size(img.shape[1:], self.min_side, type(self).__name__, self.rule)

    def _draw_blocks(self, spatial_shape) -> list:
        raise NotImplementedError

    def randomize(self, data=None) -> None:
        """Draw whether to paint, the blocks and the noise seed; ``data`` is the spatial shape."""
        super().randomize(None)
        self.blocks = []
        self._noise_seed = None
        if self._do_transform:
            if data is None:
                raise ValueError(f"{type(self).__name__}.randomize needs the spatial shape of the image.")
            self.blocks = self._draw_blocks(tuple(int(s) for s in data))
            self._noise_seed = self.R.randint(0, 2**32, size=4, dtype=np.uint64)

    def _noise(self, shape, data):
        rng = np.random.Generator(np.random.SFC64(self._noise_seed))
        return _to_like(uniform_noise(rng, shape, _noise_dtype(data)), data)

    def __call__(self, img, randomize: bool = True):
        self.check(img)
        if randomize:
            self.randomize(img.shape[1:])
        return self.apply_draw(img)


class RandInPainting(_RandPainting):
    """
    Image in-painting of Models Genesis (Zhou et al., "Models Genesis", MICCAI 2019 / MedIA 2021).

    Up to ``max_blocks`` times, each time continuing only while a uniform draw is below
    ``continue_prob``, a block of side s // 6 .. s // 3 per axis, at least 3 voxels from the border,
    is filled with uniform [0, 1) noise; as in the reference one noise block serves all channels.
    Expects intensities in [0, 1] (ScaleIntensityRange normalises).

    Args:
        prob: probability of painting a cube. Defaults to 0.18 = 0.9 x 0.2, its rate in the full
            pipeline (painting 0.9, of which in-painting 0.2).
        max_blocks: most blocks. Defaults to 5.
        continue_prob: probability of each further block. Defaults to 0.95.
    """

    min_side = 8
    rule = "blocks of side s // 6 .. s // 3 with 3-voxel margins"

    def __init__(self, prob: float = 0.18, max_blocks: int = 5, continue_prob: float = 0.95) -> None:
        super().__init__(prob, max_blocks, continue_prob)

    def _draw_blocks(self, spatial_shape) -> list:
        return [inpaint_block(self.R, spatial_shape) for _ in range(block_count(self.R, self.max_blocks, self.continue_prob))]

    def apply_draw(self, img):
        """Paint ``img`` as last drawn (``img`` itself when the draw said no)."""
        if not self._do_transform or not self.blocks:
            return img
        data = plain(img)
        out = data.clone() if isinstance(data, torch.Tensor) else data.copy()
        sizes = [int(np.prod(size)) for _, size in self.blocks]
        noise = self._noise((sum(sizes),), data)
        offset = 0
        for (corner, size), count in zip(self.blocks, sizes):
            out[_box(corner, size)] = noise[offset : offset + count].reshape((1,) + size)
            offset += count
        return like(out, img)


class RandOutPainting(_RandPainting):
    """
    Image out-painting of Models Genesis (Zhou et al., "Models Genesis", MICCAI 2019 / MedIA 2021).

    The whole cube becomes uniform [0, 1) noise except inside one block, then up to
    ``max_blocks - 1`` more (each continuing while a uniform draw is below ``continue_prob``), where
    the original image is kept. Block side s - r with r in 3s // 7 .. 4s // 7 per axis, at least
    3 voxels from the border. Expects intensities in [0, 1] (ScaleIntensityRange normalises).

    Args:
        prob: probability of painting a cube. Defaults to 0.72 = 0.9 x 0.8, its rate in the full
            pipeline (painting 0.9, of which out-painting 0.8).
        max_blocks: most kept blocks, the first included. Defaults to 5.
        continue_prob: probability of each further block. Defaults to 0.95.
    """

    min_side = 14
    rule = "kept blocks of side s - (3s // 7 .. 4s // 7) with 3-voxel margins"

    def __init__(self, prob: float = 0.72, max_blocks: int = 5, continue_prob: float = 0.95) -> None:
        super().__init__(prob, max_blocks, continue_prob)

    def _draw_blocks(self, spatial_shape) -> list:
        first = outpaint_block(self.R, spatial_shape)
        extra = block_count(self.R, self.max_blocks - 1, self.continue_prob)
        return [first] + [outpaint_block(self.R, spatial_shape) for _ in range(extra)]

    def apply_draw(self, img):
        """Out-paint ``img`` as last drawn (``img`` itself when the draw said no)."""
        if not self._do_transform or not self.blocks:
            return img
        data = plain(img)
        out = self._noise(tuple(data.shape), data)
        for corner, size in self.blocks:
            box = _box(corner, size)
            out[box] = data[box]
        return like(out, img)


class RandInPaintingd(GenesisDictWrapper):
    """
    Dictionary form of :py:class:`RandInPainting`: the same blocks and noise for every key.

    Args:
        keys: keys of the images to paint.
        prob, max_blocks, continue_prob: as in :py:class:`RandInPainting`.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.18,
        max_blocks: int = 5,
        continue_prob: float = 0.95,
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

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.72,
        max_blocks: int = 5,
        continue_prob: float = 0.95,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, RandOutPainting(prob, max_blocks, continue_prob), allow_missing_keys)
