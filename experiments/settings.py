"""The experiment's settings: one flat dict of sizes, budgets and seeds, with named presets.

Everything that changes a result is here, so that the settings written beside the results (and compared on
resume) describe the experiment completely. The pretraining optimiser is an override of the genesis_pretrain
bundle (Adam, as a small network learns faster with it on a short budget than with the published SGD 1.0);
the fine-tuning settings are the target bundles' own (docs/method.md §5.1) at a tiny size.
"""

from __future__ import annotations

from monai_genesis.experiments.arms import ALL_ARMS, check_arms

TASKS = ("ncs", "ncc")
PRETRAIN_OPTIMIZERS = ("Adam", "SGD")  # torch.optim classes; SGD takes the bundle's momentum

DEFAULT_SETTINGS: dict = {
    "arms": list(ALL_ARMS),
    "tasks": list(TASKS),
    "label_budgets": [4, 8, 16],  # labelled training cases (NCS volumes, NCC scans)
    "seeds": [0, 1, 2],  # each seed: one draw of the labelled cases and one fine-tuning seed, shared by all arms
    "network_width": 0.125,
    # pretraining (genesis_pretrain train.json + overrides), the same budget for every arm
    "pretrain_cases": 12,
    "pretrain_shape": [128, 128, 64],  # lung-filtered 32x32x16 crops need room: a 64^3 phantom gives none
    "pretrain_spacing": [0.8, 0.8, 1.5],
    "pretrain_cubes_per_volume": 32,
    "pretrain_cube_size": [32, 32, 16],
    "pretrain_epochs": 8,
    "pretrain_batch_size": 8,
    "pretrain_optimizer": "Adam",
    "pretrain_learning_rate": 1e-3,
    "pretrain_data_seed": 100,  # phantoms of their own: no pretraining case is a target case
    "pretrain_seed": 0,
    # NCS (genesis_lung_nodule_segmentation)
    "ncs_shape": [48, 48, 32],
    "ncs_spacing": [1.6, 1.6, 2.5],
    "ncs_validation_cases": 2,
    "ncs_test_cases": 6,
    "ncs_cube_size": [16, 16, 16],
    "ncs_batch_size": 4,
    "ncs_num_samples": 2,
    "ncs_steps": 60,  # training iterations of every run
    "ncs_validations": 4,  # validations (checkpoint selection by validation loss) spread over the run
    "ncs_data_seed": 0,
    # NCC (genesis_lung_nodule_fpr)
    "ncc_shape": [64, 64, 48],
    "ncc_spacing": [1.2, 1.2, 1.5],
    "ncc_nodules": 8,
    "ncc_false_positives": 24,
    "ncc_validation_cases": 2,
    "ncc_test_cases": 6,
    "ncc_cube_size": [32, 32, 16],
    "ncc_batch_size": 8,
    "ncc_negatives_per_positive": 2.0,
    "ncc_steps": 60,
    "ncc_validations": 4,
    "ncc_data_seed": 1,
}

PRESETS: dict[str, dict] = {
    "default": {},
    # for tests: two arms, one seed, one label budget, a few iterations
    "tiny": {
        "arms": ["scratch", "full"],
        "label_budgets": [2],
        "seeds": [0],
        "pretrain_cases": 2,
        "pretrain_cubes_per_volume": 8,
        "pretrain_epochs": 1,
        "ncs_validation_cases": 1,
        "ncs_test_cases": 1,
        "ncs_steps": 2,
        "ncs_validations": 1,
        "ncc_shape": [48, 48, 32],
        "ncc_nodules": 2,
        "ncc_false_positives": 4,
        "ncc_validation_cases": 1,
        "ncc_test_cases": 2,
        "ncc_steps": 2,
        "ncc_validations": 1,
    },
}


def experiment_settings(size: str = "default", **overrides) -> dict:
    """The settings of preset ``size`` with ``overrides`` applied, checked.

    Raises:
        ValueError: an unknown preset or key, an unknown arm or task, or a value out of range.
    """
    if size not in PRESETS:
        raise ValueError(f"size: expected one of {', '.join(PRESETS)}, got {size!r}.")
    unknown = sorted(set(overrides) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ValueError(f"unknown experiment setting(s) {unknown}; known: {', '.join(sorted(DEFAULT_SETTINGS))}.")
    settings = {**DEFAULT_SETTINGS, **PRESETS[size], **overrides}
    for key in ("arms", "tasks", "label_budgets", "seeds"):
        value = settings[key]
        settings[key] = [value] if isinstance(value, (str, int)) else list(value)
    settings["arms"] = list(check_arms(settings["arms"]))
    bad_tasks = [t for t in settings["tasks"] if t not in TASKS]
    if bad_tasks or not settings["tasks"]:
        raise ValueError(f"tasks: expected some of {', '.join(TASKS)}, got {settings['tasks']!r}.")
    if not settings["label_budgets"] or any(int(n) != n or n < 1 for n in settings["label_budgets"]):
        raise ValueError(f"label_budgets: expected positive integers, got {settings['label_budgets']!r}.")
    if not settings["seeds"] or len(set(settings["seeds"])) != len(settings["seeds"]):
        raise ValueError(f"seeds: expected distinct integers, got {settings['seeds']!r}.")
    settings["label_budgets"] = sorted(int(n) for n in settings["label_budgets"])
    for key in ("pretrain_epochs", "ncs_steps", "ncc_steps", "ncs_validations", "ncc_validations"):
        if int(settings[key]) < 1:
            raise ValueError(f"{key}: expected a positive integer, got {settings[key]!r}.")
    if int(settings["pretrain_cases"]) < 2:
        raise ValueError(f"pretrain_cases: pretraining needs at least 2 volumes (training, validation), got {settings['pretrain_cases']!r}.")
    if settings["pretrain_optimizer"] not in PRETRAIN_OPTIMIZERS:
        raise ValueError(f"pretrain_optimizer: expected one of {', '.join(PRETRAIN_OPTIMIZERS)}, got {settings['pretrain_optimizer']!r}.")
    return settings


def training_pool_size(settings: dict) -> int:
    """Labelled training cases written per task: enough for the largest label budget."""
    return max(settings["label_budgets"])
