"""Summaries of the fine-tuning scores: mean and sd over seeds, and paired tests of each arm against scratch.

Each seed is one pair: the same labelled cases and the same fine-tuning seed for the arm and for scratch. Two
two-sided tests of the seed-wise differences are reported: the paired t-test (``scipy.stats.ttest_rel``) and
the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, exact). With 3 seeds the Wilcoxon test cannot go below
p = 0.25, so the t-test carries the evidence at that size.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from monai_genesis.experiments.arms import SCRATCH

TEST_DESCRIPTION = ("paired over seeds (same labelled cases and fine-tuning seed): two-sided paired t-test "
                    "(scipy.stats.ttest_rel) and two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon)")


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def paired_tests(arm_scores, scratch_scores) -> dict:
    """Mean difference (arm - scratch) and the p-values of both paired tests; a p-value is None where the test
    is undefined (fewer than 2 pairs, or all differences equal)."""
    arm, scratch = np.asarray(arm_scores, float), np.asarray(scratch_scores, float)
    if arm.shape != scratch.shape or arm.ndim != 1:
        raise ValueError(f"paired_tests: expected two equally long score lists, got {arm.shape} and {scratch.shape}.")
    diff = arm - scratch
    result = {"n_pairs": int(len(diff)), "mean_difference": _finite_or_none(diff.mean()) if len(diff) else None,
              "t_statistic": None, "t_p_value": None, "wilcoxon_p_value": None}
    if len(diff) < 2 or np.allclose(diff, diff[0]):
        return result
    t = stats.ttest_rel(arm, scratch)
    result["t_statistic"], result["t_p_value"] = _finite_or_none(t.statistic), _finite_or_none(t.pvalue)
    if np.any(diff != 0):
        result["wilcoxon_p_value"] = _finite_or_none(stats.wilcoxon(arm, scratch).pvalue)
    return result


def mean_sd(values) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1; None for one value)."""
    values = np.asarray(values, float)
    if not len(values):
        return None, None
    return float(values.mean()), (float(values.std(ddof=1)) if len(values) > 1 else None)


def summarise_task(results: dict, arms, label_budgets, seeds) -> list[dict]:
    """Rows (arm, label budget) of one task's ``results[(arm, n, seed)]`` (run results), with the paired tests.

    Only seeds finished for both the arm and scratch enter a test; the mean and sd use every finished seed.
    """
    rows = []
    for n in label_budgets:
        for arm in arms:
            done = [s for s in seeds if (arm, n, s) in results]
            scores = [results[(arm, n, s)]["score"] for s in done]
            mean, sd = mean_sd(scores)
            metric_names = sorted({k for s in done for k in results[(arm, n, s)]["metrics"]})
            row = {"arm": arm, "num_labeled": n, "seeds": done, "scores": scores, "mean": mean, "sd": sd,
                   "metrics": {k: mean_sd([results[(arm, n, s)]["metrics"][k] for s in done]) for k in metric_names},
                   "seconds_per_run": mean_sd([results[(arm, n, s)]["seconds"] for s in done])[0]}
            if arm != SCRATCH:
                paired = [s for s in done if (SCRATCH, n, s) in results]
                row["vs_scratch"] = paired_tests([results[(arm, n, s)]["score"] for s in paired],
                                                 [results[(SCRATCH, n, s)]["score"] for s in paired])
            rows.append(row)
    return rows


def baseline_means(results: dict) -> dict:
    """Mean of each baseline over the runs (they depend on the test cases only, so they agree across runs)."""
    names = sorted({k for r in results.values() for k in r["baselines"]})
    return {k: float(np.mean([r["baselines"][k] for r in results.values() if k in r["baselines"]])) for k in names}
