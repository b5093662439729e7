"""monai_genesis.transforms: the Models Genesis corruptions as MONAI transforms (Zhou et al., MICCAI 2019)."""

from .batched import RandGenesisCorruptionBatch
from .fixed_seed import FixedSeedPerItemd
from .flip import RandGenesisFlip, RandGenesisFlipd
from .local_shuffle import RandLocalPixelShuffle, RandLocalPixelShuffled
from .nonlinear_intensity import RandNonLinearIntensity, RandNonLinearIntensityd, bezier_table
from .painting import RandInPainting, RandInPaintingd, RandOutPainting, RandOutPaintingd
from .pipeline import RandGenesisCorruptiond
from .validation import check_unit_cube

__all__ = [
    "RandGenesisFlip",
    "RandGenesisFlipd",
    "RandLocalPixelShuffle",
    "RandLocalPixelShuffled",
    "RandNonLinearIntensity",
    "RandNonLinearIntensityd",
    "RandInPainting",
    "RandInPaintingd",
    "RandOutPainting",
    "RandOutPaintingd",
    "RandGenesisCorruptiond",
    "RandGenesisCorruptionBatch",
    "bezier_table",
    "check_unit_cube",
    "FixedSeedPerItemd",
]
