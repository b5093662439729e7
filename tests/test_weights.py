"""load_genesis_weights, read_state_dict and `genesis convert-weights`: formats, adaptation, errors."""

import json
import logging
from pathlib import Path

import pytest
import torch

from monai_genesis.cli.convert import convert_weights
from monai_genesis.networks import GenesisClassifier, UNet3D, load_genesis_weights, read_state_dict

FIXTURE = Path(__file__).parent / "fixtures" / "genesis_chest_ct_state_dict.json"
TINY = 0.125


def _random_published_state(seed=0) -> dict:
    """Random tensors with exactly the keys and shapes of the published checkpoint ('module.' keys)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in json.loads(FIXTURE.read_text())["state_dict"].items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    return state


def _tiny_state(seed=0, **kwargs) -> dict:
    torch.manual_seed(seed)
    net = UNet3D(width=TINY, **kwargs)
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d)):
        bn.running_mean.uniform_(-0.5, 0.5)  # non-trivial buffers, so a missed load shows
        bn.running_var.uniform_(0.5, 1.5)
    return net.state_dict()


def _input(channels=1, seed=1) -> torch.Tensor:
    return torch.rand(2, channels, 16, 16, 8, generator=torch.Generator().manual_seed(seed))


def test_published_format_file_loads_like_the_tensors_themselves(tmp_path, caplog):
    published = _random_published_state()
    path = tmp_path / "Genesis_Chest_CT.pt"
    torch.save({"epoch": 3, "state_dict": published, "optimizer_state_dict": {"state": {}, "param_groups": []}}, path)
    x = torch.rand(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(1))

    net = UNet3D().eval()
    with caplog.at_level(logging.INFO, logger="monai_genesis.networks.weights"):
        report = load_genesis_weights(net, path)
    assert len(report.loaded) == 106 and not (report.adapted or report.reinitialised or report.missing)
    assert "loaded 106 tensors" in caplog.text and "Genesis_Chest_CT.pt" in caplog.text
    assert net.down_tr64.ops[0].bn1.num_batches_tracked.item() == 7
    with torch.no_grad():
        from_file = net(x)
        net.load_state_dict({k[len("module.") :]: v for k, v in published.items()})  # the tensors directly
        torch.testing.assert_close(from_file, net(x), rtol=0, atol=0)


@pytest.mark.parametrize("wrap", ["plain", "ignite", "published", "module_prefix"])
@pytest.mark.parametrize("from_file", [False, True])
def test_accepted_formats(tmp_path, wrap, from_file):
    state = _tiny_state()
    content = {
        "plain": state,
        "ignite": {"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 2},
        "published": {"epoch": 1, "state_dict": {"module." + k: v for k, v in state.items()}},
        "module_prefix": {"module." + k: v for k, v in state.items()},
    }[wrap]
    if from_file:
        torch.save(content, tmp_path / "weights.pt")
        content = str(tmp_path / "weights.pt")
    net = UNet3D(width=TINY)
    report = load_genesis_weights(net, content)
    assert sorted(report.loaded) == sorted(state)
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_data_parallel_target_is_unwrapped():
    state = _tiny_state()
    wrapped = torch.nn.DataParallel(UNet3D(width=TINY))
    load_genesis_weights(wrapped, {"state_dict": {"module." + k: v for k, v in state.items()}})
    assert torch.equal(wrapped.module.out_tr.final_conv.weight, state["out_tr.final_conv.weight"])


def test_encoder_only_load_into_classifier():
    state = _tiny_state()
    torch.manual_seed(5)
    classifier = GenesisClassifier(num_classes=2, width=TINY)
    head_before = {k: v.clone() for k, v in classifier.state_dict().items() if k.startswith("dense")}
    report = load_genesis_weights(classifier, {"state_dict": {"module." + k: v for k, v in state.items()}},
                                  part="encoder")
    encoder_keys = [k for k in state if k.startswith("down_tr")]
    assert report.loaded == encoder_keys and len(encoder_keys) == 56
    after = classifier.state_dict()
    assert all(torch.equal(after[k], state[k]) for k in encoder_keys)
    assert all(torch.equal(after[k], v) for k, v in head_before.items())  # head left as initialised
    # the classifier now sees exactly the U-Net's deepest features
    unet = UNet3D(width=TINY).eval()
    unet.load_state_dict(state)
    classifier.eval()
    x = _input()
    with torch.no_grad():
        torch.testing.assert_close(classifier.encode(x)[0], unet.encode(x)[0])


def test_whole_unet_into_classifier_explains_part_encoder():
    with pytest.raises(ValueError) as error:
        load_genesis_weights(GenesisClassifier(width=TINY), _tiny_state())
    message = str(error.value)
    assert "missing keys (4): ['dense_1.weight'" in message
    assert "unexpected keys (50)" in message and "up_tr256.up_conv.weight" in message
    assert "part='encoder'" in message and "\n" not in message


def test_more_input_channels_adapts_first_convolution(caplog):
    state = _tiny_state()
    single = UNet3D(width=TINY).eval()
    single.load_state_dict(state)
    four = UNet3D(in_channels=4, width=TINY).eval()
    with caplog.at_level(logging.INFO, logger="monai_genesis.networks.weights"):
        report = load_genesis_weights(four, state)
    assert report.adapted == ["down_tr64.ops.0.conv1.weight (input channels 1 -> 4)"]
    assert "adapted: down_tr64.ops.0.conv1.weight (input channels 1 -> 4)" in caplog.text
    expected = state["down_tr64.ops.0.conv1.weight"].repeat(1, 4, 1, 1, 1) / 4
    torch.testing.assert_close(four.down_tr64.ops[0].conv1.weight, expected)
    x = _input()
    with torch.no_grad():  # four copies of a modality respond as the one-channel model
        torch.testing.assert_close(four(x.repeat(1, 4, 1, 1, 1)), single(x), atol=1e-5, rtol=1e-4)


def test_other_class_count_leaves_output_layer_fresh(caplog):
    state = _tiny_state()
    torch.manual_seed(9)
    net = UNet3D(out_channels=3, width=TINY, out_activation=None)
    fresh = {k: v.clone() for k, v in net.out_tr.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="monai_genesis.networks.weights"):
        report = load_genesis_weights(net, state)
    assert report.reinitialised == [
        "out_tr.final_conv.weight (outputs 1 -> 3)",
        "out_tr.final_conv.bias (outputs 1 -> 3)",
    ]
    assert "reinitialised: out_tr.final_conv.weight (outputs 1 -> 3)" in caplog.text
    assert all(torch.equal(net.out_tr.state_dict()[k], v) for k, v in fresh.items())
    assert torch.equal(net.up_tr64.ops[1].conv1.weight, state["up_tr64.ops.1.conv1.weight"])
    assert len(report.loaded) == len(state) - 2


def test_classifier_checkpoint_with_other_class_count():
    torch.manual_seed(0)
    source = GenesisClassifier(num_classes=2, width=TINY).state_dict()
    target = GenesisClassifier(num_classes=5, width=TINY)
    report = load_genesis_weights(target, source)
    assert [r.split(" ")[0] for r in report.reinitialised] == ["dense_2.weight", "dense_2.bias"]
    assert torch.equal(target.dense_1.weight, source["dense_1.weight"])


def test_mismatches_are_listed_together():
    state = _tiny_state()
    del state["up_tr64.ops.1.bn1.running_var"]
    state["extra.weight"] = torch.zeros(3)
    state["up_tr128.ops.0.conv1.weight"] = torch.zeros(16, 48, 3, 3, 1)
    net = UNet3D(width=TINY)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError) as error:
        load_genesis_weights(net, state)
    message = str(error.value)
    assert "missing keys (1): ['up_tr64.ops.1.bn1.running_var']" in message
    assert "unexpected keys (1): ['extra.weight']" in message
    assert "up_tr128.ops.0.conv1.weight (checkpoint [16, 48, 3, 3, 1], model [16, 48, 3, 3, 3])" in message
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # nothing loaded

    report = load_genesis_weights(net, state, strict=False)  # non-strict: load the rest, report
    assert report.missing == ["up_tr64.ops.1.bn1.running_var"] and report.unexpected == ["extra.weight"]
    assert [m.split(" ")[0] for m in report.mismatched] == ["up_tr128.ops.0.conv1.weight"]
    assert torch.equal(net.down_tr64.ops[0].conv1.weight, state["down_tr64.ops.0.conv1.weight"])


@pytest.mark.parametrize(
    "source_kwargs, target_kwargs",
    [({"width": 0.25}, {}), ({"in_channels": 4}, {"in_channels": 1}), ({"in_channels": 2}, {"in_channels": 3})],
)
def test_shape_mismatches_raise(source_kwargs, target_kwargs):
    torch.manual_seed(0)
    source = UNet3D(**{"width": TINY, **source_kwargs}).state_dict()
    with pytest.raises(ValueError, match="shape-mismatched keys"):
        load_genesis_weights(UNet3D(**{"width": TINY, **target_kwargs}), source)


def test_bad_sources(tmp_path):
    net = UNet3D(width=TINY)
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_genesis_weights(net, tmp_path / "nowhere.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not read weights from .*garbage.pt"):
        load_genesis_weights(net, garbage)
    tensor_file = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(ValueError, match="holds a Tensor, not a dict"):
        load_genesis_weights(net, tensor_file)
    with pytest.raises(ValueError, match=r"none of the keys \['state_dict', 'model'"):
        load_genesis_weights(net, {"epoch": 1, "weights": [1, 2]})
    with pytest.raises(ValueError, match="entry 'down_tr64.ops.0.conv1.bias' is a list"):
        load_genesis_weights(net, {"state_dict": {"down_tr64.ops.0.conv1.bias": [0.0]}})
    with pytest.raises(TypeError, match="file path or a dict"):
        load_genesis_weights(net, 42)
    with pytest.raises(ValueError, match="part must be one of"):
        load_genesis_weights(net, _tiny_state(), part="decoder")
    with pytest.raises(ValueError, match="no parameters named like"):
        load_genesis_weights(torch.nn.Linear(2, 2), _tiny_state(), part="encoder")


class _NotAWeight:
    pass


def test_files_are_read_with_weights_only(tmp_path):
    path = tmp_path / "pickled_object.pt"
    torch.save({"state_dict": _tiny_state(), "extra": _NotAWeight()}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_genesis_weights(UNet3D(width=TINY), path)


def test_read_state_dict_strips_prefixes():
    state = {"module.module.a": torch.zeros(1), "b": torch.ones(1)}
    assert list(read_state_dict({"state_dict": state})) == ["a", "b"]


def test_convert_weights_cli(tmp_path):
    state = _tiny_state()
    src, dst = tmp_path / "Genesis_Chest_CT.pt", tmp_path / "bundle" / "models" / "model.pt"
    torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in state.items()}}, src)
    convert_weights(str(src), str(dst))
    converted = torch.load(dst, weights_only=True)
    assert list(converted) == list(state)
    assert all(torch.equal(converted[k], v) for k, v in state.items())
    UNet3D(width=TINY).load_state_dict(converted)  # plain, strict, no 'module.'
    with pytest.raises(FileExistsError, match="model.pt"):
        convert_weights(str(src), str(dst))
    convert_weights(str(src), str(dst), overwrite=True)
    with pytest.raises(FileNotFoundError):
        convert_weights(str(tmp_path / "missing.pt"), str(tmp_path / "out.pt"))
    broken = dict(state)
    del broken["up_tr64.ops.0.conv1.bias"]
    torch.save(broken, src)
    with pytest.raises(ValueError, match="up_tr64.ops.0.conv1.bias"):
        convert_weights(str(src), str(tmp_path / "out.pt"))
