"""LoadCube / LoadCubed: one cube out of a memory-mapped float16 shard (monai_genesis.data.cube_loading)."""

import pickle

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import Compose, RandFlipd

from monai_genesis.data.cube_loading import LoadCube, LoadCubed, open_shard


@pytest.fixture
def shard(tmp_path):
    cubes = np.random.default_rng(0).random((5, 8, 6, 4)).astype(np.float16)
    path = tmp_path / "case.npy"
    np.save(path, cubes)
    return path, cubes


def test_load_cube_returns_float_channel_first_metatensor(shard):
    path, cubes = shard
    cube = LoadCube(cube_size=(8, 6, 4))(path, 3)
    assert isinstance(cube, MetaTensor) and cube.shape == (1, 8, 6, 4) and cube.dtype == torch.float32
    np.testing.assert_array_equal(cube[0].numpy(), cubes[3].astype(np.float32))
    assert cube.meta["cube_index"] == 3 and str(path) in cube.meta["filename_or_obj"]
    assert LoadCube(dtype=torch.float16)(path, np.int64(0)).dtype == torch.float16


def test_shard_is_memory_mapped_and_cached_per_process(shard):
    path, _ = shard
    first = open_shard(path)
    assert isinstance(first, np.memmap) and not first.flags.writeable
    assert open_shard(str(path)) is first


def test_dictionary_version_in_a_monai_pipeline(shard):
    path, cubes = shard
    items = [{"image": str(path), "cube_index": i} for i in range(5)]
    load = LoadCubed(keys="image", cube_size=(8, 6, 4))
    pickled_size = len(pickle.dumps(load))
    transform = Compose([load, RandFlipd(keys="image", prob=0.0)])
    loader = DataLoader(Dataset(items, transform=transform), batch_size=5, num_workers=0)
    batch = next(iter(loader))
    assert batch["image"].shape == (5, 1, 8, 6, 4)
    np.testing.assert_array_equal(batch["image"][:, 0].numpy(), cubes.astype(np.float32))
    # A used transform pickles as small as a fresh one (no array data rides along to DataLoader workers).
    assert len(pickle.dumps(load)) == pickled_size


def test_single_cube_shard_needs_no_index(tmp_path):
    np.save(tmp_path / "one.npy", np.ones((4, 4, 2), np.float16))
    assert LoadCubed(keys="image")({"image": tmp_path / "one.npy"})["image"].shape == (1, 4, 4, 2)


@pytest.mark.parametrize(
    "index, error, words",
    [
        (5, IndexError, r"cube index 5 is out of range; the shard holds 5 cubes"),
        (-1, IndexError, r"cube index -1 is out of range"),
        (1.0, ValueError, "must be an integer"),
        ("2", ValueError, "must be an integer"),
    ],
)
def test_bad_index(shard, index, error, words):
    path, _ = shard
    with pytest.raises(error, match=words):
        LoadCube()(path, index)


def test_missing_index_key_wrong_size_missing_file_bad_file(shard, tmp_path):
    path, _ = shard
    with pytest.raises(ValueError, match=r"a cube index is required.*no 'cube_index' key"):
        LoadCubed(keys="image")({"image": str(path)})
    with pytest.raises(ValueError, match=r"cubes are \(8, 6, 4\), expected cube_size \(64, 64, 32\)"):
        LoadCube(cube_size=(64, 64, 32))(path, 0)
    with pytest.raises(FileNotFoundError, match="absent.npy: cube shard not found"):
        LoadCube()(tmp_path / "absent.npy", 0)
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.npy: not a readable .npy"):
        LoadCube()(tmp_path / "junk.npy", 0)
    with pytest.raises(ValueError, match="cube_size"):
        LoadCube(cube_size=(8, 6))
