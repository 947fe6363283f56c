"""The bookkeeping steps of a round, one function per rule: read the step's files, ask the unit, write.

``scripts/*.py`` call these with paths from the ``snakemake`` object; tests call them directly. They are
the same for every query unit: selection asks the experiment's unit (:mod:`alseg.units`), answers and
labels ask the unit of each query row. Nothing here imports torch (the model's steps:
:mod:`alseg.model_job`).

Files a step reads come as keyword arguments named as the rules name them: ``labels`` (round r-1's
store), ``inference`` (round r-1's dump), the unit's dataset-level files (``superpixels``) and side files
(``regions``; an output of selection, an input of the later steps).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from alseg.answers import read_answers
from alseg.atomic import write_json_atomic
from alseg.joblog import log
from alseg.labels import LabelStore, load_labels, record_round_cost, round_cost_source, save_labels
from alseg.queries import ANSWER_COLUMNS, QUERY_COLUMNS, Table, answer_table, read_queries, table_rows, write_table
from alseg.seeds import step_rng
from alseg.units import Job, labelled_pixels, unit_named, unit_of_row

PathLike = str | os.PathLike[str]


def select_queries(dataset: PathLike, settings: Mapping[str, Any], round_index: int, out: PathLike,
                   **files: PathLike | None) -> int:
    """Write round ``round_index``'s ``queries.csv`` (and the unit's side files); return the number of queries.

    ``settings`` are the experiment settings the unit's selection reads
    (:meth:`~alseg.units.base.QueryUnit.select_settings`).
    """
    unit = unit_named(settings["unit"])
    table = unit.select(Job(dataset, settings, round_index, files))
    write_table(out, table, QUERY_COLUMNS)
    log(f"round {round_index}: {len(table['query_id'])} queries -> {out}")
    return len(table["query_id"])


def _row_groups(table: Table) -> list[tuple[Any, np.ndarray]]:
    """(unit, boolean rows) of each row unit of a query table, in the order they first appear."""
    units = np.asarray(table["unit"])
    return [(unit_of_row(name), units == name) for name in dict.fromkeys(units.tolist())]


def answer_queries(dataset: PathLike, queries: PathLike, settings: Mapping[str, Any], round_index: int,
                   out: PathLike, human: PathLike | None = None, **files: PathLike | None) -> None:
    """Answer ``queries`` into ``answers.csv``: the simulated annotator, or a person's checked answers.

    Simulated (``oracle.kind`` other than ``human``): each query row's unit answers from the ground truth
    (``oracle.error_rate`` mistakes, one generator per round) and its answers are paid the configured
    ``costs``. Human: a person's ``human_answers.csv`` (``human``; None while it does not exist) is
    validated and copied (:func:`alseg.human.accept_human_answers`).
    """
    table = read_queries(queries)
    if settings.get("oracle", {}).get("kind") == "human":
        from alseg.human import accept_human_answers

        regions = [files.get(unit.region_resource) for unit, _ in _row_groups(table) if unit.region_resource]
        accept_human_answers(dataset, queries, out, human=human, regions=next(iter(regions), None))
        return
    answers, summaries = simulated_answers(Job(dataset, settings, round_index, files), table)
    write_table(out, answers, ANSWER_COLUMNS)
    log(f"round {round_index}: answered {'; '.join(summaries) or 'no queries'}; "
        f"{answers['seconds'].sum() / 3600:.3f} h -> {out}")


def simulated_answers(job: Job, table: Table) -> tuple[Table, list[str]]:
    """The simulated annotator's answer table for the queries ``table`` and a summary per row unit.

    ``job.settings``: the seed, ``oracle`` (its error rate) and the ``costs`` of the units asked. Each
    query row's unit answers from the ground truth, with one generator per round, and its answers are
    paid the configured costs.
    """
    rng = step_rng(int(job.settings["seed"]), job.round_index, "oracle")
    q = len(table["query_id"])
    answer, clicks, seconds = np.empty(q, dtype=object), np.zeros(q), np.zeros(q)
    summaries = []
    for unit, rows in _row_groups(table):
        given = unit.answer(job, table_rows(table, rows), rng)
        answer[rows] = given.answer
        clicks[rows], seconds[rows] = unit.answer_cost(given.answer, job.settings["costs"], job.info.num_classes)
        summaries.append(f"{int(rows.sum())} {unit.row_unit} ({given.summary})")
    return answer_table(table["query_id"], answer, seconds, clicks), summaries


def update_labels(dataset: PathLike, queries: PathLike, answers: PathLike, round_index: int, out: PathLike,
                  previous: PathLike | None = None, costs: Mapping[str, Mapping[str, Any]] | None = None,
                  **files: PathLike | None) -> None:
    """Add round ``round_index``'s answers to the previous store and write the cumulative store
    (:func:`add_round`)."""
    job = Job(dataset, {"costs": costs or {}}, round_index, files)
    table = read_queries(queries)
    given = read_answers(answers, table, list(job.info.classes), empty_cost=np.nan)
    store, measured = add_round(load_labels(previous) if previous is not None else None, job, table, given)
    save_labels(out, store)
    log(f"round {round_index}: {labelled_pixels(store)} labelled pixels, {store.clicks:.0f} clicks, "
        f"{store.seconds / 3600:.3f} h so far (cost {store.cost_source}: {measured} of {len(table['query_id'])} "
        f"answers with measured seconds) -> {out}")


def add_round(earlier: LabelStore | None, job: Job, table: Table, given: Table) -> tuple[LabelStore, int]:
    """The store after round ``job.round_index``: ``earlier`` (None before round 0) with the round's answers.

    Each query row's unit adds its answers (``given``, read with empty costs as NaN); then the round is
    paid what its answers cost: their own ``clicks`` and ``seconds`` where given, and the configured
    estimate of their unit (``job.settings["costs"]``) where a person's file leaves them empty. The round's
    cost source is recorded: measured when every answer is a person's with its seconds, estimated when none
    is, mixed otherwise (:func:`alseg.labels.round_cost_source`). Returns the store and the number of
    answers with measured seconds.
    """
    costs = job.settings.get("costs", {})
    store = earlier if earlier is not None else LabelStore()
    clicks, seconds = given["clicks"].copy(), given["seconds"].copy()
    for unit, rows in _row_groups(table):
        store = unit.add_answers(store, job, table_rows(table, rows), given["answer"][rows])
        unpaid = rows & (np.isnan(clicks) | np.isnan(seconds))
        if unpaid.any():
            estimate = unit.answer_cost(given["answer"][unpaid], costs, job.info.num_classes)
            clicks[unpaid] = np.where(np.isnan(clicks[unpaid]), estimate[0], clicks[unpaid])
            seconds[unpaid] = np.where(np.isnan(seconds[unpaid]), estimate[1], seconds[unpaid])
    measured = int(((given["source"] == "human") & ~np.isnan(given["seconds"])).sum())
    source = round_cost_source(measured, len(seconds))
    store = record_round_cost(store, job.round_index, source, earlier=earlier, clicks=float(clicks.sum()),
                              seconds=float(seconds.sum()))
    return store, measured


def write_metrics(evaluation: PathLike, labels: PathLike, experiment: str, description: Mapping[str, Any],
                  out: PathLike) -> dict[str, Any]:
    """Write ``metrics.json``: the model's scores on the test split (``evaluation``), what its labels cost
    (the store ``labels``), and the experiment's name and ``description`` (``unit``, ``strategy``).

    A step of its own, so that a setting that only names an experiment (its ``strategy`` in round 0, whose
    queries are random whatever it is) relabels the round without retraining its model.
    """
    scores = json.loads(Path(evaluation).read_text(encoding="utf-8"))
    store = load_labels(labels)
    metrics = {
        **scores,
        "experiment": experiment,
        "labelled_pixels": labelled_pixels(store),
        "clicks": store.clicks,
        "seconds": store.seconds,
        "hours": store.seconds / 3600.0,
        "cost_source": store.cost_source,
        **{key: description[key] for key in ("unit", "strategy")},
    }
    write_json_atomic(out, metrics)
    log(f"round {metrics['round']}: {metrics['split']} mIoU {metrics['miou']:.4f}, {metrics['labelled_pixels']} "
        f"labelled pixels, {store.clicks:.0f} clicks, {metrics['hours']:.3f} h ({store.cost_source}) -> {out}")
    return metrics
