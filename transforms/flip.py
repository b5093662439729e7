"""Models Genesis flip: repeated random flips applied alike to the input and the restoration target."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends

from .dict_wrapper import GenesisDictWrapper
from .type_utils import like, plain
from .validation import check_unit_cube

__all__ = ["RandGenesisFlip", "RandGenesisFlipd", "flip_spatial"]


def flip_spatial(img, spatial_axes: Sequence[int]):
    """A flipped copy of a channel-first image along the given spatial axes (numpy or torch)."""
    if not spatial_axes:
        return img
    dims = tuple(a + 1 for a in spatial_axes)
    data = plain(img)
    out = torch.flip(data, dims) if isinstance(data, torch.Tensor) else np.ascontiguousarray(np.flip(data, dims))
    return like(out, img)


class RandGenesisFlip(RandomizableTransform):
    """
    Flip step of Models Genesis (Zhou et al., "Models Genesis", MICCAI 2019 / MedIA 2021).

    Up to ``max_flips`` times, while a uniform draw is below ``prob``, pick one of the options
    uniformly (repeats allowed) and flip along it; axes picked an odd number of times end up flipped.
    The default options are rows, columns and "nothing", which is what the reference does (it picks
    among the first three axes of a one-channel cube: the channel axis changes nothing and the axial
    axis is never flipped, keeping head-to-feet orientation plausible).
    Metadata passes through unchanged: this is a training-time corruption, not a geometric transform.

    Args:
        prob: probability of each further flip draw. Defaults to 0.4.
        max_flips: most flip draws. Defaults to 3.
        spatial_axes: spatial axes that may be flipped (0 = rows, 1 = columns, 2 = slices). Defaults to (0, 1).
        include_noop: also offer a "do nothing" option, as the reference does. Defaults to True.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self, prob: float = 0.4, max_flips: int = 3, spatial_axes: Sequence[int] = (0, 1), include_noop: bool = True
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        if max_flips < 0:
            raise ValueError(f"max_flips must be >= 0, got {max_flips}.")
        if any(a not in (0, 1, 2) for a in spatial_axes) or (not spatial_axes and not include_noop):
            raise ValueError(f"spatial_axes must be a non-empty subset of (0, 1, 2), got {tuple(spatial_axes)}.")
        self.max_flips = max_flips
        self.options = [None] * bool(include_noop) + list(spatial_axes)
        self.flip_axes: tuple[int, ...] = ()

    def randomize(self, data=None) -> None:
        counts: dict[int, int] = {}
        draws = 0
        while draws < self.max_flips and self.R.rand() < self.prob:
            axis = self.options[self.R.randint(len(self.options))]
            if axis is not None:
                counts[axis] = counts.get(axis, 0) + 1
            draws += 1
        self.flip_axes = tuple(sorted(a for a, c in counts.items() if c % 2))
        self._do_transform = bool(self.flip_axes)

    def check(self, img) -> None:
        check_unit_cube(img, type(self).__name__, check_range=False)

    def apply_draw(self, img):
        """Flip ``img`` as last drawn (a copy when flipped, ``img`` itself otherwise)."""
        return flip_spatial(img, self.flip_axes)

    def __call__(self, img, randomize: bool = True):
        self.check(img)
        if randomize:
            self.randomize()
        return self.apply_draw(img)


class RandGenesisFlipd(GenesisDictWrapper):
    """
    Dictionary form of :py:class:`RandGenesisFlip`: the same flips for every key (e.g. image and target).

    Args:
        keys: keys of the images to flip.
        prob, max_flips, spatial_axes, include_noop: as in :py:class:`RandGenesisFlip`.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.4,
        max_flips: int = 3,
        spatial_axes: Sequence[int] = (0, 1),
        include_noop: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, RandGenesisFlip(prob, max_flips, spatial_axes, include_noop), allow_missing_keys)
