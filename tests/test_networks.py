"""UNet3D, GenesisClassifier and GenesisBatchNorm3d: architecture, options, errors, TorchScript."""

import json
from pathlib import Path

import pytest
import torch
from monai.networks.utils import convert_to_torchscript

from monai_genesis.networks import GenesisBatchNorm3d, GenesisClassifier, GenesisEncoder, UNet3D, scaled_filters

FIXTURE = Path(__file__).parent / "fixtures" / "genesis_chest_ct_state_dict.json"
TINY = 0.125  # filters 4..64


def _published_shapes() -> dict:
    shapes = json.loads(FIXTURE.read_text())["state_dict"]
    return {k[len("module.") :]: v for k, v in shapes.items()}


def _input(batch=2, channels=1, size=(16, 16, 8), seed=0) -> torch.Tensor:
    return torch.rand(batch, channels, *size, generator=torch.Generator().manual_seed(seed))


def test_published_architecture_keys_shapes_and_parameter_count():
    net = UNet3D()
    state = net.state_dict()
    published = _published_shapes()
    assert list(state) == list(published)  # same names, same order
    assert {k: list(v.shape) for k, v in state.items()} == published
    assert sum(p.numel() for p in net.parameters()) == 19_073_665


def test_width_scales_every_layer():
    assert scaled_filters(1.0) == (32, 64, 128, 256, 512)
    assert scaled_filters(TINY) == (4, 8, 16, 32, 64)
    tiny = UNet3D(width=TINY).state_dict()
    for key, shape in _published_shapes().items():
        # channel axes (the first two) shrink 8-fold, except the single input/output channel
        expected = [s // 8 if i < 2 and s > 1 else s for i, s in enumerate(shape)]
        assert list(tiny[key].shape) == expected, key


@pytest.mark.parametrize("out_channels", [1, 3])
def test_output_shape_and_activations(out_channels):
    torch.manual_seed(0)
    logits_net = UNet3D(in_channels=2, out_channels=out_channels, width=TINY, out_activation=None)
    x = _input(channels=2)
    logits = logits_net(x)
    assert logits.shape == (2, out_channels, 16, 16, 8)
    assert logits.min() < 0 or logits.max() > 1  # raw logits, not squashed
    for name, expected in (("sigmoid", torch.sigmoid(logits)), ("softmax", torch.softmax(logits, 1))):
        net = UNet3D(in_channels=2, out_channels=out_channels, width=TINY, out_activation=name)
        net.load_state_dict(logits_net.state_dict())
        torch.testing.assert_close(net(x), expected, atol=1e-6, rtol=1e-5)
    assert UNet3D(width=TINY, out_activation="none").out_tr.activation == "none"


def test_channels_last_matches_ncdhw_forward_and_backward():
    torch.manual_seed(0)
    plain = UNet3D(width=TINY, channels_last=False)
    fast = UNet3D(width=TINY, channels_last=True)
    fast.load_state_dict(plain.state_dict())
    assert fast.down_tr64.ops[0].conv1.weight.is_contiguous(memory_format=torch.channels_last_3d)
    x = _input()
    out_plain, out_fast = plain(x), fast(x)
    assert out_fast.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(out_fast, out_plain, atol=1e-5, rtol=1e-4)
    out_plain.square().mean().backward()
    out_fast.square().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-3, msg=name)


def test_batch_norm_matches_torch_in_training_and_default_eval():
    torch.manual_seed(0)
    ours, ref = GenesisBatchNorm3d(3), torch.nn.BatchNorm3d(3)
    x = torch.randn(2, 3, 4, 4, 4) * 3 + 1
    torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    assert ours.num_batches_tracked.item() == ref.num_batches_tracked.item() == 1
    ours.eval(), ref.eval()
    torch.testing.assert_close(ours(x), ref(x))


def test_batch_stats_in_eval_reproduces_reference_batch_norm():
    torch.manual_seed(0)
    bn = GenesisBatchNorm3d(3, batch_stats_in_eval=True).eval()
    bn.running_mean.fill_(5.0)
    x = torch.randn(2, 3, 4, 4, 4) * 3 + 1
    out = bn(x)
    # the reference: F.batch_norm with training=True whatever the mode
    expected = torch.nn.functional.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
    torch.testing.assert_close(out, expected)
    assert out.mean().abs() < 1e-5  # normalised by the batch, not by running_mean=5
    assert torch.all(bn.running_mean == 5.0) and bn.num_batches_tracked.item() == 0  # buffers untouched


def test_batch_stats_in_eval_network_option():
    torch.manual_seed(0)
    x = _input(batch=3)
    for batch_stats in (False, True):
        net = UNet3D(width=TINY, batch_stats_in_eval=batch_stats)
        train_out = net(x)  # batch statistics (also updates the running statistics)
        buffers = {k: v.clone() for k, v in net.state_dict().items()}
        net.eval()
        with torch.no_grad():
            eval_out, first_alone = net(x), net(x[:1])
        assert all(torch.equal(v, net.state_dict()[k]) for k, v in buffers.items())
        if batch_stats:  # evaluation behaves as training: depends on the whole batch
            torch.testing.assert_close(eval_out, train_out.detach())
            assert not torch.allclose(first_alone, eval_out[:1], atol=1e-4)
        else:  # ordinary batch norm: each sample on its own, with running statistics
            assert not torch.allclose(eval_out, train_out.detach(), atol=1e-4)
            torch.testing.assert_close(first_alone, eval_out[:1], atol=1e-6, rtol=1e-5)


def test_classifier_structure_and_logits():
    full = GenesisClassifier()
    assert full.dense_1.in_features == 512 and full.dense_1.out_features == 1024
    assert full.dense_2.out_features == 1
    encoder_keys = [k for k in _published_shapes() if k.startswith("down_tr")]
    assert [k for k in full.state_dict() if k.startswith("down_tr")] == encoder_keys
    assert {k.split(".")[0] for k in full.state_dict()} == {"down_tr64", "down_tr128", "down_tr256", "down_tr512",
                                                              "dense_1", "dense_2"}
    torch.manual_seed(0)
    tiny = GenesisClassifier(in_channels=2, num_classes=3, width=TINY)
    x = _input(channels=2)
    deepest, skips = tiny.encode(x)
    assert deepest.shape == (2, 64, 2, 2, 1)
    assert [s.shape[1] for s in skips] == [8, 16, 32]
    logits = tiny(x)
    assert logits.shape == (2, 3)
    expected = tiny.dense_2(torch.relu(tiny.dense_1(deepest.mean(dim=(2, 3, 4)))))
    torch.testing.assert_close(logits, expected)


def test_encoder_alone_returns_deepest_features():
    encoder = GenesisEncoder(width=TINY)
    assert encoder(_input()).shape == (2, 64, 2, 2, 1)
    assert encoder.feature_channels == 64


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"width": 0}, "width"),
        ({"width": -1.0}, "width"),
        ({"width": 0.001}, "no filters"),
        ({"width": "1"}, "width"),
        ({"in_channels": 0}, "in_channels"),
        ({"out_channels": 0}, "out_channels"),
        ({"out_channels": 1.5}, "out_channels"),
        ({"out_activation": "relu"}, "out_activation"),
    ],
)
def test_unet_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNet3D(**kwargs)


def test_classifier_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        GenesisClassifier(num_classes=0)
    with pytest.raises(ValueError, match="width"):
        GenesisClassifier(width=0)


BAD_INPUTS = [
    ((2, 1, 12, 16, 8), r"spatial size \[12, 16, 8\] must be divisible by 8"),
    ((2, 1, 16, 16, 4), "divisible by 8"),
    ((2, 2, 16, 16, 8), "in_channels=1, got an input with 2 channels"),
    ((1, 16, 16, 8), "5D input"),
]


@pytest.mark.parametrize("network", [UNet3D, GenesisClassifier])
def test_forward_rejects_bad_input_shapes(network):
    net = network(width=TINY)
    scripted = torch.jit.script(net)
    for shape, message in BAD_INPUTS:
        with pytest.raises(ValueError, match=message):
            net(torch.zeros(shape))
        with pytest.raises(Exception, match=message):  # TorchScript re-raises as torch.jit.Error
            scripted(torch.zeros(shape))


@pytest.mark.parametrize("channels_last", [False, True])
def test_torchscript_round_trip(tmp_path, channels_last):
    torch.manual_seed(0)
    x = _input(channels=2)
    for net in (
        UNet3D(in_channels=2, out_channels=2, width=TINY, channels_last=channels_last),
        GenesisClassifier(in_channels=2, num_classes=3, width=TINY, channels_last=channels_last),
    ):
        net.eval()
        path = tmp_path / f"{type(net).__name__}.ts"
        # the path `monai.bundle ckpt_export` takes; verify=True compares outputs itself
        convert_to_torchscript(net, filename_or_obj=path, verify=True, inputs=[x], rtol=1e-5, atol=1e-6)
        loaded = torch.jit.load(str(path))
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), net(x), rtol=1e-5, atol=1e-6)
            deepest, _ = loaded.encode(x)
            torch.testing.assert_close(deepest, net.encode(x)[0], rtol=1e-5, atol=1e-6)
