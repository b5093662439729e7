"""`genesis demo`: the main job end to end (shortest time budget: one epoch), its baselines and skill line."""

import re
from pathlib import Path

import pytest
import torch

from monai_genesis.cli.demo import run_demo, summary
from monai_genesis.experiments.settings import PRESETS

SKILL_LINE = re.compile(r"^ *restoration skill: (-?\d+\.\d{3}) \(full corruption, ceiling (-?\d+\.\d{3})\), "
                        r"(-?\d+\.\d{3}) \(without painting\)$", re.M)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Detected deprecated name 'optional_packages_version'")
def test_demo_runs_the_main_job(tmp_path):
    tiny_finetune = {k: v for k, v in PRESETS["tiny"].items() if k.startswith("ncs_")}
    result = run_demo(output_dir=str(tmp_path / "demo"), minutes=0.001, num_cases=3, num_workers=0,
                      num_labeled=2, finetune_settings=tiny_finetune)
    assert result["epochs"] >= 1  # the 1-second budget stops training at the first epoch end past it
    assert min(result["cubes"].values()) > 0
    assert result["iterations"] == result["epochs"] * (result["cubes"]["training"] // result["batch_size"])  # drop_last
    m = result["test_metrics"]
    views = {"": "", "nopaint_": "without painting"}
    for view in views:
        assert {f"{view}{k}" for k in ("mse", "corrupted_mse", "mean_mse", "skill", "skill_ci_low", "skill_ci_high")} <= set(m)
        # the skill is the model's MSE against the per-cube-mean predictor's, on the same cubes
        assert m[f"{view}skill"] == pytest.approx(1 - m[f"{view}mse"] / m[f"{view}mean_mse"], rel=1e-6)
        assert m[f"{view}skill_ci_low"] <= m[f"{view}skill"] <= m[f"{view}skill_ci_high"]
        assert 0 < m[f"{view}mse"] < 1 and 0 < m[f"{view}mean_mse"] < m[f"{view}corrupted_mse"]
    assert 0 < m["skill_ceiling"] < 1 and "nopaint_skill_ceiling" not in m
    skill = result["restoration_skill"]
    assert (skill["full"], skill["ceiling"], skill["without_painting"]) == (m["skill"], m["skill_ceiling"], m["nopaint_skill"])

    text = summary(result)
    lines = SKILL_LINE.findall(text)
    assert lines == [(f"{m['skill']:.3f}", f"{m['skill_ceiling']:.3f}", f"{m['nopaint_skill']:.3f}")]
    assert f"per-cube mean {m['mean_mse']:.4f}, corrupted input {m['corrupted_mse']:.4f}" in text
    assert f"per-cube mean {m['nopaint_mean_mse']:.4f}, corrupted input {m['nopaint_corrupted_mse']:.4f}" in text

    curve = result["validation_curve"]
    assert len(curve) == result["epochs"] and curve[-1]["iteration"] == result["iterations"]
    assert all(r["val_skill"] == pytest.approx(1 - r["val_mse"] / r["val_mean_mse"], rel=1e-6) for r in curve)
    assert Path(result["skill_curve_png"]).stat().st_size > 0
    assert len(result["test_images"]) == 1 and len(result["validation_images"]) == result["epochs"]
    assert 1 <= torch.load(result["best_checkpoint"], weights_only=True)["epoch"] <= result["epochs"]
    assert 0 <= result["throughput"]["data_fraction"] < 1

    # the fine-tuning stage: both runs from the demo's own checkpoint, scored with the baselines beside them
    f = result["finetune"]
    assert f["task"] == "ncs" and f["num_labeled"] == 2 and f["score_name"] == "dice"
    assert all(0 <= f[arm]["score"] <= 1 for arm in ("scratch", "pretrained"))
    assert f["baselines"]["all_background_dice"] == 0.0
    assert f"from the pretrained weights {f['pretrained']['score']:.3f}, from scratch {f['scratch']['score']:.3f}" in text
    assert "all background dice 0.000" in text and Path(f["images"][0]).stat().st_size > 0


def test_demo_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="--minutes"):
        run_demo(output_dir=str(tmp_path), minutes=0)
    with pytest.raises(ValueError, match="--finetune_task"):
        run_demo(output_dir=str(tmp_path), finetune_task="liver")
    with pytest.raises(FileNotFoundError, match="--bundle_dir"):
        run_demo(output_dir=str(tmp_path), bundle_dir=str(tmp_path / "nowhere"))
