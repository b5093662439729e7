"""`genesis experiment`: the transfer experiment (pretraining arms against scratch on NCS and NCC with few labels).

Examples:

    genesis experiment                                   # default size, experiment_output/transfer
    genesis experiment --size tiny --output_dir /tmp/x   # seconds
    genesis experiment --arms scratch,full --tasks ncs --label_budgets 4,8 --seeds 0,1,2

Interrupted, the same command continues with the runs that have no result yet; other arguments with the same
output folder are refused. Settings keys: ``monai_genesis.experiments.settings.DEFAULT_SETTINGS``.
"""

from __future__ import annotations

from pathlib import Path


def experiment(output_dir: str | None = None, name: str = "transfer", size: str = "default", threads: int = 1,
               quiet: bool = True, report_only: bool = False, **settings) -> None:
    """Pretrain the Genesis arms, fine-tune NCS and NCC from each and from scratch with few labels, and report.

    Args:
        output_dir: experiment folder (default experiment_output/<name>).
        name: experiment name (default "transfer").
        size: "default" (about an hour on 2 cores) or "tiny" (seconds).
        threads: torch threads (default 1).
        quiet: hide the bundles' per-epoch logs (default True).
        report_only: only write the report of the runs finished so far (default False).
        settings: any experiment setting, e.g. --arms scratch,full --tasks ncs --label_budgets 4,8 --seeds 0,1,2
            --pretrain_epochs 8 --ncs_steps 60.
    """
    import torch

    from monai_genesis.cli.main import Interrupted
    from monai_genesis.experiments.runner import DEFAULT_OUTPUT_ROOT, run_experiment

    if int(threads) < 1:
        raise ValueError(f"--threads must be >= 1, got {threads!r}.")
    torch.set_num_threads(int(threads))
    root = Path(output_dir) if output_dir is not None else Path(DEFAULT_OUTPUT_ROOT) / name
    try:
        summary = run_experiment(root, name=name, size=size, quiet=quiet, report_only=report_only, **settings)
    except KeyboardInterrupt:
        raise Interrupted(f"finished runs are kept in {root}; run the same command again to continue") from None
    print(Path(summary["paths"]["markdown"]).read_text())
    print("Written: " + ", ".join(summary["paths"].values()))
