"""Models Genesis in-painting and out-painting: blocks of uniform noise, or noise around kept blocks."""

from __future__ import annotations

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends

from .dict_wrapper import GenesisDictWrapper
from . import noise_compiled
from .random_draws import FLOATS, noise_at, uniform_noise
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


_TORCH_FLOATS = (torch.float16, torch.float32, torch.float64)


def _to_like(noise: np.ndarray, data):
    if isinstance(data, torch.Tensor):
        return torch.from_numpy(noise).to(device=data.device, dtype=data.dtype, non_blocking=True)
    return noise.astype(data.dtype, copy=False)


def _noise_dtype(data):
    dtype = data.dtype
    if isinstance(data, torch.Tensor):
        return {torch.float64: np.float64, torch.float16: np.float16}.get(dtype, np.float32)
    return dtype if dtype in FLOATS else np.float32


def _host_array(data):
    """``data`` as a numpy array sharing its memory when the kernels may take it (CPU, float16/32/64), else None."""
    if isinstance(data, torch.Tensor):
        # a tensor that requires grad is painted by torch indexing, so autograd sees the writes
        if data.device.type != "cpu" or data.dtype not in _TORCH_FLOATS or data.requires_grad:
            return None
        data = data.detach().numpy()
    return data if data.dtype in FLOATS else None


def _quantised(noise: np.ndarray, data):
    """Noise in ``data``'s type and dtype, floored to that dtype's precision so none rounds up to 1.0 (bfloat16)."""
    if isinstance(data, torch.Tensor) and data.dtype not in _TORCH_FLOATS:
        bits = int(round(-np.log2(torch.finfo(data.dtype).eps))) + 1
        noise = np.floor(noise * np.float32(2.0**bits)) * np.float32(2.0**-bits)
    return _to_like(noise, data)


def _draw_key(state: np.random.RandomState) -> tuple:
    """
    A noise key (three 32-bit words) cut from two uniform doubles (106 random bits).

    ``random_sample(2)`` costs half of ``randint(0, 2**32, size=3)`` and reads the same four 32-bit
    words of ``state`` as the earlier noise seed did, so the blocks drawn for later cubes are unchanged.
    """
    a, b = (int(u * 2.0**53) for u in state.random_sample(2))  # doubles are k / 2**53: exact
    return np.uint32(a & 0xFFFFFFFF), np.uint32(b & 0xFFFFFFFF), np.uint32(a >> 32 | (b >> 32 & 0x7FF) << 21)


def _block_array(blocks) -> np.ndarray:
    return np.array([corner + size for corner, size in blocks], dtype=np.int64).reshape(-1, 6)


def _box_noise(key, spatial_shape, corner, size, dtype) -> np.ndarray:
    """Noise of one in-painting block, shape (1,) + size: ``noise_at`` of each voxel's spatial flat index."""
    x, y, z = (np.arange(c, c + s) for c, s in zip(corner, size))
    _, width, depth = spatial_shape
    return noise_at(key, (x[:, None, None] * width + y[None, :, None]) * depth + z, dtype)[None]


def _inpaint_host(out: np.ndarray, blocks, key) -> None:
    """In-paint the host array ``out`` (C, H, W, D) in place, every channel with the same noise."""
    if noise_compiled.AVAILABLE and out.flags.c_contiguous:
        noise_compiled.inpaint(out, _block_array(blocks), key)
        return
    for corner, size in blocks:
        out[_box(corner, size)] = _box_noise(key, out.shape[1:], corner, size, out.dtype)


def _outpaint_host(data: np.ndarray, out: np.ndarray, blocks, key) -> None:
    """Write the C-contiguous ``out``: ``data`` inside the kept blocks, noise of the flat index elsewhere."""
    if noise_compiled.AVAILABLE:
        noise_compiled.outpaint(data, out, _block_array(blocks), key)
        return
    out[...] = uniform_noise(key, out.shape, out.dtype)
    for corner, size in blocks:
        box = _box(corner, size)
        out[box] = data[box]


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
        self._noise_key: tuple | None = None

    def check(self, img) -> None:
        check_unit_cube(img, type(self).__name__)
        check_min_spatial_size(img.shape[1:], self.min_side, type(self).__name__, self.rule)

    def _draw_blocks(self, spatial_shape) -> list:
        raise NotImplementedError

    def randomize(self, data=None) -> None:
        """Draw whether to paint, the blocks and the noise key; ``data`` is the spatial shape."""
        super().randomize(None)
        self.blocks = []
        self._noise_key = None
        if self._do_transform:
            if data is None:
                raise ValueError(f"{type(self).__name__}.randomize needs the spatial shape of the image.")
            self.blocks = self._draw_blocks(tuple(int(s) for s in data))
            self._noise_key = _draw_key(self.R)

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
        host = _host_array(out)
        if host is not None:  # numpy or CPU tensor: painted in place through the shared memory
            _inpaint_host(host, self.blocks, self._noise_key)
        else:  # other devices and dtypes: the same noise, computed on the host, then moved
            for corner, size in self.blocks:
                noise = _box_noise(self._noise_key, data.shape[1:], corner, size, _noise_dtype(data))
                out[_box(corner, size)] = _quantised(noise, data)
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
        host = _host_array(data)
        if host is not None:  # numpy or CPU tensor: one pass writing noise and kept blocks
            out = np.empty(data.shape, host.dtype)
            _outpaint_host(host, out, self.blocks, self._noise_key)
            out = torch.from_numpy(out) if isinstance(data, torch.Tensor) else out
        else:  # other devices and dtypes: the same noise, computed on the host, then moved
            out = _quantised(uniform_noise(self._noise_key, tuple(data.shape), _noise_dtype(data)), data)
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
