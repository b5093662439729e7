"""Local pixel shuffling: exact semantics against a sequential reference, statistics, determinism, types."""

import itertools

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

import monai_genesis.transforms.local_shuffle_compiled as local_shuffle_compiled
import monai_genesis.transforms.local_shuffle_kernel as kernel
from monai_genesis.transforms import RandLocalPixelShuffle, RandLocalPixelShuffled
from monai_genesis.transforms.local_shuffle_kernel import local_shuffle_indices


def _boxes_like_kernel(shape, seed, num_blocks, max_block):
    """Box sizes and corners as the kernel draws them (its first draw from the generator)."""
    u = np.random.Generator(np.random.PCG64(seed)).random((6, num_blocks))
    size = [(u[a] * max_block[a]).astype(int) + 1 for a in range(3)]
    corner = [(u[3 + a] * (shape[a] - size[a] + 1)).astype(int) for a in range(3)]
    return size, corner


def _sequential_owner(shape, size, corner):
    owner = -np.ones(shape, int)
    for b in range(size[0].size):
        owner[tuple(slice(corner[a][b], corner[a][b] + size[a][b]) for a in range(3))] = b
    return owner.ravel()


def _assert_sequential_semantics(shape, seed, num_blocks, dst, src):
    """Later boxes win; each visible voxel reads a distinct voxel of its own box (boxes drawn from PCG64(seed))."""
    max_block = tuple(s // 10 for s in shape)
    size, corner = _boxes_like_kernel(shape, seed, num_blocks, max_block)
    owner = _sequential_owner(shape, size, corner)
    np.testing.assert_array_equal(dst, np.flatnonzero(owner >= 0))
    box = owner[dst]
    coords = np.unravel_index(src, shape)
    for a in range(3):
        assert np.all((coords[a] >= corner[a][box]) & (coords[a] < corner[a][box] + size[a][box]))
    pairs = box.astype(np.int64) * (1 << 32) + src
    assert np.unique(pairs).size == pairs.size
    # Boxes left fully visible receive a full permutation of their own voxels.
    counts = np.bincount(box, minlength=num_blocks)
    full = np.flatnonzero(counts == size[0] * size[1] * size[2])
    assert full.size > 10
    for b in full[:20]:
        np.testing.assert_array_equal(np.sort(src[box == b]), np.sort(dst[box == b]))


@pytest.fixture(params=[False, True], ids=["tables", "arithmetic"])
def path(request, monkeypatch):
    """Run the kernel through its lookup-table path and its arithmetic path."""
    if request.param:
        monkeypatch.setattr(kernel, "_MAX_TABLE_ENTRIES", 0)
    kernel._plan.cache_clear()
    yield request.param
    kernel._plan.cache_clear()


@pytest.mark.parametrize("shape, seed", [((64, 64, 32), 0), ((20, 30, 10), 1), ((33, 47, 25), 2)])
def test_kernel_matches_sequential_boxes(path, shape, seed):
    """Later boxes win; each visible voxel reads a distinct voxel of its own box."""
    num_blocks = 600
    dst, src = local_shuffle_indices(shape, np.random.Generator(np.random.PCG64(seed)), num_blocks)
    _assert_sequential_semantics(shape, seed, num_blocks, dst, src)


def test_single_box_preserves_its_multiset_and_nothing_else_changes():
    rng = np.random.RandomState(0)
    for seed in range(30):
        img = np.stack([rng.permutation(4000), rng.rand(4000)]).reshape(2, 20, 20, 10).astype(np.float32)
        t = RandLocalPixelShuffle(prob=1.0, num_blocks=1)
        t.set_random_state(seed)
        out = t(img)
        changed = np.flatnonzero((out != img).any(0).ravel())
        if changed.size == 0:
            continue
        box = np.argwhere((out != img).any(0))
        lo, hi = box.min(0), box.max(0) + 1
        assert np.all(hi - lo <= [2, 2, 1])  # sides // 10
        region = (slice(None),) + tuple(slice(a, b) for a, b in zip(lo, hi))
        for c in range(2):
            np.testing.assert_array_equal(np.sort(out[region][c].ravel()), np.sort(img[region][c].ravel()))
        # Channels move together: the same permutation for both.
        src_index = {v: i for i, v in enumerate(img[0].ravel())}
        moved = [src_index[v] for v in out[0].ravel()]
        np.testing.assert_array_equal(out[1].ravel(), img[1].ravel()[moved])


def test_box_sizes_and_corners_cover_their_ranges():
    """One box per draw on a unique-valued line: its extent shows size 1..3, corner 0..n-size."""
    shape, max_block = (12, 1, 1), (3, 1, 1)
    seen = set()
    for seed in range(600):
        dst, _ = local_shuffle_indices(shape, np.random.Generator(np.random.PCG64(seed)), 1, max_block)
        seen.add((int(dst.min()), int(dst.size)))
        assert dst.max() - dst.min() + 1 == dst.size <= 3
    expected = {(c, s) for s in (1, 2, 3) for c in range(0, 12 - s + 1)}
    assert seen == expected


def test_row_permutations_are_uniform():
    """Every permutation of a 3-voxel box equally likely (chi-square over 12,000 boxes)."""
    plan = kernel._plan((30, 30, 30), (3, 3, 3))
    counts = np.full(12000, 3)
    keys, row_start = kernel._row_keys(plan, np.random.Generator(np.random.PCG64(5)), counts)
    mask = (1 << plan.low_bits) - 1
    rows = (keys[row_start[:, None] + np.arange(3)] & mask).astype(int)
    assert np.all(np.sort(rows, axis=1) == [0, 1, 2])
    codes = rows[:, 0] * 9 + rows[:, 1] * 3 + rows[:, 2]
    observed = np.array([np.sum(codes == p[0] * 9 + p[1] * 3 + p[2]) for p in itertools.permutations(range(3))])
    chi2 = ((observed - 2000) ** 2 / 2000).sum()
    assert chi2 < 25.7, observed  # 5 degrees of freedom, p = 1e-4


def test_tied_random_keys_are_redrawn(monkeypatch):
    """Force ties (tiny random field): rows are redrawn until ties vanish, permutations stay valid."""
    plan = kernel._Plan((30, 30, 30), (3, 3, 3))
    plan.low_bits = 29  # leaves 2 random bits: ties in most rows of 4
    keys, row_start = kernel._row_keys(plan, np.random.Generator(np.random.PCG64(1)), np.full(200, 3))
    rows = keys[row_start[:, None] + np.arange(3)]
    random_part = rows >> np.uint32(29)
    assert np.all(np.diff(random_part.astype(int), axis=1) > 0)
    assert np.all(np.sort(rows & np.uint32((1 << 29) - 1), axis=1) == [0, 1, 2])


def _reference_changed_fraction(shape, seed):
    """The reference's sequential loop (restated from the spec), for the changed-voxel fraction."""
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
        t.randomize((64, 64, 32))
        hits += t._do_transform
    assert abs(hits / 4000 - 0.5) < 4 * np.sqrt(0.25 / 4000)


def test_same_seed_same_output_numpy_torch_metatensor():
    img = np.random.RandomState(0).rand(1, 32, 32, 20).astype(np.float32)
    outs = []
    for data in (img, torch.from_numpy(img), MetaTensor(torch.from_numpy(img), meta={"filename_or_obj": "x.nii"})):
        t = RandLocalPixelShuffle(prob=1.0)
        t.set_random_state(7)
        out = t(data)
        assert type(out) is type(data)
        outs.append(np.asarray(out))
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "x.nii"
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    t = RandLocalPixelShuffle(prob=1.0)
    t.set_random_state(8)
    assert not np.array_equal(t(img), outs[0])


def test_dictionary_form_applies_one_draw_to_all_keys():
    img = np.random.RandomState(1).rand(1, 20, 20, 10).astype(np.float32)
    t = RandLocalPixelShuffled(["a", "b"], prob=1.0)
    t.set_random_state(0)
    out = t({"a": img, "b": img.copy(), "c": img})
    np.testing.assert_array_equal(out["a"], out["b"])
    assert out["c"] is img and not np.array_equal(out["a"], img)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_in_cuda_out():
    img = torch.rand(1, 32, 32, 20, device="cuda")
    t = RandLocalPixelShuffle(prob=1.0)
    t.set_random_state(0)
    out = t(img)
    assert out.device == img.device
    t.set_random_state(0)
    np.testing.assert_array_equal(out.cpu().numpy(), t(img.cpu()).numpy())


# --- the compiled (numba) kernel, which the transform uses on the CPU by default -----------------


@pytest.fixture(params=[True, False], ids=["offset-tables", "per-box-offsets"])
def compiled_path(request, monkeypatch):
    """Run the compiled kernel with its per-shape offset tables and with per-box offset lists (large boxes)."""
    if not request.param:
        monkeypatch.setattr(local_shuffle_compiled, "_MAX_TABLE_ENTRIES", 0)
    return request.param


@pytest.mark.parametrize("shape, seed", [((64, 64, 32), 0), ((33, 47, 25), 2)])
def test_compiled_kernel_matches_sequential_boxes(compiled_path, shape, seed):
    """Same boxes as the vectorised kernel; later boxes win; each box's visible voxels read distinct voxels of it."""
    num_blocks = 600
    dst, src = local_shuffle_compiled.sequential_shuffle_indices(
        shape, np.random.Generator(np.random.PCG64(seed)), num_blocks
    )
    _assert_sequential_semantics(shape, seed, num_blocks, dst, src)


def _run_compiled_kernel(shape, max_block, u, seed, tables):
    """The compiled kernel on hand-placed boxes (u as ``source_map`` draws it)."""
    src_of = np.full(int(np.prod(shape)), -1, np.int32)
    if tables:
        start, offsets = local_shuffle_compiled._box_offsets(shape[1] * shape[2], shape[2], *max_block)
    else:
        start, offsets = np.zeros(0, np.int64), np.empty(int(np.prod(max_block)), np.int32)
    local_shuffle_compiled._shuffle(
        np.array(shape, np.int64), np.array(max_block, np.int64), u, np.uint64(seed), start, offsets, src_of
    )
    return src_of


def _codes(rows, symbols):
    """One integer per row of small integers (base ``symbols``)."""
    return (rows * symbols ** np.arange(rows.shape[1])[::-1]).sum(1)


@pytest.mark.parametrize("tables", [True, False], ids=["offset-tables", "per-box-offsets"])
def test_compiled_permutations_are_uniform_and_independent(tables):
    """24,000 disjoint 2 x 2 x 1 boxes in one draw: all 24 permutations equally likely, consecutive boxes independent.

    With offset tables every box of a shape permutes the order the previous box left behind, so this
    also checks that the boxes do not depend on each other (pairs of consecutive boxes: 576 outcomes).
    """
    count = 24000
    shape, max_block = (2, 2, count), (2, 2, 1)
    u = np.zeros((6, count))
    u[:3] = 0.99  # sides 2, 2, 1
    u[5] = (np.arange(count) + 0.5) / count  # box b sits in slice z = b
    src_of = _run_compiled_kernel(shape, max_block, u, 11, tables).reshape(shape)
    z = np.arange(count)
    x, y, sz = np.unravel_index(src_of.transpose(2, 0, 1).reshape(count, 4), shape)
    np.testing.assert_array_equal(sz, np.repeat(z[:, None], 4, 1))  # every box reads its own slice
    local = x * 2 + y
    assert np.all(np.sort(local, axis=1) == [0, 1, 2, 3])  # a permutation of the box
    perm_index = {p: i for i, p in enumerate(itertools.permutations(range(4)))}
    perms = np.array([perm_index[tuple(row)] for row in local])
    observed = np.bincount(perms, minlength=24)
    chi2 = ((observed - 1000) ** 2 / 1000).sum()
    assert chi2 < 49.7, observed  # 23 degrees of freedom, p = 1e-3
    pairs = np.bincount(perms[:-1:2] * 24 + perms[1::2], minlength=576)
    expected = (count // 2) / 576
    chi2 = ((pairs - expected) ** 2 / expected).sum()
    assert chi2 < 700.0, chi2  # 575 degrees of freedom, p ~ 3e-4


@pytest.mark.parametrize("tables", [True, False], ids=["offset-tables", "per-box-offsets"])
def test_compiled_partly_covered_box_reads_distinct_voxels_uniformly(tables):
    """A 2 x 2 x 1 box, then a 1 x 1 x 1 box on its first voxel: that voxel shows itself, the other
    three read distinct voxels of the first box, each of the 24 possible assignments equally likely."""
    count = 12000
    shape, max_block = (2, 2, count), (2, 2, 1)
    u = np.zeros((6, 2 * count))
    u[:3, 0::2] = 0.99  # even boxes: 2 x 2 x 1
    u[:3, 1::2] = 0.1  # odd boxes: 1 x 1 x 1 at (0, 0, z), drawn after the big box of their slice
    u[5] = (np.repeat(np.arange(count), 2) + 0.5) / count
    src_of = _run_compiled_kernel(shape, max_block, u, 5, tables).reshape(shape)
    z = np.arange(count)
    np.testing.assert_array_equal(src_of[0, 0], np.ravel_multi_index((0, 0, z), shape))
    visible = np.stack([src_of[0, 1], src_of[1, 0], src_of[1, 1]], 1)
    x, y, sz = np.unravel_index(visible, shape)
    np.testing.assert_array_equal(sz, np.repeat(z[:, None], 3, 1))
    local = x * 2 + y
    assert np.all(np.diff(np.sort(local, axis=1), axis=1) > 0)  # distinct sources
    observed = np.bincount(_codes(local, 4), minlength=64)
    injections = [a * 16 + b * 4 + c for a, b, c in itertools.permutations(range(4), 3)]
    assert observed.sum() == observed[injections].sum() == count
    chi2 = ((observed[injections] - 500) ** 2 / 500).sum()
    assert chi2 < 49.7, observed[injections]  # 23 degrees of freedom, p = 1e-3


def test_compiled_source_map_rejects_boxes_larger_than_the_cube():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="max_block"):
        local_shuffle_compiled.source_map((20, 20, 10), rng, 10, (3, 21, 1))
    with pytest.raises(ValueError, match="spatial_shape"):
        local_shuffle_compiled.source_map((20, 0, 10), rng, 10, (3, 0, 1))


def test_compiled_same_seed_same_map():
    maps = [local_shuffle_compiled.source_map((30, 30, 20), np.random.default_rng(s), 2000) for s in (4, 4, 5)]
    np.testing.assert_array_equal(maps[0], maps[1])
    assert not np.array_equal(maps[0], maps[2])


def test_compiled_and_vectorised_transforms_agree_in_law():
    """Same seed: same boxes, so about the same share of voxels changes; values only move."""
    img = np.random.RandomState(1).rand(1, 40, 40, 20).astype(np.float32)
    outs = []
    for compiled in (True, False):
        t = RandLocalPixelShuffle(prob=1.0, compiled=compiled)
        t.set_random_state(4)
        outs.append(t(img))
    assert t.compiled is False and RandLocalPixelShuffle().compiled is local_shuffle_compiled.AVAILABLE
    for out in outs:
        assert np.isin(out, img).all()
    changed = [out != img for out in outs]
    assert abs(changed[0].mean() - changed[1].mean()) < 0.02
