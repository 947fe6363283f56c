import numpy as np
import pytest

from alseg.acquire.pixel import (
    PixelSelection,
    candidates_from_maps,
    eligible_pixels,
    entropy_scores,
    least_confidence_scores,
    margin_scores,
    select_from_candidates,
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


# -- drawing from what the inference dump keeps ------------------------------------------------------


def tied_fields(rng, n, h, w):
    """float16 top1/top2/entropy with many ties (a few distinct values), as a dump of a confident model."""
    top1 = rng.choice(np.array([0.4, 0.55, 0.7, 0.9, 0.99, 1.0]), (n, h, w)).astype(np.float16)
    top2 = ((1 - top1.astype(np.float32)) * rng.choice([0.2, 0.5, 1.0], (n, h, w))).astype(np.float16)
    entropy = rng.choice(np.array([0.0, 0.1, 0.5, 1.2]), (n, h, w)).astype(np.float16)
    return {"top1": top1, "top2": top2, "entropy": entropy}


def whole_map_selection(strategy, fields, eligible, budget, top_percent, seed, passes=1):
    score, priority = strategy_scores(strategy, fields, passes)
    sel = select_pixels(priority, eligible, budget, top_percent, np.random.default_rng(seed))
    return sel, score[sel.image, sel.y, sel.x].astype(np.float64)


def chunked_candidate_selection(strategy, fields, eligible, budget, top_percent, seed, passes=1, chunk=2):
    rng = np.random.default_rng(seed)
    parts = []
    for start in range(0, len(eligible), chunk):
        part = {name: values[start:start + chunk] for name, values in fields.items()}
        candidates = candidates_from_maps(strategy, part, eligible[start:start + chunk], budget, top_percent, passes,
                                          first_image=start)
        parts.append(select_from_candidates(candidates, strategy, budget, top_percent, rng, passes))
    return PixelSelection.concatenate(parts)


@pytest.mark.parametrize("strategy", ["least_confidence", "margin", "entropy"])
@pytest.mark.parametrize("top_percent", [0.0, 5.0, 40.0, 100.0])
def test_candidates_choose_what_the_whole_maps_choose(strategy, top_percent):
    """Same pixels, ranks, scores and shortfalls, image by image, for ties, asked and void pixels, a
    budget larger than some images have, and MC passes; chunked, with one generator."""
    rng = np.random.default_rng(3)
    n, h, w = 7, 12, 15
    fields = tied_fields(rng, n, h, w)
    eligible = rng.random((n, h, w)) > 0.2
    eligible[2, :, :] = False
    eligible[3] = False
    eligible[3, 0, :4] = True  # fewer pixels left than the budget
    for seed, budget, passes in ((0, 6, 1), (1, 1, 1), (2, 9, 20)):
        expected, expected_score = whole_map_selection(strategy, fields, eligible, budget, top_percent, seed, passes)
        got = chunked_candidate_selection(strategy, fields, eligible, budget, top_percent, seed, passes)
        for name in ("image", "y", "x", "rank"):
            np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
        np.testing.assert_array_equal(got.score, expected_score)
        assert got.shortfall == expected.shortfall == ({2: 0, 3: 4} if budget > 4 else {2: 0})


def test_candidates_are_a_small_share_of_the_pixels():
    rng = np.random.default_rng(0)
    fields = {"top1": rng.uniform(0.3, 1, (2, 100, 100)).astype(np.float16)}
    candidates = candidates_from_maps("least_confidence", fields, np.ones((2, 100, 100), bool), 10, 5.0)
    sizes = np.diff(candidates.offsets)
    assert (sizes >= 500).all() and (sizes < 600).all()  # the top 5 % and the ties at its cut
    assert candidates.cover.tolist() == [500, 500] and candidates.eligible.tolist() == [10000, 10000]
    assert candidates.index.dtype == np.uint32 and sorted(candidates.fields) == ["top1"]


def test_candidates_refuse_a_larger_draw_and_nan():
    rng = np.random.default_rng(1)
    fields = tied_fields(rng, 2, 10, 10)
    eligible = np.ones((2, 10, 10), bool)
    candidates = candidates_from_maps("margin", fields, eligible, 5, 5.0)
    with pytest.raises(ValueError, match="image 0: a draw from 20 of its 100 eligible pixels"):
        select_from_candidates(candidates, "margin", 5, 20.0, rng)
    fields["entropy"][1, 3, 3] = np.nan
    candidates = candidates_from_maps("entropy", fields, eligible, 5, 5.0)
    assert candidates.nan.tolist() == [0, 1] and candidates.offsets[2] == candidates.offsets[1]
    with pytest.raises(ValueError, match="image 1: priority holds NaN"):
        select_from_candidates(candidates, "entropy", 5, 5.0, rng)


def test_random_selection_in_chunks_is_the_whole_pools():
    eligible = np.random.default_rng(0).random((5, 8, 9)) > 0.3
    whole = select_pixels(None, eligible, 4, 0, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    parts = PixelSelection.concatenate([select_pixels(None, eligible[s:s + 2], 4, 0, rng, first_image=s)
                                        for s in range(0, 5, 2)])
    for name in ("image", "y", "x", "rank"):
        np.testing.assert_array_equal(getattr(parts, name), getattr(whole, name))
    assert parts.score is None
