"""In-painting and out-painting: block counts, sizes, margins, noise, kept regions, determinism."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_genesis.transforms import RandInPainting, RandInPaintingd, RandOutPainting, RandOutPaintingd

SHAPE = (64, 64, 32)


def _truncated_geometric(max_blocks, p=0.95):
    return np.array([p**k * (1 - p) for k in range(max_blocks)] + [p**max_blocks])


def _draws(t, n):
    t.set_random_state(0)
    blocks = []
    for _ in range(n):
        t.randomize(SHAPE)
        blocks.append(list(t.blocks))
    return blocks


def test_inpainting_block_count_sizes_and_margins():
    draws = _draws(RandInPainting(prob=1.0), 5000)
    counts = np.bincount([len(b) for b in draws], minlength=6)
    expected = 5000 * _truncated_geometric(5)
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected) + 3), (counts, expected)
    blocks = [blk for d in draws for blk in d]
    corners, sizes = np.array([c for c, _ in blocks]), np.array([s for _, s in blocks])
    for axis, side in enumerate(SHAPE):
        assert set(sizes[:, axis]) == set(range(side // 6, side // 3 + 1))
        assert corners[:, axis].min() == 3
        assert (corners[:, axis] + sizes[:, axis]).max() == side - 3
        assert np.all(corners[:, axis] + sizes[:, axis] <= side - 3)


def test_outpainting_block_count_sizes_and_margins():
    draws = _draws(RandOutPainting(prob=1.0), 5000)
    counts = np.bincount([len(b) for b in draws], minlength=6)
    expected = np.concatenate([[0], 5000 * _truncated_geometric(4)])
    assert counts[0] == 0
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected) + 3), (counts, expected)
    blocks = [blk for d in draws for blk in d]
    corners, sizes = np.array([c for c, _ in blocks]), np.array([s for _, s in blocks])
    for axis, side in enumerate(SHAPE):
        assert set(sizes[:, axis]) == {side - r for r in range(3 * side // 7, 4 * side // 7 + 1)}
        assert corners[:, axis].min() == 3
        assert (corners[:, axis] + sizes[:, axis]).max() == side - 3


def test_inpainting_noise_is_uniform_and_shared_by_channels():
    img = np.full((2,) + SHAPE, 0.5, np.float32)
    noise = []
    t = RandInPainting(prob=1.0)
    t.set_random_state(1)
    for _ in range(20):
        out = t(img)
        painted = np.zeros(SHAPE, bool)
        for corner, size in t.blocks:
            painted[tuple(slice(c, c + s) for c, s in zip(corner, size))] = True
        np.testing.assert_array_equal(out[0], out[1])  # one noise block for all channels
        np.testing.assert_array_equal(out[0][~painted], 0.5)
        noise.append(out[0][painted])
    noise = np.concatenate(noise)
    assert noise.size > 50000 and noise.min() >= 0 and noise.max() < 1
    hist = np.histogram(noise, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(hist - noise.size / 10) < 5 * np.sqrt(noise.size / 10))
    assert noise.mean() == pytest.approx(0.5, abs=0.01) and noise.var() == pytest.approx(1 / 12, abs=0.003)


def test_outpainting_keeps_blocks_and_fills_the_rest_with_noise():
    img = np.random.RandomState(0).rand(2, *SHAPE).astype(np.float32)
    t = RandOutPainting(prob=1.0)
    t.set_random_state(2)
    for _ in range(10):
        out = t(img)
        kept = np.zeros(SHAPE, bool)
        for corner, size in t.blocks:
            kept[tuple(slice(c, c + s) for c, s in zip(corner, size))] = True
        np.testing.assert_array_equal(out[:, kept], img[:, kept])
        noise = out[:, ~kept]
        assert np.mean(noise == img[:, ~kept]) < 1e-4
        assert noise.min() >= 0 and noise.max() < 1 and abs(noise.mean() - 0.5) < 0.01
        assert not np.array_equal(out[0][~kept], out[1][~kept])  # independent noise per channel


@pytest.mark.parametrize("cls, prob", [(RandInPainting, 0.18), (RandOutPainting, 0.72)])
def test_default_rates_are_the_pipeline_rates(cls, prob):
    t = cls()
    assert t.prob == pytest.approx(prob)
    t.set_random_state(3)
    hits = 0
    for _ in range(3000):
        t.randomize(SHAPE)
        hits += t._do_transform
    assert abs(hits / 3000 - prob) < 4 * np.sqrt(prob * (1 - prob) / 3000)


@pytest.mark.parametrize("cls", [RandInPainting, RandOutPainting])
def test_types_and_determinism(cls):
    img = np.random.RandomState(4).rand(1, 32, 32, 16).astype(np.float32)
    outs = []
    for data in (img, torch.from_numpy(img), MetaTensor(torch.from_numpy(img), meta={"filename_or_obj": "f"})):
        t = cls(prob=1.0)
        t.set_random_state(5)
        out = t(data)
        assert type(out) is type(data) and out.dtype == data.dtype
        outs.append(np.asarray(out))
    assert out.meta["filename_or_obj"] == "f"
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    half = cls(prob=1.0).set_random_state(5)(np.full(img.shape, 0.5, np.float16))
    assert half.dtype == np.float16 and half.max() < 1 and (half != 0.5).any()  # noise never rounds to 1


@pytest.mark.parametrize("cls", [RandInPaintingd, RandOutPaintingd])
def test_dictionary_forms_share_blocks_and_noise(cls):
    img = np.random.RandomState(6).rand(1, 32, 32, 16).astype(np.float32)
    t = cls(["a", "b"], prob=1.0)
    t.set_random_state(0)
    out = t({"a": img, "b": img.copy()})
    np.testing.assert_array_equal(out["a"], out["b"])
    with pytest.raises(ValueError, match="one spatial shape"):
        t({"a": img, "b": img[:, :30]})
