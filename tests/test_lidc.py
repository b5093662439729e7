"""data/lidc.py and `genesis lidc-mask`: readers' XML outlines on a synthetic DICOM series -> the consensus mask.

The series stores each voxel's own index as its HU value, so the test knows where every written
pixel (column, row, file) lands in the volume ITK reads, whatever order ITK gives the slices.
"""

import shutil
import sys

import numpy as np
import pydicom
import pytest

from monai_genesis.cli.main import main
from monai_genesis.data.io import load_volume
from monai_genesis.data.lidc import lidc_consensus_mask, write_lidc_mask
from monai_genesis.phantoms.dicom import write_dicom_series
from monai_genesis.phantoms.geometry import affine_from_geometry, lps_to_ras, rotation_deg
from monai_genesis.phantoms.lidc_xml import Reader, ReaderNodule, Roi, rectangle_outline, write_lidc_xml

SHAPE = (24, 20, 8)  # columns, rows, slices as written
OFFSET = 2000  # HU = written flat index - OFFSET

GEOMETRIES = {
    "axial": np.eye(3),
    "oblique": rotation_deg(5, -3, 10),
    "feet_first": np.diag([1.0, 1.0, -1.0]),  # ITK re-sorts these slices head first
}


def _write_series(folder, direction):
    hu = np.arange(np.prod(SHAPE)).reshape(SHAPE) - OFFSET
    affine = lps_to_ras(affine_from_geometry((0.7, 0.7, 2.5), (-110.0, 25.0, -200.0), direction))
    paths = write_dicom_series(folder, hu, affine)
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    slices = [(str(h.SOPInstanceUID), float(h.ImagePositionPatient[2])) for h in headers]
    return slices, str(headers[0].SeriesInstanceUID)


def _roi(slices, k, points, inclusion=True):
    uid, z = slices[k]
    return Roi(uid, z, points, inclusion)


def _readers(slices):
    """Three readers outline nodule 1 differently, a fourth misses it; a hole; a two-reader nodule; a < 3 mm nodule."""
    a_rect, b_rect = rectangle_outline(5, 5, 12, 11), rectangle_outline(6, 5, 13, 11)
    c_rect = rectangle_outline(5, 6, 12, 12)
    hole = rectangle_outline(8, 7, 10, 9)
    reader_a = Reader("A", [
        ReaderNodule("Nodule 001", [_roi(slices, 3, a_rect), _roi(slices, 4, a_rect), _roi(slices, 5, a_rect),
                                    _roi(slices, 5, hole, inclusion=False)]),
        ReaderNodule("small 1", [_roi(slices, 6, [(20, 3)])]),
    ])  # fmt: skip
    reader_b = Reader("B", [
        ReaderNodule("1", [_roi(slices, 3, b_rect), _roi(slices, 4, b_rect)]),
        ReaderNodule("2", [_roi(slices, 2, rectangle_outline(16, 12, 20, 16))]),
    ])  # fmt: skip
    reader_c = Reader("C", [ReaderNodule("IL057_1", [_roi(slices, k, c_rect) for k in (4, 5, 6)])])
    reader_d = Reader("D", [
        ReaderNodule("Nodule 002", [_roi(slices, k, rectangle_outline(15, 12, 19, 16)) for k in (1, 2)]),
        ReaderNodule("small 2", [_roi(slices, 6, [(20, 4)])]),
    ], non_nodules=[_roi(slices, 2, [(3, 17)])])  # fmt: skip
    return [reader_a, reader_b, reader_c, reader_d]


def _expected_written():
    """The majority mask by hand, in written (column, row, file) indices."""
    expected = np.zeros(SHAPE, dtype=np.uint8)
    expected[7:12, 6:11, 3] = 1  # A and B agree (C did not outline slice 3): 25 voxels
    expected[6:12, 7:11, 4] = 1  # A and C: 24 voxels
    expected[7:12, 6, 4] = 1  # A and B on row 6: 5 voxels
    expected[6:12, 7:11, 5] = 1  # A and C ...
    expected[8:11, 7:10, 5] = 0  # ... less A's hole, where only C votes: 15 voxels
    expected[16:19, 13:16, 1:3] = 1  # D outlined nodule 2 on two slices: 18 voxels ...
    expected[16:20, 13:16, 2] = 1  # ... B on one (1 of 2 readers is half): 3 more voxels
    return expected


def _in_loaded_grid(expected_written, series_dir):
    written_index = load_volume(series_dir, dtype=None).numpy().astype(np.int64) + OFFSET
    return expected_written.ravel()[written_index]


@pytest.fixture(scope="module")
def axial_series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("axial") / "series"
    slices, series_uid = _write_series(folder, GEOMETRIES["axial"])
    return folder, slices, series_uid


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_consensus_mask_is_the_hand_computed_majority_in_the_series_geometry(tmp_path, geometry, capsys, monkeypatch):
    series = tmp_path / "series"
    slices, series_uid = _write_series(series, GEOMETRIES[geometry])
    write_lidc_xml(series / "069.xml", _readers(slices), series_uid=series_uid)
    output = tmp_path / "labels" / "nodules.nii.gz"
    command = ["genesis", "lidc-mask", str(series), str(output), "--image", str(tmp_path / "ct.nii.gz")]
    monkeypatch.setattr(sys, "argv", command)
    main()

    ct, mask = load_volume(series), load_volume(output, dtype=None)
    assert tuple(mask.shape) == tuple(ct.shape)
    np.testing.assert_allclose(mask.affine.numpy(), ct.affine.numpy(), atol=1e-4)
    np.testing.assert_allclose(load_volume(tmp_path / "ct.nii.gz").affine.numpy(), ct.affine.numpy(), atol=1e-4)
    expected = _in_loaded_grid(_expected_written(), series)
    assert expected.sum() == 90
    np.testing.assert_array_equal(mask.numpy(), expected)

    report = capsys.readouterr().out
    assert "4 readers" in report
    assert "3 readers, 69 consensus voxels" in report and "A (81 voxels), B (60 voxels), C (90 voxels)" in report
    assert "2 readers, 21 consensus voxels" in report and "B (9 voxels), D (18 voxels)" in report
    assert "nodule < 3 mm (not in the mask): 2 readers (A, D)" in report
    assert "2 nodules, 90 voxels" in report


def test_sparse_vertices_and_outline_option(tmp_path, axial_series):
    """Outlines given as polygon vertices (not every boundary pixel) fill by the even-odd rule."""
    series, slices, series_uid = axial_series
    diamond = [(10, 4), (14, 8), (10, 12), (6, 8)]  # |x - 10| + |y - 8| = 4
    xml = write_lidc_xml(tmp_path / "d.xml", [Reader("A", [ReaderNodule("1", [_roi(slices, 2, diamond)])])])
    expected = np.zeros(SHAPE, dtype=np.uint8)
    x, y = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
    expected[..., 2] = np.abs(x - 10) + np.abs(y - 8) < 4  # strictly inside: 25 pixels
    result = lidc_consensus_mask(series, xml=xml)
    assert expected.sum() == 25
    np.testing.assert_array_equal(result.mask, _in_loaded_grid(expected, series))
    with_outline = lidc_consensus_mask(series, xml=xml, include_outline=True)
    assert with_outline.mask.sum() == 25 + 16  # the 16 pixels of the digital diamond


def test_outline_placed_by_z_when_its_sop_uid_is_unknown(tmp_path, axial_series):
    series, slices, _ = axial_series
    rect = rectangle_outline(3, 3, 6, 6)
    rois = [_roi(slices, 2, rect), Roi("1.2.3.999", slices[3][1], rect)]
    xml = write_lidc_xml(tmp_path / "z.xml", [Reader("A", [ReaderNodule("1", rois)])])
    result = lidc_consensus_mask(series, xml=xml)
    assert result.mask.sum() == 2 * 4
    assert any("placed by z position" in w for w in result.warnings)


def _one_outline_xml(path, roi, series_uid=None):
    return write_lidc_xml(path, [Reader("A", [ReaderNodule("1", [roi])])], series_uid)


def _error_line(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["genesis", "lidc-mask", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genesis: error: ")
    return lines[0]


def test_bad_input_gives_one_clear_line(tmp_path, axial_series, monkeypatch, capsys):
    series, slices, series_uid = axial_series
    out = tmp_path / "mask.nii.gz"
    rect = rectangle_outline(3, 3, 6, 6)

    # the folder holds no XML
    assert "no LIDC XML" in _error_line(monkeypatch, capsys, series, out)
    # no DICOM series
    (tmp_path / "empty").mkdir()
    assert "no DICOM image files" in _error_line(monkeypatch, capsys, tmp_path / "empty", out)
    assert "no such folder" in _error_line(monkeypatch, capsys, tmp_path / "missing", out)
    # the XML's header names another series
    other = _one_outline_xml(tmp_path / "other.xml", _roi(slices, 2, rect), "1.2.3.4")
    line = _error_line(monkeypatch, capsys, series, out, "--xml", other)
    assert "other.xml" in line and "describes series 1.2.3.4" in line
    # no SOP UID of the series (an XML of another series without header)
    foreign = _one_outline_xml(tmp_path / "foreign.xml", Roi("1.2.9", slices[2][1], rect))
    assert "belongs to another series" in _error_line(monkeypatch, capsys, series, out, "--xml", foreign)
    # a known SOP UID at the wrong z position
    shifted = _one_outline_xml(tmp_path / "z.xml", Roi(slices[2][0], slices[2][1] + 5.0, rect))
    assert "does not match the series" in _error_line(monkeypatch, capsys, series, out, "--xml", shifted)
    # points outside the image
    outside = _one_outline_xml(tmp_path / "x.xml", _roi(slices, 2, rectangle_outline(20, 3, 30, 6)))
    assert "outside the 24x20 image" in _error_line(monkeypatch, capsys, series, out, "--xml", outside)
    # not XML / not an LIDC reading file
    (tmp_path / "broken.xml").write_text("<LidcReadMessage><readingSession>")
    line = _error_line(monkeypatch, capsys, series, out, "--xml", tmp_path / "broken.xml")
    assert "broken.xml: not a readable XML" in line
    (tmp_path / "cxr.xml").write_text("<IdriReadMessage><CXRreadingSession/></IdriReadMessage>")
    line = _error_line(monkeypatch, capsys, series, out, "--xml", tmp_path / "cxr.xml")
    assert "not an LIDC-IDRI CT reading file" in line
    assert not out.exists()

    # an existing output file is kept unless --overwrite
    good = _one_outline_xml(tmp_path / "good.xml", _roi(slices, 2, rect), series_uid)
    out.write_bytes(b"keep me")
    assert "mask.nii.gz: exists already" in _error_line(monkeypatch, capsys, series, out, "--xml", good)
    assert out.read_bytes() == b"keep me"
    assert "must be a NIfTI file" in _error_line(monkeypatch, capsys, series, tmp_path / "mask.png", "--xml", good)
    write_lidc_mask(series, out, xml=good, overwrite=True)
    assert load_volume(out).sum() == 4
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp.nii.gz")]


def test_xml_found_in_folder_among_several_by_series_uid(tmp_path, axial_series):
    series, slices, series_uid = axial_series
    folder = tmp_path / "series"
    shutil.copytree(series, folder)
    rect = rectangle_outline(3, 3, 6, 6)
    write_lidc_xml(folder / "a.xml", [Reader("A", [ReaderNodule("1", [_roi(slices, 2, rect)])])], "1.2.3.4")
    write_lidc_xml(folder / "b.xml", [Reader("A", [ReaderNodule("1", [_roi(slices, 2, rect)])])], series_uid)
    assert lidc_consensus_mask(folder).xml_path.name == "b.xml"
