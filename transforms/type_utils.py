"""Convert between the caller's image type (numpy, torch, MetaTensor) and a plain array to compute on."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor
from monai.utils import convert_to_dst_type

__all__ = ["plain", "like"]


def plain(img):
    """The data of ``img`` as a plain numpy array or torch tensor (MetaTensor bookkeeping stripped)."""
    return img.as_tensor() if isinstance(img, MetaTensor) else img


def like(out, img):
    """``out`` returned in the type of ``img``: a MetaTensor keeps ``img``'s metadata (affine, filename...)."""
    if isinstance(img, MetaTensor):
        return convert_to_dst_type(out, img)[0]
    if isinstance(img, np.ndarray) and isinstance(out, torch.Tensor):
        return out.cpu().numpy()
    return out
