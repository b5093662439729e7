"""`genesis prepare-cubes` and `genesis datalist`: data preparation from the command line."""

from __future__ import annotations


def _triple(value, name: str) -> str | tuple:
    # fire turns "100,100,30" into a tuple already; a single number is a user error worth naming.
    if isinstance(value, (int, float)):
        raise ValueError(f"--{name}: expected three comma-separated integers such as 100,100,30, got {value!r}.")
    return value


def prepare_cubes_command(
    input,  # noqa: A002 (the CLI argument reads best as INPUT)
    output_dir,
    scale: int = 32,
    workers: int = 1,
    margins="100,100,30",
    cube_size="64,64,32",
    seed: int = 0,
    split=None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.1,
    luna16_subsets=None,
    progress: bool = True,
    allow_empty_validation: bool = False,
):
    """Extract Models Genesis pretraining cubes (docs/method.md §3.1) into float16 shards + datalist.json.

    Args:
        input: folder of CT volumes (.nii/.nii.gz/.mhd/.mha/.nrrd, recursive; LUNA16 subset0..9 folders
            give subsets 0-4 training, 5-6 validation, 7-9 test) or an MSD-style datalist JSON.
        output_dir: where cubes/, split.json, datalist.json and summary.json go. Re-running resumes.
        scale: the most cubes per volume (default 32).
        workers: parallel processes, one volume each (default 1).
        margins: border margins x,y,z in voxels (default 100,100,30); lower them for small volumes.
        cube_size: cube size H,W,D (default 64,64,32).
        seed: random seed of crops and of a drawn split (default 0).
        split: optional split JSON ({case_id: section} or {section: [case_ids]}).
        val_fraction: validation share when the split is drawn (default 0.2).
        test_fraction: test share when the split is drawn (default 0.1).
        luna16_subsets: unset detects LUNA16 subset folders; True requires them; False ignores them.
        progress: show a progress bar (default True).
        allow_empty_validation: keep a run that gave no validation cubes (a warning; refused by default).

    Volumes are read in the canonical orientation (axial axis last); each skipped volume is reported
    on stderr; a run without training cubes (or, by default, without validation cubes) fails.
    Ctrl-C keeps the finished shards: the same command resumes.
    """
    from monai_genesis.cli.main import Interrupted
    from monai_genesis.data.prepare_cubes import prepare_cubes

    try:
        summary = prepare_cubes(
            input,
            output_dir,
            scale=scale,
            cube_size=_triple(cube_size, "cube_size"),
            margins=_triple(margins, "margins"),
            workers=workers,
            seed=seed,
            split=split,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            luna16_subsets=luna16_subsets,
            progress=progress,
            allow_empty_validation=allow_empty_validation,
        )
    except KeyboardInterrupt:
        raise Interrupted(
            f"the finished volumes' shards are kept in {output_dir}/cubes; run the same command again to resume."
        ) from None
    cubes = summary["cubes"]
    print(
        f"{summary['volumes_with_cubes']}/{summary['volumes']} volumes gave cubes "
        f"({summary['processed_now']} processed now, {summary['reused']} reused): "
        f"{cubes['training']} training, {cubes['validation']} validation, {cubes['test']} test cubes."
    )
    print(f"datalist: {output_dir}/datalist.json; summary: {output_dir}/summary.json")


def datalist_command(
    images_dir,
    output_json,
    labels_dir=None,
    num_folds: int = 5,
    seed: int = 0,
    val_fold=0,
    test_dir=None,
    luna16_subsets=None,
):
    """Write an MSD-style datalist JSON with deterministic folds (or LUNA16 subsets) for the bundles.

    Args:
        images_dir: folder of volumes (recursive), or the LUNA16 root with subset0..subset9.
        output_json: the JSON file to write; its paths are relative to its folder.
        labels_dir: folder of labels named like their images (adds "label").
        num_folds: cross-validation folds (default 5).
        seed: seed of the fold assignment (default 0).
        val_fold: the fold listed under "validation" (default 0); None keeps all in "training".
        test_dir: optional folder of unlabelled test volumes ("test").
        luna16_subsets: unset detects LUNA16 subset folders; True requires them; False ignores them.
    """
    from monai_genesis.data.datalist import make_datalist

    datalist = make_datalist(
        images_dir,
        output_json,
        labels_dir=labels_dir,
        num_folds=num_folds,
        seed=seed,
        val_fold=val_fold,
        test_dir=test_dir,
        luna16_subsets=luna16_subsets,
    )
    print(
        f"{output_json}: {datalist['numTraining']} training, {datalist['numValidation']} validation, "
        f"{datalist['numTest']} test items ({datalist['split']['kind']})."
    )
