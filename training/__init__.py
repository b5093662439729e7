"""monai_genesis.training: engine pieces the bundles wire from their configs."""

from monai_genesis.training.pretrained import init_from_pretrained

__all__ = ["init_from_pretrained"]
