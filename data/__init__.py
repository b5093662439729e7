"""monai_genesis.data: reading volumes, cube extraction, pretraining shards, datalists, cube loading."""

from monai_genesis.data.cube_extraction import (
    VolumeTooSmallError,
    crop_start_ranges,
    extract_cubes,
    is_lung_crop,
    lung_crop_score,
)
from monai_genesis.data.cube_loading import LoadCube, LoadCubed, open_shard
from monai_genesis.data.datalist import (
    assign_folds,
    case_id_of,
    find_volumes,
    load_cube_datalist,
    luna16_section,
    luna16_subset_of,
    make_datalist,
    split_cases,
)
from monai_genesis.data.io import load_volume, voxel_to_world, world_to_voxel
from monai_genesis.data.prepare_cubes import collect_cases, load_split, prepare_cubes

__all__ = [
    "VolumeTooSmallError",
    "crop_start_ranges",
    "extract_cubes",
    "is_lung_crop",
    "lung_crop_score",
    "LoadCube",
    "LoadCubed",
    "open_shard",
    "assign_folds",
    "case_id_of",
    "find_volumes",
    "load_cube_datalist",
    "luna16_section",
    "luna16_subset_of",
    "make_datalist",
    "split_cases",
    "load_volume",
    "voxel_to_world",
    "world_to_voxel",
    "collect_cases",
    "load_split",
    "prepare_cubes",
]
