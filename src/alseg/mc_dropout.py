"""MC-dropout modes (``acquisition.mc_mode``): what a mode means for the model, the passes and the score.

Torch-free: the config, the plan and the pixel acquisition read it without importing torch; the dropout
layers are in :mod:`alseg.models`, the passes in :mod:`alseg.infer`.

* ``mean_softmax`` (ours, the default): the model's ``dropout`` (a Dropout2d before the classifier, 0.1 by
  default) is active in ``acquisition.mc_passes`` = T passes (0: one deterministic pass), and the strategy
  scores the mean softmax of the passes.
* ``official`` (PixelPick's official code, pixel unit only): a Dropout2d of p = 0.2 on the encoder's deepest
  feature map and on its stride-4 map (where the official DeepLabV3+ MobileNetV2 drops its high- and
  low-level features), in training and at inference, no dropout before the classifier; T = 20 passes
  (``mc_passes`` > 0 overrides); the score is the **sum over passes of the per-pass uncertainty maps**
  (margin, least confidence or entropy of each pass's softmax). The paper's text says "dropout after each
  convolutional layer, repeating inference 20 times"; the code, which we follow, places it as above.
  README ("Configuration") and docs/models.md describe both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MEAN_SOFTMAX = "mean_softmax"
OFFICIAL = "official"
MC_MODES = (MEAN_SOFTMAX, OFFICIAL)

#: PixelPick's official MC dropout: passes and the Dropout2d probability.
OFFICIAL_PASSES = 20
OFFICIAL_DROPOUT = 0.2


def mc_mode(acquisition: Mapping[str, Any]) -> str:
    """The experiment's mode (``mean_softmax`` when the settings predate the option)."""
    mode = str(acquisition.get("mc_mode", MEAN_SOFTMAX))
    if mode not in MC_MODES:
        raise ValueError(f"unknown acquisition.mc_mode {mode!r}; expected one of {MC_MODES}")
    return mode


def mc_passes(acquisition: Mapping[str, Any]) -> int:
    """Passes the inference runs: ``mc_passes``, or the official 20 when it is 0 in ``official`` mode."""
    passes = int(acquisition.get("mc_passes", 0))
    return OFFICIAL_PASSES if mc_mode(acquisition) == OFFICIAL and passes == 0 else passes


def official_model(model: Mapping[str, Any]) -> dict[str, Any]:
    """The model config of ``official`` mode: encoder dropout 0.2, no dropout before the classifier."""
    return {**model, "dropout": 0.0, "encoder_dropout": OFFICIAL_DROPOUT}


def summed_passes(attrs: Mapping[str, Any]) -> int:
    """What the per-pass mean maps of a dump are multiplied by to give the score: T for a dump written in
    ``official`` mode (its maps are means over the T passes, so T times them is the official sum), else 1."""
    return int(attrs.get("mc_passes", 1)) if attrs.get("mc_mode") == OFFICIAL else 1
