"""Seeded splits of a list of stems, for sources that lack a train/val/test partition."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLITS = ("train", "val", "test")


def split_by_ratios(
    stems: Sequence[str], ratios: Sequence[float], seed: int
) -> dict[str, list[str]]:
    """Partition ``stems`` at random into train, val and test.

    Parameters
    ----------
    stems : sequence of str
        Distinct stems; their order does not matter (they are sorted first, so the split depends only
        on the set of stems and the seed).
    ratios : sequence of 3 floats
        Fractions for train, val and test, non-negative, summing to 1.
    seed : int

    Returns
    -------
    dict of str to list of str
        ``{"train": [...], "val": [...], "test": [...]}``, each sorted. Val and test get
        ``round(ratio * n)`` stems, train the rest.
    """
    ordered = sorted(stems)
    n = len(ordered)
    n_val = round(ratios[1] * n)
    n_test = round(ratios[2] * n)
    order = np.random.default_rng(seed).permutation(n)
    picked = [ordered[i] for i in order]
    return {
        "val": sorted(picked[:n_val]),
        "test": sorted(picked[n_val : n_val + n_test]),
        "train": sorted(picked[n_val + n_test :]),
    }


def carve_val_from_train(
    train_stems: Sequence[str], val_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Move a seeded random ``val_fraction`` of the train stems (at least one) to a val split.

    Returns
    -------
    train, val : list of str
        Both sorted; together they are exactly ``train_stems``.
    """
    ordered = sorted(train_stems)
    n_val = max(1, round(val_fraction * len(ordered))) if ordered else 0
    order = np.random.default_rng(seed).permutation(len(ordered))
    val_set = {ordered[i] for i in order[:n_val]}
    return [s for s in ordered if s not in val_set], [s for s in ordered if s in val_set]
