"""data/datalist.py (cube datalists), transforms/fixed_seed.py and training/prepare_batch.py: the data side of the pretraining bundle."""

import json

import numpy as np
import pytest
import torch
from monai.transforms import Compose, CopyItemsd, RandGaussianNoised

from monai_genesis.data import LoadCubed
from monai_genesis.data.datalist import load_cube_datalist
from monai_genesis.transforms.fixed_seed import FixedSeedPerItemd
from monai_genesis.training.prepare_batch import GenesisPrepareBatch


def _write_dataset(root, sections, cube_size=(8, 8, 4), cubes_per_file=3):
    (root / "cubes").mkdir(parents=True, exist_ok=True)
    datalist = {}
    for name, files in sections.items():
        datalist[name] = []
        for case in files:
            np.save(root / "cubes" / f"{case}.npy", np.random.rand(cubes_per_file, *cube_size).astype(np.float16))
            datalist[name] += [{"image": f"cubes/{case}.npy", "cube_index": i} for i in range(cubes_per_file)]
    (root / "datalist.json").write_text(json.dumps(datalist))
    return root / "datalist.json"


def test_load_cube_datalist_resolves_paths(tmp_path):
    path = _write_dataset(tmp_path, {"training": ["a", "b"], "validation": ["c"]})
    items = load_cube_datalist(path, "training", cube_size=(8, 8, 4))
    assert len(items) == 6
    assert items[0] == {"image": str(tmp_path / "cubes" / "a.npy"), "cube_index": 0}
    assert items[-1]["cube_index"] == 2
    assert len(load_cube_datalist(path, "validation")) == 3


def test_load_cube_datalist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_cube_datalist(tmp_path / "missing.json")
    path = _write_dataset(tmp_path, {"training": ["a"], "validation": []})
    with pytest.raises(ValueError, match="'validation'.*empty"):
        load_cube_datalist(path, "validation")
    with pytest.raises(ValueError, match="no 'test' section"):
        load_cube_datalist(path, "test")
    with pytest.raises(ValueError, match=r"size \(8, 8, 4\).*cube_size is \(64, 64, 32\)"):
        load_cube_datalist(path, "training", cube_size=(64, 64, 32))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_cube_datalist(tmp_path / "bad.json")


def test_load_cube_datalist_missing_file_and_index(tmp_path):
    path = _write_dataset(tmp_path, {"training": ["a"]})
    data = json.loads(path.read_text())
    data["training"].append({"image": "cubes/a.npy", "cube_index": 7})
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="cube 7.*only 3 cubes"):
        load_cube_datalist(path)
    data["training"] = [{"image": "cubes/gone.npy", "cube_index": 0}]
    path.write_text(json.dumps(data))
    with pytest.raises(FileNotFoundError, match="gone.npy"):
        load_cube_datalist(path)


def _seeded_noise(seed=0):
    noise = Compose([LoadCubed(keys="image"), CopyItemsd(keys="image", names="target"),
                     RandGaussianNoised(keys="image", prob=1.0, std=0.5)])
    return FixedSeedPerItemd(noise, seed=seed)


def test_fixed_seed_per_item_repeats_draws(tmp_path):
    items = load_cube_datalist(_write_dataset(tmp_path, {"training": ["a", "b"]}))
    first = [_seeded_noise()(item)["image"] for item in items]
    # another instance, reverse order, and a moved dataset (only base names count): same draws
    moved = [dict(item, image=item["image"].replace(str(tmp_path), "/elsewhere")) for item in items]
    transform = _seeded_noise()
    again = [transform(item)["image"] for item in reversed(items)][::-1]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert transform.item_seed(items[0]) == transform.item_seed(moved[0])
    # different items and a different global seed draw differently
    noise = [a - _seeded_noise()(i)["target"] for a, i in zip(first, items)]
    assert not torch.allclose(noise[0], noise[1])
    assert not torch.equal(_seeded_noise(seed=1)(items[0])["image"], first[0])


def test_fixed_seed_requires_randomizable():
    with pytest.raises(ValueError, match="set_random_state"):
        FixedSeedPerItemd(lambda d: d)


def test_prepare_batch_with_loader_corruption():
    batch = {"image": torch.rand(2, 1, 4, 4, 4), "target": torch.rand(2, 1, 4, 4, 4)}
    image, target = GenesisPrepareBatch()(batch, torch.device("cpu"))
    assert torch.equal(image, batch["image"]) and torch.equal(target, batch["target"])
    assert type(image) is torch.Tensor
    with pytest.raises(ValueError, match="no 'target'"):
        GenesisPrepareBatch()({"image": batch["image"]}, "cpu")


def test_prepare_batch_with_device_corruption():
    clean = torch.rand(2, 1, 4, 4, 4)
    prepare = GenesisPrepareBatch(corruption=lambda x: (1 - x, x.clone()))
    image, target = prepare({"image": clean}, "cpu")
    assert torch.equal(target, clean) and torch.allclose(image, 1 - clean)
