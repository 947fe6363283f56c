"""Our binary selection (``greedy``): greedy construction plus local search on the integer objective.

:func:`select_greedy` (its docstring has the method) runs ``_GreedySolver``: a solution is a set S of
images with a pair count per image, each image giving its most uncertain available classes; the search
swaps, adds and removes images, every candidate move's exact objective change computed at once, and
kicks the local optimum a few times (iterated local search). Vectorised numpy; memory O(N (F + C) + K N)
for K chosen images. Called through :func:`alseg.acquire.binary.select_binary`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from alseg.acquire.binary_problem import BinarySelection, RedundancySource, _finish, _Problem


class _PermutedRedundancy:
    """R with rows and columns permuted: ``rows(idx) = R[perm[idx]][:, perm]`` (seeded tie-breaking)."""

    def __init__(self, base: RedundancySource, perm: np.ndarray) -> None:
        self.base, self.perm = base, perm

    def rows(self, index: np.ndarray) -> np.ndarray:
        return self.base.rows(self.perm[np.asarray(index, dtype=np.int64)])[:, self.perm]


@dataclass
class _ImageSet:
    """A candidate solution: chosen images (K,), their pair counts (K,) and R rows (K, N)."""

    images: np.ndarray
    counts: np.ndarray
    rows: np.ndarray



@dataclass
class _Neighbourhood:
    """What the local-search moves of an image set S (K images) share, computed once per move.

    red: (N,) ``sum_{a in S} R[x, a]``; inside: bool (N,), membership of S; own_pairs: (K,) the pair cost
    of each member; own_red: (K,) ``R_aa + 2 sum_{s != a} R_as``; gain_spare and gain_drop: (K, cmax + 1),
    the sums of the first d spare pairs (cheapest first) and optional pairs (dearest first) not owned by
    a member; opt_g: the optional pairs' G, dearest first.
    """

    red: np.ndarray
    inside: np.ndarray
    own_pairs: np.ndarray
    own_red: np.ndarray
    gain_spare: np.ndarray
    gain_drop: np.ndarray
    opt_g: np.ndarray

class _GreedySolver:
    """Greedy construction and local search for ``sum G M + lam v^T R v`` (see :func:`select_greedy`).

    Per image the available classes are sorted by ascending G; an image that gives t pairs gives its t
    best, at cost ``prefix[i, t]`` (inf when t exceeds its cap), so a solution is the image set S with a
    count per image.
    """

    def __init__(self, problem: _Problem, perm: np.ndarray) -> None:
        self.budget, self.lam = problem.budget, problem.lam
        self.cmax = min(problem.c_max, problem.c)
        G = np.where(problem.available, problem.G, np.inf)[perm]
        self.class_order = np.argsort(G, axis=1, kind="stable")
        sorted_g = np.take_along_axis(G, self.class_order, axis=1)[:, : self.cmax]
        self.cap = np.minimum(self.cmax, problem.available[perm].sum(axis=1))
        self.sorted_g = np.where(np.arange(self.cmax)[None, :] < self.cap[:, None], sorted_g, np.inf)
        self.prefix = np.zeros((problem.n, self.cmax + 1))
        self.prefix[:, 1:] = np.cumsum(self.sorted_g, axis=1)
        self.R = _PermutedRedundancy(problem.R, perm)
        self.diag = problem.R.diagonal()[perm]
        self.n = problem.n

    # -- objective and exact allocation for a fixed image set --

    def cost(self, s: _ImageSet) -> float:
        pair_cost = float(self.prefix[s.images, s.counts].sum())
        return pair_cost + self.lam * float(s.rows[:, s.images].sum())

    def allocate(self, images: np.ndarray) -> np.ndarray:
        """Optimal counts for the image set: each image its best pair, then the B - K cheapest of the
        images' further pairs (within an image they are taken in G order, so caps hold by construction)."""
        k = images.size
        counts = np.ones(k, dtype=np.int64)
        extra = self.budget - k
        if extra > 0:
            further = self.sorted_g[images, 1:]  # (K, cmax - 1), inf beyond the cap
            flat = np.argsort(further, axis=None, kind="stable")[:extra]
            counts += np.bincount(flat // further.shape[1], minlength=k)
        return counts

    def make(self, images: np.ndarray, rows: np.ndarray | None = None) -> _ImageSet:
        images = np.asarray(images, dtype=np.int64)
        rows = self.R.rows(images) if rows is None else rows
        return _ImageSet(images, self.allocate(images), rows)

    # -- construction --

    def construct(self) -> _ImageSet:
        """Add pairs until B: either the next pair of an open image (cost G) or a new image with its
        best t pairs, compared at their amortised cost ``(prefix[t] + lam (R_ii + 2 sum_S R_ik)) / t``."""
        counts = np.zeros(self.n, dtype=np.int64)
        red = np.zeros(self.n)
        opened: list[int] = []
        rows: list[np.ndarray] = []
        remaining = self.budget
        steps = np.arange(1, self.cmax + 1)
        while remaining > 0:
            open_mask = counts > 0
            extend = np.full(self.n, np.inf)
            can = open_mask & (counts < self.cap)
            extend[can] = self.sorted_g[can, counts[can]]
            best_extend = int(np.argmin(extend))
            t_max = min(self.cmax, remaining)
            penalty = self.lam * (self.diag + 2.0 * red)
            amortised = (self.prefix[:, 1 : t_max + 1] + penalty[:, None]) / steps[None, :t_max]
            amortised[open_mask] = np.inf
            flat = int(np.argmin(amortised))
            new, t = divmod(flat, t_max)
            if extend[best_extend] <= amortised[new, t]:
                counts[best_extend] += 1
                remaining -= 1
            else:
                counts[new] = t + 1
                remaining -= t + 1
                row = self.R.rows(np.array([new]))[0]
                red += row
                opened.append(new)
                rows.append(row)
        images = np.array(opened, dtype=np.int64)
        return _ImageSet(images, counts[images], np.stack(rows))

    def by_uncertainty(self) -> _ImageSet:
        """The B smallest-G pairs with at most C_max per image (what the relaxed LP's rounding tends to)."""
        flat = np.argsort(self.sorted_g, axis=None, kind="stable")[: self.budget]
        images = np.unique(flat // self.cmax)
        return self.make(images)

    def kick(self, s: _ImageSet, size: int, rng: np.random.Generator) -> _ImageSet | None:
        """Perturb a local optimum: replace ``size`` random images of S by random images outside S that
        can still give a pair (None when nothing can be exchanged or the result cannot hold B pairs)."""
        outside = np.setdiff1d(np.flatnonzero(self.cap > 0), s.images)
        size = min(size, s.images.size, outside.size)
        if size == 0:
            return None
        images = s.images.copy()
        rows = s.rows.copy()
        slots = rng.choice(images.size, size, replace=False)
        newcomers = rng.choice(outside, size, replace=False)
        images[slots] = newcomers
        rows[slots] = self.R.rows(newcomers)
        if self.cap[images].sum() < self.budget:
            return None
        return self.make(images, rows)

    # -- local search --

    def _pair_lists(self, s: _ImageSet) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Spare pairs (unused, within caps) ascending and optional pairs (chosen beyond each image's
        first) descending, as (values, owner position in S)."""
        k = s.images.size
        spare_n = self.cap[s.images] - s.counts
        spare_mask = (np.arange(self.cmax)[None, :] >= s.counts[:, None]) & (
            np.arange(self.cmax)[None, :] < self.cap[s.images][:, None])
        opt_mask = (np.arange(self.cmax)[None, :] >= 1) & (np.arange(self.cmax)[None, :] < s.counts[:, None])
        g = self.sorted_g[s.images]
        owner = np.broadcast_to(np.arange(k)[:, None], g.shape)
        spare_g, spare_owner = g[spare_mask], owner[spare_mask]
        order = np.argsort(spare_g, kind="stable")
        opt_g, opt_owner = g[opt_mask], owner[opt_mask]
        order_opt = np.argsort(-opt_g, kind="stable")
        assert spare_g.size == spare_n.sum()
        return spare_g[order], spare_owner[order], opt_g[order_opt], opt_owner[order_opt]

    def _sums_excluding_owner(self, values: np.ndarray, owner: np.ndarray, k: int, depth: int) -> np.ndarray:
        """``out[a, d]`` (K, depth + 1): sum of the first d ``values`` not owned by a (inf if fewer)."""
        out = np.full((k, depth + 1), np.inf)
        out[:, 0] = 0.0
        length = min(values.size, depth + self.cmax)  # an owner has < cmax entries: enough to skip them
        if length == 0:
            return out
        values, owner = values[:length], owner[:length]
        others = owner[None, :] != np.arange(k)[:, None]  # (K, L)
        usable_first = np.argsort(~others, axis=1, kind="stable")  # usable entries first, in list order
        sums = np.cumsum(np.where(np.take_along_axis(others, usable_first, 1), values[usable_first], np.inf),
                         axis=1)
        width = min(depth, length)
        out[:, 1 : width + 1] = sums[:, :width]
        return out

    def _neighbourhood(self, s: _ImageSet) -> _Neighbourhood:
        k = s.images.size
        red = s.rows.sum(axis=0)
        inside = np.zeros(self.n, dtype=bool)
        inside[s.images] = True
        spare_g, spare_owner, opt_g, opt_owner = self._pair_lists(s)
        return _Neighbourhood(
            red=red,
            inside=inside,
            own_pairs=self.prefix[s.images, s.counts],
            own_red=2.0 * red[s.images] - self.diag[s.images],
            gain_spare=self._sums_excluding_owner(spare_g, spare_owner, k, self.cmax),
            gain_drop=self._sums_excluding_owner(opt_g, opt_owner, k, self.cmax),
            opt_g=opt_g,
        )

    def _best_swap(self, s: _ImageSet, nb: _Neighbourhood) -> tuple[float, tuple[str, int, int]]:
        """Swap a in S for b not in S, b taking t pairs: the objective change minimised over t, a and b."""
        k = s.images.size
        swap_red = self.lam * (self.diag[None, :] + 2.0 * (nb.red[None, :] - s.rows) - nb.own_red[:, None])
        swap_pairs = np.full((k, self.n), np.inf)
        rows_k = np.arange(k)
        for t in range(1, self.cmax + 1):
            d = s.counts - t  # > 0: take d spare pairs; < 0: drop -d optional pairs
            drop = nb.gain_drop[rows_k, np.clip(-d, 0, self.cmax)]  # inf: too few pairs to drop
            absorb = np.where(d >= 0, nb.gain_spare[rows_k, np.clip(d, 0, self.cmax)],
                              np.where(np.isfinite(drop), -drop, np.inf))
            candidate = self.prefix[None, :, t] + absorb[:, None]
            swap_pairs = np.where(candidate < swap_pairs, candidate, swap_pairs)
        swap = swap_pairs - nb.own_pairs[:, None] + swap_red
        swap[:, nb.inside] = np.inf
        a, b = np.unravel_index(int(np.argmin(swap)), swap.shape)
        return float(swap[a, b]), ("swap", int(a), int(b))

    def _best_add(self, s: _ImageSet, nb: _Neighbourhood) -> tuple[float, tuple[str, int, int] | None]:
        """Add b with t pairs, dropping the t dearest optional pairs of S (None when S is full)."""
        dropped = np.cumsum(nb.opt_g[: self.cmax])
        t_max = min(self.cmax, dropped.size)
        if t_max == 0 or s.images.size >= self.budget:
            return math.inf, None
        add = (self.prefix[:, 1 : t_max + 1] - dropped[None, :t_max]
               + self.lam * (self.diag + 2.0 * nb.red)[:, None])
        add[nb.inside] = np.inf
        b, _ = np.unravel_index(int(np.argmin(add)), add.shape)
        return float(add.min()), ("add", int(b), 0)

    def _best_remove(self, s: _ImageSet, nb: _Neighbourhood) -> tuple[float, tuple[str, int, int] | None]:
        """Remove a, its pairs moving to the cheapest spare pairs of S minus a (None for a single image)."""
        k = s.images.size
        if k <= 1:
            return math.inf, None
        remove = nb.gain_spare[np.arange(k), s.counts] - nb.own_pairs - self.lam * nb.own_red
        a = int(np.argmin(remove))
        return float(remove[a]), ("remove", a, 0)

    def _best_move(self, s: _ImageSet, current: float) -> tuple[str, int, int] | None:
        """The move that lowers the objective most, by more than a round-off margin; None if none does."""
        nb = self._neighbourhood(s)
        best_delta, best_move = -1e-12 * max(1.0, abs(current)), None
        for delta, move in (self._best_swap(s, nb), self._best_add(s, nb), self._best_remove(s, nb)):
            if move is not None and delta < best_delta:
                best_delta, best_move = delta, move
        return best_move

    def _moved(self, s: _ImageSet, move: tuple[str, int, int]) -> _ImageSet:
        """S after the move, its counts re-allocated; only a newcomer's R row is computed."""
        kind, x, y = move
        if kind == "swap":
            images = s.images.copy()
            images[x] = y
            rows = s.rows.copy()
            rows[x] = self.R.rows(np.array([y]))[0]
        elif kind == "add":
            images = np.append(s.images, x)
            rows = np.vstack([s.rows, self.R.rows(np.array([x]))])
        else:
            images = np.delete(s.images, x)
            rows = np.delete(s.rows, x, axis=0)
        return self.make(images, rows)

    def improve(self, s: _ImageSet, max_moves: int) -> tuple[_ImageSet, int]:
        """Best-improvement local search over the image set; every candidate move's exact objective
        change (with counts fixed by the move) is computed at once, the best improving one is applied, and
        the counts are then re-allocated optimally (which can only lower the objective further).

        * swap a in S for b not in S, b taking t pairs (any t); the difference c_a - t is absorbed by the
          cheapest spare pairs of S minus a (t < c_a) or by dropping its dearest optional pairs (t > c_a);
        * add b with t pairs, dropping the t dearest optional pairs of S;
        * remove a, its pairs moving to the cheapest spare pairs of S minus a.
        """
        s = _ImageSet(s.images, self.allocate(s.images), s.rows)
        s = _ImageSet(s.images, self.allocate(s.images), s.rows)
        current = self.cost(s)
        moves = 0
        while moves < max_moves:
            move = self._best_move(s, current)
            if move is None:
                break
            candidate_set = self._moved(s, move)
            value = self.cost(candidate_set)
            if not value < current:  # guard against round-off cycling
                break
            s, current = candidate_set, value
            moves += 1
        return s, moves


def select_greedy(
    problem: _Problem,
    seed: int = 0,
    max_moves: int = 10_000,
    starts: tuple[str, ...] = ("greedy", "uncertainty"),
    kicks: int = 20,
    kick_size: int = 2,
) -> BinarySelection:
    """Our selection: greedy construction plus local search on the integer objective (no relaxation).

    A solution is a set S of images with a pair count per image; an image that gives t pairs gives its t
    most uncertain (smallest G) available classes. For a fixed S the best counts are exact and cheap
    (each image its best pair, then the B - |S| cheapest further pairs), so the search runs over S:

    1. **Construction** ("greedy" start): repeatedly take the cheaper of (a) the next pair of an image
       already in S, at cost G, and (b) a new image k with its best t pairs, at the amortised cost
       ``(sum of its t smallest G + lam (R_kk + 2 sum_{s in S} R_ks)) / t``, the opening cost being shared
       by the pairs it enables. All N candidates are scored with one vectorised expression per step; the
       redundancy to S is kept as a running sum of R rows (one row computed per opened image).
    2. **Local search** (best improvement): swap an image of S for one outside (the newcomer giving any
       number t of pairs, the difference absorbed by the cheapest spare pairs of S or by dropping its
       dearest optional pairs), add an image with t pairs (dropping the t dearest optional pairs), or
       remove an image (its pairs moving to the cheapest spare pairs of S). Every candidate move's exact
       objective change is computed at once as a (|S|, N) array per t; the best is applied if it lowers
       the objective, the counts are re-allocated exactly, and this repeats until no move improves (a
       local optimum for these moves) or ``max_moves``.
    3. The "uncertainty" start (the B most uncertain pairs under C_max: where the relaxed LP's rounding
       lands when the redundancy term vanishes) is improved the same way unless the first result already
       beats it; the result is never worse than that uncertainty-only selection.
    4. **Kicks**: ``kicks`` times, replace ``kick_size`` random images of the best solution by random
       outside images, run the local search again, keep the result if it is better (iterated local
       search; escapes optima that need two images exchanged at once).

    Cost per move: O(C_max |S| N); memory O(N C + |S| N) plus the features. No optimality guarantee in
    general (the problem contains a quadratic dispersion problem). On 1,500 random small instances (N 5-8,
    C 3, B 3-5, C_max 1-3, lam 0.1-3) it matched brute-force enumeration on every one; without kicks it
    missed on 24 of them (1.6%), by at most 43% of the optimum (the tests check both). Ties are broken by
    a random image order drawn from ``seed``; the kicks draw from the same generator.
    """
    rng = np.random.default_rng(seed)
    perm = rng.permutation(problem.n)
    solver = _GreedySolver(problem, perm)
    info: dict[str, Any] = {"starts": {}}
    best = _best_of_starts(solver, starts, max_moves, info["starts"])
    best, info["kicks"] = _kicked(solver, best, kicks, kick_size, max_moves, rng)
    s = best[1]
    image_p = np.repeat(s.images, s.counts)
    within = np.concatenate([np.arange(c) for c in s.counts])
    cls = solver.class_order[image_p, within]
    return _finish(problem, perm[image_p], cls, "greedy", info=info)


def _start(solver: _GreedySolver, start: str) -> _ImageSet:
    """The initial image set of a start, its counts allocated exactly."""
    if start == "greedy":
        initial = solver.construct()
    elif start == "uncertainty":
        initial = solver.by_uncertainty()
    else:
        raise ValueError(f"unknown greedy start {start!r}; expected 'greedy' or 'uncertainty'")
    return solver.make(initial.images, initial.rows)


def _best_of_starts(solver: _GreedySolver, starts: tuple[str, ...], max_moves: int,
                    record: dict[str, Any]) -> tuple[float, _ImageSet]:
    """Each start improved by local search (unless an earlier result already beats it), the best kept
    as (objective, image set); ``record[start]`` gets its initial and final objective, moves and seconds."""
    best: tuple[float, _ImageSet] | None = None
    for start in starts:
        began = time.perf_counter()
        initial = _start(solver, start)
        initial_cost = solver.cost(initial)
        if best is not None and initial_cost >= best[0]:
            # already beaten: improving it is not needed for "never worse than this start"
            improved, moves, value = initial, 0, initial_cost
        else:
            improved, moves = solver.improve(initial, max_moves)
            value = solver.cost(improved)
        record[start] = {"initial": initial_cost, "final": value, "moves": moves,
                         "seconds": time.perf_counter() - began}
        if best is None or value < best[0]:
            best = (value, improved)
    assert best is not None, "no start given"
    return best


def _kicked(solver: _GreedySolver, best: tuple[float, _ImageSet], kicks: int, kick_size: int, max_moves: int,
            rng: np.random.Generator) -> tuple[tuple[float, _ImageSet], dict[str, Any]]:
    """Iterated local search: ``kicks`` times perturb the best solution, improve it, keep it if better.
    Returns the best (objective, image set) and the kicks' record (tried, accepted, seconds)."""
    began = time.perf_counter()
    accepted = 0
    for _ in range(kicks):
        kicked = solver.kick(best[1], kick_size, rng)
        if kicked is None:
            continue
        improved, _ = solver.improve(kicked, max_moves)
        value = solver.cost(improved)
        if value < best[0] - 1e-12 * max(1.0, abs(best[0])):
            best = (value, improved)
            accepted += 1
    return best, {"tried": kicks, "accepted": accepted, "seconds": time.perf_counter() - began}
