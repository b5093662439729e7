"""`genesis luna16-eval`: the LUNA16 score (CPM) of a submission, from the challenge's CSV files.

Example:
    genesis luna16-eval --annotations annotations.csv --excluded annotations_excluded.csv \\
        --seriesuids seriesuids.csv --submission submission.csv --output_dir froc/
"""

from __future__ import annotations

from monai_genesis.metrics.froc import MAX_MARKS_PER_SCAN, evaluate_luna16

__all__ = ["luna16_eval"]


def luna16_eval(
    annotations: str,
    excluded: str,
    seriesuids: str,
    submission: str,
    output_dir: str,
    max_marks_per_scan: int = MAX_MARKS_PER_SCAN,
    skip_unknown_series: bool = False,
) -> None:
    """Score a LUNA16 submission; write OUTPUT_DIR/froc.json and OUTPUT_DIR/froc.png; print the CPM.

    Args:
        annotations: annotations.csv (seriesuid, coordX, coordY, coordZ, diameter_mm).
        excluded: annotations_excluded.csv (the same columns; candidates on these are ignored).
        seriesuids: seriesuids.csv, the evaluated scans (one id a line, header optional).
        submission: seriesuid, coordX, coordY, coordZ, probability.
        output_dir: folder for froc.json and froc.png.
        max_marks_per_scan: candidates kept per scan, the most probable (official: 100; 0 keeps all).
        skip_unknown_series: drop (and count) candidates of scans not in seriesuids instead of failing.
    """
    if isinstance(max_marks_per_scan, bool) or not isinstance(max_marks_per_scan, int) or max_marks_per_scan < 0:
        raise ValueError(f"--max_marks_per_scan must be a non-negative integer, got {max_marks_per_scan!r}")
    result = evaluate_luna16(
        str(annotations), str(excluded), str(seriesuids), str(submission), str(output_dir),
        max_marks_per_scan=max_marks_per_scan or None,
        unknown_series="skip" if skip_unknown_series else "error",
    )
    print(f"CPM {result['cpm']:.4f}  ({result['num_detected']}/{result['num_nodules']} nodules hit, "
          f"{result['num_scans']} scans, {result['num_candidates']} candidates)")
    for rate, sensitivity in result["sensitivities"].items():
        print(f"  sensitivity at {rate:>5} FP/scan: {sensitivity:.4f}")
    if result["num_skipped_unknown_series"]:
        print(f"  skipped {result['num_skipped_unknown_series']} candidates of series not in {seriesuids}")
    print(f"wrote {output_dir}/froc.json and {output_dir}/froc.png")
