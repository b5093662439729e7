"""RandGenesisCorruptiond: step rates, flips shared with the target, ablations, seeding, types."""

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import Compose
from monai.utils import set_determinism

from monai_genesis.transforms import RandGenesisCorruptiond, RandGenesisFlip, RandGenesisFlipd

SHAPE = (1, 32, 32, 16)


def _cube(seed=0):
    return np.random.RandomState(seed).rand(*SHAPE).astype(np.float32)


def _expected_odd_flip_rate(p=0.4, max_flips=3, options=3):
    """P(an axis is flipped an odd number of times) under the reference's flip rule."""
    total = 0.0
    for k in range(max_flips + 1):
        p_k = p**k * (1 - p) if k < max_flips else p**max_flips
        total += p_k * (1 - (1 - 2 / options) ** k) / 2
    return total


def test_flip_rule_rates_and_axes():
    t = RandGenesisFlip()
    t.set_random_state(0)
    counts, n = {0: 0, 1: 0, 2: 0}, 6000
    for _ in range(n):
        t.randomize()
        for axis in t.flip_axes:
            counts[axis] += 1
    expected = _expected_odd_flip_rate()
    for axis in (0, 1):
        assert abs(counts[axis] / n - expected) < 4 * np.sqrt(expected * (1 - expected) / n)
    assert counts[2] == 0  # the axial axis is never flipped by default
    t = RandGenesisFlip(continue_prob=1.0, spatial_axes=(0, 1, 2), include_noop=False)
    t.set_random_state(1)
    seen = set()
    for _ in range(200):
        t.randomize()
        seen.add(t.flip_axes)
    assert (2,) in seen and (0, 1, 2) in seen


def test_flip_prob_is_the_probability_of_applying():
    t = RandGenesisFlip(continue_prob=1.0, prob=0.3).set_random_state(2)
    applied = 0
    for _ in range(3000):
        t.randomize()
        applied += t._do_transform
    # With continuation 1: three picks among nothing/rows/columns; some leave every axis even.
    expected = 0.3 * (1 - 7 / 27)  # P(some axis odd) for 3 uniform picks of 3 options
    assert abs(applied / 3000 - expected) < 4 * np.sqrt(expected * (1 - expected) / 3000)


def test_flip_dictionary_form_flips_all_keys_alike():
    img = _cube()
    t = RandGenesisFlipd(["image", "label"], continue_prob=1.0)
    t.set_random_state(2)
    for _ in range(10):
        out = t({"image": img, "label": img.copy()})
        np.testing.assert_array_equal(out["image"], out["label"])
        expected = img
        for axis in t.transform.flip_axes:
            expected = np.flip(expected, axis + 1)
        np.testing.assert_array_equal(out["image"], expected)


def test_step_rates_match_the_spec():
    t = RandGenesisCorruptiond("image")
    t.set_random_state(0)
    n, shuffle, nonlinear, paint, inpaint = 4000, 0, 0, 0, 0
    for _ in range(n):
        t.randomize(SHAPE[1:])
        shuffle += t.local_shuffle._do_transform
        nonlinear += t.nonlinear._do_transform
        paint += t.painter is not None
        inpaint += t.painter is t.inpaint
    for observed, p, m in ((shuffle, 0.5, n), (nonlinear, 0.9, n), (paint, 0.9, n), (inpaint, 0.2, paint)):
        assert abs(observed / m - p) < 4 * np.sqrt(p * (1 - p) / m), (observed, p, m)


def test_target_is_flipped_like_the_input():
    img = _cube(1)
    t = RandGenesisCorruptiond("image", flip_prob=1.0, local_shuffle_prob=0, nonlinear_prob=0, paint_prob=1.0, inpaint_prob=0)
    t.set_random_state(3)
    flipped = 0
    for _ in range(20):
        out = t({"image": img})
        expected = img
        for axis in t.flip.flip_axes:
            expected = np.flip(expected, axis + 1)
        flipped += bool(t.flip.flip_axes)
        np.testing.assert_array_equal(out["target"], expected)
        kept = np.zeros(SHAPE[1:], bool)
        for corner, size in t.painter.blocks:
            kept[tuple(slice(c, c + s) for c, s in zip(corner, size))] = True
        np.testing.assert_array_equal(out["image"][:, kept], out["target"][:, kept])
        assert not np.array_equal(out["image"], out["target"])
    assert flipped >= 10


def test_all_steps_off_gives_identical_independent_pair():
    img = _cube(2)
    t = RandGenesisCorruptiond("image", flip_prob=0, local_shuffle_prob=0, nonlinear_prob=0, paint_prob=0)
    out = t({"image": img})
    np.testing.assert_array_equal(out["image"], img)
    np.testing.assert_array_equal(out["target"], img)
    assert not np.shares_memory(out["image"], out["target"])


@pytest.mark.parametrize("step", ["local_shuffle_prob", "nonlinear_prob", "paint_prob"])
def test_single_step_ablation(step):
    """Only one step on at rate 1: the pair differs exactly as that step does."""
    img = np.random.RandomState(3).permutation(np.arange(np.prod(SHAPE))).reshape(SHAPE).astype(np.float32)
    img /= img.max()
    probs = dict(flip_prob=0, local_shuffle_prob=0, nonlinear_prob=0, paint_prob=0)
    probs[step] = 1.0
    out = RandGenesisCorruptiond("image", **probs).set_random_state(4)({"image": img})
    np.testing.assert_array_equal(out["target"], img)
    moved_only = np.isin(out["image"], img).all()
    assert moved_only == (step == "local_shuffle_prob")  # shuffling only copies input values around
    assert not np.array_equal(out["image"], img)


def test_same_seed_same_pair_in_every_container():
    """Bit for bit: numpy, CPU tensor and MetaTensor input give one pair per seed, over many cubes and all steps."""
    img = _cube(4)
    meta = MetaTensor(torch.from_numpy(img.copy()), meta={"filename_or_obj": "cube.nii"})
    meta.applied_operations.append({"class": "LoadCube"})
    results = []
    for data in (img, torch.from_numpy(img.copy()), meta):
        t = RandGenesisCorruptiond("image", local_shuffle_prob=0.7, nonlinear_prob=0.9, paint_prob=0.9, inpaint_prob=0.5)
        t.set_random_state(11)
        pairs = []
        for _ in range(12):
            out = t({"image": data, "other": 1})
            assert type(out["image"]) is type(data) and type(out["target"]) is type(data)
            assert out["other"] == 1
            pairs.append((np.asarray(out["image"]).copy(), np.asarray(out["target"]).copy()))
        results.append(pairs)
    for key in ("image", "target"):
        assert out[key].meta["filename_or_obj"] == "cube.nii" and out[key].meta is not meta.meta
        assert out[key].applied_operations == meta.applied_operations
    np.testing.assert_array_equal(np.asarray(meta), img)  # the input is left alone
    for other in results[1:]:
        for (image, target), (ref_image, ref_target) in zip(other, results[0]):
            np.testing.assert_array_equal(image, ref_image)
            np.testing.assert_array_equal(target, ref_target)
    again = RandGenesisCorruptiond("image", local_shuffle_prob=1.0, nonlinear_prob=1.0).set_random_state(12)
    assert not np.array_equal(again({"image": img})["image"], results[0][0][0])


def test_torch_kernels_follow_the_cpu_pair():
    """A tensor that requires grad takes the torch kernels (the CUDA path): same flips and painting, close curve."""
    img = _cube(5)
    for seed in range(6):
        kwargs = dict(local_shuffle_prob=0.0, nonlinear_prob=1.0, paint_prob=1.0, inpaint_prob=0.5)
        cpu = RandGenesisCorruptiond("image", **kwargs).set_random_state(seed)({"image": img})
        dev = RandGenesisCorruptiond("image", **kwargs).set_random_state(seed)({"image": torch.from_numpy(img.copy()).requires_grad_()})
        np.testing.assert_array_equal(dev["target"].detach().numpy(), cpu["target"])
        # steep curves: the CPU grid serves the cells it follows (within 1.25 x its 2.5e-4 tolerance)
        np.testing.assert_allclose(dev["image"].detach().numpy(), cpu["image"], atol=3.2e-4)


def test_set_determinism_through_monai_dataloader():
    data = [{"image": _cube(i)} for i in range(4)]

    def run():
        set_determinism(seed=0)
        loader = DataLoader(Dataset(data, Compose([RandGenesisCorruptiond("image")])), batch_size=2, num_workers=0)
        return [torch.cat([b["image"], b["target"]]) for b in loader]

    first, second = run(), run()
    set_determinism(seed=None)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_several_keys_with_their_own_targets():
    t = RandGenesisCorruptiond(["ct", "mr"], target_key=["ct_target", "mr_target"], allow_missing_keys=True)
    t.set_random_state(0)
    out = t({"ct": _cube(5), "mr": _cube(6)})
    assert {"ct", "mr", "ct_target", "mr_target"} <= set(out)
    out = t({"ct": _cube(5)})
    assert "mr_target" not in out and "ct_target" in out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_in_cuda_out():
    img = torch.rand(SHAPE, device="cuda")
    out = RandGenesisCorruptiond("image", local_shuffle_prob=1.0).set_random_state(0)({"image": img})
    assert out["image"].device == img.device and out["target"].device == img.device
    again = RandGenesisCorruptiond("image", local_shuffle_prob=1.0).set_random_state(0)({"image": img})
    torch.testing.assert_close(again["image"], out["image"], rtol=0, atol=0)
