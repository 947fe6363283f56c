"""The pixel oracle, the label store, and the query and answer tables."""

import numpy as np
import pytest

from alseg.answers import read_answers
from alseg.labels import LabelStore, LabelStoreError, load_labels, record_round_cost, save_labels
from alseg.queries import (
    ANSWER_COLUMNS,
    QUERY_COLUMNS,
    AnswerFileError,
    query_ids,
    query_table,
    read_queries,
    write_table,
)
from alseg.units import labelled_pixels
from alseg.units.pixel import add_pixel_answers, answer_pixels


def test_oracle_answers_ground_truth_and_skips_void():
    masks = np.array([[[0, 1], [2, 255]]], dtype=np.uint8)
    img = np.zeros(4, int)
    y = np.array([0, 0, 1, 1])
    x = np.array([0, 1, 0, 1])
    answers, flipped = answer_pixels(masks, img, y, x, 3, 255, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(answers, [0, 1, 2, -1])
    assert not flipped.any()


def test_oracle_error_rate_flips_to_a_wrong_class():
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 5, (1, 100, 100)).astype(np.uint8)
    idx = np.arange(10000)
    answers, flipped = answer_pixels(masks, np.zeros_like(idx), idx // 100, idx % 100, 5, 255, 0.1, rng)
    truth = masks[0].ravel()
    assert 0.08 < flipped.mean() < 0.12
    assert (answers[flipped] != truth[flipped]).all()
    assert (answers[~flipped] == truth[~flipped]).all()
    assert set(np.unique(answers[flipped])) <= set(range(5))


def test_label_store_round_trip_and_accumulates(tmp_path):
    s1 = record_round_cost(add_pixel_answers(LabelStore(), 0, [0, 1], [1, 2], [3, 4], [2, -1]), 0, "estimated",
                           clicks=2, seconds=2.84)
    s2 = record_round_cost(add_pixel_answers(s1, 1, [0], [5], [5], [1]), 1, "estimated", earlier=s1, clicks=1,
                           seconds=1.42)
    assert labelled_pixels(s2) == 2 and s2["asked_image"].size == 3
    assert s2.clicks == 3 and s2.seconds == pytest.approx(4.26)
    np.testing.assert_array_equal(s2["pixel_round"], [0, 1])
    assert labelled_pixels(s1) == 1  # the earlier store is untouched
    save_labels(tmp_path / "labels.npz", s2)
    back = load_labels(tmp_path / "labels.npz")
    assert back.names() == s2.names() and "binary_image" in back.names()  # every unit's arrays, empty or not
    for name in s2.names():
        np.testing.assert_array_equal(back[name], s2[name])
        assert back[name].dtype == s2[name].dtype


def test_label_store_reads_arrays_it_lacks_as_empty_and_refuses_wrong_types(tmp_path):
    np.savez(tmp_path / "old.npz", pixel_image=np.array([1], np.int32), round_seconds=np.array([2.0]))
    old = load_labels(tmp_path / "old.npz")  # a store from before some unit existed
    assert old["superpixel_id"].dtype == np.int64 and old["superpixel_id"].size == 0
    assert old["pixel_image"].tolist() == [1] and old.seconds == 2.0
    with pytest.raises(KeyError, match="no array 'nothing'"):
        old["nothing"]
    np.savez(tmp_path / "bad.npz", pixel_image=np.array([1.5]))
    with pytest.raises(LabelStoreError, match=r"bad.npz: label store arrays of an unexpected type: pixel_image"):
        load_labels(tmp_path / "bad.npz")


def test_label_store_refuses_paying_twice():
    s1 = add_pixel_answers(LabelStore(), 0, [0], [1], [1], [2])
    with pytest.raises(ValueError, match="already asked"):
        add_pixel_answers(s1, 1, [0], [1], [1], [2])
    with pytest.raises(ValueError, match="twice"):
        add_pixel_answers(LabelStore(), 0, [0, 0], [1, 1], [1, 1], [2, 2])


def test_corrupt_label_store_names_the_file(tmp_path):
    bad = tmp_path / "labels.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(LabelStoreError, match="labels.npz"):
        load_labels(bad)


def make_queries(tmp_path, units=("pixel", "pixel", "binary")):
    q = len(units)
    table = {c: np.full(q, -1) for c in QUERY_COLUMNS}
    table.update(
        query_id=query_ids(3, q),
        image=np.array(["a"] * q, dtype=object),
        unit=np.array(units, dtype=object),
        strategy=np.array(["margin"] * q, dtype=object),
        model=np.array([""] * q, dtype=object),
        score=np.array([0.5, np.nan, 0.25][:q]),
    )
    write_table(tmp_path / "queries.csv", table, QUERY_COLUMNS)
    return read_queries(tmp_path / "queries.csv")


def write_answers(path, rows):
    path.write_text(",".join(ANSWER_COLUMNS) + "\n" + "\n".join(",".join(r) for r in rows) + "\n")


def test_query_table_fills_the_columns_a_unit_does_not_use_the_same_way(tmp_path):
    table = query_table(2, np.array([1, 0]), ["a", "b"], "binary", "greedy", 7, "m1", **{"class": np.array([3, 4])})
    assert list(table) == QUERY_COLUMNS
    assert table["image"].tolist() == ["b", "a"] and table["query_id"].tolist() == ["r2-000000", "r2-000001"]
    assert table["y"].tolist() == [-1, -1] and np.isnan(table["score"]).all() and table["pixels"].tolist() == [-1, -1]
    write_table(tmp_path / "q.csv", table, QUERY_COLUMNS)
    assert (tmp_path / "q.csv").read_text().splitlines()[1] == "r2-000000,2,b,binary,,,,3,,,greedy,7,m1,1,"
    with pytest.raises(KeyError, match="are not unit columns"):
        query_table(0, np.array([0]), ["a"], "pixel", "random", 0, nonsense=np.array([1]))
    with pytest.raises(ValueError, match="other lengths"):
        query_table(0, np.array([0]), ["a"], "pixel", "random", 0, y=np.array([1, 2]))


def test_queries_csv_round_trip_keeps_empty_cells(tmp_path):
    q = make_queries(tmp_path)
    assert list(q["query_id"]) == ["r3-000000", "r3-000001", "r3-000002"]
    assert q["y"][0] == -1 and np.isnan(q["score"][1]) and q["score"][0] == 0.5
    header = (tmp_path / "queries.csv").read_text().splitlines()[0].split(",")
    assert header[:13] == [
        "query_id", "round", "image", "unit", "y", "x", "superpixel", "class",
        "score", "rank", "strategy", "seed", "model",
    ]


def test_valid_answers_are_read_in_query_order(tmp_path):
    q = make_queries(tmp_path)
    write_answers(
        tmp_path / "answers.csv",
        [
            ["r3-000002", "no", "human", "ann", "3.1", "1"],
            ["r3-000000", "4", "oracle", "sim", "1.42", "1"],
            ["r3-000001", "skip", "human", "ann", "2", "1"],
        ],
    )
    a = read_answers(tmp_path / "answers.csv", q, num_classes=5)
    assert list(a["answer"]) == ["4", "skip", "no"]
    assert a["seconds"].sum() == pytest.approx(6.52)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([["r3-000000", "1", "oracle", "", "1", "1"], ["r3-000001", "1", "oracle", "", "1", "1"]],
         "have no answer"),
        ([["r3-000000", "1", "oracle", "", "1", "1"], ["r3-000000", "1", "oracle", "", "1", "1"],
          ["r3-000001", "1", "oracle", "", "1", "1"], ["r3-000002", "yes", "oracle", "", "1", "1"]],
         "duplicate"),
        ([["r3-000000", "9", "oracle", "", "1", "1"], ["r3-000001", "1", "oracle", "", "1", "1"],
          ["r3-000002", "yes", "oracle", "", "1", "1"]], "not a class id"),
        ([["r3-000000", "1", "oracle", "", "1", "1"], ["r3-000001", "1", "oracle", "", "1", "1"],
          ["r3-000002", "3", "oracle", "", "1", "1"]], "not yes, no or skip"),
        ([["r3-000000", "1", "oracle", "", "1", "1"], ["r3-000001", "1", "oracle", "", "1", "1"],
          ["r3-000002", "yes", "oracle", "", "1", "1"], ["r9-000000", "1", "oracle", "", "1", "1"]],
         "unknown query ids"),
        ([["r3-000000", "yes", "oracle", "", "1", "1"], ["r3-000001", "1", "robot", "", "1", "1"],
          ["r3-000002", "yes", "oracle", "", "-1", "1"]], "source"),
    ],
)
def test_malformed_answers_are_rejected_naming_the_file(tmp_path, rows, message):
    q = make_queries(tmp_path)
    write_answers(tmp_path / "answers.csv", rows)
    with pytest.raises(AnswerFileError, match=message) as info:
        read_answers(tmp_path / "answers.csv", q, num_classes=5)
    assert "answers.csv" in str(info.value)
