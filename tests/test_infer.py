"""The inference dump: layout, dtypes, values, MC-dropout reproducibility, errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from alseg.augment import normalise_images
from alseg.infer import probability_fields, write_inference
from alseg.inference_file import FIELD_DTYPES, InferenceFileError, compression_options, read_inference
from alseg.models import build_model, forward_with_features, model_checksum

NUM_CLASSES = 5
MODEL = {"name": "small_unet", "width": 8, "levels": 2, "dropout": 0.5}


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(MODEL, NUM_CLASSES).eval()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (7, 20, 26, 3), dtype=np.uint8)


def _write(path: Path, model: torch.nn.Module, images: np.ndarray, **kwargs) -> dict:
    kwargs.setdefault("log", lambda line: None)
    write_inference(path, model, images, NUM_CLASSES, batch_size=3, **kwargs)
    return read_inference(path)


def test_layout_dtypes_shapes_and_attrs(tmp_path: Path, model, images) -> None:
    path = tmp_path / "inference.h5"
    data = _write(path, model, images, attrs={"round": 2, "classes": list("abcde")})
    n, h, w = images.shape[:3]
    for name in ("top1", "top2", "entropy", "pred"):
        assert data[name].shape == (n, h, w)
    assert data["class_presence"].shape == (n, NUM_CLASSES)
    assert data["pred_pixels"].shape == (n, NUM_CLASSES)
    assert data["features"].shape == (n, 8 * 2**2)
    for name, dtype in FIELD_DTYPES.items():
        assert data[name].dtype == dtype, name
    with h5py.File(path) as h5:
        for name in ("top1", "top2", "entropy", "pred"):
            dataset = h5[f"pixel/{name}"]
            assert dataset.chunks == (1, h, w)
            assert dataset.compression == "gzip"
    assert data.attrs["model"] == model_checksum(model)
    assert data.attrs["mc_passes"] == 0
    assert data.attrs["round"] == 2 and data.attrs["classes"] == list("abcde")
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed


def test_values_match_a_direct_computation(tmp_path: Path, model, images) -> None:
    data = _write(tmp_path / "inference.h5", model, images)
    with torch.no_grad():
        logits, features = forward_with_features(model, torch.from_numpy(normalise_images(images)))
    probs = torch.softmax(logits, dim=1).numpy().astype(np.float64)
    entropy = -(probs * np.log(probs + 1e-12)).sum(axis=1)
    ordered = np.sort(probs, axis=1)
    assert np.all(data["top1"] >= data["top2"])
    np.testing.assert_allclose(data["top1"], ordered[:, -1], rtol=1e-3, atol=1e-3)  # float16 tolerance
    np.testing.assert_allclose(data["top2"], ordered[:, -2], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(data["entropy"], entropy, rtol=1e-3, atol=2e-3)
    np.testing.assert_array_equal(data["pred"], probs.argmax(axis=1))
    np.testing.assert_allclose(data["class_presence"], probs.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(data["class_presence"].sum(axis=1), 1.0, rtol=1e-5)
    counts = np.stack([np.bincount(p.ravel(), minlength=NUM_CLASSES) for p in data["pred"]])
    np.testing.assert_array_equal(data["pred_pixels"], counts)
    np.testing.assert_allclose(data["features"], features.numpy(), rtol=1e-5, atol=1e-6)


def test_probability_fields_on_a_hand_made_case() -> None:
    probs = torch.tensor([0.7, 0.2, 0.1]).view(1, 3, 1, 1).repeat(1, 1, 2, 2)
    probs[0, :, 1, 1] = torch.tensor([0.1, 0.3, 0.6])
    fields = probability_fields(probs)
    assert fields["top1"][0, 0, 0] == pytest.approx(0.7) and fields["top2"][0, 0, 0] == pytest.approx(0.2)
    assert fields["pred"][0].tolist() == [[0, 0], [0, 2]]
    assert fields["pred_pixels"][0].tolist() == [3, 0, 1]
    expected = -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1))
    assert fields["entropy"][0, 0, 0] == pytest.approx(expected, rel=1e-5)


def test_mc_passes_differ_from_the_deterministic_pass_and_are_reproducible(tmp_path: Path, model, images) -> None:
    plain = _write(tmp_path / "plain.h5", model, images)
    first = _write(tmp_path / "mc1.h5", model, images, mc_passes=4, seed=11)
    second = _write(tmp_path / "mc2.h5", model, images, mc_passes=4, seed=11)
    other = _write(tmp_path / "mc3.h5", model, images, mc_passes=4, seed=12)
    assert first.attrs["mc_passes"] == 4
    assert not np.array_equal(first["top1"], plain["top1"])
    for name in ("top1", "top2", "entropy", "pred", "class_presence"):
        np.testing.assert_array_equal(first[name], second[name])
    assert not np.array_equal(first["top1"], other["top1"])
    assert not model.training  # the model's mode is restored


def test_mc_passes_leave_the_callers_rng_alone(tmp_path: Path, model, images) -> None:
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    _write(tmp_path / "mc.h5", model, images, mc_passes=2, seed=1)
    torch.testing.assert_close(torch.rand(3), expected)


def test_read_subsets_of_fields_and_images(tmp_path: Path, model, images) -> None:
    path = tmp_path / "inference.h5"
    full = _write(path, model, images)
    part = read_inference(path, ["pixel/top1", "features"], images=slice(2, 5))
    assert sorted(part) == ["features", "top1"]
    np.testing.assert_array_equal(part["top1"], full["top1"][2:5])


def test_read_errors_name_the_file(tmp_path: Path, model, images) -> None:
    with pytest.raises(FileNotFoundError, match="absent.h5"):
        read_inference(tmp_path / "absent.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(InferenceFileError, match="corrupt.h5"):
        read_inference(corrupt)
    partial = tmp_path / "partial.h5"
    with h5py.File(partial, "w") as h5:
        h5.create_dataset("pixel/top1", data=np.zeros((1, 2, 2), np.float16))
    with pytest.raises(InferenceFileError, match="partial.h5.*lacks fields.*top2"):
        read_inference(partial)
    assert read_inference(partial, ["top1"])["top1"].shape == (1, 2, 2)
    with pytest.raises(InferenceFileError, match="unknown inference fields"):
        read_inference(partial, ["nonsense"])


def test_failed_write_leaves_no_file(tmp_path: Path, model, images) -> None:
    path = tmp_path / "inference.h5"
    with pytest.raises(ValueError, match="classes"):
        write_inference(path, model, images, NUM_CLASSES + 1, log=lambda line: None)
    assert not path.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("spec", ["none", "lzf", "gzip-1+shuffle", "gzip-9"])
def test_compression_specs(tmp_path: Path, model, images, spec: str) -> None:
    compression_options(spec)
    data = _write(tmp_path / "inference.h5", model, images[:2], compression=spec)
    assert data["top1"].shape == (2, 20, 26)


def test_bad_compression_spec() -> None:
    with pytest.raises(ValueError, match="unknown compression"):
        compression_options("zstd")


def test_official_mc_dropout_scores_the_sum_of_the_per_pass_maps(tmp_path: Path, images) -> None:
    """``mc_mode: official``: Dropout2d 0.2 on the encoder maps, and the score of every strategy equals the
    sum of the per-pass uncertainty maps computed by hand with the same seed (not the uncertainty of the
    mean softmax)."""
    from alseg.acquire.pixel import strategy_scores
    from alseg.mc_dropout import official_model, summed_passes
    from alseg.models import enable_mc_dropout

    torch.manual_seed(3)
    official = build_model(official_model(MODEL), NUM_CLASSES).eval()
    with torch.no_grad():  # larger weights than the init's, so that the dropout masks move the softmax visibly
        for module in official.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.normal_(0.0, 0.15)
    assert official.encoder_dropout.p == 0.2 and official.head_dropout.p == 0.0
    passes, seed = 3, 5
    path = tmp_path / "official.h5"
    write_inference(path, official, images, NUM_CLASSES, batch_size=len(images), mc_passes=passes, seed=seed,
                    mc_mode="official", log=lambda line: None)
    data = read_inference(path, ["top1", "top2", "entropy"])
    assert data.attrs["mc_mode"] == "official" and summed_passes(data.attrs) == passes

    by_hand = {"margin": 0.0, "least_confidence": 0.0, "entropy": 0.0}
    mean_probs, margins = 0.0, []
    with torch.random.fork_rng(), torch.inference_mode():
        torch.manual_seed(seed)
        enable_mc_dropout(official)
        x = torch.from_numpy(normalise_images(images))
        for _ in range(passes):
            probs = torch.softmax(forward_with_features(official, x)[0], dim=1)
            top = probs.topk(2, dim=1).values
            margins.append((top[:, 0] - top[:, 1]).numpy())
            by_hand["margin"] = by_hand["margin"] + margins[-1]
            by_hand["least_confidence"] = by_hand["least_confidence"] + (1 - top[:, 0]).numpy()
            by_hand["entropy"] = by_hand["entropy"] + (-(probs * torch.log(probs + 1e-12)).sum(dim=1)).numpy()
            mean_probs = mean_probs + probs.numpy() / passes
    official.eval()
    for strategy, expected in by_hand.items():
        score, _ = strategy_scores(strategy, data, summed_passes(data.attrs))
        np.testing.assert_allclose(score, expected, atol=passes * 2e-3)  # the dump stores float16 means
    # the passes differ (dropout is active), and the summed entropy is not T times the mean softmax's
    assert np.ptp(np.stack(margins), axis=0).max() > 0.1
    entropy_of_mean = -(mean_probs * np.log(mean_probs + 1e-12)).sum(axis=1)
    assert (passes * entropy_of_mean - by_hand["entropy"]).max() > 0.1  # Jensen: larger where passes differ


def test_official_mode_needs_passes(tmp_path: Path, model, images) -> None:
    with pytest.raises(ValueError, match="mc_mode"):
        _write(tmp_path / "x.h5", model, images, mc_mode="official")
