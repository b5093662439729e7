"""Write readers' nodule outlines as an LIDC-IDRI XML file, for tests of ``data/lidc.py`` on synthetic series.

The layout follows the LIDC-IDRI CT reading files: a namespaced ``LidcReadMessage`` root, a
``ResponseHeader`` naming the series, then one ``readingSession`` per reader with its
``unblindedReadNodule`` elements (``noduleID``, one ``roi`` per outlined slice: ``imageZposition``,
``imageSOP_UID``, ``inclusion``, ``edgeMap`` points ``xCoord`` (column) / ``yCoord`` (row)) and
its ``nonNodule`` marks.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

__all__ = ["LIDC_XML_NAMESPACE", "Roi", "ReaderNodule", "Reader", "rectangle_outline", "write_lidc_xml"]

LIDC_XML_NAMESPACE = "http://www.nih.gov"


@dataclass
class Roi:
    """One outline on one slice: its DICOM SOPInstanceUID and z position, inclusion flag, (x, y) pixels."""

    sop_uid: str
    z: float
    points: Sequence[tuple[int, int]]
    inclusion: bool = True


@dataclass
class ReaderNodule:
    nodule_id: str
    rois: list[Roi]


@dataclass
class Reader:
    reader_id: str
    nodules: list[ReaderNodule] = field(default_factory=list)
    non_nodules: list[Roi] = field(default_factory=list)  # single-point marks of non-nodules (ignored by the mask)


def rectangle_outline(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """The boundary pixels of the rectangle [x0, x1] x [y0, y1] in order, as LIDC edge maps list them."""
    top = [(x, y0) for x in range(x0, x1 + 1)]
    right = [(x1, y) for y in range(y0 + 1, y1 + 1)]
    bottom = [(x, y1) for x in range(x1 - 1, x0 - 1, -1)]
    left = [(x0, y) for y in range(y1 - 1, y0, -1)]
    return top + right + bottom + left + [(x0, y0)]  # closed, as in the LIDC files


def _sub(parent: ET.Element, tag: str, text=None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{LIDC_XML_NAMESPACE}}}{tag}")
    if text is not None:
        element.text = str(text)
    return element


def write_lidc_xml(path, readers: Sequence[Reader], series_uid: str | None = None) -> Path:
    """Write ``readers``' outlines as an LIDC-IDRI XML file at ``path``; returns the path.

    Args:
        path: the XML file to write.
        readers: one :class:`Reader` per reading session.
        series_uid: the series' SeriesInstanceUID for the header (omitted when None).
    """
    ET.register_namespace("", LIDC_XML_NAMESPACE)
    root = ET.Element(f"{{{LIDC_XML_NAMESPACE}}}LidcReadMessage", {"uid": "1.2.3"})
    header = _sub(root, "ResponseHeader")
    _sub(header, "Version", "1.8.1")
    if series_uid is not None:
        _sub(header, "SeriesInstanceUid", series_uid)
    for reader in readers:
        session = _sub(root, "readingSession")
        _sub(session, "annotationVersion", "3.12")
        _sub(session, "servicingRadiologistID", reader.reader_id)
        for nodule in reader.nodules:
            element = _sub(session, "unblindedReadNodule")
            _sub(element, "noduleID", nodule.nodule_id)
            for roi in nodule.rois:
                roi_element = _sub(element, "roi")
                _sub(roi_element, "imageZposition", f"{roi.z:.6f} ")
                _sub(roi_element, "imageSOP_UID", roi.sop_uid)
                _sub(roi_element, "inclusion", "TRUE" if roi.inclusion else "FALSE")
                for x, y in roi.points:
                    edge = _sub(roi_element, "edgeMap")
                    _sub(edge, "xCoord", int(x))
                    _sub(edge, "yCoord", int(y))
        for number, mark in enumerate(reader.non_nodules):
            element = _sub(session, "nonNodule")
            _sub(element, "nonNoduleID", f"non-nodule {number}")
            _sub(element, "imageZposition", f"{mark.z:.6f}")
            _sub(element, "imageSOP_UID", mark.sop_uid)
            locus = _sub(element, "locus")
            _sub(locus, "xCoord", int(mark.points[0][0]))
            _sub(locus, "yCoord", int(mark.points[0][1]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    return path
