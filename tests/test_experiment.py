"""The transfer experiment (monai_genesis.experiments, `genesis experiment`): a miniature run end to end, its
written results, resume after an interruption, refusal of changed settings, the paired tests, and the
scratch-vs-pretrained comparison for the demo."""

import json
import math
import shutil

import pytest
import torch

from monai_genesis.experiments import bundle_runs, finetune_comparison, run_experiment
from monai_genesis.experiments.comparison import checkpoint_width
from monai_genesis.experiments.settings import PRESETS, experiment_settings
from monai_genesis.experiments.statistics import paired_tests
from monai_genesis.networks import UNet3D

pytestmark = pytest.mark.filterwarnings("ignore:Detected deprecated name 'optional_packages_version'")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_TARGETS = {k: v for k, v in PRESETS["tiny"].items() if k.startswith(("ncs_", "ncc_"))}


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory):
    """Scratch and the full pipeline, one seed, 2 labelled cases, NCS and NCC, a few iterations each."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("experiment") / "tiny"
    return root, run_experiment(root, name="tiny", size="tiny", progress=False)


@pytest.mark.slow
def test_miniature_experiment_writes_tables_curves_and_provenance(tiny_experiment):
    root, summary = tiny_experiment
    assert summary["complete"] and summary["finished_runs"] == summary["planned_runs"] == 1 + 2 * 2
    written = json.loads((root / "results.json").read_text())
    assert written["settings"] == json.loads((root / "settings.json").read_text()) == experiment_settings("tiny")
    for task, score, baselines in (("ncs", "dice", {"all_background_dice", "all_foreground_dice"}),
                                   ("ncc", "auc", {"chance_auc", "random_ranking_cpm"})):
        table = written["tasks"][task]
        assert table["score_name"] == score and set(table["baselines"]) == baselines
        rows = {r["arm"]: r for r in table["rows"]}
        assert set(rows) == {"scratch", "full"} and all(r["num_labeled"] == 2 and r["seeds"] == [0] for r in rows.values())
        assert all(0.0 <= r["mean"] <= 1.0 and r["sd"] is None for r in rows.values())  # one seed: no sd
        assert set(rows["full"]["vs_scratch"]) >= {"mean_difference", "t_p_value", "wilcoxon_p_value", "n_pairs"}
        assert rows["full"]["vs_scratch"]["mean_difference"] == pytest.approx(rows["full"]["mean"] - rows["scratch"]["mean"])
    assert written["tasks"]["ncs"]["baselines"]["all_background_dice"] == 0.0  # every test patch holds nodule
    assert 0.0 < written["tasks"]["ncs"]["baselines"]["all_foreground_dice"] < 0.5
    assert written["tasks"]["ncc"]["baselines"]["chance_auc"] == 0.5
    markdown = (root / "results.md").read_text()
    assert "| arm | 2 labelled |" in markdown and "| scratch |" in markdown and "| full |" in markdown
    assert "all-background Dice 0.000" in markdown and "chance AUC 0.500" in markdown and "ttest_rel" in markdown
    assert (root / "learning_curves.png").read_bytes()[:8] == PNG_MAGIC
    versions = json.loads((root / "versions.json").read_text())
    assert versions["torch"] == torch.__version__.split("+")[0] or versions["torch"] == torch.__version__
    assert versions["monai"] and versions["scipy"] and versions["python"]
    pretrained = json.loads((root / "results" / "pretrain" / "full.json").read_text())
    assert (root / pretrained["checkpoint"]).is_file() and pretrained["iterations"] >= 1
    assert pretrained["corrupted_input_mse"] > 0 and pretrained["cube_mean_mse"] > 0 and pretrained["cpu_seconds"] > 0
    assert "CPU seconds per run" in markdown and "All 5 planned runs on one idle core" in markdown
    assert pretrained["skill_vs_cube_mean"] == pytest.approx(1 - pretrained["best_val_mse"] / pretrained["cube_mean_mse"])
    assert "| full | " in markdown.split("## Pretraining")[1]


@pytest.mark.slow
def test_interrupted_experiment_resumes_with_the_missing_runs_only(tiny_experiment, tmp_path, monkeypatch, capsys):
    source, _ = tiny_experiment
    root = tmp_path / "copy"
    shutil.copytree(source, root)
    results = root / "results"
    for arm in ("scratch", "full"):
        (results / "ncc" / "n2" / "seed0" / f"{arm}.json").unlink()
    kept = {p: p.stat().st_mtime_ns for p in results.glob("**/*.json")}
    calls = []

    def interrupted_second_call(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    original = bundle_runs.finetune_ncc
    monkeypatch.setattr(bundle_runs, "finetune_ncc", interrupted_second_call)
    monkeypatch.setattr(bundle_runs, "pretrain", lambda *a, **k: pytest.fail("a finished pretraining arm was rerun"))
    monkeypatch.setattr(bundle_runs, "finetune_ncs", lambda *a, **k: pytest.fail("a finished NCS run was rerun"))
    with pytest.raises(KeyboardInterrupt):
        run_experiment(root, name="tiny", size="tiny", progress=False)
    assert (results / "ncc" / "n2" / "seed0" / "scratch.json").is_file()  # finished before the interruption
    assert not (results / "ncc" / "n2" / "seed0" / "full.json").exists()
    partial = run_experiment(root, name="tiny", size="tiny", progress=False, report_only=True)
    assert not partial["complete"] and partial["finished_runs"] == 4 and len(calls) == 2
    assert "**Incomplete**: 4 of 5 runs finished." in (root / "results.md").read_text()
    ncc_full = next(r for r in partial["tasks"]["ncc"]["rows"] if r["arm"] == "full")
    assert ncc_full["seeds"] == [] and ncc_full["mean"] is None and ncc_full["vs_scratch"]["n_pairs"] == 0

    calls.clear()
    capsys.readouterr()
    summary = run_experiment(root, name="tiny", size="tiny", progress=True)
    log = capsys.readouterr().err
    assert "5 runs, 4 finished before, 1 to go" in log and "[5/5] ncc full n=2 seed=0: auc " in log and "ETA 0.0 min" in log
    assert len(calls) == 1 and calls[0][4].endswith("full.pt")  # only the missing run, from the pretrained weights
    assert summary["complete"] and (results / "ncc" / "n2" / "seed0" / "full.json").is_file()
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished results untouched


def test_changed_settings_are_refused(tmp_path):
    root = tmp_path / "exp"
    root.mkdir()
    (root / "settings.json").write_text(json.dumps(experiment_settings("tiny")))
    with pytest.raises(ValueError, match=r"other settings \(seeds: \[0\] there, \[0, 1\] now\).*same arguments"):
        run_experiment(root, size="tiny", seeds=[0, 1], progress=False)
    with pytest.raises(ValueError, match="unknown arm"):
        experiment_settings("tiny", arms=["scratch", "rotation"])
    with pytest.raises(ValueError, match="must include 'scratch'"):
        experiment_settings("tiny", arms=["full", "identity"])
    with pytest.raises(ValueError, match="unknown experiment setting"):
        experiment_settings("tiny", ncs_stepz=3)


def test_command_reports_bad_arguments_in_one_line(tmp_path, monkeypatch, capsys):
    from monai_genesis.cli.main import EXIT_BAD_INPUT, main

    monkeypatch.setattr("sys.argv", ["genesis", "experiment", "--size", "huge", "--output_dir", str(tmp_path / "x")])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == "genesis: error: size: expected one of default, tiny, got 'huge'."


def test_paired_tests_match_a_hand_computation():
    arm, scratch = [0.5, 0.6, 0.8], [0.4, 0.55, 0.6]
    diff = [a - s for a, s in zip(arm, scratch)]  # 0.1, 0.05, 0.2
    mean = sum(diff) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diff) / 2)
    t = mean / (sd / math.sqrt(3))
    p_t = 1 - abs(t) / math.sqrt(2 + t * t)  # two-sided p of Student's t with 2 degrees of freedom
    result = paired_tests(arm, scratch)
    assert result["n_pairs"] == 3 and result["mean_difference"] == pytest.approx(mean)
    assert result["t_statistic"] == pytest.approx(t) and result["t_p_value"] == pytest.approx(p_t)
    # exact Wilcoxon: all three differences positive is 1 of the 2^3 equally likely sign patterns, two-sided
    assert result["wilcoxon_p_value"] == pytest.approx(2 / 8)
    assert paired_tests([0.5], [0.4])["t_p_value"] is None  # one pair: undefined
    constant = paired_tests([0.5, 0.6], [0.4, 0.5])  # equal differences: no variance
    assert constant["t_p_value"] is None and constant["mean_difference"] == pytest.approx(0.1)


@pytest.mark.slow
def test_finetune_comparison_scores_both_initialisations_with_baselines_and_image(tmp_path):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    torch.save({"model": UNet3D(width=0.125).state_dict()}, tmp_path / "genesis.pt")
    assert checkpoint_width(tmp_path / "genesis.pt") == 0.125
    result = finetune_comparison(tmp_path / "genesis.pt", tmp_path / "cmp", task="ncs", num_labeled=2, seed=1,
                                 **TINY_TARGETS)
    assert result["score_name"] == "dice" and result["num_labeled"] == 2
    scratch, pretrained = result["scratch"], result["pretrained"]
    assert scratch["iterations"] == pretrained["iterations"] == 2  # the same budget
    assert all(0.0 <= r["score"] <= 1.0 for r in (scratch, pretrained))
    assert scratch["metrics"] != pretrained["metrics"]  # different initialisations, different models
    assert result["baselines"]["all_background_dice"] == 0.0 and 0 < result["baselines"]["all_foreground_dice"] < 0.5
    (image,) = result["images"]
    with open(image, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    import matplotlib.image

    height, width = matplotlib.image.imread(image).shape[:2]
    assert width > 2.5 * height  # four tiles side by side
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        finetune_comparison(tmp_path / "missing.pt", tmp_path / "cmp2")
