"""Seed a random transform per item, so that each validation cube is corrupted the same way every epoch."""

from __future__ import annotations

import os
import zlib
from collections.abc import Hashable, Mapping, Sequence

from monai.transforms import MapTransform, Randomizable
from monai.utils import TransformBackends

__all__ = ["FixedSeedPerItemd"]


class FixedSeedPerItemd(MapTransform):
    """
    Apply a random (dictionary) transform with a seed derived from the item itself: the global
    ``seed`` and the file names / indices under ``id_keys``. The same item therefore gets the same
    random draw every epoch, in any data loader worker and in any order, which makes a validation
    loss on randomly corrupted cubes comparable across epochs (Models Genesis validates on
    corrupted cubes). Not ``Randomizable`` itself, so a ``CacheDataset`` may cache its output.

    Args:
        transform: the random transform to apply, e.g. a ``Compose`` of loading and corruption;
            it must have ``set_random_state``.
        seed: global seed, mixed into every item's seed. Defaults to 0.
        id_keys: keys whose values identify an item; only the base name of a path is used, so the
            draws do not depend on where the dataset lives. Defaults to ("image", "cube_index").
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]  # whatever the wrapped transform takes

    def __init__(self, transform: Randomizable, seed: int = 0, id_keys: Sequence[Hashable] = ("image", "cube_index")):
        super().__init__(keys=id_keys)
        if not callable(getattr(transform, "set_random_state", None)):
            raise ValueError(f"transform must have set_random_state (a MONAI Randomizable), got {type(transform).__name__}.")
        self.transform = transform
        self.seed = int(seed)

    def item_seed(self, data: Mapping) -> int:
        """The seed of one item: a CRC32 of the global seed and the item's identifying values."""
        ident = "|".join([str(self.seed)] + [os.path.basename(str(data[k])) for k in self.key_iterator(data)])
        return zlib.crc32(ident.encode())

    def __call__(self, data: Mapping):
        self.transform.set_random_state(seed=self.item_seed(data))
        return self.transform(data)
