"""`genesis brain-datalist`: the BMS datalist from a Decathlon Task01_BrainTumour or BraTS folder."""

from __future__ import annotations


def brain_datalist_command(
    dataset_dir,
    output_json=None,
    folds=None,
    seed: int = 4,
    val_fraction: float = 0.125,
    patch_size="64,64,32",
    overwrite: bool = False,
    progress: bool = True,
):
    """Check every case and write the datalist with the BMS split of docs/method.md §5.1.

    Args:
        dataset_dir: the Task01_BrainTumour folder (dataset.json, imagesTr, labelsTr) or a folder of
            BraTS 2018+ patient folders (<id>_flair/_t1/_t1ce/_t2/_seg.nii.gz).
        output_json: where the datalist goes (default <dataset_dir>/datalist.json; paths relative to dataset_dir).
        folds: CSV (case,fold) or JSON ({case: fold}) with BraTS folds 1-3; unset: three folds drawn with the seed.
        seed: split seed (default 4, the reference's).
        val_fraction: validation share of folds 1+2 (default 1/8, the reference's).
        patch_size: the training patch x,y,z (default 64,64,32); a smaller volume is an error.
        overwrite: replace an existing datalist with another split.
        progress: show a progress bar.
    """
    from monai_genesis.data.brain import make_brain_datalist

    if isinstance(patch_size, (int, float)):
        raise ValueError(f"--patch_size: expected three comma-separated integers such as 64,64,32, got {patch_size!r}.")
    if isinstance(patch_size, str):
        patch_size = tuple(int(s) for s in patch_size.split(","))
    datalist = make_brain_datalist(dataset_dir, output_json, folds=folds, seed=seed, val_fraction=val_fraction,
                                   patch_size=patch_size, overwrite=overwrite, progress=progress)
    counts = ", ".join(f"{len(datalist[s])} {s}" for s in ("training", "validation", "test", "unlabelled"))
    print(f"{datalist['layout']}: {counts}; split: {datalist['split']['folds']}")
