"""Answers against their queries: every problem of an answer file, named by its row, before anything uses it.

Answers from any source (the simulated annotator, the annotation page, a Label Studio export, a
hand-edited file) go through :func:`answer_problems`; whether an answer is valid for its query is the
query unit's call (:meth:`alseg.units.base.QueryUnit.answer_problem`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from alseg.queries import ANSWER_COLUMNS, SKIP, SOURCES, AnswerFileError, Table, read_rows
from alseg.units import unit_of_row

#: At most this many problems are listed in an :class:`AnswerFileError` (then a count of the rest).
MAX_REPORTED_PROBLEMS = 20
_LISTED_IDS = 5  # ids named in a summary line (unknown or missing ids)


def answer_problems(
    rows: Sequence[Mapping[str, str]],
    queries: Mapping[str, np.ndarray],
    classes: int | Sequence[str],
    *,
    where: Sequence[str] | None = None,
) -> list[str]:
    """Every problem of a set of answer rows against the round's queries, each naming its row.

    Parameters
    ----------
    rows : sequence of mappings of str to str
        Answer rows with the :data:`ANSWER_COLUMNS` as keys (cells as strings, as in the CSV).
    queries : mapping of str to ndarray
        The round's query table (at least ``query_id`` and ``unit``).
    classes : int or sequence of str
        The dataset's number of classes, or its class names (then named in the messages).
    where : sequence of str, optional
        How to name each row in a message (for example ``"task 7"``); default ``"line <n>"`` with
        the header on line 1.

    Returns
    -------
    list of str
        One line per problem, in row order, then the unknown and the missing query ids; empty when
        the answers are valid: every query answered exactly once, as its unit answers it (a class id,
        ``yes``/``no``, ... :meth:`alseg.units.base.QueryUnit.answer_problem`) or ``skip``; source
        ``oracle`` or ``human``; ``seconds`` and ``clicks`` empty or finite numbers >= 0.
    """
    num_classes = classes if isinstance(classes, int) else len(classes)
    range_text = class_range(classes)
    where = list(where) if where is not None else [f"line {i}" for i in range(2, len(rows) + 2)]
    unit_of = dict(zip(queries["query_id"], queries["unit"]))
    problems: list[str] = []
    first_seen: dict[str, str] = {}
    unknown: list[str] = []
    for row, at in zip(rows, where):
        qid = (row.get("query_id") or "").strip()
        if not qid:
            problems.append(f"{at}: empty query_id")
            continue
        if qid in first_seen:
            problems.append(f"{at}: duplicate answer for query {qid!r} (first answered on {first_seen[qid]})")
            continue
        first_seen[qid] = at
        if qid not in unit_of:
            unknown.append(f"{at} {qid!r}")
            continue
        unit = str(unit_of[qid])
        problem = _answer_problem((row.get("answer") or "").strip(), unit, num_classes, range_text)
        if problem:
            problems.append(f"{at}: query {qid!r} ({unit}): {problem}")
        source = row.get("source", "")
        if source not in SOURCES:
            problems.append(f"{at}: source {source!r} is not one of {', '.join(SOURCES)}")
        for cost in ("seconds", "clicks"):
            if not _is_cost(row.get(cost, "")):
                problems.append(f"{at}: {cost} {row.get(cost, '')!r} is not a number >= 0")
    if unknown:
        problems.append(
            f"{len(unknown)} answers for unknown query ids (not among the {len(unit_of)} queries): "
            + _listed(unknown)
        )
    missing = [repr(str(q)) for q in unit_of if q not in first_seen]
    if missing:
        problems.append(f"{len(missing)} queries have no answer: " + _listed(missing))
    return problems


def validate_answers(
    rows: Sequence[Mapping[str, str]],
    queries: Mapping[str, np.ndarray],
    classes: int | Sequence[str],
    *,
    origin: str | os.PathLike[str],
    where: Sequence[str] | None = None,
) -> None:
    """Raise :class:`AnswerFileError` naming ``origin`` and listing every problem of ``rows``.

    The checks are those of :func:`answer_problems`; answers from any source (the annotation page,
    a Label Studio export, a hand-edited file) go through them before anything uses them.

    Raises
    ------
    AnswerFileError
        With the first :data:`MAX_REPORTED_PROBLEMS` problems, each naming its row.
    """
    problems = answer_problems(rows, queries, classes, where=where)
    if problems:
        raise AnswerFileError(format_problems(origin, problems))


def format_problems(origin: str | os.PathLike[str], problems: Sequence[str]) -> str:
    """The message of an :class:`AnswerFileError`: the file, the count, then one problem a line."""
    shown = list(problems[:MAX_REPORTED_PROBLEMS])
    if len(problems) > MAX_REPORTED_PROBLEMS:
        shown.append(f"... and {len(problems) - MAX_REPORTED_PROBLEMS} more")
    count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
    return (
        f"{origin}: invalid answers ({count}); nothing was used, fix the file and rerun:\n  - "
        + "\n  - ".join(shown)
    )


def _answer_problem(answer: str, unit: str, num_classes: int, class_range: str) -> str | None:
    """Why ``answer`` does not answer a query of the row unit ``unit``, or None if it does."""
    if answer == SKIP:
        return None
    query_unit = unit_of_row(unit)
    if answer == "":
        return f"empty answer (expected {query_unit.answer_hint(class_range)} or skip)"
    return query_unit.answer_problem(answer, num_classes, class_range)


def class_range(classes: int | Sequence[str]) -> str:
    num = classes if isinstance(classes, int) else len(classes)
    text = f"0..{num - 1}" if num > 0 else "none: the dataset has no classes"
    if not isinstance(classes, int) and 0 < num <= 12:
        text += ": " + ", ".join(f"{i} {name}" for i, name in enumerate(classes))
    return text


def _is_cost(cell: str | None) -> bool:
    if cell is None or cell.strip() == "":
        return True  # not measured
    try:
        value = float(cell)
    except ValueError:
        return False
    return math.isfinite(value) and value >= 0


def _listed(items: Sequence[str]) -> str:
    more = f", ... ({len(items) - _LISTED_IDS} more)" if len(items) > _LISTED_IDS else ""
    return ", ".join(items[:_LISTED_IDS]) + more


def read_answers(
    path: str | os.PathLike[str],
    queries: Table,
    num_classes: int | Sequence[str],
    *,
    empty_cost: float = 0.0,
) -> Table:
    """Read and validate an ``answers.csv`` against the round's ``queries``.

    Every query must have exactly one answer, valid for its unit (see :func:`answer_problems`). Returns a table with ``query_id``, ``answer`` (as written), ``source``,
    ``annotator``, ``seconds``, ``clicks`` (empty costs, not measured, read as ``empty_cost``), in the
    order of ``queries``.

    Parameters
    ----------
    num_classes : int or sequence of str
        The dataset's number of classes, or its class names (named in the error messages).

    Raises
    ------
    AnswerFileError
        Naming the file and every problem found (with line numbers): unknown or missing query ids,
        duplicates, answers that are not valid for the query's unit, bad sources or costs.
    """
    path = Path(path)
    rows = read_rows(path, ANSWER_COLUMNS)
    validate_answers(rows, queries, num_classes, origin=path)
    by_id = {r["query_id"].strip(): r for r in rows}
    ordered = [by_id[q] for q in queries["query_id"]]
    return {
        "query_id": np.array([r["query_id"].strip() for r in ordered], dtype=object),
        "answer": np.array([r["answer"].strip() for r in ordered], dtype=object),
        "source": np.array([r["source"] for r in ordered], dtype=object),
        "annotator": np.array([r["annotator"] for r in ordered], dtype=object),
        "seconds": np.array([float((r["seconds"] or "").strip() or empty_cost) for r in ordered], dtype=np.float64),
        "clicks": np.array([float((r["clicks"] or "").strip() or empty_cost) for r in ordered], dtype=np.float64),
    }
