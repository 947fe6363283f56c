"""``queries.csv`` and ``answers.csv``: the columns of a round's questions and answers, and their checks.

A query table is a dict of equal-length 1-D numpy arrays, one per column (a light, typed stand-in for
a data frame). Columns that do not apply to a unit hold empty cells in the CSV (NaN / -1 / "" here).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
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
UNITS = ("pixel", "superpixel", "binary")
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
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
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


def read_answers(
    path: str | os.PathLike[str], queries: Table, num_classes: int
) -> Table:
    """Read and validate an ``answers.csv`` against the round's ``queries``.

    Every query must have exactly one answer; an answer is a class id in ``[0, num_classes)`` for pixel
    and superpixel queries, ``yes``/``no`` for binary ones, or ``skip`` for any. Returns a table with
    ``query_id``, ``answer`` (as written), ``source``, ``annotator``, ``seconds``, ``clicks``, in the
    order of ``queries``.

    Raises
    ------
    AnswerFileError
        Naming the file and every problem found: unknown or missing query ids, duplicates, answers
        that are not valid for the query's unit, bad sources or negative costs.
    """
    path = Path(path)
    rows = read_rows(path, ANSWER_COLUMNS)
    problems: list[str] = []
    by_id: dict[str, dict[str, str]] = {}
    for line, row in enumerate(rows, start=2):
        qid = row["query_id"]
        if qid in by_id:
            problems.append(f"line {line}: duplicate answer for query {qid!r}")
        by_id[qid] = row
    unit_of = dict(zip(queries["query_id"], queries["unit"]))
    unknown = [q for q in by_id if q not in unit_of]
    if unknown:
        problems.append(f"{len(unknown)} answers for unknown query ids, e.g. {unknown[:3]}")
    missing = [q for q in unit_of if q not in by_id]
    if missing:
        problems.append(f"{len(missing)} queries have no answer, e.g. {missing[:3]}")
    for qid, row in by_id.items():
        if qid not in unit_of:
            continue
        answer, unit = row["answer"].strip(), unit_of[qid]
        if answer == "skip":
            pass
        elif unit == "binary":
            if answer not in ("yes", "no"):
                problems.append(f"query {qid!r} (binary): answer {answer!r} is not yes, no or skip")
        elif not (answer.isdigit() and int(answer) < num_classes):
            problems.append(
                f"query {qid!r} ({unit}): answer {answer!r} is not a class id in 0..{num_classes - 1} or skip"
            )
        if row["source"] not in SOURCES:
            problems.append(f"query {qid!r}: source {row['source']!r} is not one of {SOURCES}")
        for cost in ("seconds", "clicks"):
            try:
                if float(row[cost] or 0) < 0:
                    raise ValueError
            except ValueError:
                problems.append(f"query {qid!r}: {cost} {row[cost]!r} is not a number >= 0")
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise AnswerFileError(f"{path}: invalid answers:\n  " + "\n  ".join(shown))
    ordered = [by_id[q] for q in queries["query_id"]]
    return {
        "query_id": np.array([r["query_id"] for r in ordered], dtype=object),
        "answer": np.array([r["answer"].strip() for r in ordered], dtype=object),
        "source": np.array([r["source"] for r in ordered], dtype=object),
        "annotator": np.array([r["annotator"] for r in ordered], dtype=object),
        "seconds": np.array([float(r["seconds"] or 0) for r in ordered], dtype=np.float64),
        "clicks": np.array([float(r["clicks"] or 0) for r in ordered], dtype=np.float64),
    }
