"""`genesis convert-weights`: a Models Genesis checkpoint to a MONAI-bundle `models/model.pt`."""

import os

import torch

from monai_genesis.data.atomic_write import write_atomic
from monai_genesis.networks import GenesisClassifier, GenesisEncoder, UNet3D, load_genesis_weights, read_state_dict
from monai_genesis.networks.weights import FIRST_CONV

__all__ = ["convert_weights"]

DEEPEST_CONV = "down_tr512.ops.1.conv1.weight"


def _network_for(state: dict, src: str) -> torch.nn.Module:
    """The network whose layers the state dict describes (shapes read from the weights themselves)."""
    for key in (FIRST_CONV, DEEPEST_CONV):
        if key not in state:
            raise ValueError(f"{src}: not a Models Genesis checkpoint (no '{key}' among its keys {list(state)[:5]}).")
    if any(k.startswith(("up_tr", "out_tr")) for k in state) and "out_tr.final_conv.weight" not in state:
        raise ValueError(f"{src}: a U-Net checkpoint without its output layer (no 'out_tr.final_conv.weight'); "
                         "the file is incomplete: convert the original checkpoint again.")
    if "dense_1.weight" in state and "dense_2.weight" not in state:
        raise ValueError(f"{src}: a classifier checkpoint without its output layer (no 'dense_2.weight'); "
                         "the file is incomplete: convert the original checkpoint again.")
    in_channels = state[FIRST_CONV].shape[1]
    width = state[DEEPEST_CONV].shape[0] / 512
    if "out_tr.final_conv.weight" in state:
        out_channels = state["out_tr.final_conv.weight"].shape[0]
        return UNet3D(in_channels, out_channels, width, out_activation=None, channels_last=False)
    if "dense_2.weight" in state:
        return GenesisClassifier(in_channels, state["dense_2.weight"].shape[0], width, channels_last=False)
    return GenesisEncoder(in_channels, width, channels_last=False)


def convert_weights(src: str, dst: str, overwrite: bool = False) -> str:
    """
    Convert a Models Genesis checkpoint (the published ``Genesis_Chest_CT.pt``, an ignite/MONAI
    checkpoint or a state dict) into a plain state dict without 'module.' prefixes, as MONAI bundles
    keep in ``models/model.pt``. The weights are checked by loading them strictly into the network
    they describe (UNet3D, GenesisClassifier or encoder) before anything is written.

    Args:
        src: checkpoint to read (with ``torch.load(weights_only=True)``).
        dst: file to write, e.g. ``bundles/genesis_pretrain/models/model.pt``; folders are created.
        overwrite: replace ``dst`` if it exists. Defaults to False.
    """
    if os.path.exists(dst) and not overwrite:
        raise FileExistsError(f"{dst}: exists; pass --overwrite to replace it.")
    state = read_state_dict(src)
    network = _network_for(state, src)
    try:
        load_genesis_weights(network, state, part="all", strict=True, source_name=src)
    except ValueError as error:  # the layers are read from the file: a mismatch means a damaged file
        detail = str(error).partition(": ")[2] or str(error)  # the key lists, without the source's name again
        raise ValueError(f"{src}: its tensors do not form a consistent {type(network).__name__}: {detail}") from None
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    tensors = {k: v.contiguous().clone() for k, v in state.items()}
    write_atomic(dst, lambda stream: torch.save(tensors, stream))  # Ctrl-C leaves no torn model.pt
    return f"wrote {len(state)} tensors of a {type(network).__name__} (width {network.width:g}) to {dst}"
