"""The transfer experiment of issue 14: Models Genesis pretraining arms (full pipeline, each corruption alone,
identity autoencoder) against training from scratch, on the NCS and NCC target tasks with few labels.

Modules: ``arms`` (what each arm pretrains with), ``settings`` (sizes and budgets, presets), ``datasets``
(synthetic pretraining cubes and labelled target data), ``bundle_runs`` (pretraining and fine-tuning through the
bundles' own configs), ``bookkeeping`` (resumable results), ``statistics`` (summaries and paired tests),
``report`` (Markdown, JSON, learning-curve PNG), ``comparison`` (one scratch-vs-pretrained comparison, for the
demo), ``runner`` (the whole experiment).
"""

__all__ = ["finetune_comparison", "run_experiment"]


def __getattr__(name):  # imported on first use: `genesis --help` does not pay for torch
    if name == "finetune_comparison":
        from monai_genesis.experiments.comparison import finetune_comparison

        return finetune_comparison
    if name == "run_experiment":
        from monai_genesis.experiments.runner import run_experiment

        return run_experiment
    raise AttributeError(name)
