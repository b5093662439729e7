"""LUNA16 CPM and the candidate-level FROC on hand-made cases whose value is worked out in each test."""

import math

import numpy as np
import pytest

from monai_genesis.metrics.froc import FP_RATES, candidate_froc, froc_curve, luna16_froc

RATE_KEYS = ["0.125", "0.25", "0.5", "1", "2", "4", "8"]


def nodule(uid, x, y=0.0, z=0.0, diameter=10.0):
    return {"seriesuid": uid, "coordX": x, "coordY": y, "coordZ": z, "diameter_mm": diameter}


def mark(uid, x, probability, y=0.0, z=0.0):
    return {"seriesuid": uid, "coordX": x, "coordY": y, "coordZ": z, "probability": probability}


def sensitivities(result):
    return [result["sensitivities"][k] for k in RATE_KEYS]


def test_perfect_system_scores_one():
    annotations = [nodule("a", 0), nodule("a", 100), nodule("b", 0, 30, -20)]
    submission = [mark("a", 1, 0.9), mark("a", 99, 0.8, 2), mark("b", 0, 0.95, 31, -21)]
    submission += [mark(uid, 300 + i, 0.1) for i in range(20) for uid in "ab"]  # 20 FPs per scan, all below the hits
    result = luna16_froc(annotations, [], ["a", "b"], submission)
    assert result["cpm"] == 1.0 and sensitivities(result) == [1.0] * 7
    assert result["num_nodules"] == 3 and result["num_detected"] == 3 and result["num_false_positives"] == 40
    assert result["fps_per_scan"][-1] == 20.0 and result["num_scans"] == 2


def test_known_misses():
    # a holds 3 nodules, b one. Hits: a1 at 0.9, a2 at 0.6; a3 has no candidate; b's only candidate
    # (0.95) is 20 mm from its nodule, a false positive. Curve over 2 scans: 0.95 -> (0.5, 0),
    # 0.9 -> (0.5, 1/4), 0.6 -> (0.5, 2/4). Sensitivities: 0, 0 (on (0,0)-(0.5,0)), then 1/2 from 0.5 FP/scan.
    annotations = [nodule("a", 0), nodule("a", 50), nodule("a", 100), nodule("b", 0)]
    submission = [mark("a", 2, 0.9), mark("a", 48, 0.6), mark("b", 20, 0.95)]
    result = luna16_froc(annotations, [], ["a", "b"], submission)
    assert sensitivities(result) == pytest.approx([0, 0, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert result["cpm"] == pytest.approx(2.5 / 7)
    assert result["num_detected"] == 2 and result["num_nodules"] == 4 and result["num_false_positives"] == 1


def test_candidate_on_an_excluded_finding_is_ignored():
    # Excluded finding with diameter -1: the official 10 mm, so a 5 mm radius. The 0.95 candidate 4 mm
    # from it is ignored; the 0.3 candidate 6 mm from it is a false positive. One scan, one nodule hit at 0.9:
    # curve (0,0) (0,1) (1,1) -> CPM 1. Counted as a false positive, the 0.95 mark would make it 4/7.
    annotations = [nodule("a", 0)]
    excluded = [nodule("a", 100, diameter=-1)]
    submission = [mark("a", 0, 0.9), mark("a", 104, 0.95), mark("a", 94, 0.3)]
    result = luna16_froc(annotations, excluded, ["a"], submission)
    assert result["cpm"] == 1.0
    assert result["num_ignored_excluded"] == 1 and result["num_false_positives"] == 1
    without_exclusion = luna16_froc(annotations, [], ["a"], submission)
    assert without_exclusion["cpm"] == pytest.approx(4 / 7)


def test_candidate_on_a_nodule_and_an_excluded_finding_stays_a_hit():
    result = luna16_froc([nodule("a", 0)], [nodule("a", 3, diameter=8)], ["a"], [mark("a", 2, 0.7), mark("a", 60, 0.1)])
    assert result["num_detected"] == 1 and result["num_ignored_excluded"] == 0 and result["cpm"] == 1.0


def test_two_candidates_on_one_nodule_count_once_at_the_highest_probability():
    # One scan. Nodule A hit at 0.9 and 0.8, a false positive at 0.85, nodule B hit at 0.5.
    # Curve: 0.9 -> (0, 1/2), 0.85 -> (1, 1/2), 0.5 -> (1, 1): [1/2, 1/2, 1/2, 1, 1, 1, 1], CPM 5.5/7.
    # (At A's lowest probability it would be 4/7; the 0.8 mark as a false positive would give 5/7.)
    annotations = [nodule("a", 0), nodule("a", 100)]
    submission = [mark("a", 1, 0.9), mark("a", -1, 0.8), mark("a", 50, 0.85), mark("a", 100, 0.5)]
    result = luna16_froc(annotations, [], ["a"], submission)
    assert sensitivities(result) == pytest.approx([0.5, 0.5, 0.5, 1, 1, 1, 1])
    assert result["cpm"] == pytest.approx(5.5 / 7)
    assert result["num_double_hits"] == 1 and result["num_false_positives"] == 1 and result["num_detected"] == 2


def test_one_candidate_inside_two_nodules_hits_both():
    annotations = [nodule("a", 0, diameter=10), nodule("a", 6, diameter=10)]
    result = luna16_froc(annotations, [], ["a"], [mark("a", 3, 0.7)])
    assert result["num_detected"] == 2 and result["cpm"] == 1.0 and result["num_false_positives"] == 0


def test_hit_needs_to_lie_strictly_inside_the_radius():
    inside = luna16_froc([nodule("a", 0, diameter=8)], [], ["a"], [mark("a", 3.999, 0.5)])
    on_the_sphere = luna16_froc([nodule("a", 0, diameter=8)], [], ["a"], [mark("a", 0, 0.5, 4.0)])
    assert inside["num_detected"] == 1 and on_the_sphere["num_detected"] == 0 and on_the_sphere["cpm"] == 0.0


def test_a_scan_without_nodules_contributes_false_positives():
    # Scan b has no nodule and 3 false positives (0.9, 0.8, 0.7); a's nodule is hit at 0.5.
    # Over [a, b]: the hit comes at 3/2 FP/scan -> [0, 0, 0, 0, 1, 1, 1], CPM 3/7.
    # With a third scan c (no nodule, no candidate) it comes at 1 FP/scan -> CPM 4/7.
    submission = [mark("a", 0, 0.5), mark("b", 0, 0.9), mark("b", 40, 0.8), mark("b", 80, 0.7)]
    two = luna16_froc([nodule("a", 0)], [], ["a", "b"], submission)
    assert sensitivities(two) == pytest.approx([0, 0, 0, 0, 1, 1, 1]) and two["cpm"] == pytest.approx(3 / 7)
    three = luna16_froc([nodule("a", 0)], [], ["a", "b", "c"], submission)
    assert three["cpm"] == pytest.approx(4 / 7) and three["num_scans"] == 3


def test_linear_interpolation_between_curve_points_and_last_value_beyond():
    # Two scans. A hit at 0.9; one false positive at 0.8; B hit at 0.5 tied with 8 false positives.
    # Curve: (0, 1/2), (1/2, 1/2), then one step to (9/2, 1) (ties enter together). For r in [1/2, 9/2]
    # the sensitivity is 1/2 + (r - 1/2) / 8: 1 -> 0.5625, 2 -> 0.6875, 4 -> 0.9375; 8 is beyond the
    # curve's end, so its last value 1. CPM = (3 * 0.5 + 0.5625 + 0.6875 + 0.9375 + 1) / 7.
    submission = [mark("a", 0, 0.9), mark("a", 50, 0.8), mark("b", 0, 0.5)]
    submission += [mark("ab"[i % 2], 200 + i, 0.5) for i in range(8)]
    result = luna16_froc([nodule("a", 0), nodule("b", 0)], [], ["a", "b"], submission)
    assert result["fps_per_scan"] == pytest.approx([0, 0, 0.5, 4.5])
    assert result["sensitivity_curve"] == pytest.approx([0, 0.5, 0.5, 1.0])
    assert sensitivities(result) == pytest.approx([0.5, 0.5, 0.5, 0.5625, 0.6875, 0.9375, 1.0])
    assert result["cpm"] == pytest.approx(4.6875 / 7)


def test_at_most_100_marks_per_scan_as_the_official_evaluation():
    # 25 scans; scan a has 100 false positives above its only hit. All kept: the hit arrives at
    # 100/25 = 4 FP/scan, CPM 2/7. With the official cap of 100 the hit is a's 101st mark and dropped: CPM 0.
    submission = [mark("a", 100 + i, 0.1 + 0.001 * i) for i in range(100)] + [mark("a", 0, 0.05)]
    scans = ["a"] + [f"s{i}" for i in range(24)]
    capped = luna16_froc([nodule("a", 0)], [], scans, submission)
    assert capped["cpm"] == 0.0 and capped["num_dropped_by_cap"] == 1 and capped["num_candidates"] == 100
    uncapped = luna16_froc([nodule("a", 0)], [], scans, submission, max_marks_per_scan=None)
    assert uncapped["cpm"] == pytest.approx(2 / 7) and uncapped["num_dropped_by_cap"] == 0
    # Ties at the 101st probability go too: 98 distinct marks and 4 at the same lowest value keep 98.
    tied = [mark("a", 100 + i, 0.5 + 0.001 * i) for i in range(98)] + [mark("a", 0, 0.2)] * 4
    assert luna16_froc([nodule("a", 0)], [], scans, tied)["num_candidates"] == 98


def test_froc_curve_groups_ties_and_starts_at_the_origin():
    fps, sens, thresholds = froc_curve([0.9, 0.4], [0.9, 0.1, 0.1], num_targets=4, num_divisor=2)
    np.testing.assert_allclose(fps, [0, 0.5, 0.5, 1.5])
    np.testing.assert_allclose(sens, [0, 0.25, 0.5, 0.5])
    assert thresholds[0] == math.inf and list(thresholds[1:]) == [0.9, 0.4, 0.1]


def test_candidate_froc_hand_computed():
    # Two cases. Positives at 0.9 and 0.4, negatives at 0.8 and 0.5. Curve: (0, 1/2), (1/2, 1/2), (1, 1/2),
    # (1, 1): [1/2, 1/2, 1/2, 1, 1, 1, 1], mean 5.5/7. Over 4 cases the FP rates halve: (1/2, 1) -> mean 6/7.
    probs, labels, cases = [0.9, 0.8, 0.5, 0.4], [1, 0, 0, 1], ["p1", "p1", "p2", "p2"]
    result = candidate_froc(probs, labels, cases)
    assert [result["sensitivities"][k] for k in RATE_KEYS] == pytest.approx([0.5, 0.5, 0.5, 1, 1, 1, 1])
    assert result["mean_sensitivity"] == pytest.approx(5.5 / 7) and result["num_cases"] == 2
    assert result["num_positives"] == 2 and result["num_negatives"] == 2
    assert candidate_froc(probs, labels, cases, num_cases=4)["mean_sensitivity"] == pytest.approx(6 / 7)
    assert candidate_froc(probs, labels, cases, fp_rates=(1,))["sensitivities"] == {"1": 1.0}


def test_candidate_froc_rejects_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        candidate_froc([0.1, 0.2], [0, 1], ["a"])
    with pytest.raises(ValueError, match="0 or 1"):
        candidate_froc([0.1, 0.2], [0, 2], ["a", "a"])
    with pytest.raises(ValueError, match="not finite"):
        candidate_froc([np.nan, 0.2], [0, 1], ["a", "a"])
    with pytest.raises(ValueError, match="no positive"):
        candidate_froc([0.1, 0.2], [0, 0], ["a", "a"])
    with pytest.raises(ValueError, match="num_cases"):
        candidate_froc([0.1, 0.2], [0, 1], ["a", "b"], num_cases=1)


@pytest.mark.parametrize(
    "submission, message",
    [
        ([], "no candidates"),
        ([{"seriesuid": "a", "coordX": 0, "coordY": 0, "coordZ": 0}], "submission row 1: missing column 'probability'"),
        ([mark("a", 0, 0.5), mark("a", 0, float("nan"))], "submission row 2: column 'probability' .* finite"),
        ([mark("a", 0, 0.5), mark("a", "x1", 0.5)], "submission row 2: column 'coordX' holds 'x1', not a number"),
        ([mark("a", 0, 0.5), mark("zz", 0, 0.5)], "1 candidates of 1 series not in seriesuids, e.g. zz"),
    ],
)
def test_luna16_froc_rejects_bad_submissions(submission, message):
    with pytest.raises(ValueError, match=message):
        luna16_froc([nodule("a", 0)], [], ["a"], submission)


def test_unknown_series_can_be_skipped_and_counted():
    result = luna16_froc([nodule("a", 0)], [], ["a"], [mark("a", 0, 0.5), mark("zz", 0, 0.9)], unknown_series="skip")
    assert result["num_skipped_unknown_series"] == 1 and result["cpm"] == 1.0
    with pytest.raises(ValueError, match="none of the submission"):
        luna16_froc([nodule("a", 0)], [], ["a"], [mark("zz", 0, 0.9)], unknown_series="skip")


def test_luna16_froc_rejects_undefined_scores():
    with pytest.raises(ValueError, match="no nodule in the 1 listed scans"):
        luna16_froc([nodule("b", 0)], [], ["a"], [mark("a", 0, 0.5)])
    with pytest.raises(ValueError, match="more than once"):
        luna16_froc([nodule("a", 0)], [], ["a", "a"], [mark("a", 0, 0.5)])
    with pytest.raises(ValueError, match="diameter_mm"):
        luna16_froc([{"seriesuid": "a", "coordX": 0, "coordY": 0, "coordZ": 0}], [], ["a"], [mark("a", 0, 0.5)])
    assert FP_RATES == (0.125, 0.25, 0.5, 1, 2, 4, 8)
