"""monai_genesis.training: engine pieces the bundles wire from their configs."""
