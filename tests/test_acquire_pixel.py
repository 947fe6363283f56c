import numpy as np
import pytest

from alseg.acquire.pixel import (
    eligible_pixels,
    entropy_scores,
    least_confidence_scores,
    margin_scores,
    select_pixels,
    strategy_scores,
    top_k_with_random_ties,
)


def softmax_fields(probs):
    """top1/top2/entropy fields of a (N, C, H, W) probability array, as the inference dump holds them."""
    s = np.sort(probs, axis=1)
    return {"top1": s[:, -1], "top2": s[:, -2], "entropy": entropy_scores(probs)}


def test_scores_match_definitions():
    p = np.array([[[[0.7]], [[0.2]], [[0.1]]]], dtype=np.float32)  # N=1, C=3, 1x1
    f = softmax_fields(p)
    assert least_confidence_scores(f["top1"])[0, 0, 0] == pytest.approx(0.3)
    assert margin_scores(f["top1"], f["top2"])[0, 0, 0] == pytest.approx(0.5)
    expected = -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1))
    assert f["entropy"][0, 0, 0] == pytest.approx(expected, rel=1e-5)


def test_margin_topk_picks_smallest_margins():
    rng = np.random.default_rng(0)
    n, h, w = 3, 20, 30
    top1 = rng.uniform(0.5, 1.0, (n, h, w)).astype(np.float32)
    top2 = (1 - top1) * rng.uniform(0, 1, (n, h, w)).astype(np.float32)
    score, priority = strategy_scores("margin", {"top1": top1, "top2": top2})
    eligible = np.ones((n, h, w), bool)
    sel = select_pixels(priority, eligible, budget=7, top_percent=0, rng=rng)
    assert sel.size == 3 * 7
    for i in range(n):
        picked = np.sort(score[i][sel.y[sel.image == i], sel.x[sel.image == i]])
        np.testing.assert_array_equal(picked, np.sort(score[i].ravel())[:7])
    assert set(sel.rank.tolist()) == set(range(7))


def test_top_percent_draws_only_from_top_fraction():
    rng = np.random.default_rng(1)
    n, h, w = 2, 50, 40  # 2000 px per image: top 5% = 100 px
    priority = rng.random((n, h, w)).astype(np.float32)
    eligible = np.ones((n, h, w), bool)
    seen = np.zeros((n, h, w), bool)
    for seed in range(30):
        sel = select_pixels(priority, eligible, 10, 5, np.random.default_rng(seed))
        seen[sel.image, sel.y, sel.x] = True
        assert sel.rank.max() < 100
    for i in range(n):
        threshold = np.sort(priority[i].ravel())[-100]
        assert priority[i][seen[i]].min() >= threshold
        # not plain top-k: the draw spreads over far more than the 10 best pixels
        assert seen[i].sum() > 50


def test_already_asked_and_void_pixels_are_never_selected():
    rng = np.random.default_rng(2)
    n, h, w = 2, 10, 10
    masks = rng.integers(0, 3, (n, h, w)).astype(np.uint8)
    masks[:, :5] = 255
    asked = np.zeros((n, h, w), bool)
    asked[:, 5:7] = True
    eligible = eligible_pixels(asked, masks, 255, query_void=False)
    priority = np.zeros((n, h, w), np.float32)
    priority[:, :7] = 10.0  # the most uncertain pixels are all void or asked
    sel = select_pixels(priority, eligible, 5, 0, rng)
    assert (sel.y >= 7).all()
    assert not asked[sel.image, sel.y, sel.x].any()
    with_void = eligible_pixels(asked, masks, 255, query_void=True)
    assert with_void[:, :5].all() and not with_void[:, 5:7].any()


def test_budget_larger_than_left_asks_what_is_left():
    eligible = np.zeros((2, 4, 4), bool)
    eligible[0, 0, :3] = True
    eligible[1] = True
    sel = select_pixels(None, eligible, 5, 0, np.random.default_rng(0))
    assert sel.shortfall == {0: 3}
    assert (sel.image == 0).sum() == 3 and (sel.image == 1).sum() == 5
    assert (sel.rank == -1).all()


def test_random_selection_is_uniform_and_seeded():
    eligible = np.ones((1, 10, 10), bool)
    a = select_pixels(None, eligible, 5, 0, np.random.default_rng(7))
    b = select_pixels(None, eligible, 5, 0, np.random.default_rng(7))
    np.testing.assert_array_equal(a.y * 10 + a.x, b.y * 10 + b.x)
    counts = np.zeros(100)
    rng = np.random.default_rng(0)
    for _ in range(2000):
        s = select_pixels(None, eligible, 5, 0, rng)
        counts[s.y * 10 + s.x] += 1
    assert counts.min() > 50 and counts.max() < 150  # expected 100 each


def test_ties_at_the_cut_are_broken_at_random():
    priority = np.array([5.0, 1, 1, 1, 1, 1, 1, 1], dtype=np.float16).astype(np.float32)
    picks = {tuple(sorted(top_k_with_random_ties(priority, 3, np.random.default_rng(s)))) for s in range(40)}
    assert all(0 in p for p in picks)
    assert len(picks) > 5


def test_nan_priority_is_refused():
    priority = np.full((1, 2, 2), np.nan, np.float32)
    with pytest.raises(ValueError, match="NaN"):
        select_pixels(priority, np.ones((1, 2, 2), bool), 1, 0, np.random.default_rng(0))
