"""`genesis segmentation-datalist`: a Decathlon-style datalist for the segmentation bundles from a real layout."""

from __future__ import annotations

import os

LAYOUTS = ("lits", "decathlon-liver", "pairs")


def segmentation_datalist_command(layout: str, source: str, output_json: str | None = None, labels_dir: str | None = None,
                                  val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0) -> None:
    """Write the datalist JSON (paths relative to its folder) that a segmentation bundle reads as `datalist`.

    Args:
        layout: "lits" (volume-N.nii / segmentation-N.nii anywhere under SOURCE), "decathlon-liver"
            (SOURCE is Task03_Liver with its dataset.json); both split cases 0-99 / 100-114 / 115-129
            as the reference; or "pairs" (SOURCE: a folder of images, --labels_dir: labels of the same
            file names, e.g. LIDC-IDRI scans and their `genesis lidc-mask` masks), split by fractions.
        source: the dataset folder (for "pairs", the images folder).
        output_json: the file to write; default SOURCE/datalist.json ("pairs": next to the images folder).
        labels_dir: "pairs" only: the labels folder.
        val_fraction: "pairs" only: fraction of cases for validation (default 0.15).
        test_fraction: "pairs" only: fraction of cases for test (default 0.15).
        seed: "pairs" only: seed of the split (default 0).
    """
    from monai_genesis.data.segmentation import decathlon_liver_datalist, lits_datalist, paired_datalist

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
    source = os.fspath(source)
    if layout == "pairs":
        if labels_dir is None:
            raise ValueError("layout 'pairs' needs --labels_dir (the label volumes, named like the images).")
        output_json = output_json or os.path.join(os.path.dirname(os.path.abspath(source)), "datalist.json")
        datalist = paired_datalist(source, labels_dir, output_json, val_fraction, test_fraction, seed)
    else:
        output_json = output_json or os.path.join(source, "datalist.json")
        writer = lits_datalist if layout == "lits" else decathlon_liver_datalist
        datalist = writer(source, output_json)
    unused = datalist["split"].get("unused") or []
    print(f"{output_json}: {datalist['numTraining']} training, {datalist['numValidation']} validation, "
          f"{datalist['numTest']} test cases" + (f"; not in the reference split: {', '.join(unused)}" if unused else "") + ".")
