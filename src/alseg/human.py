"""The human oracle: a person answers a round's queries, and the workflow waits for the answers.

For an experiment with ``oracle: {kind: human}``, round r's questions are ``round_<r>/queries.csv``
and the person's answers go to ``round_<r>/human_answers.csv`` beside them (``alseg annotate ... --out``,
or ``alseg import-labelstudio ... --out``). No rule produces that file, so Snakemake never deletes or
regenerates it. The ``answer_queries`` step (:func:`accept_human_answers`) validates it against the
queries and the dataset's classes and copies it, atomically, to ``answers.csv``, the file every later
step reads; without it the step stops with the commands that answer the round.

Safeguards, so that a person's work is never lost or applied to the wrong questions:

- :func:`human_answers_input` (the rule's input function) stops the run before any job when
  ``answers.csv`` holds a person's answers but ``human_answers.csv`` is missing (answers written to the
  workflow's own file, or the person's file moved away): Snakemake would delete that ``answers.csv``
  when it reruns the step.
- Answers stay bound to the queries they answer. The first time a ``human_answers.csv`` is accepted,
  the checksum of ``queries.csv`` (and what identifies the pool) is recorded in
  ``human_answers.accepted.json``; if the queries change later, the answers are refused, with what
  to do, instead of being applied to other questions. Before that first acceptance, the annotation
  page's progress file (its checksum of ``queries.csv``) or else the file times decide.
- The rules keep an answered round's queries: once ``human_answers.csv`` exists, ``select_queries``
  of that round reads its inputs as ``ancient`` and no code version, so retraining earlier rounds
  (an edited earlier answer, a code update) does not choose new queries that nobody answered.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alseg.answers import answer_problems, format_problems
from alseg.queries import ANSWER_COLUMNS, AnswerFileError, read_queries, read_rows, rows_table, write_table

PathLike = str | os.PathLike[str]

#: The person's answers of a round, next to its ``queries.csv``.
HUMAN_ANSWERS = "human_answers.csv"
ACCEPTED_FORMAT = "alseg-human-answers-accepted/1"


class HumanAnswersError(ValueError):
    """A human round cannot go on yet (no answers, or answers to other queries); the message says what to do."""


def human_answers_path(round_dir: PathLike) -> Path:
    """``round_<r>/human_answers.csv``."""
    return Path(round_dir) / HUMAN_ANSWERS


def accepted_path(human: PathLike) -> Path:
    """The acceptance record of a human answers file: ``human_answers.csv`` -> ``human_answers.accepted.json``."""
    human = Path(human)
    return human.with_name(human.stem + ".accepted.json")


def human_answers_input(round_dir: PathLike) -> list[str]:
    """Input function of ``answer_queries`` in a human experiment: ``[human_answers.csv]`` if it exists.

    Raises
    ------
    HumanAnswersError
        If ``answers.csv`` holds a person's answers but ``human_answers.csv`` does not exist: rerunning
        the step would delete them (Snakemake removes a job's outputs before running it).
    """
    human = human_answers_path(round_dir)
    if human.is_file():
        return [str(human)]
    answers = Path(round_dir) / "answers.csv"
    if answers.is_file() and _first_source(answers) == "human":
        raise HumanAnswersError(
            f"{answers} holds a person's answers, but {human} does not exist. In a human experiment the "
            f"person's file is {HUMAN_ANSWERS} (answers.csv is the workflow's validated copy, which it may "
            f"delete and write again). Keep the answers by moving them there:\n"
            f"    mv {answers} {human}\nthen rerun the same snakemake command."
        )
    return []


def _first_source(path: Path) -> str | None:
    """The ``source`` cell of the first answer of an answers file (None if unreadable or empty)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            row = next(csv.DictReader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return (row or {}).get("source")


def answer_commands(
    queries: PathLike, dataset: PathLike, human: PathLike, regions: PathLike | None = None
) -> str:
    """The commands that answer ``queries`` into ``human``, indented, one per line."""
    extra = f" --regions {regions}" if regions else ""
    tasks = Path(human).parent / "labelstudio" / "tasks.json"
    return (
        "  in the browser (keyboard only):\n"
        f"    alseg annotate {queries} --dataset {dataset} --out {human}{extra}\n"
        "  or with Label Studio (docs/annotation.md): export the tasks, label them, export JSON, import:\n"
        f"    alseg export-labelstudio {queries} --dataset {dataset} --out {tasks}{extra}\n"
        f"    alseg import-labelstudio export.json {queries} --dataset {dataset} --out {human}\n"
    )


def accept_human_answers(
    dataset: PathLike,
    queries: PathLike,
    out: PathLike,
    human: PathLike | None = None,
    regions: PathLike | None = None,
) -> int:
    """Validate a person's answers to ``queries`` and copy them to ``out`` (``answers.csv``).

    Parameters
    ----------
    dataset : str or PathLike
        The prepared dataset (its classes and pool).
    queries : str or PathLike
        The round's ``queries.csv``.
    out : str or PathLike
        The round's ``answers.csv``: the answers in the order of ``queries``, with the
        :data:`~alseg.queries.ANSWER_COLUMNS` (``seconds``/``clicks`` as given; empty = not measured).
    human : str or PathLike, optional
        ``human_answers.csv`` as the workflow saw it when it planned the run; None: it did not exist.
    regions : str or PathLike, optional
        Named in the commands of the message (``--regions``) for superpixel queries.

    Returns
    -------
    int
        The number of answers.

    Raises
    ------
    HumanAnswersError
        If there are no answers yet (the message names the file and the commands that answer it), or
        they answer another version of the queries.
    AnswerFileError
        Listing every problem of the answers: nothing is copied.
    """
    from alseg.data import dataset_info

    queries, out = Path(queries), Path(out)
    expected = Path(out).with_name(HUMAN_ANSWERS)
    table = read_queries(queries)
    if human is None:
        experiment, round_name = queries.parent.parent.name, queries.parent.name.replace("_", " ")
        if expected.is_file():
            raise HumanAnswersError(
                f"{expected} appeared after this run was planned; rerun the same snakemake command to use it"
            )
        raise HumanAnswersError(
            f"{round_name} of experiment '{experiment}' waits for a person (oracle: human). Answer the "
            f"{len(table['query_id'])} queries of {queries} into {expected},\n"
            + answer_commands(queries, dataset, expected, regions)
            + "  then rerun the same snakemake command (with --keep-going the other experiments go on meanwhile)."
        )
    human = Path(human)
    pool = _pool_identity(dataset, table, queries)
    _check_same_queries(queries, human, pool, dataset, regions)
    rows = read_rows(human, ANSWER_COLUMNS)
    problems = human_answer_problems(rows, table, list(dataset_info(dataset).classes))
    if problems:
        raise AnswerFileError(format_problems(human, problems))
    cells = accepted_rows(rows, table)
    write_table(out, rows_table(cells), ANSWER_COLUMNS)
    _record_acceptance(queries, human, pool)
    measured = sum(1 for row in cells if row["seconds"])
    annotators = sorted({row["annotator"] for row in cells})
    print(
        f"accepted {len(cells)} answers by {', '.join(annotators)} from {human} ({measured} with measured "
        f"seconds) -> {out}",
        file=sys.stderr,
        flush=True,
    )
    return len(cells)


def accepted_rows(rows: Sequence[Mapping[str, str]], table: Mapping[str, np.ndarray]) -> list[dict[str, str]]:
    """A person's validated answer ``rows`` as ``answers.csv`` holds them: in the order of the queries
    (``table``), the :data:`~alseg.queries.ANSWER_COLUMNS` only, cells stripped."""
    by_id = {row["query_id"].strip(): row for row in rows}
    return [{column: (by_id[qid].get(column) or "").strip() for column in ANSWER_COLUMNS}
            for qid in table["query_id"]]


def human_answer_problems(
    rows: Sequence[Mapping[str, str]], queries: Mapping[str, np.ndarray], classes: Sequence[str]
) -> list[str]:
    """:func:`~alseg.answers.answer_problems`, and every row whose ``source`` is not ``human``."""
    problems = answer_problems(rows, queries, classes)
    for line, row in enumerate(rows, start=2):
        if (row.get("source") or "") == "oracle":
            problems.append(f"line {line}: source 'oracle' in a person's answers file (expected human)")
    return problems


def _pool_identity(dataset: PathLike, table: Mapping[str, np.ndarray], queries: Path) -> dict[str, Any]:
    """What identifies the pool the queries index; raises if a query does not fit it."""
    import h5py

    from alseg.data import DatasetError

    try:
        with h5py.File(dataset, "r") as h5:
            stems = [str(s) for s in h5["train"]["stems"].asstr()[()]]
            height, width = (int(h5.attrs["height"]), int(h5.attrs["width"]))
            classes = json.loads(h5.attrs["classes"])
    except (OSError, KeyError, ValueError) as err:
        raise DatasetError(f"{dataset}: cannot read the pool ({err})") from err
    from alseg.units import unit_of_row

    problems = []
    for index, (qid, image, unit) in enumerate(zip(table["query_id"], table["image_index"], table["unit"])):
        at = f"line {index + 2} ({qid})"
        if not 0 <= image < len(stems):
            problems.append(f"{at}: image_index {image} is not in the pool (0..{len(stems) - 1})")
        elif stems[image] != table["image"][index]:
            problems.append(f"{at}: pool image {image} is {stems[image]!r}, not {table['image'][index]!r}")
        else:
            row = {name: column[index] for name, column in table.items()}
            problem = unit_of_row(unit).query_problem(row, height, width, len(classes))
            if problem:
                problems.append(f"{at}: {problem}")
    if problems:
        raise HumanAnswersError(
            f"{queries} does not fit the pool of {dataset} (was the dataset prepared again with other "
            "images or another size?):\n  - " + "\n  - ".join(problems[:10])
        )
    digest = hashlib.sha256("\n".join(stems).encode()).hexdigest()
    return {"height": height, "width": width, "classes": classes, "stems_sha256": digest}


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise HumanAnswersError(f"{path}: cannot read it ({err}); delete it and rerun") from err
    return data if isinstance(data, dict) else None


def _check_same_queries(
    queries: Path, human: Path, pool: dict[str, Any], dataset: PathLike, regions: PathLike | None
) -> None:
    """Raise :class:`HumanAnswersError` unless ``human`` answers this very ``queries.csv`` on this pool."""
    from alseg.annotate.progress import file_sha256, progress_path_for

    digest = file_sha256(queries)
    accepted = _read_json(accepted_path(human))
    progress = _read_json(progress_path_for(human))
    if accepted is not None:
        if accepted.get("queries_sha256") == digest:
            if accepted.get("pool", pool) != pool:
                raise HumanAnswersError(
                    f"{dataset}: the pool changed since {human} was accepted ({accepted.get('accepted_at')}: "
                    "other images, classes or size); prepare the dataset as it was, or move the round's "
                    "human_answers.* files away and answer its queries again"
                )
            return
        why = f"were chosen again after {human.name} was accepted for them ({accepted.get('accepted_at')})"
    elif progress is not None and progress.get("queries_sha256"):
        if progress["queries_sha256"] == digest:
            return
        why = f"changed after the annotation page began on them ({progress_path_for(human).name})"
    elif human.stat().st_mtime < queries.stat().st_mtime:
        why = (
            f"were written after {human.name}. If it answers exactly these queries (queries.csv was only "
            f"touched), mark it so with\n    touch {human}\nand rerun; otherwise the queries"
            " were chosen again after they were answered"
        )
    else:
        return
    raise HumanAnswersError(
        f"{human} answers another version of {queries}: the queries {why}. Answers are never applied to "
        "other questions. If a setting changed by mistake, undo it (the same settings choose the same "
        f"queries again); else keep the old answers (move {human.parent}/{human.stem}.* away) and answer "
        "the new queries,\n" + answer_commands(queries, dataset, human, regions)
        + "  then rerun the same snakemake command."
    )


def _record_acceptance(queries: Path, human: Path, pool: dict[str, Any]) -> None:
    """Write ``human_answers.accepted.json``: which queries (and pool) the answers were accepted for."""
    from alseg.annotate.progress import file_sha256, now_iso
    from alseg.atomic import write_json_atomic

    path = accepted_path(human)
    digest = file_sha256(queries)
    record = _read_json(path)
    answers_digest = file_sha256(human)
    if record is not None and (record.get("queries_sha256"), record.get("pool"), record.get("answers_sha256")) == (
        digest, pool, answers_digest
    ):
        return
    write_json_atomic(
        path,
        {
            "format": ACCEPTED_FORMAT,
            "queries": queries.name,
            "queries_sha256": digest,
            "answers": human.name,
            "answers_sha256": answers_digest,
            "pool": pool,
            "accepted_at": (record or {}).get("accepted_at") or now_iso(),
        },
    )
