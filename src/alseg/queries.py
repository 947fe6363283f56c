"""``queries.csv`` and ``answers.csv``: the columns of a round's questions and answers, and their checks.

A query table is a dict of equal-length 1-D numpy arrays, one per column (a light, typed stand-in for
a data frame). Columns that do not apply to a unit hold empty cells in the CSV (NaN / -1 / "" here).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from alseg.atomic import atomic_path

#: DESIGN.md section 3, then our additions (``image_index``: position in the pool; ``pixels``: the
#: number of pixels a query covers).
QUERY_COLUMNS = [
    "query_id", "round", "image", "unit", "y", "x", "superpixel", "class",
    "score", "rank", "strategy", "seed", "model", "image_index", "pixels",
]
ANSWER_COLUMNS = ["query_id", "answer", "source", "annotator", "seconds", "clicks"]
#: ``image``: one whole image's mask (the fully supervised reference, :mod:`alseg.steps_full`)
UNITS = ("pixel", "superpixel", "binary", "image")
#: The answer of an ``image`` query: its ground-truth mask was drawn
MASK = "mask"
SOURCES = ("oracle", "human")

Table = dict[str, np.ndarray]


class AnswerFileError(ValueError):
    """An answers file is malformed or does not match its queries; the message names the file."""


def query_ids(round_index: int, count: int) -> np.ndarray:
    """Ids ``r<round>-<n>`` for ``count`` queries of a round: unique across rounds, sortable within one."""
    return np.array([f"r{round_index}-{i:06d}" for i in range(count)], dtype=object)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return str(int(value))
    return str(value)


def write_table(path: str | os.PathLike[str], table: Mapping[str, np.ndarray], columns: list[str]) -> None:
    """Write ``table`` as CSV with ``columns`` in that order, atomically.

    Integer columns use -1 for "does not apply" and float columns NaN; both become empty cells.
    """
    missing = [c for c in columns if c not in table]
    if missing:
        raise KeyError(f"table lacks columns {missing}")
    n = len(table[columns[0]]) if columns else 0
    empty_int = {c for c in columns if np.asarray(table[c]).dtype.kind in "iu"}
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        cols = [np.asarray(table[c]) for c in columns]
        for i in range(n):
            writer.writerow(
                "" if (c in empty_int and col[i] < 0) else _cell(col[i])
                for c, col in zip(columns, cols)
            )


def read_rows(path: str | os.PathLike[str], required: list[str]) -> list[dict[str, str]]:
    """Read a CSV into rows of strings, checking that the ``required`` columns are present."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise AnswerFileError(f"{path}: missing columns {missing} (found {header})")
        return list(reader)


def _int_column(rows: list[dict[str, str]], name: str) -> np.ndarray:
    return np.array([int(r[name]) if r[name] != "" else -1 for r in rows], dtype=np.int64)


def _float_column(rows: list[dict[str, str]], name: str) -> np.ndarray:
    return np.array([float(r[name]) if r[name] != "" else np.nan for r in rows], dtype=np.float64)


def read_queries(path: str | os.PathLike[str]) -> Table:
    """Read a ``queries.csv`` back into a table (integers -1 and floats NaN where cells are empty)."""
    rows = read_rows(path, QUERY_COLUMNS)
    table: Table = {}
    for name in ("query_id", "image", "unit", "strategy", "model"):
        table[name] = np.array([r[name] for r in rows], dtype=object)
    for name in ("round", "y", "x", "superpixel", "class", "rank", "seed", "image_index", "pixels"):
        table[name] = _int_column(rows, name)
    table["score"] = _float_column(rows, "score")
    return table


#: At most this many problems are listed in an :class:`AnswerFileError` (then a count of the rest).
MAX_REPORTED_PROBLEMS = 20
BINARY_ANSWERS = ("yes", "no")
SKIP = "skip"
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
        the answers are valid: every query answered exactly once; pixel and superpixel queries by a
        class id of the dataset (or ``skip``), binary ones by ``yes``/``no`` (or ``skip``); source
        ``oracle`` or ``human``; ``seconds`` and ``clicks`` empty or finite numbers >= 0.
    """
    num_classes = classes if isinstance(classes, int) else len(classes)
    class_range = _class_range(classes)
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
        problem = _answer_problem((row.get("answer") or "").strip(), unit, num_classes, class_range)
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
    """Why ``answer`` does not answer a query of ``unit``, or None if it does."""
    if answer == SKIP:
        return None
    if answer == "":
        expected = "yes, no" if unit == "binary" else f"a class id in {class_range}"
        return f"empty answer (expected {expected} or skip)"
    is_class = answer.isdigit()
    if unit == "binary":
        if answer in BINARY_ANSWERS:
            return None
        hint = " (a class id answers pixel and superpixel queries, not binary ones)" if is_class else ""
        return f"answer {answer!r} is not yes, no or skip{hint}"
    if unit == "image":
        return None if answer == MASK else f"answer {answer!r} is not {MASK} or skip (a whole-image query)"
    if is_class and int(answer) < num_classes:
        return None
    if is_class:
        return f"answer {answer!r} is not a class id of the dataset ({class_range}) or skip"
    hint = f" (yes/no answers binary queries, not {unit} ones)" if answer in BINARY_ANSWERS else ""
    return f"answer {answer!r} is not a class id in {class_range} or skip{hint}"


def _class_range(classes: int | Sequence[str]) -> str:
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

    Every query must have exactly one answer; an answer is a class id in ``[0, num_classes)`` for pixel
    and superpixel queries, ``yes``/``no`` for binary ones, or ``skip`` for any (see
    :func:`answer_problems`). Returns a table with ``query_id``, ``answer`` (as written), ``source``,
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
