"""Binary experiments (alseg.units.binary) through the generic steps of alseg.steps, as the rules call them."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest

from alseg import steps
from alseg.config import deep_merge
from alseg.data import dataset_info, load_split
from alseg.data.prepared import prepare_dataset
from alseg.defaults import BUILTIN_DEFAULTS
from alseg.labels import LabelStore, load_labels
from alseg.queries import read_queries
from alseg.units import Job, labelled_pixels
from alseg.units.binary import UNIT, add_binary_answers, class_presence_from_masks

N_TRAIN, SIZE, C = 12, 32, 8


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "synthetic.h5"
    prepare_dataset({"kind": "synthetic", "seed": 0, "n_train": N_TRAIN, "n_val": 2, "n_test": 2,
                     "height": SIZE, "width": SIZE}, path)
    return path


@pytest.fixture(scope="module")
def truth(dataset) -> np.ndarray:
    info = dataset_info(dataset)
    masks = load_split(dataset, "train").masks
    return class_presence_from_masks(masks, np.arange(len(masks)), C, info.ignore_index)


def experiment(**override) -> dict:
    base = deep_merge(BUILTIN_DEFAULTS, {"dataset": "synthetic", "unit": "binary", "strategy": "greedy",
                                         "budget": 8, "binary": {"c_max": 2}})
    return deep_merge(base, override)


def fake_dump(path: Path, seed: int = 0, n: int = N_TRAIN) -> Path:
    """An inference dump with only what binary selection reads: class presence and features."""
    rng = np.random.default_rng(seed)
    presence = rng.dirichlet(np.ones(C), size=n).astype(np.float32)
    with h5py.File(path, "w") as h5:
        h5["image/class_presence"] = presence
        h5["image/features"] = rng.normal(size=(n, 16)).astype(np.float32)
        h5.attrs["model"] = f"model{seed}"
    return path


def run_round(tmp: Path, dataset: Path, exp: dict, r: int, previous: Path | None) -> Path:
    """select, answer and update one round through alseg.steps (as the rules call them)."""
    folder = tmp / f"round_{r}"
    folder.mkdir(exist_ok=True)
    dump = fake_dump(tmp / f"dump_{r}.h5", seed=r) if r > 0 else None
    steps.select_queries(dataset, exp, r, folder / "queries.csv", labels=previous, inference=dump)
    steps.answer_queries(dataset, folder / "queries.csv", exp, r, folder / "answers.csv")
    steps.update_labels(dataset, folder / "queries.csv", folder / "answers.csv", r, folder / "labels.npz",
                        previous=previous)
    return folder / "labels.npz"


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_dense_initial_set_is_the_masks_of_n0_images_paid_per_image(tmp_path, dataset):
    exp = experiment(initial={"kind": "dense", "images": 3})
    labels = run_round(tmp_path, dataset, exp, 0, None)
    table = read_queries(tmp_path / "round_0" / "queries.csv")
    info = dataset_info(dataset)
    masks = load_split(dataset, "train").masks
    images = table["image_index"]
    assert images.size == 3 and np.unique(images).size == 3  # one whole-image query per image
    assert set(table["unit"]) == {"image"} and set(table["strategy"]) == {"dense"}
    np.testing.assert_array_equal(table["pixels"], (masks[images] != info.ignore_index).sum(axis=(1, 2)))
    store = load_labels(labels)
    assert store["dense_image"].tolist() == images.tolist()
    assert labelled_pixels(store) == int((masks[images] != info.ignore_index).sum())
    assert store.seconds == 3 * 468.0 and store.clicks == 3
    answers = rows(tmp_path / "round_0" / "answers.csv")
    assert [a["answer"] for a in answers] == ["mask"] * 3 and {float(a["seconds"]) for a in answers} == {468.0}


def test_pixel_initial_set_equals_a_pixel_experiments_round_0(tmp_path, dataset):
    exp = experiment(initial={"kind": "pixels", "per_image": 4})
    steps.select_queries(dataset, exp, 0, tmp_path / "binary.csv")
    pixel = deep_merge(exp, {"unit": "pixel", "strategy": "margin", "initial_budget": 4})
    steps.select_queries(dataset, pixel, 0, tmp_path / "pixel.csv")
    assert (tmp_path / "binary.csv").read_bytes() == (tmp_path / "pixel.csv").read_bytes()
    assert len(rows(tmp_path / "binary.csv")) == N_TRAIN * 4


@pytest.mark.parametrize("method", ["greedy", "lp", "lp_tight", "milp", "rr", "ee"])
def test_binary_rounds_meet_the_budget_and_never_ask_a_known_pair(tmp_path, dataset, truth, method):
    exp = experiment(strategy=method, initial={"kind": "dense", "images": 2})
    labels = run_round(tmp_path, dataset, exp, 0, None)
    dense = load_labels(labels)["dense_image"].tolist()
    asked: set[tuple[int, int]] = set()
    for r in (1, 2):
        before = load_labels(labels)
        labels = run_round(tmp_path, dataset, exp, r, labels)
        queries = rows(tmp_path / f"round_{r}" / "queries.csv")
        assert len(queries) == exp["budget"]
        assert {q["unit"] for q in queries} == {"binary"} and {q["strategy"] for q in queries} == {method}
        assert [int(q["rank"]) for q in queries] == list(range(exp["budget"]))
        assert all(q["score"] and q["model"] == f"model{r}" and q["y"] == "" for q in queries)
        pairs = [(int(q["image_index"]), int(q["class"])) for q in queries]
        per_image = np.bincount([i for i, _ in pairs], minlength=N_TRAIN)
        assert per_image.max() <= exp["binary"]["c_max"]
        assert not set(pairs) & asked and len(set(pairs)) == len(pairs)
        assert not any(i in dense for i, _ in pairs)
        asked |= set(pairs)
        answers = rows(tmp_path / f"round_{r}" / "answers.csv")
        assert [a["answer"] for a in answers] == ["yes" if truth[i, c] else "no" for i, c in pairs]
        assert all(float(a["seconds"]) == 3.0 and float(a["clicks"]) == 1.0 for a in answers)
        store = load_labels(labels)
        assert store["binary_image"].size == before["binary_image"].size + len(pairs)  # cumulative
        np.testing.assert_array_equal(store["binary_image"][: before["binary_image"].size], before["binary_image"])
        assert store.seconds == pytest.approx(before.seconds + 3.0 * len(pairs))
    np.testing.assert_array_equal(store["binary_present"], truth[store["binary_image"], store["binary_class"]])
    assert sorted(set(store["binary_round"].tolist())) == [1, 2]


def test_pairs_shown_by_labelled_pixels_are_not_asked(tmp_path, dataset):
    exp = experiment(initial={"kind": "pixels", "per_image": 6}, budget=40, binary={"c_max": 8})
    labels = run_round(tmp_path, dataset, exp, 0, None)
    store = load_labels(labels)
    shown = set(zip(store["pixel_image"].tolist(), store["pixel_class"].tolist()))
    run_round(tmp_path, dataset, exp, 1, labels)
    pairs = {(int(q["image_index"]), int(q["class"])) for q in rows(tmp_path / "round_1" / "queries.csv")}
    assert len(pairs) == 40 and not pairs & shown


def test_selection_is_deterministic(tmp_path, dataset):
    exp = experiment(strategy="rr", initial={"kind": "dense", "images": 2})
    labels = run_round(tmp_path, dataset, exp, 0, None)
    dump = fake_dump(tmp_path / "dump.h5")
    for name in ("a.csv", "b.csv"):
        steps.select_queries(dataset, exp, 1, tmp_path / name, labels=labels, inference=dump)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_budget_beyond_the_pairs_left_asks_what_is_left_then_stops(tmp_path, dataset, capsys):
    exp = experiment(initial={"kind": "dense", "images": N_TRAIN - 2}, budget=50, binary={"c_max": 8})
    labels = run_round(tmp_path, dataset, exp, 0, None)
    labels = run_round(tmp_path, dataset, exp, 1, labels)
    assert "only 16 image-class pairs are left" in capsys.readouterr().err
    assert len(rows(tmp_path / "round_1" / "queries.csv")) == 2 * C
    with pytest.raises(ValueError, match="no image-class pair of the pool is left"):
        run_round(tmp_path, dataset, exp, 2, labels)


def test_bad_inputs_get_clear_errors(tmp_path, dataset):
    exp = experiment(initial={"kind": "dense", "images": N_TRAIN + 1})
    with pytest.raises(ValueError, match="initial.images must be between 1 and the 12 pool images"):
        steps.select_queries(dataset, exp, 0, tmp_path / "q.csv")
    exp = experiment(initial={"kind": "dense", "images": 2})
    labels = run_round(tmp_path, dataset, exp, 0, None)
    with pytest.raises(ValueError, match="needs round 0's inference dump"):
        steps.select_queries(dataset, exp, 1, tmp_path / "q.csv", labels=labels)
    wrong = fake_dump(tmp_path / "wrong.h5", n=N_TRAIN - 1)
    with pytest.raises(ValueError, match=r"class presence has shape \(11, 8\)"):
        steps.select_queries(dataset, exp, 1, tmp_path / "q.csv", labels=labels, inference=wrong)


def test_add_binary_answers_refuses_asking_twice_and_keeps_skips_out():
    store = add_binary_answers(LabelStore(), 1, [0, 1, 2], [3, 3, 4], [True, False, True], [True, True, False])
    assert store["binary_image"].tolist() == [0, 1] and store["binary_present"].tolist() == [True, False]
    with pytest.raises(ValueError, match="already answered"):
        add_binary_answers(store, 2, [1], [3], [True], [True])
    with pytest.raises(ValueError, match="twice"):
        add_binary_answers(store, 2, [5, 5], [1, 1], [True, True], [True, True])
    again = add_binary_answers(store, 2, [2], [4], [False], [True])
    assert again["binary_round"].tolist() == [1, 1, 2]  # a skipped pair may be asked again


def test_answers_train_as_an_answer_matrix_with_the_configured_loss(dataset):
    job = Job(dataset, experiment(binary={"loss": {"presence_weight": 0.5}}), 1)
    assert UNIT.training_targets(LabelStore(), job) is None
    store = add_binary_answers(LabelStore(), 1, [0, 2], [1, 2], [True, False], [True, True])
    targets = UNIT.training_targets(store, job)
    expected = np.zeros((N_TRAIN, C), dtype=np.int8)
    expected[0, 1], expected[2, 2] = 1, -1
    np.testing.assert_array_equal(targets.answers, expected)
    assert targets.answer_loss["presence_weight"] == 0.5 and targets.points is None
