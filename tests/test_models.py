"""Model factory: shapes, padding, features, MC dropout, checksums, weights files, save/load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alseg.models import (
    build_model,
    enable_mc_dropout,
    forward_logits,
    forward_with_features,
    load_model,
    model_checksum,
    model_stride,
    save_model,
)

SMP_CASES = [
    ({"name": "deeplabv3plus"}, 1280),  # mobilenet_v2 by default
    ({"name": "fpn", "encoder": "resnet18"}, 512),
    ({"name": "DeepLabV3Plus", "encoder": "resnet18"}, 512),  # case-insensitive smp name
]


def test_small_unet_shapes_on_non_divisible_input() -> None:
    model = build_model({"name": "small_unet", "width": 8}, 4).eval()
    with torch.no_grad():
        logits, features = forward_with_features(model, torch.randn(2, 3, 45, 61))
    assert logits.shape == (2, 4, 45, 61)
    assert features.shape == (2, 8 * 2**3)


def test_small_unet_does_not_import_smp() -> None:
    code = (
        "import sys, torch; from alseg.models import build_model, forward_logits; "
        "m = build_model({'name': 'small_unet'}, 3); forward_logits(m, torch.zeros(1, 3, 16, 16)); "
        "sys.exit(int('segmentation_models_pytorch' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize(("cfg", "feature_dim"), SMP_CASES)
def test_smp_models_give_input_sized_logits_and_features(cfg: dict, feature_dim: int) -> None:
    model = build_model(cfg, 11).eval()
    with torch.no_grad():
        for size in ((72, 96), (70, 90)):  # divisible by 16/32, and not
            logits, features = forward_with_features(model, torch.randn(1, 3, *size))
            assert logits.shape == (1, 11, *size)
            assert features.shape == (1, feature_dim)
            assert torch.isfinite(logits).all()


def test_padding_does_not_shift_pixels() -> None:
    """Logits of a padded input equal the divisible input's logits on the shared pixels (bottom/right pad)."""
    model = build_model({"name": "small_unet", "width": 8, "levels": 2}, 3).eval()
    assert model_stride(model) == 4
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        direct = model(x)
        # cropping the input's last rows/cols and padding them back with zeros changes only nearby logits
        padded = forward_logits(model, x[..., :31, :30])
    assert padded.shape == (1, 3, 31, 30)
    torch.testing.assert_close(padded[..., :20, :20], direct[..., :20, :20], rtol=1e-4, atol=1e-4)


def test_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown model name"):
        build_model({"name": "no_such_net"}, 3)


def test_mc_dropout_only_dropout_trains() -> None:
    model = build_model({"name": "small_unet", "dropout": 0.5}, 3)
    enable_mc_dropout(model)
    modes = {type(m).__name__: m.training for m in model.modules()}
    assert modes["Dropout2d"] is True and modes["BatchNorm2d"] is False
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


def test_smp_model_has_head_dropout_without_changing_keys() -> None:
    import segmentation_models_pytorch as smp

    model = build_model({"name": "fpn", "encoder": "resnet18", "dropout": 0.5}, 5)
    plain = smp.create_model("fpn", encoder_name="resnet18", encoder_weights=None, classes=5)
    assert set(model.state_dict()) == set(plain.state_dict())
    enable_mc_dropout(model)
    assert model.head_dropout.training
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))
        model.eval()
        torch.testing.assert_close(model(x), model(x))


def test_checksum_is_stable_across_save_and_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = {"name": "small_unet", "width": 8}
    model = build_model(cfg, 3)
    checksum = model_checksum(model)
    assert len(checksum) == 16
    stored = save_model(tmp_path / "model.pt", model, cfg, 3, {"round": 2, "history": [{"loss": 1.0}]})
    assert stored == checksum
    loaded, meta = load_model(tmp_path / "model.pt", "cpu")
    assert model_checksum(loaded) == checksum == meta["checksum"]
    assert meta["extra"]["round"] == 2 and meta["num_classes"] == 3
    assert not loaded.training
    # another serialisation of the same weights: same checksum
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    again = build_model(cfg, 3)
    again.load_state_dict(torch.load(tmp_path / "plain.pt"))
    assert model_checksum(again) == checksum
    # different weights: different checksum
    torch.manual_seed(1)
    assert model_checksum(build_model(cfg, 3)) != checksum


def test_corrupt_and_missing_model_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="model.pt"):
        load_model(bad)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_model(tmp_path / "missing.pt")


def test_whole_model_weights_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = build_model({"name": "small_unet", "width": 8}, 3)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "whole.pt")
    loaded = build_model({"name": "small_unet", "width": 8, "weights": str(tmp_path / "whole.pt")}, 3)
    assert model_checksum(loaded) == model_checksum(source)


def test_encoder_weights_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = build_model({"name": "fpn", "encoder": "resnet18"}, 5)
    # an ImageNet-style encoder file: encoder keys plus a classifier the encoder drops
    encoder_state = dict(source.encoder.state_dict())
    encoder_state["fc.weight"] = torch.zeros(1000, 512)
    encoder_state["fc.bias"] = torch.zeros(1000)
    torch.save(encoder_state, tmp_path / "encoder.pt")
    torch.manual_seed(1)
    model = build_model({"name": "fpn", "encoder": "resnet18", "weights": str(tmp_path / "encoder.pt")}, 5)
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value)
    assert not torch.equal(model.segmentation_head[0].weight, source.segmentation_head[0].weight)


def test_bad_weights_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        build_model({"name": "small_unet", "weights": str(tmp_path / "nowhere.pt")}, 3)
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt.*match neither"):
        build_model({"name": "small_unet", "weights": str(tmp_path / "other.pt")}, 3)
    # right keys, wrong shapes (a model of another class count)
    torch.save(build_model({"name": "small_unet"}, 7).state_dict(), tmp_path / "seven.pt")
    with pytest.raises(ValueError, match="seven.pt.*do not fit"):
        build_model({"name": "small_unet", "weights": str(tmp_path / "seven.pt")}, 3)
