"""Models Genesis local pixel shuffling as a MONAI transform (array and dictionary forms)."""

from __future__ import annotations

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends

from .dict_wrapper import GenesisDictWrapper
from . import local_shuffle_compiled
from .local_shuffle_kernel import local_shuffle_indices, max_block_sizes
from .type_utils import like, plain
from .validation import check_min_spatial_size, check_unit_cube

__all__ = ["RandLocalPixelShuffle", "RandLocalPixelShuffled", "apply_voxel_indices"]


def apply_voxel_indices(img, dst: np.ndarray, src: np.ndarray):
    """Copy of a channel-first image with ``out[:, dst] = img[:, src]`` over flattened space."""
    data = plain(img)
    channels = data.shape[0]
    if isinstance(data, torch.Tensor):
        flat = data.reshape(channels, -1)
        dst_t = torch.from_numpy(dst).to(data.device, non_blocking=True)
        src_t = torch.from_numpy(src.astype(np.int64, copy=False)).to(data.device, non_blocking=True)
        out = flat.clone().index_copy_(1, dst_t, flat.index_select(1, src_t))
    else:
        flat = data.reshape(channels, -1)
        out = flat.copy()
        for channel in range(channels):  # 1-D take/assign: about twice as fast as 2-D fancy indexing
            out[channel][dst] = np.take(flat[channel], src)
    return like(out.reshape(data.shape), img)


class RandLocalPixelShuffle(RandomizableTransform):
    """
    Local pixel shuffling of Models Genesis (Zhou et al., "Models Genesis", MICCAI 2019 / MedIA 2021).

    ``num_blocks`` times, a box of random size (1 .. side // 10 per axis) at a random place is taken
    from the unshuffled image, its voxels permuted uniformly at random, and written back (later boxes
    overwrite earlier ones). All channels move together. Values are only moved, never changed, so
    any intensity range works. The voxel indices come from a compiled kernel
    (``local_shuffle_compiled``, numba) or, without numba, a vectorised one (``local_shuffle_kernel``);
    both draw the same boxes, and their permutations differ only in the random stream.

    Args:
        prob: probability of shuffling a cube. Defaults to 0.5.
        num_blocks: number of boxes. Defaults to 10,000.
        max_block_size: largest box side per spatial axis; defaults to (H // 10, W // 10, D // 10).
        compiled: use the compiled kernel; defaults to True where numba is installed.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, prob: float = 0.5, num_blocks: int = 10000, max_block_size=None, compiled: bool | None = None) -> None:
        RandomizableTransform.__init__(self, prob)
        if compiled and not local_shuffle_compiled.AVAILABLE:
            raise ValueError("compiled=True needs numba (pip install numba).")
        self.compiled = local_shuffle_compiled.AVAILABLE if compiled is None else bool(compiled)
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}.")
        self.num_blocks = num_blocks
        self.max_block_size = None if max_block_size is None else tuple(int(m) for m in max_block_size)
        self._seed_state: np.random.RandomState | None = None
        self._spatial_shape: tuple | None = None

    def _max_block(self, spatial_shape) -> tuple:
        return self.max_block_size or max_block_sizes(spatial_shape)

    def check(self, img) -> None:
        name = type(self).__name__
        check_unit_cube(img, name, check_range=False)
        if self.max_block_size is None:
            check_min_spatial_size(img.shape[1:], 10, name, "boxes are 1 .. side // 10 voxels per axis")
        elif any(m < 1 or m > s for m, s in zip(self.max_block_size, img.shape[1:])):
            raise ValueError(f"{name}: max_block_size {self.max_block_size} must lie in 1 .. {tuple(img.shape[1:])}.")

    def randomize(self, data=None) -> None:
        """Draw whether to shuffle and the seed of the box draws; ``data`` is the spatial shape."""
        super().randomize(None)
        self._spatial_shape = None if data is None else tuple(int(s) for s in data)
        # One 128-bit seed from self.R fixes all 60,000 box parameters and the permutation keys.
        self._seed_state = self.R.randint(0, 2**32, size=4, dtype=np.uint64) if self._do_transform else None

    def apply_draw(self, img):
        """Shuffle ``img`` as last drawn (``img`` itself when the draw said no)."""
        if not self._do_transform or self._seed_state is None:
            return img
        shape = tuple(img.shape[1:])
        rng = np.random.Generator(np.random.SFC64(self._seed_state))
        if not self.compiled:
            return apply_voxel_indices(img, *local_shuffle_indices(shape, rng, self.num_blocks, self._max_block(shape)))
        # The compiled sequential kernel is about twice as fast as the vectorised one on the CPU.
        src_of = local_shuffle_compiled.source_map(shape, rng, self.num_blocks, self._max_block(shape))
        data = plain(img)
        if isinstance(data, np.ndarray):
            return like(local_shuffle_compiled.shuffle_array(data, src_of), img)
        dst = np.flatnonzero(src_of >= 0)
        return apply_voxel_indices(img, dst, src_of[dst].astype(np.int64))

    def __call__(self, img, randomize: bool = True):
        self.check(img)
        if randomize:
            self.randomize(img.shape[1:])
        return self.apply_draw(img)


class RandLocalPixelShuffled(GenesisDictWrapper):
    """
    Dictionary form of :py:class:`RandLocalPixelShuffle`: the same boxes and permutations for every key.

    Args:
        keys: keys of the images to shuffle (one spatial shape).
        prob, num_blocks, max_block_size: as in :py:class:`RandLocalPixelShuffle`.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.5,
        num_blocks: int = 10000,
        max_block_size=None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, RandLocalPixelShuffle(prob, num_blocks, max_block_size), allow_missing_keys)
