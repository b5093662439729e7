"""`genesis synth KIND OUTPUT_DIR`: write a synthetic dataset (no downloads needed).

Example:
    genesis synth chest-ct demo_data/chest --num_cases 3 --seed 0 --shape 128,128,96 --format both
"""

from __future__ import annotations

import sys

from monai_genesis.phantoms.writers import PHANTOM_KINDS, check_formats, write_phantom_dataset


def parse_triplet(value, name: str, cast=int) -> tuple | None:
    """Parse "128,128,96" (or fire's tuple (128, 128, 96)) into a 3-tuple; None stays None."""
    if value is None:
        return None
    parts = value.replace("x", ",").split(",") if isinstance(value, str) else value
    try:
        numbers = tuple(cast(p) for p in parts)
        if cast is int and any(float(p) != int(float(p)) for p in parts):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"--{name} must be three numbers such as 128,128,96, got {value!r}") from None
    if len(numbers) != 3:
        raise ValueError(f"--{name} must have three values (X, Y, Z), got {value!r}")
    return numbers


def run_synth(kind: str, output_dir: str, num_cases: int = 3, seed: int = 0, shape=None, spacing=None, format=None):
    """Validate the command-line values and write the dataset; returns the written paths.

    Raises ValueError (or NotADirectoryError) with a message naming the bad argument.
    """
    if kind not in PHANTOM_KINDS:
        raise ValueError(f"unknown KIND {kind!r}; choose one of {', '.join(PHANTOM_KINDS)}")
    if not isinstance(output_dir, str) or not output_dir:
        raise ValueError(f"OUTPUT_DIR must be a folder path, got {output_dir!r}")
    if isinstance(num_cases, bool) or not isinstance(num_cases, int) or num_cases < 1:
        raise ValueError(f"--num_cases must be a positive integer, got {num_cases!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {seed!r}")
    options = {"num_cases": num_cases, "seed": seed}
    if format is not None:
        options["formats"] = check_formats(format)
    if shape is not None:
        options["shape"] = parse_triplet(shape, "shape")
    if spacing is not None:
        options["spacing"] = parse_triplet(spacing, "spacing", float)
    return write_phantom_dataset(kind, output_dir, **options)


def synth(kind: str, output_dir: str, num_cases: int = 3, seed: int = 0, shape=None, spacing=None, format=None) -> str:
    """Write a synthetic dataset: chest-ct, ctpa, abdomen-ct or brain-mri.

    Args:
        kind: chest-ct (LUNA16-like, nodules and candidates.csv), ctpa (emboli and candidates.csv),
            abdomen-ct (LiTS-like liver and lesions), brain-mri (BraTS-like T1/T1ce/T2/FLAIR).
        output_dir: folder to write into (images/, labels/, CSV files, dataset.json).
        num_cases: number of volumes.
        seed: dataset seed (same seed, same files).
        shape: volume size X,Y,Z (default 128,128,96).
        spacing: voxel size in mm X,Y,Z (default per kind, e.g. 0.7,0.7,1.25 for chest-ct).
        format: nii.gz, mhd or both (default: both for chest-ct, as LUNA16 ships .mhd; nii.gz otherwise).
    """
    try:
        paths = run_synth(kind, output_dir, num_cases, seed, shape, spacing, format)
    except (ValueError, OSError) as error:
        # a clear one-line message instead of a traceback through fire
        sys.exit(f"genesis synth: error: {error}")
    volumes = sum(1 for p in paths if p.name.endswith((".nii.gz", ".mhd")))
    return f"wrote {volumes} volume files and {len(paths) - volumes} tables (CSV, dataset.json) to {output_dir}"
