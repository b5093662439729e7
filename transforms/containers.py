"""The containers a cube arrives in (numpy array, torch tensor, MetaTensor) and the views the kernels work on.

Every transform computes on one of two forms: a numpy array sharing the cube's memory, for the
compiled CPU kernels (numpy input, CPU tensors and MetaTensors alike, so the same seed gives the
same output whichever container the cube came in), or a plain torch tensor for the torch kernels
(CUDA tensors, tensors that require grad, dtypes numpy lacks such as bfloat16). Results go back in
the caller's container; a MetaTensor keeps its metadata.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor

__all__ = ["host_array", "plain", "wrap_like"]

_HOST_TORCH_DTYPES = {
    torch.float16,
    torch.float32,
    torch.float64,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
}


def plain(img):
    """``img`` as a plain numpy array or torch tensor (a MetaTensor's data without its bookkeeping)."""
    return img.as_tensor() if isinstance(img, MetaTensor) else img


def host_array(img) -> np.ndarray | None:
    """A numpy array sharing ``img``'s memory where the CPU kernels may work on it, else None (torch kernels)."""
    if isinstance(img, np.ndarray):
        return img
    data = plain(img)
    if data.device.type != "cpu" or data.requires_grad or data.dtype not in _HOST_TORCH_DTYPES:
        return None
    return data.numpy()  # a view: no copy, and no MetaTensor dispatch on the kernels' side


def wrap_like(out, img):
    """
    ``out`` (numpy array or torch tensor) in ``img``'s container: numpy, torch on ``img``'s device, or a
    MetaTensor carrying ``img``'s metadata (shallow copies of ``meta`` and ``applied_operations``).

    Why not MONAI's ``convert_to_dst_type``: it gives the same result but, for a MetaTensor, runs
    ``convert_data_type`` and the MetaTensor constructor on every call, which costs more than
    several of the corruption steps themselves; wrapping the buffer with ``as_subclass`` and
    MONAI's own ``MetaObj.copy_meta_from`` does the same without copies or conversions.
    """
    if isinstance(img, np.ndarray):
        return out if isinstance(out, np.ndarray) else out.detach().cpu().numpy()
    tensor = torch.from_numpy(out) if isinstance(out, np.ndarray) else out
    if isinstance(img, MetaTensor):
        if isinstance(tensor, MetaTensor):
            tensor = tensor.as_tensor()
        return tensor.as_subclass(MetaTensor).copy_meta_from(img)
    return tensor
