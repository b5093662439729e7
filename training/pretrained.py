"""Genesis initialisation of a target network from a bundle's ``pretrained_path`` key (docs/method.md §5.1)."""

from __future__ import annotations

import logging
import os

from torch import nn

from monai_genesis.networks.weights import load_genesis_weights

__all__ = ["init_from_pretrained"]

logger = logging.getLogger(__name__)


def init_from_pretrained(network: nn.Module, pretrained_path: str | os.PathLike | None = "", part: str = "all") -> nn.Module:
    """
    Load Genesis weights into ``network`` when ``pretrained_path`` is set; train from scratch when it is empty.

    Either way one log line says what was done (the source and what was loaded, adapted or left
    freshly initialised), so a run's log tells a pretrained run from a scratch run.

    Args:
        network: the target network (``UNet3D`` for segmentation, ``GenesisClassifier`` for classification).
        pretrained_path: the published ``Genesis_Chest_CT.pt``, this project's pretraining output
            (``models/model.pt`` of ``genesis_pretrain``) or any checkpoint that
            :py:func:`~monai_genesis.networks.load_genesis_weights` reads; "" or None: from scratch.
        part: "all" (segmentation: the whole U-Net) or "encoder" (classification). Defaults to "all".

    Returns:
        ``network``, so that a bundle config can wrap its network definition in this call.
    """
    if pretrained_path in (None, "") or not str(pretrained_path).strip():
        logger.info("initialisation: from scratch (pretrained_path is empty)")
        return network
    path = os.fspath(pretrained_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained_path '{path}' does not exist: give a Genesis checkpoint, or '' to train from scratch.")
    report = load_genesis_weights(network, path, part=part)
    logger.info("initialisation: Genesis weights, %s", report.summary())
    return network
