"""Writers of the synthetic datasets: NIfTI (nibabel), MetaImage .mhd/.raw (ITK) and CSV files.

Every writer takes the RAS ``affine`` of the phantom results (the NIfTI/MONAI convention). NIfTI
stores it as is (qform and sform, scanner code); MetaImage stores ITK's LPS geometry
(spacing, origin, direction), so both files describe the same voxels at the same world positions
and MONAI's ``LoadImage`` returns the same affine for either.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from monai_genesis.phantoms.geometry import geometry_from_affine, ras_to_lps

IMAGE_FORMATS = ("nii.gz", "mhd")
_ITK_DTYPES = (np.uint8, np.int16, np.float32)


def check_formats(formats) -> tuple[str, ...]:
    """Normalise a format choice: "nii.gz", "mhd", "both", or a sequence of the first two."""
    given = formats
    if isinstance(formats, str):
        formats = IMAGE_FORMATS if formats == "both" else tuple(f.strip() for f in formats.split(","))
    try:
        result = tuple(dict.fromkeys(str(f).lstrip(".") for f in formats))
    except TypeError:
        result = ()
    if not result or any(f not in IMAGE_FORMATS for f in result):
        raise ValueError(f"format must be 'nii.gz', 'mhd' or 'both', got {given!r}")
    return result


def prepare_output_dir(output_dir) -> Path:
    """Create ``output_dir`` (and parents); fail clearly when it is an existing file."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"output_dir {str(path)!r} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_volume(array, affine, path) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"{path}: expected a 3D (X, Y, Z) array, got shape {array.shape}")
    affine = np.asarray(affine, float)
    if affine.shape != (4, 4):
        raise ValueError(f"{path}: affine must be 4x4, got {affine.shape}")
    return array, affine


def write_nifti(path, array, affine) -> Path:
    """Write a 3D (X, Y, Z) array as NIfTI-1 with a RAS ``affine`` (mm); returns the path.

    Args:
        path: file name ending in .nii or .nii.gz.
        array: voxel values, kept in their dtype (int16 HU, uint8 labels, float32 MRI).
        affine: 4x4 voxel -> RAS world matrix, stored as both qform and sform (scanner space).
    """
    import nibabel as nib

    path = Path(path)
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        raise ValueError(f"{path}: a NIfTI file name must end in .nii or .nii.gz")
    array, affine = _check_volume(array, affine, path)
    image = nib.Nifti1Image(array, affine)
    image.header.set_data_dtype(array.dtype)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


def write_metaimage(path, array, affine) -> Path:
    """Write a 3D (X, Y, Z) array as MetaImage (.mhd header + .raw data) with ITK; returns the .mhd.

    Args:
        path: file name ending in .mhd (the .raw is written next to it, uncompressed, as LUNA16).
        array: voxel values; uint8, int16 or float32.
        affine: 4x4 voxel -> RAS world matrix; converted to ITK's LPS spacing, origin, direction.
    """
    import itk

    path = Path(path)
    if path.suffix != ".mhd":
        raise ValueError(f"{path}: a MetaImage file name must end in .mhd")
    array, affine = _check_volume(array, affine, path)
    if array.dtype.type not in _ITK_DTYPES:
        raise ValueError(f"{path}: MetaImage writing supports uint8, int16 and float32, got {array.dtype}")
    spacing, origin, direction = geometry_from_affine(ras_to_lps(affine))
    # ITK indexes numpy arrays (Z, Y, X): reverse the axes so ITK's (i, j, k) is ours
    image = itk.image_from_array(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction)))
    path.parent.mkdir(parents=True, exist_ok=True)
    itk.imwrite(image, str(path), compression=False)
    return path


def write_image(path, array, affine) -> Path:
    """Write NIfTI or MetaImage, chosen by the file name (.nii, .nii.gz or .mhd)."""
    name = Path(path).name
    if name.endswith(".mhd"):
        return write_metaimage(path, array, affine)
    if name.endswith(".nii") or name.endswith(".nii.gz"):
        return write_nifti(path, array, affine)
    raise ValueError(f"{path}: unknown image format; use .nii.gz, .nii or .mhd")


def write_csv(path, rows: Iterable[dict], columns: Sequence[str]) -> Path:
    """Write dict rows as CSV with the given column order; floats keep 6 decimals."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            missing = [c for c in columns if c not in row]
            if missing:
                raise ValueError(f"{path}: row {row!r} lacks columns {missing}")
            writer.writerow([f"{row[c]:.6f}" if isinstance(row[c], float) else row[c] for c in columns])
    return path


def write_case_volumes(output_dir: Path, case_id: str, volumes: dict, affine, formats) -> tuple[dict, list[Path]]:
    """Write one case's volumes, ``{folder: array}``, as ``output_dir/folder/case_id.<format>``.

    Returns ``{folder: {format: relative path}}`` for the manifest and the written paths.
    """
    entry, written = {}, []
    for folder, array in volumes.items():
        entry[folder] = {}
        for fmt in formats:
            relative = f"{folder}/{case_id}.{fmt}"
            written.append(write_image(output_dir / relative, array, affine))
            entry[folder][fmt] = relative
    return entry, written


def write_manifest(output_dir: Path, kind: str, settings: dict, cases: list) -> Path:
    """Write ``dataset.json``: the kind, the generator settings and one entry per case."""
    path = Path(output_dir) / "dataset.json"
    with open(path, "w") as handle:
        json.dump({"kind": kind, "settings": settings, "cases": cases}, handle, indent=2, default=_jsonable)
    return path


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_phantom_dataset(kind: str, output_dir, **kwargs) -> list[Path]:
    """Write a synthetic dataset of one ``kind``: chest-ct, ctpa, abdomen-ct or brain-mri.

    Keyword arguments go to the kind's writer (``num_cases``, ``shape``, ``seed``, ``formats``...).
    """
    # imported here: the anatomy modules import this module for its writers
    from monai_genesis.phantoms.abdomen_ct import write_abdomen_ct_dataset
    from monai_genesis.phantoms.brain_mri import write_brain_mri_dataset
    from monai_genesis.phantoms.chest_ct import write_chest_ct_dataset
    from monai_genesis.phantoms.ctpa import write_ctpa_dataset

    writers = {
        "chest-ct": write_chest_ct_dataset,
        "ctpa": write_ctpa_dataset,
        "abdomen-ct": write_abdomen_ct_dataset,
        "brain-mri": write_brain_mri_dataset,
    }
    if kind not in writers:
        raise ValueError(f"unknown phantom kind {kind!r}; choose one of {', '.join(writers)}")
    return writers[kind](output_dir, **kwargs)


PHANTOM_KINDS = ("chest-ct", "ctpa", "abdomen-ct", "brain-mri")
