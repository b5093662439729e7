"""monai_genesis.metrics: the evaluation figures of the target tasks (docs/method.md §5.2)."""
