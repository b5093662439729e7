"""init_from_pretrained: the bundles' pretrained_path key (scratch when empty, Genesis weights otherwise)."""

import logging

import pytest
import torch

from monai_genesis.networks import GenesisClassifier, UNet3D
from monai_genesis.training import init_from_pretrained

TINY = 0.125


def test_empty_path_trains_from_scratch_and_says_so(caplog):
    net = UNet3D(width=TINY)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="monai_genesis.training.pretrained"):
        assert init_from_pretrained(net, "") is net
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert "from scratch" in caplog.text


def test_unet_checkpoint_initialises_classifier_encoder(tmp_path, caplog):
    torch.manual_seed(0)
    source = UNet3D(width=TINY)
    path = tmp_path / "model.pt"
    torch.save(source.state_dict(), path)
    torch.manual_seed(1)
    classifier = GenesisClassifier(width=TINY, num_classes=1)
    with caplog.at_level(logging.INFO, logger="monai_genesis.training.pretrained"):
        init_from_pretrained(classifier, str(path), part="encoder")
    for key, value in classifier.state_dict().items():
        if key.startswith("down_tr"):
            assert torch.equal(value, source.state_dict()[key]), key
    assert "Genesis weights" in caplog.text and str(path) in caplog.text


def test_missing_pretrained_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        init_from_pretrained(UNet3D(width=TINY), str(tmp_path / "nope.pt"))
