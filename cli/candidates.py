"""`genesis prepare-candidates`: CT volumes read and windowed once for the classification bundles (NCC, ECC)."""

from __future__ import annotations


def prepare_candidates_command(
    images_dir,
    output_dir,
    candidates=None,
    num_folds: int = 1,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    luna16_subsets=None,
    progress: bool = True,
):
    """Prepare volumes for candidate classification: float16 [0, 1] memory-mappable copies and split.json.

    Args:
        images_dir: folder of volumes named <seriesuid>.mhd / .nii.gz (recursive), e.g. the LUNA16 root
            with subset0..subset9 (subsets 0-4 training, 5-6 validation, 7-9 test).
        output_dir: where volumes/, split.json and summary.json go. Re-running resumes.
        candidates: optional candidates CSV checked against the volumes (counts in summary.json).
        num_folds: without LUNA16 subsets: 3 for ECC's cross-validation by patient; 1 (default) draws
            one training / validation / test split.
        val_fraction: validation share (of the non-test series with num_folds > 1); default 0.2.
        test_fraction: test share of a single drawn split; default 0.2.
        seed: seed of a drawn split (default 0).
        luna16_subsets: unset detects LUNA16 subset folders; True requires them; False ignores them.
        progress: show a progress bar (default True).
    """
    from monai_genesis.data.candidate_volumes import prepare_candidate_volumes

    summary = prepare_candidate_volumes(
        images_dir, output_dir, candidates=candidates, num_folds=num_folds, val_fraction=val_fraction,
        test_fraction=test_fraction, seed=seed, luna16_subsets=luna16_subsets, progress=progress,
    )
    print(
        f"{summary['volumes'] - len(summary['skipped'])}/{summary['volumes']} volumes prepared "
        f"({summary['prepared_now']} now, {summary['reused']} reused); split: {summary['split']}, "
        f"{summary['num_folds']} fold(s)."
    )
    for item in summary["skipped"]:
        print(f"skipped {item['seriesuid']}: {item['reason']}")
    report = summary.get("candidates")
    if report:
        print(
            f"candidates: {report['kept']}/{report['candidates']} located ({report['missing_series']} with no volume, "
            f"{report['outside_volume']} outside their volume)."
        )
    print(f"summary: {output_dir}/summary.json; split: {output_dir}/split.json")
