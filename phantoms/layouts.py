"""Synthetic datasets in the real segmentation layouts: LiTS, the Decathlon's Task03_Liver, image/label folders.

The phantoms of ``abdomen_ct`` and ``chest_ct`` written under the file names the real datasets use
(docs/method.md §5.3), so that the datalist writers of ``data.segmentation`` and the bundles run on
them exactly as on the real data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monai_genesis.phantoms.abdomen_ct import make_abdomen_ct
from monai_genesis.phantoms.chest_ct import make_chest_ct
from monai_genesis.phantoms.geometry import case_orientation
from monai_genesis.phantoms.shapes import case_seed
from monai_genesis.phantoms.writers import prepare_output_dir, write_nifti

__all__ = ["write_lits_layout", "write_decathlon_liver_layout", "write_nodule_layout"]


def _abdomen(number: int, shape, spacing, seed: int, **kwargs):
    direction, origin = case_orientation(number, shape, spacing, np.random.default_rng([seed, number, 1]))
    return make_abdomen_ct(shape, spacing, seed=case_seed(seed, number), direction=direction,
                           origin=origin - np.array([0.0, 0.0, 260.0]), case_id=f"liver_{number}", **kwargs)


def write_lits_layout(root, case_numbers: Sequence[int] = (0, 1, 2), shape=(48, 48, 32), spacing=(3.0, 3.0, 4.0),
                      seed: int = 0, compressed: bool = False, **kwargs) -> list[Path]:
    """
    LiTS 2017 training layout: ``root/volume-N.nii`` (int16 HU) and ``root/segmentation-N.nii``
    (0 background, 1 liver, 2 lesion), one pair per case number. Case N's geometry cycles through
    identity, oblique and feet-first directions as the phantom datasets do.

    Args:
        root: output folder.
        case_numbers: the N of each case.
        shape, spacing, seed, kwargs: as ``make_abdomen_ct``.
        compressed: write ``.nii.gz`` instead of ``.nii``.
    """
    out = prepare_output_dir(root)
    ext = "nii.gz" if compressed else "nii"
    written = []
    for number in case_numbers:
        ct = _abdomen(int(number), shape, spacing, seed, **kwargs)
        written.append(write_nifti(out / f"volume-{number}.{ext}", ct.image, ct.affine))
        written.append(write_nifti(out / f"segmentation-{number}.{ext}", ct.liver_mask, ct.affine))
    return written


def write_decathlon_liver_layout(root, case_numbers: Sequence[int] = (0, 1, 2), shape=(48, 48, 32), spacing=(3.0, 3.0, 4.0),
                                 seed: int = 0, **kwargs) -> Path:
    """
    The Decathlon's Task03_Liver layout: ``imagesTr/liver_N.nii.gz``, ``labelsTr/liver_N.nii.gz``
    and a ``dataset.json`` listing them ("./imagesTr/..."), as the Decathlon ships it. Returns the dataset.json.
    """
    out = prepare_output_dir(root)
    training = []
    for number in case_numbers:
        ct = _abdomen(int(number), shape, spacing, seed, **kwargs)
        write_nifti(out / "imagesTr" / f"liver_{number}.nii.gz", ct.image, ct.affine)
        write_nifti(out / "labelsTr" / f"liver_{number}.nii.gz", ct.liver_mask, ct.affine)
        training.append({"image": f"./imagesTr/liver_{number}.nii.gz", "label": f"./labelsTr/liver_{number}.nii.gz"})
    manifest = {
        "name": "Liver", "description": "synthetic phantom in the Task03_Liver layout", "tensorImageSize": "3D",
        "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver", "2": "cancer"},
        "numTraining": len(training), "numTest": 0, "training": training, "test": [],
    }
    path = out / "dataset.json"
    path.write_text(json.dumps(manifest, indent=2))
    return path


def write_nodule_layout(root, num_cases: int = 3, shape=(64, 64, 48), spacing=(1.4, 1.4, 2.0), seed: int = 0,
                        num_nodules: int = 3, nodule_diameter_mm=(8.0, 20.0), **kwargs) -> list[Path]:
    """
    Chest CTs and binary nodule masks as ``genesis lidc-mask`` leaves them: ``images/<case>.nii.gz``
    (int16 HU) and ``labels/<case>.nii.gz`` (uint8, 1 on nodule voxels), cases ``chest_NNN``.
    Geometry cycles through identity, oblique and feet-first directions.
    """
    out = prepare_output_dir(root)
    written = []
    for index in range(int(num_cases)):
        direction, origin = case_orientation(index, shape, spacing, np.random.default_rng([seed, index, 1]))
        ct = make_chest_ct(shape, spacing, seed=case_seed(seed, index), num_nodules=num_nodules, num_false_positives=0,
                           nodule_diameter_mm=nodule_diameter_mm, direction=direction, origin=origin, **kwargs)
        name = f"chest_{index:03d}.nii.gz"
        written.append(write_nifti(out / "images" / name, ct.image, ct.affine))
        written.append(write_nifti(out / "labels" / name, (ct.nodule_mask > 0).astype(np.uint8), ct.affine))
    return written
