"""Reading CT/MRI volumes (NIfTI, MetaImage, DICOM series) and converting world <-> voxel coordinates.

Conventions:
    * Arrays are indexed (i, j, k) = (x, y, z) in the file's own index order: for a LUNA16 scan
      that is (columns, rows, axial slices), the same order as the reference implementation's
      ``sitk.GetArrayFromImage(img).transpose(2, 1, 0)``.
    * ``MetaTensor.affine`` maps (i, j, k, 1) to **RAS** world millimetres (MONAI's convention; the
      ITK reader converts ITK's LPS geometry with ``affine_lps_to_ras=True``).
    * ITK, SimpleITK, DICOM and LUNA16's ``candidates.csv`` (coordX, coordY, coordZ) use **LPS**:
      x_RAS = -x_LPS, y_RAS = -y_LPS, z_RAS = z_LPS. Pass ``space="LPS"`` to the conversion
      functions below for such coordinates, e.g. a LUNA16 candidate's voxel index is
      ``world_to_voxel((coordX, coordY, coordZ), image, space="LPS")``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import warnings

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import ITKReader, MetaTensor, NibabelReader
from monai.transforms import LoadImage, MapTransform, Orientation

__all__ = [
    "NIFTI_SUFFIXES",
    "ITK_SUFFIXES",
    "VOLUME_SUFFIXES",
    "volume_suffix",
    "CANONICAL_AXCODES",
    "load_volume",
    "LoadVolumed",
    "check_window",
    "InputWarning",
    "RAS_LABELS",
    "reorient",
    "voxel_to_world",
    "world_to_voxel",
]

NIFTI_SUFFIXES = (".nii.gz", ".nii")
ITK_SUFFIXES = (".mhd", ".mha", ".nrrd")
VOLUME_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES

# The one orientation volumes are brought to before cube extraction, galleries and inference:
# (i, j, k) run towards Right, Anterior, Superior, so the axial axis is the last one whatever the
# file's storage order (LAS, LPS, LSA, oblique, ...).
CANONICAL_AXCODES = "RAS"
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
# check_window warns when at least this share of the voxels lies outside the intensity window.
_OUTSIDE_WINDOW_WARNING = 0.95

# x and y change sign between RAS and LPS, z does not.
_LPS_RAS_FLIP = np.array([-1.0, -1.0, 1.0])


def volume_suffix(path: str | os.PathLike) -> str | None:
    """Return the supported volume suffix of ``path`` (".nii.gz", ".mhd", ...), or None."""
    name = os.fspath(path).lower()
    for suffix in VOLUME_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


def _reader_for(path: str):
    if os.path.isdir(path):
        # A folder is read as one DICOM series (ITK picks the first series it finds).
        return ITKReader(affine_lps_to_ras=True)
    suffix = volume_suffix(path)
    if suffix in NIFTI_SUFFIXES:
        return NibabelReader()
    if suffix in ITK_SUFFIXES:
        return ITKReader(affine_lps_to_ras=True)
    raise ValueError(
        f"{path}: unsupported file type; expected one of {', '.join(VOLUME_SUFFIXES)} or a DICOM series folder."
    )


def load_volume(
    path: str | os.PathLike,
    dtype: np.dtype | type | None = np.float32,
    *,
    channel: int | None = None,
    orientation: str | None = None,
    min_shape: Sequence[int] | None = None,
) -> MetaTensor:
    """Load one 3D volume through MONAI ``LoadImage`` (NibabelReader for NIfTI, ITKReader otherwise).

    The one reader of every command and bundle, with one set of checks: the file is readable, it
    is 3D (a 4D file only with ``channel``), its values are finite, and it is at least ``min_shape``.

    Args:
        path: a ``.nii``/``.nii.gz``, ``.mhd``/``.mha``/``.nrrd`` file, or a folder holding one DICOM series.
        dtype: output data type; None keeps the stored type (e.g. int16 for LUNA16, half the memory).
        channel: for a 4D (X, Y, Z, C) file, the channel to keep; a 4D file without it is refused.
        orientation: axis codes to reorient to with MONAI ``Orientation``, e.g. ``CANONICAL_AXCODES``
            ("RAS": the axial axis last); None keeps the file's storage order.
        min_shape: smallest accepted (X, Y, Z) after reorientation; None accepts any non-empty volume.

    Returns:
        A ``MetaTensor`` of shape (X, Y, Z) (no channel dimension) whose ``affine`` maps voxel
        indices to RAS millimetres; ``meta["filename_or_obj"]`` is the path and
        ``meta["original_affine"]`` the file's own affine (before reorientation).

    Raises:
        FileNotFoundError: ``path`` does not exist (or a .mhd file's .raw data is missing).
        ValueError: unsupported type, unreadable file, not a 3D scalar volume, non-finite values,
            or smaller than ``min_shape``. Every message starts with the path.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder.")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ValueError(f"{path}: the file is empty (0 bytes).")
    reader = _reader_for(path)
    try:
        image = LoadImage(reader=reader, image_only=True, dtype=dtype)(path)
    except Exception as err:  # LoadImage wraps the reader's error in a long multi-traceback message
        if volume_suffix(path) == ".mhd":
            _check_mhd_data_file(path)
        raise ValueError(f"{path}: could not read the volume ({_reader_error(reader, path, err)}).") from None
    # Drop trailing singleton axes ((X, Y, Z, 1) NIfTI files); anything else must be 3D already.
    while image.ndim > 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 4 and image.shape[-1] > 1:
        channels = image.shape[-1]
        if channel is None:
            raise ValueError(
                f"{path}: a 4D volume of shape {tuple(image.shape)} ({channels} channels or time points); "
                f"choose one with channel=0..{channels - 1} (--channel on the command line)."
            )
        if not 0 <= int(channel) < channels:
            raise ValueError(f"{path}: channel {channel} does not exist; the volume has channels 0..{channels - 1}.")
        image = image[..., int(channel)]
    if image.ndim != 3:
        kind = f"a {image.ndim}D image" if image.ndim < 3 else "an array"
        raise ValueError(f"{path}: expected a 3D scalar volume, got {kind} of shape {tuple(image.shape)}.")
    if min(image.shape) < 1:
        raise ValueError(f"{path}: the volume is empty (shape {tuple(image.shape)}).")
    if image.is_floating_point() and not bool(torch.isfinite(image.as_tensor()).all()):
        bad = int((~torch.isfinite(image.as_tensor())).sum())
        raise ValueError(f"{path}: the volume contains NaN or infinite values ({bad} voxels).")
    if orientation is not None:
        image = reorient(image, orientation)
    if min_shape is not None and any(n < int(m) for n, m in zip(image.shape, min_shape)):
        raise ValueError(
            f"{path}: the volume is {tuple(image.shape)} voxels, smaller than the {tuple(int(m) for m in min_shape)} needed."
        )
    return image


def reorient(image: MetaTensor, axcodes: str = CANONICAL_AXCODES) -> MetaTensor:
    """A 3D (X, Y, Z) ``MetaTensor`` reoriented to ``axcodes`` with MONAI ``Orientation`` (nearest axes
    for oblique volumes); the affine follows, so world coordinates are unchanged."""
    meta = dict(image.meta)
    # labels given: monai 1.6 warns when they are left to their (changed) default; these are 1.5.2's.
    oriented = Orientation(axcodes=axcodes, labels=RAS_LABELS)(image[None])[0]
    oriented.meta.update({k: v for k, v in meta.items() if k not in ("affine", "spatial_shape")})
    return oriented


def check_window(image, window: Sequence[float], name: str = "the volume") -> str | None:
    """A warning (also issued with ``warnings.warn``) when ``window`` suits ``image`` poorly, else None.

    Implausible: at least 95 % of the voxels lie outside (low, high), e.g. air around a head under a
    lung window, or the voxels span under 5 % of the window, e.g. an MRI (0..1) under the CT window
    (-1000, 1000) HU, which renders a flat grey image.
    """
    low, high = (float(v) for v in window)
    values = image.as_tensor() if isinstance(image, MetaTensor) else torch.as_tensor(np.asarray(image))
    values = values.reshape(-1)
    if values.numel() > 1_000_000:  # a strided sample is enough for a share
        values = values[:: values.numel() // 1_000_000]
    values = values.float()
    outside = float(((values < low) | (values > high)).float().mean())
    message = None
    if outside >= _OUTSIDE_WINDOW_WARNING:
        message = (
            f"{name}: {outside:.0%} of the voxels lie outside the window ({low:g}, {high:g}); "
            "is this the right image and window?"
        )
    else:
        span = float(torch.quantile(values[:: max(1, values.numel() // 100_000)], 0.99)
                      - torch.quantile(values[:: max(1, values.numel() // 100_000)], 0.01))
        if span < 0.05 * (high - low):
            message = (
                f"{name}: the values span {span:g}, under 5% of the window ({low:g}, {high:g}); an MRI or a "
                "normalised image under a CT window looks flat grey (pass another window, or none for min-max scaling)."
            )
    if message:
        warnings.warn(message, InputWarning, stacklevel=2)
    return message


class InputWarning(UserWarning):
    """Input that is readable but looks wrong (the `genesis` command prints it as ``genesis: warning: ...``)."""


class LoadVolumed(MapTransform):
    """Dictionary form of :func:`load_volume` for bundle configs: each key's path becomes its (X, Y, Z) volume.

    Add ``EnsureChannelFirstd(channel_dim="no_channel")`` and ``Orientationd`` after it, so that ``Invertd``
    can write predictions back in the input's geometry.

    Args:
        keys: keys holding paths.
        dtype: output dtype; default float32.
        channel: the channel of 4D files (see :func:`load_volume`).
        window: (low, high) intensity window the volumes will be scaled with; :func:`check_window`
            warns about a volume it suits poorly (e.g. an MRI under a CT window). None: no check.
        allow_missing_keys: skip absent keys.
    """

    def __init__(self, keys: KeysCollection, dtype=np.float32, channel: int | None = None,
                 window: Sequence[float] | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.dtype, self.channel = dtype, channel
        self.window = None if window is None else tuple(float(v) for v in window)

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            path = d[key]
            d[key] = load_volume(path, dtype=self.dtype, channel=self.channel)
            if self.window is not None:
                check_window(d[key], self.window, name=os.fspath(path))
        return d


def _reader_error(reader, path: str, err: Exception) -> str:
    """A one-line cause: the chosen reader's own error, read again without LoadImage's fallbacks."""
    try:
        reader.read(path)
    except Exception as direct:  # noqa: BLE001 (any reader failure is reported, not handled)
        err = direct
    # Drop ITK's "source.cxx:490:" location lines; keep its "ITK ERROR: ..." and "Reason: ..." lines.
    lines = [line.strip() for line in str(err).splitlines() if line.strip() and not line.strip().endswith(":")]
    text = " ".join(lines)[:300] or "unknown error"
    return f"{type(err).__name__}: {text}"


def _check_mhd_data_file(path: str) -> None:
    """Raise FileNotFoundError when a MetaImage header points at a missing data file."""
    try:
        with open(path, "rb") as header:
            lines = header.read(65536).decode("latin-1").splitlines()
    except OSError:
        return
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "ElementDataFile":
            value = value.strip()
            if value.upper() in ("LOCAL", "LIST") or value.startswith("%"):
                return
            data_file = os.path.join(os.path.dirname(path), value)
            if not os.path.exists(data_file):
                raise FileNotFoundError(f"{path}: its data file {data_file} does not exist.")
            return


def _affine_of(image_or_affine) -> tuple[np.ndarray, str]:
    """Return (4x4 float64 affine, its space "RAS"/"LPS") from a MetaTensor or an affine matrix."""
    space = "RAS"
    if isinstance(image_or_affine, MetaTensor):
        space = str(image_or_affine.meta.get("space", "RAS")).upper()
        image_or_affine = image_or_affine.affine
    if isinstance(image_or_affine, torch.Tensor):
        image_or_affine = image_or_affine.detach().cpu().numpy()
    affine = np.asarray(image_or_affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine: expected a 4x4 matrix or a MetaTensor, got shape {affine.shape}.")
    return affine, space


def _check_space(space: str) -> str:
    space = str(space).upper()
    if space not in ("RAS", "LPS"):
        raise ValueError(f"space: expected 'RAS' or 'LPS', got {space!r}.")
    return space


def _as_points(points: Sequence | np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    pts = np.asarray(points, dtype=np.float64)
    single = pts.ndim == 1
    pts = np.atleast_2d(pts)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"{name}: expected a 3-vector or an (N, 3) array, got shape {np.shape(points)}.")
    return pts, single


def voxel_to_world(indices, image_or_affine, space: str = "RAS") -> np.ndarray:
    """Map voxel indices (i, j, k) of a loaded volume to world millimetres.

    Args:
        indices: a 3-vector or an (N, 3) array of (possibly fractional) voxel indices.
        image_or_affine: the ``MetaTensor`` returned by :func:`load_volume` or its 4x4 affine
            (a bare matrix is taken to be RAS, as MONAI readers produce).
        space: "RAS" (MONAI, NIfTI) or "LPS" (ITK, DICOM, LUNA16 candidates) for the output.

    Returns:
        float64 array of the same shape as ``indices``.
    """
    affine, affine_space = _affine_of(image_or_affine)
    space = _check_space(space)
    pts, single = _as_points(indices, "indices")
    world = pts @ affine[:3, :3].T + affine[:3, 3]
    if space != affine_space:
        world = world * _LPS_RAS_FLIP
    return world[0] if single else world


def world_to_voxel(points, image_or_affine, space: str = "RAS") -> np.ndarray:
    """Map world millimetres to fractional voxel indices (i, j, k) of a loaded volume.

    Uses the full inverse affine, so rotated/flipped directions and any origin are handled.
    Round the result (``np.rint``) to get the nearest voxel.

    Args:
        points: a 3-vector or an (N, 3) array of world coordinates in mm.
        image_or_affine: the ``MetaTensor`` returned by :func:`load_volume` or its 4x4 affine (RAS).
        space: the frame of ``points``: "RAS", or "LPS" for ITK/DICOM/LUNA16 (coordX, coordY, coordZ).

    Returns:
        float64 array of the same shape as ``points``.
    """
    affine, affine_space = _affine_of(image_or_affine)
    space = _check_space(space)
    pts, single = _as_points(points, "points")
    if space != affine_space:
        pts = pts * _LPS_RAS_FLIP
    indices = np.linalg.solve(affine[:3, :3], (pts - affine[:3, 3]).T).T
    return indices[0] if single else indices
