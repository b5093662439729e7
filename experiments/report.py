"""The experiment's written results: ``results.md`` (tables), ``results.json`` (every figure) and
``learning_curves.png`` (score against labelled cases per arm, with the baselines)."""

from __future__ import annotations

from pathlib import Path

from monai_genesis.data.atomic_write import write_atomic, write_json_atomic
from monai_genesis.experiments.statistics import TEST_DESCRIPTION

TASK_TITLES = {"ncs": "NCS (lung nodule segmentation, genesis_lung_nodule_segmentation): test Dice",
               "ncc": "NCC (nodule false-positive reduction, genesis_lung_nodule_fpr): test AUC"}
BASELINE_TITLES = {"all_background_dice": "all-background Dice", "all_foreground_dice": "all-foreground Dice",
                   "chance_auc": "chance AUC", "random_ranking_cpm": "CPM of a random ranking"}
PLOTTED_BASELINE = {"ncs": "all_background_dice", "ncc": "chance_auc"}


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _p(value) -> str:
    return "n/a" if value is None else (f"{value:.1e}" if value < 0.001 else f"{value:.3f}" if value < 0.01 else f"{value:.2f}")


def _cell(row: dict) -> str:
    text = _number(row["mean"]) + (f" ± {_number(row['sd'])}" if row["sd"] is not None else "")
    test = row.get("vs_scratch")
    if test is not None:
        text += f" (Δ {_number(test['mean_difference'], 3)}; p_t {_p(test['t_p_value'])}, p_W {_p(test['wilcoxon_p_value'])})"
    return text + ("" if row["seeds"] else " (no run)")


def markdown(summary: dict) -> str:
    """The results as Markdown: one table per task (rows arms, columns label budgets) and the pretraining runs."""
    lines = [f"# Transfer experiment: {summary['name']}", "",
             f"Mean ± sd over seeds {summary['settings']['seeds']}; Δ = mean difference to scratch; p-values "
             f"{TEST_DESCRIPTION} (p_t: t-test, p_W: Wilcoxon).", ""]
    if not summary["complete"]:
        lines += [f"**Incomplete**: {summary['finished_runs']} of {summary['planned_runs']} runs finished.", ""]
    budgets = summary["settings"]["label_budgets"]
    for task, table in summary["tasks"].items():
        lines += [f"## {TASK_TITLES[task]}", "",
                  "Baselines on the same test data: " + ", ".join(f"{BASELINE_TITLES.get(k, k)} {_number(v)}"
                                                                 for k, v in table["baselines"].items()), ""]
        lines += ["| arm | " + " | ".join(f"{n} labelled" for n in budgets) + " |",
                  "|---|" + "---|" * len(budgets)]
        for arm in summary["settings"]["arms"]:
            cells = [_cell(next(r for r in table["rows"] if r["arm"] == arm and r["num_labeled"] == n)) for n in budgets]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        other = sorted({k for r in table["rows"] for k in r["metrics"]} - {table["score_name"]})
        if other:
            lines += ["", "Other test metrics (mean over seeds): " + "; ".join(
                f"{r['arm']} n={r['num_labeled']}: " + ", ".join(f"{k} {_number(r['metrics'][k][0])}" for k in other)
                for r in table["rows"] if r["seeds"])]
        lines.append("")
    if summary["pretraining"]:
        lines += ["## Pretraining (same budget for every arm)", "",
                  "| arm | best validation MSE | corrupted input MSE | per-cube-mean MSE | skill vs per-cube mean | iterations | seconds |",
                  "|---|---|---|---|---|---|---|"]
        for arm, r in summary["pretraining"].items():
            lines.append(f"| {arm} | {_number(r['best_val_mse'], 4)} | {_number(r.get('corrupted_input_mse'), 4)} | "
                         f"{_number(r.get('cube_mean_mse'), 4)} | {_number(r.get('skill_vs_cube_mean'), 3)} | "
                         f"{r['iterations']} | {r['seconds']:.0f} |")
        lines += ["", "On each arm's validation cubes, corrupted its own way (fixed seed): figures are not comparable across "
                  "arms. Skill = 1 - model MSE / per-cube-mean MSE (the per-cube-mean predictor paints each clean cube's "
                  "own mean intensity everywhere).", ""]
    timing = summary["timings"]
    lines += ["## Timings", "", "Wall seconds per run (mean): " + ", ".join(f"{k} {v:.1f}" for k, v in timing.items()), ""]
    if summary.get("cpu_timings"):
        lines += ["CPU seconds per run (mean; about the wall time on an idle core): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in summary["cpu_timings"].items()), ""]
    if summary.get("estimated_idle_seconds") is not None:
        lines += [f"All {summary['planned_runs']} planned runs on one idle core (CPU seconds per run x runs): about "
                  f"{summary['estimated_idle_seconds'] / 60:.0f} min (data generation not included).", ""]
    return "\n".join(lines)


def learning_curves_png(summary: dict, path: Path) -> str:
    """Score against labelled cases, one line per arm (mean ± sd over seeds), one panel per task, baseline dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = list(summary["tasks"])
    fig = Figure(figsize=(5.5 * len(tasks), 4.2), dpi=110)
    FigureCanvasAgg(fig)
    for i, task in enumerate(tasks):
        table = summary["tasks"][task]
        ax = fig.add_subplot(1, len(tasks), i + 1)
        for arm in summary["settings"]["arms"]:
            rows = [r for r in table["rows"] if r["arm"] == arm and r["seeds"]]
            if rows:
                x = [r["num_labeled"] for r in rows]
                ax.errorbar(x, [r["mean"] for r in rows], yerr=[r["sd"] or 0.0 for r in rows], marker="o", capsize=3,
                            label=arm, linewidth=2.2 if arm in ("scratch", "full") else 1.1)
        baseline = PLOTTED_BASELINE[task]
        if baseline in table["baselines"]:
            ax.axhline(table["baselines"][baseline], color="grey", linestyle="--", label=BASELINE_TITLES[baseline])
        ax.set_xscale("log", base=2)
        ax.set_xticks(summary["settings"]["label_budgets"], [str(n) for n in summary["settings"]["label_budgets"]])
        ax.set_xlabel("labelled training cases")
        ax.set_ylabel({"dice": "test Dice", "auc": "test AUC"}.get(table["score_name"], table["score_name"]))
        ax.set_ylim(0.0, 1.02)
        seeds = len(summary["settings"]["seeds"])
        ax.set_title(TASK_TITLES[task].split(" (")[0] + f" (mean ± sd over {seeds} seed{'s' if seeds != 1 else ''})")
        ax.legend(fontsize=7)
    fig.tight_layout()
    write_atomic(path, lambda stream: fig.savefig(stream, format="png"))
    return str(path)


def write_report(summary: dict, root: Path) -> dict:
    """Write results.json, results.md and learning_curves.png into ``root``; returns their paths."""
    root = Path(root)
    paths = {"json": root / "results.json", "markdown": root / "results.md", "png": root / "learning_curves.png"}
    write_json_atomic(summary, paths["json"])
    text = markdown(summary)
    write_atomic(paths["markdown"], lambda stream: stream.write(text), binary=False)
    learning_curves_png(summary, paths["png"])
    return {k: str(v) for k, v in paths.items()}
