"""The Models Genesis corruption (``docs/method.md`` §2) of a whole batch already on the training device (torch)."""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import Randomizable
from monai.utils import TransformBackends

from .flip import FLIP_AXES, FLIP_CONTINUE_PROB, MAX_FLIPS
from .kernels import intensity_torch, noise_torch, shuffle_torch
from .local_shuffle import LOCAL_SHUFFLE_PROB, NUM_BOXES, check_shuffle_shape, max_block_sizes
from .nonlinear_intensity import INVERT_PROB, NONLINEAR_PROB, TABLE_SIZE, power_coefficients
from .painting import (
    CONTINUE_PROB,
    INPAINT_PROB,
    MARGIN,
    MAX_BLOCKS,
    PAINT_PROB,
    check_inpaint_shape,
    check_outpaint_shape,
    inpaint_side_range,
    outpaint_side_range,
)
from .validation import NORMALISE_HINT, UNIT_RANGE_TOLERANCE, check_probabilities

__all__ = ["RandGenesisCorruptionBatch"]


class RandGenesisCorruptionBatch(Randomizable):
    """
    Models Genesis corruption (``docs/method.md`` §2) of a (B, C, H, W, D) batch on its device.

    Same steps, order and rates as :py:class:`RandGenesisCorruptiond`, but every random number is
    drawn on the batch's device and every step is a batched tensor op, each cube with its own
    draws, so a GPU run never waits on CPU corruption. Returns ``(corrupted, target)``, both of the
    input's shape, dtype and device; the target is the flipped clean batch. Seed with
    ``set_random_state`` (a torch Generator per device); unseeded, it draws from torch's global
    generator, which ``monai.utils.set_determinism`` seeds. Meant for GPUs: on a CPU the per-cube
    :py:class:`RandGenesisCorruptiond` in DataLoader workers is much faster
    (``benchmarks/bench_transforms.py`` compares them).

    Args:
        flip_prob: probability of each further flip draw (up to 3). Defaults to 0.4.
        local_shuffle_prob: probability of local pixel shuffling. Defaults to 0.5.
        nonlinear_prob: probability of the non-linear intensity curve. Defaults to 0.9.
        paint_prob: probability of painting. Defaults to 0.9.
        inpaint_prob: share of painting done as in-painting, the rest out-painting. Defaults to 0.2.
        validate: check the value range first (one device sync per batch). Defaults to True.
        num_shuffle_blocks: boxes per local shuffling. Defaults to 10,000.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        flip_prob: float = FLIP_CONTINUE_PROB,
        local_shuffle_prob: float = LOCAL_SHUFFLE_PROB,
        nonlinear_prob: float = NONLINEAR_PROB,
        paint_prob: float = PAINT_PROB,
        inpaint_prob: float = INPAINT_PROB,
        validate: bool = True,
        num_shuffle_blocks: int = NUM_BOXES,
    ) -> None:
        check_probabilities(
            flip_prob=flip_prob,
            local_shuffle_prob=local_shuffle_prob,
            nonlinear_prob=nonlinear_prob,
            paint_prob=paint_prob,
            inpaint_prob=inpaint_prob,
        )
        self.flip_prob, self.local_shuffle_prob, self.nonlinear_prob = flip_prob, local_shuffle_prob, nonlinear_prob
        self.paint_prob, self.inpaint_prob = paint_prob, inpaint_prob
        self.validate = validate
        self.num_shuffle_blocks = num_shuffle_blocks
        self._seed: int | None = None
        self._generators: dict = {}

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self._seed = None if seed is None and state is None else int(self.R.randint(2**31 - 1))
        self._generators = {}
        return self

    def randomize(self, data=None) -> None:
        """Draws happen inside ``__call__`` on the batch's device."""

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self._seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self._seed)
        return self._generators[key]

    def _check(self, x) -> None:
        name = type(self).__name__
        if not isinstance(x, torch.Tensor) or x.ndim != 5:
            shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise ValueError(f"{name} expects a (B, C, H, W, D) torch tensor, got {shape}.")
        if not x.dtype.is_floating_point:
            raise ValueError(f"{name} expects a floating-point batch in [0, 1], got dtype {x.dtype}; {NORMALISE_HINT}.")
        spatial = x.shape[2:]
        if self.local_shuffle_prob > 0:
            check_shuffle_shape(spatial, name, self.num_shuffle_blocks)
        if self.paint_prob > 0 and self.inpaint_prob > 0:
            check_inpaint_shape(spatial, name)
        if self.paint_prob > 0 and self.inpaint_prob < 1:
            check_outpaint_shape(spatial, name)
        if self.validate and x.numel():
            lo, hi = (float(v) for v in torch.aminmax(x.detach()))
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise ValueError(f"{name} got NaN or infinite voxels; clean the batch first.")
            if lo < -UNIT_RANGE_TOLERANCE or hi > 1 + UNIT_RANGE_TOLERANCE:
                raise ValueError(f"{name} expects values in [0, 1], found [{lo:.4g}, {hi:.4g}]; {NORMALISE_HINT}.")

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x)
        x = x.as_tensor() if hasattr(x, "as_tensor") else x
        g = self._generator(x.device)
        target = self._flip(x, g)
        out = target
        shuffle = self._draw(x.shape[0], g, x.device) < self.local_shuffle_prob
        if self.local_shuffle_prob > 0 and bool(shuffle.any()):  # one sync per batch: only the chosen cubes
            chosen = shuffle.nonzero().squeeze(1)
            out = out.clone()
            max_block = max_block_sizes(x.shape[2:])
            out[chosen] = shuffle_torch.local_shuffle_batch(out[chosen], max_block, self.num_shuffle_blocks, g)
        out = self._nonlinear(out, g)
        out = self._paint(out, g)
        return (out.clone() if out is target else out), target

    @staticmethod
    def _draw(shape, generator, device, dtype=torch.float64) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=device, dtype=dtype)

    def _flip(self, x: torch.Tensor, g) -> torch.Tensor:
        """Up to MAX_FLIPS draws below flip_prob, each picking nothing or one of FLIP_AXES."""
        batch = x.shape[0]
        go_on = torch.cumprod((self._draw((batch, MAX_FLIPS), g, x.device) < self.flip_prob).long(), dim=1)
        choice = torch.randint(0, len(FLIP_AXES) + 1, (batch, MAX_FLIPS), generator=g, device=x.device)
        out = x
        for option, axis in enumerate(FLIP_AXES, start=1):  # option 0: nothing
            odd = ((go_on * (choice == option)).sum(1) % 2).bool().view(batch, 1, 1, 1, 1)
            out = torch.where(odd, out.flip(axis + 2), out)
        return out if out is not x else x.clone()

    def _nonlinear(self, x: torch.Tensor, g) -> torch.Tensor:
        """Per-cube Bezier curve (monotone or inverted), exact interpolation through a float64 table."""
        if self.nonlinear_prob == 0:
            return x
        batch, device = x.shape[0], x.device
        apply = self._draw(batch, g, device) < self.nonlinear_prob
        a, b, c, d = self._draw((4, batch, 1), g, device)
        inverted = (self._draw(batch, g, device) < INVERT_PROB).view(batch, 1)
        mapped = intensity_torch.batched_curve_lookup(x, power_coefficients(a, c), power_coefficients(b, d), inverted, TABLE_SIZE)
        return torch.where(apply.view(batch, 1, 1, 1, 1), mapped, x)

    def _boxes(self, g, device, batch, spatial, first_always: bool, side_range) -> torch.Tensor:
        """Union mask (B, H, W, D) of up to MAX_BLOCKS blocks per cube, continuing while draws stay below CONTINUE_PROB."""
        go_on = torch.cumprod((self._draw((batch, MAX_BLOCKS), g, device) < CONTINUE_PROB).long(), dim=1).bool()
        if first_always:  # out-painting: one block, then up to MAX_BLOCKS - 1 more
            go_on = torch.cat([torch.ones_like(go_on[:, :1]), go_on[:, :-1]], dim=1)
        sizes, corners = [], []
        for side in spatial:
            lo, hi = side_range(side)
            size = lo + (self._draw((batch, MAX_BLOCKS), g, device) * (hi - lo + 1)).long()
            sizes.append(size)
            corners.append(MARGIN + (self._draw((batch, MAX_BLOCKS), g, device) * (side - size - 2 * MARGIN + 1)).long())
        return noise_torch.box_union_mask(torch.stack(corners, -1), torch.stack(sizes, -1), go_on, spatial)

    def _paint(self, x: torch.Tensor, g) -> torch.Tensor:
        if self.paint_prob == 0:
            return x
        batch, channels, *spatial = x.shape
        device = x.device
        paint = self._draw(batch, g, device) < self.paint_prob
        inpaint = self._draw(batch, g, device) < self.inpaint_prob
        do_in, do_out = (paint & inpaint).view(batch, 1, 1, 1, 1), (paint & ~inpaint).view(batch, 1, 1, 1, 1)
        in_mask = self._boxes(g, device, batch, spatial, False, inpaint_side_range).unsqueeze(1)
        keep = self._boxes(g, device, batch, spatial, True, outpaint_side_range).unsqueeze(1)
        noise = torch.rand(x.shape, generator=g, device=device, dtype=x.dtype)
        # In-painting noise is shared by all channels; out-painting's is not.
        x = torch.where(do_in & in_mask, noise[:, :1], x)
        return torch.where(do_out & ~keep, noise, x)
