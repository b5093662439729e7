"""LIDC-IDRI: the readers' nodule outlines (XML) of a CT series -> one consensus nodule mask in its geometry.

LIDC-IDRI ships each CT as a DICOM series (one file per slice) with an XML file of up to four
radiologists' readings. Each ``readingSession`` (one reader) lists its ``unblindedReadNodule``
elements; a nodule of 3 mm or more is outlined slice by slice (``roi``: the slice's
``imageSOP_UID`` and ``imageZposition``, an ``inclusion`` flag, ``edgeMap`` points ``xCoord`` /
``yCoord`` = 0-based pixel column / row), a smaller nodule is a single point with no outline, and an
``inclusion`` FALSE outline cuts a hole out of the nodule on its slice.

How the mask is made (``genesis lidc-mask SERIES_DIR OUTPUT.nii.gz [--xml FILE]``):

1. The XML is the one in the series folder (or ``--xml``); its header's SeriesInstanceUid, when
   present, must be the folder's series. Each outline is placed on its slice by SOP UID, or by
   its z position where the UID is absent from the series (a warning says how many); an outline
   that matches no slice, or whose z disagrees with its slice, is an error naming the file.
2. One reader's nodule: per slice, the pixels inside its inclusion outlines minus its exclusion
   outlines. The outline pixels themselves are left out (readers were asked to draw just outside
   the nodule; pylidc's ``boolean_mask`` does the same by default); ``include_outline=True`` keeps
   the inclusion outlines. Pixels are mapped to voxels through each file's own
   ImagePositionPatient / ImageOrientationPatient / PixelSpacing, so the mask lands in the grid that
   :func:`monai_genesis.data.io.load_volume` reads (ITK may reorder the slices, e.g. feet first).
3. Readers outline the same nodule separately: nodules of different readers are matched when
   their outlined regions overlap or their centroids lie within ``match_distance_mm`` (3 mm, the
   smallest size LIDC outlines); a reader with several outlines in one match counts once.
4. Consensus: a voxel is nodule where at least half of the readers who outlined that nodule
   include it (2 of 3, 2 of 4, 1 of 2, 1 of 1). Readers who did not outline it do not count.
   Nodules under 3 mm (single points) are reported but not drawn: they have no outline.

The XML is read here with the standard library (``xml.etree``, namespace-agnostic). pylidc reads
the same files but works from its own SQLite database of the whole LIDC-IDRI collection, which
would have to be built first; a single series and its XML need nothing but this module.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from monai_genesis.data.io import NIFTI_SUFFIXES, load_volume, voxel_to_world, world_to_voxel

__all__ = [
    "MATCH_DISTANCE_MM",
    "LidcOutline",
    "LidcReaderNodule",
    "LidcReading",
    "ConsensusNodule",
    "LidcConsensus",
    "read_lidc_xml",
    "find_lidc_xml",
    "lidc_consensus_mask",
    "write_lidc_mask",
]

# Centroids of two readers' outlines closer than this are the same nodule: LIDC outlines nodules of
# 3 mm and more, so two distinct outlined nodules cannot have centres closer than that.
MATCH_DISTANCE_MM = 3.0
_GRID_TOLERANCE = 0.05  # voxels: a file's pixel grid must fall on the loaded volume's grid


# --------------------------------------------------------------------------------------------- XML


@dataclass
class LidcOutline:
    """One ``roi``: an outline (or a single point) on one slice."""

    sop_uid: str
    z: float
    inclusion: bool
    points: np.ndarray  # (N, 2) int: (x = column, y = row)


@dataclass
class LidcReaderNodule:
    """One reader's ``unblindedReadNodule``."""

    reader: int  # index of the readingSession
    nodule_id: str
    outlines: list[LidcOutline]

    @property
    def is_small(self) -> bool:
        """A nodule under 3 mm: single points only, no outline."""
        return all(len(o.points) == 1 for o in self.outlines)


@dataclass
class LidcReading:
    path: Path
    series_uid: str | None
    readers: list[str]  # servicingRadiologistID, or "reader N"
    nodules: list[LidcReaderNodule]
    warnings: list[str] = field(default_factory=list)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name and child.text is not None and child.text.strip():
            return child.text.strip()
    return None


def read_lidc_xml(path: str | os.PathLike) -> LidcReading:
    """Read the readers' nodules of an LIDC-IDRI CT reading XML file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not parseable XML, not an LIDC CT reading file, or an ``roi`` without its slice
            (SOP UID, z position), with an unknown ``inclusion`` value or non-integer coordinates.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such LIDC XML file.")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: not a readable XML file ({err}).") from None
    series_uid = None
    for header in _children(root, "ResponseHeader"):
        for child in header:
            if _local(child.tag).lower() == "seriesinstanceuid" and child.text and child.text.strip():
                series_uid = child.text.strip()
    sessions = _children(root, "readingSession")
    if not sessions:
        raise ValueError(
            f"{path}: no readingSession elements; not an LIDC-IDRI CT reading file (root <{_local(root.tag)}>)."
        )
    readers, nodules, warnings = [], [], []
    for index, session in enumerate(sessions):
        readers.append(_text(session, "servicingRadiologistID") or f"reader {index + 1}")
        for number, element in enumerate(_children(session, "unblindedReadNodule")):
            nodule_id = _text(element, "noduleID") or f"nodule {number + 1}"
            where = f"{path}: reader {readers[-1]}, {nodule_id}"
            outlines = []
            for roi in _children(element, "roi"):
                outline = _read_roi(roi, where)
                if outline is None:
                    warnings.append(f"{where}: an roi without edgeMap points was skipped.")
                else:
                    outlines.append(outline)
            if outlines:
                nodules.append(LidcReaderNodule(index, nodule_id, outlines))
    return LidcReading(path, series_uid, readers, nodules, warnings)


def _read_roi(roi: ET.Element, where: str) -> LidcOutline | None:
    sop_uid, z_text, inclusion = _text(roi, "imageSOP_UID"), _text(roi, "imageZposition"), _text(roi, "inclusion")
    if sop_uid is None or z_text is None:
        raise ValueError(f"{where}: an roi lacks its imageSOP_UID or imageZposition.")
    inclusion = (inclusion or "TRUE").upper()
    if inclusion not in ("TRUE", "FALSE"):
        raise ValueError(f"{where}: inclusion must be TRUE or FALSE, got {inclusion!r}.")
    try:
        z = float(z_text)
        points = [(int(_text(e, "xCoord")), int(_text(e, "yCoord"))) for e in _children(roi, "edgeMap")]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: an roi has a non-numeric imageZposition, xCoord or yCoord.") from None
    if not points:
        return None
    return LidcOutline(sop_uid, z, inclusion == "TRUE", np.asarray(points, dtype=np.int64))


# ------------------------------------------------------------------------------------------ series


@dataclass
class _Slice:
    sop_uid: str
    z: float  # ImagePositionPatient z (LPS, mm), what imageZposition refers to
    pixel_to_voxel: np.ndarray  # (3, 3): voxel (i, j, k) = M @ (column, row, 1)
    shape: tuple[int, int]  # (columns, rows)
    path: Path


def _read_headers(series_dir: Path) -> list[tuple[Path, object]]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    tags = ["SOPInstanceUID", "SeriesInstanceUID", "ImagePositionPatient", "ImageOrientationPatient",
            "PixelSpacing", "Rows", "Columns"]  # fmt: skip
    headers = []
    for path in sorted(p for p in series_dir.iterdir() if p.is_file() and p.suffix.lower() != ".xml"):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags)
        except (InvalidDicomError, OSError, EOFError):
            continue
        if all(hasattr(header, tag) for tag in tags):
            headers.append((path, header))
    return headers


def _series_slices(series_dir: Path, headers, volume) -> tuple[str, list[_Slice]]:
    """The series UID and, per DICOM file, how its pixels map onto the loaded volume's voxels."""
    series = sorted({str(h.SeriesInstanceUID) for _, h in headers})
    if len(series) > 1:
        raise ValueError(
            f"{series_dir}: holds {len(series)} DICOM series ({', '.join(series)}); give each its own folder."
        )
    shape = tuple(volume.shape)
    slices = []
    for path, header in headers:
        position = np.asarray(header.ImagePositionPatient, dtype=np.float64)
        orientation = np.asarray(header.ImageOrientationPatient, dtype=np.float64)
        row_spacing, column_spacing = (float(v) for v in header.PixelSpacing)
        # DICOM: column index c runs along the row direction cosines, row index r along the column ones.
        corners = np.stack(
            [position, position + column_spacing * orientation[:3], position + row_spacing * orientation[3:]]
        )
        voxels = world_to_voxel(corners, volume, space="LPS")
        matrix = np.stack([voxels[1] - voxels[0], voxels[2] - voxels[0], voxels[0]], axis=1)
        rounded = np.rint(matrix)
        k = rounded[2, 2]
        if np.abs(matrix - rounded).max() > _GRID_TOLERANCE or not 0 <= k < shape[2]:
            raise ValueError(f"{path}: this slice does not lie on the grid of the series read from {series_dir}.")
        size = (int(header.Columns), int(header.Rows))
        slices.append(_Slice(str(header.SOPInstanceUID), float(position[2]), rounded, size, path))
    found = sorted(int(s.pixel_to_voxel[2, 2]) for s in slices)
    if found != list(range(shape[2])):
        raise ValueError(
            f"{series_dir}: {len(slices)} DICOM files for {shape[2]} slices (duplicated or missing slices)."
        )
    return series[0], slices


# ----------------------------------------------------------------------------------- rasterising
# MONAI has no polygon filling; these two short numpy routines avoid a dependency (skimage, matplotlib).


def _outline_pixels(points: np.ndarray) -> np.ndarray:
    """The pixels of the closed chain through ``points`` (a digital line between consecutive points)."""
    ends = np.vstack([points, points[:1]]).astype(np.float64)
    pieces = [points[:1]]
    for start, stop in zip(ends[:-1], ends[1:]):
        steps = int(np.abs(stop - start).max())
        if steps:
            t = np.arange(1, steps + 1)[:, None] / steps
            pieces.append(np.rint(start + t * (stop - start)).astype(np.int64))
    return np.unique(np.vstack(pieces), axis=0)


def _interior_pixels(points: np.ndarray) -> np.ndarray:
    """Pixels whose centres the closed polygon through ``points`` encloses (even-odd rule)."""
    low, high = points.min(axis=0), points.max(axis=0)
    xs, ys = np.meshgrid(np.arange(low[0], high[0] + 1), np.arange(low[1], high[1] + 1), indexing="ij")
    x, y = xs.ravel().astype(np.float64), ys.ravel().astype(np.float64)
    inside = np.zeros(x.shape, dtype=bool)
    ends = points.astype(np.float64)
    for (x1, y1), (x2, y2) in zip(ends, np.roll(ends, -1, axis=0)):
        if y1 != y2:
            crosses = (y1 > y) != (y2 > y)
            inside ^= crosses & (x < x1 + (y - y1) * (x2 - x1) / (y2 - y1))
    return np.stack([x[inside], y[inside]], axis=1).astype(np.int64)


# ----------------------------------------------------------------------------------- consensus


@dataclass
class _Annotation:
    nodule: LidcReaderNodule
    voxels: np.ndarray  # flat indices of the nodule (outline pixels per include_outline)
    footprint: np.ndarray  # flat indices of everything the outlines enclose, outline included (for matching)
    centroid_mm: np.ndarray  # mean world position (LPS) of the outline points


@dataclass
class ConsensusNodule:
    """One nodule after matching the readers: who outlined it and its consensus voxels."""

    readers: list[str]
    reader_nodule_ids: list[str]
    reader_voxels: list[int]  # voxels of each reader's own outline
    voxels: int  # voxels in the consensus mask
    centre_voxel: tuple[int, int, int]
    small_marks: list[str] = field(default_factory=list)  # readers who marked it as < 3 mm instead


@dataclass
class SmallNodule:
    """A nodule under 3 mm (single points, no outline): reported, not in the mask."""

    readers: list[str]
    voxel: tuple[int, int, int]


@dataclass
class LidcConsensus:
    mask: np.ndarray  # uint8 (X, Y, Z), 1 = nodule
    affine: np.ndarray  # voxel -> RAS, as load_volume reads the series
    series_uid: str
    xml_path: Path
    readers: list[str]
    nodules: list[ConsensusNodule]
    small_nodules: list[SmallNodule]
    warnings: list[str]


def find_lidc_xml(series_dir: str | os.PathLike, series_uid: str | None = None) -> Path:
    """The LIDC XML file in ``series_dir`` (the one naming ``series_uid`` when there are several)."""
    series_dir = Path(series_dir)
    candidates = sorted(p for p in series_dir.iterdir() if p.is_file() and p.suffix.lower() == ".xml")
    if not candidates:
        raise FileNotFoundError(f"{series_dir}: no LIDC XML file (*.xml) in the series folder; give one with --xml.")
    if len(candidates) == 1:
        return candidates[0]
    matching = [p for p in candidates if series_uid is not None and _xml_series_uid(p) == series_uid]
    if len(matching) == 1:
        return matching[0]
    names = ", ".join(p.name for p in candidates)
    raise ValueError(
        f"{series_dir}: {len(candidates)} XML files ({names}) and not exactly one names this series; "
        "give one with --xml."
    )


def _xml_series_uid(path: Path) -> str | None:
    try:
        return read_lidc_xml(path).series_uid
    except ValueError:
        return None


def _place_outlines(reading: LidcReading, slices: list[_Slice], series_dir: Path) -> tuple[dict, list[str]]:
    """Slice of every outline (by SOP UID, else by z), checking the XML against the series."""
    by_uid = {s.sop_uid: s for s in slices}
    zs = np.array([s.z for s in slices])
    distinct = np.unique(np.round(zs, 4))
    tolerance = 0.5 * float(np.diff(distinct).min()) if len(distinct) > 1 else 0.5
    outlines = [(n, o) for n in reading.nodules for o in n.outlines]
    if outlines and not any(o.sop_uid in by_uid for _, o in outlines):
        raise ValueError(
            f"{reading.path}: none of its {len(outlines)} outlines refers to a SOP UID of the series in {series_dir}; "
            "the XML belongs to another series."
        )
    placed, by_z = {}, 0
    for nodule, outline in outlines:
        reader = reading.readers[nodule.reader]
        where = f"{reading.path}: reader {reader}, {nodule.nodule_id}, outline at z={outline.z:g}"
        target = by_uid.get(outline.sop_uid)
        if target is None:
            nearest = int(np.argmin(np.abs(zs - outline.z)))
            if abs(zs[nearest] - outline.z) > tolerance:
                raise ValueError(f"{where} (SOP UID {outline.sop_uid}) matches no slice of the series in {series_dir}.")
            target, by_z = slices[nearest], by_z + 1
        elif abs(target.z - outline.z) > tolerance:
            raise ValueError(
                f"{where}: its SOP UID is the slice at z={target.z:g} ({target.path.name}); "
                "the XML does not match the series."
            )
        columns, rows = target.shape
        if outline.points.min() < 0 or outline.points[:, 0].max() >= columns or outline.points[:, 1].max() >= rows:
            raise ValueError(f"{where}: points outside the {columns}x{rows} image.")
        placed[id(outline)] = target
    warnings = []
    if by_z:
        warnings.append(f"{reading.path}: {by_z} outlines placed by z position (their SOP UIDs are not in the series).")
    return placed, warnings


def _to_voxels(pixels: np.ndarray, target: _Slice) -> np.ndarray:
    """(N, 2) pixels (column, row) of a slice -> (N, 3) int voxel indices of the loaded volume."""
    return np.column_stack([pixels, np.ones(len(pixels), dtype=np.int64)]) @ target.pixel_to_voxel.T.astype(np.int64)


def _to_flat(pixels: np.ndarray, target: _Slice, shape) -> np.ndarray:
    return np.ravel_multi_index(tuple(_to_voxels(pixels, target).T), shape)


def _annotate(nodule: LidcReaderNodule, placed: dict, shape, affine, include_outline: bool) -> _Annotation:
    inclusions, outlines, exclusions, points_mm = [], [], [], []
    for outline in nodule.outlines:
        target = placed[id(outline)]
        edge = _outline_pixels(outline.points)
        enclosed = np.vstack([_interior_pixels(outline.points), edge])
        (inclusions if outline.inclusion else exclusions).append(_to_flat(enclosed, target, shape))
        if outline.inclusion and not include_outline:
            outlines.append(_to_flat(edge, target, shape))
        points_mm.append(voxel_to_world(_to_voxels(outline.points, target), affine, space="LPS"))
    empty = np.zeros(0, dtype=np.int64)
    footprint = np.unique(np.concatenate(inclusions or [empty]))
    removed = np.concatenate(outlines + exclusions + [empty])
    voxels = np.setdiff1d(footprint, removed)
    return _Annotation(nodule, voxels, footprint, np.vstack(points_mm).mean(axis=0))


def _clusters(items, linked) -> list[list[int]]:
    """Connected components of the graph ``linked(a, b)`` over items of different readers."""
    parent = list(range(len(items)))

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a in range(len(items)):
        for b in range(a + 1, len(items)):
            if items[a].nodule.reader != items[b].nodule.reader and linked(items[a], items[b]):
                parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for a in range(len(items)):
        groups.setdefault(root(a), []).append(a)
    return list(groups.values())


def _centre(flat: np.ndarray, shape) -> tuple[int, int, int]:
    return tuple(int(round(float(c))) for c in np.mean(np.unravel_index(flat, shape), axis=1))


def lidc_consensus_mask(
    series_dir: str | os.PathLike,
    xml: str | os.PathLike | None = None,
    match_distance_mm: float = MATCH_DISTANCE_MM,
    include_outline: bool = False,
) -> LidcConsensus:
    """The consensus nodule mask of an LIDC-IDRI series from its readers' XML (see the module docstring).

    Args:
        series_dir: folder of the series' DICOM files (as LIDC-IDRI ships them, with the XML).
        xml: the reading XML; None looks for the one ``*.xml`` in ``series_dir``.
        match_distance_mm: centroids of two readers' outlines closer than this are the same nodule
            (overlapping outlines always are). Defaults to 3 mm.
        include_outline: count the inclusion outlines' own pixels as nodule. Defaults to False.

    Returns:
        a :class:`LidcConsensus`: the uint8 mask in the shape and affine ``load_volume(series_dir)``
        gives, the matched nodules with their readers and voxel counts, the nodules under 3 mm.

    Raises:
        FileNotFoundError: no such folder, no DICOM files, no XML.
        ValueError: the XML is unreadable or does not match the series (series UID, SOP UIDs, z
            positions, points outside the image), or the folder holds several series.
    """
    series_dir = Path(series_dir)
    if not series_dir.exists():
        raise FileNotFoundError(f"{series_dir}: no such folder.")
    if not series_dir.is_dir():
        raise ValueError(f"{series_dir}: not a folder; expected the folder of one DICOM series.")
    headers = _read_headers(series_dir)
    if not headers:
        raise FileNotFoundError(f"{series_dir}: no DICOM image files (with SOP UIDs and geometry) in this folder.")
    volume = load_volume(series_dir, dtype=None)
    shape, affine = tuple(volume.shape), volume.affine.numpy().astype(np.float64)
    series_uid, slices = _series_slices(series_dir, headers, volume)
    reading = read_lidc_xml(xml if xml is not None else find_lidc_xml(series_dir, series_uid))
    if reading.series_uid is not None and reading.series_uid != series_uid:
        raise ValueError(
            f"{reading.path}: describes series {reading.series_uid}, but {series_dir} holds series {series_uid}."
        )
    placed, warnings = _place_outlines(reading, slices, series_dir)
    warnings = reading.warnings + warnings

    outlined = [_annotate(n, placed, shape, affine, include_outline) for n in reading.nodules if not n.is_small]
    clusters = _clusters(
        outlined,
        lambda a, b: np.intersect1d(a.footprint, b.footprint).size > 0
        or float(np.linalg.norm(a.centroid_mm - b.centroid_mm)) <= match_distance_mm,
    )
    mask = np.zeros(int(np.prod(shape)), dtype=np.uint8)
    nodules, footprints = [], []
    for members in clusters:
        per_reader: dict[int, list[_Annotation]] = {}
        for m in members:
            per_reader.setdefault(outlined[m].nodule.reader, []).append(outlined[m])
        reader_voxels = {r: np.unique(np.concatenate([a.voxels for a in anns])) for r, anns in per_reader.items()}
        votes, counts = np.unique(np.concatenate(list(reader_voxels.values())), return_counts=True)
        consensus = votes[2 * counts >= len(per_reader)]
        mask[consensus] = 1
        footprint = np.unique(np.concatenate([outlined[m].footprint for m in members]))
        footprints.append(footprint)
        readers = sorted(per_reader)
        nodules.append(ConsensusNodule(
            readers=[reading.readers[r] for r in readers],
            reader_nodule_ids=[", ".join(a.nodule.nodule_id for a in per_reader[r]) for r in readers],
            reader_voxels=[int(reader_voxels[r].size) for r in readers],
            voxels=int(consensus.size),
            centre_voxel=_centre(consensus if consensus.size else footprint, shape),
        ))  # fmt: skip

    small_nodules = _small_nodules(reading, placed, shape, affine, nodules, footprints, match_distance_mm)
    order = sorted(range(len(nodules)), key=lambda n: nodules[n].centre_voxel[::-1])
    return LidcConsensus(
        mask=mask.reshape(shape),
        affine=affine,
        series_uid=series_uid,
        xml_path=reading.path,
        readers=reading.readers,
        nodules=[nodules[n] for n in order],
        small_nodules=small_nodules,
        warnings=warnings,
    )


def _small_nodules(reading, placed, shape, affine, nodules, footprints, match_distance_mm) -> list[SmallNodule]:
    """Single-point marks: noted on the outlined nodule they fall in, else grouped among themselves."""
    marks = []
    for nodule in reading.nodules:
        if nodule.is_small:
            outline = nodule.outlines[0]
            flat = _to_flat(outline.points[:1], placed[id(outline)], shape)
            hit = [n for n, fp in enumerate(footprints) if np.isin(flat, fp).any()]
            if hit:
                nodules[hit[0]].small_marks.append(reading.readers[nodule.reader])
            else:
                world = voxel_to_world(np.unravel_index(flat[0], shape), affine, space="LPS")
                marks.append(_Annotation(nodule, flat, flat, world))
    groups = _clusters(marks, lambda a, b: float(np.linalg.norm(a.centroid_mm - b.centroid_mm)) <= match_distance_mm)
    result = []
    for members in groups:
        flat = np.concatenate([marks[m].voxels for m in members])
        readers = sorted({marks[m].nodule.reader for m in members})
        result.append(SmallNodule([reading.readers[r] for r in readers], _centre(flat, shape)))
    return sorted(result, key=lambda s: s.voxel[::-1])


# --------------------------------------------------------------------------------------- writing


def _check_output(path: Path, overwrite: bool) -> None:
    if not path.name.lower().endswith(NIFTI_SUFFIXES):
        raise ValueError(f"{path}: the output must be a NIfTI file (.nii.gz or .nii).")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists already; pass --overwrite to replace it.")


def _save_nifti_atomic(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    """Write via a temporary file in the same folder, then rename: an interrupted run leaves no torn file."""
    import nibabel as nib

    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        image = nib.Nifti1Image(array, affine)
        image.header.set_xyzt_units("mm")
        image.set_qform(affine, code=1)  # scanner space, as the CT's own NIfTI would say
        image.set_sform(affine, code=1)
        nib.save(image, str(temporary))
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_lidc_mask(
    series_dir: str | os.PathLike,
    output: str | os.PathLike,
    xml: str | os.PathLike | None = None,
    image: str | os.PathLike | None = None,
    overwrite: bool = False,
    match_distance_mm: float = MATCH_DISTANCE_MM,
    include_outline: bool = False,
) -> LidcConsensus:
    """Write the consensus mask of :func:`lidc_consensus_mask` as NIfTI (uint8, the series' affine).

    Args:
        series_dir, xml, match_distance_mm, include_outline: as :func:`lidc_consensus_mask`.
        output: the mask file (.nii.gz or .nii); an existing file is an error unless ``overwrite``.
        image: optionally also write the CT itself as NIfTI here (stored type, same affine).
        overwrite: replace existing output files. Defaults to False.
    """
    outputs = [Path(output)] + ([Path(image)] if image is not None else [])
    for path in outputs:
        _check_output(path, overwrite)
    result = lidc_consensus_mask(series_dir, xml, match_distance_mm, include_outline)
    for path in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
    _save_nifti_atomic(Path(output), result.mask, result.affine)
    if image is not None:
        _save_nifti_atomic(Path(image), load_volume(series_dir, dtype=None).numpy(), result.affine)
    return result
