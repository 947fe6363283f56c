"""Audit a run: every round of every experiment, then the comparison tables (docs/audit.md)."""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alseg.audit.files import Experiment, Finding, read_json
from alseg.audit.models import check_model_files
from alseg.audit.rounds import (
    ExperimentState,
    RoundSummary,
    check_answers,
    check_asked_once,
    check_digest,
    check_human,
    check_metrics,
    check_queries,
    check_replay,
    check_scored_by,
    check_simulated,
    round_job,
    summarise,
)
from alseg.audit.tables import check_comparison, check_learning_curve
from alseg.data import dataset_info


@dataclass
class AuditReport:
    """What an audit found (``findings``: each a disagreement), what it could not check (``notes``), one
    :class:`~alseg.audit.rounds.RoundSummary` per round, and the items each round asked (for ``--compare``)."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summaries: list[RoundSummary] = field(default_factory=list)
    items: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)


def audit_run(config: dict[str, Any], experiments: Sequence[Experiment], with_models: bool = False,
              progress: Callable[[str], None] | None = None) -> AuditReport:
    """Audit ``experiments`` (:func:`alseg.audit.files.run_experiments`) and, when every compared experiment
    is among them, the comparison tables. ``with_models``: also recompute the training digests that need a
    model (imports torch)."""
    report = AuditReport()
    curves = {}
    for exp in experiments:
        start = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):  # the replayed steps' own progress lines
            curve = audit_experiment(exp, report, with_models)
        if curve is not None:
            curves[exp.name] = curve
        if progress:
            progress(f"{exp.name}: {len(exp.rounds)} rounds audited in {time.perf_counter() - start:.1f} s")
    if set(config["compare"]) <= set(curves):
        check_comparison(Path(config["results"]), {name: curves[name] for name in config["compare"]}, config,
                         report.findings)
    elif experiments:
        report.notes.append("comparison tables not checked: not every compared experiment was audited")
    return report


def audit_experiment(exp: Experiment, report: AuditReport, with_models: bool = False) -> list[dict[str, Any]] | None:
    """Audit every round of ``exp`` into ``report``; return its learning curve as read (None: none).

    Files that a last round has not written yet (a round waiting for a person's answers, or still
    running) are notes, not findings."""
    state = ExperimentState()
    classes = list(dataset_info(exp.dataset).classes)
    metrics: dict[int, dict[str, Any]] = {}
    for expected, r in enumerate(exp.rounds):
        if expected != r:
            report.findings.append(Finding(exp.file(expected, ""), "", f"missing, but round {r} exists"))
        found: list[Finding] = []
        summary = _audit_round(exp, r, classes, state, with_models, found)
        report.summaries.append(summary)
        if r == exp.rounds[-1]:
            waiting = [f for f in found if f.message == "missing" and not f.where]
            if waiting:
                report.notes.append(f"{exp.name} round {r}: not finished ({', '.join(f.file.name for f in waiting)} "
                                    "not written yet); the rest of the round is audited")
                found = [f for f in found if f not in waiting]
        report.findings += found
        if (m := read_json(exp.file(r, "metrics.json"), [])) is not None:
            metrics[r] = m
    report.notes += state.notes
    if state.unchecked_digests:
        report.notes.append(f"{exp.name} rounds {_ranges(state.unchecked_digests)}: training_digest not "
                            "checked (the training targets need the previous round's model; --with-models checks "
                            "them)")
    report.items[exp.name] = state.items
    return check_learning_curve(exp, metrics, report.findings)


def _audit_round(exp: Experiment, r: int, classes: list[str], state: ExperimentState, with_models: bool,
                 found: list[Finding]) -> RoundSummary:
    table = check_queries(exp.file(r, "queries.csv"), r, found)
    given = check_answers(exp.file(r, "answers.csv"), table, classes, found) if table is not None else None
    job = round_job(exp, r)
    scored_by = check_scored_by(exp, r, table, state, found) if table is not None else ""
    if table is not None and given is not None:
        check_asked_once(exp, job, table, given, state, found)
        if exp.settings["oracle"]["kind"] != "human":
            check_simulated(exp, r, table, given, found)
    check_replay(exp, job, table, given, state, found)
    if exp.settings["oracle"]["kind"] == "human" and table is not None and given is not None:
        check_human(exp, r, table, found)
    model = check_model_files(exp, r, found)
    check_digest(exp, r, with_models, found, state.unchecked_digests)
    store = state.store if state.replayable else None
    miou = check_metrics(exp, r, model, store, found)
    state.previous_model = model
    summary = summarise(exp, r, table, given, store)
    summary.scored_by, summary.model, summary.miou = scored_by, model or "", miou
    return summary


def _ranges(rounds: Sequence[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``1-3, 5``."""
    spans: list[list[int]] = []
    for r in rounds:
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def print_progress(message: str) -> None:
    print(f"alseg audit: {message}", file=sys.stderr, flush=True)
