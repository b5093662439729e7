"""Cube extraction rules of docs/method.md §3.1 (monai_genesis.data.cube_extraction)."""

import numpy as np
import pytest
import torch

from monai_genesis.data import cube_extraction
from monai_genesis.data.cube_extraction import (
    VolumeTooSmallError,
    crop_start_ranges,
    extract_cubes,
    is_lung_crop,
    lung_crop_score,
)

LUNG, TISSUE = -850, 40


def per_voxel_score(crop, depth, window=3, threshold=-150.0):
    """The spec's rule written as the reference's nested loops (slow; the test oracle)."""
    rows, cols, _ = crop.shape
    total = 0.0
    for d in range(depth):
        for i in range(rows):
            for j in range(cols):
                offset = window - 1
                for k in range(window):
                    if crop[i, j, d + k] >= threshold:
                        offset = k
                        break
                total += 1.0 - offset / (window - 1)
    return total


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_score_matches_per_voxel_rule(seed):
    rng = np.random.default_rng(seed)
    # Values right at the threshold (-150 counts as tissue, -151 does not) exercise the >= comparison.
    crop = rng.choice([-1000.0, -850.0, -151.0, -150.0, 40.0], size=(6, 5, 7 + 3), p=[0.3, 0.3, 0.1, 0.15, 0.15])
    assert lung_crop_score(crop, 7) == pytest.approx(per_voxel_score(crop, 7), abs=1e-9)


def test_score_with_other_window_and_batched_crops():
    rng = np.random.default_rng(7)
    crops = rng.choice([-900.0, 100.0], size=(4, 5, 5, 6 + 4), p=[0.7, 0.3])
    scores = lung_crop_score(crops, depth=6, lookahead=3)
    assert scores.shape == (4,)
    for crop, score in zip(crops, scores):
        assert score == pytest.approx(per_voxel_score(crop, 6, window=4), abs=1e-9)


def test_score_offsets_score_one_half_and_zero():
    crop = np.full((1, 1, 5), -900.0)
    crop[0, 0, 1] = 0.0  # voxel 0 sees tissue one slice ahead (0.5), voxel 1 is tissue (1.0)
    # slices 0..2 scored: k = 1, 0, 2 (none within slices 2..4) -> 0.5 + 1 + 0
    assert lung_crop_score(crop, depth=3) == pytest.approx(1.5)


def test_filter_threshold_is_inclusive_at_15_percent():
    depth = 4
    crop = np.full((10, 10, depth + 3), -900.0)
    limit = 0.15 * 10 * 10 * depth  # 60
    flat = crop[..., :depth].reshape(-1)
    flat[:60] = 40.0
    crop[..., :depth] = flat.reshape(10, 10, depth)
    crop[..., depth:] = -900.0
    assert lung_crop_score(crop, depth) == limit
    assert is_lung_crop(crop, depth)
    crop[9, 9, depth - 1] = 40.0  # one more tissue voxel: rejected
    assert not is_lung_crop(crop, depth)


def _coordinate_volume(shape, axis):
    """Lung-valued volume whose HU equals -1000 + coordinate along `axis`, to read crop corners back."""
    coords = np.arange(shape[axis], dtype=np.float32)
    view = [1, 1, 1]
    view[axis] = -1
    return np.broadcast_to(-1000.0 + coords.reshape(view), shape).copy()


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_crop_corners_respect_margins_and_cover_the_range(axis):
    shape, cube, margins = (40, 36, 30), (8, 6, 4), (5, 6, 7)
    volume = _coordinate_volume(shape, axis)
    cubes = extract_cubes(volume, num_cubes=400, cube_size=cube, margins=margins, seed=axis)
    assert cubes.shape == (400,) + cube
    corners = np.rint(cubes[:, 0, 0, 0] * 2000.0).astype(int)  # (-1000 + c + 1000) / 2000
    crop_depth = cube[2] + 3
    low, high = margins[axis], shape[axis] - (cube[axis] if axis < 2 else crop_depth) - 1 - margins[axis]
    assert (low, high) == crop_start_ranges(shape, cube, margins)[axis]
    assert corners.min() == low and corners.max() == high  # every crop inside, both ends reached
    assert len(np.unique(corners)) == high - low + 1


def test_default_margins_need_265_in_plane_and_96_slices():
    assert crop_start_ranges((265, 265, 96)) == [(100, 100), (100, 100), (30, 30)]
    with pytest.raises(VolumeTooSmallError, match="too small: axis 1 has 264 voxels") as info:
        crop_start_ranges((265, 264, 96))
    assert info.value.reason == "too small"
    with pytest.raises(VolumeTooSmallError, match="too few slices") as info:
        crop_start_ranges((265, 265, 95))
    assert info.value.reason == "too few slices"


def _chest(shape=(48, 48, 40), tissue_fraction=0.5, seed=0):
    """Lung (-850 HU) in the left half, tissue (+40 HU) in the right half, some tissue specks."""
    rng = np.random.default_rng(seed)
    volume = np.full(shape, LUNG, np.int16)
    volume[:, shape[1] // 2 :, :] = TISSUE
    volume[rng.random(shape) < 0.03] = TISSUE
    return volume


def test_kept_cubes_are_lung_scaled_and_float32():
    volume = _chest()
    volume[:, :, 12] = np.where(volume[:, :, 12] == LUNG, -3000, 3000)  # beyond the window: clipped
    cubes = extract_cubes(volume, num_cubes=16, cube_size=(8, 8, 4), margins=(2, 2, 2), seed=0)
    assert cubes.dtype == np.float32 and cubes.shape[1:] == (8, 8, 4) and 0 < len(cubes) <= 16
    assert cubes.min() >= 0.0 and cubes.max() <= 1.0
    tissue_in_cube = (cubes >= (-150 + 1000) / 2000.0).sum(axis=(1, 2, 3))
    assert (tissue_in_cube <= 0.15 * 8 * 8 * 4).all()  # k = 0 voxels alone already bound the score
    allowed = np.array([0.0, (LUNG + 1000) / 2000.0, (TISSUE + 1000) / 2000.0, 1.0])
    assert np.abs(np.unique(cubes)[:, None] - allowed[None]).min(axis=1).max() < 1e-6


def test_clipping_and_scaling_of_a_kept_cube():
    # One voxel more than the crop along x with zero margins pins the crop corner to x = 0.
    hu = np.linspace(-1400.0, -300.0, 18, dtype=np.float32)  # all lung, partly below the window
    volume = np.broadcast_to(hu[:, None, None], (18, 10, 12)).copy()
    cubes = extract_cubes(volume, num_cubes=2, cube_size=(17, 4, 4), margins=(0, 0, 0), seed=1)
    expected = (np.clip(hu[:17], -1000.0, 1000.0) + 1000.0) / 2000.0
    for cube in cubes:
        np.testing.assert_allclose(cube, np.broadcast_to(expected[:, None, None], cube.shape), atol=1e-6)
    assert expected[0] == 0.0


def test_count_is_num_cubes_when_all_crops_pass():
    volume = np.full((30, 30, 30), -900, np.int16)
    assert extract_cubes(volume, num_cubes=7, cube_size=(8, 8, 4), margins=(1, 1, 1), seed=0).shape[0] == 7


def test_gives_up_after_50_draws_per_cube(monkeypatch):
    calls = []
    real_score = cube_extraction.lung_crop_score

    def counting_score(*args, **kwargs):
        calls.append(1)
        return real_score(*args, **kwargs)

    monkeypatch.setattr(cube_extraction, "lung_crop_score", counting_score)
    volume = np.full((30, 30, 30), TISSUE, np.int16)  # no lung anywhere
    cubes = extract_cubes(volume, num_cubes=3, cube_size=(8, 8, 4), margins=(1, 1, 1), seed=0)
    assert cubes.shape == (0, 8, 8, 4)
    assert len(calls) == 150


def test_seed_makes_it_reproducible():
    volume = _chest(seed=3)
    kwargs = dict(num_cubes=5, cube_size=(8, 8, 4), margins=(2, 2, 2))
    a = extract_cubes(volume, seed=11, **kwargs)
    np.testing.assert_array_equal(a, extract_cubes(volume, seed=11, **kwargs))
    np.testing.assert_array_equal(a, extract_cubes(volume, seed=np.random.default_rng(11), **kwargs))
    assert not np.array_equal(a, extract_cubes(volume, seed=12, **kwargs))


def test_accepts_tensors_and_channel_first():
    volume = _chest(seed=4)
    kwargs = dict(num_cubes=3, cube_size=(8, 8, 4), margins=(2, 2, 2), seed=5)
    reference = extract_cubes(volume, **kwargs)
    np.testing.assert_array_equal(extract_cubes(torch.as_tensor(volume[None]), **kwargs), reference)


@pytest.mark.parametrize(
    "volume, kwargs, words",
    [
        (np.zeros((20, 20)), {}, "expected a 3D"),
        (np.zeros((2, 20, 20, 20)), {}, "expected a 3D"),
        (np.full((20, 20, 20), np.nan), {"margins": (0, 0, 0), "cube_size": (4, 4, 4)}, "NaN"),
        (np.zeros((20, 20, 20)), {"num_cubes": 0}, "num_cubes"),
        (np.zeros((20, 20, 20)), {"hu_window": (100, -100)}, "hu_window"),
        (np.zeros((20, 20, 20)), {"margins": (1, 1)}, "margins"),
        (np.zeros((20, 20, 20)), {"margins": (1, -1, 1)}, "margins"),
        (np.zeros((20, 20, 20)), {"cube_size": (0, 4, 4)}, "cube_size"),
        (np.array([["a"]] * 3), {}, "expected a 3D"),
    ],
)
def test_bad_arguments_give_clear_errors(volume, kwargs, words):
    with pytest.raises(ValueError, match=words):
        extract_cubes(volume, **kwargs)


def test_small_volume_with_spec_margins_says_what_to_lower():
    with pytest.raises(VolumeTooSmallError, match="lower `margins`"):
        extract_cubes(np.zeros((160, 160, 96), np.int16))
