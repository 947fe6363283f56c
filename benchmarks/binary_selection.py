"""Binary (image, class) selection: the paper's LP (``lp``), our tighter LP (``lp_tight``), our greedy
selection and the baselines.

For each pool size N (C = 19 classes, B = 200 questions, C_max = 5, lambda = 1, alpha = 1) it draws a
synthetic pool with a seed: clustered non-negative features (like pooled post-ReLU encoder features) and
class presence p drawn from a per-cluster Dirichlet (so uncertainty is clustered too). Each method runs in
a fresh Python process with one BLAS thread, so that its wall time and peak RSS are its own; every
selection is scored on the integer objective ``sum G M + lambda v^T R v``.

    nice -n 19 python benchmarks/binary_selection.py --sizes 100 1200 10000 \\
        --output benchmarks/results/binary_selection.md

The LPs have N C + N + N (N - 1) / 2 variables (``lp``: N more, the diagonal z_ii); at sizes where the estimate from the largest
measured LP exceeds ``--lp-max-gb`` or ``--lp-max-seconds`` it is skipped and the estimate reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CLASSES, BUDGET, C_MAX, LAM, ALPHA, FEATURES, CLUSTERS = 19, 200, 5, 1.0, 1.0, 128, 8
METHODS = (("lp", "cbc"), ("lp", "highs"), ("lp_tight", "cbc"), ("lp_tight", "highs"), ("greedy", None),
           ("rr", None), ("ee", None))
LP_METHODS = ("lp", "lp_tight")


def synthetic_pool(n: int, seed: int = 0, c: int = CLASSES, f: int = FEATURES, clusters: int = CLUSTERS
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class presence (n, c) float32, features (n, f) float32 and cluster ids (n,) of a synthetic pool."""
    rng = np.random.default_rng(seed)
    centres = rng.gamma(0.5, 1.0, size=(clusters, f))
    base = rng.dirichlet(np.full(c, 0.5), size=clusters)
    cluster = rng.integers(0, clusters, size=n)
    features = np.maximum(centres[cluster] + 0.3 * rng.standard_normal((n, f)), 0.0).astype(np.float32)
    presence = np.stack([rng.dirichlet(3.0 * base[k] + 0.05) for k in cluster]).astype(np.float32)
    return presence, features, cluster


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def worker(n: int, method: str, solver: str | None, seed: int, scaling: str) -> dict:
    """One measurement, in this (fresh) process."""
    from alseg.acquire.binary import binary_scores, select_binary

    presence, features, cluster = synthetic_pool(n, seed)
    baseline = peak_rss_mb()
    started = time.perf_counter()
    scores = binary_scores(presence, features, alpha=ALPHA, scaling=scaling)
    scored = time.perf_counter()
    sel = select_binary(scores, method, BUDGET, C_MAX, LAM, seed=seed, solver=solver or "cbc")
    done = time.perf_counter()
    images = np.unique(sel.image)
    g_term = float(scores.confidence[sel.image, sel.class_id].sum())
    k = images.size
    mean_pairwise = (sel.redundancy - float(scores.redundancy.diagonal()[images].sum())) / max(k * (k - 1), 1)
    return {
        "n": n, "method": method, "solver": solver, "objective": sel.objective, "g_term": g_term,
        "redundancy": sel.redundancy, "mean_pairwise_r": mean_pairwise, "images": int(k),
        "clusters": int(np.unique(cluster[images]).size), "mean_entropy": float(sel.score.mean()),
        "scores_s": scored - started, "select_s": done - scored, "peak_mb": peak_rss_mb(),
        "baseline_mb": baseline, "info": {key: v for key, v in sel.info.items() if key != "starts"},
    }


def run_one(n: int, method: str, solver: str | None, seed: int, scaling: str, timeout: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", str(n), method, solver or "-", str(seed), scaling]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{method}/{solver} at N={n} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def lp_estimate(n: int, measured: dict) -> tuple[float, float]:
    """(seconds, GB) of an LP at n, scaled by the variable count from a measured run."""
    from alseg.acquire.binary_lp import lp_variable_count

    ratio = lp_variable_count(n, CLASSES) / lp_variable_count(measured["n"], CLASSES)
    return (measured["scores_s"] + measured["select_s"]) * ratio, measured["peak_mb"] / 1024 * ratio


def label(row: dict) -> str:
    if row["method"] not in LP_METHODS:
        return row["method"]
    return f"{row['method']} ({row['solver'].upper() if row['solver'] == 'cbc' else 'HiGHS'})"


def table(rows: list[dict]) -> str:
    head = ("| N | method | objective | G term | v^T R v | mean pairwise R | images | clusters hit | "
            "mean H (nats) | scores (s) | select (s) | total (s) | peak RSS (MB) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"| {r['n']} | {label(r)} | {r['skipped']} |" + " |" * 10)
            continue
        lines.append(
            f"| {r['n']} | {label(r)} | {r['objective']:.2f} | {r['g_term']:.4f} | {r['redundancy']:.2f} | "
            f"{r['mean_pairwise_r']:.3f} | {r['images']} | {r['clusters']}/{CLUSTERS} | {r['mean_entropy']:.3f} | "
            f"{r['scores_s']:.2f} | {r['select_s']:.2f} | {r['scores_s'] + r['select_s']:.2f} | "
            f"{r['peak_mb']:.0f} |"
        )
    return "\n".join(lines)


def machine() -> str:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    import pulp

    try:
        highs = version("highspy")
    except PackageNotFoundError:
        highs = "not installed"
    return (f"{os.cpu_count()} CPUs (nproc), {model}, Python {platform.python_version()}, numpy "
            f"{np.__version__}, PuLP {pulp.__version__} (bundled CBC), highspy {highs}; one BLAS thread and "
            "one solver thread per measurement")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1200, 10000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scaling", nargs="+", default=["minmax"], choices=["minmax", "rank"],
                        help="confidence scaling(s); one table each")
    parser.add_argument("--lp-max-gb", type=float, default=8.0)
    parser.add_argument("--lp-max-seconds", type=float, default=600.0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    sections = []
    for scaling in args.scaling:
        rows = measure(args.sizes, scaling, args)
        sections.append(f"## Confidence scaling: {scaling}\n\n{table(rows)}\n")
        print(sections[-1], flush=True)
    if args.output:
        command = "nice -n 19 python benchmarks/binary_selection.py " + " ".join(sys.argv[1:])
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            f"# Binary selection benchmark\n\nCommand: `{command}`\n\nMachine: {machine()}\n\n"
            f"Setting: C = {CLASSES}, B = {BUDGET}, C_max = {C_MAX}, lambda = {LAM}, alpha = {ALPHA}; "
            f"synthetic pool (seed {args.seed}): {FEATURES}-d features in {CLUSTERS} clusters, class "
            "presence from per-cluster Dirichlets. Objective = G term + lambda v^T R v (lower is better); "
            "times: scores = entropy, G and the redundancy bounds; select = the method (the LP builds the "
            "dense R itself).\n\n" + "\n".join(sections)
        )


def measure(sizes: list[int], scaling: str, args: argparse.Namespace) -> list[dict]:
    """Every method at every size, each in a fresh process; the LP skipped where too large."""
    rows: list[dict] = []
    largest_lp: dict[tuple[str, str], dict] = {}
    for n in sizes:
        for method, solver in METHODS:
            if method in LP_METHODS and solver == "highs":
                try:
                    import highspy  # noqa: F401
                except ImportError:
                    continue
            if (method, solver) in largest_lp:
                seconds, gb = lp_estimate(n, largest_lp[method, solver])
                if gb > args.lp_max_gb or seconds > args.lp_max_seconds:
                    base = largest_lp[method, solver]["n"]
                    rows.append({"n": n, "method": method, "solver": solver, "skipped":
                                 f"not run: at least {seconds / 60:.0f} min and {gb:.0f} GB (N = {base} "
                                 f"measurement x {n * (n - 1) / (base * (base - 1)):.0f}, the growth of the "
                                 "variable count; solving grows faster)"})
                    print(rows[-1], flush=True)
                    continue
            row = run_one(n, method, solver, args.seed, scaling, timeout=3600)
            if method in LP_METHODS:
                largest_lp[method, solver] = row
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        n, method, solver, seed, scaling = sys.argv[2:7]
        result = worker(int(n), method, None if solver == "-" else solver, int(seed), scaling)
        print(json.dumps(result, default=float))
    else:
        main()
