"""monai_genesis.transforms: the Models Genesis corruptions as MONAI transforms (``docs/method.md`` §2).

Each transform module holds its rules (sizes, counts, rates); ``kernels/`` holds one compiled CPU and
one torch kernel per operation, which execute the plans the transforms draw."""

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
