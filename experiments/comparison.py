"""Fine-tune one target task from given Genesis weights and from scratch on the same few labels (for the demo).

Example (after ``genesis demo`` wrote ``demo_output/models/model.pt``)::

    from monai_genesis.experiments import finetune_comparison
    result = finetune_comparison("demo_output/models/model.pt", "demo_output/finetune", task="ncs", num_labeled=4)
    print(result["scratch"]["score"], result["pretrained"]["score"], result["baselines"], result["images"])
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from monai_genesis.experiments import bundle_runs, datasets
from monai_genesis.experiments.settings import experiment_settings
from monai_genesis.networks.encoder import PUBLISHED_FILTERS
from monai_genesis.networks.weights import read_state_dict

FIRST_CONV = "down_tr64.ops.0.conv1.weight"
IMAGE_COLUMNS = ("image", "label", "scratch", "pretrained")


def checkpoint_width(path: str | os.PathLike) -> float:
    """The ``network_width`` of a Genesis U-Net checkpoint (its first convolution's filters over the published 32)."""
    state = read_state_dict(os.fspath(path))
    if FIRST_CONV not in state:
        raise ValueError(f"{path}: not a Models Genesis U-Net checkpoint (no '{FIRST_CONV}').")
    return state[FIRST_CONV].shape[0] / PUBLISHED_FILTERS[0]


def segmentation_png(sample_scratch: dict, sample_pretrained: dict, path: Path, title: str) -> str:
    """Image | label | scratch | pretrained prediction (probability, grey) on the axial slice with most nodule."""
    from monai_genesis.training.image_grid import save_grid_png

    label = sample_scratch["label"]
    z = int(np.argmax(label.reshape(-1, label.shape[-1]).sum(0)))
    tiles = [sample_scratch["image"], label, sample_scratch["probability"], sample_pretrained["probability"]]
    h, w = label.shape[:2]
    grid = np.ones((h, len(tiles) * (w + 1) - 1), dtype=np.float32)
    for i, tile in enumerate(tiles):
        grid[:, i * (w + 1): i * (w + 1) + w] = np.clip(tile[:, :, z], 0.0, 1.0)
    return save_grid_png(grid, path, zoom=8, column_titles=IMAGE_COLUMNS, title=title)


def finetune_comparison(
    pretrained_checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike,
    task: str = "ncs",
    num_labeled: int = 4,
    seed: int = 0,
    steps: int | None = None,
    network_width: float | None = None,
    quiet: bool = True,
    **settings,
) -> dict:
    """Fine-tune ``task`` from ``pretrained_checkpoint`` and from scratch on the same ``num_labeled`` cases and budget.

    Both runs go through the target bundle's own train.json and evaluate.json (NCS:
    genesis_lung_nodule_segmentation, NCC: genesis_lung_nodule_fpr) on synthetic labelled phantoms written
    under ``output_dir`` (its own cases, none of them pretraining data), and are scored on the same test cases.

    Args:
        pretrained_checkpoint: a Genesis U-Net checkpoint, e.g. genesis_pretrain's ``models/model.pt``.
        output_dir: folder for the data, both runs and the comparison image.
        task: "ncs" (nodule segmentation, scored by test Dice) or "ncc" (nodule false-positive reduction,
            scored by test AUC; CPM beside it).
        num_labeled: labelled training cases (volumes for NCS, scans for NCC). Defaults to 4.
        seed: draw of the labelled cases and fine-tuning seed, the same for both runs. Defaults to 0.
        steps: training iterations of each run; default the experiment's (``ncs_steps`` / ``ncc_steps``).
        network_width: the checkpoint's width; default read from the checkpoint.
        quiet: hide the bundles' per-epoch logging. Defaults to True.
        settings: other keys of ``experiment_settings`` (e.g. ``ncs_test_cases=4``, ``ncs_validations=2``).

    Returns:
        {"task", "score_name" ("dice" / "auc"), "num_labeled", "seed",
        "scratch": run result, "pretrained": run result (each with "score", "metrics", "iterations", "seconds"),
        "baselines": NCS {"all_background_dice", "all_foreground_dice"}, NCC {"chance_auc", "random_ranking_cpm"},
        "images": [PNG path] (NCS: image | label | scratch | pretrained prediction on a test patch; NCC: []),
        "seconds"}.
    """
    started = time.perf_counter()
    if task not in ("ncs", "ncc"):
        raise ValueError(f"task: expected 'ncs' or 'ncc', got {task!r}.")
    checkpoint = Path(pretrained_checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"pretrained_checkpoint '{checkpoint}' does not exist.")
    width = checkpoint_width(checkpoint) if network_width is None else float(network_width)
    if steps is not None:
        settings[f"{task}_steps"] = int(steps)
    config = experiment_settings("default", tasks=[task], label_budgets=[int(num_labeled)], seeds=[int(seed)],
                                 network_width=width, **settings)
    out = Path(output_dir).resolve()
    runs = {}
    if task == "ncs":
        data = datasets.ncs_data(out, config)
        datalist = datasets.ncs_subset(data, num_labeled, seed, out / "runs" / "datalist.json")
        for arm, weights in (("scratch", ""), ("pretrained", str(checkpoint))):
            runs[arm] = bundle_runs.finetune_ncs(data, datalist, out / "runs" / arm, weights, seed, num_labeled, config,
                                                 keep_sample=True, quiet=quiet)
        title = f"NCS, {num_labeled} labelled cases: Dice scratch {runs['scratch']['score']:.3f}, pretrained {runs['pretrained']['score']:.3f}"
        images = [segmentation_png(runs["scratch"].pop("sample"), runs["pretrained"].pop("sample"),
                                   out / "ncs_test_prediction.png", title)]
    else:
        data = datasets.ncc_data(out, config)
        candidates, counts = datasets.ncc_subset(data, num_labeled, seed, out / "runs" / "candidates.csv")
        for arm, weights in (("scratch", ""), ("pretrained", str(checkpoint))):
            runs[arm] = bundle_runs.finetune_ncc(data, candidates, counts, out / "runs" / arm, weights, seed, config, quiet=quiet)
        images = []
    return {
        "task": task, "score_name": runs["scratch"]["score_name"], "num_labeled": int(num_labeled), "seed": int(seed),
        "scratch": runs["scratch"], "pretrained": runs["pretrained"], "baselines": runs["scratch"]["baselines"],
        "images": images, "seconds": time.perf_counter() - started,
    }
