"""Local pixel shuffling through its public transforms: box semantics, permutation law, rates, containers."""

import itertools
import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_genesis.transforms import RandLocalPixelShuffle, RandLocalPixelShuffled


def _unique_cube(shape):
    """Two channels of unique values (the second a fixed function of the first), so a voxel's value names its source."""
    first = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    return np.stack([first, 2 * first + 1])


def _assert_boxes_local(img, out, max_block):
    """Every voxel shows a voxel of the input at most max_block - 1 away per axis, the same one in every channel."""
    shape = img.shape[1:]
    src = np.unravel_index(out[0].astype(np.int64).ravel(), shape)
    dst = np.unravel_index(np.arange(math.prod(shape)), shape)
    for a in range(3):
        assert np.abs(src[a] - dst[a]).max() <= max_block[a] - 1
    np.testing.assert_array_equal(out[1], 2 * out[0] + 1)  # channels move together


@pytest.mark.parametrize(
    "shape, max_block_size, num_blocks",
    [((40, 30, 20), None, 3000), ((33, 47, 25), None, 10000), ((20, 20, 10), (20, 20, 10), 3)],
    ids=["default", "odd-sides", "whole-cube-boxes"],
)
def test_voxels_come_from_their_own_box(shape, max_block_size, num_blocks):
    img = _unique_cube(shape)
    t = RandLocalPixelShuffle(prob=1.0, num_blocks=num_blocks, max_block_size=max_block_size).set_random_state(2)
    out = t(img)
    assert out.dtype == img.dtype and out.shape == img.shape
    _assert_boxes_local(img, out, max_block_size or tuple(s // 10 for s in shape))
    assert (out != img).mean() > 0.3


def test_single_box_preserves_its_multiset_and_nothing_else_changes():
    rng = np.random.RandomState(0)
    for seed in range(30):
        img = np.stack([rng.permutation(4000), rng.rand(4000)]).reshape(2, 20, 20, 10).astype(np.float32)
        t = RandLocalPixelShuffle(prob=1.0, num_blocks=1)
        t.set_random_state(seed)
        out = t(img)
        if not (out != img).any():
            continue
        box = np.argwhere((out != img).any(0))
        lo, hi = box.min(0), box.max(0) + 1
        assert np.all(hi - lo <= [2, 2, 1])  # sides // 10
        region = (slice(None),) + tuple(slice(a, b) for a, b in zip(lo, hi))
        for c in range(2):
            np.testing.assert_array_equal(np.sort(out[region][c].ravel()), np.sort(img[region][c].ravel()))
        src_index = {v: i for i, v in enumerate(img[0].ravel())}
        moved = [src_index[v] for v in out[0].ravel()]
        np.testing.assert_array_equal(out[1].ravel(), img[1].ravel()[moved])  # one permutation for all channels


def test_boxes_over_65536_voxels_are_permuted_uniformly():
    """A box of more than 2**16 voxels (drawn with 32-bit words, unlike smaller boxes): one segment, its values permuted."""
    n = 70_000
    img = np.arange(n, dtype=np.float32).reshape(1, n, 1, 1)
    t = RandLocalPixelShuffle(prob=1.0, num_blocks=1, max_block_size=(n, 1, 1))
    for seed in range(200):  # a side above 65,536 is drawn with probability 1 - 65536 / 70000
        changed = np.flatnonzero(t.set_random_state(seed)(img).ravel() != img.ravel())
        if changed.size > 65_536:
            break
    else:
        pytest.fail("no box over 65,536 voxels in 200 draws")
    out = t.set_random_state(seed)(img).ravel()
    lo, hi = changed.min(), changed.max() + 1
    np.testing.assert_array_equal(np.sort(out[lo:hi]), img.ravel()[lo:hi])  # only moved within the box
    np.testing.assert_array_equal(out[:lo], img.ravel()[:lo])
    np.testing.assert_array_equal(out[hi:], img.ravel()[hi:])
    side = hi - lo
    assert hi - lo - changed.size < 10  # a uniform permutation fixes about one voxel
    displacement = np.abs(out[lo:hi] - np.arange(lo, hi)).mean() / side
    assert abs(displacement - 1 / 3) < 0.01  # mean |i - pi(i)| / n of a uniform permutation is about 1/3


def _expected_2x2_law():
    """P(permutation of a 2 x 2 x 1 cube) after one box of sides uniform in {1, 2} x {1, 2} x {1}, uniformly permuted."""
    perms = list(itertools.permutations(range(4)))
    law = np.zeros(24)
    for box in ((0, 1), (0, 2), (1, 3), (2, 3)):  # 2 x 1 and 1 x 2 boxes (each 1/4, then one of 2 places)
        for order in itertools.permutations(box):
            p = list(range(4))
            for slot, source in zip(box, order):
                p[slot] = source
            law[perms.index(tuple(p))] += 0.25 * 0.5 * 0.5
    law += 0.25 / 24  # the 2 x 2 box: a uniform permutation
    law[perms.index((0, 1, 2, 3))] += 0.25  # a 1 x 1 box changes nothing
    return perms, law


def test_box_sides_and_permutations_follow_the_rule():
    """One box on a 2 x 2 x 1 cube: the outcome law mixes the four box shapes and uniform permutations (chi-square)."""
    perms, law = _expected_2x2_law()
    img = np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1)
    t = RandLocalPixelShuffle(prob=1.0, num_blocks=1, max_block_size=(2, 2, 1)).set_random_state(11)
    n = 6000
    index = {p: i for i, p in enumerate(perms)}
    observed = np.bincount([index[tuple(t(img).ravel().astype(int))] for _ in range(n)], minlength=24)
    chi2 = ((observed - n * law) ** 2 / (n * law)).sum()
    assert chi2 < 49.7, observed  # 23 degrees of freedom, p = 1e-3


def test_box_corners_reach_both_ends_and_sides_stay_within_the_rule():
    """One box of side 1 .. 3 on a 12-voxel line: changes stay within 3 voxels and reach every position."""
    img = np.arange(12, dtype=np.float32).reshape(1, 12, 1, 1)
    t = RandLocalPixelShuffle(prob=1.0, num_blocks=1, max_block_size=(3, 1, 1)).set_random_state(0)
    reached, extents = np.zeros(12, bool), set()
    for _ in range(1500):
        changed = np.flatnonzero(t(img).ravel() != img.ravel())
        if changed.size:
            reached[changed] = True
            extents.add(int(changed.max() - changed.min() + 1))
    assert reached.all() and extents == {2, 3}


def _reference_changed_fraction(shape, seed):
    """The reference's sequential loop (``docs/method.md`` §2.2), for the changed-voxel fraction."""
    rng = np.random.RandomState(seed)
    img = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    out = img.copy()
    m = [s // 10 for s in shape]
    for _ in range(10000):
        size = [rng.randint(1, k + 1) for k in m]
        corner = [rng.randint(0, s - b + 1) for s, b in zip(shape, size)]
        box = tuple(slice(c, c + b) for c, b in zip(corner, size))
        out[box] = rng.permutation(img[box].ravel()).reshape(size)
    return (out != img).mean()


def test_changed_fraction_matches_reference_loop():
    shape = (30, 30, 20)
    ours = []
    for seed in range(4):
        t = RandLocalPixelShuffle(prob=1.0)
        t.set_random_state(seed)
        img = np.arange(np.prod(shape), dtype=np.float32).reshape((1,) + shape)
        ours.append((t(img) != img).mean())
    reference = np.mean([_reference_changed_fraction(shape, s) for s in range(2)])
    assert abs(np.mean(ours) - reference) < 0.01, (ours, reference)
    assert 0.5 < reference < 0.95


def test_application_rate():
    t = RandLocalPixelShuffle()  # prob 0.5
    t.set_random_state(3)
    hits = 0
    for _ in range(4000):
        t.randomize()
        hits += t._do_transform
    assert abs(hits / 4000 - 0.5) < 4 * np.sqrt(0.25 / 4000)


def test_same_seed_same_output_in_every_container():
    img = np.random.RandomState(0).rand(1, 32, 32, 20).astype(np.float32)
    meta = MetaTensor(torch.from_numpy(img.copy()), meta={"filename_or_obj": "x.nii"})
    outs = []
    for data in (img, torch.from_numpy(img.copy()), meta):
        t = RandLocalPixelShuffle(prob=1.0)
        t.set_random_state(7)
        out = t(data)
        assert type(out) is type(data)
        outs.append(np.asarray(out))
    assert out.meta["filename_or_obj"] == "x.nii" and out.meta is not meta.meta
    np.testing.assert_array_equal(np.asarray(meta), img)  # the input is left alone
    for other in outs[1:]:
        np.testing.assert_array_equal(other, outs[0])
    t = RandLocalPixelShuffle(prob=1.0)
    t.set_random_state(8)
    assert not np.array_equal(t(img), outs[0])


def test_dictionary_form_applies_one_draw_to_all_keys_in_every_container():
    img = np.random.RandomState(1).rand(1, 20, 20, 10).astype(np.float32)
    results = []
    for wrap in (np.array, torch.from_numpy, lambda a: MetaTensor(torch.from_numpy(a))):
        t = RandLocalPixelShuffled(["a", "b"], prob=1.0)
        t.set_random_state(0)
        out = t({"a": wrap(img.copy()), "b": wrap(img.copy()), "c": img})
        np.testing.assert_array_equal(np.asarray(out["a"]), np.asarray(out["b"]))
        assert out["c"] is img and not np.array_equal(np.asarray(out["a"]), img)
        results.append(np.asarray(out["a"]))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def test_integer_and_float16_images_move_values_only():
    img = _unique_cube((20, 20, 10))
    for dtype in (np.int32, np.int64, np.float16):
        data = img if dtype != np.float16 else img % 2048  # float16 holds integers up to 2048 exactly
        out = RandLocalPixelShuffle(prob=1.0).set_random_state(4)(data.astype(dtype))
        assert out.dtype == dtype
        ref = RandLocalPixelShuffle(prob=1.0).set_random_state(4)(data)
        np.testing.assert_array_equal(out, ref.astype(dtype))


def test_torch_kernel_keeps_the_rule():
    """A tensor that requires grad takes the torch kernel (the CUDA path): the same box rule, values only moved."""
    img = _unique_cube((30, 30, 20))
    data = torch.from_numpy(img).requires_grad_()
    out = RandLocalPixelShuffle(prob=1.0).set_random_state(1)(data)
    assert isinstance(out, torch.Tensor) and out.dtype == data.dtype
    _assert_boxes_local(img, out.detach().numpy(), (3, 3, 2))
    assert (out.detach().numpy() != img).mean() > 0.3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_in_cuda_out():
    img = torch.from_numpy(_unique_cube((32, 32, 20))).cuda()
    t = RandLocalPixelShuffle(prob=1.0)
    t.set_random_state(0)
    out = t(img)
    assert out.device == img.device
    _assert_boxes_local(img.cpu().numpy(), out.cpu().numpy(), (3, 3, 2))
    t.set_random_state(0)
    torch.testing.assert_close(t(img), out, rtol=0, atol=0)  # seeded: reproducible on the device
