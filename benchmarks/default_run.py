"""Wall time of the default workflow run, and how much of it is per-job start-up.

Copies the workflow (Snakefile, config.yaml, rules/, scripts/, workflow/, envs/) into a fresh folder,
runs ``snakemake --cores 8 --config round=R`` there with the package as installed, and reads the
``timing:`` line that every job writes to its log (:func:`alseg.joblog.logged_step`):

- *start-up*: from the job's process start to the step's first line (interpreter, Snakemake's script
  preamble, ``alseg`` imports);
- *step*: the step itself (for model steps this includes importing torch and building the model).

Shares are of the job time summed over jobs (jobs may run side by side, see ``model_threads``).
It also times ``import torch`` alone, the part of a model step's time that is start-up in all but name.

Usage::

    python benchmarks/default_run.py [--round 10] [--cores 8] [--keep DIR]
    python benchmarks/default_run.py --seed 1 --experiments pixel_margin pixel_random

``--seed``, ``--seeds`` and ``--experiments`` edit the copied config.yaml (``defaults.seed``; every experiment
once per seed; the experiments kept), for the spread of the default comparison over seeds
(``benchmarks/default_stability.py`` reads it).

Run it on an otherwise idle machine: concurrent CPU load slows torch's threads many times over.
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ["Snakefile", "config.yaml", "rules", "scripts", "workflow", "envs"]
TIMING = re.compile(r"^timing: start-up ([0-9.]+) s, step ([0-9.]+) s$", re.MULTILINE)


def copy_workflow(dest: Path) -> None:
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name)
        else:
            shutil.copy2(source, dest / name)


def edit_config(path: Path, seed: int | None, experiments: list[str] | None, seeds: list[int] | None = None) -> None:
    """Set ``defaults.seed`` (or ``defaults.seeds``: every experiment once per seed) and keep only
    ``experiments`` in the config.yaml at ``path``."""
    import yaml

    config = yaml.safe_load(path.read_text())
    if seed is not None:
        config["defaults"]["seed"] = seed
    if seeds:
        config["defaults"].pop("seed", None)
        config["defaults"]["seeds"] = seeds
    if experiments:
        unknown = sorted(set(experiments) - set(config["experiments"]))
        if unknown:
            sys.exit(f"unknown experiments {unknown}; the default config has {sorted(config['experiments'])}")
        config["experiments"] = {name: config["experiments"][name] for name in experiments}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def job_timings(results: Path) -> dict[str, list[tuple[float, float]]]:
    """(start-up, step) seconds of every job, by rule (the log file's stem)."""
    by_rule: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    for log in sorted(results.rglob("logs/*.log")):
        match = TIMING.search(log.read_text(encoding="utf-8", errors="replace"))
        if match is None:
            continue
        rule = "prepare_dataset" if log.parent.parent.name == "datasets" else log.stem
        by_rule[rule].append((float(match.group(1)), float(match.group(2))))
    return by_rule


def import_seconds(module: str) -> float:
    """Wall seconds of a fresh interpreter importing ``module`` (median of 3)."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        times.append(time.perf_counter() - start)
    return sorted(times)[1]


def machine() -> str:
    model = ""
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{platform.node()}: {len(os.sched_getaffinity(0))} cores available ({model}), Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round", type=int, default=10)
    parser.add_argument("--cores", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it")
    parser.add_argument("--seed", type=int, help="defaults.seed of the copied config (default: as committed)")
    parser.add_argument("--seeds", type=int, nargs="+", help="run every experiment once per seed (defaults.seeds)")
    parser.add_argument("--experiments", nargs="+", help="run only these experiments of the default config")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="alseg-default-run-"))
    workdir.mkdir(parents=True, exist_ok=not args.keep)
    copy_workflow(workdir)
    edit_config(workdir / "config.yaml", args.seed, args.experiments, args.seeds)
    command = ["snakemake", "--cores", str(args.cores), "--config", f"round={args.round}"]
    print(f"running {' '.join(command)} in {workdir}", file=sys.stderr)
    start = time.perf_counter()
    subprocess.run(command, cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start

    by_rule = job_timings(workdir / "results")
    job_total = sum(s + t for jobs in by_rule.values() for s, t in jobs)
    start_up_total = sum(s for jobs in by_rule.values() for s, _ in jobs)
    torch_import = import_seconds("torch")

    print(f"\nMachine: {machine()}")
    edited = " ".join(f"--{k} {v if isinstance(v, int) else ' '.join(v)}"
                      for k, v in (("seed", args.seed), ("seeds", args.seeds and [str(s) for s in args.seeds]),
                                   ("experiments", args.experiments)) if v is not None)
    print(f"Command: `{' '.join(command)}` (round 0..{args.round}, the default config.yaml"
          f"{', edited: ' + edited if edited else ''})\n")
    print("| rule | jobs | start-up s (sum) | step s (sum) | step s (mean) |")
    print("|---|---:|---:|---:|---:|")
    for rule, jobs in sorted(by_rule.items(), key=lambda kv: -sum(s + t for s, t in kv[1])):
        steps = [t for _, t in jobs]
        print(f"| {rule} | {len(jobs)} | {sum(s for s, _ in jobs):.1f} | {sum(steps):.1f} | "
              f"{sum(steps) / len(steps):.2f} |")
    jobs_count = sum(len(j) for j in by_rule.values())
    model_jobs = len(by_rule.get("train", []))
    print(f"\n- wall time: {wall:.0f} s ({wall / 60:.1f} min), {jobs_count} jobs")
    print(f"- job time, summed over jobs: {job_total:.0f} s (more than the wall time where jobs ran side by side)")
    print(f"- job start-up before the step: {start_up_total:.0f} s ({100 * start_up_total / job_total:.1f}% of job time)")
    print(f"- `import torch` alone: {torch_import:.2f} s, paid by {model_jobs} model jobs: "
          f"about {torch_import * model_jobs:.0f} s ({100 * torch_import * model_jobs / job_total:.1f}% of job time)")

    comparison = workdir / "results" / "comparison.csv"
    with open(comparison, newline="") as handle:
        rows = list(csv.DictReader(handle))
    print("\n| experiment | labelled pixels | mIoU round 0 | mIoU final |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['experiment']} | {float(row['labelled_pixels']):.0f} | "
              f"{float(row['miou_round0']):.3f} | {float(row['miou_final']):.3f} |")
    print("\nTest mIoU per round:\n")
    print("| experiment | " + " | ".join(str(r) for r in range(args.round + 1)) + " |")
    print("|---|" + "---:|" * (args.round + 1))
    for row in rows:
        with open(workdir / "results" / row["experiment"] / "learning_curve.csv", newline="") as handle:
            curve = list(csv.DictReader(handle))
        print(f"| {row['experiment']} | " + " | ".join(f"{float(r['miou']):.3f}" for r in curve) + " |")
    if not args.keep:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
