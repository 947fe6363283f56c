"""Pretrained encoders: EfficientNet-Lite0's packaged ImageNet weights mapped into smp's encoder, its input
statistics, and the clear error of smp's download without a network (docs/models.md)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from alseg.augment import normalise_images
from alseg.models import build_model, forward_logits, load_model, save_model
from alseg.pretrained import (
    HEAD_LAYERS,
    PretrainedWeightsUnavailable,
    WeightMappingError,
    block_layout,
    map_efficientnet_pytorch,
    packaged_weights_file,
)

LITE0 = {"name": "deeplabv3plus", "encoder": "efficientnet_lite0", "weights": "imagenet"}


@pytest.fixture(scope="module")
def source() -> dict[str, torch.Tensor]:
    """The packaged efficientnet-pytorch state dict."""
    return torch.load(packaged_weights_file(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return build_model(LITE0, 4).eval()


def test_every_encoder_tensor_comes_from_the_file_and_only_the_head_is_left_out(source, lite0) -> None:
    timm_model = lite0.encoder.model
    mapped, left_out = map_efficientnet_pytorch(source, timm_model.state_dict(), block_layout(timm_model.blocks))
    encoder_state = timm_model.state_dict()
    assert len(source) == 296 and len(mapped) == len(encoder_state) == 288
    assert left_out == [k for k in source if k.split(".")[0] in HEAD_LAYERS] and len(left_out) == 8
    for name, tensor in mapped.items():
        assert torch.equal(encoder_state[name], tensor), name
    # known layers: the stem, an expansion conv (flat block 1 = stage 1, block 0), BN running statistics of
    # the first depthwise separable block, and the last projection
    assert torch.equal(timm_model.conv_stem.weight, source["_conv_stem.weight"])
    assert torch.equal(timm_model.blocks[1][0].conv_pw.weight, source["_blocks.1._expand_conv.weight"])
    # the depthwise conv's BN, of the same shape as the expansion's: only the order tells them apart
    assert torch.equal(timm_model.blocks[1][0].bn2.running_mean, source["_blocks.1._bn1.running_mean"])
    assert torch.equal(timm_model.blocks[0][0].bn1.running_var, source["_blocks.0._bn1.running_var"])
    assert torch.equal(timm_model.blocks[0][0].conv_pw.weight, source["_blocks.0._project_conv.weight"])
    assert torch.equal(timm_model.blocks[6][0].conv_pwl.weight, source["_blocks.15._project_conv.weight"])


def test_pretrained_features_are_not_the_random_init_ones(lite0) -> None:
    torch.manual_seed(0)
    random = build_model({**LITE0, "weights": None}, 4).eval()
    x = torch.from_numpy(normalise_images(np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), np.uint8)))
    with torch.no_grad():
        ours, theirs = lite0.encoder(x)[-1], random.encoder(x)[-1]
    assert not torch.allclose(ours, theirs, atol=1e-3)
    assert torch.equal(lite0.encoder.model.conv_stem.weight, build_model(LITE0, 4).encoder.model.conv_stem.weight)


@pytest.mark.parametrize(("edit", "named"), [
    (lambda s: s.update({"_blocks.0._extra.weight": torch.zeros(1)}), "_blocks.0._extra.weight"),
    (lambda s: s.pop("_blocks.3._bn1.running_var"), "blocks.2.0.bn2.running_var"),
    (lambda s: s.update({"_blocks.5._project_conv.weight": torch.zeros(80, 240, 3, 3)}), "_blocks.5._project_conv"),
    (lambda s: s.update({"_blocks.16._bn0.bias": torch.zeros(1)}), "_blocks.16._bn0.bias"),
])
def test_an_unmapped_or_misshaped_tensor_is_named(source, lite0, edit, named) -> None:
    broken = dict(source)
    edit(broken)
    timm_model = lite0.encoder.model
    with pytest.raises(WeightMappingError, match=named.replace(".", r"\.")):
        map_efficientnet_pytorch(broken, timm_model.state_dict(), block_layout(timm_model.blocks))


def _centre_square(image: np.ndarray, size: int = 224) -> np.ndarray:
    import cv2

    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return cv2.resize(image[top:top + side, left:left + side], (size, size), interpolation=cv2.INTER_AREA)


def test_the_whole_network_with_mapped_weights_classifies_imagenet_pictures(source) -> None:
    """The head mapped too, timm's EfficientNet-Lite0 names scikit-image's coffee an espresso and its cat a
    cat, more surely with the weights' own input statistics (mean = std = 0.5) than with ImageNet's."""
    timm = pytest.importorskip("timm")
    skimage_data = pytest.importorskip("skimage.data")
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    mapped, left_out = map_efficientnet_pytorch(source, net.state_dict(), block_layout(net.blocks), include_head=True)
    assert not left_out
    net.load_state_dict(mapped, strict=True)
    images = np.stack([_centre_square(skimage_data.coffee()), _centre_square(skimage_data.chelsea())])
    own = torch.from_numpy(((images / 255.0 - 0.5) / 0.5).astype(np.float32)).permute(0, 3, 1, 2)
    with torch.no_grad():
        p_own = net(own).softmax(1)
        p_imagenet = net(torch.from_numpy(normalise_images(images))).softmax(1)
    espresso, cats = 967, range(281, 286)  # ImageNet classes: espresso; tabby, tiger, Persian, Siamese, Egyptian cat
    assert int(p_own[0].argmax()) == espresso and p_own[0, espresso] > 0.9
    assert int(p_own[1].argmax()) in cats and float(p_own[1, list(cats)].sum()) > 0.8
    assert p_own[0, espresso] > p_imagenet[0, espresso]


def test_the_encoder_sees_its_own_statistics_and_keys_stay_smps(lite0, tmp_path: Path) -> None:
    import segmentation_models_pytorch as smp

    plain = smp.create_model("deeplabv3plus", encoder_name="tu-tf_efficientnet_lite0", encoder_weights=None, classes=4)
    assert set(lite0.state_dict()) == set(plain.state_dict())
    seen: list[torch.Tensor] = []
    handle = lite0.encoder.model.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    image = np.random.default_rng(1).integers(0, 256, (1, 32, 32, 3), np.uint8)
    try:
        with torch.no_grad():
            logits = forward_logits(lite0, torch.from_numpy(normalise_images(image)))
    finally:
        handle.remove()
    expected = torch.from_numpy(image / 127.5 - 1.0).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(seen[0], expected, atol=1e-5, rtol=1e-5)
    save_model(tmp_path / "model.pt", lite0, LITE0, 4)
    loaded, meta = load_model(tmp_path / "model.pt")
    assert "weights" not in meta["model_cfg"]
    with torch.no_grad():
        torch.testing.assert_close(forward_logits(loaded, torch.from_numpy(normalise_images(image))), logits)


def test_imagenet_weights_of_other_encoders_offline_stop_with_the_alternative(monkeypatch) -> None:
    import segmentation_models_pytorch.encoders as smp_encoders
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*_args, **_kwargs):
        raise LocalEntryNotFoundError("cannot find the requested files in the local cache")

    monkeypatch.setattr(smp_encoders, "hf_hub_download", offline)
    started = time.perf_counter()
    with pytest.raises(PretrainedWeightsUnavailable, match="'resnet18'.*encoder: efficientnet_lite0, weights: imagenet"):
        build_model({"name": "fpn", "encoder": "resnet18", "weights": "imagenet"}, 3)
    assert time.perf_counter() - started < 10


def test_small_unet_has_no_imagenet_weights() -> None:
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_model({"name": "small_unet", "weights": "imagenet"}, 3)


def test_every_round_starts_from_the_pretrained_weights(monkeypatch, source) -> None:
    """The config takes the model; round r >= 1 reads round r-1's model only with ``training.warm_start``,
    and every training builds its model anew, from the packaged weights."""
    import copy

    import yaml
    from conftest import REPO

    import alseg.train
    from alseg.config import resolve_config
    from alseg.plan import train_inputs
    from alseg.points import PointLabels

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["defaults"]["model"] = dict(LITE0)
    config["defaults"]["training"]["warm_start"] = False   # the default run warm-starts; PixelPick does not
    cold = resolve_config(config)
    name = next(iter(cold["experiments"]))
    assert LITE0.items() <= cold["experiments"][name]["model"].items()
    assert "init_model" not in train_inputs(cold, name, 1)
    warm = copy.deepcopy(config)
    warm["defaults"].setdefault("training", {})["warm_start"] = True
    assert "init_model" in train_inputs(resolve_config(warm), name, 1)

    built: list[torch.Tensor] = []

    def recording_build(*args, **kwargs):
        model = build_model(*args, **kwargs)
        built.append(model.encoder.model.conv_stem.weight.detach().clone())
        return model

    monkeypatch.setattr(alseg.train, "build_model", recording_build)
    images = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3), np.uint8)
    labels = PointLabels(np.array([0, 1]), np.array([3, 9]), np.array([4, 20]), np.array([0, 1]))
    schedule = {"epochs": 1, "iterations_per_epoch": 1, "batch_size": 2, "augment": None, "loader_threads": 0,
                "lr": 1e-2, "backbone_lr": 1e-2}
    for _round in range(2):
        result = alseg.train.train_model(LITE0, schedule, images, labels, None, None, num_classes=2,
                                         ignore_index=None, seed=0, device="cpu", log=lambda _line: None)
        assert torch.equal(built[-1], source["_conv_stem.weight"])
        assert not torch.equal(result.model.encoder.model.conv_stem.weight.detach(), built[-1])
