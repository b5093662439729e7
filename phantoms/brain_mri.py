"""Synthetic brain MRI, BraTS-like: T1, T1ce, T2 and FLAIR with a glioma and its labels.

The data of the brain tumour segmentation task (BMS) of Models Genesis (Zhou et al., MICCAI
2019). Labels follow BraTS: 0 background, 1 necrotic / non-enhancing core, 2 peritumoral oedema,
4 enhancing tumour. Images are float32 in arbitrary scanner units (a smooth bias field and Rician
noise included), skull-stripped by default as BraTS distributes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from monai_genesis.phantoms.geometry import HasGeometry, Orientation, case_orientation
from monai_genesis.phantoms.shapes import (
    Grid,
    case_seed,
    check_count,
    check_seed,
    check_shape,
    check_spacing,
    ellipse_level,
    lobulated_ball,
    smooth_noise,
)
from monai_genesis.phantoms.writers import check_formats, prepare_output_dir, write_image, write_manifest

MODALITIES = ("t1", "t1ce", "t2", "flair")
BRATS_LABELS = (0, 1, 2, 4)
TISSUES = ("background", "scalp", "skull", "csf", "grey", "white", "necrosis", "enhancing", "oedema")
# relative signal of each tissue (rows follow TISSUES) in each modality (columns follow MODALITIES)
SIGNAL = np.array(
    [
        [0.00, 0.00, 0.00, 0.00],  # background
        [0.90, 0.95, 0.70, 0.65],  # scalp (fat)
        [0.06, 0.06, 0.05, 0.05],  # skull
        [0.22, 0.24, 1.00, 0.08],  # cerebrospinal fluid (suppressed on FLAIR)
        [0.55, 0.58, 0.62, 0.58],  # grey matter
        [0.80, 0.82, 0.42, 0.45],  # white matter
        [0.30, 0.32, 0.95, 0.55],  # necrotic core
        [0.52, 1.25, 0.72, 0.78],  # enhancing rim
        [0.50, 0.52, 0.86, 0.98],  # oedema
    ],
    np.float32,
)


@dataclass
class Tumour:
    """The glioma: centre (voxel and LPS world mm) and radii of its parts (mm)."""

    centre_voxel: tuple[float, float, float]
    centre_world: tuple[float, float, float]
    core_radius_mm: float
    necrosis_radius_mm: float
    oedema_radius_mm: float


@dataclass
class BrainMRI(HasGeometry):
    """A synthetic multi-contrast brain MRI and its tumour labels.

    Attributes:
        images: {"t1", "t1ce", "t2", "flair"} -> float32 (X, Y, Z), co-registered.
        label: uint8 BraTS labels 0, 1, 2, 4.
        brain_mask: uint8 brain mask (tumour included).
        affine: 4x4 voxel -> RAS world (mm); ``affine_lps`` gives the ITK/LPS version.
        tumour: the tumour's position and size.
        case_id: identifier used in file names.
    """

    images: dict
    label: np.ndarray
    brain_mask: np.ndarray
    affine: np.ndarray
    tumour: Tumour
    case_id: str = ""
    modalities: tuple = field(default=MODALITIES)


def make_brain_mri(
    shape=(128, 128, 96),
    spacing=(1.5, 1.5, 1.5),
    seed: int = 0,
    skull_stripped: bool = True,
    noise: float = 0.02,
    direction=None,
    origin=None,
    case_id: str = "brain",
) -> BrainMRI:
    """Generate a four-contrast brain MRI with a glioma, deterministic for a given seed.

    Args:
        shape: volume size (X, Y, Z), at least 32 along each axis.
        spacing: voxel size in mm (BraTS is resampled to 1 mm; the anatomy fills the field of view).
        seed: random seed.
        skull_stripped: zero everything outside the brain, as BraTS does.
        noise: Rician noise level relative to the white-matter signal (0..0.5).
        direction: 3x3 LPS direction matrix (default identity).
        origin: LPS world position of voxel (0, 0, 0) (default: centred at the isocentre).
        case_id: identifier stored with the result.
    """
    shape = check_shape(shape, min_size=32)
    spacing = check_spacing(spacing)
    rng = np.random.default_rng(check_seed(seed))
    if not 0.0 <= float(noise) <= 0.5:
        raise ValueError(f"noise must be in [0, 0.5] (relative to white matter), got {noise!r}")
    orientation = Orientation.create(shape, spacing, direction, origin, centre_world=(0.0, 0.0, 0.0))
    grid = Grid(shape, spacing)
    u, v, w = grid.normalized()

    # head: scalp, skull, CSF rim, brain (normalized radius of one ellipsoid, made irregular)
    centre, radii = (0.0, 0.02, 0.45), (0.8, 0.92, 0.55)
    radius = np.sqrt(ellipse_level((u, v, w), centre, radii)) + np.float32(0.02) * smooth_noise(shape, rng, 10.0)
    tissue = np.zeros(shape, np.uint8)
    tissue[radius < 1.0] = 1
    tissue[radius < 0.94] = 2
    tissue[radius < 0.88] = 3
    brain = radius < 0.85
    gyri = smooth_noise(shape, rng, 3.0)
    tissue[brain] = 4
    tissue[brain & (radius < 0.68 + 0.1 * gyri)] = 5  # white matter under a folded cortex
    sulci = brain & (radius > 0.74) & (gyri < -0.9)
    fissure = brain & (np.abs(u) < 0.02) & (radius > 0.3) & (v > -0.9)
    ventricles = np.minimum(
        ellipse_level((np.abs(u), v, w), (0.09, -0.02, 0.55), (0.06, 0.32, 0.12)),
        ellipse_level((u, v, w), (0.0, 0.02, 0.45), (0.015, 0.12, 0.08)),
    ) < 1
    deep_grey = ellipse_level((np.abs(u), v, w), (0.2, 0.04, 0.46), (0.1, 0.14, 0.09)) < 1
    tissue[brain & deep_grey] = 4
    tissue[sulci | fissure | ventricles] = 3

    # tumour in the white matter of one hemisphere: necrosis, enhancing rim, oedema
    h = grid.half_width_mm
    core = rng.uniform(0.12, 0.2) * h
    necrosis = core * rng.uniform(0.35, 0.7)
    oedema = core * rng.uniform(1.5, 2.2)
    candidates = np.argwhere((tissue[::4, ::4, ::4] == 5) & (np.abs(u[::4, :, :]) > 0.25))
    if len(candidates) == 0:
        raise ValueError(f"shape {shape} is too small to hold a tumour in the white matter")
    spot = candidates[rng.integers(len(candidates))] * 4 * np.asarray(spacing, float)
    label = np.zeros(shape, np.uint8)
    oedema_box, oedema_occ = lobulated_ball(grid, spot, oedema, rng, 0.25)
    region = oedema_occ >= 0.5
    region &= brain[oedema_box] & ~(tissue[oedema_box] == 3)  # oedema spreads in brain tissue
    label[oedema_box][region] = 2
    core_box, core_occ = lobulated_ball(grid, spot, core, rng, 0.15)
    label[core_box][core_occ >= 0.5] = 4
    offset = rng.standard_normal(3) * (core - necrosis) * 0.2
    necrosis_box, necrosis_occ = lobulated_ball(grid, spot + offset, necrosis, rng, 0.15)
    label[necrosis_box][(necrosis_occ >= 0.5) & (label[necrosis_box] == 4)] = 1
    for value, name in ((2, "oedema"), (4, "enhancing"), (1, "necrosis")):
        tissue[label == value] = TISSUES.index(name)
    brain_mask = brain | (label > 0)

    # signal: tissue table, mild texture, partial-volume blur, bias field, Rician noise
    texture = 1 + np.float32(0.03) * smooth_noise(shape, rng, 2.0)
    images = {}
    for m, name in enumerate(MODALITIES):
        gain = np.float32(rng.uniform(800, 1200))
        clean = SIGNAL[tissue, m] * texture
        clean = ndimage.gaussian_filter(clean, 0.6, truncate=2.5)
        bias = 1 + np.float32(0.08) * smooth_noise(shape, rng, max(shape) / 3)
        sigma = np.float32(noise * SIGNAL[5, m] + 1e-3)
        real = clean * bias + sigma * rng.standard_normal(shape, dtype=np.float32)
        imaginary = sigma * rng.standard_normal(shape, dtype=np.float32)
        signal = np.sqrt(real * real + imaginary * imaginary) * gain
        if skull_stripped:
            signal *= brain_mask
        images[name] = signal.astype(np.float32)

    arrays = orientation.arrays(*(images[m] for m in MODALITIES), label, brain_mask.astype(np.uint8))
    tumour = Tumour(
        tuple(map(float, orientation.voxels(spot)[0])),
        tuple(map(float, orientation.world(spot)[0])),
        float(core),
        float(necrosis),
        float(oedema),
    )
    return BrainMRI(
        images=dict(zip(MODALITIES, arrays[:4])),
        label=arrays[4],
        brain_mask=arrays[5],
        affine=orientation.affine,
        tumour=tumour,
        case_id=str(case_id),
    )


def write_brain_mri_dataset(
    output_dir,
    num_cases: int = 3,
    shape=(128, 128, 96),
    spacing=(1.5, 1.5, 1.5),
    seed: int = 0,
    formats=("nii.gz",),
    **kwargs,
) -> list[Path]:
    """Write a BraTS-like dataset of synthetic brain MRIs; returns the written paths.

    Layout: ``images/brain_NNN_<modality>.*`` for t1, t1ce, t2, flair (float32),
    ``labels/brain_NNN.*`` (BraTS labels 0, 1, 2, 4) and ``dataset.json``.

    Args:
        output_dir: folder to write into (created if missing).
        num_cases: number of subjects.
        shape: volume size (X, Y, Z).
        spacing: voxel size (mm).
        seed: dataset seed.
        formats: "nii.gz", "mhd", "both" or a sequence of those.
        kwargs: passed to ``make_brain_mri`` (skull_stripped, noise).
    """
    formats = check_formats(formats)
    num_cases = check_count(num_cases, "num_cases", 1, 100000)
    shape, spacing, seed = check_shape(shape, min_size=32), check_spacing(spacing), check_seed(seed)
    out = prepare_output_dir(output_dir)
    written, cases = [], []
    for index in range(num_cases):
        direction, origin = case_orientation(index, shape, spacing, np.random.default_rng([seed, index, 1]))
        origin = origin - np.array([0.0, 0.0, -400.0])  # the head lies above the chest
        mri = make_brain_mri(shape, spacing, seed=case_seed(seed, index), direction=direction, origin=origin,
                             case_id=f"brain_{index:03d}", **kwargs)
        entry = {"images": {m: {} for m in MODALITIES}, "labels": {}}
        for fmt in formats:
            for m in MODALITIES:
                relative = f"images/{mri.case_id}_{m}.{fmt}"
                written.append(write_image(out / relative, mri.images[m], mri.affine))
                entry["images"][m][fmt] = relative
            relative = f"labels/{mri.case_id}.{fmt}"
            written.append(write_image(out / relative, mri.label, mri.affine))
            entry["labels"][fmt] = relative
        cases.append({"id": mri.case_id, **entry, "tumour": asdict(mri.tumour), "affine": mri.affine})
    settings = {"num_cases": num_cases, "shape": shape, "spacing": spacing, "seed": seed, "formats": formats, **kwargs}
    written.append(write_manifest(out, "brain-mri", settings, cases))
    return written

