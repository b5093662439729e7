"""Trunk cross-section shared by the chest and abdominal CT phantoms.

Skin, subcutaneous fat, muscle wall, paraspinal muscles and the spine (vertebral bodies with a
cortical rim, intervertebral discs, spinal canal and posterior arches), in the canonical frame of
``shapes`` (u: patient right -1 to left +1, v: anterior -1 to posterior +1, w: inferior 0 to
superior 1). The cross-section does not change along z except for the vertebral pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monai_genesis.phantoms.shapes import Grid, ellipse_level

# Hounsfield units of the tissues of the trunk wall
TRUNK_HU = {
    "air": -1000.0,
    "fat": -100.0,
    "muscle": 45.0,
    "skin": 30.0,
    "bone_cortex": 750.0,
    "bone_marrow": 230.0,
    "disc": 85.0,
    "csf": 15.0,
}


@dataclass
class Trunk:
    """The trunk wall and spine, in the canonical frame.

    Attributes:
        hu: float32 (X, Y, Z) Hounsfield units; the body cavity holds ``cavity_hu``.
        body: bool (X, Y) body outline (same on every slice).
        rho: float32 (X, Y) elliptic radius, 1 on the skin.
        cavity: bool (X, Y) inside of the muscle wall, spine and paraspinal muscles excluded.
        vertebra_pitch: distance between vertebrae in normalized w units.
        centre_v: v of the body centre; ``semi_axes``: (a, b) of the body ellipse in (u, v).
    """

    hu: np.ndarray
    body: np.ndarray
    rho: np.ndarray
    cavity: np.ndarray
    vertebra_pitch: float
    centre_v: float
    semi_axes: tuple[float, float]


def build_trunk(
    grid: Grid,
    rng: np.random.Generator,
    semi_axes=(0.92, 0.68),
    fat_thickness: float = 0.07,
    muscle_thickness: float = 0.06,
    cavity_hu: float = -90.0,
    vertebrae_in_view: float = 10.0,
) -> Trunk:
    """Build the trunk wall: air, skin, fat, muscle, spine; the cavity is filled with ``cavity_hu``.

    Args:
        grid: canonical grid.
        rng: random generator (body size and wall thickness vary a little per case).
        semi_axes: body half-width and half-depth in normalized units.
        fat_thickness: subcutaneous fat, as a fraction of the elliptic radius.
        muscle_thickness: muscle wall, as a fraction of the elliptic radius.
        cavity_hu: value given to the inside of the wall (mediastinal or visceral fat).
        vertebrae_in_view: how many vertebrae the field of view spans along z.
    """
    u, v, w = grid.normalized()
    u2, v2 = u[:, :, 0], v[:, :, 0]  # (X, 1) and (1, Y)
    a, b = (s * rng.uniform(0.96, 1.03) for s in semi_axes)
    centre_v = 0.02
    fat = fat_thickness * rng.uniform(0.6, 1.2)
    rho = np.sqrt(ellipse_level((u2, v2), (0.0, centre_v), (a, b))).astype(np.float32)
    body = rho < 1
    wall_inner = 1 - fat - muscle_thickness

    hu2d = np.full(rho.shape, TRUNK_HU["air"], np.float32)
    hu2d[body] = TRUNK_HU["fat"]
    hu2d[body & (rho > 0.985)] = TRUNK_HU["skin"]
    hu2d[(rho < 1 - fat)] = TRUNK_HU["muscle"]
    cavity = rho < wall_inner
    hu2d[cavity] = cavity_hu

    # spine, in-plane parts (normalized units; the vertebral body sits in front of the canal)
    y_body = b * 0.62 + centre_v
    vert_level = ellipse_level((u2, v2), (0.0, y_body), (0.085, 0.075))
    canal_level = ellipse_level((u2, v2), (0.0, y_body + 0.14), (0.04, 0.035))
    arch = (canal_level >= 1) & (canal_level < 3.2) & (v2 > y_body + 0.1)
    arch |= ellipse_level((u2, v2), (0.0, y_body + 0.24), (0.018, 0.07)) < 1  # spinous process
    arch |= ellipse_level((np.abs(u2), v2), (0.1, y_body + 0.12), (0.06, 0.02)) < 1  # transverse
    paraspinal = ellipse_level((np.abs(u2), v2), (0.13, y_body + 0.2), (0.1, 0.09)) < 1
    hu2d[paraspinal & body] = TRUNK_HU["muscle"]
    cavity &= ~paraspinal & (vert_level >= 1.3) & (canal_level >= 3.2)
    hu2d[(vert_level < 1.3) & ~(vert_level < 1)] = TRUNK_HU["muscle"]  # anterior longitudinal soft tissue

    hu = np.empty(grid.shape, np.float32)
    hu[:] = hu2d[:, :, None]

    # vertebral pattern along z: body with discs, arch only over part of each vertebra
    pitch = 1.0 / vertebrae_in_view
    phase = ((w[0, 0] / pitch) + rng.uniform()) % 1.0
    disc = phase < 0.2
    with_arch = (phase > 0.3) & (phase < 0.9)
    vx, vy = np.nonzero(vert_level < 1)
    cortex = vert_level[vx, vy] > 0.65
    column = np.where(cortex[:, None], TRUNK_HU["bone_cortex"], TRUNK_HU["bone_marrow"]).astype(np.float32)
    hu[vx, vy, :] = np.where(disc[None, :], np.float32(TRUNK_HU["disc"]), column)
    ax, ay = np.nonzero(arch & body)
    hu[ax, ay, :] = np.where(with_arch[None, :], np.float32(TRUNK_HU["bone_cortex"]), np.float32(TRUNK_HU["muscle"]))
    cx, cy = np.nonzero(canal_level < 1)
    hu[cx, cy, :] = TRUNK_HU["csf"]
    return Trunk(hu, body, rho, cavity, pitch, centre_v, (a, b))
