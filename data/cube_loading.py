"""MONAI transforms that read one cube from a memory-mapped shard written by `genesis prepare-cubes`.

A shard ``cubes/<case>.npy`` holds (N, H, W, D) float16 cubes; only the requested cube is read from
disk (the reference implementation instead kept every cube in RAM as float64, ~15 GB for LUNA16).
Typical use with the datalist that ``prepare_cubes`` writes::

    data = load_decathlon_datalist("cubes_dir/datalist.json", data_list_key="training")
    dataset = Dataset(data, transform=Compose([LoadCubed(keys="image"), ...]))
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

__all__ = ["LoadCube", "LoadCubed", "open_shard"]

# Per-process cache of open memory maps. Module-level (not on the transform) so that pickling a
# transform for DataLoader workers never pickles array data; bounded because each map holds a file
# descriptor.
_MAX_OPEN_SHARDS = 128
_SHARDS: OrderedDict[str, np.ndarray] = OrderedDict()
_SHARDS_PID = os.getpid()


def open_shard(path: str | os.PathLike) -> np.ndarray:
    """Memory-map a cube shard read-only, reusing an open map of this process when there is one.

    Raises:
        FileNotFoundError: the shard does not exist.
        ValueError: the file is not a readable .npy array.
    """
    global _SHARDS_PID
    path = os.path.abspath(os.fspath(path))
    if _SHARDS_PID != os.getpid():  # a forked worker: start its own cache
        _SHARDS.clear()
        _SHARDS_PID = os.getpid()
    shard = _SHARDS.get(path)
    if shard is not None:
        _SHARDS.move_to_end(path)
        return shard
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: cube shard not found (run `genesis prepare-cubes` first?).")
    try:
        shard = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"{path}: not a readable .npy cube shard ({err}).") from None
    _SHARDS[path] = shard
    if len(_SHARDS) > _MAX_OPEN_SHARDS:
        _SHARDS.popitem(last=False)
    return shard


class LoadCube(Transform):
    """Read cube ``index`` of a ``prepare-cubes`` shard as a float (1, H, W, D) ``MetaTensor``.

    Models Genesis pretraining cubes (Zhou et al., MedIA 2021), stored float16 and memory-mapped.

    Args:
        cube_size: expected (H, W, D) of a cube, e.g. (64, 64, 32); None accepts any size.
        dtype: output torch dtype; default torch.float32.
    """

    def __init__(self, cube_size: Sequence[int] | None = None, dtype: torch.dtype = torch.float32) -> None:
        self.cube_size = None if cube_size is None else tuple(int(s) for s in cube_size)
        if self.cube_size is not None and len(self.cube_size) != 3:
            raise ValueError(f"cube_size: expected (H, W, D), got {cube_size!r}.")
        self.dtype = dtype
        self._template = MetaTensor(torch.zeros(1, dtype=dtype))  # default affine and space

    def __call__(self, filename: str | os.PathLike, index: int | None = None) -> MetaTensor:
        shard = open_shard(filename)
        if shard.ndim == 3 and index in (None, 0):  # a shard holding a single cube
            cube = shard
        elif shard.ndim == 4:
            if index is None:
                raise ValueError(f"{filename}: holds {shard.shape[0]} cubes; a cube index is required.")
            if isinstance(index, torch.Tensor):
                index = index.item()
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise ValueError(f"{filename}: cube index must be an integer, got {index!r}.")
            if not 0 <= int(index) < shard.shape[0]:
                raise IndexError(
                    f"{filename}: cube index {index} is out of range; the shard holds {shard.shape[0]} cubes."
                )
            cube = shard[int(index)]
        else:
            raise ValueError(f"{filename}: expected an (N, H, W, D) shard, got shape {shard.shape} (index {index}).")
        if self.cube_size is not None and tuple(cube.shape) != self.cube_size:
            raise ValueError(f"{filename}: cubes are {tuple(cube.shape)}, expected cube_size {self.cube_size}.")
        # A float16 copy out of the map, converted by torch (numpy's float16 -> float32 cast is much slower).
        data = torch.from_numpy(np.array(cube))[None].to(self.dtype)
        # Bookkeeping copied from a template (MONAI's copy_meta_from): the MetaTensor constructor costs
        # more than reading the cube, and every pretraining step reads thousands of them.
        out = data.as_subclass(MetaTensor).copy_meta_from(self._template)
        out.meta = {
            **out.meta,
            "affine": self._template.affine.clone(),
            "filename_or_obj": os.fspath(filename),
            "cube_index": 0 if index is None else int(index),
        }
        return out


class LoadCubed(MapTransform):
    """Dictionary wrapper of :class:`LoadCube`: replaces each key's shard path by its cube.

    Args:
        keys: keys holding shard paths; default "image".
        index_key: key holding the cube index (shared by all ``keys``); default "cube_index".
        cube_size: expected (H, W, D); None accepts any size.
        dtype: output torch dtype; default torch.float32.
        allow_missing_keys: skip absent keys instead of raising.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        index_key: str = "cube_index",
        cube_size: Sequence[int] | None = None,
        dtype: torch.dtype = torch.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.index_key = index_key
        self.loader = LoadCube(cube_size=cube_size, dtype=dtype)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        index = d.get(self.index_key)
        for key in self.key_iterator(d):
            try:
                d[key] = self.loader(d[key], index)
            except ValueError as err:
                if index is None and self.index_key not in d:
                    raise ValueError(f"{err} (the item has no {self.index_key!r} key)") from None
                raise
        return d
