"""In-painting and out-painting: block counts, sizes, margins, noise, kept regions, determinism."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy import stats

from monai_genesis.transforms import RandInPainting, RandInPaintingd, RandOutPainting, RandOutPaintingd, noise_compiled
from monai_genesis.transforms.painting import _draw_key
from monai_genesis.transforms.random_draws import noise_at, noise_key, uniform_noise

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


# --- painting noise: counter-based hash, compiled kernels and their numpy form ---

NOISE_BITS = {np.float16: 11, np.float32: 24, np.float64: 53}


def _python_hash(n, key):
    """h(n) = triple32(((n + k0) ^ k1) + k2) with Python integers, written out from the documented formula."""
    x = ((((n + int(key[0])) & 0xFFFFFFFF) ^ int(key[1])) + int(key[2])) & 0xFFFFFFFF
    for shift, multiplier in noise_compiled.MIX_STEPS:
        x = ((x ^ (x >> shift)) * multiplier) & 0xFFFFFFFF
    return x ^ (x >> noise_compiled.MIX_LAST_SHIFT)


def test_noise_follows_the_documented_hash():
    key = noise_key([0xFFFFFFFF, 0x12345678, 7])
    counters = np.array([0, 1, 2, 31, 2**16 + 5, 2**31 - 1])
    values = noise_at(key, counters, np.float32)
    expected = [(_python_hash(int(n), key) >> 8) / 2**24 for n in counters]
    np.testing.assert_array_equal(values, np.array(expected, np.float32))
    doubles = noise_at(key, counters[:-1], np.float64)
    expected = [
        ((_python_hash(2 * int(n), key) >> 5) * 2**26 + (_python_hash(2 * int(n) + 1, key) >> 6)) / 2**53 for n in counters[:-1]
    ]
    np.testing.assert_array_equal(doubles, expected)


@pytest.mark.skipif(not noise_compiled.AVAILABLE, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_compiled_noise_equals_its_numpy_form(dtype):
    key = noise_key([1, 2**32 - 1, 12345])
    for shape in [(1,), (7,), (3, 5, 9), (2, 16, 16, 8)]:
        noise = uniform_noise(key, shape, dtype)
        assert noise.dtype == dtype and noise.shape == shape
        np.testing.assert_array_equal(noise, noise_at(key, np.arange(noise.size), dtype).reshape(shape))


@pytest.fixture(params=["compiled", "numpy"])
def noise_backend(request, monkeypatch):
    """Run a test with the compiled kernels and again with the numpy fallback (numba missing)."""
    if request.param == "compiled" and not noise_compiled.AVAILABLE:
        pytest.skip("numba is not installed")
    if request.param == "numpy":
        monkeypatch.setattr(noise_compiled, "AVAILABLE", False)
    return request.param


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_noise_is_uniform_exact_below_one_and_reproducible(noise_backend, dtype):
    shape = (16, 64, 32)  # lags 1, 32 and 2048 are the z, y and x neighbours of a 64 x 32 slice
    noise = uniform_noise(noise_key([11, 22, 33]), shape, dtype)
    assert noise.dtype == dtype and noise.min() >= 0 and noise.max() < 1
    scaled = noise.astype(np.float64) * 2.0 ** NOISE_BITS[dtype]
    np.testing.assert_array_equal(scaled, np.floor(scaled))  # k / 2**bits: exact in the dtype
    flat = noise.astype(np.float64).ravel()
    counts = np.bincount((flat * 64).astype(int), minlength=64)
    assert stats.chisquare(counts).pvalue > 1e-4
    assert flat.mean() == pytest.approx(0.5, abs=0.005) and flat.var() == pytest.approx(1 / 12, abs=0.002)
    for lag in (1, 32, 2048):  # neighbours independent: 8 x 8 joint histogram of (v[n], v[n + lag])
        pairs = (flat[:-lag] * 8).astype(int) * 8 + (flat[lag:] * 8).astype(int)
        assert stats.chisquare(np.bincount(pairs, minlength=64)).pvalue > 1e-4, lag
    np.testing.assert_array_equal(uniform_noise(noise_key([11, 22, 33]), shape, dtype), noise)
    other = uniform_noise(noise_key([11, 22, 34]), shape, dtype)
    assert np.mean(other == noise) < 0.01


def test_noise_key_and_arguments_are_checked():
    with pytest.raises(ValueError, match="noise key"):
        noise_key([1, 2])
    with pytest.raises(ValueError, match="noise key"):
        noise_key([1, 2, 2**32])
    with pytest.raises(ValueError, match="float16, float32 or float64"):
        noise_at(noise_key([1, 2, 3]), np.arange(4), np.int32)
    with pytest.raises(ValueError, match="counters"):
        noise_at(noise_key([1, 2, 3]), np.array([-1]))


def _paint_all_ways(cls, img, seed):
    t = cls(prob=1.0)
    t.set_random_state(seed)
    return t(img), t.blocks


@pytest.mark.parametrize("cls", [RandInPainting, RandOutPainting])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_compiled_and_numpy_painting_agree_for_every_input_form(cls, dtype, monkeypatch):
    img = (0.99 * np.random.RandomState(7).rand(2, 20, 18, 16)).astype(dtype)  # below 1 in float16 too
    compiled, blocks = _paint_all_ways(cls, img, 8)
    assert compiled.dtype == dtype and compiled.max() < 1
    forms = {
        "flipped view": np.flip(img, 1).copy()[:, ::-1],  # same values, negative strides
        "cpu tensor": torch.from_numpy(img.copy()),
        "strided tensor": torch.from_numpy(np.asfortranarray(img)),  # in-painting clone is not C-contiguous
        "grad tensor": torch.from_numpy(img.copy()).requires_grad_(),  # torch-indexing path
    }
    for name, data in forms.items():
        out, same_blocks = _paint_all_ways(cls, data, 8)
        assert same_blocks == blocks
        out = out.detach().numpy() if isinstance(out, torch.Tensor) else out
        np.testing.assert_array_equal(out, compiled, err_msg=name)
    monkeypatch.setattr(noise_compiled, "AVAILABLE", False)
    np.testing.assert_array_equal(_paint_all_ways(cls, img, 8)[0], compiled, err_msg="numpy fallback")


@pytest.mark.parametrize("cls", [RandInPainting, RandOutPainting])
def test_bfloat16_noise_never_rounds_up_to_one(cls):
    img = torch.full((1, 32, 32, 16), 0.5, dtype=torch.bfloat16)
    out = cls(prob=1.0).set_random_state(9)(img)
    assert out.dtype == torch.bfloat16
    noise = out[out != 0.5].float()
    assert noise.numel() > 100 and noise.min() >= 0 and noise.max() < 1
    assert (noise * 256 == torch.floor(noise * 256)).all()  # k / 2**8: exact in bfloat16


def test_noise_key_draw_reads_the_same_words_as_the_earlier_seed():
    # the blocks drawn for later cubes stay what they were before the counter-based noise
    state, reference = np.random.RandomState(0), np.random.RandomState(0)
    keys = {_draw_key(state) for _ in range(100)}
    for _ in range(100):
        reference.randint(0, 2**32, size=4, dtype=np.uint64)
    assert state.randint(0, 1000, size=5).tolist() == reference.randint(0, 1000, size=5).tolist()
    assert len(keys) == 100 and all(len(key) == 3 and all(isinstance(w, np.uint32) for w in key) for key in keys)
