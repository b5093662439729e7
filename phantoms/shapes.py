"""Shared building blocks of the synthetic phantoms.

Argument checks, coordinate grids, ellipsoids, smooth noise, tapered tubes and vessel trees, and
placement of round lesions. The phantoms' geometry lives in ``geometry``, voxel <-> world
maps in ``monai_genesis.data.io``.

Conventions (all phantom modules):
    - arrays are indexed (X, Y, Z) = (i, j, k), as MONAI and nibabel load them;
    - anatomy is built in a *canonical* voxel frame where i runs to the patient's left, j to the
      posterior and k to the superior side (ITK/DICOM "LPS"), then flipped to the requested
      direction matrix so that the patient stays upright in world space;
    - ``affine`` (voxel -> world, RAS, mm) is the NIfTI/MONAI convention: the matrix that
      ``monai.transforms.LoadImage`` returns for both the .nii.gz and the .mhd files;
    - "world" coordinates of lesions and candidates are LPS mm, the physical space of ITK and of
      the LUNA16 ``candidates.csv``; ``ras_to_lps(affine)`` maps voxels straight to them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from monai_genesis.phantoms.geometry import (  # noqa: F401  (re-exported geometry helpers)
    LPS_TO_RAS,
    HasGeometry,
    Orientation,
    affine_from_geometry,
    case_orientation,
    centred_origin,
    check_direction,
    geometry_from_affine,
    lps_to_ras,
    orient_arrays,
    orient_points,
    ras_to_lps,
    rotation_deg,
)


# ---------------------------------------------------------------------------------------------
# argument checks shared by the generators
# ---------------------------------------------------------------------------------------------
def check_shape(shape, min_size: int = 16, name: str = "shape") -> tuple[int, int, int]:
    """Validate a 3D volume shape and return it as a tuple of ints.

    Args:
        shape: three positive sizes (X, Y, Z).
        min_size: smallest size accepted along any axis (the anatomy needs a few voxels).
        name: argument name used in the error message.
    """
    try:
        values = tuple(int(s) for s in shape)
        ok = len(values) == 3 and all(float(s) == int(s) for s in shape)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be three integers (X, Y, Z), got {shape!r}")
    if min(values) < min_size:
        raise ValueError(f"{name} must be at least {min_size} voxels along every axis, got {values}")
    return values


def check_spacing(spacing, name: str = "spacing") -> tuple[float, float, float]:
    """Validate a voxel spacing in mm (three finite positive numbers)."""
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(np.isfinite(values)) or min(values) <= 0:
        raise ValueError(f"{name} must be three positive numbers in mm, got {spacing!r}")
    return values


def check_seed(seed) -> int:
    """Validate a seed (a non-negative integer)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_count(value, name: str, minimum: int = 0, maximum: int = 255) -> int:
    """Validate an integer count such as ``num_nodules`` (labels are stored as uint8)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return int(value)


def check_range(values, name: str, low: float, high: float) -> tuple[float, float]:
    """Validate a (min, max) pair that lies within [low, high]."""
    try:
        lo, hi = (float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair of numbers, got {values!r}") from None
    if not low <= lo <= hi <= high:
        raise ValueError(f"{name} must satisfy {low} <= min <= max <= {high}, got {values!r}")
    return lo, hi


def case_seed(seed: int, index: int) -> int:
    """Seed of case ``index`` of a dataset: independent of how many cases are written."""
    return int(np.random.SeedSequence([check_seed(seed), int(index)]).generate_state(1)[0])


def make_uid(rng: np.random.Generator, namespace: str) -> str:
    """A DICOM-style UID under the UUID-derived root 2.25 (LUNA16 names its series by UID).

    ``namespace`` (e.g. the phantom kind) keeps the UIDs of different kinds apart for one seed.
    """
    digest = hashlib.sha256(namespace.encode() + rng.bytes(16)).digest()
    return f"2.25.{int.from_bytes(digest[:15], 'big')}"  # 120 bits: at most 42 characters in all


# ---------------------------------------------------------------------------------------------
# the canonical voxel grid
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """Canonical voxel grid: shape (X, Y, Z) and spacing (mm); voxel (0, 0, 0) sits at 0 mm."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def half_width_mm(self) -> float:
        """Mean in-plane half field of view: the length unit of the anatomy (it fills the FOV)."""
        return 0.25 * (self.shape[0] * self.spacing[0] + self.shape[1] * self.spacing[1])

    def normalized(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open grids u (X,1,1) and v (1,Y,1) in [-1, 1] and w (1,1,Z) in [0, 1] (float32)."""
        u = (np.arange(self.shape[0], dtype=np.float32) + 0.5) / self.shape[0] * 2 - 1
        v = (np.arange(self.shape[1], dtype=np.float32) + 0.5) / self.shape[1] * 2 - 1
        w = (np.arange(self.shape[2], dtype=np.float32) + 0.5) / self.shape[2]
        return u[:, None, None], v[None, :, None], w[None, None, :]

    def to_mm(self, u: float, v: float, w: float) -> np.ndarray:
        """Millimetre position of the normalized point (u, v, w)."""
        idx = ((u + 1) / 2 * self.shape[0] - 0.5, (v + 1) / 2 * self.shape[1] - 0.5, w * self.shape[2] - 0.5)
        return np.asarray(idx) * np.asarray(self.spacing)

    def voxel_of(self, point_mm) -> np.ndarray:
        """Nearest voxel index of a millimetre position, clipped to the grid."""
        idx = np.rint(np.asarray(point_mm, dtype=float) / np.asarray(self.spacing)).astype(int)
        return np.clip(idx, 0, np.asarray(self.shape) - 1)

    def box(self, centre_mm, half_mm) -> tuple[tuple[slice, ...], list[np.ndarray]] | None:
        """Voxel box around a point and the open grids of its voxel positions relative to it (mm).

        Returns None when the box misses the grid.
        """
        sp = np.asarray(self.spacing)
        lo = np.maximum(np.floor((np.asarray(centre_mm) - half_mm) / sp).astype(int), 0)
        hi = np.minimum(np.ceil((np.asarray(centre_mm) + half_mm) / sp).astype(int) + 1, self.shape)
        if np.any(hi <= lo):
            return None
        axes = []
        for a in range(3):
            view = [1, 1, 1]
            view[a] = hi[a] - lo[a]
            axes.append((np.arange(lo[a], hi[a], dtype=np.float32) * sp[a] - centre_mm[a]).reshape(view))
        return tuple(slice(lo[a], hi[a]) for a in range(3)), axes


def ellipse_level(coords, centre, radii):
    """Normalized elliptic radius squared (< 1 inside) of an ellipse or ellipsoid.

    Args:
        coords: open grids, one per axis (e.g. ``(u, v)`` or ``(u, v, w)``).
        centre: centre along each axis, in the units of ``coords``.
        radii: semi-axis along each axis, in the units of ``coords``.
    """
    total = 0
    for coord, c, r in zip(coords, centre, radii):
        total = total + ((coord - np.float32(c)) / np.float32(r)) ** 2
    return total


def ellipsoid(grid: Grid, centre, radii) -> np.ndarray:
    """Boolean ellipsoid in normalized coordinates (centre and radii in (u, v, w) units)."""
    u, v, w = grid.normalized()
    return ellipse_level((u, v, w), centre, radii) < 1


def blend(volume: np.ndarray, occupancy: np.ndarray, value, where=None) -> None:
    """In place: volume <- volume + occupancy * (value - volume) (partial-volume mixing).

    Only the voxels where ``occupancy`` is non-zero are touched (structures are small), which is
    several times faster than full-volume arithmetic on large volumes. Views (boxes cut out of
    a volume) are updated with plain arithmetic.
    """
    if not volume.flags.c_contiguous or volume.size < 65536:
        weight = occupancy if where is None else occupancy * where
        volume += weight * (np.float32(value) - volume)
        return
    flat = volume.reshape(-1)
    index = np.flatnonzero(occupancy)
    weight = occupancy.reshape(-1)[index]
    if where is not None:
        weight = weight * where.reshape(-1)[index]
    flat[index] += weight * (np.float32(value) - flat[index])


def smooth_noise(shape, rng: np.random.Generator, feature_voxels) -> np.ndarray:
    """Smooth Gaussian random field, zero mean and unit standard deviation (float32).

    Built at a coarse resolution and upsampled with separable linear interpolation, which costs a
    few full-volume passes instead of a full-resolution Gaussian filter.

    Args:
        shape: output shape (X, Y, Z).
        rng: random generator.
        feature_voxels: typical blob size in voxels, a number or one per axis (>= 1).
    """
    factors = np.broadcast_to(np.asarray(feature_voxels, dtype=float), (3,))
    factors = np.maximum(factors, 1.0)
    coarse_shape = tuple(int(np.ceil(s / f)) + 2 for s, f in zip(shape, factors))
    field = ndimage.gaussian_filter(rng.standard_normal(coarse_shape, dtype=np.float32), 0.8, mode="wrap")
    for axis, (size, f) in enumerate(zip(shape, factors)):
        pos = (np.arange(size) + 0.5) / f
        i0 = np.floor(pos).astype(int)
        view = [1, 1, 1]
        view[axis] = size
        weight = (pos - i0).astype(np.float32).reshape(view)
        field = np.take(field, i0, axis=axis) * (1 - weight) + np.take(field, i0 + 1, axis=axis) * weight
    field -= field.mean()
    field /= max(float(field.std()), 1e-6)
    return field


# ---------------------------------------------------------------------------------------------
# tubes and vessel trees
# ---------------------------------------------------------------------------------------------
@dataclass
class Segment:
    """A tapered tube from ``start`` to ``end`` (mm, canonical frame)."""

    start: np.ndarray
    end: np.ndarray
    radius_start: float
    radius_end: float
    generation: int = 0


def tube_occupancy(grid: Grid, segments: Sequence[Segment], out: np.ndarray | None = None) -> np.ndarray:
    """Partial-volume occupancy (0..1, float32) of the union of tapered tubes (capsules).

    Each tube is rasterised only inside its bounding box (all boxes computed at once); the edge
    is a linear ramp one voxel wide, which approximates the scanner's partial-volume effect.
    """
    occ = np.zeros(grid.shape, np.float32) if out is None else out
    if len(segments) == 0:
        return occ
    ramp = np.float32(min(grid.spacing))
    sp = np.asarray(grid.spacing)
    starts = np.array([s.start for s in segments], float)
    ends = np.array([s.end for s in segments], float)
    r0 = np.array([s.radius_start for s in segments], float)
    r1 = np.array([s.radius_end for s in segments], float)
    reach = np.maximum(r0, r1)[:, None] + float(ramp)
    lo = np.maximum(np.floor((np.minimum(starts, ends) - reach) / sp).astype(int), 0)
    hi = np.minimum(np.ceil((np.maximum(starts, ends) + reach) / sp).astype(int) + 1, grid.shape)
    axes = [np.arange(n, dtype=np.float32) * np.float32(s) for n, s in zip(grid.shape, sp)]
    for n in np.flatnonzero(np.all(hi > lo, axis=1)):
        (a0, a1, a2), (b0, b1, b2) = starts[n], ends[n]
        d0, d1, d2 = b0 - a0, b1 - a1, b2 - a2
        x = (axes[0][lo[n, 0] : hi[n, 0]] - np.float32(a0))[:, None, None]
        y = (axes[1][lo[n, 1] : hi[n, 1]] - np.float32(a1))[None, :, None]
        z = (axes[2][lo[n, 2] : hi[n, 2]] - np.float32(a2))[None, None, :]
        inv_length2 = np.float32(1.0 / max(d0 * d0 + d1 * d1 + d2 * d2, 1e-6))
        t = np.clip((x * np.float32(d0) + y * np.float32(d1) + z * np.float32(d2)) * inv_length2, 0, 1)
        dist = np.sqrt((x - t * np.float32(d0)) ** 2 + (y - t * np.float32(d1)) ** 2 + (z - t * np.float32(d2)) ** 2)
        value = np.clip((np.float32(r0[n]) + t * np.float32(r1[n] - r0[n]) - dist) / ramp + np.float32(0.5), 0, 1)
        box = occ[lo[n, 0] : hi[n, 0], lo[n, 1] : hi[n, 1], lo[n, 2] : hi[n, 2]]
        np.maximum(box, value, out=box)
    return occ


def _unit(vector) -> tuple[float, float, float]:
    x, y, z = (float(c) for c in vector)
    norm = max(math.sqrt(x * x + y * y + z * z), 1e-12)
    return x / norm, y / norm, z / norm


def _cross(a, b) -> tuple[float, float, float]:
    return a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]


def _rotate(vector, axis, angle: float) -> tuple[float, float, float]:
    """Rotate ``vector`` about the unit ``axis`` perpendicular to it (Rodrigues' formula)."""
    c, s = math.cos(angle), math.sin(angle)
    k = _cross(axis, vector)
    return tuple(vector[i] * c + k[i] * s for i in range(3))


def grow_vessel_tree(
    inside: np.ndarray,
    grid: Grid,
    rng: np.random.Generator,
    root_mm,
    direction,
    length_mm: float,
    radius_mm: float,
    min_radius_mm: float,
    max_generations: int = 6,
    length_ratio: float = 0.8,
    radius_ratio: float = 0.72,
    branch_angle_deg: tuple[float, float] = (25.0, 50.0),
) -> list[Segment]:
    """Grow a random binary vessel tree whose branch points stay inside a mask.

    Murray-like tapering: each generation is ``length_ratio`` as long and ``radius_ratio`` as
    thick as its parent; the two children leave on opposite sides of the parent's axis.
    Plain-float vector arithmetic: numpy's per-call overhead dominates for 3-vectors.

    Args:
        inside: boolean mask (canonical frame) every branch end must lie in.
        grid: the canonical grid.
        rng: random generator.
        root_mm: start of the trunk (mm).
        direction: initial direction of the trunk.
        length_mm: trunk length.
        radius_mm: trunk radius.
        min_radius_mm: branches thinner than this are not grown.
        max_generations: number of generations including the trunk.
        length_ratio: child/parent length ratio.
        radius_ratio: child/parent radius ratio.
        branch_angle_deg: range of the angle between a child and its parent.
    """
    spacing, shape = grid.spacing, grid.shape

    def is_inside(point) -> bool:
        idx = tuple(int(round(p / s)) for p, s in zip(point, spacing))
        return all(0 <= i < n for i, n in zip(idx, shape)) and bool(inside[idx])

    segments: list[Segment] = []
    stack = [(tuple(float(c) for c in root_mm), _unit(direction), float(length_mm), float(radius_mm), 0)]
    while stack:
        start, d, length, radius, gen = stack.pop()
        for scale in (1.0, 0.6):  # shorten once when the end leaves the mask
            end = tuple(start[i] + d[i] * length * scale for i in range(3))
            middle = tuple((start[i] + end[i]) / 2 for i in range(3))
            if is_inside(end) and is_inside(middle):
                break
        else:
            continue
        r_end = radius * math.sqrt(radius_ratio)
        segments.append(Segment(np.array(start), np.array(end), radius, r_end, gen))
        child_radius = r_end * math.sqrt(radius_ratio)
        if gen + 1 >= max_generations or child_radius < min_radius_mm:
            continue
        # a random axis perpendicular to d, about which both children turn (opposite ways)
        axis = _unit(_cross(d, rng.standard_normal(3)))
        for sign, thickness in ((1.0, 1.0), (-1.0, 0.85)):
            angle = math.radians(rng.uniform(*branch_angle_deg)) * sign
            child = _unit(_rotate(d, axis, angle))
            child_length = length * length_ratio * rng.uniform(0.85, 1.15)
            stack.append((end, child, child_length, child_radius * thickness, gen + 1))
    return segments


def branch_points(segments: Sequence[Segment], min_radius_mm: float = 0.0) -> np.ndarray:
    """Ends of segments that have children (vessel bifurcations), as an (N, 3) mm array."""
    starts = {tuple(np.round(s.start, 6)) for s in segments if s.generation > 0}
    points = [s.end for s in segments if tuple(np.round(s.end, 6)) in starts and s.radius_end >= min_radius_mm]
    return np.asarray(points, float).reshape(-1, 3)


# ---------------------------------------------------------------------------------------------
# round lesions (nodules, liver lesions, emboli)
# ---------------------------------------------------------------------------------------------
def inside_distance_mm(mask: np.ndarray, spacing, step: int = 2) -> tuple[np.ndarray, int]:
    """Distance (mm) from each voxel of a coarse copy of ``mask`` to the nearest outside voxel.

    The mask is subsampled by ``step`` first (8x fewer voxels for step 2); the result is indexed
    on that coarse grid, whose voxel (a, b, c) is the fine voxel (step*a, step*b, step*c).
    """
    coarse = np.pad(mask[::step, ::step, ::step], 1)  # the volume border counts as outside
    dist = ndimage.distance_transform_edt(coarse, sampling=np.asarray(spacing) * step)
    return dist[1:-1, 1:-1, 1:-1], step


def place_balls(
    mask: np.ndarray,
    grid: Grid,
    radii_mm: Sequence[float],
    rng: np.random.Generator,
    min_radius_mm: float,
    avoid: Sequence[tuple[np.ndarray, float]] = (),
    gap_mm: float = 2.0,
) -> list[tuple[np.ndarray, float]]:
    """Centres (mm) for balls that lie inside ``mask`` and do not touch each other.

    A ball too large for the free space shrinks to the largest that fits; when not even
    ``min_radius_mm`` fits, a ValueError says so.

    Args:
        mask: boolean region (canonical frame).
        grid: the canonical grid.
        radii_mm: wanted radius of each ball.
        rng: random generator.
        min_radius_mm: smallest acceptable radius.
        avoid: (centre_mm, radius_mm) of balls already placed elsewhere.
        gap_mm: clearance kept between balls.
    """
    dist, step = inside_distance_mm(mask, grid.spacing)
    slack = step * max(grid.spacing)  # the coarse distance can be off by about one coarse voxel
    coarse_mm = [np.arange(n) * step * s for n, s in zip(dist.shape, grid.spacing)]
    placed = list(avoid)
    result = []
    for wanted in radii_mm:
        free = dist - slack
        for centre, radius in placed:  # distance to the balls already placed
            gaps = np.sqrt(
                (coarse_mm[0][:, None, None] - centre[0]) ** 2
                + (coarse_mm[1][None, :, None] - centre[1]) ** 2
                + (coarse_mm[2][None, None, :] - centre[2]) ** 2
            )
            free = np.minimum(free, gaps - radius - gap_mm)
        largest = float(free.max()) if free.size else 0.0
        radius = min(float(wanted), largest)
        if radius < min_radius_mm:
            raise ValueError(
                f"no room for a lesion of radius {min_radius_mm:.1f} mm: the volume {grid.shape} at "
                f"{grid.spacing} mm is too small for {len(radii_mm)} lesions; use a larger shape"
            )
        choices = np.flatnonzero(free >= radius)
        index = np.unravel_index(choices[rng.integers(len(choices))], free.shape)
        centre = np.asarray(index, float) * step * np.asarray(grid.spacing)
        placed.append((centre, radius))
        result.append((centre, radius))
    return result


def lobulated_ball(grid: Grid, centre_mm, radius_mm: float, rng: np.random.Generator, lobulation: float = 0.12):
    """Partial-volume occupancy of a lobulated ball, computed in its bounding box.

    The surface radius is modulated by a few random low-order waves over the sphere
    (``lobulation`` is their total relative amplitude). Returns (box, occupancy) or None.
    """
    found = grid.box(centre_mm, radius_mm * (1 + lobulation) + 2 * max(grid.spacing))
    if found is None:
        return None
    box, (x, y, z) = found
    r = np.sqrt(x * x + y * y + z * z) + np.float32(1e-6)
    surface = np.ones_like(r)
    waves = 4
    for _ in range(waves):
        n = np.asarray(_unit(rng.standard_normal(3)), np.float32)
        freq, phase = rng.uniform(1.5, 4.0), rng.uniform(0, 2 * np.pi)
        surface += np.float32(lobulation / waves * 2) * np.cos((x * n[0] + y * n[1] + z * n[2]) / r * freq + phase)
    ramp = np.float32(min(grid.spacing))
    occupancy = np.clip((np.float32(radius_mm) * surface - r) / ramp + 0.5, 0, 1)
    return box, occupancy
