"""The paper's LP (eq. 8), a tighter variant of it, and its MILP, built with PuLP and solved by CBC or
HiGHS (``lp``, ``lp_tight``, ``milp``; docs/binary_queries.md).

Variables ``M_ij`` (pairs), ``v_i`` (images) and ``z_ik`` (pairs of images): memory grows quadratically
with the pool (:func:`lp_variable_count`). The two relaxations differ only on the diagonal:

* ``lp`` (:data:`LITERAL`), the paper's eq. 8 as written: ``z_ik`` for every pair i <= k, the diagonal
  included, each with ``v_i + v_k <= 1 + 2 z_ik``; for i = k that is ``z_ii >= v_i - 1/2``, so any
  ``v_i <= 1/2`` makes the whole redundancy term 0;
* ``lp_tight`` (:data:`TIGHT`), ours: the diagonal folded into the linear term ``R_ii v_i`` (exact for
  binary v since ``v_i^2 = v_i``), which tightens the relaxation.

Both round the relaxed ``M`` (:func:`select_lp`); ``milp`` solves the model with binary variables to
optimality or a time limit (:func:`select_milp`, small pools only; both forms have the same integer
optimum). All are called through :func:`alseg.acquire.binary.select_binary`; PuLP is imported only when a
model is built.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from alseg.acquire.binary_problem import BinarySelection, _fill_in_order, _finish, _Problem

LP_SOLVERS = ("cbc", "highs")

#: The paper's eq. 8: ``z_ik`` for i <= k, the diagonal with its own ``z_ii`` (strategy ``lp``).
LITERAL = "literal"
#: Ours: the diagonal as the linear term ``R_ii v_i`` (strategy ``lp_tight``, and ``milp``).
TIGHT = "tight"
LP_FORMS = (LITERAL, TIGHT)


def lp_variable_count(num_images: int, num_classes: int, form: str = TIGHT) -> int:
    """Variables of the model: N C (M) + N (v) + N (N - 1) / 2 (z, i < k), plus N (z_ii) for ``literal``."""
    diagonal = num_images if form == LITERAL else 0
    return num_images * num_classes + num_images + num_images * (num_images - 1) // 2 + diagonal


def _pulp_solver(solver: str, mip: bool, time_limit: float | None, msg: bool) -> Any:
    import pulp

    if solver == "cbc":
        coin = pulp.COIN_CMD(mip=mip, msg=msg, timeLimit=time_limit, threads=1)
        if coin.available():  # a CBC on PATH (PuLP 4 no longer bundles one)
            return coin
        bundled = getattr(pulp, "PULP_CBC_CMD", None)  # PuLP < 4 bundles CBC (deprecated in 3.3)
        if bundled is None:
            raise ValueError("solver 'cbc' needs a CBC binary (pip install 'pulp[cbc]'), or use 'highs'")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return bundled(mip=mip, msg=msg, timeLimit=time_limit, threads=1)
    if solver == "highs":
        if "HiGHS" not in pulp.listSolvers(onlyAvailable=True):
            raise ValueError("solver 'highs' needs the highspy package (pip install highspy)")
        return pulp.HiGHS(mip=mip, msg=msg, timeLimit=time_limit, threads=1)
    raise ValueError(f"unknown LP solver {solver!r}; expected one of {LP_SOLVERS}")


def _solve_pulp_model(
    problem: _Problem, integer: bool, solver: str, time_limit: float | None, msg: bool, form: str = TIGHT
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Build eq. 8 with PuLP and solve it; return M (N, C), v (N,) and an info dict.

    Variables: ``M_ij`` in [0, 1] (upper bound 0 for pairs asked before), ``v_i`` in [0, 1], ``z_ik`` in
    [0, 1] (binary when ``integer``) for i < k, and for i = k too when ``form`` is :data:`LITERAL`.
    Objective ``sum G_ij M_ij + lam sum_{i,k} R_ik z_ik`` over all ordered pairs (``z_ki = z_ik``: each
    i < k term twice, as ``2 R_ik z_ik``); for :data:`TIGHT` the diagonal term is ``R_ii v_i`` instead of
    ``R_ii z_ii``. Both equal ``sum G M + lam v^T R v`` for binary v and z. Constraints ``sum M = B``,
    ``sum_j M_ij <= C_max``, ``M_ij <= v_i``, ``v_i + v_k <= 1 + 2 z_ik`` (the paper's factor 2: at
    ``v_i = v_k = 1`` a relaxed ``z_ik`` need only be 1/2).
    """
    import pulp

    if form not in LP_FORMS:
        raise ValueError(f"unknown LP form {form!r}; expected one of {LP_FORMS}")
    started = time.perf_counter()
    n, c = problem.n, problem.c
    R = problem.R.matrix()
    cat = pulp.LpInteger if integer else pulp.LpContinuous  # LpBinary would override the bounds
    model = pulp.LpProblem("binary_queries", pulp.LpMinimize)
    M = [[model.add_variable(f"M_{i}_{j}", 0, 1 if problem.available[i, j] else 0, cat) for j in range(c)]
         for i in range(n)]
    v = [model.add_variable(f"v_{i}", 0, 1, cat) for i in range(n)]
    z_terms = []
    iu, ku = np.triu_indices(n, k=0 if form == LITERAL else 1)
    for i, k in zip(iu.tolist(), ku.tolist()):
        z = model.add_variable(f"z_{i}_{k}", 0, 1, cat)
        z_terms.append((z, (1.0 if i == k else 2.0) * problem.lam * float(R[i, k])))
        model.addConstraint(
            pulp.LpConstraint(pulp.LpAffineExpression([(v[i], 1.0), (v[k], 1.0), (z, -2.0)]),
                              pulp.LpConstraintLE, rhs=1.0),
            name=f"pair_{i}_{k}",
        )
    objective = [(M[i][j], float(problem.G[i, j])) for i in range(n) for j in range(c)]
    if form == TIGHT:
        objective += [(v[i], problem.lam * float(R[i, i])) for i in range(n)]
    model.setObjective(pulp.LpAffineExpression(objective + z_terms))
    model.addConstraint(
        pulp.LpConstraint(pulp.LpAffineExpression([(M[i][j], 1.0) for i in range(n) for j in range(c)]),
                          pulp.LpConstraintEQ, rhs=float(problem.budget)),
        name="budget",
    )
    for i in range(n):
        model.addConstraint(
            pulp.LpConstraint(pulp.LpAffineExpression([(M[i][j], 1.0) for j in range(c)]),
                              pulp.LpConstraintLE, rhs=float(problem.c_max)),
            name=f"cap_{i}",
        )
        for j in range(c):
            model.addConstraint(
                pulp.LpConstraint(pulp.LpAffineExpression([(M[i][j], 1.0), (v[i], -1.0)]),
                                  pulp.LpConstraintLE, rhs=0.0),
                name=f"link_{i}_{j}",
            )
    built = time.perf_counter()
    status = model.solve(_pulp_solver(solver, integer, time_limit, msg))
    solved = time.perf_counter()
    values = np.array([[M[i][j].value() for j in range(c)] for i in range(n)], dtype=np.float64)
    if np.isnan(values).any() or any(M[i][j].value() is None for i in range(n) for j in range(c)):
        raise RuntimeError(f"{solver} returned no solution (status {pulp.LpStatus[status]})")
    v_values = np.array([x.value() for x in v], dtype=np.float64)
    info = {
        "solver": solver,
        "status": pulp.LpStatus[status],
        "solution_status": pulp.LpSolution.get(model.sol_status, str(model.sol_status)),
        "form": form,
        "variables": lp_variable_count(n, c, form),
        "constraints": model.numConstraints(),
        "build_seconds": built - started,
        "solve_seconds": solved - built,
        "model_objective": float(pulp.value(model.objective)),
        "model_redundancy": _model_redundancy(z_terms, v_values, R, problem.lam, form),
    }
    return np.clip(values, 0.0, 1.0), v_values, info


def _model_redundancy(z_terms: list[tuple[Any, float]], v: np.ndarray, R: np.ndarray, lam: float,
                      form: str) -> float:
    """The model's redundancy term (``lam`` included) at the solution: 0 when every z (and, for
    :data:`TIGHT`, every diagonal ``v_i``) vanishes."""
    total = sum(coef * (z.value() or 0.0) for z, coef in z_terms)
    if form == TIGHT:
        total += lam * float(np.diag(R) @ v)
    return float(total)


def select_lp(
    problem: _Problem,
    solver: str = "cbc",
    seed: int = 0,
    time_limit: float | None = None,
    msg: bool = False,
    form: str = LITERAL,
) -> BinarySelection:
    """Relaxed eq. 8 with PuLP, then rounding: the paper's method (``form="literal"``, strategy ``lp``)
    or our tighter relaxation (``form="tight"``, strategy ``lp_tight``; module docstring).

    Rounding: walk the pairs by descending relaxed ``M_ij``; ties (the relaxation is full of them, e.g.
    many entries at 0.5) by ascending G (the more uncertain pair first), then by a random order drawn from
    ``seed``; keep a pair while its image has fewer than C_max kept pairs and it was not asked before,
    until B pairs are kept. Deterministic for a seed (the solvers are deterministic on one thread).
    """
    M, v, info = _solve_pulp_model(problem, integer=False, solver=solver, time_limit=time_limit, msg=msg,
                                   form=form)
    info["relaxed_objective"] = info.pop("model_objective")
    info["v_max"] = float(v.max())
    tie = np.random.default_rng(seed).permutation(problem.n * problem.c)
    order = np.lexsort((tie, problem.G.reshape(-1), -M.reshape(-1)))
    kept = _fill_in_order(problem, order)
    image, cls = kept // problem.c, kept % problem.c
    method = "lp" if form == LITERAL else "lp_tight"
    return _finish(problem, image, cls, method, lp_value=M[image, cls], info=info, order="given")


def select_milp(
    problem: _Problem, solver: str = "cbc", time_limit: float | None = 60.0, msg: bool = False
) -> BinarySelection:
    """Eq. 8 with binary variables, solved by CBC or HiGHS (exact when the solver reports optimal within
    ``time_limit``; ``info["status"]`` says). Quadratic size: for small pools (N up to ~100)."""
    M, _, info = _solve_pulp_model(problem, integer=True, solver=solver, time_limit=time_limit, msg=msg)
    info["milp_objective"] = info.pop("model_objective")
    chosen = M > 0.5
    if chosen.sum() != problem.budget:
        raise RuntimeError(f"milp: solver returned {int(chosen.sum())} pairs for budget {problem.budget} "
                           f"(status {info['status']})")
    image, cls = np.nonzero(chosen)
    return _finish(problem, image, cls, "milp", info=info)
