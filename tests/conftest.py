"""Test-wide settings."""

import torch

# The suite runs as one pytest-xdist worker per core on tiny tensors: a second torch thread per
# worker only oversubscribes the cores (small ops became many times slower in measurements).
torch.set_num_threads(1)

# tests/integration/ needs MONAI Label's own environment: `make test-monailabel` runs it by path.
collect_ignore = ["integration"]
