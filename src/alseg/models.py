"""Model factory: a small pure-torch U-Net, and DeepLabV3+ / FPN (or any architecture) from
segmentation-models-pytorch (smp).

Every model built here has the same shape of interface, which the trainer and the inference dump rely on:

- ``model.encoder``: the down path (the backbone). Its forward returns a list of feature maps, the last one
  the deepest; the trainer gives it its own learning rate and :func:`forward_with_features` pools its last
  map into the image features of the binary-query acquisition.
- ``model.head_dropout``: a ``Dropout2d`` applied to the decoder output just before the classifier, so that
  MC-dropout (:func:`enable_mc_dropout`) has a stochastic layer in every model. In smp models it is applied
  by a forward pre-hook on ``segmentation_head`` and holds no parameters, so state dict keys stay those of
  the plain smp model and smp checkpoints load as they are.
- ``model.input_statistics`` (``encoder: efficientnet_lite0`` only): re-normalises the batch from the
  pipeline's ImageNet statistics to those of the encoder's weights, by a forward pre-hook on the encoder
  and without state (:mod:`alseg.pretrained`; docs/models.md).

``weights: imagenet`` loads ImageNet weights into the encoder: EfficientNet-Lite0's from an installed
package, any other encoder's by smp's download (a clear error without a network; docs/models.md).

segmentation-models-pytorch is imported only when an smp model is asked for: importing it costs seconds, and
workflow steps that need only the small U-Net (or no model at all) must not pay for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from alseg import pretrained
from alseg.atomic import atomic_path
from alseg.encoder_dropout import add_encoder_dropout
from alseg.torchfile import weights_checksum

#: Name of the pure-torch model; every other name goes to ``segmentation_models_pytorch.create_model``.
SMALL_UNET = "small_unet"

#: Encoder used when the config names none (the papers' choices).
DEFAULT_ENCODERS: dict[str, str] = {"deeplabv3plus": "mobilenet_v2", "fpn": "resnet50"}
FALLBACK_ENCODER = "resnet34"

#: Tag stored in files written by :func:`save_model`, checked by :func:`load_model`.
MODEL_FILE_FORMAT = "alseg-model"
MODEL_FILE_VERSION = 1


# ----------------------------------------------------------------------------------------------------------
# small U-Net
# ----------------------------------------------------------------------------------------------------------


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU (spatial size kept)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallUNetEncoder(nn.Module):
    """Down path of :class:`SmallUNet`: ``levels + 1`` conv blocks, 2x max-pooling between them.

    Channels double at every level: ``width, 2 width, ..., 2**levels width``.
    """

    def __init__(self, in_channels: int, width: int, levels: int) -> None:
        super().__init__()
        channels = [width * 2**i for i in range(levels + 1)]
        self.out_channels = channels
        self.output_stride = 2**levels
        blocks = [_conv_block(in_channels, channels[0])]
        blocks += [_conv_block(channels[i - 1], channels[i]) for i in range(1, levels + 1)]
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps from shallow to deep: block i has stride ``2**i`` (input H, W divisible by the stride)."""
        features = []
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            features.append(x)
        return features


class SmallUNetDecoder(nn.Module):
    """Up path of :class:`SmallUNet`: bilinear 2x upsampling, concatenation with the skip, conv block."""

    def __init__(self, encoder_channels: list[int]) -> None:
        super().__init__()
        deep_to_shallow = encoder_channels[::-1]
        self.blocks = nn.ModuleList(
            _conv_block(deep + skip, skip) for deep, skip in zip(deep_to_shallow[:-1], deep_to_shallow[1:])
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Full-resolution decoder output, (B, width, H, W), from the encoder's feature list."""
        x = features[-1]
        for block, skip in zip(self.blocks, features[-2::-1]):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return x


class SmallUNet(nn.Module):
    """A small U-Net (pure torch) for CPU runs on small images (the embedded synthetic dataset).

    Parameters
    ----------
    num_classes : int
        Output channels C.
    width : int
        Channels of the first level; level i has ``width * 2**i``.
    levels : int
        Number of 2x down-samplings; H and W must be multiples of ``2**levels`` (see
        :func:`forward_logits`, which pads).
    dropout : float
        Probability of the ``Dropout2d`` before the 1x1 classifier.
    """

    def __init__(self, num_classes: int, width: int = 16, levels: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = SmallUNetEncoder(3, width, levels)
        self.decoder = SmallUNetDecoder(self.encoder.out_channels)
        self.head_dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, C, H, W) of a normalised batch (B, 3, H, W)."""
        return self.classifier(self.head_dropout(self.decoder(self.encoder(x))))


# ----------------------------------------------------------------------------------------------------------
# smp models
# ----------------------------------------------------------------------------------------------------------


class _ApplyBefore:
    """Forward pre-hook that runs a module (the head dropout) on the hooked module's input.

    A class rather than a closure so that ``copy.deepcopy`` of the model maps it to the copied dropout.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, _hooked: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (self.module(args[0]), *args[1:])


def _build_smp_model(name: str, cfg: dict[str, Any], num_classes: int, load_pretrained: bool) -> nn.Module:
    import segmentation_models_pytorch as smp  # lazy: seconds to import, see module docstring

    encoder = cfg.get("encoder") or DEFAULT_ENCODERS.get(name, FALLBACK_ENCODER)
    smp_encoder = pretrained.PACKAGED_SMP_ENCODER if encoder == pretrained.PACKAGED_ENCODER else encoder
    weights = cfg.get("weights") if load_pretrained else None
    extra_kwargs = dict(cfg.get("smp_kwargs") or {})
    try:
        with pretrained.download_errors(encoder):
            model = smp.create_model(name, encoder_name=smp_encoder, in_channels=3, classes=num_classes,
                                     encoder_weights=pretrained.smp_weights_argument(encoder, weights),
                                     **extra_kwargs)
    except KeyError as err:  # smp lists the architectures (or encoder weights) it knows in the message
        raise ValueError(f"unknown model name {cfg.get('name')!r} or encoder {encoder!r} with weights "
                         f"{weights!r}: {err}") from None
    if weights == pretrained.IMAGENET and encoder == pretrained.PACKAGED_ENCODER:
        pretrained.load_packaged_lite0(model.encoder)
    model.head_dropout = nn.Dropout2d(float(cfg.get("dropout", 0.1)))
    model.segmentation_head.register_forward_pre_hook(_ApplyBefore(model.head_dropout))
    statistics = pretrained.input_statistics(encoder)
    if statistics is not None:
        model.input_statistics = statistics
        model.encoder.register_forward_pre_hook(_ApplyBefore(statistics))
    return model


# ----------------------------------------------------------------------------------------------------------
# factory and weights
# ----------------------------------------------------------------------------------------------------------


def build_model(cfg: dict[str, Any], num_classes: int, load_pretrained: bool = True) -> nn.Module:
    """Build a segmentation model from its config.

    Parameters
    ----------
    cfg : dict
        ``name``: ``small_unet``, ``deeplabv3plus``, ``fpn`` or any other smp architecture name
        (case-insensitive). ``encoder``: smp encoder name (default ``mobilenet_v2`` for deeplabv3plus,
        ``resnet50`` for fpn). ``weights``: None or a local file holding a whole-model or an encoder state
        dict (detected). ``dropout``: probability of the Dropout2d before the classifier (default 0.1).
        ``encoder_dropout``: of the Dropout2d on the encoder's deepest and stride-4 maps (default 0, none;
        :mod:`alseg.encoder_dropout`).
        ``width``, ``levels``: small U-Net base channels (default 16) and depth (default 3).
        ``smp_kwargs``: extra keyword arguments for ``smp.create_model``. ``weights: imagenet`` (smp models):
        ImageNet encoder weights, installed for ``encoder: efficientnet_lite0`` (smp's
        ``tu-tf_efficientnet_lite0``), downloaded by smp for the others (:mod:`alseg.pretrained`); without
        it nothing is downloaded.
    num_classes : int
        Number of output channels C.
    load_pretrained : bool
        Load ``weights`` (False: the architecture only, e.g. to load a saved state into).

    Returns
    -------
    torch.nn.Module
        The model, on the CPU, in training mode, randomly initialised unless ``weights`` is set.

    Raises
    ------
    alseg.pretrained.PretrainedWeightsUnavailable
        ``weights: imagenet`` of an encoder whose download fails (no network, nothing cached).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    name = str(cfg.get("name", SMALL_UNET)).lower()
    named_weights = cfg.get("weights") == pretrained.IMAGENET
    if name == SMALL_UNET and named_weights:
        raise ValueError(f"model {SMALL_UNET!r} has no ImageNet weights (weights: {pretrained.IMAGENET} needs an "
                         f"smp model, e.g. name: deeplabv3plus, encoder: {pretrained.PACKAGED_ENCODER})")
    if name == SMALL_UNET:
        model: nn.Module = SmallUNet(
            num_classes,
            width=int(cfg.get("width", 16)),
            levels=int(cfg.get("levels", 3)),
            dropout=float(cfg.get("dropout", 0.1)),
        )
    else:
        model = _build_smp_model(name, cfg, num_classes, load_pretrained)
    add_encoder_dropout(model, float(cfg.get("encoder_dropout", 0.0)))
    if load_pretrained and cfg.get("weights") and not named_weights:
        load_weights(model, cfg["weights"])
    return model


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint: ours, a ``{"state_dict": ...}``/``{"model": ...}`` wrapper,
    or a bare state dict; a ``module.`` prefix (DataParallel) is removed."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: not a state dict (expected a mapping of parameter names to tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> str:
    """Load a local weights file into ``model``: a whole-model or an encoder state dict, detected by keys.

    Parameters
    ----------
    model : torch.nn.Module
        A model from :func:`build_model`.
    path : path
        ``torch.save`` file of a state dict (possibly wrapped as ``{"state_dict": ...}``). Encoder state dicts
        may have an ``encoder.`` prefix; ImageNet classifier keys (``fc.*``, ``classifier.*``) are dropped
        by the smp encoders.

    Returns
    -------
    str
        ``"model"`` or ``"encoder"``: what the file held.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file cannot be read, or its keys/shapes match neither the model nor its encoder.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model weights file not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean the same to the user
        raise ValueError(f"{path}: cannot read model weights: {err}") from err
    state = _unwrap_state_dict(loaded, path)
    model_keys = set(model.state_dict())
    encoder_keys = set(model.encoder.state_dict())
    prefixed_encoder = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    try:
        if model_keys <= set(state):
            model.load_state_dict(state, strict=True)
            return "model"
        if encoder_keys <= set(state):
            model.encoder.load_state_dict(dict(state), strict=True)  # smp encoders pop keys: pass a copy
            return "encoder"
        if prefixed_encoder and encoder_keys <= set(prefixed_encoder):
            model.encoder.load_state_dict(prefixed_encoder, strict=True)
            return "encoder"
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit the model: {err}") from err
    missing_model = sorted(model_keys - set(state))
    missing_encoder = sorted(encoder_keys - set(state))
    raise ValueError(
        f"{path}: keys match neither the whole model ({len(missing_model)} of {len(model_keys)} missing, "
        f"e.g. {missing_model[:3]}) nor its encoder ({len(missing_encoder)} of {len(encoder_keys)} missing, "
        f"e.g. {missing_encoder[:3]})"
    )


# ----------------------------------------------------------------------------------------------------------
# forward passes
# ----------------------------------------------------------------------------------------------------------


def model_stride(model: nn.Module) -> int:
    """The factor that the model (or the model inside a DistributedDataParallel wrapper) needs H and W to be
    multiples of (the encoder's output stride)."""
    return int(getattr(getattr(model, "module", model).encoder, "output_stride", 32))


def _pad_to_stride(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Zero-pad (B, 3, H, W) at the bottom and right up to multiples of ``stride``.

    Zero in normalised input is the dataset mean colour; padding only at the far sides keeps output pixel
    (y, x) aligned with input pixel (y, x), so cropping the logits back is a plain slice.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % stride, -width % stride
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h))


def forward_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits (B, C, H, W) of a normalised batch (B, 3, H, W) of any H, W (padded, then cropped back)."""
    height, width = x.shape[-2:]
    return model(_pad_to_stride(x, model_stride(model)))[..., :height, :width]


def forward_with_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and pooled deepest encoder features of one forward pass.

    Parameters
    ----------
    model : torch.nn.Module
        A model from :func:`build_model`.
    x : Tensor, float, shape (B, 3, H, W)
        Normalised images; H, W need not be multiples of the model's stride.

    Returns
    -------
    logits : Tensor, shape (B, C, H, W)
    features : Tensor, shape (B, F)
        Global average of the last (deepest) encoder feature map; F is its channel count. Padding pixels
        are included in the average (a few per cent at most for CamVid sizes).
    """
    captured: list[torch.Tensor] = []

    def keep_deepest(_module: nn.Module, _args: Any, output: list[torch.Tensor]) -> None:
        captured.append(output[-1])

    handle = model.encoder.register_forward_hook(keep_deepest)
    try:
        logits = forward_logits(model, x)
    finally:
        handle.remove()
    features = captured[-1].float().mean(dim=(2, 3))
    return logits, features


def enable_mc_dropout(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode except its dropout layers (train mode) for MC-dropout; returns it.

    BatchNorm uses its running statistics, so the only randomness of a pass is dropout.
    """
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.train()
    return model


# ----------------------------------------------------------------------------------------------------------
# checksum, save, load
# ----------------------------------------------------------------------------------------------------------


def state_dict_checksum(state: dict[str, torch.Tensor]) -> str:
    """The model checksum of a state dict (:func:`alseg.torchfile.weights_checksum`: sha256 over sorted
    name, dtype, shape and raw bytes, 16 hex characters)."""
    entries = []
    for key, value in state.items():
        tensor = value.detach().to("cpu").contiguous()
        entries.append((key, str(tensor.dtype), tuple(tensor.shape),
                        tensor.reshape(-1).view(torch.uint8).numpy().tobytes()))
    return weights_checksum(entries)


def model_checksum(model: nn.Module) -> str:
    """Checksum of a model's state dict (:func:`state_dict_checksum`): equal for equal weights and buffers,
    whatever file they were saved to or loaded from."""
    return state_dict_checksum(model.state_dict())


def save_model(
    path: str | os.PathLike[str],
    model: nn.Module,
    model_cfg: dict[str, Any],
    num_classes: int,
    extra: dict[str, Any] | None = None,
) -> str:
    """Save a model atomically with what :func:`load_model` needs to rebuild it.

    Parameters
    ----------
    path : path
        Destination (``torch.save`` format).
    model : torch.nn.Module
    model_cfg : dict
        The config it was built with; ``weights`` is dropped (the saved state supersedes it).
    num_classes : int
    extra : dict, optional
        Plain (JSON-like) metadata, e.g. training history, best epoch, round.

    Returns
    -------
    str
        The model checksum (:func:`model_checksum`), also stored in the file.
    """
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    checksum = state_dict_checksum(state)
    payload = {
        "format": MODEL_FILE_FORMAT,
        "version": MODEL_FILE_VERSION,
        "model_cfg": {k: v for k, v in model_cfg.items() if k != "weights"},
        "num_classes": int(num_classes),
        "checksum": checksum,
        "extra": dict(extra or {}),
        "state_dict": state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return checksum


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model written by :func:`save_model`.

    Returns
    -------
    model : torch.nn.Module
        On ``device``, in eval mode.
    meta : dict
        ``model_cfg``, ``num_classes``, ``checksum``, ``extra``.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing, unreadable or corrupt file, or a checksum that does not match the stored weights; the
        message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: cannot read model file (corrupt or not a torch file): {err}") from err
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FILE_FORMAT:
        raise ValueError(f"{path}: not an alseg model file (no '{MODEL_FILE_FORMAT}' format tag)")
    cfg = dict(payload["model_cfg"])
    cfg.pop("weights", None)
    model = build_model(cfg, int(payload["num_classes"]))
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path}: stored weights do not fit the stored model config: {err}") from err
    checksum = model_checksum(model)
    if checksum != payload["checksum"]:
        raise ValueError(f"{path}: checksum mismatch (stored {payload['checksum']}, weights give {checksum})")
    meta = {k: payload[k] for k in ("model_cfg", "num_classes", "checksum", "extra")}
    return model.to(device).eval(), meta


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None: CUDA when available, else CPU; anything else as given."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
