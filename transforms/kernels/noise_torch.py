"""Torch painting kernels, any device (``docs/method.md`` §2.4, §2.5).

``hash_noise`` computes the values of ``noise_cpu`` (same hash, key and counters) with int64 tensor
ops, so a cube painted on a GPU matches the CPU result. ``box_union_mask`` marks the union of
per-cube boxes for the batched form.
"""

from __future__ import annotations

import torch

from .noise_cpu import MIX_LAST_SHIFT, MIX_STEPS

__all__ = ["hash_noise", "inpaint", "outpaint", "box_union_mask"]

_LOW32 = 0xFFFFFFFF


def _hash(n: torch.Tensor, key) -> torch.Tensor:
    x = (((n + int(key[0])) & _LOW32) ^ int(key[1])) + int(key[2])
    x &= _LOW32
    for shift, multiplier in MIX_STEPS:
        x = ((x ^ (x >> shift)) * multiplier) & _LOW32
    return x ^ (x >> MIX_LAST_SHIFT)


def hash_noise(key, counters: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Uniform [0, 1) noise of ``dtype`` at int64 ``counters`` (float16/32/64 exactly as ``noise_cpu``; others floored to their precision)."""
    if dtype == torch.float64:
        high = (_hash(2 * counters, key) >> 5).to(torch.float64)
        low = (_hash(2 * counters + 1, key) >> 6).to(torch.float64)
        return (high * 2.0**26 + low) * 2.0**-53
    bits = {torch.float32: 24, torch.float16: 11}.get(dtype)
    if bits is None:  # e.g. bfloat16: as many bits as it holds exactly, so none rounds up to 1.0
        bits = min(24, int(round(-torch.log2(torch.tensor(torch.finfo(dtype).eps)).item())) + 1)
    return ((_hash(counters, key) >> (32 - bits)).to(torch.float32) * 2.0**-bits).to(dtype)


def _box(corner, size) -> tuple:
    return (slice(None),) + tuple(slice(int(c), int(c) + int(s)) for c, s in zip(corner, size))


def inpaint(data: torch.Tensor, blocks, key) -> torch.Tensor:
    """A copy of the (C, H, W, D) ``data`` whose blocks ((n, 6) corner + size rows) hold the noise of the spatial index."""
    out = data.clone()
    _, width, depth = data.shape[1:]
    for row in blocks:
        corner, size = row[:3], row[3:]
        x, y, z = (torch.arange(int(c), int(c) + int(s), device=data.device) for c, s in zip(corner, size))
        counters = (x.view(-1, 1, 1) * width + y.view(1, -1, 1)) * depth + z.view(1, 1, -1)
        out[_box(corner, size)] = hash_noise(key, counters, data.dtype)
    return out


def outpaint(data: torch.Tensor, blocks, key) -> torch.Tensor:
    """A new tensor: ``data`` inside the kept blocks ((n, 6) rows), the noise of the flat index elsewhere."""
    counters = torch.arange(data.numel(), device=data.device).view(data.shape)
    out = hash_noise(key, counters, data.dtype)
    for row in blocks:
        box = _box(row[:3], row[3:])
        out[box] = data[box]
    return out


def box_union_mask(corners: torch.Tensor, sizes: torch.Tensor, active: torch.Tensor, spatial) -> torch.Tensor:
    """(B, H, W, D) bool: the union of each cube's active boxes; corners/sizes (B, n, 3) long, active (B, n) bool."""
    batch, boxes = active.shape
    mask = active.view(batch, boxes, 1, 1, 1)
    for axis, side in enumerate(spatial):
        coord = torch.arange(side, device=active.device).view(1, 1, side)
        lo, hi = corners[..., axis].unsqueeze(-1), (corners[..., axis] + sizes[..., axis]).unsqueeze(-1)
        shape = [batch, boxes, 1, 1, 1]
        shape[2 + axis] = side
        mask = mask & ((coord >= lo) & (coord < hi)).view(shape)
    return mask.any(1)
