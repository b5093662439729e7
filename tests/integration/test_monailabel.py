"""The segmentation bundles served by a real MONAI Label 0.8.5 server (its `monaibundle` sample app).

Run by `make test-monailabel`, which first builds MONAI Label's own environment
(tests/integration/monailabel_env.sh, monai 1.5.2) and points MONAILABEL_VENV at it; the main suite
(`pytest tests`) does not collect this folder. Per bundle: a copy of the bundle in the app's model/
folder with a tiny network's weights (the copy's configs set the width the weights were made with, as a
user edits a bundle's defaults), phantom studies with labels in labels/final, a server on a free
127.0.0.1 port, then /info/, /infer (the label has the study's shape and affine) and a one-epoch /train
(it rewrites models/model.pt). The server's process group is stopped whatever happens.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_genesis.networks import UNet3D
from monai_genesis.phantoms.brain_layouts import write_brats_folders
from monai_genesis.phantoms.layouts import write_lits_layout, write_nodule_layout

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("MONAILABEL_VENV", REPO / ".venv-monailabel")).resolve()
APP = VENV / "monailabel" / "sample-apps" / "monaibundle"
TINY_WIDTH = 0.125
# Values a user would set in the served copy: the weights' width, and a CPU-sized batch.
COPY_SETTINGS = {"network_width": TINY_WIDTH, "channels_last": False, "num_workers": 0, "batch_size": 4, "num_samples": 2}
START_TIMEOUT_S = 240
TRAIN_TIMEOUT_S = 300


def _studies_nodule(root: Path) -> Path:
    write_nodule_layout(root / "layout", num_cases=4, shape=(48, 48, 32), spacing=(1.6, 1.6, 2.5))
    return _as_studies(root, sorted((root / "layout" / "images").glob("*.nii.gz")),
                       lambda image: root / "layout" / "labels" / image.name)


def _studies_liver(root: Path) -> Path:
    write_lits_layout(root / "layout", case_numbers=(0, 1, 2, 3), shape=(40, 40, 32), spacing=(4.5, 4.5, 4.5))
    return _as_studies(root, sorted((root / "layout").glob("volume-*.nii")),
                       lambda image: image.with_name(image.name.replace("volume-", "segmentation-")))


def _studies_brain(root: Path) -> Path:
    """FLAIR studies (the bundle's default modality) with their BraTS labels (0, 1, 2, 4)."""
    folders = write_brats_folders(root / "layout", 4, shape=(48, 48, 32))
    return _as_studies(root, [f / f"{f.name}_flair.nii.gz" for f in folders],
                       lambda image: image.with_name(image.name.replace("_flair", "_seg")))


def _as_studies(root: Path, images, label_of) -> Path:
    """MONAI Label's local datastore: studies/<id>.nii[.gz] and studies/labels/final/<same name>."""
    studies = root / "studies"
    (studies / "labels" / "final").mkdir(parents=True)
    for image in images:
        shutil.copy(image, studies / image.name)
        shutil.copy(label_of(image), studies / "labels" / "final" / image.name)
    return studies


BUNDLES = {
    "genesis_lung_nodule_segmentation": (_studies_nodule, "nodule"),
    "genesis_liver_segmentation": (_studies_liver, "liver"),
    "genesis_brain_tumor_segmentation": (_studies_brain, "whole tumour"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, method: str = "GET", body: dict | None = None, timeout: float = 120.0) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as response:
        return response.read()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _serve_copy(bundle: str, app: Path, study: Path) -> Path:
    """The bundle copied into the app's model/ folder, its defaults set to COPY_SETTINGS, with tiny weights
    whose output bias puts the median of ``study``'s foreground probability at the threshold (so the
    mask is about half foreground and a flipped or shifted label cannot go unnoticed)."""
    target = app / "model" / bundle
    shutil.copytree(REPO / "bundles" / bundle, target, ignore=shutil.ignore_patterns("models", "eval", "runs"))
    for name in ("inference.json", "train.json"):
        path = target / "configs" / name
        config = json.loads(path.read_text())
        config.update({k: v for k, v in COPY_SETTINGS.items() if k in config})
        path.write_text(json.dumps(config, indent=4))
    (target / "models").mkdir()
    torch.manual_seed(0)
    network = UNet3D(1, 1, width=TINY_WIDTH, out_activation="sigmoid").eval()
    parser = _inference_workflow(target, study.parent, target / "eval").parser
    image = parser.get_parsed_content("preprocessing")({"image": str(study)})["image"]
    with torch.no_grad():
        probability = parser.get_parsed_content("inferer")(image[None].float(), network)
    median = float(probability.median().clamp(1e-6, 1 - 1e-6))
    with torch.no_grad():
        network.out_tr.final_conv.bias -= float(np.log(median / (1 - median)))
    torch.save({"model": network.state_dict()}, target / "models" / "model.pt")
    return target


def _inference_workflow(bundle_dir: Path, dataset_dir: Path, output_dir: Path):
    from monai.bundle import ConfigWorkflow

    return ConfigWorkflow(config_file=str(bundle_dir / "configs" / "inference.json"),
                          meta_file=str(bundle_dir / "configs" / "metadata.json"), logging_file=False,
                          workflow_type="infer", bundle_root=str(bundle_dir), device="cpu",
                          dataset_dir=str(dataset_dir), output_dir=str(output_dir))


def _bundle_inference(bundle_dir: Path, study: Path, folder: Path) -> np.ndarray:
    """The served copy's inference.json run with monai.bundle on one study; returns the written mask."""
    (folder / "input").mkdir(parents=True)
    shutil.copy(study, folder / "input" / study.name)
    workflow = _inference_workflow(bundle_dir, folder / "input", folder / "output")
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    (mask,) = (folder / "output").glob("*.nii*")
    return np.asarray(nib.load(str(mask)).dataobj)


class Server:
    """`monailabel start_server` in its own process group, stopped by that group's id."""

    def __init__(self, app: Path, studies: Path, model: str, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = dict(os.environ, PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                   OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)
        cmd = [str(VENV / "bin" / "monailabel"), "start_server", "--app", str(app), "--studies", str(studies),
               "--conf", "models", model, "--conf", "zoo_source", "github", "--conf", "preload", "false",
               "--host", "127.0.0.1", "--port", str(self.port)]
        self._log_file = open(log, "wb")
        # cwd: the server reads .env from its working directory and must not find the checkout's.
        self.process = subprocess.Popen(cmd, cwd=str(log.parent), env=env, stdout=self._log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self) -> dict:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"MONAI Label exited with {self.process.returncode}:\n{self.tail()}")
            try:
                return json.loads(_request(f"{self.url}/info/", timeout=10))
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1.0)
        raise AssertionError(f"MONAI Label did not answer /info/ in {START_TIMEOUT_S} s:\n{self.tail()}")

    def tail(self, chars: int = 6000) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)
            except ProcessLookupError:
                pass
        self._log_file.close()


@pytest.fixture(scope="session", autouse=True)
def monailabel_environment():
    stamp = VENV / ".installed"
    assert stamp.is_file() and APP.is_dir(), (
        f"MONAI Label's environment is not built at {VENV}: run `make test-monailabel` "
        f"(or tests/integration/monailabel_env.sh {VENV})")


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_infer_and_train(bundle, tmp_path):
    make_studies, label_name = BUNDLES[bundle]
    app = tmp_path / "app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__", "model"))
    studies = make_studies(tmp_path)
    study = sorted(p for p in studies.iterdir() if p.is_file() and ".nii" in p.name)[1]  # an oblique case
    image_id = study.name.split(".nii")[0]  # the local datastore's id: the file name without extension
    served = _serve_copy(bundle, app, study)
    weights = served / "models" / "model.pt"
    before = _digest(weights)
    timings = {}

    t0 = time.monotonic()
    server = Server(app, studies, bundle, tmp_path / "server.log")
    try:
        info = server.wait_ready()
        timings["start"] = time.monotonic() - t0
        assert bundle in info["models"], f"{bundle} not served; models {list(info['models'])}:\n{server.tail()}"
        assert bundle in info["trainers"]
        assert info["models"][bundle]["labels"] == {label_name: 1}  # metadata's channel_def, background dropped

        t0 = time.monotonic()
        try:
            label_bytes = _request(f"{server.url}/infer/{bundle}?image={image_id}&output=image", "POST", {})
        except urllib.error.HTTPError as error:
            raise AssertionError(f"/infer failed: {error.read()[-2000:]!r}\n{server.tail()}") from error
        timings["infer"] = time.monotonic() - t0
        label_path = tmp_path / f"label{''.join(study.suffixes)}"
        label_path.write_bytes(label_bytes)
        image, label = nib.load(str(study)), nib.load(str(label_path))
        assert label.shape == image.shape
        np.testing.assert_allclose(label.affine, image.affine, atol=1e-4)
        served_mask = np.asarray(label.dataobj)
        assert set(np.unique(served_mask)) <= {0, 1}
        # The same weights through the bundle's own inference.json (this environment's monai): MONAI Label
        # serves what the bundle computes, voxel for voxel (a flipped or shifted label would disagree).
        direct_mask = _bundle_inference(served, study, tmp_path / "direct")
        agreement = float((direct_mask == served_mask).mean())
        assert agreement > 0.999, f"served and direct masks agree on {agreement:.4f} of the voxels"
        timings["foreground %"] = 100 * float(served_mask.mean())
        assert 0.05 < served_mask.mean() < 0.95, "the calibrated weights should give a mask of some foreground"

        t0 = time.monotonic()
        body = {"max_epochs": 1, "device": "cpu", "multi_gpu": False}  # val_split: the default 0.2, 3 + 1 studies
        _request(f"{server.url}/train/{bundle}", "POST", body)
        status = {}
        deadline = time.monotonic() + TRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            status = json.loads(_request(f"{server.url}/train/"))
            if status.get("status") not in ("SUBMITTED", "RUNNING"):
                break
            time.sleep(2.0)
        timings["train"] = time.monotonic() - t0
        assert status.get("status") == "DONE", f"training ended as {status.get('status')}:\n{server.tail()}"
        assert _digest(weights) != before, f"models/model.pt was not rewritten:\n{server.tail()}"
        saved = torch.load(weights, map_location="cpu", weights_only=True)
        network = UNet3D(1, 1, width=TINY_WIDTH, out_activation="sigmoid")
        network.load_state_dict(saved.get("model", saved))
    finally:
        server.stop()
    print(f"{bundle}: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()), file=sys.stderr)
