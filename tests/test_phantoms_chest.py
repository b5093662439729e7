"""Synthetic chest CT: anatomy, nodules and their masks, candidates, determinism, orientation."""

import numpy as np
import pytest
from scipy import ndimage

from monai_genesis.phantoms.chest_ct import CANDIDATE_COLUMNS, make_chest_ct
from monai_genesis.data.io import voxel_to_world, world_to_voxel
from monai_genesis.phantoms.geometry import rotation_deg

SMALL = dict(shape=(64, 64, 48), spacing=(1.4, 1.4, 2.5))  # a 90 x 90 x 120 mm chest at low resolution


@pytest.fixture(scope="module")
def chests():
    return [make_chest_ct(**SMALL, seed=seed, num_nodules=3, num_false_positives=6) for seed in range(4)]


def test_arrays_and_geometry_follow_the_contract(chests):
    ct = chests[0]
    assert ct.image.shape == ct.lung_mask.shape == ct.nodule_mask.shape == (64, 64, 48)
    assert ct.image.dtype == np.int16 and ct.lung_mask.dtype == np.uint8 and ct.nodule_mask.dtype == np.uint8
    assert set(np.unique(ct.lung_mask)) == {0, 1}
    assert np.allclose(ct.spacing, (1.4, 1.4, 2.5))
    # RAS affine (NIfTI/MONAI) and LPS affine (ITK/LUNA16) differ by the sign of x and y
    assert np.allclose(ct.affine_lps, np.diag([-1, -1, 1, 1]) @ ct.affine)
    assert ct.seriesuid.startswith("2.25.") and len(ct.seriesuid) <= 64


def test_tissues_have_their_hounsfield_units(chests):
    for ct in chests:
        image, lung = ct.image.astype(float), ct.lung_mask > 0
        corners = image[:4, :4, :]
        assert np.median(corners) < -950  # air around the patient
        parenchyma = image[lung & (ct.nodule_mask == 0)]
        assert -900 < np.median(parenchyma) < -780  # about -850 HU
        assert 5 < parenchyma.std() < 200  # textured, noisy, but not random
        assert (image > 400).sum() > 100  # bone: spine, ribs, sternum
        body = image[20:44, 20:44, :]
        assert ((body > -200) & (body < 100)).mean() > 0.2  # soft tissue: heart, mediastinum, wall


def test_lungs_fill_most_of_the_thorax(chests):
    for ct in chests:
        lung = ct.lung_mask > 0
        body = lung | (ct.image > -400)
        middle = slice(16, 40)  # mid-chest slices
        assert lung[:, :, middle].sum() / body[:, :, middle].sum() > 0.4  # of the body cross-section
        left, right = lung[:32].sum(), lung[32:].sum()
        assert 0.6 < left / right < 1.6  # two lungs of similar size


def test_nodules_lie_in_the_lungs_with_sizes_in_range(chests):
    for ct in chests:
        assert len(ct.nodules) == 3
        assert set(np.unique(ct.nodule_mask)) == {0, 1, 2, 3}
        assert np.all(ct.lung_mask[ct.nodule_mask > 0] == 1)
        voxel_volume = np.prod(ct.spacing)
        for nodule in ct.nodules:
            assert 3.0 <= nodule.diameter_mm <= 30.0
            centre = tuple(int(round(c)) for c in nodule.centre_voxel)
            assert ct.nodule_mask[centre] == nodule.label
            volume = (ct.nodule_mask == nodule.label).sum() * voxel_volume
            equivalent = (6 * volume / np.pi) ** (1 / 3)
            assert abs(equivalent - nodule.diameter_mm) < 0.3 * nodule.diameter_mm + 2 * max(ct.spacing)


def test_nodule_masks_match_intensities():
    seen = set()
    for seed in range(4):
        ct = make_chest_ct(**SMALL, seed=seed, num_nodules=3, nodule_diameter_mm=(8, 20), part_solid_fraction=0.5)
        image = ct.image.astype(float)
        for nodule in ct.nodules:
            values = image[ct.nodule_mask == nodule.label]
            if nodule.kind == "solid":
                assert values.mean() > -250  # soft tissue (partial volume at the rim)
            else:  # ground glass (-620..-420 HU) around a solid core
                assert -700 < np.median(values) < -250
                assert values.max() > -100
            seen.add(nodule.kind)
            mask = ct.nodule_mask == nodule.label
            shell = ndimage.binary_dilation(mask, iterations=2) & ~mask & (ct.nodule_mask == 0)
            assert np.median(image[shell]) < -400  # the mask ends where the nodule does
    assert seen == {"solid", "part-solid"}


def test_candidates_mix_nodules_and_look_alikes(chests):
    for ct in chests:
        assert all(tuple(row) == CANDIDATE_COLUMNS for row in ct.candidates)
        assert all(row["seriesuid"] == ct.seriesuid for row in ct.candidates)
        classes = [row["class"] for row in ct.candidates]
        assert classes.count(1) == 3 and classes.count(0) == 6
        assert set(ct.candidate_sources) <= {"nodule", "vessel-bifurcation", "pleural-bump"}
        world = np.array([[r["coordX"], r["coordY"], r["coordZ"]] for r in ct.candidates])
        positives = world[np.array(classes) == 1]
        centres = np.array([n.centre_world for n in ct.nodules])
        assert np.allclose(np.sort(positives, axis=0), np.sort(centres, axis=0))
        voxels = world_to_voxel(world, ct.affine_lps)
        assert np.all(voxels > -0.5) and np.all(voxels < np.array(ct.image.shape) - 0.5)
        for (x, y, z), label, source in zip(np.rint(voxels).astype(int), classes, ct.candidate_sources):
            patch = ct.image[max(x - 1, 0) : x + 2, max(y - 1, 0) : y + 2, max(z - 1, 0) : z + 2].astype(float)
            assert patch.max() > -400, source  # every candidate is a bright spot in the lung
            if label == 0:
                assert ct.nodule_mask[x, y, z] == 0


def test_sources_include_both_kinds_of_look_alikes(chests):
    sources = {s for ct in chests for s in ct.candidate_sources}
    assert {"vessel-bifurcation", "pleural-bump"} <= sources


def test_same_seed_same_volume_other_seed_other_volume(chests):
    again = make_chest_ct(**SMALL, seed=0, num_nodules=3, num_false_positives=6)
    assert np.array_equal(again.image, chests[0].image)
    assert np.array_equal(again.nodule_mask, chests[0].nodule_mask)
    assert again.candidates == chests[0].candidates and again.seriesuid == chests[0].seriesuid
    assert not np.array_equal(chests[1].image, chests[0].image)
    assert chests[1].seriesuid != chests[0].seriesuid


def test_direction_moves_the_grid_not_the_patient():
    plain = make_chest_ct(**SMALL, seed=5, num_nodules=2)
    flipped = make_chest_ct(**SMALL, seed=5, num_nodules=2, direction=np.diag([1.0, 1.0, -1.0]))
    # feet-first slices: same anatomy stored upside down, same world positions
    assert np.array_equal(flipped.image, plain.image[:, :, ::-1])
    assert flipped.affine_lps[2, 2] < 0
    for a, b in zip(plain.nodules, flipped.nodules):
        assert np.allclose(a.centre_world, b.centre_world)
    # oblique grid: the patient rotates about the volume centre with the grid
    rotation = rotation_deg(3, -4, 9)
    oblique = make_chest_ct(**SMALL, seed=5, num_nodules=2, direction=rotation)
    assert np.array_equal(oblique.image, plain.image)
    centre = voxel_to_world((np.array(SMALL["shape"]) - 1) / 2, plain.affine_lps)
    for a, b in zip(plain.nodules, oblique.nodules):
        assert np.allclose(b.centre_world, centre + rotation @ (np.array(a.centre_world) - centre), atol=1e-6)
    assert np.allclose(oblique.affine_lps[:3, :3] / oblique.spacing, rotation)


def test_origin_places_voxel_zero():
    ct = make_chest_ct(**SMALL, seed=1, num_nodules=1, origin=(-150.0, -120.5, -300.25))
    assert np.allclose(ct.affine_lps[:3, 3], (-150.0, -120.5, -300.25))
    assert np.allclose(ct.affine[:3, 3], (150.0, 120.5, -300.25))  # RAS flips x and y


def _genesis_crop_score(nonlung, crop):
    """Models Genesis' lung test (spec section 3) for a (x, y, z + 2) crop of voxels >= -150 HU."""
    depth = crop[2]
    score = np.where(nonlung[:, :, :depth], 1.0, np.where(nonlung[:, :, 1 : depth + 1], 0.5, 0.0))
    return score.sum()


def test_genesis_cube_extraction_finds_lung_dominated_crops():
    # half the demo scale: 128 x 128 x 80 voxels and 32 x 32 x 16 crops (64 x 64 x 32 at 256 x 256 x 160)
    ct = make_chest_ct(shape=(128, 128, 80), seed=0, num_nodules=2)
    nonlung = ct.image >= -150
    rng = np.random.default_rng(0)
    crop, margin, accepted = (32, 32, 16), (12, 12, 5), 0
    for _ in range(300):
        x, y, z = (rng.integers(m, s - m - c - 2) for s, m, c in zip(ct.image.shape, margin, crop))
        score = _genesis_crop_score(nonlung[x : x + 32, y : y + 32, z : z + 18], crop)
        accepted += score <= 0.15 * np.prod(crop)
    # about 5 % here, 10 % at 256 x 256 x 160: the reference's 50 x 32 draws yield its 32 cubes
    assert accepted >= 6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(shape=(64, 64)), "shape"),
        (dict(shape=(64, 64, 16)), "shape"),
        (dict(shape=(64.5, 64, 48)), "shape"),
        (dict(spacing=(1.0, -1.0, 1.0)), "spacing"),
        (dict(spacing="thin"), "spacing"),
        (dict(seed=-1), "seed"),
        (dict(seed=1.5), "seed"),
        (dict(num_nodules=-1), "num_nodules"),
        (dict(num_nodules=2.0), "num_nodules"),
        (dict(num_false_positives=1000), "num_false_positives"),
        (dict(nodule_diameter_mm=(2.0, 10.0)), "nodule_diameter_mm"),
        (dict(nodule_diameter_mm=(20.0, 10.0)), "nodule_diameter_mm"),
        (dict(part_solid_fraction=1.5), "part_solid_fraction"),
        (dict(noise_hu=-1), "noise_hu"),
        (dict(direction=np.ones((3, 3))), "direction"),
        (dict(direction=np.eye(3)[[1, 0, 2]]), "permuted"),
        (dict(origin=(0.0, 1.0)), "origin"),
    ],
)
def test_bad_arguments_give_clear_errors(kwargs, message):
    arguments = dict(SMALL, **kwargs)
    with pytest.raises(ValueError, match=message):
        make_chest_ct(**arguments)


def test_lungs_too_small_for_nodules_is_a_clear_error():
    with pytest.raises(ValueError, match="no room for a lesion"):
        make_chest_ct(shape=(32, 32, 32), spacing=(0.2, 0.2, 0.2), num_nodules=2)
