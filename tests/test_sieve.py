"""Sieving: keep the pixels of a labelled region whose confidence is at or above the Kneedle knee."""

from __future__ import annotations

import numpy as np
import pytest
from kneed import KneeLocator

from alseg.sieve import knee_threshold, label_confidence, sieve_mask, sieve_thresholds


def _region_with_tail(rng: np.random.Generator, size: int, tail: float) -> np.ndarray:
    """Confidences of a region: most pixels agree with the label (0.8-1), a ``tail`` share does not (0-0.3)."""
    n_tail = int(size * tail)
    return np.concatenate([rng.uniform(0.0, 0.3, n_tail), rng.uniform(0.8, 1.0, size - n_tail)])


def test_sieving_removes_the_low_confidence_tail() -> None:
    rng = np.random.default_rng(0)
    confidence = np.concatenate([_region_with_tail(rng, 1000, 0.2), _region_with_tail(rng, 2000, 0.1)])
    region = np.repeat([0, 1], [1000, 2000])
    keep, thresholds = sieve_mask(region, confidence, 2)
    assert np.all((thresholds > 0.3) & (thresholds <= 0.85))
    # the whole tail goes, the agreeing pixels stay (save a sliver just under the knee)
    assert not keep[confidence < 0.3].any()
    assert keep[confidence >= 0.85].all()
    assert keep.sum() >= 0.95 * np.count_nonzero(confidence >= 0.8)


def test_threshold_is_kneedle_on_evenly_spaced_order_statistics() -> None:
    rng = np.random.default_rng(1)
    confidence = _region_with_tail(rng, 777, 0.3)
    thresholds = sieve_thresholds(np.zeros(777, int), confidence, 1, min_size=512, sample_points=20)
    samples = np.sort(confidence)[np.round(np.linspace(0, 776, 20)).astype(int)]
    knee = KneeLocator(np.arange(20), samples, S=1, curve="concave", direction="increasing").knee
    assert thresholds[0] == samples[knee]
    assert knee_threshold(samples) == samples[knee]


def test_small_regions_and_degenerate_curves_keep_everything() -> None:
    rng = np.random.default_rng(2)
    small = _region_with_tail(rng, 511, 0.3)  # below min_size: not sieved
    constant = np.full(600, 0.7)  # Kneedle undefined
    linear = np.linspace(0.0, 1.0, 600)  # a straight line has no knee
    confidence = np.concatenate([small, constant, linear])
    region = np.repeat([0, 1, 2, 3], [511, 600, 600, 0])  # region 3 is empty
    keep, thresholds = sieve_mask(region, confidence, 4)
    assert keep.all()
    assert thresholds[0] == -np.inf and thresholds[3] == -np.inf
    assert thresholds[1] == 0.7 and thresholds[2] == 0.0
    assert knee_threshold(np.array([0.2, 0.9])) == 0.2  # too few samples


def test_sieving_is_deterministic_and_order_free() -> None:
    rng = np.random.default_rng(3)
    confidence = np.concatenate([_region_with_tail(rng, 900, 0.25), _region_with_tail(rng, 700, 0.15)])
    region = np.repeat([1, 0], [900, 700])
    shuffle = rng.permutation(confidence.size)
    keep, thresholds = sieve_mask(region, confidence, 2)
    keep_shuffled, thresholds_shuffled = sieve_mask(region[shuffle], confidence[shuffle], 2)
    np.testing.assert_array_equal(thresholds, thresholds_shuffled)
    np.testing.assert_array_equal(keep[shuffle], keep_shuffled)


def test_label_confidence_gathers_the_label_probability() -> None:
    probs = np.zeros((1, 3, 2, 2), dtype=np.float32)
    probs[0, :, 0, 0] = [0.1, 0.7, 0.2]
    probs[0, :, 0, 1] = [0.6, 0.3, 0.1]
    probs[0, :, 1, :] = 1 / 3
    label = np.array([[[1, 2], [-1, 0]]])
    confidence = label_confidence(probs, label)
    np.testing.assert_allclose(confidence[0, 0], [0.7, 0.1])
    assert np.isnan(confidence[0, 1, 0]) and confidence[0, 1, 1] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="out of range"):
        label_confidence(probs, label + 2)
    with pytest.raises(ValueError, match="expected probs"):
        label_confidence(probs[0], label)


def test_sieve_bad_inputs() -> None:
    region = np.zeros(10, int)
    confidence = np.linspace(0, 1, 10)
    with pytest.raises(ValueError, match="differ in shape"):
        sieve_thresholds(region, confidence[:5], 1)
    with pytest.raises(ValueError, match="outside 0 .. 0"):
        sieve_thresholds(region + 1, confidence, 1)
    with pytest.raises(ValueError, match="sample_points"):
        sieve_thresholds(region, confidence, 1, sample_points=2)
    with pytest.raises(ValueError, match="min_size"):
        sieve_thresholds(region, confidence, 1, min_size=0)
    with pytest.raises(ValueError, match="NaN"):
        sieve_thresholds(region, np.full(10, np.nan), 1)


def test_label_noise_counts_void_pixels_that_receive_a_label() -> None:
    """Hand-made: 8 labelled pixels of one region answered class 1 (ignore index 255): 4 are class 1, 2 are
    class 0 (wrong), 2 are void (trained as class 1 all the same)."""
    from alseg.units.superpixel.sieving import LabelNoise

    def noise(cls: np.ndarray, truth: np.ndarray) -> LabelNoise:
        counted = LabelNoise()
        counted.add(cls, truth, 255)
        return counted

    cls = np.full(8, 1)
    truth = np.array([1, 1, 1, 1, 0, 0, 255, 255])
    assert noise(cls, truth).share() == 4 / 8  # 2 wrong + 2 void, of 8
    assert noise(cls, truth).share(count_void=False) == 2 / 6  # the old figure
    assert noise(cls[6:], truth[6:]).share() == 1.0  # only void: every label is wrong
    assert noise(cls[6:], truth[6:]).share(count_void=False) is None
    assert noise(cls[:0], truth[:0]).share() is None
    # counted a part at a time: the same counts, so the same shares
    parts = LabelNoise()
    for rows in np.split(np.arange(8), [3, 5]):
        parts.add(cls[rows], truth[rows], 255)
    assert parts == noise(cls, truth)
    # no ignore value: nothing is void
    plain = LabelNoise()
    plain.add(cls, truth, None)
    assert plain.void == 0 and plain.share() == plain.share(count_void=False) == 4 / 8
