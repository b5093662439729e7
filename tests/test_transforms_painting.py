"""In-painting and out-painting: block counts, sizes, margins, noise, kept regions, determinism."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy import stats

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
    results = []
    for wrap in (np.array, torch.from_numpy, lambda a: MetaTensor(torch.from_numpy(a))):
        t = cls(["a", "b"], prob=1.0)
        t.set_random_state(0)
        out = t({"a": wrap(img.copy()), "b": wrap(img.copy())})
        np.testing.assert_array_equal(np.asarray(out["a"]), np.asarray(out["b"]))
        results.append(np.asarray(out["a"]))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    with pytest.raises(ValueError, match="one spatial shape"):
        t({"a": img, "b": img[:, :30]})


# --- painting noise, seen through out-painting: uniform, exact in the dtype, independent, reproducible ---

NOISE_BITS = {np.float16: 11, np.float32: 24, np.float64: 53}


def _outpainted(dtype, seed, shape=(1, 64, 64, 32)):
    """Out-painting of a constant cube: (output, mask of the noise voxels)."""
    t = RandOutPainting(prob=1.0).set_random_state(seed)
    out = t(np.full(shape, 0.5, dtype))
    noise = np.ones(shape[1:], bool)
    for corner, size in t.blocks:
        noise[tuple(slice(c, c + s) for c, s in zip(corner, size))] = False
    return out[0], noise


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_noise_is_uniform_exact_below_one_independent_and_reproducible(dtype):
    out, mask = _outpainted(dtype, 0)
    noise = out[mask]
    assert out.dtype == dtype and noise.size > 60000 and noise.min() >= 0 and noise.max() < 1
    scaled = noise.astype(np.float64) * 2.0 ** NOISE_BITS[dtype]
    np.testing.assert_array_equal(scaled, np.floor(scaled))  # k / 2**bits: exact in the dtype
    flat = noise.astype(np.float64)
    assert stats.chisquare(np.bincount((flat * 64).astype(int), minlength=64)).pvalue > 1e-4
    assert flat.mean() == pytest.approx(0.5, abs=0.005) and flat.var() == pytest.approx(1 / 12, abs=0.002)
    values = out.astype(np.float64)
    for axis in range(3):  # neighbours independent: 8 x 8 joint histogram of (v, its neighbour along the axis)
        a, b = (np.take(values, r, axis) for r in (range(0, out.shape[axis] - 1), range(1, out.shape[axis])))
        both = np.take(mask, range(0, out.shape[axis] - 1), axis) & np.take(mask, range(1, out.shape[axis]), axis)
        pairs = (a[both] * 8).astype(int) * 8 + (b[both] * 8).astype(int)
        assert stats.chisquare(np.bincount(pairs, minlength=64)).pvalue > 1e-4, axis
    np.testing.assert_array_equal(_outpainted(dtype, 0)[0], out)
    other, other_mask = _outpainted(dtype, 1)
    assert np.mean(other[mask & other_mask] == out[mask & other_mask]) < 0.01


def _paint(cls, img, seed):
    t = cls(prob=1.0)
    t.set_random_state(seed)
    out = t(img)
    return (out.detach().numpy() if isinstance(out, torch.Tensor) else out), t.blocks


@pytest.mark.parametrize("cls", [RandInPainting, RandOutPainting])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_painting_agrees_for_every_input_form(cls, dtype):
    img = (0.99 * np.random.RandomState(7).rand(2, 20, 18, 16)).astype(dtype)  # below 1 in float16 too
    expected, blocks = _paint(cls, img, 8)
    assert expected.dtype == dtype and expected.max() < 1
    forms = {
        "flipped view": np.flip(img, 1).copy()[:, ::-1],  # same values, negative strides
        "cpu tensor": torch.from_numpy(img.copy()),
        "strided tensor": torch.from_numpy(np.asfortranarray(img)),
        "MetaTensor": MetaTensor(torch.from_numpy(img.copy())),
        "grad tensor": torch.from_numpy(img.copy()).requires_grad_(),  # the torch kernel (CUDA path)
    }
    for name, data in forms.items():
        out, same_blocks = _paint(cls, data, 8)
        assert same_blocks == blocks
        np.testing.assert_array_equal(out, expected, err_msg=name)


@pytest.mark.parametrize("cls", [RandInPainting, RandOutPainting])
def test_bfloat16_noise_never_rounds_up_to_one(cls):
    img = torch.full((1, 32, 32, 16), 0.5, dtype=torch.bfloat16)
    out = cls(prob=1.0).set_random_state(9)(img)
    assert out.dtype == torch.bfloat16
    noise = out[out != 0.5].float()
    assert noise.numel() > 100 and noise.min() >= 0 and noise.max() < 1
    assert (noise * 256 == torch.floor(noise * 256)).all()  # k / 2**8: exact in bfloat16
    as_float = cls(prob=1.0).set_random_state(9)(img.float())
    torch.testing.assert_close(out.float(), torch.floor(as_float * 256) / 256)  # the float32 noise, floored
