"""Phantom files: NIfTI and MetaImage round trips with geometry, LUNA16 layout, world <-> voxel, CLI."""

import csv
import json

import itk
import nibabel as nib
import numpy as np
import pytest
from monai.transforms import LoadImage
from scipy import ndimage

from monai_genesis.cli.synth import run_synth, synth
from monai_genesis.phantoms.chest_ct import make_chest_ct, write_chest_ct_dataset
from monai_genesis.phantoms.geometry import (
    affine_from_geometry,
    geometry_from_affine,
    lps_to_ras,
    ras_to_lps,
    rotation_deg,
)
from monai_genesis.data.io import voxel_to_world, world_to_voxel
from monai_genesis.phantoms.writers import check_formats, write_image, write_metaimage, write_nifti

SMALL = dict(shape=(64, 64, 40), spacing=(1.4, 1.4, 2.5))


@pytest.fixture(scope="module")
def oblique_affine():
    # an oblique, feet-first grid with anisotropic spacing and an offset origin (LPS)
    direction = rotation_deg(4, -3, 10) @ np.diag([1.0, 1.0, -1.0])
    return lps_to_ras(affine_from_geometry((0.7, 0.8, 1.25), (-120.5, 33.0, -210.0), direction))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("chest")
    paths = write_chest_ct_dataset(out, num_cases=3, seed=7, formats="both", num_nodules=2, num_false_positives=3, **SMALL)
    return out, paths


def test_world_voxel_maps_are_inverse_and_lps_ras_flip_x_y(oblique_affine):
    points = np.array([[0, 0, 0], [10.5, 3.25, 7], [63, 63, 39]], float)
    world = voxel_to_world(points, oblique_affine)
    assert np.allclose(world_to_voxel(world, oblique_affine), points)
    lps = voxel_to_world(points, ras_to_lps(oblique_affine))
    assert np.allclose(lps, world * [-1, -1, 1])
    assert np.allclose(lps_to_ras(ras_to_lps(oblique_affine)), oblique_affine)
    spacing, origin, direction = geometry_from_affine(ras_to_lps(oblique_affine))
    assert np.allclose(spacing, (0.7, 0.8, 1.25)) and np.allclose(origin, (-120.5, 33.0, -210.0))
    sheared = np.eye(4)
    sheared[0, 1] = 0.3
    with pytest.raises(ValueError, match="orthogonal"):
        geometry_from_affine(sheared)


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_nifti_and_metaimage_keep_values_dtype_and_geometry(tmp_path, oblique_affine, dtype):
    array = (np.random.default_rng(0).uniform(0, 200, (9, 7, 5))).astype(dtype)
    nii = write_nifti(tmp_path / "a.nii.gz", array, oblique_affine)
    mhd = write_metaimage(tmp_path / "a.mhd", array, oblique_affine)
    assert (tmp_path / "a.raw").exists()
    loaded = nib.load(str(nii))
    assert loaded.get_data_dtype() == dtype and np.array_equal(np.asanyarray(loaded.dataobj), array)
    assert np.allclose(loaded.affine, oblique_affine, atol=1e-5)
    assert loaded.header.get_sform(coded=True)[1] == 1 and loaded.header.get_qform(coded=True)[1] == 1
    image = itk.imread(str(mhd))
    assert np.array_equal(itk.array_view_from_image(image).transpose(2, 1, 0), array)
    # ITK holds the LPS geometry: origin and direction are those of ras_to_lps(affine)
    lps = ras_to_lps(oblique_affine)
    assert np.allclose(np.array(image.GetOrigin()), lps[:3, 3])
    assert np.allclose(np.array(image.GetSpacing()), (0.7, 0.8, 1.25))
    assert np.allclose(itk.array_from_matrix(image.GetDirection()), lps[:3, :3] / (0.7, 0.8, 1.25))


@pytest.mark.parametrize("reader", ["ITKReader", None])
def test_monai_loads_both_formats_with_the_same_affine(tmp_path, oblique_affine, reader):
    array = np.arange(9 * 7 * 5, dtype=np.int16).reshape(9, 7, 5)
    for name in ("b.nii.gz", "b.mhd"):
        write_image(tmp_path / name, array, oblique_affine)
        loaded = LoadImage(reader=reader, image_only=True)(str(tmp_path / name))
        assert np.array_equal(np.asarray(loaded), array)
        assert np.allclose(np.asarray(loaded.affine), oblique_affine, atol=1e-4)


def test_dataset_layout_and_luna16_tables(dataset):
    out, paths = dataset
    assert all(p.exists() for p in paths)
    for folder in ("images", "labels", "lungs"):
        assert len(list((out / folder).glob("*.nii.gz"))) == 3 and len(list((out / folder).glob("*.raw"))) == 3
    with open(out / "candidates.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["seriesuid", "coordX", "coordY", "coordZ", "class"]
    assert len(rows) == 1 + 3 * (2 + 3) and {r[4] for r in rows[1:]} == {"0", "1"}
    with open(out / "annotations.csv") as handle:
        assert next(csv.reader(handle)) == ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["kind"] == "chest-ct" and len(manifest["cases"]) == 3
    for case in manifest["cases"]:
        assert (out / case["images"]["mhd"]).name == case["id"] + ".mhd"  # LUNA16 names files by seriesuid
        assert {r[0] for r in rows[1:]} >= {case["id"]}


@pytest.mark.parametrize("reader", ["ITKReader", None])
def test_candidate_coordinates_are_lps_world_of_the_loaded_volumes(dataset, reader):
    out, _ = dataset
    with open(out / "candidates.csv") as handle:
        rows = list(csv.DictReader(handle))
    directions, origins = [], []
    for case in json.loads((out / "dataset.json").read_text())["cases"]:
        for fmt in ("mhd", "nii.gz"):
            label = LoadImage(reader=reader, image_only=True)(str(out / case["labels"][fmt]))
            ras_affine = np.asarray(label.affine, float)
            lps_affine = ras_to_lps(ras_affine)  # LUNA16 coordinates are ITK's LPS world
            spacing, origin, direction = geometry_from_affine(lps_affine)
            directions.append(direction)
            origins.append(origin)
            mask = np.asarray(label)
            positives = [r for r in rows if r["seriesuid"] == case["id"] and r["class"] == "1"]
            assert len(positives) == 2
            for row in positives:
                world = np.array([float(row["coordX"]), float(row["coordY"]), float(row["coordZ"])])
                voxel = np.rint(world_to_voxel(world, lps_affine)).astype(int)
                value = int(mask[tuple(voxel)])
                assert value > 0  # the candidate's world position lands in its nodule
                centroid = ndimage.center_of_mass(mask == value)
                # the mask centroid, mapped with the loaded affine, is near the listed centre
                assert np.linalg.norm(voxel_to_world(centroid, lps_affine) - world) < 2 * max(spacing)
    assert any(not np.allclose(d, np.eye(3)) for d in directions)  # an oblique or feet-first case
    assert all(np.linalg.norm(o) > 1 for o in origins)


def test_dataset_cases_do_not_depend_on_the_number_of_cases(dataset, tmp_path):
    out, _ = dataset
    write_chest_ct_dataset(tmp_path, num_cases=1, seed=7, formats="nii.gz", num_nodules=2, num_false_positives=3, **SMALL)
    first = json.loads((out / "dataset.json").read_text())["cases"][0]
    alone = json.loads((tmp_path / "dataset.json").read_text())["cases"][0]
    assert first["id"] == alone["id"]
    a = nib.load(str(out / first["images"]["nii.gz"])).get_fdata()
    b = nib.load(str(tmp_path / alone["images"]["nii.gz"])).get_fdata()
    assert np.array_equal(a, b)


def test_make_and_write_agree(tmp_path):
    ct = make_chest_ct(**SMALL, seed=3, num_nodules=1)
    path = write_image(tmp_path / "c.mhd", ct.image, ct.affine)
    loaded = LoadImage(reader="ITKReader", image_only=True)(str(path))
    assert np.allclose(np.asarray(loaded.affine), ct.affine, atol=1e-4)
    assert np.array_equal(np.asarray(loaded).astype(np.int16), ct.image)


def test_cli_writes_each_kind_and_reports_bad_arguments(tmp_path, capsys):
    paths = run_synth("brain-mri", str(tmp_path / "brain"), num_cases=1, seed=0, shape="32,32,32", format="mhd")
    assert sorted(p.name for p in paths if p.suffix == ".mhd") == [
        "brain_000.mhd", "brain_000_flair.mhd", "brain_000_t1.mhd", "brain_000_t1ce.mhd", "brain_000_t2.mhd"
    ]
    message = synth("abdomen-ct", str(tmp_path / "abd"), num_cases=1, shape=(32, 32, 32), spacing=(2, 2, 3))
    assert "wrote 2 volume files" in message
    bad = [
        (dict(kind="lungs"), "unknown KIND"),
        (dict(shape="64,64"), "--shape"),
        (dict(shape="64,64,4.5"), "--shape"),
        (dict(spacing="1,1,zero"), "--spacing"),
        (dict(num_cases=0), "--num_cases"),
        (dict(seed=-3), "--seed"),
        (dict(format="png"), "format"),
    ]
    for change, text in bad:
        arguments = {"kind": "chest-ct", "output_dir": str(tmp_path / "x"), **change}
        with pytest.raises(ValueError, match=text):
            run_synth(**arguments)
        with pytest.raises(SystemExit, match="genesis synth: error: .*" + text):
            synth(**arguments)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit, match="not a directory"):
        synth("chest-ct", str(blocker), num_cases=1, shape="32,32,32")


def test_writer_bad_inputs_are_named(tmp_path, oblique_affine):
    volume = np.zeros((4, 4, 4), np.int16)
    with pytest.raises(ValueError, match="unknown image format"):
        write_image(tmp_path / "a.png", volume, oblique_affine)
    with pytest.raises(ValueError, match="must end in .mhd"):
        write_metaimage(tmp_path / "a.nii.gz", volume, oblique_affine)
    with pytest.raises(ValueError, match="must end in .nii"):
        write_nifti(tmp_path / "a.mhd", volume, oblique_affine)
    with pytest.raises(ValueError, match="3D"):
        write_nifti(tmp_path / "a.nii.gz", np.zeros((4, 4)), oblique_affine)
    with pytest.raises(ValueError, match="int64"):
        write_metaimage(tmp_path / "a.mhd", volume.astype(np.int64), oblique_affine)
    with pytest.raises(ValueError, match="4x4"):
        write_nifti(tmp_path / "a.nii.gz", volume, np.eye(3))
    assert check_formats("both") == ("nii.gz", "mhd") and check_formats(".mhd") == ("mhd",)
    with pytest.raises(ValueError, match="format"):
        check_formats(["nii.gz", "dcm"])
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the output folder should go")
    with pytest.raises(NotADirectoryError, match="taken.*not a directory"):
        write_chest_ct_dataset(blocker, num_cases=1)


def test_the_project_reader_finds_the_nodules_from_candidates_csv(dataset):
    # the reading side (data/io.py) with LUNA16's convention: candidates are LPS world mm
    from monai_genesis.data.io import load_volume, world_to_voxel as io_world_to_voxel

    out, _ = dataset
    with open(out / "candidates.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["class"] == "1"]
    for case in json.loads((out / "dataset.json").read_text())["cases"]:
        label = load_volume(out / case["labels"]["mhd"], dtype=None)
        for row in (r for r in rows if r["seriesuid"] == case["id"]):
            world = [float(row["coordX"]), float(row["coordY"]), float(row["coordZ"])]
            voxel = np.rint(io_world_to_voxel(world, label, space="LPS")).astype(int)
            assert int(np.asarray(label)[tuple(voxel)]) > 0
