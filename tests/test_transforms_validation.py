"""Bad input gets a clear ValueError naming the problem, from every Genesis transform."""

import numpy as np
import pytest
import torch

from monai_genesis.transforms import (
    RandGenesisCorruptionBatch,
    RandGenesisCorruptiond,
    RandGenesisFlip,
    RandInPainting,
    RandLocalPixelShuffle,
    RandNonLinearIntensity,
    RandOutPainting,
    check_unit_cube,
)

CUBE = np.full((1, 16, 16, 16), 0.5, dtype=np.float32)
RANGE_CHECKED = [RandNonLinearIntensity, RandInPainting, RandOutPainting]
ALL_ARRAY = [RandGenesisFlip, RandLocalPixelShuffle] + RANGE_CHECKED


@pytest.mark.parametrize("cls", ALL_ARRAY)
@pytest.mark.parametrize("shape", [(16, 16, 16), (1, 16, 16), (1, 1, 16, 16, 16)])
def test_non_3d_spatial_input(cls, shape):
    with pytest.raises(ValueError, match=r"channel-first 3D image \(C, H, W, D\)"):
        cls(prob=1.0)(np.full(shape, 0.5, dtype=np.float32))


def test_missing_channel_hint():
    with pytest.raises(ValueError, match="add a channel dimension"):
        check_unit_cube(np.zeros((8, 8, 8), np.float32), "X")


@pytest.mark.parametrize("cls", RANGE_CHECKED)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels(cls, bad):
    img = CUBE.copy()
    img[0, 3, 4, 5] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        cls(prob=1.0)(img)


@pytest.mark.parametrize("cls", RANGE_CHECKED)
@pytest.mark.parametrize("value", [-0.01, 1.01, 1000.0])
def test_values_outside_unit_range_name_the_normalising_transform(cls, value):
    img = CUBE.copy()
    img[0, 0, 0, 0] = value
    with pytest.raises(ValueError, match=r"\[0, 1\].*ScaleIntensityRange"):
        cls(prob=1.0)(img)


@pytest.mark.parametrize("value", [-0.0009, 1.0009])
def test_small_overshoot_is_tolerated(value):
    img = CUBE.copy()
    img[0, 0, 0, 0] = value
    out = RandNonLinearIntensity(prob=1.0)(img)
    assert np.isfinite(out).all()


def test_integer_images_are_rejected_where_noise_is_added():
    with pytest.raises(ValueError, match="floating-point"):
        RandInPainting(prob=1.0)(np.zeros((1, 16, 16, 16), np.int16))


def test_torch_and_numpy_inputs_checked_alike():
    img = torch.full((1, 16, 16, 16), 2.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RandOutPainting(prob=1.0)(img)
    with pytest.raises(ValueError, match="numpy array or torch tensor"):
        check_unit_cube([[0.5]], "X")


@pytest.mark.parametrize(
    "cls, side, rule",
    [
        (RandLocalPixelShuffle, 9, "side // 10"),
        (RandInPainting, 7, "s // 6 .. s // 3"),
        (RandOutPainting, 13, "3s // 7 .. 4s // 7"),
    ],
)
def test_cube_too_small_for_block_rules(cls, side, rule):
    img = np.full((1, 32, side, 32), 0.5, np.float32)
    with pytest.raises(ValueError, match=f">= .*{rule.split()[0]}"):
        cls(prob=1.0)(img)
    cls(prob=1.0)(np.full((1, 32, side + 1, 32), 0.5, np.float32))  # one voxel more is fine


def test_pipeline_checks_only_enabled_steps():
    small = {"image": np.full((1, 12, 12, 12), 0.5, np.float32)}
    with pytest.raises(ValueError, match="out-painting"):
        RandGenesisCorruptiond("image")(small)
    RandGenesisCorruptiond("image", inpaint_prob=1.0)(small)  # no out-painting: 12 voxels suffice
    with pytest.raises(ValueError, match="key 'image'"):
        RandGenesisCorruptiond("image")({"image": np.full((1, 32, 32, 32), 3.0, np.float32)})


def test_batch_checks():
    batch = RandGenesisCorruptionBatch()
    with pytest.raises(ValueError, match=r"\(B, C, H, W, D\)"):
        batch(torch.zeros(1, 32, 32, 32))
    with pytest.raises(ValueError, match="NaN or infinite"):
        batch(torch.full((1, 1, 16, 16, 16), float("nan")))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        batch(torch.full((1, 1, 16, 16, 16), -1.0))
    with pytest.raises(ValueError, match=">= 14"):
        batch(torch.full((1, 1, 16, 13, 16), 0.5))


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandGenesisFlip(spatial_axes=(3,)),
        lambda: RandLocalPixelShuffle(num_blocks=0),
        lambda: RandInPainting(max_blocks=0),
        lambda: RandOutPainting(continue_prob=1.5),
        lambda: RandGenesisCorruptiond("image", paint_prob=2.0),
        lambda: RandGenesisCorruptiond(["a", "b"], target_key="target"),
        lambda: RandGenesisCorruptiond("image", target_key="image"),
        lambda: RandGenesisCorruptionBatch(flip_prob=-0.1),
    ],
)
def test_bad_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_local_shuffle_of_a_whole_volume_asks_for_a_crop():
    with pytest.raises(ValueError, match="crop pretraining cubes"):
        RandLocalPixelShuffle(prob=1.0)(np.zeros((1, 512, 512, 300), np.float32))
