"""The binary selection problem every method shares: redundancy sources, the objective, the result.

* :class:`RedundancySource`: access to the scaled redundancy R (N, N) by rows, diagonal or whole;
  :class:`MatrixRedundancy` holds an explicit matrix (:class:`alseg.acquire.binary.FeatureRedundancy`
  computes rows from image features);
* the paper's objective ``sum_ij G_ij M_ij + lam * v^T R v`` of an integer selection
  (:func:`integer_objective`, :func:`selection_redundancy`);
* :class:`BinarySelection`, what every method returns, and ``_Problem``, the validated instance the
  methods solve (built by :func:`alseg.acquire.binary.select_binary`), with ``_finish`` (checks the
  invariants and builds the selection) and ``_fill_in_order`` (the rounding walk of ``lp``, ``rr``, ``ee``).

The solvers (:mod:`alseg.acquire.binary_lp`, :mod:`alseg.acquire.binary_greedy`) and
:mod:`alseg.acquire.binary` import this module; it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# ----------------------------------------------------------------------------------------------------------
# redundancy sources
# ----------------------------------------------------------------------------------------------------------


class RedundancySource(Protocol):
    """Access to a scaled redundancy matrix R (N, N) without necessarily holding it in memory."""

    @property
    def size(self) -> int:
        """N."""
        ...

    def rows(self, index: np.ndarray) -> np.ndarray:
        """``R[index, :]``, float64 (len(index), N)."""
        ...

    def diagonal(self) -> np.ndarray:
        """``R_ii``, float64 (N,)."""
        ...

    def matrix(self) -> np.ndarray:
        """The whole R, float64 (N, N)."""
        ...


@dataclass(frozen=True)
class MatrixRedundancy:
    """A redundancy source holding an explicit (already scaled) matrix ``R`` (N, N), non-negative."""

    R: np.ndarray

    def __post_init__(self) -> None:
        R = np.asarray(self.R, dtype=np.float64)
        if R.ndim != 2 or R.shape[0] != R.shape[1]:
            raise ValueError(f"redundancy matrix must be square (N, N), got shape {R.shape}")
        if not np.isfinite(R).all():
            raise ValueError("redundancy matrix holds NaN or inf")
        if (R < 0).any():
            raise ValueError("redundancy matrix must be non-negative (scale it to [0, 1])")
        if not np.allclose(R, R.T):
            raise ValueError("redundancy matrix must be symmetric")
        object.__setattr__(self, "R", R)

    @property
    def size(self) -> int:
        return int(self.R.shape[0])

    def rows(self, index: np.ndarray) -> np.ndarray:
        return self.R[np.asarray(index, dtype=np.int64)]

    def diagonal(self) -> np.ndarray:
        return np.diag(self.R).copy()

    def matrix(self) -> np.ndarray:
        return self.R


def as_redundancy(R: np.ndarray | RedundancySource) -> RedundancySource:
    """Wrap an explicit (N, N) matrix in :class:`MatrixRedundancy`; pass a source through."""
    if isinstance(R, np.ndarray):
        return MatrixRedundancy(R)
    return R


# ----------------------------------------------------------------------------------------------------------
# objective
# ----------------------------------------------------------------------------------------------------------


def selection_redundancy(R: np.ndarray | RedundancySource, images: np.ndarray) -> float:
    """``v^T R v`` for the indicator v of the distinct ``images``: sum of R over all ordered pairs of
    chosen images, the diagonal included (each image pays ``R_ii``, each unordered pair ``2 R_ik``)."""
    chosen = np.unique(np.asarray(images, dtype=np.int64))
    if chosen.size == 0:
        return 0.0
    return float(as_redundancy(R).rows(chosen)[:, chosen].sum())


def integer_objective(
    G: np.ndarray, R: np.ndarray | RedundancySource, chosen: np.ndarray, lam: float
) -> float:
    """The paper's objective ``sum_ij G_ij M_ij + lam * v^T R v`` of an integer selection (lower is better).

    Parameters
    ----------
    G : ndarray of float, shape (N, C)
        Scaled confidence.
    R : ndarray (N, N) or RedundancySource
        Scaled redundancy.
    chosen : ndarray of bool, shape (N, C)
        The selection M; ``v_i = any_j M_ij``.
    lam : float
    """
    M = np.asarray(chosen, dtype=bool)
    if M.shape != np.shape(G):
        raise ValueError(f"selection shape {M.shape} differs from G shape {np.shape(G)}")
    return float(np.asarray(G, dtype=np.float64)[M].sum()) + lam * selection_redundancy(
        R, np.flatnonzero(M.any(axis=1))
    )


# ----------------------------------------------------------------------------------------------------------
# selections
# ----------------------------------------------------------------------------------------------------------


@dataclass
class BinarySelection:
    """Chosen (image, class) pairs, sorted by ``rank``.

    Attributes
    ----------
    image, class_id : ndarray of int64, shape (B,)
    score : ndarray of float64, shape (B,)
        Binary entropy H of the pair's presence (nats; larger = more uncertain), for every method.
    rank : ndarray of int64, shape (B,)
        0..B-1, the method's order: ``lp`` the rounding order (largest relaxed M first); ``greedy`` and
        ``milp`` descending score; ``ee`` image rank then class rank; ``rr`` the random draw order.
    method : str
    objective : float
        :func:`integer_objective` of the selection with the G, R and lam it was chosen with.
    redundancy : float
        :func:`selection_redundancy` of its images.
    lp_value : ndarray of float64, shape (B,), or None
        The relaxed ``M_ij`` of each pair (``lp`` only).
    info : dict
        Method details (solver status, times, sizes, local-search moves).
    """

    image: np.ndarray
    class_id: np.ndarray
    score: np.ndarray
    rank: np.ndarray
    method: str
    objective: float
    redundancy: float
    lp_value: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.image.size)

    @property
    def num_images(self) -> int:
        """Number of distinct images asked about."""
        return int(np.unique(self.image).size)

    def matrix(self, num_images: int, num_classes: int) -> np.ndarray:
        """The selection as a boolean (N, C) matrix M."""
        M = np.zeros((num_images, num_classes), dtype=bool)
        M[self.image, self.class_id] = True
        return M


@dataclass(frozen=True)
class _Problem:
    """A validated instance: G, H (N, C), R, available (N, C) bool, budget, cap per image, lam."""

    G: np.ndarray
    H: np.ndarray
    R: RedundancySource
    available: np.ndarray
    budget: int
    c_max: int
    lam: float

    @property
    def n(self) -> int:
        return int(self.G.shape[0])

    @property
    def c(self) -> int:
        return int(self.G.shape[1])

    @property
    def cap(self) -> np.ndarray:
        """Pairs each image can still give, (N,) int64: min(C_max, available classes)."""
        return np.minimum(self.c_max, self.available.sum(axis=1))


def _finish(problem: _Problem, image: np.ndarray, cls: np.ndarray, method: str,
            lp_value: np.ndarray | None = None, info: dict[str, Any] | None = None,
            order: str = "score") -> BinarySelection:
    """Build the selection from pairs given in the method's order (``order="given"``) or sorted by
    descending score (``order="score"``, ties by image then class); check the invariants."""
    image = np.asarray(image, dtype=np.int64)
    cls = np.asarray(cls, dtype=np.int64)
    score = problem.H[image, cls]
    if order == "score":
        perm = np.lexsort((cls, image, -score))
        image, cls, score = image[perm], cls[perm], score[perm]
        if lp_value is not None:
            lp_value = lp_value[perm]
    M = np.zeros((problem.n, problem.c), dtype=bool)
    M[image, cls] = True
    # invariants every method must keep (a failure here is a bug, not bad input)
    assert image.size == problem.budget and M.sum() == problem.budget, "budget not met exactly"
    assert not (M & ~problem.available).any(), "a pair was asked before"
    assert M.sum(axis=1).max() <= problem.c_max, "C_max exceeded"
    objective = integer_objective(problem.G, problem.R, M, problem.lam)
    return BinarySelection(
        image=image, class_id=cls, score=score, rank=np.arange(image.size, dtype=np.int64), method=method,
        objective=objective, redundancy=selection_redundancy(problem.R, image), lp_value=lp_value,
        info=info or {},
    )


def _fill_in_order(problem: _Problem, flat_order: np.ndarray) -> np.ndarray:
    """Walk flat pair indices (i * C + j) in order, keeping available pairs while the image has fewer than
    C_max and the budget is not met; return the kept flat indices in walk order."""
    flat_order = flat_order[problem.available.reshape(-1)[flat_order]]
    image = flat_order // problem.c
    # occurrence number of each pair among its image's pairs along the walk (0 = the image's first)
    by_image = np.argsort(image, kind="stable")
    sorted_image = image[by_image]
    starts = np.flatnonzero(np.r_[True, sorted_image[1:] != sorted_image[:-1]])
    within = np.arange(sorted_image.size) - np.repeat(starts, np.diff(np.r_[starts, sorted_image.size]))
    occurrence = np.empty_like(within)
    occurrence[by_image] = within
    kept = flat_order[occurrence < problem.c_max]
    return kept[: problem.budget]
