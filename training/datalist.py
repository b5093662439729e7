"""Read and check the cube datalist that ``prepare_cubes`` writes, before any training starts."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
from monai.data import load_decathlon_datalist

__all__ = ["load_cube_datalist"]


def load_cube_datalist(
    datalist: str | os.PathLike,
    section: str = "training",
    cube_size: Sequence[int] | None = None,
    image_key: str = "image",
    index_key: str = "cube_index",
) -> list[dict]:
    """
    Load one section of a cube datalist (``{"training": [{"image": "cubes/<case>.npy", "cube_index": i}, ...]}``,
    paths relative to the JSON file) and check it, so that a wrong dataset fails here with a clear
    message instead of deep inside a data loader worker.

    Args:
        datalist: path of the datalist JSON written by ``prepare_cubes``.
        section: which list to read ("training", "validation" or "test"). Defaults to "training".
        cube_size: expected (H, W, D) of every cube; None skips the size check.
        image_key: key of the cube file path in each item. Defaults to "image".
        index_key: key of the cube index inside that file. Defaults to "cube_index".

    Returns:
        the items with absolute paths, in file order.

    Raises:
        FileNotFoundError: the datalist or a cube file it names does not exist.
        ValueError: the datalist is not valid JSON, the section is missing or empty, or a cube
            file holds cubes of another size or fewer cubes than an index asks for.
    """
    path = os.path.abspath(os.fspath(datalist))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"cube datalist '{path}' does not exist: set dataset_dir (or datalist) to the output folder of prepare_cubes."
        )
    try:
        with open(path) as f:
            sections = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"cube datalist '{path}' is not valid JSON: {e}.") from e
    if not isinstance(sections, dict) or section not in sections:
        found = sorted(sections) if isinstance(sections, dict) else type(sections).__name__
        raise ValueError(f"cube datalist '{path}' has no '{section}' section (found: {found}).")
    if not sections[section]:
        raise ValueError(f"section '{section}' of cube datalist '{path}' is empty: there are no cubes to use.")
    items = load_decathlon_datalist(path, is_segmentation=False, data_list_key=section)
    _check_cube_files(items, path, section, cube_size, image_key, index_key)
    return items


def _check_cube_files(items, path, section, cube_size, image_key, index_key) -> None:
    """Open each cube file once (memory-mapped: only its header is read) and check sizes and indices."""
    largest_index: dict[str, int] = {}
    for item in items:
        if image_key not in item or index_key not in item:
            raise ValueError(f"an item of section '{section}' in '{path}' lacks '{image_key}' or '{index_key}': {item}.")
        largest_index[item[image_key]] = max(largest_index.get(item[image_key], -1), int(item[index_key]))
    for cube_file, index in largest_index.items():
        if not os.path.isfile(cube_file):
            raise FileNotFoundError(f"cube file '{cube_file}' listed in '{path}' does not exist.")
        shape = np.load(cube_file, mmap_mode="r").shape
        if len(shape) != 4:
            raise ValueError(f"cube file '{cube_file}' should hold an array (N, H, W, D) of cubes, got shape {shape}.")
        if cube_size is not None and tuple(shape[1:]) != tuple(int(s) for s in cube_size):
            raise ValueError(
                f"cube file '{cube_file}' holds cubes of size {tuple(shape[1:])}, but cube_size is "
                f"{tuple(cube_size)}: prepare the cubes again with this size, or set cube_size to match."
            )
        if index >= shape[0]:
            raise ValueError(f"'{path}' asks for cube {index} of '{cube_file}', which holds only {shape[0]} cubes.")
