"""Models Genesis flip (``docs/method.md`` §2.1): repeated random flips applied alike to the input and the restoration target."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends

from .containers import host_array, plain, wrap_like
from .dict_wrapper import GenesisDictWrapper
from .validation import check_unit_cube

__all__ = ["RandGenesisFlip", "RandGenesisFlipd", "flip_spatial", "FLIP_CONTINUE_PROB", "MAX_FLIPS", "FLIP_AXES"]

FLIP_CONTINUE_PROB = 0.4  # probability of each further flip draw
MAX_FLIPS = 3  # most flip draws
FLIP_AXES = (0, 1)  # spatial axes offered, with "nothing" (the axial axis keeps head-to-feet order)


def flip_spatial(img, spatial_axes: Sequence[int]):
    """A flipped copy of a channel-first image along the given spatial axes (any container, metadata kept)."""
    if not spatial_axes:
        return img
    dims = tuple(a + 1 for a in spatial_axes)
    host = host_array(img)
    out = torch.flip(plain(img), dims) if host is None else np.ascontiguousarray(np.flip(host, dims))
    return wrap_like(out, img)


class RandGenesisFlip(RandomizableTransform):
    """
    Flip step of Models Genesis (``docs/method.md`` §2.1): up to ``max_flips`` times, while a
    uniform draw is below ``continue_prob``, pick one of the options
    uniformly (repeats allowed) and flip along it; axes picked an odd number of times end up flipped.
    The default options are rows, columns and "nothing", which is what the reference does (it picks
    among the first three axes of a one-channel cube: the channel axis changes nothing and the axial
    axis is never flipped, keeping head-to-feet orientation plausible).
    Metadata passes through unchanged: this is a training-time corruption, not a geometric transform.

    Args:
        continue_prob: probability of each further flip draw (the first included). Defaults to 0.4.
        prob: probability of applying the flip rule at all. Defaults to 1.0 (the reference's rule).
        max_flips: most flip draws. Defaults to 3.
        spatial_axes: spatial axes that may be flipped (0 = rows, 1 = columns, 2 = slices). Defaults to (0, 1).
        include_noop: also offer a "do nothing" option, as the reference does. Defaults to True.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        continue_prob: float = FLIP_CONTINUE_PROB,
        max_flips: int = MAX_FLIPS,
        spatial_axes: Sequence[int] = FLIP_AXES,
        include_noop: bool = True,
        prob: float = 1.0,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        if not 0.0 <= continue_prob <= 1.0:
            raise ValueError(f"continue_prob must lie in [0, 1], got {continue_prob}.")
        self.continue_prob = continue_prob
        if max_flips < 0:
            raise ValueError(f"max_flips must be >= 0, got {max_flips}.")
        if any(a not in (0, 1, 2) for a in spatial_axes) or (not spatial_axes and not include_noop):
            raise ValueError(f"spatial_axes must be a non-empty subset of (0, 1, 2), got {tuple(spatial_axes)}.")
        self.max_flips = max_flips
        self.options = [None] * bool(include_noop) + list(spatial_axes)
        self.flip_axes: tuple[int, ...] = ()

    def randomize(self, data=None) -> None:
        """Draw the flips: which axes end up flipped (an odd number of picks)."""
        self.flip_axes = ()
        if self.prob < 1.0 and self.R.rand() >= self.prob:  # at prob 1 no draw, so the rule's stream is the reference's
            self._do_transform = False
            return
        counts: dict[int, int] = {}
        draws = 0
        while draws < self.max_flips and self.R.rand() < self.continue_prob:
            axis = self.options[self.R.randint(len(self.options))]
            if axis is not None:
                counts[axis] = counts.get(axis, 0) + 1
            draws += 1
        self.flip_axes = tuple(sorted(a for a, c in counts.items() if c % 2))
        self._do_transform = bool(self.flip_axes)

    def check(self, img) -> None:
        """Raise a ValueError naming the problem unless ``img`` is a channel-first (C, H, W, D) image."""
        check_unit_cube(img, type(self).__name__, check_range=False)

    def apply_draw(self, img):
        """Flip a checked ``img`` as last drawn (a copy when flipped, ``img`` itself otherwise)."""
        return flip_spatial(img, self.flip_axes)

    def __call__(self, img, randomize: bool = True):
        data = plain(img)  # checks and kernels see the plain array; the result goes back in img's container
        self.check(data)
        if randomize:
            self.randomize()
        out = self.apply_draw(data)
        return img if out is data else wrap_like(out, img)


class RandGenesisFlipd(GenesisDictWrapper):
    """
    Dictionary form of :py:class:`RandGenesisFlip`: the same flips for every key (e.g. image and target).

    Args:
        keys: keys of the images to flip.
        continue_prob, max_flips, spatial_axes, include_noop, prob: as in :py:class:`RandGenesisFlip`.
        allow_missing_keys: don't raise when a key is missing.
    """

    backend = RandGenesisFlip.backend

    def __init__(
        self,
        keys: KeysCollection,
        continue_prob: float = FLIP_CONTINUE_PROB,
        max_flips: int = MAX_FLIPS,
        spatial_axes: Sequence[int] = FLIP_AXES,
        include_noop: bool = True,
        prob: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, RandGenesisFlip(continue_prob, max_flips, spatial_axes, include_noop, prob), allow_missing_keys)
