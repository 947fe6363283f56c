"""The finished experiments of a benchmark's run, reported while the run goes on (``camvid.py --report-only``).

An experiment is finished when every one of its rounds has been evaluated (``evaluation.json``). Its round
folders are linked, file by file, into a results folder of their own (``<out>/interim/results``); the
round's ``metrics.json`` is computed there where the workflow has not written it yet, then the learning
curves and the comparison's files (:func:`alseg.report.write_comparison`). Nothing is written in the run's
own results folder, so a workflow running there is not disturbed.

A protocol longer than a session whose machine does not outlive it runs in chunks of whole experiments:
:func:`keep_finished` copies the small files of each finished experiment's rounds (scores, metrics, train
records, job logs) into a folder of the repository (``camvid.py --keep``), and a later report reads them
beside the run's own (:func:`finished_results` takes several run folders). Models, queries and labels stay
behind: a kept experiment can be reported, not resumed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
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


def _write_missing_metrics(round_folder: Path, metrics: Path, name: str, cfg: dict[str, Any]) -> None:
    """Compute ``metrics`` from the round folder's scores and labels, as the metrics step would, if absent."""
    if not metrics.exists():
        write_metrics(round_folder / "evaluation.json", round_folder / "labels.npz", name,
                      metrics_description(cfg, name), metrics)


def _link_rounds(source: Path, target: Path, rounds: range, name: str, cfg: dict[str, Any]) -> list[Path]:
    """Link the round folders' files of one experiment; its ``metrics.json`` paths (computed where missing)."""
    paths = []
    for r in rounds:
        folder = target / f"round_{r}"
        folder.mkdir(parents=True)
        for item in (source / f"round_{r}").iterdir():
            os.symlink(item.resolve(), folder / item.name)
        _write_missing_metrics(folder, folder / "metrics.json", name, cfg)
        paths.append(folder / "metrics.json")
    return paths


KEPT_FILES = ("evaluation.json", "metrics.json", "train_log.json")  # and logs/*.log: each job's timing


def _rounds(cfg: dict[str, Any], name: str) -> range:
    return range(experiment_last_round(cfg["round"], cfg["experiments"][name]) + 1)


def _finished(source: Path, rounds: range) -> bool:
    return all((source / f"round_{r}" / "evaluation.json").is_file() for r in rounds)


def keep_finished(run: Path, cfg: dict[str, Any], store: Path) -> tuple[list[str], list[str]]:
    """Copy the small files of the finished experiments of ``cfg`` (resolved) in ``run/<results>`` into
    ``store/<results>``: per round ``evaluation.json``, ``metrics.json`` (computed where the workflow has
    not written it yet), ``train_log.json`` and ``logs/*.log``.

    An experiment already in ``store`` is never overwritten (its results came from another chunk; delete
    its folder to keep it anew). Returns the names kept now and those already kept."""
    kept, already = [], []
    for name in cfg["experiments"]:
        source, target, rounds = run / cfg["results"] / name, store / cfg["results"] / name, _rounds(cfg, name)
        if not _finished(source, rounds):
            continue
        if target.exists():
            already.append(name)
            continue
        staging = target.with_name(f".{name}.partial")  # a copy cut short is never mistaken for a kept one
        shutil.rmtree(staging, ignore_errors=True)
        for r in rounds:
            folder, into = source / f"round_{r}", staging / f"round_{r}"
            (into / "logs").mkdir(parents=True)
            for item in KEPT_FILES:
                if (folder / item).is_file():
                    shutil.copy2(folder / item, into / item)
            _write_missing_metrics(folder, into / "metrics.json", name, cfg)
            for log in (folder / "logs").glob("*.log"):
                shutil.copy2(log, into / "logs" / log.name)
        staging.rename(target)
        kept.append(name)
    return kept, already


def finished_results(runs: Sequence[Path], cfg: dict[str, Any], out: Path) -> tuple[dict[str, Any], list[str]]:
    """Set up ``out/results`` from the finished experiments of ``cfg`` (resolved) in ``run/<results>`` for
    the first of ``runs`` that has each finished (a run folder, or a store of :func:`keep_finished`).

    Returns ``cfg`` restricted to them, and the names of the unfinished ones."""
    shutil.rmtree(out, ignore_errors=True)
    results = out / "results"
    finished, unfinished = [], []
    for name in cfg["experiments"]:
        rounds = _rounds(cfg, name)
        source = next((s for s in (run / cfg["results"] / name for run in runs) if _finished(s, rounds)), None)
        if source is None:
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
