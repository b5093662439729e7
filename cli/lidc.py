"""`genesis lidc-mask`: an LIDC-IDRI series and its readers' XML -> a consensus nodule mask (NIfTI)."""

from __future__ import annotations

from monai_genesis.data.lidc import MATCH_DISTANCE_MM, write_lidc_mask

__all__ = ["lidc_mask"]


def lidc_mask(
    series_dir,
    output,
    xml=None,
    image=None,
    overwrite: bool = False,
    match_distance_mm: float = MATCH_DISTANCE_MM,
    include_outline: bool = False,
):
    """Write the consensus nodule mask of an LIDC-IDRI CT series (see monai_genesis.data.lidc).

    A voxel is nodule where at least half of the readers who outlined that nodule include it; the
    mask has the shape and affine of the CT as the bundles read it. Nodules under 3 mm (single
    points, no outline) are listed but not drawn.

    Args:
        series_dir: folder of the series' DICOM files.
        output: the mask to write (.nii.gz or .nii, uint8).
        xml: the readers' XML file (default: the *.xml in series_dir).
        image: optionally also write the CT as NIfTI here.
        overwrite: replace existing output files (default False).
        match_distance_mm: centroids of two readers' outlines closer than this are one nodule (default 3).
        include_outline: count the outline pixels as nodule (default False: readers draw just outside).
    """
    result = write_lidc_mask(series_dir, output, xml, image, overwrite, match_distance_mm, include_outline)
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"{result.xml_path}: {len(result.readers)} readers; series {result.series_uid}")
    for number, nodule in enumerate(result.nodules, start=1):
        readers = ", ".join(f"{r} ({v} voxels)" for r, v in zip(nodule.readers, nodule.reader_voxels))
        small = f"; marked < 3 mm by {', '.join(nodule.small_marks)}" if nodule.small_marks else ""
        print(
            f"nodule {number}: {len(nodule.readers)} readers, {nodule.voxels} consensus voxels, "
            f"centre voxel {nodule.centre_voxel}; outlines: {readers}{small}"
        )
    for nodule in result.small_nodules:
        readers = ", ".join(nodule.readers)
        print(f"nodule < 3 mm (not in the mask): {len(nodule.readers)} readers ({readers}), voxel {nodule.voxel}")
    total = int(result.mask.sum())
    print(f"wrote {output}: {len(result.nodules)} nodules, {total} voxels, shape {tuple(result.mask.shape)}")
    if image is not None:
        print(f"wrote {image}")
