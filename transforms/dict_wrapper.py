"""Base of the dictionary twins: one draw of the wrapped array transform, applied to every key."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import TransformBackends

from .containers import plain, wrap_like

__all__ = ["GenesisDictWrapper"]


class GenesisDictWrapper(RandomizableTransform, MapTransform):
    """
    Dictionary form of a Genesis array transform: checks each key's image once, draws once, and
    applies that draw to all ``keys`` (an image and its label move alike).

    Args:
        keys: keys of the images to transform; they must share one spatial shape.
        transform: the array transform (its ``check(img)``, ``randomize(spatial_shape)`` and ``apply_draw(img)``).
        allow_missing_keys: don't raise when a key is missing.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, keys: KeysCollection, transform, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.transform = transform

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.transform.set_random_state(seed, state)
        return self

    def randomize(self, data=None) -> None:
        """Draw the wrapped transform for images of spatial shape ``data``."""
        self.transform.randomize(data)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        images = {key: plain(d[key]) for key in keys}  # checks and kernels see plain arrays
        for key in keys:
            self.transform.check(images[key])
        shapes = {tuple(images[k].shape[1:]) for k in keys}
        if len(shapes) > 1:
            raise ValueError(
                f"{type(self).__name__} applies one draw to all keys, so they need one spatial shape; "
                f"got {dict((k, tuple(d[k].shape)) for k in keys)}."
            )
        self.randomize(shapes.pop())
        for key in keys:
            out = self.transform.apply_draw(images[key])
            d[key] = d[key] if out is images[key] else wrap_like(out, d[key])
        return d
