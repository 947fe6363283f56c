"""Superpixel acquisition: statistics, adjacency, adaptive merge, scores, selection, dominant-label oracle."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from alseg.acquire.superpixel import (
    candidate_regions,
    merge_summary,
    predicted_class_shares,
    query_of_base,
    region_scores,
    select_regions,
)
from alseg.acquire.superpixel_merge import (
    adaptive_merge,
    adjacency_csr,
    jensen_shannon_distance,
    region_map,
    superpixel_edges,
)
from alseg.acquire.superpixel_stats import (
    SuperpixelStats,
    superpixel_mean_probs,
    superpixel_stats,
    superpixel_stats_from_probs,
)
from alseg.superpixels import offsets_from_counts
from alseg.units.superpixel.oracle import (
    answer_superpixel_queries,
    dominant_answers,
    query_class_counts,
)

EPS = 0.1
# JS distances (natural log): d(A, B) = 0.078, d(B, C) = 0.089, d(A, C) = 0.165, D is far from all
A, B, C, D = [0.92, 0.08], [0.85, 0.15], [0.75, 0.25], [0.1, 0.9]


def test_distribution_premises() -> None:
    assert jensenshannon(A, B) < EPS and jensenshannon(B, C) < EPS
    assert jensenshannon(A, C) > EPS and jensenshannon(A, D) > EPS and jensenshannon(C, D) > EPS


# ------------------------------------------------------------------------------------------ adjacency


def test_edges_of_a_hand_made_map() -> None:
    labels = np.array([
        [0, 0, 1],
        [0, 2, 1],
        [3, 3, 1],
    ])
    edges = superpixel_edges(labels)
    np.testing.assert_array_equal(edges, [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]])
    # diagonal contact is not adjacency
    np.testing.assert_array_equal(superpixel_edges(np.array([[0, 1], [2, 3]])), [[0, 1], [0, 2], [1, 3], [2, 3]])
    # a batch: global ids, no edge between images
    batch = np.stack([np.array([[0, 1], [0, 1]]), np.array([[0, 0], [1, 1]])])
    np.testing.assert_array_equal(superpixel_edges(batch, first_ids=np.array([0, 2])), [[0, 1], [2, 3]])
    assert superpixel_edges(np.zeros((3, 3), int)).shape == (0, 2)
    with pytest.raises(ValueError, match="first_ids"):
        superpixel_edges(batch, first_ids=np.array([0]))


def test_adjacency_csr_is_symmetric() -> None:
    indptr, indices = adjacency_csr(np.array([[0, 1], [0, 2], [1, 3]]), 5)
    neighbours = [indices[indptr[s]:indptr[s + 1]].tolist() for s in range(5)]
    assert neighbours == [[1, 2], [0, 3], [0], [1], []]
    shuffled = adjacency_csr(np.array([[3, 1], [0, 2], [1, 0]]), 5)  # any orientation and order
    np.testing.assert_array_equal(shuffled[0], indptr)
    np.testing.assert_array_equal(shuffled[1], indices)
    with pytest.raises(ValueError, match="outside"):
        adjacency_csr(np.array([[0, 7]]), 5)


# ------------------------------------------------------------------------------------------ statistics


def test_stats_and_mean_probs_match_a_direct_computation() -> None:
    rng = np.random.default_rng(0)
    labels = np.stack([np.repeat(np.arange(4), 6).reshape(4, 6), rng.integers(0, 3, (4, 6))])
    labels[1, 0, :3] = [0, 1, 2]  # every id present
    counts = np.array([4, 3])
    probs = rng.dirichlet(np.ones(5), size=(2, 4, 6)).transpose(0, 3, 1, 2)  # (B, C, H, W)
    stats, mean_prob = superpixel_stats_from_probs(probs, labels, counts)
    assert mean_prob.shape == (7, 5) and mean_prob.dtype == np.float32
    sorted_probs = np.sort(probs, axis=1)
    u = sorted_probs[:, -2] / sorted_probs[:, -1]
    pred = probs.argmax(axis=1)
    for g in range(7):
        image, local = (0, g) if g < 4 else (1, g - 4)
        inside = labels[image] == local
        assert stats.pixel_count[g] == inside.sum()
        assert stats.uncertainty_sum[g] == pytest.approx(u[image][inside].sum(), rel=1e-6)
        np.testing.assert_allclose(mean_prob[g], probs[image][:, inside].mean(axis=1), rtol=1e-6)
        np.testing.assert_array_equal(stats.pred_counts[g], np.bincount(pred[image][inside], minlength=5))
    # from the dump's fields, in two batches
    top1, top2 = sorted_probs[:, -1], sorted_probs[:, -2]
    parts = [superpixel_stats(labels[i:i + 1], counts[i:i + 1], top1[i:i + 1], top2[i:i + 1], pred[i:i + 1], 5)
             for i in range(2)]
    joined = SuperpixelStats.concatenate(parts)
    np.testing.assert_array_equal(joined.pred_counts, stats.pred_counts)
    np.testing.assert_allclose(joined.mean_uncertainty, stats.mean_uncertainty)
    np.testing.assert_allclose(superpixel_mean_probs(probs, labels, counts), mean_prob)


def test_stats_bad_inputs() -> None:
    labels = np.zeros((1, 2, 2), int)
    ones = np.ones((1, 2, 2))
    with pytest.raises(ValueError, match="outside 0 .. count - 1"):
        superpixel_stats(labels + 1, np.array([1]), ones, ones, labels, 3)
    with pytest.raises(ValueError, match="shapes differ"):
        superpixel_stats(labels, np.array([1]), ones[:, :1], ones, labels, 3)
    with pytest.raises(ValueError, match="predicted classes"):
        superpixel_stats(labels, np.array([1]), ones, ones, labels + 3, 3)
    with pytest.raises(ValueError, match="probs"):
        superpixel_mean_probs(np.ones((1, 3, 2, 3)), labels, np.array([1]))


# ------------------------------------------------------------------------------------------ merging


def test_js_distance_equals_scipy() -> None:
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(6), size=20)
    q = rng.dirichlet(np.ones(6), size=20)
    p[0, :3] = 0  # zeros
    q[1] = p[1] * 3  # unnormalised, same distribution
    expected = [jensenshannon(a, b) for a, b in zip(p, q)]
    np.testing.assert_allclose(jensen_shannon_distance(p, q), expected, atol=1e-12)
    assert jensen_shannon_distance(p[1], q[1]) == pytest.approx(0.0, abs=1e-7)


def _strip(probs: list[list[float]], uncertainty: list[float]) -> np.ndarray:
    """Merge superpixels laid out left to right in one 1 x n image."""
    n = len(probs)
    edges = superpixel_edges(np.arange(n)[None, :])
    return adaptive_merge(np.array(probs), np.array(uncertainty), edges, np.array([0, n]), eps=EPS)


def test_merge_similar_neighbours_not_dissimilar() -> None:
    np.testing.assert_array_equal(_strip([A, B, D], [0.9, 0.5, 0.1]), [0, 0, 2])


def test_merge_order_matters_as_documented() -> None:
    # the most uncertain superpixel seeds; neighbours join when close to the SEED's distribution
    np.testing.assert_array_equal(_strip([A, B, C], [0.9, 0.5, 0.1]), [0, 0, 2])  # C is 0.165 from A
    np.testing.assert_array_equal(_strip([A, B, C], [0.5, 0.9, 0.1]), [1, 1, 1])  # both within eps of B
    np.testing.assert_array_equal(_strip([A, B, C], [0.1, 0.5, 0.9]), [0, 2, 2])  # C seeds, takes B; A alone


def test_merge_grows_through_members_but_not_through_strangers() -> None:
    # A - B - A': A' is not adjacent to A but joins through the member B (distance to the seed A: 0)
    np.testing.assert_array_equal(_strip([A, B, A], [0.9, 0.5, 0.1]), [0, 0, 0])
    # A - D - A: D blocks; the second A seeds its own region
    np.testing.assert_array_equal(_strip([A, D, A], [0.9, 0.5, 0.1]), [0, 1, 2])


def _official_merge(mean_prob: np.ndarray, uncertainty: np.ndarray, edges: np.ndarray, nodes: np.ndarray,
                    eps: float) -> dict[int, int]:
    """Port of the official ``merge_graph_from_uncert`` (one image, a dict graph, relabel by dict)."""
    neighbours: dict[int, list[int]] = {int(u): [] for u in nodes}
    for u, v in edges:
        neighbours[int(u)].append(int(v))
        neighbours[int(v)].append(int(u))
    feature = {int(u): mean_prob[u] for u in nodes}
    label = {int(u): int(u) for u in nodes}
    merged: list[int] = []
    for u in sorted(nodes.tolist(), key=lambda k: -uncertainty[k]):
        if u in merged:
            continue
        merged.append(u)
        stack = [u]
        while stack:  # the official first loop over u's neighbours is this loop's first pass
            adj = stack.pop()
            for v in neighbours[adj]:
                if v not in merged and jensenshannon(feature[adj], feature[v]) < eps:
                    label[v] = label[adj]
                    feature[v] = feature[adj]
                    merged.append(v)
                    stack.append(v)
    return label


def _random_pool(rng: np.random.Generator, num_images: int = 3, side: int = 24, block: int = 4):
    """Block superpixels with smooth random distributions (so that regions really merge)."""
    grid = side // block
    labels = np.repeat(np.repeat(np.arange(grid * grid).reshape(grid, grid), block, 0), block, 1)
    labels = np.stack([labels] * num_images)
    counts = np.full(num_images, grid * grid)
    offsets = offsets_from_counts(counts)
    centres = rng.dirichlet(np.ones(3) * 0.5, size=(num_images, 3))
    cluster = rng.integers(0, 3, size=(num_images, grid * grid))
    mean_prob = np.concatenate([centres[i, cluster[i]] for i in range(num_images)])
    mean_prob = mean_prob + rng.uniform(0, 0.08, mean_prob.shape)
    mean_prob /= mean_prob.sum(axis=1, keepdims=True)
    uncertainty = rng.random(int(offsets[-1]))
    return labels, counts, offsets, mean_prob, uncertainty


def test_merge_equals_the_official_flood_fill() -> None:
    rng = np.random.default_rng(2)
    for trial in range(5):
        labels, counts, offsets, mean_prob, uncertainty = _random_pool(rng)
        edges = superpixel_edges(labels, offsets[:-1])
        parent = adaptive_merge(mean_prob, uncertainty, edges, offsets, eps=0.15)
        assert merge_summary(parent, offsets)["regions"] < offsets[-1]  # something merged
        for i in range(len(counts)):
            nodes = np.arange(offsets[i], offsets[i + 1])
            inside = (edges[:, 0] >= offsets[i]) & (edges[:, 0] < offsets[i + 1])
            expected = _official_merge(mean_prob, uncertainty, edges[inside], nodes, eps=0.15)
            np.testing.assert_array_equal(parent[nodes], [expected[int(u)] for u in nodes], err_msg=f"trial {trial}")


def test_merge_partial_fraction() -> None:
    rng = np.random.default_rng(4)
    labels, counts, offsets, mean_prob, uncertainty = _random_pool(rng)
    edges = superpixel_edges(labels, offsets[:-1])
    full = adaptive_merge(mean_prob, uncertainty, edges, offsets, eps=0.15, fraction=1.0)
    part = adaptive_merge(mean_prob, uncertainty, edges, offsets, eps=0.15, fraction=0.25)
    identity = np.arange(offsets[-1])
    for i in range(len(counts)):
        nodes = np.arange(offsets[i], offsets[i + 1])
        members = nodes[part[nodes] != nodes]
        assert members.size + np.unique(part[members]).size <= np.ceil(0.25 * counts[i])
        # the most uncertain superpixel seeds first, in full and partial merging alike
        top = nodes[np.argmax(uncertainty[nodes])]
        np.testing.assert_array_equal(nodes[part[nodes] == top], nodes[full[nodes] == top])
    assert 0 < np.count_nonzero(part != identity) < np.count_nonzero(full != identity)


def test_merge_is_deterministic_and_a_forest_of_roots() -> None:
    rng = np.random.default_rng(5)
    labels, _, offsets, mean_prob, uncertainty = _random_pool(rng)
    edges = superpixel_edges(labels, offsets[:-1])
    first = adaptive_merge(mean_prob, uncertainty, edges, offsets)
    np.testing.assert_array_equal(first, adaptive_merge(mean_prob, uncertainty, edges, offsets))
    np.testing.assert_array_equal(first[first], first)
    np.testing.assert_array_equal(region_map(first, np.array([[0, 1]])), [first[[0, 1]]])


def test_merge_bad_inputs() -> None:
    edges = np.array([[0, 1]])
    probs, unc, offsets = np.array([A, B]), np.array([0.5, 0.4]), np.array([0, 2])
    with pytest.raises(ValueError, match="eps must be > 0"):
        adaptive_merge(probs, unc, edges, offsets, eps=0.0)
    with pytest.raises(ValueError, match="eps must be > 0"):
        adaptive_merge(probs, unc, edges, offsets, eps=-1.0)
    with pytest.raises(ValueError, match="fraction"):
        adaptive_merge(probs, unc, edges, offsets, fraction=0.0)
    with pytest.raises(ValueError, match="expected mean_prob"):
        adaptive_merge(probs[:1], unc, edges, offsets)
    with pytest.raises(ValueError, match="non-negative"):
        adaptive_merge(-probs, unc, edges, offsets)
    with pytest.raises(ValueError, match="same image"):
        adaptive_merge(probs, unc, edges, np.array([0, 1, 2]))


# ------------------------------------------------------------------------------------------ scores


def _stats(pixel_count, mean_u, pred_counts) -> SuperpixelStats:
    pixel_count = np.asarray(pixel_count, dtype=np.int64)
    return SuperpixelStats(pixel_count=pixel_count, uncertainty_sum=np.asarray(mean_u) * pixel_count,
                           pred_counts=np.asarray(pred_counts, dtype=np.int64))


def test_class_balanced_scores_favour_rare_predicted_classes() -> None:
    # 4 single-superpixel regions with the same uncertainty; class 0 covers most of the pool
    stats = _stats([100, 100, 100, 10], [0.5, 0.5, 0.5, 0.5], [[100, 0], [100, 0], [90, 10], [0, 10]])
    parent = np.arange(4)
    offsets = np.array([0, 4])
    shares = predicted_class_shares(parent, stats, mode="region")
    np.testing.assert_allclose(shares, [300 / 310, 10 / 310])
    np.testing.assert_allclose(predicted_class_shares(parent, stats, mode="pixel"), [290 / 310, 20 / 310])
    regions = candidate_regions(parent, stats, np.zeros(4, bool), offsets)
    scores = region_scores(regions, "class_balanced", shares)
    np.testing.assert_allclose(scores, 0.5 * np.exp(-shares[[0, 0, 0, 1]]))
    assert scores[3] > scores[0]
    np.testing.assert_allclose(region_scores(regions, "uncertainty"), 0.5)
    chosen = select_regions(regions, scores, 1, np.random.default_rng(0))
    np.testing.assert_array_equal(chosen.region, [3])


def test_region_level_shares_and_scores_of_merged_regions() -> None:
    # regions {0, 1} and {2}, 3 asked before: pixels and predictions add up over the unasked part
    stats = _stats([10, 30, 20, 40], [0.2, 0.6, 0.4, 0.9], [[10, 0], [5, 25], [20, 0], [0, 40]])
    parent = np.array([0, 0, 2, 2])
    regions = candidate_regions(parent, stats, np.array([False, False, False, True]), np.array([0, 4]))
    np.testing.assert_array_equal(regions.region, [0, 2])
    np.testing.assert_array_equal(regions.pixel_count, [40, 20])
    np.testing.assert_array_equal(regions.base_count, [2, 1])
    np.testing.assert_allclose(regions.uncertainty, [(2 + 18) / 40, 0.4])
    np.testing.assert_array_equal(regions.dominant_pred, [1, 0])
    # p(c) over all pool pixels and the full regions: {0,1} predicted 1 (40 px), {2,3} predicted 1 (60 px)
    np.testing.assert_allclose(predicted_class_shares(parent, stats), [0.0, 1.0])


def test_selection_picks_top_eligible_and_never_repays() -> None:
    stats = _stats([10] * 6, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [[10, 0]] * 6)
    parent = np.array([0, 0, 2, 3, 4, 4])  # regions {0,1}, {2}, {3}, {4,5}
    asked = np.array([True, True, False, False, True, False])  # region 0 fully asked, region 4 half
    regions = candidate_regions(parent, stats, asked, np.array([0, 6]))
    np.testing.assert_array_equal(regions.region, [2, 3, 4])
    np.testing.assert_array_equal(regions.pixel_count, [10, 10, 10])
    scores = region_scores(regions, "uncertainty")
    np.testing.assert_allclose(scores, [0.7, 0.6, 0.4])  # region 4 scored on its unasked part only
    chosen = select_regions(regions, scores, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(chosen.region, [2, 3])
    np.testing.assert_array_equal(chosen.rank, [0, 1])
    query = query_of_base(parent, asked, np.array([2, 4]))
    np.testing.assert_array_equal(query, [-1, -1, 0, -1, -1, 1])  # base 4 was paid before: not again
    with pytest.raises(ValueError, match="only 3 regions are left"):
        select_regions(regions, scores, 4, np.random.default_rng(0))
    assert len(select_regions(regions, scores, 4, np.random.default_rng(0), allow_fewer=True)) == 3
    with pytest.raises(ValueError, match="budget must be >= 1"):
        select_regions(regions, scores, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="NaN"):
        select_regions(regions, np.array([np.nan, 1, 1]), 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="selected twice"):
        query_of_base(parent, asked, np.array([2, 2]))


def test_ties_and_random_strategy_are_seeded() -> None:
    stats = _stats([5] * 50, [0.5] * 50, [[5, 0]] * 50)
    regions = candidate_regions(np.arange(50), stats, np.zeros(50, bool), np.array([0, 50]))
    scores = region_scores(regions, "uncertainty")
    pick = [select_regions(regions, scores, 5, np.random.default_rng(s)).region for s in (7, 7, 8)]
    np.testing.assert_array_equal(pick[0], pick[1])
    assert set(pick[0]) != set(pick[2])  # ties at random, not by position
    random_scores = [region_scores(regions, "random", rng=np.random.default_rng(s)) for s in (3, 3)]
    np.testing.assert_array_equal(random_scores[0], random_scores[1])
    with pytest.raises(ValueError, match="rng"):
        region_scores(regions, "random")
    with pytest.raises(ValueError, match="class_shares"):
        region_scores(regions, "class_balanced")
    with pytest.raises(ValueError, match="unknown superpixel strategy"):
        region_scores(regions, "entropy")


def test_candidate_bad_inputs() -> None:
    stats = _stats([5, 5], [0.5, 0.5], [[5, 0], [5, 0]])
    with pytest.raises(ValueError, match="parent must map"):
        candidate_regions(np.array([1, 0]), stats, np.zeros(2, bool), np.array([0, 2]))
    with pytest.raises(ValueError, match="asked has shape"):
        candidate_regions(np.arange(2), stats, np.zeros(3, bool), np.array([0, 2]))
    with pytest.raises(ValueError, match="unknown class share mode"):
        predicted_class_shares(np.arange(2), stats, mode="image")


# ------------------------------------------------------------------------------------------ oracle


def test_dominant_label_ignores_void_and_skips_all_void() -> None:
    ignore = 11
    labels = np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3]]])
    masks = np.array([[[11, 11, 5, 5], [11, 4, 11, 11], [11, 11, 7, 7]]], dtype=np.uint8)
    query = np.array([0, 1, 2, -1])  # base 3 is not asked
    answers, flipped, counts = answer_superpixel_queries(masks, labels, np.array([0]), query, 3, 11, ignore)
    np.testing.assert_array_equal(answers, [4, 5, -1])  # void outnumbers class 4 but does not vote; skip
    assert not flipped.any()
    assert counts[0, 4] == 1 and counts[2].sum() == 0
    # ties go to the smaller class id
    np.testing.assert_array_equal(dominant_answers(np.array([[0, 3, 3]]))[0], [1])


def test_dominant_label_errors_and_bad_input() -> None:
    counts = np.zeros((2000, 5), dtype=np.int64)
    counts[:, 2] = 10
    counts[:10] = 0  # skips are never flipped
    answers, flipped = dominant_answers(counts, error_rate=0.2, rng=np.random.default_rng(0))
    assert 0.15 < flipped.mean() < 0.25
    assert not flipped[:10].any() and (answers[:10] == -1).all()
    assert (answers[flipped] != 2).all() and (answers[~flipped][10:] == 2).all()
    with pytest.raises(ValueError, match="error_rate"):
        dominant_answers(counts, error_rate=1.5)
    with pytest.raises(ValueError, match="rng"):
        dominant_answers(counts, error_rate=0.1)
    labels = np.zeros((1, 2, 2), int)
    with pytest.raises(ValueError, match="outside 0 .. 2 and ignore 11"):
        query_class_counts(np.full((1, 2, 2), 5), labels, np.array([0]), np.array([0]), 1, 3, 11)
    with pytest.raises(ValueError, match="must both be"):
        query_class_counts(np.zeros((1, 2, 3)), labels, np.array([0]), np.array([0]), 1, 3, 11)


def test_overlapping_region_is_answered_on_its_unasked_part_only() -> None:
    # one image, 4 base superpixels in a row, merged into one region; base 0 (class 2) was asked before
    labels = np.repeat(np.arange(4), 3)[None, None, :].repeat(2, axis=1)  # (1, 2, 12)
    masks = np.array([2, 2, 2, 5, 5, 5, 5, 5, 2, 2, 2, 2], dtype=np.uint8)[None, None, :].repeat(2, axis=1)
    parent = np.zeros(4, dtype=np.int64)
    asked = np.array([True, False, False, False])
    stats = _stats([6, 6, 6, 6], [0.5] * 4, [[6, 0]] * 4)
    regions = candidate_regions(parent, stats, asked, np.array([0, 4]))
    np.testing.assert_array_equal(regions.pixel_count, [18])  # one click for the 18 pixels not paid yet
    chosen = select_regions(regions, region_scores(regions, "uncertainty"), 1, np.random.default_rng(0))
    query = query_of_base(parent, asked, chosen.region)
    np.testing.assert_array_equal(query, [-1, 0, 0, 0])
    answers, _, counts = answer_superpixel_queries(masks, labels, np.array([0]), query, 1, 6, 255)
    # over the whole region class 2 would win (14 px against 10); over the unasked part class 5 wins, 10 to 8
    np.testing.assert_array_equal(counts[0, [2, 5]], [8, 10])
    np.testing.assert_array_equal(answers, [5])
