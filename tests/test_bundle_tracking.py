"""Experiment tracking of every bundle's train.json: `monai.bundle run --tracking mlflow` (MONAI's default MLflow
settings) records one finished run in the bundle's local store `eval/mlruns.db`, with the training loss per
iteration, the validation metrics per epoch and the executed config; TensorBoard event files are written with or
without tracking."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from monai.bundle import run as bundle_run
from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS

from bundle_cases import BUNDLES, BUNDLES_DIR, TINY, write_data
from monai_genesis.training.tracking import loss_of, sqlite_tracking_uri

from mlflow.tracking import MlflowClient  # the tracking extra, part of the test extra
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.filterwarnings("ignore:Detected deprecated name 'optional_packages_version'")
# genesis_pretrain trains with decollate false (one dict per batch): MONAI's MLflow handler needs the decollated list
TRACKING_OVERRIDES = {"genesis_pretrain": {"train#trainer#decollate": True}}


def _train_config(bundle: str) -> dict:
    return json.loads((BUNDLES_DIR / bundle / "configs" / "train.json").read_text())


def _validation_metrics(config: dict) -> set:
    return set(config["validate"]["key_metric"]) | set(config["validate"].get("additional_metrics", {}))


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """An MLflow SQLite store with its tables made (MLflow's migrations take seconds): copied into each bundle."""
    folder = tmp_path_factory.mktemp("store")
    cwd = os.getcwd()
    os.chdir(folder)  # MLflow may put artifacts under ./mlruns of the working directory: not the checkout
    try:
        MlflowClient(sqlite_tracking_uri(folder / "mlruns.db")).search_experiments()
    finally:
        os.chdir(cwd)
    return folder / "mlruns.db"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_train_config_provides_what_tracking_reads(bundle):
    """The keys of MONAI's default MLflow settings, a store under output_dir, TensorBoard on both engines."""
    config = _train_config(bundle)
    for engine in ("trainer", "validator"):
        ids = DEFAULT_MLFLOW_SETTINGS["handlers_id"][engine]
        section, key = ids["id"].split("#")
        assert key in config[section] and ids["handlers"].split("#")[1] in config[section]
        handlers = config[section][ids["handlers"].split("#")[1]]
        board = [h for h in handlers if isinstance(h, dict) and h["_target_"] == "TensorBoardStatsHandler"]
        assert len(board) == 1 and board[0]["log_dir"] == "@output_dir"
    assert "evaluator" not in config  # else MONAI would add a third MLflow handler
    assert config["output_dir"] == "$@bundle_root + '/eval'"
    assert config["tracking_uri"]["path"] == "$@output_dir + '/mlruns.db'"


def test_loss_of_reads_a_batch_dict_or_a_decollated_list():
    assert loss_of({"loss": 0.5, "pred": None}) == 0.5
    assert loss_of([{"loss": 0.25}, {"loss": 0.25}]) == 0.25


def test_sqlite_uri_is_absolute_and_makes_the_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = sqlite_tracking_uri("a b/eval/mlruns.db")
    assert uri == f"sqlite:///{tmp_path.as_posix()}/a%20b/eval/mlruns.db" and (tmp_path / "a b" / "eval").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("bundle", BUNDLES)
def test_tracking_mlflow_records_the_run(bundle, tmp_path, empty_store, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow may put artifacts under ./mlruns of the working directory: not the checkout
    settings = {**TINY[bundle], **write_data(bundle, tmp_path / "data"), "epochs": 1, **TRACKING_OVERRIDES.get(bundle, {})}
    root = tmp_path / "bundle"
    (root / "eval").mkdir(parents=True)
    shutil.copy(empty_store, root / "eval" / "mlruns.db")
    configs = BUNDLES_DIR / bundle / "configs"
    bundle_run(config_file=str(configs / "train.json"), meta_file=str(configs / "metadata.json"), logging_file=False,
               bundle_root=str(root), tracking="mlflow", **settings)

    client = MlflowClient(sqlite_tracking_uri(root / "eval" / "mlruns.db"))
    experiment = client.get_experiment_by_name(DEFAULT_MLFLOW_SETTINGS["configs"]["experiment_name"])
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    losses = client.get_metric_history(run.info.run_id, "train_loss")
    assert len(losses) >= 1 and all(m.value == m.value for m in losses)  # one per iteration, finite
    assert [m.step for m in losses] == list(range(1, len(losses) + 1))
    validation = _validation_metrics(_train_config(bundle))
    assert validation <= set(run.data.metrics), (validation, set(run.data.metrics))
    assert [a.path for a in client.list_artifacts(run.info.run_id)][0].startswith("config_")  # the executed config

    events = sorted((root / "eval").glob("events.out.tfevents.*"))
    tags = set()
    for path in events:
        board = EventAccumulator(str(path))
        board.Reload()
        tags |= set(board.Tags()["scalars"])
    assert {"train_loss"} | validation <= tags


def test_a_default_run_logs_tensorboard_and_no_mlflow(tmp_path):
    bundle = "genesis_liver_segmentation"
    configs = BUNDLES_DIR / bundle / "configs"
    root = tmp_path / "bundle"
    bundle_run(config_file=str(configs / "train.json"), meta_file=str(configs / "metadata.json"), logging_file=False,
               bundle_root=str(root), **TINY[bundle], **write_data(bundle, tmp_path / "data"), epochs=1)
    assert list((root / "eval").glob("events.out.tfevents.*")) and not (root / "eval" / "mlruns.db").exists()
