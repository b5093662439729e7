"""The segmentation bundles' train.json under the overrides MONAI Label 0.8.5's BundleTrainTask passes to
`monai.bundle.run` (the real server is tested by tests/integration/test_monailabel.py, `make test-monailabel`).

BundleTrainTask sets `bundle_root`, `train#trainer#max_epochs`, `train#dataset#data` and
`validate#dataset#data` (lists of {"image", "label"} paths from the studies' labels/final, split by the
request's `val_split`, 0.2 by default), `device` as a string, and `train#handlers`: the bundle's own list
with a `CheckpointLoader` of `models/model.pt` inserted first, loading `{"model": "$@network"}`.
"""

import json

import monai.bundle
import pytest
import torch

from monai_genesis.networks import UNet3D
from monai_genesis.phantoms.layouts import write_nodule_layout
from segmentation_bundles import TINY_WIDTH, configs

SEGMENTATION_BUNDLES = ["genesis_lung_nodule_segmentation", "genesis_liver_segmentation", "genesis_brain_tumor_segmentation"]
pytestmark = pytest.mark.filterwarnings("ignore:Detected deprecated name 'optional_packages_version'")


@pytest.mark.parametrize("bundle", SEGMENTATION_BUNDLES)
def test_train_config_has_the_ids_monailabel_overrides(bundle):
    config = monai.bundle.ConfigParser()
    config.read_config(str(configs(bundle) / "train.json"))
    for key in ("bundle_root", "device", "network", "train#trainer#max_epochs", "train#dataset#data", "validate#dataset#data"):
        assert key in config, key
    assert isinstance(config["train#handlers"], list)  # a loader is inserted into the list as it is in the file
    assert config["train#trainer#train_handlers"] == "@train#handlers"
    meta = json.loads((configs(bundle) / "metadata.json").read_text())
    assert next(iter(meta["network_data_format"]["inputs"])) == "image"
    assert next(iter(meta["network_data_format"]["outputs"])) == "pred"


@pytest.mark.slow
def test_two_labelled_studies_train_and_rewrite_model_pt(tmp_path):
    """Two labelled studies: the default val_split leaves validation empty; one epoch still starts from
    models/model.pt and rewrites it with the trained weights (with a validation study the best epoch is
    kept as usual: the integration test)."""
    bundle = "genesis_lung_nodule_segmentation"
    write_nodule_layout(tmp_path / "studies", num_cases=2, shape=(40, 40, 32), spacing=(2.0, 2.0, 2.5))
    images = sorted((tmp_path / "studies" / "images").glob("*.nii.gz"))
    data = [{"image": str(p), "label": str(tmp_path / "studies" / "labels" / p.name)} for p in images]
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    torch.manual_seed(0)
    start = UNet3D(width=TINY_WIDTH).state_dict()
    torch.save({"model": start}, root / "models" / "model.pt")

    train_config = json.loads((configs(bundle) / "train.json").read_text())
    handlers = [{"_target_": "CheckpointLoader", "load_path": str(root / "models" / "model.pt"),
                 "load_dict": {"model": "$@network"}, "strict": False}] + train_config["train"]["handlers"]
    overrides = {"bundle_root": str(root), "train#trainer#max_epochs": 1, "train#dataset#data": data,
                 "validate#dataset#data": [], "device": "cpu", "train#handlers": handlers,
                 # the copy's defaults for a tiny CPU run (the weights' width)
                 "network_width": TINY_WIDTH, "cube_size": [16, 16, 16], "batch_size": 4, "num_samples": 2,
                 "num_workers": 0, "channels_last": False}
    monai.bundle.run(run_id="run", init_id=None, final_id=None, meta_file=str(configs(bundle) / "metadata.json"),
                     config_file=str(configs(bundle) / "train.json"), logging_file=False, **overrides)

    saved = torch.load(root / "models" / "model.pt", weights_only=True)
    assert saved["epoch"] == 1
    changed = [k for k, v in saved["model"].items() if v.is_floating_point() and not torch.equal(v, start[k])]
    assert changed, "models/model.pt still holds the starting weights"
    UNet3D(width=TINY_WIDTH).load_state_dict(saved["model"])
