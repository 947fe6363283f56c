"""``queries.csv`` and ``answers.csv``: the columns of a round's questions and answers, their builders, the CSV.

A table is a dict of equal-length 1-D numpy arrays, one per column (a light, typed stand-in for a data
frame). Columns that do not apply to a unit hold empty cells in the CSV (NaN / -1 / "" here), filled the
same way for every unit by :func:`query_table` and :func:`answer_table`. Whether an answer is valid for
its query is the query unit's business: :mod:`alseg.answers`.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from alseg.atomic import atomic_path

#: The round files' contract (README, "What a round writes"), with our additions (``image_index``: position in the pool; ``pixels``: the
#: number of pixels a query covers).
QUERY_COLUMNS = [
    "query_id", "round", "image", "unit", "y", "x", "superpixel", "class",
    "score", "rank", "strategy", "seed", "model", "image_index", "pixels",
]
ANSWER_COLUMNS = ["query_id", "answer", "source", "annotator", "seconds", "clicks"]
SOURCES = ("oracle", "human")
#: The answer that skips a query of any unit (asked and paid, nothing learnt)
SKIP = "skip"

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


def write_table(path: str | os.PathLike[str], table: Mapping[str, np.ndarray], columns: Sequence[str]) -> None:
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




#: What a query table holds where a column does not apply to the query's unit (an empty cell in the CSV)
_QUERY_DEFAULTS = {"y": -1, "x": -1, "superpixel": -1, "class": -1, "score": np.nan, "rank": -1, "pixels": -1}


def query_table(
    round_index: int,
    image_index: np.ndarray,
    stems: Sequence[str],
    unit: str,
    strategy: str,
    seed: int,
    model: str = "",
    **columns: np.ndarray,
) -> Table:
    """A round's query table, one row per pool image in ``image_index``.

    Parameters
    ----------
    round_index : int
    image_index : ndarray of int, shape (Q,)
        The pool image of each query (its position in the ``train`` split).
    stems : sequence of str
        The names of all pool images (``image`` is ``stems[image_index]``).
    unit, strategy : str
        The query unit (``queries.csv``'s ``unit``) and the strategy that chose the queries.
    seed : int
        The seed of the selection.
    model : str
        Checksum of the model that scored the queries ("" when none did).
    **columns : ndarray, shape (Q,)
        The columns the unit uses among ``y``, ``x``, ``superpixel``, ``class``, ``score``, ``rank`` and
        ``pixels``; the others hold "does not apply" (-1, NaN), the same for every unit.
    """
    unknown = sorted(set(columns) - set(_QUERY_DEFAULTS))
    if unknown:
        raise KeyError(f"query_table: {unknown} are not unit columns of queries.csv ({sorted(_QUERY_DEFAULTS)})")
    q = int(np.asarray(image_index).size)
    table: Table = {
        "query_id": query_ids(round_index, q),
        "round": np.full(q, round_index),
        "image": np.asarray(stems, dtype=object)[np.asarray(image_index, dtype=np.int64)],
        "unit": np.full(q, unit, dtype=object),
        **{name: np.full(q, value) for name, value in _QUERY_DEFAULTS.items()},
        "strategy": np.full(q, strategy, dtype=object),
        "seed": np.full(q, seed),
        "model": np.full(q, model, dtype=object),
        "image_index": image_index,
    }
    table.update(columns)
    bad = {name: np.asarray(column).shape for name, column in table.items() if np.asarray(column).shape != (q,)}
    if bad:
        raise ValueError(f"query_table: columns of other lengths than the {q} queries: {bad}")
    return {name: table[name] for name in QUERY_COLUMNS}


def answer_table(
    query_id: np.ndarray,
    answer: np.ndarray,
    seconds: np.ndarray,
    clicks: np.ndarray,
    source: str = "oracle",
    annotator: str = "simulated",
) -> Table:
    """An ``answers.csv`` table: one answer per query, with who gave it and what it cost."""
    q = len(query_id)
    return {
        "query_id": np.asarray(query_id, dtype=object),
        "answer": np.asarray(answer, dtype=object),
        "source": np.full(q, source, dtype=object),
        "annotator": np.full(q, annotator, dtype=object),
        "seconds": np.asarray(seconds, dtype=np.float64),
        "clicks": np.asarray(clicks, dtype=np.float64),
    }


def rows_table(rows: Sequence[Mapping[str, str]], columns: Sequence[str] = ANSWER_COLUMNS) -> Table:
    """Rows of strings (as read from a CSV) as a table of string columns, for :func:`write_table`."""
    return {column: np.array([row[column] for row in rows], dtype=object) for column in columns}


def table_rows(table: Mapping[str, np.ndarray], rows: np.ndarray) -> Table:
    """The rows ``rows`` (a boolean mask or indices) of every column of ``table``."""
    return {name: np.asarray(column)[rows] for name, column in table.items()}
