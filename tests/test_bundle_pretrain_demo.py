"""`genesis demo`: the main job end to end on synthetic data (shortest time budget: one epoch)."""

import pytest
import torch

from monai_genesis.cli.demo import run_demo


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Detected deprecated name 'optional_packages_version'")
def test_demo_runs_the_main_job(tmp_path):
    result = run_demo(output_dir=str(tmp_path / "demo"), minutes=0.001, num_cases=3, num_workers=0)
    assert result["epochs"] >= 1  # the 1-second budget stops training at the first epoch end past it
    assert min(result["cubes"].values()) > 0
    assert result["iterations"] == result["epochs"] * (result["cubes"]["training"] // 4)  # tiny batch 4, drop_last
    assert set(result["test_metrics"]) == {"mse", "psnr", "corrupted_mse"}
    assert 0 < result["test_metrics"]["mse"] < 1
    assert len(result["test_images"]) == 1 and len(result["validation_images"]) == result["epochs"]
    assert 1 <= torch.load(result["best_checkpoint"], weights_only=True)["epoch"] <= result["epochs"]
    assert 0 <= result["throughput"]["data_fraction"] < 1


def test_demo_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="--minutes"):
        run_demo(output_dir=str(tmp_path), minutes=0)
    with pytest.raises(FileNotFoundError, match="--bundle_dir"):
        run_demo(output_dir=str(tmp_path), bundle_dir=str(tmp_path / "nowhere"))
