"""The synthetic brain MRI (``phantoms/brain_mri.py``) written in the real datasets' layouts.

* :func:`write_brats_folders`: BraTS 2018+ patient folders ``<id>/<id>_{flair,t1,t1ce,t2,seg}.nii.gz``
  (labels 1, 2, 4);
* :func:`write_decathlon_task01`: the Decathlon's ``Task01_BrainTumour`` (``dataset.json``, 4D
  ``imagesTr/`` with FLAIR, T1w, T1gd, T2w, ``labelsTr/`` with its own values 1 oedema,
  2 non-enhancing tumour, 3 enhancing tumour, and unlabelled ``imagesTs/``).

Cases cycle through an identity, an oblique and a feet-first geometry, as the other phantom datasets.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from monai_genesis.phantoms.brain_mri import make_brain_mri
from monai_genesis.phantoms.geometry import case_orientation
from monai_genesis.phantoms.shapes import case_seed, check_count, check_seed, check_shape, check_spacing
from monai_genesis.phantoms.writers import prepare_output_dir, write_nifti

__all__ = ["DECATHLON_TASK01_LABELS", "write_brats_folders", "write_decathlon_task01"]

# the phantom's BraTS suffixes and the Decathlon's channel order (FLAIR, T1w, T1gd, T2w)
_BRATS_FILES = ("flair", "t1", "t1ce", "t2")
DECATHLON_TASK01_LABELS = {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}
_BRATS_TO_DECATHLON = np.array([0, 2, 1, 0, 3], np.uint8)  # index: BraTS value (0, 1, 2, 4)


def _cases(num_cases, shape, spacing, seed, **kwargs):
    num_cases = check_count(num_cases, "num_cases", 1, 100000)
    shape, spacing, seed = check_shape(shape, min_size=32), check_spacing(spacing), check_seed(seed)
    for index in range(num_cases):
        direction, origin = case_orientation(index, shape, spacing, np.random.default_rng([seed, index, 2]))
        yield index, make_brain_mri(shape, spacing, seed=case_seed(seed, index), direction=direction,
                                    origin=origin, case_id=f"case_{index:03d}", **kwargs)


def write_brats_folders(output_dir, num_cases: int = 3, shape=(64, 64, 48), spacing=(3.0, 3.0, 3.0), seed: int = 0,
                        prefix: str = "BraTS2021_", unlabelled: int = 0, **kwargs) -> list[Path]:
    """Write BraTS-style patient folders; returns the case folders.

    Args:
        output_dir: folder to write into.
        num_cases: labelled cases (``<prefix>NNNNN/`` with ``_seg``).
        shape, spacing, seed: as :func:`make_brain_mri`.
        prefix: case-id prefix ("BraTS2021_", "Brats18_...").
        unlabelled: further cases without ``_seg`` (like the BraTS validation set).
        kwargs: passed to :func:`make_brain_mri`.
    """
    out = prepare_output_dir(output_dir)
    folders = []
    for index, mri in _cases(num_cases + unlabelled, shape, spacing, seed, **kwargs):
        case = f"{prefix}{index:05d}"
        folder = out / case
        for suffix in _BRATS_FILES:
            write_nifti(folder / f"{case}_{suffix}.nii.gz", mri.images[suffix], mri.affine)
        if index < num_cases:
            write_nifti(folder / f"{case}_seg.nii.gz", mri.label, mri.affine)
        folders.append(folder)
    return folders


def _write_4d(path: Path, channels, affine) -> None:
    image = nib.Nifti1Image(np.stack(channels, axis=-1).astype(np.float32), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))


def write_decathlon_task01(output_dir, num_cases: int = 3, shape=(64, 64, 48), spacing=(3.0, 3.0, 3.0),
                           seed: int = 0, num_test: int = 1, **kwargs) -> Path:
    """Write a ``Task01_BrainTumour``-style folder; returns its ``dataset.json``.

    Args:
        output_dir: the task folder.
        num_cases: labelled training cases (``imagesTr``, ``labelsTr``).
        shape, spacing, seed: as :func:`make_brain_mri`.
        num_test: unlabelled cases in ``imagesTs``.
        kwargs: passed to :func:`make_brain_mri`.
    """
    out = prepare_output_dir(output_dir)
    training, test = [], []
    for index, mri in _cases(num_cases + num_test, shape, spacing, seed, **kwargs):
        name = f"BRATS_{index + 1:03d}.nii.gz"
        channels = [mri.images[s] for s in _BRATS_FILES]
        if index < num_cases:
            _write_4d(out / "imagesTr" / name, channels, mri.affine)
            write_nifti(out / "labelsTr" / name, _BRATS_TO_DECATHLON[mri.label], mri.affine)
            training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        else:
            _write_4d(out / "imagesTs" / name, channels, mri.affine)
            test.append(f"./imagesTs/{name}")
    meta = {"name": "BRATS", "tensorImageSize": "4D", "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
            "labels": DECATHLON_TASK01_LABELS, "numTraining": len(training), "numTest": len(test),
            "training": training, "test": test}
    path = out / "dataset.json"
    path.write_text(json.dumps(meta, indent=4))
    return path
