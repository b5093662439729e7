"""FROC analysis: the LUNA16 score (CPM) and the candidate-level FROC of ECC (docs/method.md §5.2).

``luna16_froc`` scores a LUNA16 submission the way the challenge's own evaluation script does;
``candidate_froc`` is the same curve for candidates that already carry a label (pulmonary embolism
false-positive reduction); ``evaluate_luna16`` reads the challenge's four CSV files and writes
``froc.json`` and ``froc.png``.

The rules of ``luna16_froc``, each as the official script applies it:

* Hit: a candidate hits a finding when its squared distance to the finding's centre (world mm) is
  strictly less than (diameter_mm / 2) ** 2. A finding with a negative diameter (annotations_excluded.csv
  writes -1 for findings without a size) gets a 10 mm diameter, i.e. a 5 mm radius.
* One hit per nodule: a nodule hit by several candidates enters the curve once, at the highest
  probability; the other candidates on it are neither true nor false positives (``num_double_hits``).
* A candidate inside two nodules counts as the hit of both.
* Excluded findings: a candidate on an excluded finding and on no nodule is ignored (neither true nor
  false positive). A candidate on a nodule stays that nodule's hit even if it also lies on an excluded
  finding.
* Missed nodules count in the denominator of the sensitivity: the curve's sensitivity is
  (nodules hit above the threshold) / (all nodules of the listed scans).
* False positives per scan: false-positive candidates above the threshold divided by the number of
  scans in ``seriesuids``, scans without nodules and scans without candidates included.
* At most ``max_marks_per_scan`` (100, the official setting) candidates per scan: where a scan has
  more, only those with a probability strictly greater than its 101st highest are kept (so ties at
  that value may leave fewer than 100).
* The curve has one point per distinct probability (ties enter together), starting at (0, 0). The
  sensitivity at each of 1/8, 1/4, 1/2, 1, 2, 4 and 8 false positives per scan is ``np.interp`` on it:
  at a rate where the curve rises vertically the highest sensitivity there; beyond the curve's last
  false-positive rate its last sensitivity. The CPM is the mean of the seven. Some copies of the
  official script read the seven values off a 10,001-point grid instead, up to 0.0008 FP/scan below
  the nominal rate (which differs only where the curve steps up exactly at a nominal rate, as in
  tiny evaluations); we interpolate at the nominal rates.
* Annotations of scans not in ``seriesuids`` are ignored (evaluating one subset with the full
  annotations.csv is the normal use). Probabilities may be any finite number: only their order counts.

Where the official script prints a warning or yields NaN we raise ``ValueError`` instead: a submission
naming a scan that is not in ``seriesuids`` (the official script drops those candidates silently;
``unknown_series="skip"`` drops them and reports ``num_skipped_unknown_series``), an empty submission,
no nodule in the listed scans (the sensitivity is undefined), duplicate scans, non-finite numbers.
Where no nodule is hit at all the official curve is NaN (the ROC of one class); ours is 0, the true
sensitivity.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from monai_genesis.data.atomic_write import write_atomic, write_json_atomic
from monai_genesis.data.luna16_csv import ANNOTATION_COLUMNS, SUBMISSION_COLUMNS, read_luna16_rows, read_seriesuids

__all__ = [
    "FP_RATES",
    "MAX_MARKS_PER_SCAN",
    "UNKNOWN_DIAMETER_MM",
    "ANNOTATION_COLUMNS",
    "SUBMISSION_COLUMNS",
    "froc_curve",
    "sensitivities_at",
    "luna16_froc",
    "candidate_froc",
    "read_luna16_csv",
    "read_seriesuids",
    "plot_froc",
    "evaluate_luna16",
]

FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # false positives per scan averaged into the CPM
MAX_MARKS_PER_SCAN = 100  # the official evaluation keeps at most this many candidates per scan
UNKNOWN_DIAMETER_MM = 10.0  # stands for a negative (unknown) diameter, as in the official script


def _rate_key(rate: float) -> str:
    """0.125 -> "0.125", 1.0 -> "1": the keys of the ``sensitivities`` dict."""
    return f"{rate:g}"


def froc_curve(hit_probs, fp_probs, num_targets: int, num_divisor: int):
    """
    The FROC curve: one point per distinct probability threshold, highest first, from (0, 0).

    MONAI's ``compute_froc_curve_data`` (from the CAMELYON16 evaluation) leaves out the lowest
    threshold, which LUNA16's curve keeps; hence this short numpy version.

    Args:
        hit_probs: one probability per detected target (its highest-scoring hit).
        fp_probs: the probability of every false-positive candidate.
        num_targets: all targets, detected or not (the sensitivity's denominator).
        num_divisor: what the false-positive count is divided by (scans, cases).

    Returns:
        (fps, sensitivity, thresholds) as float64 arrays; thresholds[0] is +inf.
    """
    hit_probs = np.asarray(hit_probs, np.float64).ravel()
    fp_probs = np.asarray(fp_probs, np.float64).ravel()
    scores = np.concatenate([hit_probs, fp_probs])
    is_hit = np.concatenate([np.ones(hit_probs.size), np.zeros(fp_probs.size)])
    order = np.argsort(-scores, kind="stable")
    scores, is_hit = scores[order], is_hit[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores) != 0), scores.size - 1] if scores.size else np.zeros(0, int)
    hits = np.r_[0.0, np.cumsum(is_hit)[last_of_tie]]
    fps = np.r_[0.0, np.cumsum(1.0 - is_hit)[last_of_tie]]
    return fps / num_divisor, hits / num_targets, np.r_[np.inf, scores[last_of_tie]]


def sensitivities_at(fps, sensitivity, fp_rates: Sequence[float] = FP_RATES) -> np.ndarray:
    """Sensitivity at each rate by linear interpolation on the curve (``np.interp``: last value beyond it)."""
    return np.interp(np.asarray(fp_rates, np.float64), fps, sensitivity)


def _summary(fps, sensitivity, thresholds, fp_rates) -> dict:
    values = sensitivities_at(fps, sensitivity, fp_rates)
    return {
        "sensitivities": {_rate_key(r): float(s) for r, s in zip(fp_rates, values)},
        "fp_rates": [float(r) for r in fp_rates],
        "sensitivity_curve": sensitivity.tolist(),
        "thresholds": [None, *thresholds[1:].tolist()],  # None: the origin, above every score (JSON-safe)
        "mean": float(values.mean()),
    }


def _check_fp_rates(fp_rates) -> tuple:
    rates = tuple(float(r) for r in fp_rates)
    if not rates or not all(math.isfinite(r) and r > 0 for r in rates):
        raise ValueError(f"fp_rates must be positive numbers, got {fp_rates!r}")
    return rates


def _number(row: Mapping, column: str, where: str) -> float:
    """``row[column]`` as a finite float; the error names ``where`` (a file and line, or a row)."""
    if column not in row or row[column] is None:
        raise ValueError(f"{where}: missing column '{column}'")
    value = row[column]
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: column '{column}' holds {value!r}, not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: column '{column}' holds {value!r}; it must be finite")
    return number


class _ParsedRows(NamedTuple):
    """Rows already checked by the CSV reader: series ids and the float array of the numeric columns."""

    uids: list
    values: np.ndarray


def _table(rows: Iterable[Mapping], columns: Sequence[str], name: str) -> tuple[list[str], np.ndarray]:
    """Series ids and an (n, len(columns) - 1) float array of the numeric columns; errors name the row."""
    if isinstance(rows, _ParsedRows):
        return rows
    rows = rows if isinstance(rows, list) else list(rows)
    numeric = columns[1:]
    try:  # fast path: numpy converts every value at once; any doubt goes to the row-by-row check below
        uids = [row["seriesuid"].strip() for row in rows]
        block = np.array([[row[c] for c in numeric] for row in rows], dtype=np.float64).reshape(len(rows), len(numeric))
        if all(uids) and np.isfinite(block).all():
            return uids, block
    except (AttributeError, KeyError, TypeError, ValueError):
        pass
    uids, numbers = [], []
    for index, row in enumerate(rows):
        where = f"{name} row {index + 1}"
        if not isinstance(row, Mapping):
            raise ValueError(f"{where}: expected a dict with the columns {', '.join(columns)}, got {type(row).__name__}")
        uid = row.get("seriesuid")
        if uid is None or not str(uid).strip():
            raise ValueError(f"{where}: missing column 'seriesuid'")
        uids.append(str(uid).strip())
        numbers.append([_number(row, c, where) for c in numeric])
    return uids, np.asarray(numbers, np.float64).reshape(len(uids), len(numeric))


def _series_codes(uids: Sequence[str], scan_index: Mapping[str, int]) -> np.ndarray:
    """The index in ``seriesuids`` of each row's series, -1 for a series not listed."""
    return np.fromiter((scan_index.get(uid, -1) for uid in uids), np.int64, len(uids))


def _rows_by_series(codes: np.ndarray, num_scans: int):
    """(scan index, indices of its rows) for every scan with rows: one sort, not one pass per scan."""
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=num_scans)
    for code, indices in enumerate(np.split(order, np.cumsum(counts)[:-1])):
        if indices.size:
            yield code, indices


def _findings_by_scan(rows, name: str, scan_index: Mapping[str, int]) -> dict:
    """{scan index: (centres (m, 3), squared radii (m,))} for the listed scans; negative diameter -> 10 mm."""
    uids, table = _table(rows, ANNOTATION_COLUMNS, name)
    codes = _series_codes(uids, scan_index)
    listed = codes >= 0
    codes, table = codes[listed], table[listed]
    diameters = np.where(table[:, 3] < 0, UNKNOWN_DIAMETER_MM, table[:, 3])
    return {code: (table[i, :3], (diameters[i] / 2.0) ** 2) for code, i in _rows_by_series(codes, len(scan_index))}


def _check_seriesuids(seriesuids) -> list[str]:
    if isinstance(seriesuids, str):
        raise ValueError("seriesuids must be a list of series ids, not one string")
    scans = [str(s).strip() for s in seriesuids]
    if not scans or not all(scans):
        raise ValueError("seriesuids is empty or holds an empty id")
    if len(set(scans)) != len(scans):
        duplicates = sorted({s for s in scans if scans.count(s) > 1})
        raise ValueError(f"seriesuids lists {len(duplicates)} series more than once, e.g. {duplicates[0]}")
    return scans


def luna16_froc(
    annotations: Iterable[Mapping],
    excluded: Iterable[Mapping],
    seriesuids: Sequence[str],
    submission: Iterable[Mapping],
    *,
    max_marks_per_scan: int | None = MAX_MARKS_PER_SCAN,
    unknown_series: str = "error",
    fp_rates: Sequence[float] = FP_RATES,
) -> dict:
    """
    The LUNA16 FROC and CPM of a submission (the rules are in this module's docstring).

    Args:
        annotations: nodules, dicts with seriesuid, coordX, coordY, coordZ (world mm), diameter_mm.
        excluded: findings to ignore (annotations_excluded.csv), the same columns; None for none.
        seriesuids: the evaluated scans; the false-positive rate is divided by their number.
        submission: candidates, dicts with seriesuid, coordX, coordY, coordZ, probability.
        max_marks_per_scan: candidates kept per scan (the official 100); None or 0 keeps all.
        unknown_series: "error" (default) raises on candidates of scans not in ``seriesuids``;
            "skip" drops them and reports their count in ``num_skipped_unknown_series``.
        fp_rates: the false-positive rates averaged into the CPM.

    Returns:
        ``cpm``; ``sensitivities`` ({"0.125": s, ..., "8": s}); ``fp_rates``; the curve as
        ``fps_per_scan``, ``sensitivity_curve`` and ``thresholds``; ``num_nodules``, ``num_detected``
        (nodules hit by any kept candidate), ``num_scans``, ``num_candidates`` (evaluated, after the
        per-scan cap), ``num_false_positives``, ``num_ignored_excluded``, ``num_double_hits``,
        ``num_dropped_by_cap``, ``num_skipped_unknown_series``, ``max_marks_per_scan``.

    Raises:
        ValueError: a missing column, a non-finite number, an empty submission, candidates of unknown
            scans (with ``unknown_series="error"``), no nodule in the listed scans, duplicate scans.
    """
    if unknown_series not in ("error", "skip"):
        raise ValueError(f"unknown_series must be 'error' or 'skip', got {unknown_series!r}")
    if max_marks_per_scan is not None and (isinstance(max_marks_per_scan, bool) or int(max_marks_per_scan) < 0):
        raise ValueError(f"max_marks_per_scan must be a non-negative integer or None, got {max_marks_per_scan!r}")
    cap = int(max_marks_per_scan) if max_marks_per_scan else 0
    fp_rates = _check_fp_rates(fp_rates)
    scans = _check_seriesuids(seriesuids)
    scan_index = {uid: i for i, uid in enumerate(scans)}
    nodules = _findings_by_scan(annotations, "annotations", scan_index)
    irrelevant = _findings_by_scan([] if excluded is None else excluded, "excluded", scan_index)
    num_nodules = sum(len(r) for _, r in nodules.values())
    if num_nodules == 0:
        raise ValueError(f"the annotations hold no nodule in the {len(scans)} listed scans: the sensitivity is undefined")

    uids, candidates = _table(submission, SUBMISSION_COLUMNS, "submission")
    if not uids:
        raise ValueError("the submission holds no candidates")
    codes = _series_codes(uids, scan_index)
    known = codes >= 0
    num_unknown = int((~known).sum())
    if num_unknown and unknown_series == "error":
        unknown = [uid for uid, code in zip(uids, codes) if code < 0]
        raise ValueError(
            f"the submission holds {num_unknown} candidates of {len(set(unknown))} series not in seriesuids, "
            f"e.g. {unknown[0]}; list those scans or drop their candidates (unknown_series='skip')"
        )
    if num_unknown == len(uids):
        raise ValueError("none of the submission's candidates belongs to a series in seriesuids")

    hit_probs, fp_probs = [], []
    counts = dict.fromkeys(("num_candidates", "num_ignored_excluded", "num_double_hits", "num_dropped_by_cap"), 0)
    candidates = candidates[known]
    for code, indices in _rows_by_series(codes[known], len(scans)):
        rows = candidates[indices]
        if cap and len(rows) > cap:
            threshold = np.sort(rows[:, 3])[::-1][cap]
            kept = rows[rows[:, 3] > threshold]
            counts["num_dropped_by_cap"] += len(rows) - len(kept)
            rows = kept
        counts["num_candidates"] += len(rows)
        centres, probs = rows[:, :3], rows[:, 3]
        on_nodule = np.zeros(len(rows), bool)
        if code in nodules:
            nodule_centres, radii2 = nodules[code]
            hits = ((nodule_centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1) < radii2[:, None]
            on_nodule = hits.any(0)
            for nodule_hits in hits:
                if nodule_hits.any():
                    hit_probs.append(probs[nodule_hits].max())
            counts["num_double_hits"] += int(hits.sum() - hits.any(1).sum())
        on_excluded = np.zeros(len(rows), bool)
        if code in irrelevant:
            excluded_centres, radii2 = irrelevant[code]
            on_excluded = (((excluded_centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1) < radii2[:, None]).any(0)
        ignored = on_excluded & ~on_nodule
        counts["num_ignored_excluded"] += int(ignored.sum())
        fp_probs.extend(probs[~on_nodule & ~ignored].tolist())

    fps, sensitivity, thresholds = froc_curve(hit_probs, fp_probs, num_nodules, len(scans))
    summary = _summary(fps, sensitivity, thresholds, fp_rates)
    return {
        "cpm": summary.pop("mean"),
        **summary,
        "fps_per_scan": fps.tolist(),
        "num_nodules": num_nodules,
        "num_detected": len(hit_probs),
        "num_scans": len(scans),
        **counts,
        "num_false_positives": len(fp_probs),
        "num_skipped_unknown_series": num_unknown,
        "max_marks_per_scan": cap or None,
    }


def candidate_froc(
    probabilities, labels, case_ids, num_cases: int | None = None, fp_rates: Sequence[float] = FP_RATES
) -> dict:
    """
    The candidate-level FROC (ECC): sensitivity over the positive candidates against false positives per case.

    Every positive candidate is one target (no matching: the candidates are already labelled).

    Args:
        probabilities: one finite score per candidate.
        labels: 1 for a true candidate, 0 for a false one.
        case_ids: the case (patient or volume) of each candidate.
        num_cases: what the false-positive count is divided by; default the number of distinct
            ``case_ids`` (give it when some cases have no candidates).
        fp_rates: false positives per case at which the sensitivity is read.

    Returns:
        ``mean_sensitivity`` (the mean over ``fp_rates``), ``sensitivities`` ({"0.125": s, ...}),
        ``fp_rates``, the curve as ``fps_per_case``, ``sensitivity_curve`` and ``thresholds``,
        ``num_positives``, ``num_negatives``, ``num_cases``.
    """
    probs = np.asarray(probabilities, np.float64).ravel()
    labels = np.asarray(labels).ravel()
    cases = np.asarray(case_ids).ravel()
    if not (probs.size == labels.size == cases.size):
        raise ValueError(f"probabilities, labels and case_ids differ in length: {probs.size}, {labels.size}, {cases.size}")
    if probs.size == 0:
        raise ValueError("no candidates to evaluate")
    if not np.isfinite(probs).all():
        raise ValueError(f"{int((~np.isfinite(probs)).sum())} probabilities are not finite")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1, got {sorted(set(labels.tolist()) - {0, 1})[:3]}")
    labels = labels.astype(bool)
    num_positives = int(labels.sum())
    if num_positives == 0:
        raise ValueError("no positive candidate: the sensitivity is undefined")
    distinct = len(np.unique(cases))
    if num_cases is None:
        num_cases = distinct
    elif isinstance(num_cases, bool) or int(num_cases) != num_cases or num_cases < distinct:
        raise ValueError(f"num_cases must be an integer of at least the {distinct} distinct case_ids, got {num_cases!r}")
    fps, sensitivity, thresholds = froc_curve(probs[labels], probs[~labels], num_positives, int(num_cases))
    summary = _summary(fps, sensitivity, thresholds, _check_fp_rates(fp_rates))
    return {
        "mean_sensitivity": summary.pop("mean"),
        **summary,
        "fps_per_case": fps.tolist(),
        "num_positives": num_positives,
        "num_negatives": int(probs.size - num_positives),
        "num_cases": int(num_cases),
    }


def read_luna16_csv(path, columns: Sequence[str]) -> list[dict]:
    """
    Rows of a LUNA16 CSV (comma-separated, header first) as dicts of the given columns, numbers as floats.

    Raises:
        FileNotFoundError: no such file.
        ValueError: no header, a missing column (named), or a value that is not a finite number (file and line).
    """
    uids, values = _read_csv_table(path, columns)
    return [dict(zip(columns, (uid, *numbers))) for uid, numbers in zip(uids, values.tolist())]


def _read_csv_table(path, columns: Sequence[str]) -> _ParsedRows:
    """``read_luna16_csv`` without building one dict per row (LUNA16 submissions hold ~750,000)."""
    rows = read_luna16_rows(path, columns, kind="submission" if "probability" in columns else "annotations file")
    return _ParsedRows(rows.uids, rows.values)


def plot_froc(result: dict, path, title: str = "LUNA16 FROC") -> None:
    """Write the FROC curve (log2 false-positive axis, 1/8 to 8) with the seven points and the CPM as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fps = np.asarray(result["fps_per_scan"])
    sensitivity = np.asarray(result["sensitivity_curve"])
    rates = np.asarray(result["fp_rates"])
    lo, hi = min(rates.min(), 0.125), max(rates.max(), 8.0)
    grid = np.geomspace(lo / 1.2, hi * 1.2, 600)
    figure = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(grid, np.interp(grid, fps, sensitivity), lw=2, label="FROC")
    axes.plot(rates, sensitivities_at(fps, sensitivity, rates), "o", label="CPM points")
    axes.set_xscale("log", base=2)
    axes.set_xlim(lo / 1.2, hi * 1.2)
    axes.set_ylim(0, 1.02)
    axes.set_xticks(rates, [_rate_key(r) for r in rates])
    axes.set_xlabel("average false positives per scan")
    axes.set_ylabel("sensitivity")
    axes.set_title(f"{title}: CPM {result['cpm']:.3f} ({result['num_nodules']} nodules, {result['num_scans']} scans)")
    axes.grid(True, which="both", alpha=0.4)
    axes.legend(loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_atomic(path, lambda stream: stream.write(buffer.getvalue()))


def evaluate_luna16(annotations_csv, excluded_csv, seriesuids_csv, submission_csv, output_dir, **options) -> dict:
    """
    Score a LUNA16 submission from the challenge's files; write ``output_dir/froc.json`` and ``froc.png`` atomically.

    Args:
        annotations_csv: annotations.csv (seriesuid, coordX, coordY, coordZ, diameter_mm).
        excluded_csv: annotations_excluded.csv (the same columns).
        seriesuids_csv: seriesuids.csv, one series id a line, with or without a ``seriesuid`` header.
        submission_csv: seriesuid, coordX, coordY, coordZ, probability (other columns are ignored).
        output_dir: where froc.json and froc.png go (created if missing).
        options: passed to ``luna16_froc`` (max_marks_per_scan, unknown_series, fp_rates).

    Returns:
        ``luna16_froc``'s dict.
    """
    annotations = _read_csv_table(annotations_csv, ANNOTATION_COLUMNS)
    excluded = _read_csv_table(excluded_csv, ANNOTATION_COLUMNS)
    seriesuids = read_seriesuids(seriesuids_csv)
    submission = _read_csv_table(submission_csv, SUBMISSION_COLUMNS)
    if not submission.uids:
        raise ValueError(f"{os.fspath(submission_csv)}: the submission holds no candidates")
    try:
        result = luna16_froc(annotations, excluded, seriesuids, submission, **options)
    except ValueError as error:  # name the files the message is about
        raise ValueError(f"{os.fspath(submission_csv)} scored on {os.fspath(seriesuids_csv)}: {error}") from None
    report = {k: v for k, v in result.items() if k not in ("fps_per_scan", "sensitivity_curve", "thresholds")}
    report["files"] = {
        "annotations": os.fspath(annotations_csv),
        "excluded": os.fspath(excluded_csv),
        "seriesuids": os.fspath(seriesuids_csv),
        "submission": os.fspath(submission_csv),
    }
    write_json_atomic(report, os.path.join(os.fspath(output_dir), "froc.json"))
    plot_froc(result, os.path.join(os.fspath(output_dir), "froc.png"))
    return result
