"""Synthetic CT pulmonary angiography: contrast-filled pulmonary arteries with emboli.

The data of the pulmonary embolism false-positive reduction task (ECC) of Models Genesis
(Zhou et al., MICCAI 2019): emboli are filling defects (about 50 HU) inside arteries that hold
about 300 HU of contrast; candidates (class 1 = embolus, class 0 = look-alike: lymph nodes beside
arteries, contrast-mixing artefacts, less-enhanced veins and artery bifurcations) are listed as
seriesuid, coordX, coordY, coordZ (LPS world mm), class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from monai_genesis.phantoms.chest_ct import CANDIDATE_COLUMNS
from monai_genesis.phantoms.geometry import HasGeometry, Orientation, case_orientation
from monai_genesis.phantoms.shapes import (
    Grid,
    blend,
    branch_points,
    case_seed,
    check_count,
    check_seed,
    check_shape,
    check_spacing,
    lobulated_ball,
    make_uid,
)
from monai_genesis.phantoms.thorax import build_thorax
from monai_genesis.phantoms.writers import (
    check_formats,
    prepare_output_dir,
    write_case_volumes,
    write_csv,
    write_manifest,
)

# Hounsfield units in the pulmonary arterial phase (the rest as in PLAIN_HU)
CTPA_HU = {
    "artery": 300.0,
    "pulmonary_trunk": 320.0,
    "heart_blood": 250.0,
    "myocardium": 110.0,
    "vein": 170.0,
    "aorta": 190.0,
}
FALSE_POSITIVE_KINDS = ("lymph-node", "mixing-artefact", "vein", "artery-bifurcation")


@dataclass
class Embolus:
    """One embolus: its label in ``emboli_mask``, size and centre (voxel and LPS world mm)."""

    label: int
    length_mm: float
    diameter_mm: float
    occlusive: bool
    centre_voxel: tuple[float, float, float]
    centre_world: tuple[float, float, float]


@dataclass
class CTPA(HasGeometry):
    """A synthetic CTPA and its ground truth.

    Attributes:
        image: int16 Hounsfield units, (X, Y, Z).
        affine: 4x4 voxel -> RAS world (mm); ``affine_lps`` gives the ITK/LPS version.
        lung_mask: uint8 lung mask.
        artery_mask: uint8, 1 in the lumen of the pulmonary arteries.
        emboli_mask: uint8, embolus ``label`` (1..N) on its voxels.
        emboli: the true emboli.
        candidates: rows ``{"seriesuid", "coordX", "coordY", "coordZ", "class"}`` (LPS mm).
        candidate_sources: "embolus" or one of ``FALSE_POSITIVE_KINDS`` per candidate.
        seriesuid: the series UID.
    """

    image: np.ndarray
    affine: np.ndarray
    lung_mask: np.ndarray
    artery_mask: np.ndarray
    emboli_mask: np.ndarray
    emboli: list[Embolus]
    candidates: list[dict]
    candidate_sources: list[str] = field(default_factory=list)
    seriesuid: str = ""


def make_ctpa(
    shape=(128, 128, 96),
    spacing=(0.7, 0.7, 1.0),
    seed: int = 0,
    num_emboli: int = 3,
    num_false_positives: int = 8,
    noise_hu: float = 15.0,
    direction=None,
    origin=None,
    seriesuid: str | None = None,
) -> CTPA:
    """Generate a CTPA phantom with emboli, deterministic for a given seed.

    Args:
        shape: volume size (X, Y, Z), at least 32 along each axis.
        spacing: voxel size in mm.
        seed: random seed.
        num_emboli: number of emboli (0..50), placed in the central, lobar and segmental arteries.
        num_false_positives: number of look-alike candidates.
        noise_hu: standard deviation of the image noise (HU).
        direction: 3x3 LPS direction matrix (default identity).
        origin: LPS world position of voxel (0, 0, 0) (default: centred near isocentre).
        seriesuid: series UID (default: deterministic under root 2.25).
    """
    shape = check_shape(shape, min_size=32)
    spacing = check_spacing(spacing)
    rng = np.random.default_rng(check_seed(seed))
    num_emboli = check_count(num_emboli, "num_emboli", 0, 50)
    num_false_positives = check_count(num_false_positives, "num_false_positives", 0, 200)
    if not 0.0 <= float(noise_hu) <= 200.0:
        raise ValueError(f"noise_hu must be in [0, 200] HU, got {noise_hu!r}")
    orientation = Orientation.create(shape, spacing, direction, origin)
    uid = make_uid(rng, "ctpa") if seriesuid is None else str(seriesuid)

    grid = Grid(shape, spacing)
    contrast = rng.uniform(0.8, 1.25)  # bolus timing varies between patients
    table = {k: v * contrast if k in ("artery", "pulmonary_trunk", "heart_blood") else v for k, v in CTPA_HU.items()}
    thorax = build_thorax(grid, rng, table)
    hu, lumen = thorax.hu, thorax.artery_occupancy

    # thick enough arteries (main pulmonary to segmental; not the trunk, which starts inside the
    # heart), drawn with probability ~ radius^2
    min_radius = 0.8 * max(spacing[0], spacing[1])
    arteries = [s for s in thorax.arteries if min(s.radius_start, s.radius_end) >= min_radius and -1 <= s.generation <= 3]
    if num_emboli and not arteries:
        raise ValueError(f"no artery is wide enough for emboli at spacing {spacing}; use a larger shape or finer spacing")
    emboli_mask = np.zeros(shape, np.uint8)
    emboli_mm, used = _place_emboli(hu, lumen, emboli_mask, grid, rng, arteries, num_emboli)

    fp_points, fp_sources = _false_positives(hu, thorax, grid, rng, num_false_positives, used, min_radius)

    if noise_hu > 0:
        hu += rng.standard_normal(shape, dtype=np.float32) * np.float32(noise_hu)
    image = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    arrays = orientation.arrays(image, thorax.lung.astype(np.uint8), (lumen >= 0.5).astype(np.uint8), emboli_mask)
    emboli = [
        Embolus(label, float(length), float(width), bool(occl), *(tuple(map(float, p)) for p in _where(orientation, c)))
        for label, length, width, occl, c in emboli_mm
    ]
    points = [e[4] for e in emboli_mm] + fp_points
    sources = ["embolus"] * len(emboli_mm) + fp_sources
    order = rng.permutation(len(points))
    worlds = orientation.world(np.asarray(points).reshape(-1, 3)) if points else np.zeros((0, 3))
    candidates = [
        {"seriesuid": uid, "coordX": float(worlds[i, 0]), "coordY": float(worlds[i, 1]), "coordZ": float(worlds[i, 2]),
         "class": int(sources[i] == "embolus")}
        for i in order
    ]
    return CTPA(
        image=arrays[0],
        affine=orientation.affine,
        lung_mask=arrays[1],
        artery_mask=arrays[2],
        emboli_mask=arrays[3],
        emboli=emboli,
        candidates=candidates,
        candidate_sources=[sources[i] for i in order],
        seriesuid=uid,
    )


def _place_emboli(hu, lumen, emboli_mask, grid: Grid, rng, arteries, count: int):
    """Paint ``count`` emboli into random arteries; returns their records and (centre, reach) list."""
    weights = np.array([s.radius_end**2 for s in arteries])
    emboli_mm, used = [], []
    for _ in range(50 * count):
        if len(emboli_mm) == count:
            break
        seg = arteries[rng.choice(len(arteries), p=weights / weights.sum())]
        t = rng.uniform(0.25, 0.75)
        centre = seg.start + t * (seg.end - seg.start)
        if any(np.linalg.norm(centre - c) <= r + 2 * max(grid.spacing) for c, r in used):
            continue
        vessel_radius = seg.radius_start + t * (seg.radius_end - seg.radius_start)
        length = min(vessel_radius * rng.uniform(3.0, 6.0), np.linalg.norm(seg.end - seg.start))
        width = vessel_radius * rng.uniform(0.55, 1.0)
        axis = (seg.end - seg.start) / np.linalg.norm(seg.end - seg.start)
        side = np.cross(axis, rng.standard_normal(3))
        centre = centre + side / np.linalg.norm(side) * (vessel_radius - width) * rng.uniform(0, 1)
        found = _spindle(grid, centre, axis, length / 2, width)
        if found is None:
            continue
        box, occupancy = found
        occupancy *= np.clip(lumen[box] * 2 - 1, 0, 1)  # only inside the lumen
        region = emboli_mask[box]
        voxels = (occupancy >= 0.5) & (region == 0)
        if voxels.sum() < 2:  # too thin to show at this resolution: try another artery
            continue
        label = len(emboli_mm) + 1
        blend(hu[box], occupancy, rng.uniform(30.0, 70.0))
        region[voxels] = label
        # the listed centre is the embolus voxel nearest to its centroid (inside it, even when eccentric)
        corner = np.array([b.start for b in box], float)
        inside = (np.argwhere(voxels) + corner) * np.asarray(grid.spacing)
        centre = inside[np.argmin(np.linalg.norm(inside - inside.mean(axis=0), axis=1))]
        used.append((centre, length / 2 + vessel_radius))
        emboli_mm.append((label, length, 2 * width, width >= 0.9 * vessel_radius, centre))
    if len(emboli_mm) < count:
        raise ValueError(
            f"could place only {len(emboli_mm)} of num_emboli={count} emboli in a {grid.shape} volume: its "
            "arteries are too thin in voxels (the anatomy scales with the shape); use fewer emboli or a larger shape"
        )
    return emboli_mm, used


def _where(orientation: Orientation, centre_mm):
    return orientation.voxels(centre_mm)[0], orientation.world(centre_mm)[0]


def _spindle(grid: Grid, centre, axis, half_length: float, radius: float):
    """Partial-volume occupancy of an ellipsoid elongated along ``axis`` (box, occupancy)."""
    found = grid.box(centre, half_length + radius + max(grid.spacing))
    if found is None:
        return None
    box, (x, y, z) = found
    along = x * np.float32(axis[0]) + y * np.float32(axis[1]) + z * np.float32(axis[2])
    across2 = np.maximum(x * x + y * y + z * z - along * along, 0)
    level = np.sqrt((along / np.float32(half_length)) ** 2 + across2 / np.float32(radius) ** 2)
    ramp = min(grid.spacing) / radius
    return box, np.clip((1 - level) / np.float32(ramp) + 0.5, 0, 1).astype(np.float32)


def _false_positives(hu, thorax, grid: Grid, rng, count: int, emboli, min_radius: float):
    """Look-alikes, cycling through ``FALSE_POSITIVE_KINDS``; lymph nodes and artefacts are painted."""
    margin = 3 * max(grid.spacing[:2])

    def clear(point):
        return all(np.linalg.norm(point - c) > r + margin for c, r in emboli + taken)

    def on_segment(segments):
        seg = segments[rng.integers(len(segments))]
        t = rng.uniform(0.2, 0.8)
        return seg, seg.start + t * (seg.end - seg.start), seg.radius_start + t * (seg.radius_end - seg.radius_start)

    wide = [s for s in thorax.arteries if s.radius_end >= min_radius]
    veins = [s for s in thorax.veins if s.radius_end >= 0.8 * min_radius]
    forks = branch_points(thorax.arteries, min_radius_mm=min_radius)
    points, sources, taken = [], [], []
    for attempt in range(50 * count):
        if len(points) >= count:
            break
        kind = FALSE_POSITIVE_KINDS[attempt % len(FALSE_POSITIVE_KINDS)]  # a missing kind is skipped
        if kind in ("lymph-node", "mixing-artefact") and wide:
            seg, point, radius = on_segment(wide)
            axis = (seg.end - seg.start) / np.linalg.norm(seg.end - seg.start)
            if kind == "lymph-node":  # a soft-tissue node just outside the artery wall
                side = np.cross(axis, rng.standard_normal(3))
                size = rng.uniform(1.5, 3.0)
                point = point + side / np.linalg.norm(side) * (radius + size + 0.5)
                found = lobulated_ball(grid, point, size, rng, 0.1)
                if found is None or not clear(point):
                    continue
                box, occupancy = found
                blend(hu[box], occupancy * (thorax.artery_occupancy[box] < 0.5), rng.uniform(30.0, 60.0))
            else:  # unopacified blood mixing in: a milder, partial drop of contrast
                found = _spindle(grid, point, axis, radius * 2.5, radius * 0.8)
                if found is None or not clear(point):
                    continue
                box, occupancy = found
                blend(hu[box], occupancy * thorax.artery_occupancy[box] * 0.6, rng.uniform(120.0, 170.0))
        elif kind == "vein" and veins:
            _, point, _ = on_segment(veins)
            if not clear(point):
                continue
        elif kind == "artery-bifurcation" and len(forks):
            point = forks[rng.integers(len(forks))]
            if not clear(point):
                continue
        else:
            continue
        points.append(np.asarray(point, float))
        sources.append(kind)
        taken.append((points[-1], 2.0))
    if len(points) < count:
        raise ValueError(f"could place only {len(points)} of num_false_positives={count} look-alikes; use fewer")
    return points, sources


def write_ctpa_dataset(
    output_dir,
    num_cases: int = 3,
    shape=(128, 128, 96),
    spacing=(0.7, 0.7, 1.0),
    seed: int = 0,
    formats=("nii.gz",),
    **kwargs,
) -> list[Path]:
    """Write a synthetic CTPA dataset (PE-CAD-like); returns the written paths.

    Layout: ``images/<seriesuid>.*`` (int16 HU), ``labels/<seriesuid>.*`` (emboli labels),
    ``arteries/<seriesuid>.*`` (artery lumen mask), ``candidates.csv`` (seriesuid, coordX, coordY,
    coordZ, class; LPS world mm) and ``dataset.json``. Directions cycle as in the chest dataset.

    Args:
        output_dir: folder to write into (created if missing).
        num_cases: number of volumes.
        shape: volume size (X, Y, Z).
        spacing: voxel size (mm).
        seed: dataset seed.
        formats: "nii.gz", "mhd", "both" or a sequence of those.
        kwargs: passed to ``make_ctpa`` (num_emboli, num_false_positives, noise_hu).
    """
    formats = check_formats(formats)
    num_cases = check_count(num_cases, "num_cases", 1, 100000)
    shape, spacing, seed = check_shape(shape, min_size=32), check_spacing(spacing), check_seed(seed)
    out = prepare_output_dir(output_dir)
    written, cases, candidates = [], [], []
    for index in range(num_cases):
        direction, origin = case_orientation(index, shape, spacing, np.random.default_rng([seed, index, 1]))
        ct = make_ctpa(shape, spacing, seed=case_seed(seed, index), direction=direction, origin=origin, **kwargs)
        volumes = {"images": ct.image, "labels": ct.emboli_mask, "arteries": ct.artery_mask}
        entry, paths = write_case_volumes(out, ct.seriesuid, volumes, ct.affine, formats)
        written += paths
        candidates += ct.candidates
        cases.append({"id": ct.seriesuid, **entry, "emboli": [asdict(e) for e in ct.emboli], "affine": ct.affine})
    written.append(write_csv(out / "candidates.csv", candidates, CANDIDATE_COLUMNS))
    settings = {"num_cases": num_cases, "shape": shape, "spacing": spacing, "seed": seed, "formats": formats, **kwargs}
    written.append(write_manifest(out, "ctpa", settings, cases))
    return written

