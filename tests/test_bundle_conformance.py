"""MONAI Model Zoo conformance of every bundle, as the Model Zoo's CI checks a bundle, plus ONNX export.

Per bundle: the required files and a ``large_files.yml`` that MONAI's ``download_large_files`` reads;
version and changelog; ``verify_metadata`` against ``../shared/schemas/``; the config keys the Model
Zoo asks for; ``verify_net_in_out`` on ``inference.json``; the ``monai.bundle`` workflow properties
(train, evaluate, infer); ``ckpt_export`` to TorchScript and ``onnx_export`` to ONNX, each compared with
the PyTorch network on a random input. No fine-tuned weights exist for the target tasks, so the tests
write ``models/model.pt`` from the initialised network (as the Model Zoo's own CI does); the weights
declared in ``large_files.yml`` are stood in for by a tiny checkpoint in the published format, written
where MONAI's downloader would put it.

Tiny settings: network width 0.125, volumes and cubes of a few thousand voxels, no training steps.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, ckpt_export, onnx_export, verify_metadata, verify_net_in_out

from monai_genesis.networks import load_genesis_weights

pytestmark = pytest.mark.filterwarnings("ignore:Detected deprecated name 'optional_packages_version'")
REPO = Path(__file__).resolve().parents[1]
BUNDLES_DIR = REPO / "bundles"
# CI lays shared/ beside the checkout; the copy in tests/fixtures is the same file (same md5)
SHARED_SCHEMA = REPO.parent / "shared" / "schemas" / "meta_schema_20220324.json"
FIXTURE_SCHEMA = REPO / "tests" / "fixtures" / "meta_schema_20220324.json"
SCHEMA_MD5 = "662135097106b71067cd1fc657f8720f"
PUBLISHED_URL = "https://huggingface.co/MrGiovanni/ModelsGenesis/resolve/main/Genesis_Chest_CT.pt?download=true"
WIDTH = 0.125
HASH_TYPES = ("", "md5", "sha1", "sha256", "sha512")
# largest difference accepted between an exported network's output and PyTorch's (float32, same weights)
TS_ATOL, ONNX_ATOL = 1e-6, 1e-4

# per bundle: the tiny settings of its tests, the weights that large_files.yml declares, and the format in
# which the bundle holds models/model.pt
SEGMENTATION = {"cube_size": [16, 16, 16], "batch_size": 2, "num_samples": 1}
TARGET = {"declared": "models/Genesis_Chest_CT.pt", "model_format": "training"}
BUNDLES = {
    "genesis_pretrain": {"tiny": {"cube_size": [32, 32, 16], "batch_size": 2}, "declared": "models/model.pt",
                         "model_format": "published"},
    "genesis_lung_nodule_segmentation": {"tiny": SEGMENTATION, **TARGET},
    "genesis_liver_segmentation": {"tiny": SEGMENTATION, **TARGET},
    "genesis_brain_tumor_segmentation": {"tiny": SEGMENTATION, **TARGET},
    "genesis_lung_nodule_fpr": {"tiny": {"cube_size": [16, 16, 16], "batch_size": 2}, **TARGET},
    "genesis_pe_fpr": {"tiny": {"cube_size": [16, 16, 16], "batch_size": 2}, **TARGET},
}
EXPORT_SPATIAL = [16, 16, 16]  # input of the export checks: divisible by the U-Net's 2**3
COMMON = {"device": "cpu", "network_width": WIDTH, "num_workers": 0}


def _schema() -> Path:
    return SHARED_SCHEMA if SHARED_SCHEMA.is_file() else FIXTURE_SCHEMA


def _configs(bundle: str) -> Path:
    return BUNDLES_DIR / bundle / "configs"


def _copy_bundle(bundle: str, tmp_path: Path) -> Path:
    """A copy of the bundle folder, so that models/ and eval/ are written under tmp_path."""
    root = tmp_path / bundle
    shutil.copytree(BUNDLES_DIR / bundle, root, ignore=shutil.ignore_patterns("models", "eval", "runs"))
    return root


def _tiny_state(bundle: str, seed: int = 0) -> dict:
    """The state dict of the bundle's inference network at width 0.125, with non-trivial batch-norm buffers."""
    torch.manual_seed(seed)
    net = _network(bundle)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    return {k: v.clone().contiguous() for k, v in net.state_dict().items()}


def _network(bundle: str, **overrides) -> torch.nn.Module:
    parser = ConfigParser()
    parser.read_config(str(_configs(bundle) / "inference.json"))
    # no checkpoint is read: the pretraining bundle would take its network settings from one
    parser.update({**COMMON, "ckpt_dir": str(REPO / "tests" / "no-such-models-folder"), **overrides})
    return parser.get_parsed_content("network_def", instantiate=True)


def _published(state: dict) -> dict:
    """The layout of the published Genesis_Chest_CT.pt (DataParallel names, optimizer and epoch beside)."""
    return {"epoch": 1, "state_dict": {"module." + k: v for k, v in state.items()},
            "optimizer_state_dict": {"state": {}, "param_groups": []}}


def _write_model(bundle: str, root: Path) -> tuple[Path, dict]:
    """models/model.pt in the format the bundle holds it: the published file (pretraining bundle, as
    large_files.yml fetches it) or a checkpoint as training writes it (target bundles)."""
    state = _tiny_state(bundle)
    path = root / "models" / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if BUNDLES[bundle]["model_format"] == "published":
        content = _published(state)
    else:
        content = {"model": state, "epoch": 1, "iteration": 1,
                   "settings": {"network_width": WIDTH, "cube_size": EXPORT_SPATIAL}}
    torch.save(content, path)
    return path, state


def _loaded_network(bundle: str, ckpt: Path) -> torch.nn.Module:
    net = _network(bundle)
    load_genesis_weights(net, ckpt)
    return net.eval()


def _input_shape(bundle: str) -> list[int]:
    return [1, _network(bundle).in_channels, *EXPORT_SPATIAL]


def _input(bundle: str, seed: int) -> torch.Tensor:
    return torch.rand(*_input_shape(bundle), generator=torch.Generator().manual_seed(seed))


def test_networks_load_the_published_and_training_formats_strictly():
    """What lets MONAI's own loaders (ckpt_export, onnx_export, CheckpointLoader) read those files unconverted."""
    from monai_genesis.networks import GenesisClassifier, UNet3D

    state = _tiny_state("genesis_pretrain")
    for content in (_published(state), {"model": state, "optimizer": {}, "epoch": 1}, state):
        net = UNet3D(width=WIDTH)
        net.load_state_dict(content)
        assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    with pytest.raises(RuntimeError, match="Unexpected key"):  # still strict: a U-Net is not a classifier
        GenesisClassifier(width=WIDTH).load_state_dict(_published(state))
    with pytest.raises(ValueError, match="none of the keys"):
        UNet3D(width=WIDTH).load_state_dict({"epoch": 1})
    GenesisClassifier(width=WIDTH).load_state_dict(  # non-strict loads of plain dicts are PyTorch's
        {k: v for k, v in state.items() if k.startswith("down_tr")}, strict=False)


@pytest.mark.parametrize("bundle", list(BUNDLES))
def test_layout_version_and_metadata(bundle, tmp_path):
    root = BUNDLES_DIR / bundle
    for name in ("LICENSE", "docs/README.md", "configs/metadata.json", "configs/inference.json", "configs/train.json",
                 "configs/evaluate.json", "configs/multi_gpu_train.json", "configs/logging.conf", "large_files.yml"):
        assert (root / name).is_file(), f"{bundle}: {name} is missing"
    assert hashlib.md5(_schema().read_bytes()).hexdigest() == SCHEMA_MD5
    verify_metadata(meta_file=str(root / "configs" / "metadata.json"), filepath=str(_schema()),
                    hash_val=SCHEMA_MD5, hash_type="md5")
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    version = meta["version"]
    assert len(version.split(".")) == 3 and all(p.isdigit() for p in version.split("."))
    assert version in meta["changelog"] and meta["changelog"][version].strip()
    assert list(meta["changelog"]) == sorted(meta["changelog"], key=lambda v: [int(p) for p in v.split(".")], reverse=True)

    # large_files.yml as the Model Zoo and MONAI read it: path inside the bundle, URL, optional hash
    large = ConfigParser.load_config_file(str(root / "large_files.yml"))["large_files"]
    assert [f["path"] for f in large] == [BUNDLES[bundle]["declared"]]
    for entry in large:
        assert not Path(entry["path"]).is_absolute() and ".." not in Path(entry["path"]).parts
        assert entry["url"] == PUBLISHED_URL
        assert entry.get("hash_type", "") in HASH_TYPES and (entry.get("hash_val", "") == "") == (entry.get("hash_type", "") == "")

    # keys the Model Zoo asks for (CONTRIBUTING, "Preferred Files and Keys")
    infer = json.loads((root / "configs" / "inference.json").read_text())
    assert {"bundle_root", "device", "network_def", "inferer", "output_dir"} <= set(infer)
    train = ConfigParser()
    train.read_config(str(root / "configs" / "train.json"))
    for key in ("bundle_root", "device", "dataset_dir", "output_dir", "train#trainer", "train#trainer#max_epochs",
                "train#dataset", "train#handlers", "train#inferer", "validate#evaluator", "validate#handlers",
                "validate#dataset", "val_interval"):
        assert key in train, f"{bundle}: train.json lacks {key}"
    validation = [h for h in train["train#handlers"] if h.get("_target_") == "ValidationHandler"]
    assert [h["interval"] for h in validation] == ["@val_interval"]


@pytest.mark.parametrize("bundle", list(BUNDLES))
def test_network_matches_metadata(bundle):
    """verify_net_in_out builds inference.json's network and runs the input shape metadata.json declares."""
    meta = json.loads((_configs(bundle) / "metadata.json").read_text())
    shape = meta["network_data_format"]["inputs"]["image"]["spatial_shape"]
    assert all(isinstance(s, int) and s % 8 == 0 for s in shape)  # the U-Net's three 2x2x2 poolings
    verify_net_in_out(net_id="network_def", meta_file=str(_configs(bundle) / "metadata.json"),
                      config_file=str(_configs(bundle) / "inference.json"), device="cpu", network_width=WIDTH)


def _data(bundle: str, root: Path) -> dict:
    """The smallest data each bundle's workflows read, and the overrides that point at it."""
    if bundle == "genesis_pretrain":
        (root / "cubes").mkdir(parents=True)
        rng = np.random.default_rng(0)
        datalist = {}
        for section in ("training", "validation", "test"):
            np.save(root / "cubes" / f"{section}.npy", rng.uniform(0, 1, (2, 32, 32, 16)).astype(np.float16))
            datalist[section] = [{"image": f"cubes/{section}.npy", "cube_index": i} for i in range(2)]
        (root / "datalist.json").write_text(json.dumps(datalist))
        (root / "volumes").mkdir()
        nib.save(nib.Nifti1Image(rng.uniform(-1000, 400, (32, 32, 16)).astype(np.int16), np.eye(4)),
                 str(root / "volumes" / "ct.nii.gz"))
        return {"train": {"dataset_dir": str(root)}, "infer": {"dataset_dir": str(root / "volumes")}}
    if bundle == "genesis_lung_nodule_segmentation":
        from monai_genesis.data.segmentation import paired_datalist
        from monai_genesis.phantoms.layouts import write_nodule_layout

        write_nodule_layout(root, num_cases=4, shape=(32, 32, 32), spacing=(3.0, 3.0, 4.0), num_nodules=1)
        paired_datalist(root / "images", root / "labels", root / "datalist.json", val_fraction=0.25,
                        test_fraction=0.25, seed=0)
        return {"train": {"dataset_dir": str(root)}, "infer": {"dataset_dir": str(root / "images")}}
    if bundle == "genesis_liver_segmentation":
        from monai_genesis.data.segmentation import lits_datalist
        from monai_genesis.phantoms.layouts import write_lits_layout

        write_lits_layout(root / "lits", case_numbers=(0, 1, 100, 115), shape=(32, 32, 32), spacing=(4.5, 4.5, 6.0))
        lits_datalist(root / "lits", root / "lits" / "datalist.json")
        volume = sorted((root / "lits").glob("volume-*.nii*"))[0]
        (root / "infer").mkdir()
        shutil.copy(volume, root / "infer" / volume.name)
        return {"train": {"dataset_dir": str(root / "lits")}, "infer": {"dataset_dir": str(root / "infer")}}
    if bundle == "genesis_brain_tumor_segmentation":
        from monai_genesis.data.brain import make_brain_datalist
        from monai_genesis.phantoms.brain_layouts import write_brats_folders

        write_brats_folders(root, 4, shape=(32, 32, 32))
        make_brain_datalist(root, patch_size=(16, 16, 16), progress=False)
        return {"train": {"dataset_dir": str(root)}, "infer": {"dataset_dir": str(root)}}
    from monai_genesis.data.candidate_volumes import prepare_candidate_volumes

    if bundle == "genesis_lung_nodule_fpr":
        from monai_genesis.phantoms.chest_ct import write_chest_ct_dataset

        write_chest_ct_dataset(root / "raw", num_cases=3, shape=(48, 48, 32), spacing=(1.2, 1.2, 1.5), seed=1,
                               formats=("nii.gz",), num_nodules=2, num_false_positives=2, nodule_diameter_mm=(4.0, 8.0))
        prepare_candidate_volumes(root / "raw" / "images", root / "prep", val_fraction=0.34, test_fraction=0.34,
                                  progress=False)
    else:
        from monai_genesis.phantoms.ctpa import write_ctpa_dataset

        write_ctpa_dataset(root / "raw", num_cases=3, shape=(48, 48, 32), seed=2, num_emboli=2, num_false_positives=2)
        prepare_candidate_volumes(root / "raw" / "images", root / "prep", num_folds=3, val_fraction=0.34,
                                  progress=False)
    data = {"dataset_dir": str(root / "prep"), "candidates_csv": str(root / "raw" / "candidates.csv")}
    return {"train": data, "infer": data}


def _workflow(bundle: str, root: Path, files, workflow_type: str, **overrides) -> ConfigWorkflow:
    configs = root / "configs"
    wf = ConfigWorkflow(config_file=[str(configs / f) for f in files], meta_file=str(configs / "metadata.json"),
                        logging_file=False, workflow_type=workflow_type, bundle_root=str(root),
                        **{**COMMON, **BUNDLES[bundle]["tiny"], **overrides})
    wf.initialize()
    return wf


@pytest.mark.parametrize("bundle", list(BUNDLES))
def test_workflow_properties_and_declared_weights(bundle, tmp_path, monkeypatch):
    """Train, evaluate and infer workflows have every required property of monai.bundle (TrainProperties,
    InferProperties, MetaProperties), with the weights of large_files.yml fetched the way MONAI fetches them
    (its downloader replaced by one that writes a tiny checkpoint in the published format) and read unconverted."""
    import monai.bundle.scripts as scripts

    root = _copy_bundle(bundle, tmp_path)
    state = _tiny_state(bundle, seed=4)
    fetched = []

    def fake_download(url, filepath, **kwargs):
        fetched.append((url, Path(filepath), kwargs))
        Path(filepath).parent.mkdir(parents=True, exist_ok=True)
        torch.save(_published(state), filepath)

    monkeypatch.setattr(scripts, "download_url", fake_download)
    scripts.download_large_files(bundle_path=str(root))
    declared = root / BUNDLES[bundle]["declared"]
    assert [(u, p) for u, p, _ in fetched] == [(PUBLISHED_URL, declared)]
    assert "hash_val" not in fetched[0][2]  # no hash is published: none is checked or invented

    data = _data(bundle, tmp_path / "data")
    if bundle == "genesis_pretrain":
        train_overrides = {}
    else:  # target bundles: the declared file is the §5.1 initialisation
        train_overrides = {"pretrained_path": str(declared)}
    wf = _workflow(bundle, root, ["train.json"], "train", **data["train"], **train_overrides)
    assert wf.check_properties() == []
    if bundle != "genesis_pretrain":
        net = wf.parser.get_parsed_content("network_def")
        loaded = {k: v for k, v in net.state_dict().items() if k.startswith("down_tr")}
        assert loaded and all(torch.equal(v, state[k]) for k, v in loaded.items())

    if bundle != "genesis_pretrain":
        _write_model(bundle, root)
    ev = _workflow(bundle, root, ["train.json", "evaluate.json"], "eval", **data["train"])
    assert ev.check_properties() == []
    inf = _workflow(bundle, root, ["inference.json"], "infer", **data["infer"])
    assert inf.check_properties() == []
    net = inf.parser.get_parsed_content("network")
    expected = state if bundle == "genesis_pretrain" else _tiny_state(bundle)
    assert all(torch.equal(v.cpu(), expected[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize("bundle", list(BUNDLES))
def test_torchscript_export(bundle, tmp_path):
    """ckpt_export with the Model Zoo's arguments (no key_in_ckpt) on models/model.pt as the bundle holds it."""
    root = _copy_bundle(bundle, tmp_path)
    ckpt, state = _write_model(bundle, root)
    ts_path = root / "models" / "model.ts"
    overrides = {} if bundle == "genesis_pretrain" else {"network_width": WIDTH}  # pretraining: from the checkpoint
    ckpt_export(net_id="network_def", filepath=str(ts_path), ckpt_file=str(ckpt),
                meta_file=str(root / "configs" / "metadata.json"), config_file=str(root / "configs" / "inference.json"),
                bundle_root=str(root), device="cpu", **overrides)
    extra = {"metadata.json": "", "inference.json": ""}
    ts = torch.jit.load(str(ts_path), _extra_files=extra).eval()
    assert json.loads(extra["metadata.json"])["version"] == json.loads((root / "configs" / "metadata.json").read_text())["version"]
    assert "network_def" in json.loads(extra["inference.json"])
    assert all(torch.equal(ts.state_dict()[k], v) for k, v in state.items())  # the checkpoint's weights, not fresh ones
    net = _loaded_network(bundle, ckpt)
    x = _input(bundle, seed=1)
    with torch.no_grad():
        diff = (ts(x) - net(x)).abs().max().item()
    print(f"{bundle}: TorchScript max abs diff {diff:.3g}")
    assert diff <= TS_ATOL


def _architecture(bundle: str) -> str:
    """What fixes the exported graph: the layers and every plain setting of every module (activation,
    memory format, batch-norm mode, input channels)."""
    net = _network(bundle)
    settings = [(name, sorted((k, v) for k, v in vars(m).items() if isinstance(v, (str, int, float, bool)) and k != "training"))
                for name, m in net.named_modules()]
    return repr((repr(net), settings))


def _same_network_groups() -> list[list[str]]:
    """Bundles whose inference networks are the same architecture: one ONNX export covers each group
    (an export costs seconds; the bundles' checkpoint formats go through ckpt_export's loading, tested above)."""
    groups: dict = {}
    for bundle in BUNDLES:
        groups.setdefault(_architecture(bundle), []).append(bundle)
    return list(groups.values())


@pytest.mark.parametrize("group", _same_network_groups(), ids=lambda group: "+".join(group))
def test_onnx_export(group, tmp_path):
    """onnx_export (traced by torch.onnx's exporter) of models/model.pt; onnxruntime agrees with PyTorch,
    for the first bundle of each group of bundles with the same network."""
    import onnxruntime

    bundle = group[0]
    root = _copy_bundle(bundle, tmp_path)
    ckpt, _ = _write_model(bundle, root)
    overrides = {} if bundle == "genesis_pretrain" else {"network_width": WIDTH}
    onnx_path = root / "models" / "model.onnx"
    onnx_export(net_id="network_def", filepath=str(onnx_path), ckpt_file=str(ckpt),
                meta_file=str(root / "configs" / "metadata.json"), config_file=str(root / "configs" / "inference.json"),
                use_trace=True, input_shape=_input_shape(bundle), bundle_root=str(root),
                device="cpu", **overrides)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    net = _loaded_network(bundle, ckpt)
    x = _input(bundle, seed=2)  # another input than the export traced
    (output,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = net(x).numpy()
    assert output.shape == expected.shape
    diff = float(np.abs(output - expected).max())
    print(f"{'+'.join(group)}: ONNX (onnxruntime) max abs diff {diff:.3g}")
    assert diff <= ONNX_ATOL
