"""Synthetic chest CT, LUNA16-like: lungs with vessels, solid and part-solid nodules, candidates.

The nodules of the false-positive reduction (NCC) and segmentation (NCS) tasks of Models Genesis
(Zhou et al., MICCAI 2019): true nodules (class 1) with voxel masks, and look-alikes (class 0)
at vessel bifurcations and small pleural bumps, listed like LUNA16's ``candidates.csv``
(seriesuid, coordX, coordY, coordZ in LPS world mm, class).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from monai_genesis.data.luna16_csv import ANNOTATION_COLUMNS, LABELLED_CANDIDATE_COLUMNS
from monai_genesis.phantoms.geometry import HasGeometry, Orientation, case_orientation
from monai_genesis.phantoms.shapes import (
    Grid,
    blend,
    branch_points,
    case_seed,
    check_count,
    check_range,
    check_seed,
    check_shape,
    check_spacing,
    lobulated_ball,
    make_uid,
    place_balls,
)
from monai_genesis.phantoms.thorax import build_thorax
from monai_genesis.phantoms.writers import (
    check_formats,
    prepare_output_dir,
    write_case_volumes,
    write_csv,
    write_manifest,
)

NODULE_KINDS = ("solid", "part-solid")
CANDIDATE_COLUMNS = LABELLED_CANDIDATE_COLUMNS  # the columns of a written candidates.csv
PART_SOLID_MIN_MM = 6.0  # smaller nodules are always drawn solid


@dataclass
class Nodule:
    """One nodule: its label in ``nodule_mask``, kind, nominal diameter and centre.

    ``centre_voxel`` indexes ``image`` (X, Y, Z); ``centre_world`` is LPS mm (LUNA16 coordinates).
    """

    label: int
    kind: str
    diameter_mm: float
    centre_voxel: tuple[float, float, float]
    centre_world: tuple[float, float, float]


@dataclass
class ChestCT(HasGeometry):
    """A synthetic chest CT and its ground truth.

    Attributes:
        image: int16 Hounsfield units, (X, Y, Z).
        affine: 4x4 voxel -> RAS world (mm), as nibabel writes and MONAI's LoadImage returns it;
            ``affine_lps`` gives the LPS (ITK, LUNA16) version.
        lung_mask: uint8, 1 inside the lungs (parenchyma, vessels and nodules).
        nodule_mask: uint8, nodule ``label`` (1..N) on its voxels, 0 elsewhere.
        nodules: the true nodules.
        candidates: LUNA16 rows ``{"seriesuid", "coordX", "coordY", "coordZ", "class"}``.
        candidate_sources: what each candidate is ("nodule", "vessel-bifurcation", "pleural-bump").
        seriesuid: the series UID (LUNA16 names files after it).
    """

    image: np.ndarray
    affine: np.ndarray
    lung_mask: np.ndarray
    nodule_mask: np.ndarray
    nodules: list[Nodule]
    candidates: list[dict]
    candidate_sources: list[str] = field(default_factory=list)
    seriesuid: str = ""


def make_chest_ct(
    shape=(128, 128, 96),
    spacing=(0.7, 0.7, 1.25),
    seed: int = 0,
    num_nodules: int = 3,
    num_false_positives: int = 8,
    nodule_diameter_mm=(3.0, 30.0),
    part_solid_fraction: float = 0.35,
    noise_hu: float = 12.0,
    direction=None,
    origin=None,
    seriesuid: str | None = None,
) -> ChestCT:
    """Generate a chest CT phantom, deterministic for a given seed.

    The anatomy is scaled to fill the field of view; nodule sizes are in mm (a nodule that does not
    fit in the lungs is shrunk to the largest size that does, never below the minimum diameter).

    Args:
        shape: volume size (X, Y, Z) in voxels, at least 32 along each axis.
        spacing: voxel size in mm (LUNA16 scans are about 0.7 x 0.7 x 1.25 mm).
        seed: random seed; the same seed gives the same volume, bit for bit.
        num_nodules: number of true nodules (0..50).
        num_false_positives: number of look-alike candidates (vessel bifurcations and pleural bumps).
        nodule_diameter_mm: (min, max) nodule diameter, drawn log-uniformly, within [3, 30] mm.
        part_solid_fraction: probability that a nodule of at least 6 mm is part-solid (ground-glass
            halo around a solid core) rather than solid.
        noise_hu: standard deviation of the added image noise (HU).
        direction: 3x3 LPS direction matrix of the voxel axes (default identity).
        origin: LPS world position of voxel (0, 0, 0) in mm (default: volume centred near isocentre).
        seriesuid: series UID (default: a deterministic UID under root 2.25).
    """
    shape = check_shape(shape, min_size=32)
    spacing = check_spacing(spacing)
    rng = np.random.default_rng(check_seed(seed))
    num_nodules = check_count(num_nodules, "num_nodules", 0, 50)
    num_false_positives = check_count(num_false_positives, "num_false_positives", 0, 200)
    d_min, d_max = check_range(nodule_diameter_mm, "nodule_diameter_mm", 3.0, 30.0)
    if not 0.0 <= float(part_solid_fraction) <= 1.0:
        raise ValueError(f"part_solid_fraction must be in [0, 1], got {part_solid_fraction!r}")
    if not 0.0 <= float(noise_hu) <= 200.0:
        raise ValueError(f"noise_hu must be in [0, 200] HU, got {noise_hu!r}")
    orientation = Orientation.create(shape, spacing, direction, origin)
    uid = make_uid(rng, "chest-ct") if seriesuid is None else str(seriesuid)

    grid = Grid(shape, spacing)
    thorax = build_thorax(grid, rng)
    hu, lung = thorax.hu, thorax.lung

    nodule_mask = np.zeros(shape, np.uint8)
    wanted = np.exp(rng.uniform(math.log(d_min), math.log(d_max), num_nodules)) / 2
    lobulation = 0.12
    balls = place_balls(lung, grid, wanted * (1 + lobulation), rng, min_radius_mm=d_min / 2 * (1 + lobulation), gap_mm=3.0)
    nodules_mm = []
    for label, (centre, reach) in enumerate(balls, start=1):
        radius = reach / (1 + lobulation)
        # sub-centimetre-ish nodules are too small to show a ground-glass halo around a core
        part_solid = rng.uniform() < part_solid_fraction and 2 * radius >= PART_SOLID_MIN_MM
        kind = "part-solid" if part_solid else "solid"
        _paint_nodule(hu, nodule_mask, grid, rng, centre, radius, kind, label, lobulation)
        nodules_mm.append((label, kind, 2 * radius, centre))
    nodule_mask *= lung

    fp_points, fp_sources = _false_positives(hu, thorax, grid, rng, num_false_positives, nodules_mm)

    if noise_hu > 0:
        hu += rng.standard_normal(shape, dtype=np.float32) * np.float32(noise_hu)
    image = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    image, lung_mask, nodule_mask = orientation.arrays(image, lung.astype(np.uint8), nodule_mask)

    nodules = []
    for label, kind, diameter, centre in nodules_mm:
        voxel, world = orientation.voxels(centre)[0], orientation.world(centre)[0]
        nodules.append(Nodule(label, kind, float(diameter), tuple(map(float, voxel)), tuple(map(float, world))))
    points = [n[3] for n in nodules_mm] + fp_points
    sources = ["nodule"] * len(nodules_mm) + fp_sources
    labels = [1] * len(nodules_mm) + [0] * len(fp_points)
    order = rng.permutation(len(points))
    worlds = orientation.world(np.asarray(points).reshape(-1, 3)) if points else np.zeros((0, 3))
    candidates = [
        {"seriesuid": uid, "coordX": float(worlds[i, 0]), "coordY": float(worlds[i, 1]), "coordZ": float(worlds[i, 2]), "class": labels[i]}
        for i in order
    ]
    return ChestCT(
        image=image,
        affine=orientation.affine,
        lung_mask=lung_mask,
        nodule_mask=nodule_mask,
        nodules=nodules,
        candidates=candidates,
        candidate_sources=[sources[i] for i in order],
        seriesuid=uid,
    )


def _paint_nodule(hu, mask, grid: Grid, rng, centre, radius: float, kind: str, label: int, lobulation: float) -> None:
    """Blend one nodule into ``hu`` and write its label where it covers at least half a voxel."""
    found = lobulated_ball(grid, centre, radius, rng, lobulation)
    if found is None:
        return
    box, occupancy = found
    if kind == "solid":
        blend(hu[box], occupancy, rng.uniform(0.0, 60.0))
    else:  # ground-glass halo around an eccentric solid core
        blend(hu[box], occupancy, rng.uniform(-620.0, -420.0))
        core_radius = radius * rng.uniform(0.3, 0.55)
        offset = rng.standard_normal(3)
        offset *= (radius - core_radius) * 0.4 / max(np.linalg.norm(offset), 1e-6)
        core = lobulated_ball(grid, centre + offset, core_radius, rng, lobulation)
        if core is not None:
            core_box, core_occ = core
            blend(hu[core_box], core_occ, rng.uniform(0.0, 50.0))
    region = mask[box]
    region[(occupancy >= 0.5) & (region == 0)] = label


def _false_positives(hu, thorax, grid: Grid, rng, count: int, nodules_mm) -> tuple[list, list]:
    """Candidate points that are not nodules: vessel bifurcations and painted pleural bumps."""
    def clear_of_nodules(point, margin=4.0):
        return all(np.linalg.norm(point - c) > d / 2 + margin for _, _, d, c in nodules_mm)

    points, sources = [], []
    # bifurcations of vessels thick enough to show as a bright blob of a voxel or more
    forks = branch_points(thorax.arteries + thorax.veins, min_radius_mm=0.6 * min(grid.spacing))
    forks = [p for p in forks[rng.permutation(len(forks))] if _in_mask(thorax.lung, grid, p) and clear_of_nodules(p)]
    for point in forks[: count - count // 2]:
        points.append(point)
        sources.append("vessel-bifurcation")
    # pleural bumps: small soft-tissue lumps on the costal surface of the lungs
    lung = thorax.lung
    slices = np.flatnonzero(lung.sum(axis=(0, 1)) > 0.3 * lung.sum(axis=(0, 1)).max())
    u, v, _ = grid.normalized()
    peripheral = np.sqrt((u[:, :, 0] / 0.9) ** 2 + (v[:, :, 0] / 0.66) ** 2) > 0.55
    tries = 0
    while len(points) < count and tries < 20 * count and len(slices):
        tries += 1
        k = int(slices[rng.integers(len(slices))])
        plane = lung[:, :, k]
        edge = plane & ~ndimage.binary_erosion(plane) & peripheral
        xs, ys = np.nonzero(edge)
        if len(xs) == 0:
            continue
        i = rng.integers(len(xs))
        point = np.array([xs[i], ys[i], k], float) * np.asarray(grid.spacing)
        if not clear_of_nodules(point, margin=6.0):
            continue
        radius = rng.uniform(1.5, 3.5)
        found = lobulated_ball(grid, point, radius, rng, 0.1)
        if found is not None:
            box, occupancy = found
            blend(hu[box], occupancy, rng.uniform(10.0, 50.0))
        points.append(point)
        sources.append("pleural-bump")
    if len(points) < count:
        raise ValueError(f"could place only {len(points)} of num_false_positives={count} look-alikes; use fewer")
    return points, sources


def _in_mask(mask, grid: Grid, point_mm) -> bool:
    return bool(mask[tuple(grid.voxel_of(point_mm))])


def write_chest_ct_dataset(
    output_dir,
    num_cases: int = 3,
    shape=(128, 128, 96),
    spacing=(0.7, 0.7, 1.25),
    seed: int = 0,
    formats=("nii.gz", "mhd"),
    **kwargs,
) -> list[Path]:
    """Write a LUNA16-like dataset of synthetic chest CTs; returns the written paths.

    Layout: ``images/<seriesuid>.nii.gz|.mhd`` (int16 HU; each .mhd has its .raw beside it),
    ``labels/<seriesuid>.*`` (nodule labels), ``lungs/<seriesuid>.*`` (lung mask),
    ``candidates.csv`` (seriesuid, coordX, coordY, coordZ, class; LPS world mm),
    ``annotations.csv`` (seriesuid, coordX, coordY, coordZ, diameter_mm) and ``dataset.json``.
    Case i uses seed ``case_seed(seed, i)``, so a case does not depend on ``num_cases``; cases
    cycle through an identity, an oblique and a feet-first direction, all with non-zero origins.

    Args:
        output_dir: folder to write into (created if missing).
        num_cases: number of volumes.
        shape: volume size (X, Y, Z).
        spacing: voxel size (mm).
        seed: dataset seed.
        formats: "nii.gz", "mhd", "both" or a sequence of those.
        kwargs: passed to ``make_chest_ct`` (num_nodules, num_false_positives, ...).
    """
    formats = check_formats(formats)
    num_cases = check_count(num_cases, "num_cases", 1, 100000)
    shape, spacing, seed = check_shape(shape, min_size=32), check_spacing(spacing), check_seed(seed)
    out = prepare_output_dir(output_dir)
    written, cases, candidates, annotations = [], [], [], []
    for index in range(num_cases):
        direction, origin = case_orientation(index, shape, spacing, np.random.default_rng([seed, index, 1]))
        ct = make_chest_ct(shape, spacing, seed=case_seed(seed, index), direction=direction, origin=origin, **kwargs)
        volumes = {"images": ct.image, "labels": ct.nodule_mask, "lungs": ct.lung_mask}
        entry, paths = write_case_volumes(out, ct.seriesuid, volumes, ct.affine, formats)
        written += paths
        candidates += ct.candidates
        for n in ct.nodules:
            x, y, z = n.centre_world
            annotations.append({"seriesuid": ct.seriesuid, "coordX": x, "coordY": y, "coordZ": z, "diameter_mm": n.diameter_mm})
        cases.append({"id": ct.seriesuid, **entry, "nodules": [asdict(n) for n in ct.nodules], "affine": ct.affine})
    written.append(write_csv(out / "candidates.csv", candidates, CANDIDATE_COLUMNS))
    written.append(write_csv(out / "annotations.csv", annotations, ANNOTATION_COLUMNS))
    settings = {"num_cases": num_cases, "shape": shape, "spacing": spacing, "seed": seed, "formats": formats, **kwargs}
    written.append(write_manifest(out, "chest-ct", settings, cases))
    return written
