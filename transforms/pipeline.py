"""The whole Models Genesis corruption (``docs/method.md`` §2) as one MONAI dictionary transform."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import MAX_SEED, TransformBackends, ensure_tuple

from .containers import host_array, plain, wrap_like
from .flip import FLIP_CONTINUE_PROB, RandGenesisFlip
from .local_shuffle import LOCAL_SHUFFLE_PROB, RandLocalPixelShuffle
from .nonlinear_intensity import NONLINEAR_PROB, RandNonLinearIntensity
from .painting import INPAINT_PROB, PAINT_PROB, RandInPainting, RandOutPainting
from .validation import check_probabilities, check_unit_cube

__all__ = ["RandGenesisCorruptiond"]


def _copy(img):
    return img.clone() if isinstance(img, torch.Tensor) else np.array(img, copy=True)


class RandGenesisCorruptiond(RandomizableTransform, MapTransform):
    """
    Models Genesis corruption of a cube into a restoration pair (``docs/method.md`` §2).

    For each of ``keys``: flip (the target identically), write the flipped clean copy to the target
    key, then corrupt the image in place of the key by local pixel shuffling, the non-linear
    intensity curve and, with ``paint_prob``, in-painting (``inpaint_prob``) or else out-painting,
    in the reference's order and with its rates. Any step is switched off by a probability of 0 (the
    paper's ablations). Expects intensities in [0, 1]: window CT with
    ``ScaleIntensityRanged(keys, a_min=-1000, a_max=1000, b_min=0, b_max=1, clip=True)`` first.
    ``set_random_state`` seeds this transform and every step.

    The cube is checked once and, on the CPU, every step works on one numpy view of it; the image
    and the target go back in the container the cube came in (a MetaTensor keeps its metadata).
    The same seed gives the same pair for a numpy array, a CPU tensor and a MetaTensor.

    Args:
        keys: keys of the cubes to corrupt (channel-first, C x H x W x D).
        target_key: key (or one key per entry of ``keys``) receiving the clean flipped cube.
        flip_prob: probability of each further flip draw (up to 3; ``RandGenesisFlip``'s
            ``continue_prob``). Defaults to 0.4.
        local_shuffle_prob: probability of local pixel shuffling. Defaults to 0.5.
        nonlinear_prob: probability of the non-linear intensity curve. Defaults to 0.9.
        paint_prob: probability of painting. Defaults to 0.9.
        inpaint_prob: share of painting done as in-painting, the rest out-painting. Defaults to 0.2.
        painted_key: None (the default: nothing extra is computed), or a key (one per entry of
            ``keys``) receiving a (1, H, W, D) bool mask of the voxels painting replaced by noise
            (all False when the cube is not painted), for restoration metrics on held-out cubes.
        allow_missing_keys: don't raise when a key is missing.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        keys: KeysCollection,
        target_key: str | Sequence[str] = "target",
        flip_prob: float = FLIP_CONTINUE_PROB,
        local_shuffle_prob: float = LOCAL_SHUFFLE_PROB,
        nonlinear_prob: float = NONLINEAR_PROB,
        paint_prob: float = PAINT_PROB,
        inpaint_prob: float = INPAINT_PROB,
        painted_key: str | Sequence[str] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.target_keys = ensure_tuple(target_key)
        if len(self.target_keys) != len(self.keys):
            raise ValueError(f"target_key needs one key per entry of keys {self.keys}, got {self.target_keys}.")
        if set(self.target_keys) & set(self.keys):
            raise ValueError(f"target_key {self.target_keys} must differ from keys {self.keys}.")
        self.painted_keys = None if painted_key is None else ensure_tuple(painted_key)
        if self.painted_keys is not None and len(self.painted_keys) != len(self.keys):
            raise ValueError(f"painted_key needs one key per entry of keys {self.keys}, got {self.painted_keys}.")
        if self.painted_keys is not None and set(self.painted_keys) & (set(self.keys) | set(self.target_keys)):
            raise ValueError(
                f"painted_key {self.painted_keys} must differ from keys {self.keys} and target_key {self.target_keys}.")
        check_probabilities(
            flip_prob=flip_prob,
            local_shuffle_prob=local_shuffle_prob,
            nonlinear_prob=nonlinear_prob,
            paint_prob=paint_prob,
            inpaint_prob=inpaint_prob,
        )
        self.paint_prob, self.inpaint_prob = paint_prob, inpaint_prob
        self.flip = RandGenesisFlip(continue_prob=flip_prob)
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
            self.local_shuffle.check_shape(spatial, name)
        if self.paint_prob > 0 and self.inpaint_prob > 0:
            self.inpaint.check_shape(spatial, name)
        if self.paint_prob > 0 and self.inpaint_prob < 1:
            self.outpaint.check_shape(spatial, name)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        painted_keys = self.painted_keys or (None,) * len(self.keys)
        for key, target_key, painted_key in self.key_iterator(d, self.target_keys, painted_keys):
            original = d[key]
            data = plain(original)  # a MetaTensor's every attribute access and op would go through its dispatch
            self._check(data, key)
            self.randomize(tuple(data.shape[1:]))
            host = host_array(data)
            work = data if host is None else host  # the steps' results are wrapped once, below
            flipped = self.flip.apply_draw(work)
            img = self.nonlinear.apply_draw(self.local_shuffle.apply_draw(flipped))
            if self.painter is not None:
                img = self.painter.apply_draw(img)
            # Every step returns a new array when it acts; copy only where the target would alias.
            target = flipped if flipped is not work and img is not flipped else _copy(flipped)
            d[key] = wrap_like(img, original)
            d[target_key] = wrap_like(target, original)
            if painted_key is not None:
                spatial = tuple(data.shape[1:])
                mask = np.zeros(spatial, bool) if self.painter is None else self.painter.painted_mask(spatial)
                d[painted_key] = wrap_like(mask[None], original)
        return d
