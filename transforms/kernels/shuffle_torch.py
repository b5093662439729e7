"""Local pixel shuffling of a (B, C, H, W, D) tensor with device-side torch ops (``docs/method.md`` §2.2).

Each cube gets its own boxes. All (box, voxel) pairs are listed, a scatter-max of the box id gives
each voxel its last box, and one sort of (box id, random key) gives every box a uniform
permutation; ties in the random keys (about 1e-5 per batch) trigger a redraw, so the permutations
stay exact. A single cube runs as a batch of one.
"""

from __future__ import annotations

import torch

__all__ = ["local_shuffle_batch"]

_RANDOM_BITS = 40  # random part of the sort keys; the box id sits above it


def local_shuffle_batch(images: torch.Tensor, max_block, num_blocks: int, generator: torch.Generator | None = None):
    """
    Shuffle every cube of ``images`` with ``num_blocks`` boxes of sides 1 .. ``max_block`` per axis.

    Args:
        images: (B, C, H, W, D) tensor, any device.
        max_block: largest box side per spatial axis, each in 1 .. the side.
        num_blocks: boxes per cube.
        generator: torch Generator on the images' device (None: torch's global one).
    """
    batch, channels, *spatial = images.shape
    device = images.device
    voxels = spatial[0] * spatial[1] * spatial[2]
    strides = (spatial[1] * spatial[2], spatial[2], 1)
    boxes = batch * num_blocks
    u = torch.rand((6, boxes), generator=generator, device=device, dtype=torch.float64)
    size = [(u[a] * max_block[a]).long() + 1 for a in range(3)]
    corner = [(u[3 + a] * (spatial[a] - size[a] + 1)).long() for a in range(3)]
    counts = size[0] * size[1] * size[2]
    total = int(counts.sum())
    box = torch.repeat_interleave(torch.arange(boxes, device=device), counts, output_size=total)
    local = torch.arange(total, device=device) - (torch.cumsum(counts, 0) - counts)[box]
    yz, bz = (size[1] * size[2])[box], size[2][box]
    i = torch.div(local, yz, rounding_mode="floor")
    rest = local - i * yz
    j = torch.div(rest, bz, rounding_mode="floor")
    base = torch.div(torch.arange(boxes, device=device), num_blocks, rounding_mode="floor") * voxels
    base += corner[0] * strides[0] + corner[1] * strides[1] + corner[2]
    dest = base[box] + i * strides[0] + j * strides[1] + (rest - j * bz)
    owner = torch.full((batch * voxels,), -1, dtype=torch.long, device=device)
    owner.scatter_reduce_(0, dest, box, reduce="amax")
    visible = owner[dest] == box
    # Pairs are listed box by box in voxel order; sorting (box, random key) permutes within boxes,
    # so pair t of a box takes the voxel of the pair that lands at t: src = dest[order].
    while True:
        keys = (box << _RANDOM_BITS) | torch.randint(0, 1 << _RANDOM_BITS, (total,), generator=generator, device=device)
        sorted_keys, order = torch.sort(keys)
        if not bool((sorted_keys[1:] == sorted_keys[:-1]).any()):
            break
    dst, src = dest[visible], dest[order][visible]
    flat = images.transpose(0, 1).reshape(channels, batch * voxels)
    out = flat.clone().index_copy_(1, dst, flat.index_select(1, src))
    return out.reshape(channels, batch, *spatial).transpose(0, 1).contiguous()
