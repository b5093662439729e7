"""Thorax anatomy shared by the chest CT and CT pulmonary angiography phantoms.

Trunk wall and spine (``trunk``), ribs with costal cartilage, sternum, two lungs with a
textured parenchyma, domes of the diaphragm over liver, stomach and spleen, heart, aorta,
pulmonary trunk, trachea and main bronchi, oesophagus, and branching pulmonary artery and vein
trees, all scaled to fill the field of view (the canonical frame of ``shapes``).
The Hounsfield units come from a table so that a contrast phase (CTPA) is a different table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from monai_genesis.phantoms.shapes import (
    Grid,
    Segment,
    blend,
    ellipse_level,
    grow_vessel_tree,
    smooth_noise,
    tube_occupancy,
)
from monai_genesis.phantoms.trunk import TRUNK_HU, build_trunk

# Non-contrast chest CT (LUNA16-like); CTPA overrides some entries.
PLAIN_HU = {
    "mediastinal_fat": -90.0,
    "lung": -850.0,
    "myocardium": 45.0,
    "heart_blood": 40.0,
    "aorta": 40.0,
    "pulmonary_trunk": 40.0,
    "artery": 40.0,
    "vein": 40.0,
    "airway_wall": 50.0,
    "esophagus": 40.0,
    "liver": 60.0,
    "spleen": 50.0,
    "stomach": 25.0,
    "cartilage": 120.0,
}

# lung tree roots: (side, direction in canonical (x, y, z)), mirrored for the left lung
_ARTERY_ROOTS = [(-0.3, -0.1, 1.0), (-1.0, -0.3, 0.25), (-0.5, -0.9, -0.35), (-0.45, 0.7, -0.8), (-0.35, 0.0, -1.0)]
_VEIN_ROOTS = [(-1.0, -0.5, -0.2), (-0.6, 0.3, -0.9), (-0.5, -0.4, 0.8)]


@dataclass
class Thorax:
    """Noise-free thorax in the canonical frame.

    Attributes:
        hu: float32 (X, Y, Z) Hounsfield units.
        lung: bool lung mask (parenchyma with its vessels).
        arteries, veins: pulmonary vessel segments (mm); the pulmonary trunk has generation -2,
            the main pulmonary arteries -1, the lung trees 0 (lobar) and up.
        artery_occupancy, vein_occupancy: float32 partial-volume occupancy of those vessels.
        grid: the canonical grid.
    """

    hu: np.ndarray
    lung: np.ndarray
    arteries: list[Segment]
    veins: list[Segment]
    artery_occupancy: np.ndarray
    vein_occupancy: np.ndarray
    grid: Grid
    hu_table: dict = field(default_factory=dict)


def _tube(grid: Grid, points, radius: float, generation: int = -1) -> list[Segment]:
    """Segments of a polyline given in normalized coordinates, radius in half-widths."""
    mm = [grid.to_mm(*p) for p in points]
    r = radius * grid.half_width_mm
    return [Segment(a, b, r, r, generation) for a, b in zip(mm[:-1], mm[1:])]


def build_thorax(grid: Grid, rng: np.random.Generator, hu_table: dict | None = None) -> Thorax:
    """Build the thorax anatomy (no lesions, no noise).

    Args:
        grid: canonical grid.
        rng: random generator.
        hu_table: overrides of ``PLAIN_HU`` (e.g. contrast-filled arteries for CTPA).
    """
    hu_of = {**PLAIN_HU, **(hu_table or {})}
    trunk = build_trunk(grid, rng, cavity_hu=hu_of["mediastinal_fat"])
    hu = trunk.hu
    u, v, w = grid.normalized()
    u2, v2, w1 = u[:, :, 0], v[:, :, 0], w[0, 0]
    wall_inner = float(trunk.rho[trunk.cavity].max())  # elliptic radius of the inner wall

    _paint_ribs_and_sternum(hu, trunk, grid, rng, wall_inner, hu_of)

    # diaphragm domes (w height of the lung base), the right one higher over the liver
    dome_q = ellipse_level((np.abs(u2), v2), (0.42, 0.0), (0.42, 0.6))
    dome = 0.06 + np.clip(1 - dome_q, 0, 1) * (0.2 + 0.05 * (u2 < 0)) * rng.uniform(0.9, 1.1)
    dome = dome.astype(np.float32)
    below_dome = trunk.cavity[:, :, None] & (w < dome[:, :, None])
    liver = below_dome & (u < 0.08 - 0.2 * v)
    stomach = below_dome & ~liver & (v < 0.15)
    hu[liver] = hu_of["liver"]
    hu[stomach] = hu_of["stomach"]
    hu[below_dome & ~liver & ~stomach] = hu_of["spleen"]
    gas = stomach & (w > dome[:, :, None] - 0.03) & (u > 0.25) & (v < -0.1)
    hu[gas] = TRUNK_HU["air"]

    # lungs: inside the wall, above the domes, out of the mediastinal band and the heart
    apex_taper = np.sqrt(np.clip(1 - ((w1 - 0.72) / 0.25).clip(0) ** 2, 0, 1)).astype(np.float32)
    lung_rho = wall_inner - 0.015
    # mediastinum half-width: narrow in front (anterior junction), wider behind and at the top
    front_to_back = np.clip((v + 0.5) / 0.6, 0, 1)
    half_width = 0.035 + 0.055 * front_to_back + 0.035 * np.clip((w - 0.65) / 0.2, 0, 1)
    band = np.abs(u - 0.015) < half_width
    outline = trunk.rho * (1 + 0.02 * smooth_noise(grid.shape[:2] + (1,), rng, 12.0)[:, :, 0])
    lung = trunk.cavity[:, :, None] & (outline[:, :, None] < lung_rho * apex_taper[None, None, :]) & ~band
    lung &= w > dome[:, :, None]
    heart_level = ellipse_level((u, v, w), (0.08, -0.2, 0.34), (0.33, 0.3, 0.19))
    heart = heart_level < 1
    lung &= ~heart

    # mediastinal tubes (their own Hounsfield units, carved out of the lungs)
    aorta = _tube(grid, [(0.0, -0.15, 0.42), (0.0, -0.12, 0.72), (0.1, 0.2, 0.76), (0.1, 0.27, 0.55), (0.1, 0.27, -0.1)], 0.055)
    trunk_pa = _tube(grid, [(0.08, -0.3, 0.42), (0.05, -0.06, 0.62)], 0.055, generation=-2)
    main_pa = _tube(grid, [(0.05, -0.06, 0.62), (-0.2, 0.08, 0.58)], 0.04) + _tube(
        grid, [(0.05, -0.06, 0.62), (0.2, 0.1, 0.6)], 0.04
    )
    airway = _tube(grid, [(0.0, 0.05, 1.05), (0.0, 0.12, 0.66)], 0.05)
    bronchi = _tube(grid, [(0.0, 0.12, 0.66), (-0.19, 0.15, 0.6)], 0.03) + _tube(grid, [(0.0, 0.12, 0.66), (0.19, 0.17, 0.6)], 0.03)
    esophagus = _tube(grid, [(-0.01, 0.31, 1.05), (0.03, 0.3, 0.25)], 0.025)

    hu[heart] = hu_of["myocardium"]
    hu[heart_level < 0.7] = hu_of["heart_blood"]
    mediastinal = np.zeros(grid.shape, np.float32)
    for segments, value in ((aorta, "aorta"), (esophagus, "esophagus")):
        occ = tube_occupancy(grid, segments)
        blend(hu, occ, hu_of[value])
        np.maximum(mediastinal, occ, out=mediastinal)
    airway_wall = [Segment(s.start, s.end, s.radius_start * 1.25, s.radius_end * 1.25, -1) for s in airway + bronchi]
    occ = tube_occupancy(grid, airway_wall)
    blend(hu, occ, hu_of["airway_wall"])
    np.maximum(mediastinal, occ, out=mediastinal)
    blend(hu, tube_occupancy(grid, airway + bronchi), TRUNK_HU["air"])
    lung &= mediastinal < 0.5

    # parenchyma: base value, smooth texture, denser dependent (posterior) lung
    parenchyma = (
        np.float32(hu_of["lung"] + rng.uniform(-20, 20))
        + np.float32(18.0) * smooth_noise(grid.shape, rng, 3.0)
        + np.float32(40.0) * np.clip(v, 0, 1)
    )
    np.copyto(hu, parenchyma, where=lung)

    # pulmonary artery and vein trees from each hilum
    h = grid.half_width_mm
    arteries = trunk_pa + main_pa
    veins: list[Segment] = []
    min_radius = 0.45 * min(grid.spacing)
    for side in (-1.0, 1.0):
        hilum = grid.to_mm(0.2 * side, 0.09, 0.59)
        for roots, trees, radius in ((_ARTERY_ROOTS, arteries, 0.032), (_VEIN_ROOTS, veins, 0.03)):
            start = hilum if trees is arteries else grid.to_mm(0.18 * side, 0.0, 0.5)
            for direction in roots:
                d = np.array([-direction[0] * side, direction[1], direction[2]])
                d = d * np.array([1.0, 1.0, 0.8])
                trees.extend(
                    grow_vessel_tree(lung, grid, rng, start, d, 0.22 * h * rng.uniform(0.85, 1.15), radius * h, min_radius)
                )
    artery_occ = tube_occupancy(grid, arteries)
    vein_occ = tube_occupancy(grid, veins)
    paintable = lung | (hu == np.float32(hu_of["mediastinal_fat"]))
    blend(hu, vein_occ, hu_of["vein"], where=paintable)
    blend(hu, artery_occ, hu_of["artery"], where=paintable)
    main_occ = tube_occupancy(grid, trunk_pa + main_pa)
    blend(hu, main_occ, hu_of["pulmonary_trunk"])
    lung &= main_occ < 0.5
    return Thorax(hu, lung, arteries, veins, artery_occ, vein_occ, grid, hu_of)


def _paint_ribs_and_sternum(hu, trunk, grid: Grid, rng, wall_inner: float, hu_of: dict) -> None:
    """Ribs sloping down towards the front, costal cartilage near the sternum, and the sternum."""
    u, v, w = grid.normalized()
    u2, v2, w1 = u[:, :, 0], v[:, :, 0], w[0, 0]
    a, b = trunk.semi_axes
    rib_rho, half_thick = wall_inner + 0.025, 0.024
    posterior = np.clip((v2 - trunk.centre_v) / b / np.maximum(trunk.rho, 1e-3), -1, 1)  # sine of the angle
    shell = trunk.body & (np.abs(trunk.rho - rib_rho) < half_thick) & ~((np.abs(u2) < 0.08) & (v2 < 0))
    shell &= ~((np.abs(u2) < 0.2) & (v2 > trunk.centre_v + 0.3 * b))  # spine region
    px, py = np.nonzero(shell)
    pitch = trunk.vertebra_pitch
    phase = (w1[None, :] + 0.7 * pitch * posterior[px, py][:, None]) / pitch + rng.uniform()
    dz = ((phase % 1.0) - 0.5) / 0.17
    dr = (trunk.rho[px, py] - rib_rho)[:, None] / half_thick
    q = dr * dr + dz * dz
    in_cage = (w1 > 0.12) & (w1 < 0.97)
    rib = (q < 1) & in_cage[None, :]
    cartilage = ((np.abs(u2[px, 0]) < 0.3) & (posterior[px, py] < -0.55))[:, None]
    values = np.where(q > 0.45, np.float32(TRUNK_HU["bone_cortex"]), np.float32(TRUNK_HU["bone_marrow"]))
    values = np.where(cartilage, np.float32(hu_of["cartilage"]), values)
    column = hu[px, py, :]
    hu[px, py, :] = np.where(rib, values, column)

    sternum = ellipse_level((u2, v2), (0.0, trunk.centre_v - b * 0.9), (0.06, 0.028)) < 1
    sx, sy = np.nonzero(sternum & trunk.body)
    span = (w1 > 0.35) & (w1 < 0.93)
    hu[sx, sy, :] = np.where(span[None, :], np.float32(TRUNK_HU["bone_marrow"] + 150), hu[sx, sy, :])
