"""The inference dump: layout, dtypes, values, MC-dropout reproducibility, errors (the pixel group's queries:
tests/test_pixel_dump.py)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from alseg.acquire.pixel import STRATEGY_FIELDS
from alseg.augment import normalise_images
from alseg.infer import batch_seed, probability_fields, write_inference
from alseg.inference_file import (
    FIELD_DTYPES,
    FILE_FORMAT,
    FILE_VERSION,
    InferenceDump,
    InferenceFileError,
    compression_options,
    read_inference,
)
from alseg.models import build_model, forward_with_features, model_checksum
from alseg.pixel_dump import PixelDumpRequest, read_pixel_candidates

NUM_CLASSES = 5
MODEL = {"name": "small_unet", "width": 8, "levels": 2, "dropout": 0.5}


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(MODEL, NUM_CLASSES).eval()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (7, 20, 26, 3), dtype=np.uint8)


def every_pixel(images: np.ndarray, budget: int = 3, top_percent: float = 5.0) -> PixelDumpRequest:
    """The pixel group of a pool where every pixel may be asked."""
    shape = images.shape[1:3]
    return PixelDumpRequest(budget, top_percent, lambda start, stop: np.ones((stop - start, *shape), bool), {})


def _write(path: Path, model: torch.nn.Module, images: np.ndarray, **kwargs) -> dict:
    """Write a dump with the pixel and image groups; its image fields, and each strategy's pixel candidates."""
    kwargs.setdefault("log", lambda line: None)
    kwargs.setdefault("pixels", every_pixel(images))
    write_inference(path, model, images, NUM_CLASSES, batch_size=3, groups=("pixel", "image"), **kwargs)
    data = read_inference(path)
    with InferenceDump(path) as dump:
        data.update({strategy: read_pixel_candidates(dump, strategy, 0, len(images)) for strategy in STRATEGY_FIELDS})
    return data


def test_layout_dtypes_shapes_and_attrs(tmp_path: Path, model, images) -> None:
    path = tmp_path / "inference.h5"
    data = _write(path, model, images, attrs={"round": 2, "classes": list("abcde")})
    n, h, w = images.shape[:3]
    assert data["class_presence"].shape == (n, NUM_CLASSES)
    assert data["pred_pixels"].shape == (n, NUM_CLASSES)
    assert data["features"].shape == (n, 8 * 2**2)
    for name, dtype in FIELD_DTYPES.items():
        assert data[name].dtype == dtype, name
    with h5py.File(path) as h5:
        assert "pixel/top1" not in h5  # no whole per-pixel map
        assert h5["pixel/eligible"][()].tolist() == [h * w] * n and h5["pixel/cover"][()].tolist() == [26] * n
        for strategy, fields in STRATEGY_FIELDS.items():
            group = h5[f"pixel/{strategy}"]
            assert sorted(group) == sorted(["offsets", "index", "nan", *fields])
            assert group["offsets"].shape == (n + 1,) and group["index"].dtype == np.uint32
            assert group["index"].compression == "gzip" and group["index"].shuffle
            assert all(group[f].dtype == np.float16 and group[f].shape == group["index"].shape for f in fields)
            assert (np.diff(group["offsets"][()]) >= 26).all()
    assert data.attrs["format"] == FILE_FORMAT and data.attrs["version"] == FILE_VERSION
    assert (data.attrs["image_start"], data.attrs["image_stop"]) == (0, n)
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
    direct = {"top1": ordered[:, -1], "top2": ordered[:, -2], "entropy": entropy}
    for strategy in STRATEGY_FIELDS:
        candidates = data[strategy]
        image = np.repeat(np.arange(len(images)), np.diff(candidates.offsets))
        for name, values in candidates.fields.items():  # float16 tolerance
            at = direct[name].reshape(len(images), -1)[image, candidates.index.astype(np.int64)]
            np.testing.assert_allclose(values, at, rtol=1e-3, atol=2e-3, err_msg=f"{strategy} {name}")
    most = np.sort(1 - ordered[:, -1].reshape(len(images), -1), axis=1)[:, -20:]  # well inside the top 26
    lc = data["least_confidence"]
    for i in range(len(images)):
        kept = 1 - lc.fields["top1"][lc.offsets[i]:lc.offsets[i + 1]].astype(np.float64)
        assert kept.min() <= most[i].min() + 1e-3  # the kept pixels reach past the 20 most uncertain
    np.testing.assert_allclose(data["class_presence"], probs.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(data["class_presence"].sum(axis=1), 1.0, rtol=1e-5)
    counts = np.stack([np.bincount(p.ravel(), minlength=NUM_CLASSES) for p in probs.argmax(axis=1)])
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
    assert not np.array_equal(first["class_presence"], plain["class_presence"])
    for name in ("class_presence", "pred_pixels", "features"):
        np.testing.assert_array_equal(first[name], second[name])
    for strategy in STRATEGY_FIELDS:
        np.testing.assert_array_equal(first[strategy].index, second[strategy].index)
        for name, values in first[strategy].fields.items():
            np.testing.assert_array_equal(values, second[strategy].fields[name])
    assert not np.array_equal(first["margin"].fields["top2"], other["margin"].fields["top2"])
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
    part = read_inference(path, ["image/class_presence", "features"], images=slice(2, 5))
    assert sorted(part) == ["class_presence", "features"]
    np.testing.assert_array_equal(part["class_presence"], full["class_presence"][2:5])
    with InferenceDump(path) as dump:
        part = read_pixel_candidates(dump, "entropy", 2, 5)
    lo, hi = full["entropy"].offsets[[2, 5]]
    np.testing.assert_array_equal(part.index, full["entropy"].index[lo:hi])
    assert part.first_image == 2 and part.eligible.size == 3


def test_read_errors_name_the_file(tmp_path: Path, model, images) -> None:
    with pytest.raises(FileNotFoundError, match="absent.h5"):
        read_inference(tmp_path / "absent.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(InferenceFileError, match="corrupt.h5"):
        read_inference(corrupt)
    partial = tmp_path / "partial.h5"
    with h5py.File(partial, "w") as h5:
        h5.create_dataset("image/class_presence", data=np.zeros((1, 2), np.float32))
    with pytest.raises(InferenceFileError, match="partial.h5.*lacks fields.*pred_pixels"):
        read_inference(partial)
    assert read_inference(partial, ["class_presence"])["class_presence"].shape == (1, 2)
    with pytest.raises(InferenceFileError, match="unknown inference fields"):
        read_inference(partial, ["top1"])


def test_failed_write_leaves_no_file(tmp_path: Path, model, images) -> None:
    path = tmp_path / "inference.h5"
    with pytest.raises(ValueError, match="classes"):
        write_inference(path, model, images, NUM_CLASSES + 1, log=lambda line: None)
    assert not path.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("spec", ["none", "lzf", "gzip-1+shuffle", "gzip-9"])
def test_compression_specs(tmp_path: Path, model, images, spec: str) -> None:
    compression_options(spec)
    data = _write(tmp_path / "inference.h5", model, images[:2], compression=spec)
    assert data["margin"].offsets[-1] == data["margin"].fields["top1"].size >= 2 * 26


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
                    mc_mode="official", log=lambda line: None, groups=("pixel",), pixels=every_pixel(images))
    with InferenceDump(path) as dump:
        attrs = dump.attrs
        candidates = {s: read_pixel_candidates(dump, s, 0, len(images)) for s in STRATEGY_FIELDS}
    assert attrs["mc_mode"] == "official" and summed_passes(attrs) == passes

    by_hand = {"margin": 0.0, "least_confidence": 0.0, "entropy": 0.0}
    mean_probs, margins = 0.0, []
    with torch.random.fork_rng(), torch.inference_mode():
        torch.manual_seed(batch_seed(seed, 0))  # one batch: the seed of the batch that starts at image 0
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
        kept = candidates[strategy]
        score, _ = strategy_scores(strategy, kept.fields, summed_passes(attrs))
        image = np.repeat(np.arange(len(images)), np.diff(kept.offsets))
        at = expected.reshape(len(images), -1)[image, kept.index.astype(np.int64)]
        np.testing.assert_allclose(score, at, atol=passes * 2e-3)  # the dump stores float16 means
    # the passes differ (dropout is active), and the summed entropy is not T times the mean softmax's
    assert np.ptp(np.stack(margins), axis=0).max() > 0.1
    entropy_of_mean = -(mean_probs * np.log(mean_probs + 1e-12)).sum(axis=1)
    assert (passes * entropy_of_mean - by_hand["entropy"]).max() > 0.1  # Jensen: larger where passes differ


def test_official_mode_needs_passes(tmp_path: Path, model, images) -> None:
    with pytest.raises(ValueError, match="mc_mode"):
        _write(tmp_path / "x.h5", model, images, mc_mode="official")


def test_the_pixel_group_needs_its_draws(tmp_path: Path, model, images) -> None:
    with pytest.raises(ValueError, match="pixel group of an inference dump needs the draws it covers"):
        write_inference(tmp_path / "x.h5", model, images, NUM_CLASSES, groups=("pixel",), log=lambda line: None)
