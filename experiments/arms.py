"""The experiment's arms: how each pretrained model is corrupted during pretraining, and training from scratch.

The ablation arms switch every Genesis corruption off but one (docs/method.md §1: any step can be switched off
with probability 0). The one left on keeps its probability of the full pipeline, so an arm differs from the full
pipeline only in what it leaves out. Flipping is applied to the input and its target alike (an augmentation,
not a corruption the model undoes), so every pretraining arm keeps it; the identity arm is an autoencoder of
flipped cubes.
"""

from __future__ import annotations

from monai_genesis.transforms.flip import FLIP_CONTINUE_PROB
from monai_genesis.transforms.local_shuffle import LOCAL_SHUFFLE_PROB
from monai_genesis.transforms.nonlinear_intensity import NONLINEAR_PROB
from monai_genesis.transforms.painting import INPAINT_PROB, PAINT_PROB

SCRATCH = "scratch"

# genesis_pretrain train.json's top-level corruption keys
FULL_PIPELINE = {"flip_prob": FLIP_CONTINUE_PROB, "local_shuffle_prob": LOCAL_SHUFFLE_PROB, "nonlinear_prob": NONLINEAR_PROB,
                 "paint_prob": PAINT_PROB, "inpaint_prob": INPAINT_PROB}
_OFF = {"local_shuffle_prob": 0.0, "nonlinear_prob": 0.0, "paint_prob": 0.0}

PRETRAINING_ARMS: dict[str, dict] = {
    "full": dict(FULL_PIPELINE),
    "nonlinear": {**FULL_PIPELINE, **_OFF, "nonlinear_prob": FULL_PIPELINE["nonlinear_prob"]},
    "local_shuffle": {**FULL_PIPELINE, **_OFF, "local_shuffle_prob": FULL_PIPELINE["local_shuffle_prob"]},
    # inpaint_prob is the share of painting done as in-painting; the rest is out-painting
    "inpaint": {**FULL_PIPELINE, **_OFF, "paint_prob": FULL_PIPELINE["paint_prob"], "inpaint_prob": 1.0},
    "outpaint": {**FULL_PIPELINE, **_OFF, "paint_prob": FULL_PIPELINE["paint_prob"], "inpaint_prob": 0.0},
    "identity": {**FULL_PIPELINE, **_OFF},
}

ALL_ARMS = (SCRATCH, *PRETRAINING_ARMS)


def check_arms(arms) -> tuple[str, ...]:
    """The arms in the canonical order, scratch first; an unknown name is a ValueError naming the known ones."""
    arms = (arms,) if isinstance(arms, str) else tuple(arms)
    unknown = [a for a in arms if a not in ALL_ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}: choose from {', '.join(ALL_ARMS)}.")
    if SCRATCH not in arms:
        raise ValueError(f"the arms must include '{SCRATCH}': every pretrained arm is compared with it.")
    if len(arms) < 2:
        raise ValueError("the experiment needs at least one pretrained arm besides 'scratch'.")
    return tuple(a for a in ALL_ARMS if a in arms)
