"""Binary image-class queries: "is class c present in image i?" (Binary User Feedback, section 3).

Scores
------
From the inference dump of the pool (N images, C classes):

* ``p`` (N, C): mean predicted probability of class j over image i's pixels.
* ``H = -p log p - (1 - p) log(1 - p)`` (nats), with ``p`` clipped to ``[eps, 1 - eps]`` so that ``H > 0``.
* confidence ``G = alpha / H`` (paper eq. 2), then min-max scaled over all N x C entries to ``[0, 1]``
  (the paper: "all the values in G and R were mapped in the (0, 1) range"). The extreme entries reach the
  end points 0 and 1. Any affine rescaling cancels ``alpha``: it is accepted for fidelity but has no
  effect; the trade-off between the two terms is set by ``lam`` alone. ``1 / H`` is heavy-tailed, so
  min-max scaling puts every uncertain pair within ~1e-4 of 0; ``scaling="rank"`` (an option, not the
  paper's) maps G to its rank in (0, 1) instead (:func:`confidence_matrix`).
* redundancy ``R = cos(F_i, F_k)`` of the pooled image features (eq. 3), min-max scaled over all N x N
  entries (the diagonal included, so for non-zero features ``max = R_ii = 1``) to ``[0, 1]``. A zero
  feature vector has cosine 0 with every image, itself included. An array whose entries are all equal maps
  to all ones (nothing to rank; identical images stay maximally redundant).

Problem (paper eq. 4/5, minimised over binary M (N, C) and v (N,))::

    sum_ij G_ij M_ij + lam * v^T R v
    s.t. sum M = B,  sum_j M_ij <= C_max,  M_ij <= v_i,  M_ij = 0 where (i, j) was asked before.

``v^T R v`` is the full quadratic form: each chosen image pays ``R_ii`` and each unordered pair of chosen
images ``2 R_ik`` (:func:`~alseg.acquire.binary_problem.selection_redundancy`);
:func:`~alseg.acquire.binary_problem.integer_objective` evaluates it for any selection.

Methods (:func:`select_binary`)
-------------------------------
``lp``
    The paper's LP (eq. 8) relaxed as written and built with PuLP, then rounded
    (:func:`~alseg.acquire.binary_lp.select_lp`). Faithful, but the relaxation is weak: ``v_i <= 0.5``
    makes every ``z_ik = 0`` feasible, the diagonal ``z_ii`` included, so the redundancy term vanishes and
    the rounding follows uncertainty alone. N (N + 1) / 2 ``z`` variables: quadratic memory.
``lp_tight``
    Ours: the same LP with the diagonal folded into the linear term ``R_ii v_i`` (exact for binary v), a
    tighter relaxation; each chosen image still pays ``R_ii`` in the relaxation, the pairs still nothing.
``milp``
    The same model with binary variables, solved to optimality or a time limit (small N only).
``greedy``
    Ours (:func:`~alseg.acquire.binary_greedy.select_greedy`): a greedy construction on the integer
    objective, a local search over the set of chosen images (swap, add, remove) with the pairs of a given
    image set allocated exactly, and a few random perturbations ("kicks") of the local optimum. Vectorised
    numpy; memory O(N (F + C) + K N) for K chosen images.
``rr``, ``ee``
    Baselines: random images with random classes; entropy-ranked images with their most uncertain classes.

Every method returns a :class:`~alseg.acquire.binary_problem.BinarySelection` of exactly B pairs, at most
C_max per image, none asked before, deterministic for a given seed.

Modules: this one holds the scores (entropy, confidence, feature redundancy), the problem set-up, the
baselines RR and EE and the dispatcher :func:`select_binary`; :mod:`alseg.acquire.binary_problem` the
redundancy sources, the objective and the selection type; :mod:`alseg.acquire.binary_lp` the LP and MILP;
:mod:`alseg.acquire.binary_greedy` our greedy selection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from alseg.acquire.binary_greedy import select_greedy
from alseg.acquire.binary_lp import LITERAL, TIGHT, select_lp, select_milp
from alseg.acquire.binary_problem import (
    BinarySelection,
    RedundancySource,
    _fill_in_order,
    _finish,
    _Problem,
)

BINARY_METHODS = ("lp", "lp_tight", "milp", "greedy", "rr", "ee")
DEFAULT_EPS = 1e-6
_CHUNK_ROWS = 1024


# ----------------------------------------------------------------------------------------------------------
# scores
# ----------------------------------------------------------------------------------------------------------


def validate_probabilities(p: np.ndarray) -> np.ndarray:
    """Return ``p`` as float64 (N, C) after checking it; raise ValueError naming the problem.

    Values within 1e-6 outside [0, 1] (float16 round-off) are clipped; NaN, infinities and values further
    out are errors.
    """
    p = np.asarray(p)
    if p.ndim != 2:
        raise ValueError(f"class presence must be a 2-D (N, C) array, got shape {p.shape}")
    if p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"class presence is empty (shape {p.shape}): no images or no classes")
    p = p.astype(np.float64)
    bad = ~np.isfinite(p)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"class presence holds {int(bad.sum())} non-finite value(s) (NaN or inf), first at image {i}, "
            f"class {j}"
        )
    tol = 1e-6
    if p.min() < -tol or p.max() > 1 + tol:
        raise ValueError(f"class presence must lie in [0, 1], got values in [{p.min():.6g}, {p.max():.6g}]")
    return np.clip(p, 0.0, 1.0)


def binary_entropy(p: np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Binary entropy ``-p log p - (1 - p) log(1 - p)`` in nats (paper eq. 1).

    Parameters
    ----------
    p : ndarray of float, shape (N, C)
        Class presence probabilities in [0, 1].
    eps : float
        ``p`` is clipped to ``[eps, 1 - eps]`` so that the entropy is positive and ``1 / H`` finite.

    Returns
    -------
    ndarray of float64, shape (N, C), values in ``(0, log 2]``.
    """
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return -(q * np.log(q) + (1.0 - q) * np.log1p(-q))


def scale_to_unit(x: np.ndarray) -> np.ndarray:
    """Min-max scale all entries of ``x`` to [0, 1] (float64); all-equal entries map to ones."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi - lo <= 0.0:
        return np.ones_like(x)
    return (x - lo) / (hi - lo)


def rank_to_unit(x: np.ndarray) -> np.ndarray:
    """Map the entries of ``x`` to ``(rank - 0.5) / size`` in the open interval (0, 1) (ties share their
    average rank), float64 of the same shape."""
    x = np.asarray(x, dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # 0-based rank of each distinct value's first entry
    average = first + (counts - 1) / 2.0
    return ((average[inverse.reshape(-1)] + 0.5) / x.size).reshape(x.shape)


CONFIDENCE_SCALINGS = ("minmax", "rank")


def confidence_matrix(entropy: np.ndarray, alpha: float = 1.0, scaling: str = "minmax") -> np.ndarray:
    """Scaled confidence ``G`` (N, C) float64: ``alpha / H`` (paper eq. 2) mapped to the unit interval.

    Low G = uncertain presence = worth asking. ``scaling``: ``"minmax"`` (the paper's "mapped in the (0, 1)
    range", [0, 1]) or ``"rank"`` (:func:`rank_to_unit`, (0, 1)). Because ``1 / H`` is heavy-tailed (a
    near-certain pair with p = 1e-6 has ``1 / H`` near 7e4, an uncertain one near 1.4), min-max scaling
    squeezes every uncertain pair to within ~1e-4 of 0, and the uncertainty term then hardly weighs
    against ``lam v^T R v``; rank scaling spreads G evenly. ``alpha > 0`` cancels under either scaling.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    raw = alpha / np.asarray(entropy, dtype=np.float64)
    if scaling == "minmax":
        return scale_to_unit(raw)
    if scaling == "rank":
        return rank_to_unit(raw)
    raise ValueError(f"unknown confidence scaling {scaling!r}; expected one of {CONFIDENCE_SCALINGS}")


class FeatureRedundancy:
    """Scaled cosine redundancy computed from image features on demand (paper eq. 3).

    Holds the L2-normalised features (N, F) float64 and the scaling bounds (min and max cosine over all
    N x N entries, found in row chunks of the Gram matrix without materialising it). A row of R costs one
    (F,) x (F, N) product, so a selection that touches K images needs O(K N) memory, not O(N^2).

    Parameters
    ----------
    features : ndarray of float, shape (N, F)
        Pooled image features (``/image/features`` of the inference dump).
    """

    def __init__(self, features: np.ndarray) -> None:
        f = np.asarray(features)
        if f.ndim != 2 or f.shape[0] < 1 or f.shape[1] < 1:
            raise ValueError(f"features must be a non-empty 2-D (N, F) array, got shape {f.shape}")
        f = f.astype(np.float64)
        if not np.isfinite(f).all():
            raise ValueError("features hold NaN or inf")
        norm = np.linalg.norm(f, axis=1, keepdims=True)
        self.unit = np.divide(f, norm, out=np.zeros_like(f), where=norm > 0)
        lo, hi = math.inf, -math.inf
        for start in range(0, len(f), _CHUNK_ROWS):
            block = self.unit[start : start + _CHUNK_ROWS] @ self.unit.T
            lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
        self.cos_min, self.cos_max = lo, hi

    @property
    def size(self) -> int:
        return int(self.unit.shape[0])

    def _scale(self, cos: np.ndarray) -> np.ndarray:
        span = self.cos_max - self.cos_min
        if span <= 0.0:
            return np.ones_like(cos)
        return np.clip((cos - self.cos_min) / span, 0.0, 1.0)

    def rows(self, index: np.ndarray) -> np.ndarray:
        return self._scale(self.unit[np.asarray(index, dtype=np.int64)] @ self.unit.T)

    def diagonal(self) -> np.ndarray:
        return self._scale(np.einsum("nf,nf->n", self.unit, self.unit))

    def matrix(self) -> np.ndarray:
        return self._scale(self.unit @ self.unit.T)


def redundancy_matrix(features: np.ndarray) -> np.ndarray:
    """Scaled cosine redundancy R (N, N) float64 in [0, 1] of ``features`` (N, F) (paper eq. 3)."""
    return FeatureRedundancy(features).matrix()


@dataclass(frozen=True)
class BinaryScores:
    """What every selection method needs about the pool.

    Attributes
    ----------
    entropy : ndarray of float64, shape (N, C)
        Binary entropy H of class presence (the ``score`` written to queries.csv).
    confidence : ndarray of float64, shape (N, C)
        Scaled confidence G in [0, 1] (the objective's linear term).
    redundancy : RedundancySource
        Scaled redundancy R (N, N) in [0, 1].
    """

    entropy: np.ndarray
    confidence: np.ndarray
    redundancy: RedundancySource

    def __post_init__(self) -> None:
        H = np.asarray(self.entropy, dtype=np.float64)
        G = np.asarray(self.confidence, dtype=np.float64)
        if G.ndim != 2 or G.shape != H.shape:
            raise ValueError(f"confidence {G.shape} and entropy {H.shape} must be the same (N, C) shape")
        if not (np.isfinite(G).all() and np.isfinite(H).all()):
            raise ValueError("confidence and entropy must be finite")
        if self.redundancy.size != G.shape[0]:
            raise ValueError(
                f"redundancy covers {self.redundancy.size} images but the scores cover {G.shape[0]}"
            )
        object.__setattr__(self, "entropy", H)
        object.__setattr__(self, "confidence", G)

    @property
    def shape(self) -> tuple[int, int]:
        """(N, C)."""
        return (int(self.confidence.shape[0]), int(self.confidence.shape[1]))


def binary_scores(
    class_presence: np.ndarray,
    features: np.ndarray,
    alpha: float = 1.0,
    eps: float = DEFAULT_EPS,
    scaling: str = "minmax",
) -> BinaryScores:
    """Scores of every (image, class) pair of the pool from the inference dump.

    Parameters
    ----------
    class_presence : ndarray of float, shape (N, C)
        ``/image/class_presence``: mean probability of each class over each image.
    features : ndarray of float, shape (N, F)
        ``/image/features``: pooled encoder features.
    alpha : float
        Numerator of ``G = alpha / H`` (paper default 1; cancels in the scaling).
    eps : float
        Clip of ``p`` before the entropy.
    scaling : {"minmax", "rank"}
        How ``alpha / H`` is mapped to the unit interval (:func:`confidence_matrix`).

    Returns
    -------
    BinaryScores

    Raises
    ------
    ValueError
        NaN, infinite or out-of-range probabilities, non-finite features, or N differing between them.
    """
    p = validate_probabilities(class_presence)
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] != p.shape[0]:
        raise ValueError(
            f"features must be (N, F) with N = {p.shape[0]} images like class presence, got shape "
            f"{features.shape}"
        )
    H = binary_entropy(p, eps)
    return BinaryScores(entropy=H, confidence=confidence_matrix(H, alpha, scaling),
                        redundancy=FeatureRedundancy(features))


def asked_pairs_mask(
    num_images: int, num_classes: int, binary_image: np.ndarray, binary_class: np.ndarray
) -> np.ndarray:
    """Boolean (N, C) map of the pairs asked in earlier rounds (``labels.binary_image/binary_class``).

    Raises ValueError for an image or class outside the pool.
    """
    image = np.asarray(binary_image, dtype=np.int64)
    cls = np.asarray(binary_class, dtype=np.int64)
    if image.shape != cls.shape:
        raise ValueError(f"binary_image {image.shape} and binary_class {cls.shape} differ in shape")
    if image.size and (image.min() < 0 or image.max() >= num_images):
        raise ValueError(f"asked pairs name images outside the pool of {num_images}")
    if cls.size and (cls.min() < 0 or cls.max() >= num_classes):
        raise ValueError(f"asked pairs name classes outside 0..{num_classes - 1}")
    mask = np.zeros((num_images, num_classes), dtype=bool)
    mask[image, cls] = True
    return mask


# ----------------------------------------------------------------------------------------------------------
# the problem and the baselines
# ----------------------------------------------------------------------------------------------------------


def _problem(
    scores: BinaryScores, budget: int, c_max: int, lam: float, asked: np.ndarray | None
) -> _Problem:
    n, c = scores.shape
    if isinstance(budget, bool) or int(budget) != budget or budget < 1:
        raise ValueError(f"budget must be an integer >= 1, got {budget!r}")
    if isinstance(c_max, bool) or int(c_max) != c_max or c_max < 1:
        raise ValueError(f"c_max must be an integer >= 1 (questions per image), got {c_max!r}")
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lambda must be finite and >= 0, got {lam}")
    if asked is None:
        asked = np.zeros((n, c), dtype=bool)
    asked = np.asarray(asked)
    if asked.shape != (n, c):
        raise ValueError(f"asked mask must have shape (N, C) = {(n, c)}, got {asked.shape}")
    available = ~asked.astype(bool)
    problem = _Problem(scores.confidence, scores.entropy, scores.redundancy, available, int(budget),
                       int(c_max), float(lam))
    capacity = int(problem.cap.sum())
    if budget > capacity:
        raise ValueError(
            f"budget {budget} exceeds the {capacity} pairs left to ask ({int(available.sum())} unasked "
            f"pairs over {n} images, at most C_max = {c_max} per image)"
        )
    return problem


# ---- baselines ----------------------------------------------------------------------------------------


def select_rr(problem: _Problem, seed: int = 0) -> BinarySelection:
    """RR baseline: images in a random order, each giving min(C_max, its unasked classes, budget left)
    classes drawn at random, until B pairs."""
    rng = np.random.default_rng(seed)
    key = rng.random((problem.n, problem.c))
    key[~problem.available] = np.inf
    class_rank = np.argsort(np.argsort(key, axis=1, kind="stable"), axis=1, kind="stable")  # 0 = first drawn
    image_rank = np.argsort(rng.permutation(problem.n), kind="stable")  # image i is drawn image_rank[i]-th
    order = np.lexsort((class_rank.reshape(-1), np.repeat(image_rank, problem.c)))
    kept = _fill_in_order(problem, order)
    return _finish(problem, kept // problem.c, kept % problem.c, "rr", order="given")


def select_ee(problem: _Problem, seed: int = 0) -> BinarySelection:
    """EE baseline: rank images by the summed entropy of their min(C_max, unasked) most uncertain unasked
    classes (descending), then ask each image's classes by descending entropy, C_max per image, until B
    pairs. Ties: a random order drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    H = np.where(problem.available, problem.H, -np.inf)
    cmax = min(problem.c_max, problem.c)
    top = -np.sort(-H, axis=1)[:, :cmax]
    image_score = np.where(np.isfinite(top), top, 0.0).sum(axis=1)
    tie = rng.permutation(problem.n)
    image_rank = np.empty(problem.n, dtype=np.int64)
    image_rank[np.lexsort((tie, -image_score))] = np.arange(problem.n)
    class_rank = np.argsort(np.argsort(-H, axis=1, kind="stable"), axis=1, kind="stable")
    order = np.lexsort((class_rank.reshape(-1), np.repeat(image_rank, problem.c)))
    kept = _fill_in_order(problem, order)
    return _finish(problem, kept // problem.c, kept % problem.c, "ee", order="given")


# ---- entry point --------------------------------------------------------------------------------------


def select_binary(
    scores: BinaryScores,
    method: str,
    budget: int,
    c_max: int = 5,
    lam: float = 1.0,
    asked: np.ndarray | None = None,
    seed: int = 0,
    solver: str = "cbc",
    time_limit: float | None = None,
    **options: Any,
) -> BinarySelection:
    """Choose ``budget`` (image, class) questions with ``method``.

    Parameters
    ----------
    scores : BinaryScores
        From :func:`binary_scores`.
    method : {"lp", "lp_tight", "milp", "greedy", "rr", "ee"}
    budget : int
        B, questions this round (met exactly).
    c_max : int
        Most questions per image (>= 1).
    lam : float
        Weight of the redundancy term (>= 0).
    asked : ndarray of bool, shape (N, C), or None
        Pairs asked in earlier rounds (:func:`asked_pairs_mask`); never asked again.
    seed : int
        Tie-breaking (all methods) and the random draws of ``rr``.
    solver : {"cbc", "highs"}
        LP/MILP solver (``lp``, ``lp_tight``, ``milp``).
    time_limit : float or None
        Solver time limit in seconds (``lp``, ``lp_tight``, ``milp``; ``milp`` defaults to 60).
    **options
        ``greedy``: ``max_moves``, ``starts``; ``lp``/``lp_tight``/``milp``: ``msg`` (solver log).

    Returns
    -------
    BinarySelection

    Raises
    ------
    ValueError
        Unknown method or solver, budget < 1 or larger than the pairs left under C_max, C_max < 1,
        lam < 0, an asked mask of the wrong shape.
    """
    problem = _problem(scores, budget, c_max, lam, asked)
    if method in ("lp", "lp_tight"):
        return select_lp(problem, solver=solver, seed=seed, time_limit=time_limit,
                         form=LITERAL if method == "lp" else TIGHT, **options)
    if method == "milp":
        return select_milp(problem, solver=solver, time_limit=60.0 if time_limit is None else time_limit,
                           **options)
    if method == "greedy":
        return select_greedy(problem, seed=seed, **options)
    if method == "rr":
        return select_rr(problem, seed=seed)
    if method == "ee":
        return select_ee(problem, seed=seed)
    raise ValueError(f"unknown binary selection method {method!r}; expected one of {BINARY_METHODS}")
