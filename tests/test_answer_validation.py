"""Answer files are validated wherever they come from: every malformed kind is named, with its row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from annotate_fixtures import make_dataset

from alseg.annotate import AnnotationSession, ProgressError
from alseg.annotate.progress import progress_path_for
from alseg.answers import MAX_REPORTED_PROBLEMS, answer_problems, read_answers, validate_answers
from alseg.queries import ANSWER_COLUMNS, QUERY_COLUMNS, AnswerFileError, query_ids, read_queries, write_table

CLASSES = ["road", "car", "tree", "sky", "person"]
UNITS = ["pixel", "superpixel", "binary"]


@pytest.fixture
def queries(tmp_path: Path) -> dict[str, np.ndarray]:
    """Three queries: r2-000000 pixel, r2-000001 superpixel, r2-000002 binary."""
    table = {c: np.full(3, -1, dtype=np.int64) for c in QUERY_COLUMNS}
    table.update(
        query_id=query_ids(2, 3),
        image=np.array(["a", "b", "c"], dtype=object),
        unit=np.array(UNITS, dtype=object),
        strategy=np.full(3, "margin", dtype=object),
        model=np.full(3, "", dtype=object),
        score=np.full(3, np.nan),
        image_index=np.arange(3),
        y=np.array([1, -1, -1]),
        x=np.array([2, -1, -1]),
        superpixel=np.array([-1, 4, -1]),
        **{"class": np.array([-1, -1, 3])},
    )
    write_table(tmp_path / "queries.csv", table, QUERY_COLUMNS)
    return read_queries(tmp_path / "queries.csv")


def row(qid: str, answer: str, source: str = "human", seconds: str = "1.5", clicks: str = "1") -> list[str]:
    return [qid, answer, source, "ana", seconds, clicks]


GOOD = [row("r2-000000", "1"), row("r2-000001", "skip"), row("r2-000002", "no")]


def write_answers(path: Path, rows: list[list[str]]) -> Path:
    path.write_text(",".join(ANSWER_COLUMNS) + "\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_valid_answers_of_every_unit_are_read(tmp_path: Path, queries) -> None:
    table = read_answers(write_answers(tmp_path / "answers.csv", GOOD[::-1]), queries, CLASSES)
    assert list(table["answer"]) == ["1", "skip", "no"]
    assert table["seconds"].tolist() == [1.5, 1.5, 1.5]


@pytest.mark.parametrize(
    "rows, expected",
    [
        pytest.param([*GOOD, row("r9-000000", "1")], "line 5 'r9-000000'", id="unknown id"),
        pytest.param(GOOD[:2], "1 queries have no answer: 'r2-000002'", id="missing id"),
        pytest.param([*GOOD, row("r2-000000", "2")],
                     "line 5: duplicate answer for query 'r2-000000' (first answered on line 2)",
                     id="duplicate"),
        pytest.param([row("r2-000000", "7"), *GOOD[1:]],
                     "line 2: query 'r2-000000' (pixel): answer '7' is not a class id of the dataset "
                     "(0..4: 0 road, 1 car", id="class outside dataset"),
        pytest.param([*GOOD[:2], row("r2-000002", "3")],
                     "line 4: query 'r2-000002' (binary): answer '3' is not yes, no or skip (a class id "
                     "answers pixel and superpixel queries, not binary ones)", id="class id for binary"),
        pytest.param([row("r2-000000", "yes"), *GOOD[1:]],
                     "(yes/no answers binary queries, not pixel ones)", id="yes for pixel"),
        pytest.param([GOOD[0], row("r2-000001", "no"), GOOD[2]],
                     "line 3: query 'r2-000001' (superpixel): answer 'no' is not a class id",
                     id="no for superpixel"),
        pytest.param([row("r2-000000", ""), *GOOD[1:]], "empty answer (expected a class id", id="empty"),
        pytest.param([row("r2-000000", "car"), *GOOD[1:]], "answer 'car' is not a class id", id="class name"),
        pytest.param([row("r2-000000", "1", seconds="-2"), *GOOD[1:]],
                     "line 2: seconds '-2' is not a number >= 0", id="negative seconds"),
        pytest.param([row("r2-000000", "1", seconds="nan"), *GOOD[1:]],
                     "line 2: seconds 'nan' is not a number >= 0", id="nan seconds"),
        pytest.param([row("r2-000000", "1", seconds="1.2s"), *GOOD[1:]],
                     "line 2: seconds '1.2s' is not a number >= 0", id="text seconds"),
        pytest.param([row("r2-000000", "1", clicks="-1"), *GOOD[1:]], "clicks '-1'", id="bad clicks"),
        pytest.param([row("r2-000000", "1", source="robot"), *GOOD[1:]],
                     "line 2: source 'robot' is not one of oracle, human", id="bad source"),
        pytest.param([row("", "1"), *GOOD], "line 2: empty query_id", id="empty id"),
    ],
)
def test_each_malformed_kind_is_rejected_naming_file_and_row(tmp_path: Path, queries, rows, expected) -> None:
    path = write_answers(tmp_path / "answers.csv", rows)
    with pytest.raises(AnswerFileError) as info:
        read_answers(path, queries, CLASSES)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid answers")
    assert "nothing was used" in message
    assert expected in message


def test_all_problems_are_listed_up_to_a_cap(tmp_path: Path, queries) -> None:
    rows = [row(f"r7-{i:06d}", "1") for i in range(3)] + [row("r2-000000", "9", seconds="x")] * 30
    with pytest.raises(AnswerFileError) as info:
        read_answers(write_answers(tmp_path / "answers.csv", rows), queries, CLASSES)
    lines = str(info.value).splitlines()
    assert len(lines) == 1 + MAX_REPORTED_PROBLEMS + 1
    assert "line 5: query 'r2-000000' (pixel): answer '9'" in lines[1]
    assert lines[-1].startswith("  - ... and ")


def test_missing_columns_are_named(tmp_path: Path, queries) -> None:
    path = tmp_path / "answers.csv"
    path.write_text("query_id,answer\nr2-000000,1\n")
    with pytest.raises(AnswerFileError, match=r"answers.csv: missing columns \['source'"):
        read_answers(path, queries, 5)


def test_validate_answers_takes_rows_from_anywhere(queries) -> None:
    rows = [dict(zip(ANSWER_COLUMNS, r)) for r in GOOD]
    validate_answers(rows, queries, CLASSES, origin="export.json")  # no error
    rows[2]["answer"] = "maybe"
    with pytest.raises(AnswerFileError, match=r"(?s)^export.json: .*task 3: query 'r2-000002' \(binary\)"):
        validate_answers(rows, queries, CLASSES, origin="export.json", where=["task 1", "task 2", "task 3"])
    assert answer_problems(rows[:2], queries, 5) == ["1 queries have no answer: 'r2-000002'"]


def test_saved_progress_is_validated_too(tmp_path: Path) -> None:
    from annotate_fixtures import write_queries

    dataset = make_dataset(tmp_path / "ds.h5", n_train=2, height=16, width=16)
    queries = write_queries(tmp_path / "r" / "queries.csv", "pixel", [(0, 1, 1), (1, 2, 2)])
    progress = progress_path_for(tmp_path / "r" / "answers.csv")
    session = AnnotationSession(queries, dataset, annotator="ana")
    session.answer("r1-000000", "3", 1.0)
    data = json.loads(progress.read_text())
    data["answers"][0]["answer"] = "42"  # edited by hand: not a class
    progress.write_text(json.dumps(data))
    with pytest.raises(AnswerFileError, match=r"(?s)answers.partial.json: .*saved answer 1: .*'42' is not a class id"):
        AnnotationSession(queries, dataset, annotator="ana")
    data["queries_sha256"] = "0" * 64  # made for another queries.csv
    progress.write_text(json.dumps(data))
    with pytest.raises(ProgressError, match="another version of queries.csv"):
        AnnotationSession(queries, dataset, annotator="ana")
    progress.write_text("{not json")
    with pytest.raises(ProgressError, match="not a readable annotation progress file"):
        AnnotationSession(queries, dataset, annotator="ana")


def test_session_refuses_bad_answers_and_resumes(tmp_path: Path) -> None:
    from annotate_fixtures import write_queries

    from alseg.annotate import AnnotationError

    dataset = make_dataset(tmp_path / "ds.h5", n_train=2, height=16, width=16)
    queries = write_queries(tmp_path / "queries.csv", "binary", [(0, 1), (1, 2)])
    session = AnnotationSession(queries, dataset, annotator="ana")
    with pytest.raises(AnnotationError, match="yes, no or skip"):
        session.answer("r1-000000", "1", 1.0)
    with pytest.raises(AnnotationError, match="not the one to answer now"):
        session.answer("r1-000001", "yes", 1.0)
    with pytest.raises(AnnotationError, match="seconds"):
        session.answer("r1-000000", "yes", -1.0)
    with pytest.raises(AnnotationError, match="nothing to undo"):
        session.undo()
    session.answer("r1-000000", "yes", 0.5)
    resumed = AnnotationSession(queries, dataset, annotator="bob")
    state = resumed.state()
    assert state["answered"] == 1 and state["current"]["query_id"] == "r1-000001"
    assert state["current"]["class_name"] == "diagonal_stripes"
    resumed.answer("r1-000001", "no", 2.0)
    assert resumed.done.is_set()
    lines = (tmp_path / "answers.csv").read_text().splitlines()
    assert lines[1:] == ["r1-000000,yes,human,ana,0.5,1", "r1-000001,no,human,bob,2.0,1"]


def test_complete_progress_writes_the_answers_on_start(tmp_path: Path) -> None:
    from annotate_fixtures import write_queries

    dataset = make_dataset(tmp_path / "ds.h5", n_train=1, height=16, width=16)
    queries = write_queries(tmp_path / "queries.csv", "pixel", [(0, 1, 1)])
    session = AnnotationSession(queries, dataset, annotator="ana")
    session.answer("r1-000000", "2", 0.8)
    (tmp_path / "answers.csv").unlink()  # e.g. a crash between the last progress save and the answers
    again = AnnotationSession(queries, dataset, annotator="ana")
    assert again.done.is_set()
    assert (tmp_path / "answers.csv").read_text().splitlines()[1] == "r1-000000,2,human,ana,0.8,1"
