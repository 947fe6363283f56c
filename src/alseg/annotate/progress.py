"""The progress file of an annotation session, and writing the final ``answers.csv`` without clobbering.

Progress lives next to the answers file, as ``answers.partial.json`` (for ``answers.csv``), rewritten
atomically after every answer::

    {
      "format": "alseg-annotation-progress/1",
      "queries": "queries.csv",
      "queries_sha256": "<sha256 of queries.csv>",
      "answers": [
        {"query_id": "r3-000000", "answer": "4", "annotator": "ana", "seconds": 1.234,
         "clicks": 1, "answered_at": "2025-01-01T12:00:00+00:00"},
        ...
      ]
    }

``answers`` is in the order given: an undo removes the last entry. The file is kept after
``answers.csv`` is written (an audit trail with times of day); delete both to answer a round again.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from alseg.atomic import write_json_atomic
from alseg.queries import ANSWER_COLUMNS, rows_table, write_table

PROGRESS_FORMAT = "alseg-annotation-progress/1"
ANSWER_FIELDS = ("query_id", "answer", "annotator", "seconds", "clicks", "answered_at")


class ProgressError(ValueError):
    """A progress file is unreadable or belongs to other queries; the message names the file."""


def progress_path_for(answers_path: str | os.PathLike[str]) -> Path:
    """The progress file of an answers file: ``answers.csv`` -> ``answers.partial.json``."""
    answers_path = Path(answers_path)
    return answers_path.with_name(answers_path.stem + ".partial.json")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def now_iso() -> str:
    """The current time, ISO 8601 in UTC, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def load_progress(path: str | os.PathLike[str], queries_sha256: str) -> list[dict[str, Any]]:
    """The answers saved so far, or an empty list if there is no progress file.

    Raises
    ------
    ProgressError
        If the file is not a progress file, or was made for another version of ``queries.csv``.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != PROGRESS_FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not {PROGRESS_FORMAT!r}")
        answers = [
            {field: entry[field] for field in ANSWER_FIELDS} for entry in data["answers"]
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ProgressError(
            f"{path}: not a readable annotation progress file ({err}); move it away to start over"
        ) from err
    if data.get("queries_sha256") != queries_sha256:
        raise ProgressError(
            f"{path}: saved progress belongs to another version of {data.get('queries', 'the queries')} "
            "(its checksum changed since annotation began); move the progress file away to start over"
        )
    return answers


def save_progress(
    path: str | os.PathLike[str],
    queries_path: str | os.PathLike[str],
    queries_sha256: str,
    answers: Sequence[Mapping[str, Any]],
) -> None:
    """Write the progress file atomically (a crash leaves the previous version)."""
    write_json_atomic(
        path,
        {
            "format": PROGRESS_FORMAT,
            "queries": Path(queries_path).name,
            "queries_sha256": queries_sha256,
            "answers": [dict(entry) for entry in answers],
        },
    )


def answer_rows(answers: Sequence[Mapping[str, Any]], source: str = "human") -> list[dict[str, str]]:
    """Progress entries as ``answers.csv`` rows (strings, :data:`~alseg.queries.ANSWER_COLUMNS`)."""
    return [
        {
            "query_id": str(entry["query_id"]),
            "answer": str(entry["answer"]),
            "source": source,
            "annotator": str(entry["annotator"]),
            "seconds": repr(round(float(entry["seconds"]), 3)),
            "clicks": str(int(entry["clicks"])),
        }
        for entry in answers
    ]


def write_answers_csv(path: str | os.PathLike[str], rows: Sequence[Mapping[str, str]]) -> None:
    """Write answer rows to a new ``answers.csv``, atomically, never replacing an existing file.

    Raises
    ------
    FileExistsError
        If ``path`` exists (before or, from a concurrent writer, during the write).
    """
    table = rows_table(rows)
    create_new_atomic(path, lambda tmp: write_table(tmp, table, ANSWER_COLUMNS))


def create_new_atomic(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Create ``path`` complete or not at all, and only if it does not exist.

    ``write(tmp)`` writes the content to a temporary file in the same folder, which is then hard-linked
    to ``path`` (fails if ``path`` exists: no race with another writer). On file systems without hard
    links, falls back to an existence check and a rename.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; it is never overwritten (move it away to write it again)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise FileExistsError(
                f"{path} appeared while writing; it is never overwritten (move it away to write it again)"
            ) from None
        except OSError:  # no hard links here
            if path.exists():
                raise FileExistsError(f"{path} exists; it is never overwritten") from None
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
