"""Synthetic abdominal CT, LiTS-like: liver (about 60 HU) with lesions, neighbouring organs.

The data of the liver segmentation task (LCS) of Models Genesis (Zhou et al., MICCAI 2019): a
liver with hepatic vessels and hypodense, cystic or hyperdense lesions, next to the gallbladder,
spleen, stomach, kidneys, pancreas, aorta, inferior vena cava, bowel loops and lung bases.
``liver_mask`` follows LiTS: 0 background, 1 liver, 2 lesion.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from monai_genesis.phantoms.geometry import HasGeometry, Orientation, case_orientation
from monai_genesis.phantoms.shapes import (
    Grid,
    Segment,
    blend,
    case_seed,
    check_count,
    check_range,
    check_seed,
    check_shape,
    check_spacing,
    ellipse_level,
    grow_vessel_tree,
    lobulated_ball,
    place_balls,
    smooth_noise,
    tube_occupancy,
)
from monai_genesis.phantoms.trunk import TRUNK_HU, build_trunk
from monai_genesis.phantoms.writers import check_formats, prepare_output_dir, write_case_volumes, write_manifest

ABDOMEN_HU = {
    "visceral_fat": -100.0,
    "liver": 60.0,
    "hepatic_vessel": 40.0,
    "gallbladder": 10.0,
    "spleen": 50.0,
    "kidney": 35.0,
    "renal_sinus": -40.0,
    "stomach": 20.0,
    "pancreas": 45.0,
    "vessel": 40.0,
    "bowel_wall": 35.0,
    "bowel_fluid": 15.0,
    "lung": -850.0,
}
LESION_KINDS = {"hypodense": (20.0, 40.0), "cyst": (0.0, 15.0), "hyperdense": (85.0, 110.0)}


@dataclass
class LiverLesion:
    """One liver lesion: kind, nominal diameter and centre (voxel and LPS world mm)."""

    kind: str
    diameter_mm: float
    centre_voxel: tuple[float, float, float]
    centre_world: tuple[float, float, float]


@dataclass
class AbdomenCT(HasGeometry):
    """A synthetic abdominal CT and its liver ground truth.

    Attributes:
        image: int16 Hounsfield units, (X, Y, Z).
        affine: 4x4 voxel -> RAS world (mm); ``affine_lps`` gives the ITK/LPS version.
        liver_mask: uint8, 0 background, 1 liver (with its vessels), 2 lesion (LiTS labels).
        lesions: the liver lesions.
        case_id: identifier used in file names.
    """

    image: np.ndarray
    affine: np.ndarray
    liver_mask: np.ndarray
    lesions: list[LiverLesion]
    case_id: str = ""


def make_abdomen_ct(
    shape=(128, 128, 96),
    spacing=(0.8, 0.8, 1.5),
    seed: int = 0,
    num_lesions: int = 3,
    lesion_diameter_mm=(5.0, 40.0),
    noise_hu: float = 12.0,
    direction=None,
    origin=None,
    case_id: str = "abdomen",
) -> AbdomenCT:
    """Generate an abdominal CT phantom (upper abdomen, liver in view), deterministic by seed.

    Args:
        shape: volume size (X, Y, Z), at least 32 along each axis.
        spacing: voxel size in mm.
        seed: random seed.
        num_lesions: number of liver lesions (0..50).
        lesion_diameter_mm: (min, max) lesion diameter, drawn log-uniformly within [3, 100] mm;
            lesions too large for the liver shrink to fit.
        noise_hu: standard deviation of the image noise (HU).
        direction: 3x3 LPS direction matrix (default identity).
        origin: LPS world position of voxel (0, 0, 0) (default: centred near isocentre).
        case_id: identifier stored with the result.
    """
    shape = check_shape(shape, min_size=32)
    spacing = check_spacing(spacing)
    rng = np.random.default_rng(check_seed(seed))
    num_lesions = check_count(num_lesions, "num_lesions", 0, 50)
    d_min, d_max = check_range(lesion_diameter_mm, "lesion_diameter_mm", 3.0, 100.0)
    if not 0.0 <= float(noise_hu) <= 200.0:
        raise ValueError(f"noise_hu must be in [0, 200] HU, got {noise_hu!r}")
    orientation = Orientation.create(shape, spacing, direction, origin, centre_world=(0.0, 20.0, -420.0))

    grid = Grid(shape, spacing)
    hu_of = dict(ABDOMEN_HU, liver=ABDOMEN_HU["liver"] + rng.uniform(-8, 8))
    trunk = build_trunk(grid, rng, semi_axes=(0.92, 0.72), fat_thickness=0.1, cavity_hu=hu_of["visceral_fat"])
    hu = trunk.hu
    u, v, w = grid.normalized()
    cavity = trunk.cavity[:, :, None]

    # lung bases in the posterior recesses at the top, above the diaphragm
    dome = 0.82 + 0.3 * np.clip(1 - ellipse_level((np.abs(u), v), (0.45, 0.1), (0.45, 0.55)), 0, 1)
    lungs = cavity & (w > dome) & (trunk.rho[:, :, None] < 0.8) & (np.abs(u) > 0.15)
    hu[lungs] = hu_of["lung"]
    below = cavity & ~lungs

    liver = _organ(grid, rng, [((-0.38, -0.02, 0.66), (0.5, 0.62, 0.36)), ((0.12, -0.36, 0.74), (0.32, 0.22, 0.2))], 0.1)
    liver &= below & (w < dome - 0.02)
    gallbladder = ellipse_level((u, v, w), (-0.22, -0.4, 0.44), (0.08, 0.11, 0.12)) < 1
    liver &= ~gallbladder
    spleen = _organ(grid, rng, [((0.62, 0.32, 0.7), (0.16, 0.28, 0.22))], 0.08) & below
    stomach = _organ(grid, rng, [((0.35, -0.3, 0.72), (0.26, 0.2, 0.2))], 0.08) & below & ~liver & ~spleen
    kidneys = [ellipse_level((u, v, w), (s * 0.38, 0.42, 0.4 - 0.05 * (s < 0)), (0.12, 0.14, 0.18)) for s in (-1, 1)]

    texture = np.float32(6.0) * smooth_noise(shape, rng, 4.0)
    hu[spleen] = hu_of["spleen"]
    hu[stomach] = hu_of["stomach"]
    hu[stomach & (v < -0.38)] = TRUNK_HU["air"]  # gas rises to the front (patient supine)
    for level in kidneys:
        hu[(level < 1) & below] = hu_of["kidney"]
        hu[(level < 0.2) & below] = hu_of["renal_sinus"]
    np.copyto(hu, np.float32(hu_of["liver"]) + texture, where=liver)
    hu[gallbladder & below] = hu_of["gallbladder"]

    h = grid.half_width_mm
    vessels = [
        Segment(grid.to_mm(0.06, 0.3, 1.1), grid.to_mm(0.06, 0.3, -0.1), 0.05 * h, 0.05 * h),  # aorta
        Segment(grid.to_mm(-0.12, 0.24, 1.1), grid.to_mm(-0.12, 0.26, -0.1), 0.055 * h, 0.05 * h),  # IVC
    ]
    blend(hu, tube_occupancy(grid, vessels), hu_of["vessel"])
    pancreas = [Segment(grid.to_mm(-0.08, 0.08, 0.5), grid.to_mm(0.42, 0.14, 0.58), 0.06 * h, 0.04 * h)]
    blend(hu, tube_occupancy(grid, pancreas), hu_of["pancreas"], where=below & ~liver)
    _paint_bowel(hu, grid, rng, below & ~liver & ~spleen & ~stomach & (w < 0.55), hu_of)

    # hepatic vessels branching from the porta hepatis (part of the liver label, as in LiTS)
    hepatic = []
    for direction in ((-1.0, 0.2, 0.5), (-0.6, -0.6, 0.6), (-0.5, 0.6, 0.3), (0.8, -0.6, 0.5)):
        hepatic += grow_vessel_tree(liver, grid, rng, grid.to_mm(-0.18, 0.02, 0.55), direction, 0.25 * h, 0.03 * h,
                                    0.45 * min(spacing), max_generations=5)
    blend(hu, tube_occupancy(grid, hepatic), hu_of["hepatic_vessel"], where=liver)

    label = liver.astype(np.uint8)
    lesions_mm = []
    wanted = np.exp(rng.uniform(math.log(d_min), math.log(d_max), num_lesions)) / 2
    lobulation = 0.1
    for centre, reach in place_balls(liver, grid, wanted * (1 + lobulation), rng, d_min / 2 * (1 + lobulation), gap_mm=3.0):
        radius = reach / (1 + lobulation)
        kind = str(rng.choice(list(LESION_KINDS), p=[0.6, 0.25, 0.15]))
        found = lobulated_ball(grid, centre, radius, rng, lobulation if kind != "cyst" else 0.02)
        box, occupancy = found
        occupancy *= liver[box]
        blend(hu[box], occupancy, rng.uniform(*LESION_KINDS[kind]))
        label[box][occupancy >= 0.5] = 2
        lesions_mm.append((kind, 2 * radius, centre))

    if noise_hu > 0:
        hu += rng.standard_normal(shape, dtype=np.float32) * np.float32(noise_hu)
    image = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    image, label = orientation.arrays(image, label)
    lesions = [
        LiverLesion(kind, float(d), tuple(map(float, orientation.voxels(c)[0])), tuple(map(float, orientation.world(c)[0])))
        for kind, d, c in lesions_mm
    ]
    return AbdomenCT(image=image, affine=orientation.affine, liver_mask=label, lesions=lesions, case_id=str(case_id))


def _organ(grid: Grid, rng, ellipsoids, irregularity: float) -> np.ndarray:
    """Union of ellipsoids (normalized units) with a boundary roughened by smooth noise."""
    u, v, w = grid.normalized()
    level = np.minimum.reduce([ellipse_level((u, v, w), c, r) for c, r in ellipsoids])
    return level + np.float32(irregularity) * smooth_noise(grid.shape, rng, 10.0) < 1


def _paint_bowel(hu, grid: Grid, rng, region: np.ndarray, hu_of: dict) -> None:
    """Tortuous bowel loops (random-walk tubes) with fluid or gas inside, within ``region``."""
    h = grid.half_width_mm
    choices = np.flatnonzero(region[::4, ::4, ::4])
    if len(choices) == 0:
        return
    coarse = region[::4, ::4, ::4].shape
    for _ in range(6):
        start = np.asarray(np.unravel_index(choices[rng.integers(len(choices))], coarse), float) * 4 * np.asarray(grid.spacing)
        direction = rng.standard_normal(3)
        points = [start]
        for _ in range(8):
            direction = direction / np.linalg.norm(direction) + 0.8 * rng.standard_normal(3)
            step = points[-1] + direction / np.linalg.norm(direction) * 0.12 * h
            if not region[tuple(grid.voxel_of(step))]:
                break
            points.append(step)
        radius = rng.uniform(0.05, 0.08) * h
        wall = [Segment(a, b, radius, radius) for a, b in zip(points[:-1], points[1:])]
        lumen = [Segment(a, b, radius * 0.7, radius * 0.7) for a, b in zip(points[:-1], points[1:])]
        blend(hu, tube_occupancy(grid, wall), hu_of["bowel_wall"], where=region)
        content = TRUNK_HU["air"] if rng.uniform() < 0.4 else hu_of["bowel_fluid"]
        blend(hu, tube_occupancy(grid, lumen), content, where=region)


def write_abdomen_ct_dataset(
    output_dir,
    num_cases: int = 3,
    shape=(128, 128, 96),
    spacing=(0.8, 0.8, 1.5),
    seed: int = 0,
    formats=("nii.gz",),
    **kwargs,
) -> list[Path]:
    """Write a LiTS-like dataset of synthetic abdominal CTs; returns the written paths.

    Layout: ``images/abdomen_NNN.*`` (int16 HU), ``labels/abdomen_NNN.*`` (0 background, 1 liver,
    2 lesion) and ``dataset.json``. Directions cycle as in the chest dataset.

    Args:
        output_dir: folder to write into (created if missing).
        num_cases: number of volumes.
        shape: volume size (X, Y, Z).
        spacing: voxel size (mm).
        seed: dataset seed.
        formats: "nii.gz", "mhd", "both" or a sequence of those.
        kwargs: passed to ``make_abdomen_ct`` (num_lesions, lesion_diameter_mm, noise_hu).
    """
    formats = check_formats(formats)
    num_cases = check_count(num_cases, "num_cases", 1, 100000)
    shape, spacing, seed = check_shape(shape, min_size=32), check_spacing(spacing), check_seed(seed)
    out = prepare_output_dir(output_dir)
    written, cases = [], []
    for index in range(num_cases):
        direction, origin = case_orientation(index, shape, spacing, np.random.default_rng([seed, index, 1]))
        origin = origin - np.array([0.0, 0.0, 260.0])  # the abdomen lies below the chest
        ct = make_abdomen_ct(shape, spacing, seed=case_seed(seed, index), direction=direction, origin=origin,
                             case_id=f"abdomen_{index:03d}", **kwargs)
        entry, paths = write_case_volumes(out, ct.case_id, {"images": ct.image, "labels": ct.liver_mask}, ct.affine, formats)
        written += paths
        cases.append({"id": ct.case_id, **entry, "lesions": [asdict(x) for x in ct.lesions], "affine": ct.affine})
    settings = {"num_cases": num_cases, "shape": shape, "spacing": spacing, "seed": seed, "formats": formats, **kwargs}
    written.append(write_manifest(out, "abdomen-ct", settings, cases))
    return written
