"""Models Genesis local pixel shuffling (``docs/method.md`` §2.2), array and dictionary forms, and its rules."""

from __future__ import annotations

import math

import torch
from monai.config import KeysCollection
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends

from .containers import host_array, plain, wrap_like
from .dict_wrapper import GenesisDictWrapper
from .kernels import shuffle_cpu, shuffle_torch
from .validation import check_min_spatial_size, check_unit_cube

__all__ = [
    "RandLocalPixelShuffle",
    "RandLocalPixelShuffled",
    "LOCAL_SHUFFLE_PROB",
    "NUM_BOXES",
    "BOX_DIVISOR",
    "MIN_SIDE",
    "MIN_SIDE_RULE",
    "max_block_sizes",
    "check_shuffle_shape",
]

LOCAL_SHUFFLE_PROB = 0.5  # share of cubes shuffled
NUM_BOXES = 10_000  # boxes per shuffled cube
BOX_DIVISOR = 10  # box sides are 1 .. side // BOX_DIVISOR per axis
MIN_SIDE = BOX_DIVISOR  # smallest cube side that admits a box
MIN_SIDE_RULE = f"local shuffling boxes are 1 .. side // {BOX_DIVISOR} voxels per axis"
# Local shuffling is meant for pretraining cubes (64 x 64 x 32 moves about 250,000 box voxels);
# beyond this many expected box voxels per draw it asks for a crop instead of exhausting memory.
_MAX_EXPECTED_BOX_VOXELS = 30_000_000


def max_block_sizes(spatial_shape) -> tuple:
    """Largest box side per axis: side // BOX_DIVISOR."""
    return tuple(int(s) // BOX_DIVISOR for s in spatial_shape)


def check_shuffle_shape(spatial_shape, name: str, num_blocks: int = NUM_BOXES, max_block_size=None) -> None:
    """A ValueError naming ``name`` when boxes do not fit ``spatial_shape`` or one draw would move a whole volume."""
    spatial = tuple(int(s) for s in spatial_shape)
    if max_block_size is None:
        check_min_spatial_size(spatial, MIN_SIDE, name, MIN_SIDE_RULE)
        max_block = max_block_sizes(spatial)
    elif any(m < 1 or m > s for m, s in zip(max_block_size, spatial)):
        raise ValueError(f"{name}: max_block_size {tuple(max_block_size)} must lie in 1 .. {spatial}.")
    else:
        max_block = tuple(max_block_size)
    expected = num_blocks * math.prod((m + 1) / 2 for m in max_block)
    if expected > _MAX_EXPECTED_BOX_VOXELS:
        raise ValueError(
            f"local pixel shuffling of a {tuple(spatial_shape)} image with {num_blocks} boxes up to {tuple(max_block)} "
            f"would move about {expected:.3g} voxels; crop pretraining cubes (e.g. 64 x 64 x 32) first."
        )


class RandLocalPixelShuffle(RandomizableTransform):
    """
    Local pixel shuffling of Models Genesis (``docs/method.md`` §2.2): ``num_blocks`` times, a box of
    random size (1 .. side // 10 per axis) at a random place is taken from the *unshuffled* image,
    its voxels permuted uniformly at random, and written back; later boxes overwrite earlier ones.
    All channels move together. Values are only moved, so any dtype and intensity range works.

    Numpy arrays, CPU tensors and MetaTensors run the compiled kernel on the same draw, so one seed
    gives one result in every container; CUDA tensors run the batched torch kernel (batch of one,
    its boxes drawn from a torch generator seeded by this transform).

    Args:
        prob: probability of shuffling a cube. Defaults to 0.5.
        num_blocks: number of boxes. Defaults to 10,000.
        max_block_size: largest box side per spatial axis; defaults to (H // 10, W // 10, D // 10).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, prob: float = LOCAL_SHUFFLE_PROB, num_blocks: int = NUM_BOXES, max_block_size=None) -> None:
        RandomizableTransform.__init__(self, prob)
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}.")
        self.num_blocks = num_blocks
        self.max_block_size = None if max_block_size is None else tuple(int(m) for m in max_block_size)
        self._seed: int | None = None

    def _max_block(self, spatial_shape) -> tuple:
        return self.max_block_size or max_block_sizes(spatial_shape)

    def check(self, img) -> None:
        """Raise a ValueError naming the problem unless ``img`` can be shuffled."""
        check_unit_cube(img, type(self).__name__, check_range=False)
        self.check_shape(img.shape[1:], type(self).__name__)

    def check_shape(self, spatial_shape, name: str) -> None:
        """Raise a ValueError naming ``name`` unless this transform's boxes fit ``spatial_shape``."""
        check_shuffle_shape(spatial_shape, name, self.num_blocks, self.max_block_size)

    def randomize(self, data=None) -> None:
        """Draw whether to shuffle and the 64-bit seed from which the boxes and their permutations follow."""
        super().randomize(None)
        self._seed = None
        if self._do_transform:
            a, b = (int(u * 2.0**53) for u in self.R.random_sample(2))  # doubles are k / 2**53: exact
            self._seed = (a << 11 ^ b) & 0xFFFFFFFFFFFFFFFF

    def apply_draw(self, img):
        """Shuffle a checked ``img`` as last drawn (``img`` itself when the draw said no)."""
        if not self._do_transform or self._seed is None:
            return img
        shape = tuple(img.shape[1:])
        host = host_array(img)
        if host is None:
            data = plain(img)
            generator = torch.Generator(device=data.device).manual_seed(self._seed >> 1)
            out = shuffle_torch.local_shuffle_batch(data[None], self._max_block(shape), self.num_blocks, generator)[0]
            return wrap_like(out, img)
        src_of = shuffle_cpu.source_map(shape, self._max_block(shape), self.num_blocks, self._seed)
        return wrap_like(shuffle_cpu.gather(host, src_of), img)

    def __call__(self, img, randomize: bool = True):
        data = plain(img)  # checks and kernels see the plain array; the result goes back in img's container
        self.check(data)
        if randomize:
            self.randomize()
        out = self.apply_draw(data)
        return img if out is data else wrap_like(out, img)


class RandLocalPixelShuffled(GenesisDictWrapper):
    """
    Dictionary form of :py:class:`RandLocalPixelShuffle`: the same boxes and permutations for every key.

    Args:
        keys: keys of the images to shuffle (one spatial shape).
        prob, num_blocks, max_block_size: as in :py:class:`RandLocalPixelShuffle`.
        allow_missing_keys: don't raise when a key is missing.
    """

    backend = RandLocalPixelShuffle.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = LOCAL_SHUFFLE_PROB,
        num_blocks: int = NUM_BOXES,
        max_block_size=None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, RandLocalPixelShuffle(prob, num_blocks, max_block_size), allow_missing_keys)
