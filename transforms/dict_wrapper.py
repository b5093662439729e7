"""Base of the dictionary twins: one draw of the wrapped array transform, applied to every key."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform

__all__ = ["GenesisDictWrapper"]


class GenesisDictWrapper(RandomizableTransform, MapTransform):
    """
    Dictionary form of a Genesis array transform: draws once, applies that draw to all ``keys``.

    Args:
        keys: keys of the images to transform; they must share one spatial shape.
        transform: the array transform (its ``randomize(spatial_shape)`` and ``__call__(img, randomize)``).
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(self, keys: KeysCollection, transform, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.transform = transform
        self.backend = transform.backend

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.transform.set_random_state(seed, state)
        return self

    def randomize(self, data=None) -> None:
        self.transform.randomize(data)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        shapes = {tuple(d[k].shape[1:]) for k in keys}
        if len(shapes) > 1:
            raise ValueError(
                f"{type(self).__name__} applies one draw to all keys, so they need one spatial shape; "
                f"got {dict((k, tuple(d[k].shape)) for k in keys)}."
            )
        self.transform.check(d[keys[0]])
        self.randomize(shapes.pop())
        for key in keys:
            d[key] = self.transform(d[key], randomize=False)
        return d
