"""monai_genesis.networks: the Models Genesis 3D U-Net, its classifier and weight loading."""

from .batchnorm import GenesisBatchNorm3d
from .classifier import GenesisClassifier
from .encoder import GenesisEncoder, scaled_filters
from .unet3d import UNet3D
from .weights import GenesisLoadReport, load_genesis_weights, read_state_dict
