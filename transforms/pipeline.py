"""The whole Models Genesis corruption pipeline as one MONAI dictionary transform."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import MAX_SEED, ensure_tuple

from .flip import RandGenesisFlip
from .local_shuffle import RandLocalPixelShuffle
from .nonlinear_intensity import RandNonLinearIntensity
from .painting import RandInPainting, RandOutPainting
from .validation import check_min_spatial_size, check_probabilities, check_unit_cube

__all__ = ["RandGenesisCorruptiond"]


def _copy(img):
    return img.clone() if isinstance(img, torch.Tensor) else np.array(img, copy=True)


class RandGenesisCorruptiond(RandomizableTransform, MapTransform):
    """
    Models Genesis corruption of a cube into a restoration pair (Zhou et al., MICCAI 2019 / MedIA 2021).

    For each of ``keys``: flip (the target identically), write the flipped clean copy to the target
    key, then corrupt the image in place of the key by local pixel shuffling, the non-linear
    intensity curve and, with ``paint_prob``, in-painting (``inpaint_prob``) or else out-painting,
    in the reference's order and with its rates. Any step is switched off by a probability of 0 (the
    paper's ablations). Expects intensities in [0, 1]: window CT with
    ``ScaleIntensityRanged(keys, a_min=-1000, a_max=1000, b_min=0, b_max=1, clip=True)`` first.
    ``set_random_state`` seeds this transform and every step.

    Args:
        keys: keys of the cubes to corrupt (channel-first, C x H x W x D).
        target_key: key (or one key per entry of ``keys``) receiving the clean flipped cube.
        flip_prob: probability of each further flip draw (up to 3). Defaults to 0.4.
        local_shuffle_prob: probability of local pixel shuffling. Defaults to 0.5.
        nonlinear_prob: probability of the non-linear intensity curve. Defaults to 0.9.
        paint_prob: probability of painting. Defaults to 0.9.
        inpaint_prob: share of painting done as in-painting, the rest out-painting. Defaults to 0.2.
        allow_missing_keys: don't raise when a key is missing.
    """

    backend = RandGenesisFlip.backend

    def __init__(
        self,
        keys: KeysCollection,
        target_key: str | Sequence[str] = "target",
        flip_prob: float = 0.4,
        local_shuffle_prob: float = 0.5,
        nonlinear_prob: float = 0.9,
        paint_prob: float = 0.9,
        inpaint_prob: float = 0.2,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.target_keys = ensure_tuple(target_key)
        if len(self.target_keys) != len(self.keys):
            raise ValueError(f"target_key needs one key per entry of keys {self.keys}, got {self.target_keys}.")
        if set(self.target_keys) & set(self.keys):
            raise ValueError(f"target_key {self.target_keys} must differ from keys {self.keys}.")
        check_probabilities(
            flip_prob=flip_prob,
            local_shuffle_prob=local_shuffle_prob,
            nonlinear_prob=nonlinear_prob,
            paint_prob=paint_prob,
            inpaint_prob=inpaint_prob,
        )
        self.paint_prob, self.inpaint_prob = paint_prob, inpaint_prob
        self.flip = RandGenesisFlip(prob=flip_prob)
        self.local_shuffle = RandLocalPixelShuffle(prob=local_shuffle_prob)
        self.nonlinear = RandNonLinearIntensity(prob=nonlinear_prob)
        # Painting is decided here (paint?, then in or out), so both painters always apply when asked.
        self.inpaint = RandInPainting(prob=1.0)
        self.outpaint = RandOutPainting(prob=1.0)
        self.painter = None

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        for step in (self.flip, self.local_shuffle, self.nonlinear, self.inpaint, self.outpaint):
            step.set_random_state(seed=int(self.R.randint(MAX_SEED, dtype="uint32")))
        return self

    def randomize(self, data=None) -> None:
        """Draw every step for a cube of spatial shape ``data``."""
        self.flip.randomize()
        self.local_shuffle.randomize(data)
        self.nonlinear.randomize()
        self.painter = None
        if self.R.rand() < self.paint_prob:
            self.painter = self.inpaint if self.R.rand() < self.inpaint_prob else self.outpaint
            self.painter.randomize(data)

    def _check(self, img, key) -> None:
        name = f"{type(self).__name__} (key '{key}')"
        check_unit_cube(img, name)
        spatial = img.shape[1:]
        if self.local_shuffle.prob > 0:
            check_min_spatial_size(spatial, 10, name, "local shuffling boxes are 1 .. side // 10 voxels")
        if self.paint_prob > 0 and self.inpaint_prob > 0:
            check_min_spatial_size(spatial, RandInPainting.min_side, name, "in-painting " + RandInPainting.rule)
        if self.paint_prob > 0 and self.inpaint_prob < 1:
            check_min_spatial_size(spatial, RandOutPainting.min_side, name, "out-painting " + RandOutPainting.rule)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key, target_key in self.key_iterator(d, self.target_keys):
            original = d[key]
            self._check(original, key)
            self.randomize(tuple(original.shape[1:]))
            flipped = self.flip.apply_draw(original)
            img = self.nonlinear.apply_draw(self.local_shuffle.apply_draw(flipped))
            if self.painter is not None:
                img = self.painter.apply_draw(img)
            d[key] = img
            # Every step returns a new array when it acts; copy only where the target would alias.
            d[target_key] = flipped if flipped is not original and img is not flipped else _copy(flipped)
        return d
