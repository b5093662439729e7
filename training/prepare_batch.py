"""Turn a data loader batch into (corrupted input, target) on the training device."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from monai.engines.utils import PrepareBatch
from monai.utils import convert_to_tensor

__all__ = ["GenesisPrepareBatch"]


class GenesisPrepareBatch(PrepareBatch):
    """
    ``prepare_batch`` for MONAI engines training Models Genesis restoration (Zhou et al., MICCAI 2019).

    With ``corruption=None`` the data loader workers already corrupted each cube
    (``RandGenesisCorruptiond``): the batch holds the corrupted ``image`` and the clean ``target``,
    which are moved to the device. With a batched corruption (``RandGenesisCorruptionBatch``) the
    batch holds clean cubes only; they are moved to the device first and corrupted there, which takes
    the corruption off the CPU workers when training on an accelerator.

    Args:
        corruption: None, or a callable taking a (B, C, H, W, D) tensor and returning
            ``(corrupted, target)``.
        image_key: batch key of the (corrupted or clean) cubes. Defaults to "image".
        target_key: batch key of the clean cubes when ``corruption`` is None. Defaults to "target".
    """

    def __init__(
        self,
        corruption: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
        image_key: str = "image",
        target_key: str = "target",
    ) -> None:
        self.corruption = corruption
        self.image_key = image_key
        self.target_key = target_key

    def __call__(
        self,
        batchdata: Mapping[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        image = self._to_device(batchdata[self.image_key], device, non_blocking, **kwargs)
        if self.corruption is not None:
            return self.corruption(image)
        if self.target_key not in batchdata:
            raise ValueError(
                f"batch has no '{self.target_key}': corrupt the cubes in the data loader "
                "(RandGenesisCorruptiond) or pass a batched corruption to GenesisPrepareBatch."
            )
        target = self._to_device(batchdata[self.target_key], device, non_blocking, **kwargs)
        return image, target

    @staticmethod
    def _to_device(x, device, non_blocking, **kwargs) -> torch.Tensor:
        # Plain tensors: MetaTensor bookkeeping on every network op costs time and is not needed here.
        return convert_to_tensor(x, track_meta=False).to(device=device, non_blocking=non_blocking, **kwargs)
