"""Dropout on encoder feature maps, where PixelPick's official code places MC dropout (``model.encoder_dropout``).

The official DeepLabV3+ MobileNetV2 applies a ``Dropout2d(p=0.2)`` to the backbone's last feature map and
to its low-level (stride-4) feature map, the two maps its decoder reads, in training and at query time.
:func:`add_encoder_dropout` does the same on any model of :func:`alseg.models.build_model`: a forward hook
on ``model.encoder`` drops the deepest map and the stride-4 map of the feature list (index 2: map i has
stride 2**i in the small U-Net and in smp encoders). The dropout module holds no parameters, so state dict
keys are unchanged. :mod:`alseg.mc_dropout` has the modes; ``acquisition.mc_mode: official`` sets p = 0.2.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: Index of the stride-4 map in an encoder's feature list (map i has stride 2**i).
STRIDE4_INDEX = 2


class _DropFeatures:
    """Forward hook on the encoder: its output list with the deepest and the stride-4 maps dropped.

    A class rather than a closure so that ``copy.deepcopy`` of the model maps it to the copied dropout.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, _encoder: nn.Module, _args: tuple[Any, ...], features: list[torch.Tensor]) -> list[torch.Tensor]:
        dropped = list(features)
        indices = {len(dropped) - 1} | ({STRIDE4_INDEX} if len(dropped) > STRIDE4_INDEX else set())
        for i in sorted(indices):  # shallow first: a fixed order of the random draws
            dropped[i] = self.module(dropped[i])
        return dropped


def add_encoder_dropout(model: nn.Module, p: float) -> nn.Module:
    """Give ``model`` a ``Dropout2d(p)`` on its encoder's deepest and stride-4 feature maps
    (``model.encoder_dropout``; active in training and under :func:`alseg.models.enable_mc_dropout`).

    Parameters
    ----------
    model : torch.nn.Module
        With an ``encoder`` whose forward returns a list of feature maps, shallow to deep.
    p : float
        Drop probability; 0 adds nothing.

    Returns
    -------
    torch.nn.Module
        ``model``, changed in place.
    """
    if p > 0:
        model.encoder_dropout = nn.Dropout2d(float(p))
        model.encoder.register_forward_hook(_DropFeatures(model.encoder_dropout))
    return model
