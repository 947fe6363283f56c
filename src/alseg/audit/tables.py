"""The tables a run's reports are built from agree with its rounds: each ``learning_curve.csv`` with the
rounds' ``metrics.json``, and the comparison tables with the learning curves."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from alseg.audit.files import Experiment, Finding, differing_keys
from alseg.report import (
    comparison_round_rows,
    comparison_rows,
    curve_rows,
    dataset_tables,
    per_class_paths,
    read_rows,
)

Rows = Sequence[Mapping[str, Any]]


def check_learning_curve(exp: Experiment, metrics: Mapping[int, Mapping[str, Any]],
                         findings: list[Finding]) -> list[dict[str, Any]] | None:
    """Every row of the experiment's ``learning_curve.csv`` is its round's ``metrics.json`` (and no round
    is left out). Returns the curve as read, or None when there is none."""
    path = exp.folder / "learning_curve.csv"
    if not path.is_file():
        return None
    curve = read_rows(path)
    _compare_rows(path, curve, curve_rows([metrics[r] for r in sorted(metrics)]), lambda row: row.get("round"),
                  "round", findings)
    return curve


def check_comparison(results: Path, curves: Mapping[str, Rows], config: Mapping[str, Any],
                     findings: list[Finding]) -> None:
    """``comparison.csv``, ``comparison_rounds.csv`` and the per-class tables are what the learning curves of
    the compared experiments give (:mod:`alseg.report`)."""
    groups = {name: config["experiments"][name]["group"] for name in curves}
    datasets = {name: config["experiments"][name]["dataset"] for name in curves}
    tables: list[tuple[str, Callable[[], list[dict[str, Any]]], Callable[[Mapping[str, Any]], Any], str]] = [
        ("comparison.csv", lambda: comparison_rows(curves, datasets), lambda row: row.get("experiment"),
         "experiment"),
        ("comparison_rounds.csv",
         lambda: comparison_round_rows(dataset_tables(curves, groups, config["references"], datasets)),
         lambda row: (row.get("dataset"), row.get("group"), row.get("round")), "dataset, group and round"),
    ]
    for name, build, key, key_name in tables:
        path = results / name
        if path.is_file():
            _compare_rows(path, read_rows(path), build(), key, key_name, findings)
    per_dataset = dataset_tables(curves, groups, config["references"], datasets)
    paths = per_class_paths(str(results), list(per_dataset))
    for path, (_, classes) in zip(map(Path, paths), per_dataset.values()):
        if path.is_file():
            _compare_rows(path, read_rows(path), classes, lambda row: row.get("group"), "group", findings)


def _compare_rows(path: Path, found: Rows, expected: Rows, key: Callable[[Mapping[str, Any]], Any], key_name: str,
                  findings: list[Finding]) -> None:
    missing = [column for column in (expected[0] if expected else {}) if found and column not in found[0]]
    if missing:
        findings.append(Finding(path, "", f"lacks the column(s) {', '.join(missing)} that alseg.report writes "
                                          "(written by another alseg version? rerun the comparison: "
                                          "snakemake --forcerun compare)"))
        return
    by_key = {_normal(key(row)): row for row in expected}
    seen = set()
    for line, row in enumerate(found, start=2):
        k = _normal(key(row))
        seen.add(k)
        if k not in by_key:
            findings.append(Finding(path, f"line {line}", f"{key_name} {k} is in no round's files"))
            continue
        findings += [Finding(path, f"line {line}", text) for text in differing_keys(by_key[k], row)]
    for k in by_key:
        if k not in seen:
            findings.append(Finding(path, "", f"has no row for {key_name} {k}"))


def _normal(key: Any) -> Any:
    """A key as read from a CSV (numbers as floats) and as built (ints) compares equal."""
    if isinstance(key, tuple):
        return tuple(_normal(k) for k in key)
    return int(key) if isinstance(key, float) and key.is_integer() else key
