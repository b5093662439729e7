"""Write a synthetic volume as a DICOM CT series (one file per axial slice), as scanners and LIDC-IDRI ship CT.

pydicom writes the files: it is the maintained DICOM library of the Python ecosystem (MONAI's
``PydicomReader`` is built on it), and a hand-written DICOM encoder would be ours to maintain.
The geometry tags follow DICOM's patient frame (LPS): ``ImagePositionPatient`` of each slice,
``ImageOrientationPatient`` (row and column direction cosines) and ``PixelSpacing``, so that
ITK (MONAI ``LoadImage`` on the folder) reads back the array and the affine that were written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monai_genesis.phantoms.geometry import geometry_from_affine, ras_to_lps

__all__ = ["write_dicom_series"]

_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _uid(prefix: str, *parts: int) -> str:
    """A deterministic UID under pydicom's root (the same phantom gives the same UIDs)."""
    from pydicom.uid import PYDICOM_ROOT_UID

    return PYDICOM_ROOT_UID.rstrip(".") + prefix + "." + ".".join(str(int(p)) for p in parts)


def write_dicom_series(folder, array, affine, series_number: int = 1, patient_id: str = "PHANTOM") -> list[Path]:
    """
    Write a 3D (X, Y, Z) CT volume in Hounsfield units as one DICOM file per slice k.

    Args:
        folder: output folder (created); files are ``slice_0000.dcm`` ... in slice order.
        array: (X, Y, Z) array of HU (stored as int16, rounded).
        affine: voxel -> world RAS 4x4 matrix (the phantoms' ``affine``); its third axis is the
            slice axis.
        series_number: DICOM SeriesNumber, also part of the series UID.
        patient_id: DICOM PatientID.

    Returns:
        the written file paths.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"{folder}: a DICOM series needs a 3D (X, Y, Z) array, got shape {array.shape}")
    spacing, origin, direction = geometry_from_affine(ras_to_lps(np.asarray(affine, float)))
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    study_uid = _uid(".1", series_number)
    series_uid = _uid(".2", series_number)
    frame_uid = _uid(".3", series_number)
    hu = np.clip(np.rint(array), -32768, 32767).astype(np.int16)
    paths = []
    for k in range(array.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = _CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = _uid(".4", series_number, k)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = _CT_IMAGE_STORAGE, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.Modality, ds.PatientID, ds.PatientName = "CT", patient_id, patient_id
        ds.SeriesNumber, ds.InstanceNumber = series_number, k + 1
        # Pixel (row r, column c) of slice k is voxel (i=c, j=r, k): rows run along the affine's second axis.
        ds.ImageOrientationPatient = [float(v) for v in (*direction[:, 0], *direction[:, 1])]
        ds.ImagePositionPatient = [float(v) for v in origin + k * spacing[2] * direction[:, 2]]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.SliceThickness = float(spacing[2])
        ds.Rows, ds.Columns = int(array.shape[1]), int(array.shape[0])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = np.ascontiguousarray(hu[:, :, k].T).tobytes()
        path = out / f"slice_{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
