"""The finished experiments of a benchmark's run, reported while the run goes on (``camvid.py --report-only``).

An experiment is finished when every one of its rounds has been evaluated (``evaluation.json``). Its round
folders are linked, file by file, into a results folder of their own (``<out>/interim/results``); the
round's ``metrics.json`` is computed there where the workflow has not written it yet, then the learning
curves and the comparison's files (:func:`alseg.report.write_comparison`). Nothing is written in the run's
own results folder, so a workflow running there is not disturbed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from alseg.config import experiment_last_round
from alseg.plan import metrics_description
from alseg.report import (
    compared_datasets,
    comparison_files,
    curve_rows,
    read_metrics,
    read_rows,
    write_comparison,
    write_rows,
)
from alseg.steps import write_metrics


def _link_rounds(source: Path, target: Path, rounds: range, name: str, cfg: dict[str, Any]) -> list[Path]:
    """Link the round folders' files of one experiment; its ``metrics.json`` paths (computed where missing)."""
    paths = []
    for r in rounds:
        folder = target / f"round_{r}"
        folder.mkdir(parents=True)
        for item in (source / f"round_{r}").iterdir():
            os.symlink(item.resolve(), folder / item.name)
        metrics = folder / "metrics.json"
        if not metrics.exists():
            write_metrics(folder / "evaluation.json", folder / "labels.npz", name, metrics_description(cfg, name),
                          metrics)
        paths.append(metrics)
    return paths


def finished_results(run: Path, cfg: dict[str, Any], out: Path) -> tuple[dict[str, Any], list[str]]:
    """Set up ``out/results`` from the finished experiments of ``cfg`` (resolved) in ``run/<results>``.

    Returns ``cfg`` restricted to them, and the names of the unfinished ones."""
    shutil.rmtree(out, ignore_errors=True)
    results = out / "results"
    finished, unfinished = [], []
    for name, experiment in cfg["experiments"].items():
        source = run / cfg["results"] / name
        rounds = range(experiment_last_round(cfg["round"], experiment) + 1)
        if not all((source / f"round_{r}" / "evaluation.json").is_file() for r in rounds):
            unfinished.append(name)
            continue
        finished.append(name)
        metrics = _link_rounds(source, results / name, rounds, name, cfg)
        write_rows(results / name / "learning_curve.csv", curve_rows(read_metrics(metrics)))
    done = {**cfg, "experiments": {n: e for n, e in cfg["experiments"].items() if n in finished},
            "compare": [n for n in cfg["compare"] if n in finished]}
    if done["compare"]:
        datasets = {n: done["experiments"][n]["dataset"] for n in done["compare"]}
        curves = {n: read_rows(results / n / "learning_curve.csv") for n in done["compare"]}
        write_comparison(curves, comparison_files(str(results), compared_datasets(done["compare"], datasets)),
                         {n: done["experiments"][n]["group"] for n in done["compare"]}, cfg["references"], datasets)
    return done, unfinished
