"""Verdicts on claims that respect noise: paired differences across seeds and rounds, and a bootstrap interval.

A benchmark's claim ("margin beats random", "sieving raises mIoU") is a statement about a difference that
moves from seed to seed and from round to round. Here it is judged on the paired differences of two curves
(same seed, same round), with a 95% interval from a two-stage bootstrap: seeds drawn with replacement, then
each drawn seed's rounds drawn with replacement, so that seed-to-seed spread counts and rounds of one seed
are not taken as independent evidence. The rules (docs/verdicts.md):

- **holds**: at least two seeds, and the interval lies above zero;
- **does not hold here**: the interval lies below zero;
- **not shown**: the interval includes zero, or there is only one seed (a one-seed difference smaller
  than the round-to-round swing is not a finding).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

#: seed -> round -> value (test mIoU, an IoU, a noise rate)
Curves = Mapping[int, Mapping[int, float]]

HOLDS, DOES_NOT_HOLD, NOT_SHOWN = "holds", "does not hold here", "not shown"
MIN_SEEDS = 2
LEVEL = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """The mean paired difference a - b, its bootstrap interval, and what it rests on."""

    mean: float
    low: float
    high: float
    seeds: int
    pairs: int

    @property
    def verdict(self) -> str:
        """:data:`HOLDS`, :data:`DOES_NOT_HOLD` or :data:`NOT_SHOWN` (module docstring)."""
        if self.pairs == 0 or self.seeds < MIN_SEEDS:
            return NOT_SHOWN
        if self.low > 0:
            return HOLDS
        return DOES_NOT_HOLD if self.high < 0 else NOT_SHOWN

    def text(self, scale: float = 100.0, unit: str = "points") -> str:
        """``+1.2 points, 95% interval [+0.4, +2.0], 3 seeds x 9 rounds paired`` (values times ``scale``)."""
        if self.pairs == 0:
            return "no pairs"
        why = "" if self.seeds >= MIN_SEEDS else "; one seed: no verdict"
        return (f"{scale * self.mean:+.1f} {unit}, {100 * LEVEL:.0f}% interval [{scale * self.low:+.1f}, "
                f"{scale * self.high:+.1f}], {self.seeds} seed{'s' if self.seeds != 1 else ''} x "
                f"{self.pairs / max(self.seeds, 1):.3g} rounds paired, two-stage bootstrap{why}")


def paired_differences(a: Curves, b: Curves, rounds: Iterable[int] | None = None) -> dict[int, np.ndarray]:
    """Per seed that both have, the differences a - b (float64) at the rounds both reached (only ``rounds``
    if given), in round order."""
    wanted = None if rounds is None else set(rounds)
    out = {}
    for seed in sorted(set(a) & set(b)):
        common = sorted(r for r in set(a[seed]) & set(b[seed]) if wanted is None or r in wanted)
        if common:
            out[seed] = np.array([a[seed][r] - b[seed][r] for r in common], dtype=np.float64)
    return out


def compare(a: Curves, b: Curves, rounds: Iterable[int] | None = None, draws: int = 10_000,
            seed: int = 0) -> PairedDifference:
    """The paired difference of ``a`` and ``b`` over seeds and ``rounds`` (:func:`paired_differences`)
    with its :data:`LEVEL` two-stage bootstrap interval (``draws`` resamples, generator ``seed``)."""
    return bootstrap(paired_differences(a, b, rounds), draws, seed)


def bootstrap(differences: Mapping[int, np.ndarray], draws: int = 10_000, seed: int = 0) -> PairedDifference:
    """Mean of all ``differences`` (seed -> per-round values) and its two-stage bootstrap interval."""
    groups = [np.asarray(d, dtype=np.float64) for d in differences.values() if len(d)]
    pairs = sum(g.size for g in groups)
    if not groups:
        return PairedDifference(float("nan"), float("nan"), float("nan"), 0, 0)
    mean = float(np.concatenate(groups).mean())
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(groups), size=(draws, len(groups)))
    stats = np.empty(draws)
    for i, chosen in enumerate(picked):
        values = [groups[g][rng.integers(0, groups[g].size, groups[g].size)] for g in chosen]
        stats[i] = np.concatenate(values).mean()
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(stats, [tail, 1 - tail])
    return PairedDifference(mean, float(low), float(high), len(groups), pairs)


@dataclass(frozen=True)
class RatioOfMeans:
    """mean(a) / mean(b) of two groups of seeds, its bootstrap interval, and the seeds of each."""

    value: float
    low: float
    high: float
    seeds_a: int
    seeds_b: int


def ratio_of_means(a: Iterable[float], b: Iterable[float], draws: int = 10_000, seed: int = 0) -> RatioOfMeans:
    """The ratio of the means of ``a`` and ``b`` (one value per seed) with its :data:`LEVEL` bootstrap
    interval: each group's seeds are drawn with replacement, independently (the groups are different
    experiments, so their seeds are not paired). The interval is 0-wide when a group has one seed."""
    a, b = np.asarray(list(a), dtype=np.float64), np.asarray(list(b), dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return RatioOfMeans(float("nan"), float("nan"), float("nan"), a.size, b.size)
    rng = np.random.default_rng(seed)
    draws_a = a[rng.integers(0, a.size, (draws, a.size))].mean(axis=1)
    draws_b = b[rng.integers(0, b.size, (draws, b.size))].mean(axis=1)
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(draws_a / draws_b, [tail, 1 - tail])
    return RatioOfMeans(float(a.mean() / b.mean()), float(low), float(high), a.size, b.size)


def break_even_seconds(hours_a: float, questions_b: float) -> float:
    """The seconds per question of ``b`` at which ``questions_b`` of them cost ``hours_a``: ``a`` is
    cheaper in hours while one of ``b``'s questions costs more than this."""
    return 3600.0 * hours_a / questions_b if questions_b > 0 else float("inf")
