"""An annotation session: the queries of one round, the answers so far, and what to show next.

No HTTP here (see :mod:`alseg.annotate.server`): the session validates each answer against its query,
saves progress after every answer and undo, and writes ``answers.csv`` once every query is answered.
Thread-safe (one lock), so a threaded server can call it from any request.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from alseg.annotate.keys import (
    NO_KEYS,
    SKIP_KEYS,
    UNDO_KEYS,
    YES_KEYS,
    class_keys,
    key_label,
)
from alseg.annotate.pool import PoolImages
from alseg.annotate.progress import (
    answer_rows,
    file_sha256,
    load_progress,
    now_iso,
    progress_path_for,
    save_progress,
    write_answers_csv,
)
from alseg.answers import class_range, validate_answers
from alseg.queries import SKIP, read_queries
from alseg.regions import RegionSource, encode_mask, region_mask
from alseg.units import ROW_UNITS, QueryUnit, unit_of_row

_PRELOAD = 3  # images of the next queries the page fetches ahead


class AnnotationError(ValueError):
    """A request the session cannot take (bad answer, stale query); the message says why."""


class AnnotationSession:
    """The state of answering one round's ``queries.csv``.

    Parameters
    ----------
    queries_path : str or PathLike
        The round's ``queries.csv``.
    dataset_path : str or PathLike
        The prepared dataset whose ``train`` split is the pool (``image_index`` indexes it).
    annotator : str
        Name recorded with every answer.
    answers_path : str or PathLike, optional
        Where the answers go; default ``answers.csv`` next to ``queries_path``. Progress is kept in
        ``answers.partial.json`` beside it.
    regions : RegionSource, optional
        Region masks of the queries whose unit names a region (superpixel queries: required if there are
        any; :meth:`alseg.units.base.QueryUnit.region_source`).

    Raises
    ------
    FileExistsError
        If the answers file exists (human answers are never overwritten).
    AnnotationError
        If a query does not fit the dataset (its unit says why: image, pixel or class out of range, an
        unknown unit, a unit not answered on the page), or there are region queries and no region source.
    alseg.annotate.progress.ProgressError
        If the saved progress is unreadable or belongs to other queries.
    """

    def __init__(
        self,
        queries_path: str | os.PathLike[str],
        dataset_path: str | os.PathLike[str],
        *,
        annotator: str,
        answers_path: str | os.PathLike[str] | None = None,
        regions: RegionSource | None = None,
    ) -> None:
        self.queries_path = Path(queries_path)
        self.answers_path = Path(answers_path) if answers_path else self.queries_path.with_name("answers.csv")
        if self.answers_path.exists():
            raise FileExistsError(
                f"{self.answers_path} exists: this round is answered, and answers are never overwritten "
                "(move the file away to answer the round again)"
            )
        self.progress_path = progress_path_for(self.answers_path)
        self.annotator = annotator
        self.pool = PoolImages(dataset_path)
        self.classes = list(self.pool.info.classes)
        self.keys = class_keys(len(self.classes))
        self.queries = read_queries(self.queries_path)
        self.regions = regions
        self._check_queries()
        self._sha256 = file_sha256(self.queries_path)
        self._answers: list[dict[str, Any]] = load_progress(self.progress_path, self._sha256)
        self._check_saved_answers()
        self._lock = threading.Lock()
        self.done = threading.Event()
        if self.total and len(self._answers) == self.total:
            self._finish()

    @property
    def total(self) -> int:
        """Number of queries."""
        return len(self.queries["query_id"])

    def units(self) -> list[QueryUnit]:
        """The units of the round's queries, in the order they first appear."""
        return [unit_of_row(name) for name in dict.fromkeys(self.queries["unit"].tolist())]

    def info(self) -> dict[str, Any]:
        """What the page needs once: classes and their keys, command keys, names of the files, and the
        view (script) of each unit of the queries."""
        return {
            "annotator": self.annotator,
            "classes": self.classes,
            "keys": self.keys,
            "skip_keys": list(SKIP_KEYS),
            "undo_keys": list(UNDO_KEYS),
            "yes_keys": list(YES_KEYS),
            "no_keys": list(NO_KEYS),
            "key_labels": {key: key_label(key) for key in (*SKIP_KEYS, *UNDO_KEYS)},
            "queries_file": str(self.queries_path),
            "answers_file": str(self.answers_path),
            "total": self.total,
            "height": self.pool.shape[0],
            "width": self.pool.shape[1],
            "unit_scripts": {unit.row_unit: f"/unit/{unit.row_unit}.js" for unit in self.units()},
        }

    def state(self) -> dict[str, Any]:
        """Progress, the query to show (None when done) and the last answer (for undo)."""
        with self._lock:
            return self._state()

    def answer(self, query_id: str, answer: str, seconds: float) -> dict[str, Any]:
        """Record the answer to the shown query, save progress, and write the answers when complete.

        Parameters
        ----------
        query_id : str
            Must be the query shown (the first unanswered); a stale page gets an error.
        answer : str
            As its unit answers (a class id, ``yes``/``no``, ...; :meth:`~alseg.units.base.QueryUnit.answer_problem`)
            or ``skip``.
        seconds : float
            Time from showing the query to the key press, measured by the page.

        Returns
        -------
        dict
            The new :meth:`state`.
        """
        with self._lock:
            current = self._current()
            if current is None:
                raise AnnotationError("every query is answered")
            expected = str(self.queries["query_id"][current])
            if query_id != expected:
                raise AnnotationError(f"query {query_id!r} is not the one to answer now ({expected!r})")
            answer = str(answer).strip()
            self._check_answer(current, answer)
            if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0):
                raise AnnotationError(f"seconds must be a number >= 0, got {seconds!r}")
            self._answers.append(
                {
                    "query_id": query_id,
                    "answer": answer,
                    "annotator": self.annotator,
                    "seconds": round(float(seconds), 3),
                    "clicks": self._unit(current).answered_clicks(answer) if answer != SKIP else 1,
                    "answered_at": now_iso(),
                }
            )
            save_progress(self.progress_path, self.queries_path, self._sha256, self._answers)
            if len(self._answers) == self.total:
                self._finish()
            return self._state()

    def undo(self) -> dict[str, Any]:
        """Take back the last answer (its query is shown again); returns the new :meth:`state`."""
        with self._lock:
            if self.done.is_set():
                raise AnnotationError(f"every query is answered and {self.answers_path.name} is written")
            if not self._answers:
                raise AnnotationError("nothing to undo")
            self._answers.pop()
            save_progress(self.progress_path, self.queries_path, self._sha256, self._answers)
            return self._state()

    def query(self, index: int) -> dict[str, Any]:
        """What the page draws for query ``index`` (position in ``queries.csv``): its id, unit and image,
        and what its unit adds (:meth:`~alseg.units.base.QueryUnit.page_query`)."""
        q = self.queries
        image_index = int(q["image_index"][index])
        unit = self._unit(index)
        payload: dict[str, Any] = {
            "index": index,
            "query_id": str(q["query_id"][index]),
            "unit": unit.row_unit,
            "image": str(q["image"][index]),
            "image_index": image_index,
            "image_url": f"/api/image/{image_index}.png",
            **unit.page_query(self._row(index), self.classes),
        }
        if unit.region_resource:
            payload["region_url"] = f"/api/region/{index}"
        return payload

    def region(self, index: int) -> dict[str, Any]:
        """The region of query ``index``, encoded by :func:`~alseg.regions.encode_mask`."""
        if not 0 <= index < self.total or not self._unit(index).region_resource:
            raise AnnotationError(f"query {index} names no region")
        mask = region_mask(
            self.regions, int(self.queries["image_index"][index]), int(self.queries["superpixel"][index]),
            self.pool.shape,
        )
        return encode_mask(mask)

    # -- internals ---------------------------------------------------------------------------------

    def _current(self) -> int | None:
        answered = {entry["query_id"] for entry in self._answers}
        for index, qid in enumerate(self.queries["query_id"]):
            if qid not in answered:
                return int(index)
        return None

    def _state(self) -> dict[str, Any]:
        current = self._current()
        last = None
        if self._answers:
            entry = self._answers[-1]
            last = {"query_id": entry["query_id"], "answer": entry["answer"], "label": self._label(entry["answer"])}
        preload: list[str] = []
        if current is not None:
            for index in range(current + 1, min(current + 1 + _PRELOAD, self.total)):
                url = f"/api/image/{int(self.queries['image_index'][index])}.png"
                if url not in preload:
                    preload.append(url)
        return {
            "total": self.total,
            "answered": len(self._answers),
            "done": self.done.is_set(),
            "answers_file": str(self.answers_path),
            "current": self.query(current) if current is not None else None,
            "last": last,
            "preload": preload,
        }

    def _unit(self, index: int) -> QueryUnit:
        return unit_of_row(str(self.queries["unit"][index]))

    def _row(self, index: int) -> dict[str, Any]:
        return {name: column[index] for name, column in self.queries.items()}

    def _label(self, answer: str) -> str:
        return self.classes[int(answer)] if answer.isdigit() else answer

    def _check_answer(self, index: int, answer: str) -> None:
        if answer == SKIP:
            return
        unit = self._unit(index)
        problem = unit.answer_problem(answer, len(self.classes), class_range(self.classes)) if answer else \
            f"empty answer (expected {unit.answer_hint(class_range(self.classes))} or skip)"
        if problem:
            raise AnnotationError(f"a {unit.row_unit} query: {problem}")

    def _check_queries(self) -> None:
        q, (height, width) = self.queries, self.pool.shape
        problems: list[str] = []
        for index in range(self.total):
            qid, unit_name, image = q["query_id"][index], q["unit"][index], int(q["image_index"][index])
            at = f"line {index + 2} ({qid})"
            if unit_name not in ROW_UNITS:
                problems.append(f"{at}: unit {unit_name!r} is not one of {', '.join(ROW_UNITS)}")
                continue
            unit = unit_of_row(unit_name)
            if unit.page_script is None:
                problem = unit.query_problem(self._row(index), height, width, len(self.classes))
                problems.append(f"{at}: {problem or f'{unit_name} queries are not answered on this page'}")
                continue
            if not 0 <= image < self.pool.count:
                problems.append(f"{at}: image_index {image} is not in the pool (0..{self.pool.count - 1})")
                continue
            problem = unit.query_problem(self._row(index), height, width, len(self.classes))
            if problem:
                problems.append(f"{at}: {problem}")
        if problems:
            raise AnnotationError(
                f"{self.queries_path}: queries do not fit the dataset {self.pool.path}:\n  - "
                + "\n  - ".join(problems[:20])
            )
        regional = sorted({unit.row_unit for unit in self.units() if unit.region_resource})
        if self.regions is None and regional:
            raise AnnotationError(
                f"{self.queries_path}: has {' and '.join(regional)} queries; pass the {' and '.join(regional)} "
                "label maps of the pool (alseg annotate --regions FILE) so that the page can outline each region"
            )

    def _check_saved_answers(self) -> None:
        rows = answer_rows(self._answers)
        subset = {qid for qid in (row["query_id"] for row in rows)}
        keep = np.array([qid in subset for qid in self.queries["query_id"]], dtype=bool)
        partial = {name: column[keep] for name, column in self.queries.items()}
        validate_answers(
            rows, partial, self.classes, origin=self.progress_path,
            where=[f"saved answer {i + 1}" for i in range(len(rows))],
        )

    def _finish(self) -> None:
        rows = answer_rows(self._answers)
        validate_answers(rows, self.queries, self.classes, origin=self.progress_path)
        order = {qid: i for i, qid in enumerate(self.queries["query_id"])}
        write_answers_csv(self.answers_path, sorted(rows, key=lambda row: order[row["query_id"]]))
        self.done.set()
