"""The Models Genesis corruption for a whole batch already on the training device (torch only)."""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import Randomizable

from .batched_local_shuffle import local_shuffle_batch
from .nonlinear_intensity import TABLE_SIZE
from .painting import MARGIN
from .validation import NORMALISE_HINT, UNIT_RANGE_TOLERANCE, check_min_spatial_size, check_probabilities

__all__ = ["RandGenesisCorruptionBatch"]


class RandGenesisCorruptionBatch(Randomizable):
    """
    Models Genesis corruption (Zhou et al., MICCAI 2019 / MedIA 2021) of a (B, C, H, W, D) batch.

    Same steps, order and rates as :py:class:`RandGenesisCorruptiond`, but every random number is
    drawn on the batch's device and every step is a batched tensor op, each cube with its own draws,
    so a GPU run never waits on CPU corruption. Returns ``(corrupted, target)``, both of the input's
    shape, dtype and device; the target is the flipped clean batch. Seed with ``set_random_state``
    (a torch Generator per device); unseeded, it draws from torch's global generator, which
    ``monai.utils.set_determinism`` seeds. Meant for GPUs: on a CPU the per-cube
    :py:class:`RandGenesisCorruptiond` (compiled kernels) in DataLoader workers is far faster
    (about 1.2 vs 30-50 ms per 64 x 64 x 32 cube, ``benchmarks/bench_transforms.py``).

    Args:
        flip_prob: probability of each further flip draw (up to 3). Defaults to 0.4.
        local_shuffle_prob: probability of local pixel shuffling. Defaults to 0.5.
        nonlinear_prob: probability of the non-linear intensity curve. Defaults to 0.9.
        paint_prob: probability of painting. Defaults to 0.9.
        inpaint_prob: share of painting done as in-painting, the rest out-painting. Defaults to 0.2.
        validate: check shape and value range first (one device sync per batch). Defaults to True.
        num_shuffle_blocks: boxes per local shuffling. Defaults to 10,000 (the reference).
    """

    def __init__(
        self,
        flip_prob: float = 0.4,
        local_shuffle_prob: float = 0.5,
        nonlinear_prob: float = 0.9,
        paint_prob: float = 0.9,
        inpaint_prob: float = 0.2,
        validate: bool = True,
        num_shuffle_blocks: int = 10000,
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
            check_min_spatial_size(spatial, 10, name, "local shuffling boxes are 1 .. side // 10 voxels")
        if self.paint_prob > 0 and self.inpaint_prob > 0:
            check_min_spatial_size(spatial, 8, name, "in-painting blocks of side s // 6 .. s // 3 with 3-voxel margins")
        if self.paint_prob > 0 and self.inpaint_prob < 1:
            check_min_spatial_size(spatial, 14, name, "out-painting blocks of side s - (3s // 7 .. 4s // 7), margins 3")
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
        if self.local_shuffle_prob > 0 and bool(shuffle.any()):  # one sync per batch: only the chosen cubes are shuffled
            chosen = shuffle.nonzero().squeeze(1)
            out = out.clone()
            out[chosen] = local_shuffle_batch(out[chosen], g, self.num_shuffle_blocks)
        out = self._nonlinear(out, g)
        out = self._paint(out, g)
        return (out.clone() if out is target else out), target

    @staticmethod
    def _draw(shape, generator, device, dtype=torch.float64) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=device, dtype=dtype)

    def _flip(self, x: torch.Tensor, g) -> torch.Tensor:
        """Up to 3 draws below flip_prob, each picking nothing, rows or columns (as the reference)."""
        batch = x.shape[0]
        go_on = torch.cumprod((self._draw((batch, 3), g, x.device) < self.flip_prob).long(), dim=1)
        choice = torch.randint(0, 3, (batch, 3), generator=g, device=x.device)
        out = x
        for option, dim in ((1, 2), (2, 3)):
            odd = ((go_on * (choice == option)).sum(1) % 2).bool().view(batch, 1, 1, 1, 1)
            out = torch.where(odd, out.flip(dim), out)
        return out if out is not x else x.clone()

    def _nonlinear(self, x: torch.Tensor, g) -> torch.Tensor:
        """Per-cube Bezier curve (monotone or inverted), exact interpolation through a float64 table."""
        if self.nonlinear_prob == 0:
            return x
        batch, device = x.shape[0], x.device
        apply = self._draw(batch, g, device) < self.nonlinear_prob
        a, b, c, d = self._draw((4, batch, 1), g, device)
        inverted = (self._draw(batch, g, device) < 0.5).view(batch, 1)
        u = torch.linspace(0.0, 1.0, TABLE_SIZE, device=device, dtype=torch.float64).view(1, -1)
        xs = torch.cummax((((1 + 3 * a - 3 * c) * u + (3 * c - 6 * a)) * u + 3 * a) * u, dim=1).values
        ys = torch.cummax((((1 + 3 * b - 3 * d) * u + (3 * d - 6 * b)) * u + 3 * b) * u, dim=1).values
        ys = torch.where(inverted, ys.flip(1), ys)
        v = x.reshape(batch, -1).to(torch.float64).clamp(0.0, 1.0)
        right = torch.searchsorted(xs, v, right=True).clamp_(1, TABLE_SIZE - 1)
        x0, x1 = xs.gather(1, right - 1), xs.gather(1, right)
        y0, y1 = ys.gather(1, right - 1), ys.gather(1, right)
        width = x1 - x0
        frac = torch.where(width > 0, (v - x0) / torch.where(width > 0, width, 1.0), 0.0)
        mapped = (y0 + frac * (y1 - y0)).to(x.dtype).view_as(x)
        return torch.where(apply.view(batch, 1, 1, 1, 1), mapped, x)

    def _boxes(self, g, device, batch, spatial, first_always: bool, size_rule) -> torch.Tensor:
        """Union mask (B, H, W, D) of up to 5 blocks per cube, continuing while draws stay below 0.95."""
        go_on = torch.cumprod((self._draw((batch, 5), g, device) < 0.95).long(), dim=1).bool()
        if first_always:  # out-painting: one block, then up to 4 more
            go_on = torch.cat([torch.ones_like(go_on[:, :1]), go_on[:, :4]], dim=1)
        mask = go_on.view(batch, 5, 1, 1, 1)
        for axis, side in enumerate(spatial):
            lo, hi = size_rule(side)
            size = lo + (self._draw((batch, 5), g, device) * (hi - lo + 1)).long()
            corner = MARGIN + (self._draw((batch, 5), g, device) * (side - size - 2 * MARGIN + 1)).long()
            coord = torch.arange(side, device=device).view(1, 1, side)
            inside = (coord >= corner.unsqueeze(-1)) & (coord < (corner + size).unsqueeze(-1))
            shape = [batch, 5, 1, 1, 1]
            shape[2 + axis] = side
            mask = mask & inside.view(shape)
        return mask.any(1)

    def _paint(self, x: torch.Tensor, g) -> torch.Tensor:
        if self.paint_prob == 0:
            return x
        batch, channels, *spatial = x.shape
        device = x.device
        paint = self._draw(batch, g, device) < self.paint_prob
        inpaint = self._draw(batch, g, device) < self.inpaint_prob
        do_in, do_out = (paint & inpaint).view(batch, 1, 1, 1, 1), (paint & ~inpaint).view(batch, 1, 1, 1, 1)
        in_mask = self._boxes(g, device, batch, spatial, False, lambda s: (s // 6, s // 3)).unsqueeze(1)
        keep = self._boxes(g, device, batch, spatial, True, lambda s: (s - 4 * s // 7, s - 3 * s // 7)).unsqueeze(1)
        noise = torch.rand(x.shape, generator=g, device=device, dtype=x.dtype)
        # In-painting noise is shared by all channels (as in the reference); out-painting's is not.
        x = torch.where(do_in & in_mask, noise[:, :1], x)
        return torch.where(do_out & ~keep, noise, x)
