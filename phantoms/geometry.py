"""Voxel/world geometry of the synthetic phantoms: affines, directions, origins, LPS and RAS.

ITK, DICOM and LUNA16 place voxels in LPS world millimetres (x to the patient's left, y to the
posterior, z to the head); NIfTI and MONAI use RAS (x and y negated). The phantoms are built in a
canonical voxel frame (i left, j posterior, k superior) and ``Orientation`` puts that frame in the
world with a direction matrix and an origin, flipping the arrays along reversed axes so that the
patient stays upright whatever the direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from monai_genesis.data.io import voxel_to_world

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # its own inverse


def affine_from_geometry(spacing, origin, direction) -> np.ndarray:
    """4x4 voxel -> world matrix ``[direction @ diag(spacing), origin]`` (in the frame of origin)."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction, float) @ np.diag(np.asarray(spacing, float))
    affine[:3, 3] = np.asarray(origin, float)
    return affine


def geometry_from_affine(affine) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spacing, origin, direction) of a 4x4 affine with orthogonal axes."""
    affine = np.asarray(affine, float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError(f"affine must be a finite 4x4 matrix, got shape {affine.shape}")
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if np.any(spacing <= 0):
        raise ValueError("affine has a zero-length voxel axis")
    direction = affine[:3, :3] / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise ValueError("affine axes are not orthogonal (sheared grids cannot be written as MetaImage)")
    return spacing, affine[:3, 3].copy(), direction


def lps_to_ras(affine) -> np.ndarray:
    """Convert a voxel -> LPS affine into voxel -> RAS (and back: the map is its own inverse)."""
    return LPS_TO_RAS @ np.asarray(affine, float)


ras_to_lps = lps_to_ras


def rotation_deg(rx: float = 0.0, ry: float = 0.0, rz: float = 0.0) -> np.ndarray:
    """Rotation matrix from angles (degrees) about the x, then y, then z axis."""
    cx, sx = np.cos(np.deg2rad(rx)), np.sin(np.deg2rad(rx))
    cy, sy = np.cos(np.deg2rad(ry)), np.sin(np.deg2rad(ry))
    cz, sz = np.cos(np.deg2rad(rz)), np.sin(np.deg2rad(rz))
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


def check_direction(direction) -> tuple[np.ndarray, tuple[bool, bool, bool]]:
    """Validate an LPS direction matrix; return it and the voxel axes it reverses.

    Each voxel axis must run mostly along its own patient axis (i ~ left/right, j ~ posterior/
    anterior, k ~ superior/inferior); the anatomy is flipped along the axes whose direction
    cosine is negative so that the patient stays upright in world space.
    """
    if direction is None:
        return np.eye(3), (False, False, False)
    matrix = np.asarray(direction, float)
    if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
        raise ValueError(f"direction must be a 3x3 matrix, got {np.asarray(direction).shape}")
    if not np.allclose(matrix.T @ matrix, np.eye(3), atol=1e-4):
        raise ValueError("direction must be orthonormal (a rotation, possibly with axis flips)")
    dominant = np.argmax(np.abs(matrix), axis=0)
    if not np.array_equal(dominant, [0, 1, 2]):
        raise ValueError(
            "direction must keep each voxel axis mostly along its own patient axis (columns i, j, k "
            "closest to x, y, z); permuted axes are not supported"
        )
    return matrix, tuple(bool(matrix[a, a] < 0) for a in range(3))


def centred_origin(shape, spacing, direction, centre_world) -> np.ndarray:
    """Origin (LPS) that puts the centre of the volume at ``centre_world``."""
    half_extent = (np.asarray(shape, float) - 1) / 2 * np.asarray(spacing, float)
    return np.asarray(centre_world, float) - np.asarray(direction, float) @ half_extent


def case_orientation(index: int, shape, spacing, rng: np.random.Generator):
    """Direction and origin (LPS) of case ``index`` of a dataset, cycling through three setups.

    0: identity direction (most LUNA16 scans); 1: oblique, the grid rotated by a few degrees;
    2: slices stacked feet first (k runs inferior, direction[2, 2] = -1). The volume centre sits
    near the scanner's isocentre with a per-case offset, so origins are never zero.
    """
    setup = index % 3
    if setup == 0:
        direction = np.eye(3)
    elif setup == 1:
        direction = rotation_deg(rng.uniform(2, 6), rng.uniform(-5, -2), rng.uniform(6, 12))
    else:
        direction = np.diag([1.0, 1.0, -1.0])
    centre = np.array([rng.uniform(-15, 15), rng.uniform(0, 40), rng.uniform(-220, -120)])
    return direction, centred_origin(shape, spacing, direction, centre)


def orient_arrays(arrays: Sequence[np.ndarray], flips) -> list[np.ndarray]:
    """Flip canonical arrays along the axes reversed by the direction matrix (contiguous copies)."""
    axes = tuple(a for a in range(3) if flips[a])
    if not axes:
        return list(arrays)
    return [np.ascontiguousarray(np.flip(arr, axis=axes)) for arr in arrays]


def orient_points(points, shape, flips) -> np.ndarray:
    """Canonical voxel coordinates (N, 3) -> voxel coordinates of the flipped arrays."""
    points = np.atleast_2d(np.asarray(points, float)).copy()
    for a in range(3):
        if flips[a]:
            points[:, a] = shape[a] - 1 - points[:, a]
    return points


@dataclass
class Orientation:
    """Where the canonical volume lies in the world: direction, origin and the resulting flips."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    direction: np.ndarray
    origin: np.ndarray
    flips: tuple[bool, bool, bool]

    @classmethod
    def create(cls, shape, spacing, direction=None, origin=None, centre_world=(0.0, 20.0, -160.0)):
        """Validate direction/origin (defaults: identity, centre at ``centre_world``)."""
        matrix, flips = check_direction(direction)
        if origin is None:
            origin = centred_origin(shape, spacing, matrix, centre_world)
        origin = np.asarray(origin, float)
        if origin.shape != (3,) or not np.all(np.isfinite(origin)):
            raise ValueError(f"origin must be three finite numbers (mm), got {origin!r}")
        return cls(tuple(shape), tuple(spacing), matrix, origin, flips)

    @property
    def affine_lps(self) -> np.ndarray:
        return affine_from_geometry(self.spacing, self.origin, self.direction)

    @property
    def affine(self) -> np.ndarray:
        """Voxel -> RAS affine of the stored (flipped) arrays (NIfTI / MONAI convention)."""
        return lps_to_ras(self.affine_lps)

    def arrays(self, *arrays: np.ndarray) -> list[np.ndarray]:
        return orient_arrays(arrays, self.flips)

    def voxels(self, canonical_mm) -> np.ndarray:
        """Canonical mm positions (N, 3) -> voxel coordinates of the stored arrays."""
        canonical = np.atleast_2d(np.asarray(canonical_mm, float)) / np.asarray(self.spacing)
        return orient_points(canonical, self.shape, self.flips)

    def world(self, canonical_mm) -> np.ndarray:
        """Canonical mm positions (N, 3) -> LPS world coordinates (mm)."""
        return voxel_to_world(self.voxels(canonical_mm), self.affine_lps)


class HasGeometry:
    """Mixin of the phantom results: the LPS affine next to the RAS ``affine`` field."""

    @property
    def affine_lps(self) -> np.ndarray:
        """Voxel -> LPS world affine (ITK / LUNA16 convention) of ``image``."""
        return ras_to_lps(self.affine)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in np.linalg.norm(np.asarray(self.affine)[:3, :3], axis=0))
