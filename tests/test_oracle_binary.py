"""The simulated binary annotator: presence from ground truth, void excluded, errors, cost."""

from __future__ import annotations

import numpy as np
import pytest

from alseg.units.binary import answer_binary, class_presence_from_masks

VOID = 255


def masks() -> np.ndarray:
    m = np.zeros((3, 4, 5), dtype=np.uint8)
    m[0, :2] = 1
    m[0, 3, 4] = 2  # a single pixel is enough for "yes"
    m[1] = VOID  # all void: no class present
    m[2, :, :2] = 3
    m[2, :, 2:] = VOID
    return m


def test_presence_excludes_void():
    present = class_presence_from_masks(masks(), np.array([0, 1, 2, 0]), 4, VOID)
    assert present.tolist() == [
        [True, True, True, False],
        [False, False, False, False],
        [False, False, False, True],
        [True, True, True, False],
    ]


def test_answers_match_brute_force():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 6, size=(10, 6, 7)).astype(np.uint8)
    gt[gt == 5] = VOID
    image = rng.integers(0, 10, size=50)
    cls = rng.integers(0, 5, size=50)
    answers, flipped = answer_binary(gt, image, cls, 5, VOID)
    expected = [bool((gt[i] == c).any()) for i, c in zip(image, cls)]
    assert answers.tolist() == expected and not flipped.any()


def test_error_rate_flips_answers():
    gt = masks()
    image = np.repeat(np.arange(3), 4 * 500)
    cls = np.tile(np.arange(4), 3 * 500)
    truth, _ = answer_binary(gt, image, cls, 4, VOID)
    noisy, flipped = answer_binary(gt, image, cls, 4, VOID, error_rate=0.1, rng=np.random.default_rng(1))
    assert np.array_equal(noisy != truth, flipped)
    assert 0.08 < flipped.mean() < 0.12
    with pytest.raises(ValueError, match="random generator"):
        answer_binary(gt, image, cls, 4, VOID, error_rate=0.1)
    with pytest.raises(ValueError, match="error_rate"):
        answer_binary(gt, image, cls, 4, VOID, error_rate=1.5, rng=np.random.default_rng(1))


def test_bad_queries_and_masks():
    gt = masks()
    with pytest.raises(ValueError, match="class ids"):
        answer_binary(gt, np.array([0]), np.array([4]), 4, VOID)
    with pytest.raises(ValueError, match="image indices"):
        answer_binary(gt, np.array([3]), np.array([0]), 4, VOID)
    bad = gt.copy()
    bad[2, 0, 0] = 7
    with pytest.raises(ValueError, match=r"image 2 holds values \[7\] outside the 4 classes"):
        answer_binary(bad, np.array([2]), np.array([0]), 4, VOID)


def test_each_answer_costs_the_configured_binary_cost():
    from alseg.units.binary import UNIT

    clicks, seconds = UNIT.answer_cost(np.array(["yes", "no", "skip"], dtype=object),
                                       {"binary": {"clicks": 1, "seconds": 3.0}}, 4)
    assert clicks.tolist() == [1.0, 1.0, 1.0] and seconds.tolist() == [3.0, 3.0, 3.0]
