"""The genesis_pe_fpr bundle (ECC) on synthetic CTPA candidates: patient folds, workflows, AUC and candidate FROC.

Tiny settings: network width 0.125, 32x32x32 cubes, one epoch.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from classification_bundles import candidate_workflow, check_metadata_and_network
from bundle_cases import TINY as BUNDLE_TINY

from monai_genesis.data.candidate_volumes import CandidateDataset, prepare_candidate_volumes, read_split
from monai_genesis.phantoms.ctpa import write_ctpa_dataset
from monai_genesis.training.classification import read_submission

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "genesis_pe_fpr"
CONFIGS = BUNDLE / "configs"
pytestmark = pytest.mark.filterwarnings("ignore:Detected deprecated name 'optional_packages_version'")
TINY = BUNDLE_TINY["genesis_pe_fpr"]  # one home: tests/bundle_cases.py


@pytest.fixture(scope="module")
def ctpa(tmp_path_factory):
    """Six synthetic CTPA patients with emboli and look-alikes, prepared with three patient folds."""
    root = tmp_path_factory.mktemp("ecc")
    write_ctpa_dataset(root / "raw", num_cases=6, shape=(64, 64, 48), seed=2,
                       num_emboli=3, num_false_positives=6)
    prepare_candidate_volumes(root / "raw" / "images", root / "prep", num_folds=3, val_fraction=0.25, progress=False)
    return root


def workflow(configs, workflow_type, root: Path, data: Path, **overrides):
    return candidate_workflow(CONFIGS, configs, workflow_type, root, data, **{**TINY, **overrides})


def test_metadata_network_and_defaults():
    check_metadata_and_network(CONFIGS, width=0.125)
    config = json.loads((CONFIGS / "train.json").read_text())
    assert config["cube_size"] == [64, 64, 64] and config["batch_size"] == 24 and config["learning_rate"] == 1e-3
    assert config["patience"] == 38 and config["lr_patience"] == 6 and config["min_lr"] == 1e-6
    assert json.loads((CONFIGS / "evaluate.json").read_text())["froc"] == "candidate"
    assert (BUNDLE / "LICENSE").is_file() and (BUNDLE / "docs" / "README.md").is_file()


def test_folds_by_patient_are_written_once(ctpa):
    split = json.loads((ctpa / "prep" / "split.json").read_text())
    assert split["kind"] == "cross_validation" and split["num_folds"] == 3
    patients = sorted(p.name[: -len(".nii.gz")] for p in (ctpa / "raw" / "images").glob("*.nii.gz"))
    tests = [read_split(ctpa / "prep", f)["test"] for f in range(3)]
    assert sorted(sum(tests, [])) == patients and all(len(t) == 2 for t in tests)
    for f in range(3):
        fold = read_split(ctpa / "prep", f)
        assert len(fold["validation"]) == 1 and len(fold["training"]) == 3
        assert not (set(fold["training"]) | set(fold["validation"])) & set(fold["test"])
        # candidates follow their patient: no patient's candidate in two sections
        sections = {s: set(CandidateDataset(ctpa / "prep", ctpa / "raw" / "candidates.csv", s, f, (8, 8, 8)).table.seriesuid)
                    for s in ("training", "validation", "test")}
        assert sections["test"] == set(fold["test"]) and not sections["training"] & sections["test"]


@pytest.mark.slow
def test_train_evaluate_infer_one_fold(tmp_path, ctpa):
    root = tmp_path / "bundle"
    wf = workflow(["train.json"], "train", root, ctpa, epochs=1, fold=1)
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()
    assert (root / "models" / "model.pt").is_file()
    ev = workflow(["train.json", "evaluate.json"], "eval", root, ctpa, fold=1)
    assert ev.check_properties() == []
    ev.run()
    report = json.loads((root / "eval" / "evaluate.json").read_text())
    test_patients = read_split(ctpa / "prep", 1)["test"]
    assert report["num_scans"] == 2 and report["num_candidates"] == 2 * 9 and report["num_positives"] == 6
    assert 0.0 <= report["auc"] <= 1.0 and report["auc_chance"] == 0.5
    froc = report["froc"]
    assert froc["num_cases"] == 2 and froc["num_positives"] == 6
    assert froc["mean_sensitivity"] == pytest.approx(np.mean(list(froc["sensitivities"].values())))
    submission = read_submission(root / "eval" / "submission_test.csv")
    assert set(submission["seriesuid"]) == set(test_patients)
    inf = workflow(["inference.json"], "infer", root, ctpa, fold=1, output_dir=str(tmp_path / "infer"))
    assert inf.check_properties() == []
    inf.run()
    inferred = read_submission(tmp_path / "infer" / "submission.csv")
    np.testing.assert_allclose(inferred["probability"], submission["probability"], atol=1e-6)
