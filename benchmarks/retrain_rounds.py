"""Retrain rounds of a finished run with other training settings, on the same labels; print test mIoU.

How the default schedule was chosen (BENCHMARKS.md, section 1): keep a default run
(``python benchmarks/default_run.py --keep DIR``), then retrain, say, rounds 9 and 10 of margin and random
with 40, 60 or 80 epochs and compare. Each retraining uses the round's own ``labels.npz`` and training
seed, one torch thread, and runs two at a time.

Usage::

    python benchmarks/retrain_rounds.py DIR/results --experiments pixel_margin pixel_random --rounds 9 10 \\
        --variant e40 '{}' --variant e60 '{"epochs": 60, "milestones": [45]}'
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def retrain(results: Path, experiment: str, round_index: int, override: dict, out: Path) -> dict:
    """Train round ``round_index`` of ``experiment`` again with ``override`` merged into its training."""
    from alseg import model_job, plan
    from alseg.config import deep_merge, resolve_config

    model_job.limit_threads(1)
    workdir = results.parent
    config = resolve_config(yaml.safe_load((workdir / "config.yaml").read_text()))
    settings = deep_merge(plan.train_settings(config, experiment, round_index), {"training": override})
    files = {name: workdir / path for name, path in plan.train_inputs(config, experiment, round_index).items()
             if not name.startswith("twin_")}  # retrain: never copy a twin's model
    dataset, labels = files.pop("dataset"), files.pop("labels")
    started = time.perf_counter()
    model_job.train(dataset, labels, settings, round_index, out / "model.pt", out / "train_log.json", **files)
    scores = model_job.evaluate(dataset, out / "model.pt", settings, round_index, out / "evaluation.json")
    log = json.loads((out / "train_log.json").read_text())
    return {"miou": scores["miou"], "best_epoch": log["best_epoch"], "last_loss": log["history"][-1]["loss"],
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="the results folder of a finished run (its config.yaml next to it)")
    parser.add_argument("--experiments", nargs="+", required=True)
    parser.add_argument("--rounds", type=int, nargs="+", required=True)
    parser.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), required=True,
                        help="a name and the training settings it changes, as JSON")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        experiment, round_index, override, out = args.worker
        print(json.dumps(retrain(args.results, experiment, int(round_index), json.loads(override), Path(out))))
        return
    runs = [(e, r, name, spec) for name, spec in args.variant for e in args.experiments for r in args.rounds]

    def run(job: tuple[str, int, str, str]) -> tuple[tuple[str, int, str, str], dict]:
        experiment, round_index, _, spec = job
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, __file__, str(args.results), "--experiments", experiment, "--rounds",
                   str(round_index), "--variant", "-", "{}", "--worker", experiment, str(round_index), spec, out]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"{job} failed:\n{done.stderr[-3000:]}")
        return job, json.loads(done.stdout.strip().splitlines()[-1])

    print("| variant | experiment | round | test mIoU | best epoch | last loss | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|")
    with ThreadPoolExecutor(args.jobs) as pool:
        for (experiment, round_index, name, _), result in pool.map(run, runs):
            print(f"| {name} | {experiment} | {round_index} | {result['miou']:.3f} | {result['best_epoch']} | "
                  f"{result['last_loss']:.2f} | {result['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
