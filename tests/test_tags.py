"""Image tags (alseg.units.tags): selection, the simulated annotator, the label store, training targets,
people's answers (validation, Label Studio) and a tiny run of the workflow."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from annotate_fixtures import make_dataset, write_queries
from conftest import REPO

from alseg import steps
from alseg.annotate.labelstudio import export_tasks, import_answers
from alseg.answers import answer_problems
from alseg.config import ConfigError, deep_merge, resolve_config
from alseg.data import dataset_info, load_split
from alseg.data.prepared import prepare_dataset
from alseg.defaults import BUILTIN_DEFAULTS
from alseg.labels import LabelStore, load_labels
from alseg.queries import AnswerFileError, read_queries
from alseg.units import Job, labelled_pixels
from alseg.units.binary import class_presence_from_masks
from alseg.units.tags import (
    UNIT,
    add_tags_answers,
    choose_images,
    format_tags,
    k_center_order,
    parse_tags,
    presence_uncertainty,
)

N_TRAIN, SIZE, C = 12, 32, 8


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "synthetic.h5"
    prepare_dataset({"kind": "synthetic", "seed": 0, "n_train": N_TRAIN, "n_val": 2, "n_test": 2,
                     "height": SIZE, "width": SIZE}, path)
    return path


@pytest.fixture(scope="module")
def truth(dataset) -> np.ndarray:
    masks = load_split(dataset, "train").masks
    return class_presence_from_masks(masks, np.arange(len(masks)), C, dataset_info(dataset).ignore_index)


def experiment(**override) -> dict:
    base = deep_merge(BUILTIN_DEFAULTS, {"dataset": "synthetic", "unit": "tags", "strategy": "entropy", "budget": 3,
                                         "initial": {"kind": "pixels", "per_image": 4}})
    return deep_merge(base, override)


def fake_dump(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as h5:
        h5["image/class_presence"] = rng.uniform(0.01, 0.99, size=(N_TRAIN, C)).astype(np.float32)
        h5["image/features"] = rng.normal(size=(N_TRAIN, 6)).astype(np.float32)
        h5.attrs["model"] = f"model{seed}"
    return path


def run_round(tmp: Path, dataset: Path, exp: dict, r: int, previous: Path | None) -> Path:
    folder = tmp / f"round_{r}"
    folder.mkdir(exist_ok=True)
    dump = fake_dump(tmp / f"dump_{r}.h5", seed=r) if r > 0 else None
    steps.select_queries(dataset, exp, r, folder / "queries.csv", labels=previous, inference=dump)
    steps.answer_queries(dataset, folder / "queries.csv", exp, r, folder / "answers.csv")
    steps.update_labels(dataset, folder / "queries.csv", folder / "answers.csv", r, folder / "labels.npz",
                        previous=previous, costs=exp["costs"])
    return folder / "labels.npz"


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_answers_are_sets_of_class_ids_or_none():
    assert format_tags(np.array([False, True, False, True])) == "1;3" and format_tags(np.zeros(4, bool)) == "none"
    assert parse_tags("1;3", 4).tolist() == [False, True, False, True] and not parse_tags("none", 4).any()
    problems = {answer: UNIT.answer_problem(answer, 4, "0..3") for answer in
                ("0;2", "2;0", "none", "5", "1;1", "cat", "1,2", "none;1")}
    assert problems["0;2"] is None and problems["2;0"] is None and problems["none"] is None
    assert "names 5, not a class id of the dataset (0..3)" in problems["5"]
    assert "names a class twice" in problems["1;1"]
    assert all("is not the ids of the classes present joined by ';'" in problems[a] for a in ("cat", "1,2", "none;1"))
    assert UNIT.answered_clicks("0;2") == 3 and UNIT.answered_clicks("none") == 1
    clicks, seconds = UNIT.answer_cost(np.array(["0;2;3", "none", "skip"], dtype=object),
                                       {"tags": {"clicks": 1, "seconds_per_class": 1.0}}, 8)
    assert clicks.tolist() == [4.0, 1.0, 1.0] and seconds.tolist() == [8.0, 8.0, 8.0]


def test_rounds_tag_new_images_with_their_ground_truth_classes(tmp_path, dataset, truth):
    exp = experiment()
    labels = run_round(tmp_path, dataset, exp, 0, None)
    assert {q["unit"] for q in rows(tmp_path / "round_0" / "queries.csv")} == {"pixel"}  # the initial set
    tagged: list[int] = []
    for r in (1, 2):
        labels = run_round(tmp_path, dataset, exp, r, labels)
        queries = rows(tmp_path / f"round_{r}" / "queries.csv")
        images = [int(q["image_index"]) for q in queries]
        assert len(images) == 3 and {q["unit"] for q in queries} == {"tags"} and not set(images) & set(tagged)
        assert [int(q["rank"]) for q in queries] == [0, 1, 2] and {q["model"] for q in queries} == {f"model{r}"}
        scores = [float(q["score"]) for q in queries]
        assert scores == sorted(scores, reverse=True)  # entropy: most uncertain first
        answers = rows(tmp_path / f"round_{r}" / "answers.csv")
        assert [a["answer"] for a in answers] == [format_tags(truth[i]) for i in images]
        assert [float(a["clicks"]) for a in answers] == [1.0 + truth[i].sum() for i in images]
        assert {float(a["seconds"]) for a in answers} == {1.0 * C}
        tagged += images
    store = load_labels(labels)
    assert store["tags_image"].tolist() == tagged and store["tags_round"].tolist() == [1, 1, 1, 2, 2, 2]
    present = np.zeros((N_TRAIN, C), bool)
    present[store["tags_present_image"], store["tags_present_class"]] = True
    np.testing.assert_array_equal(present[tagged], truth[tagged])
    assert labelled_pixels(store) == N_TRAIN * 4  # tags label no pixel
    round0 = load_labels(tmp_path / "round_0" / "labels.npz")
    assert store.clicks == round0.clicks + sum(1.0 + truth[i].sum() for i in tagged)


def test_tagged_images_train_as_presence_and_exact_absence(dataset):
    store = add_tags_answers(LabelStore(), 1, np.array([2, 5]), np.array([[1, 0, 1, 0, 0, 0, 0, 0],
                                                                           [0, 0, 0, 0, 0, 0, 0, 0]], bool))
    job = Job(dataset, experiment(tags={"loss": {"presence_weight": 0.5}}), 1)
    targets = UNIT.training_targets(store, job)
    expected = np.zeros((N_TRAIN, C), np.int8)
    expected[2] = [1, -1, 1, -1, -1, -1, -1, -1]
    expected[5] = -1  # none of the classes: every class absent
    np.testing.assert_array_equal(targets.answers, expected)
    assert targets.answer_loss["presence_weight"] == 0.5 and targets.points is None
    assert UNIT.known_pairs(store, N_TRAIN, C)[[2, 5]].all() and not UNIT.known_pairs(store, N_TRAIN, C)[0].any()
    with pytest.raises(ValueError, match="already tagged"):
        add_tags_answers(store, 2, np.array([5]), np.zeros((1, C), bool))
    with pytest.raises(ValueError, match="same image twice"):
        add_tags_answers(store, 2, np.array([1, 1]), np.zeros((2, C), bool))


def test_diverse_spreads_the_images_where_entropy_crowds_them():
    # two clusters of images; the five most uncertain are all in the first
    features = np.array([[1, 0.02 * k] for k in range(6)] + [[0.02 * k, 1] for k in range(6)], dtype=np.float64)
    uncertainty = np.array([5, 5, 5, 5, 5, 1, 4, 0.5, 0.5, 0.5, 0.5, 0.5])
    eligible = np.ones(12, bool)
    rng = np.random.default_rng(0)
    by_entropy = choose_images("entropy", uncertainty, features, eligible, 2, 3, rng)
    diverse = choose_images("diverse", uncertainty, features, eligible, 2, 3, rng)  # among the 6 most uncertain
    assert set(by_entropy.tolist()) <= {0, 1, 2, 3, 4}
    assert diverse.tolist() == [0, 6]  # the most uncertain, then the farthest from it: the other cluster
    # started from a known image of the second cluster, k-center goes to the first
    order = k_center_order(features, np.arange(12), np.array([8]), 2, uncertainty)
    assert order[0] < 6
    picked = choose_images("random", uncertainty, None, np.arange(12) < 6, 3, 3, rng)
    assert len(set(picked.tolist())) == 3 and picked.max() < 6
    assert presence_uncertainty(np.array([[0.5, 0.5], [0.01, 0.99]]))[0] > presence_uncertainty(
        np.array([[0.01, 0.99]]))[0]


def test_a_pool_without_images_left_is_a_clear_error(tmp_path, dataset, capsys):
    exp = experiment(budget=N_TRAIN)
    labels = run_round(tmp_path, dataset, exp, 0, None)
    labels = run_round(tmp_path, dataset, deep_merge(exp, {"budget": N_TRAIN + 5}), 1, labels)
    assert f"only {N_TRAIN} pool images are left to tag" in capsys.readouterr().err
    with pytest.raises(ValueError, match="every pool image is tagged"):
        run_round(tmp_path, dataset, exp, 2, labels)


def test_config_of_a_tags_experiment():
    config = {"round": 1, "datasets": {"s": {"kind": "synthetic"}},
              "experiments": {"t": {"dataset": "s", "unit": "tags", "strategy": "margin"}}}
    with pytest.raises(ConfigError, match="'margin' is not a strategy of unit 'tags'.*random, entropy, diverse"):
        resolve_config(config)
    config["experiments"]["t"].update(strategy="diverse", oracle={"kind": "human"}, initial={"kind": "dense"})
    with pytest.raises(ConfigError, match="t/initial: a dense initial set .* is not answered by people"):
        resolve_config(config)
    config["experiments"]["t"]["initial"] = {"kind": "pixels", "per_image": 3}
    merged = resolve_config(config)["experiments"]["t"]
    assert merged["tags"]["candidates"] == 4 and merged["costs"]["tags"] == {"clicks": 1, "seconds_per_class": 1.0}


def test_people_s_answers_are_checked_and_round_trip_through_label_studio(tmp_path):
    dataset = make_dataset(tmp_path / "ds.h5", n_train=3)
    classes = dataset_info(dataset).classes
    queries = write_queries(tmp_path / "round" / "queries.csv", "tags", [(0,), (1,), (2,)])
    table = read_queries(queries)
    answer = {"source": "human", "annotator": "ana", "seconds": "4", "clicks": ""}
    given = [{**answer, "query_id": "r1-000000", "answer": "1;9"}, {**answer, "query_id": "r1-000001", "answer": ""},
             {**answer, "query_id": "r1-000002", "answer": "none"}]
    problems = answer_problems(given, table, classes)
    assert len(problems) == 2 and "names 9, not a class id" in problems[0]
    assert "empty answer (expected the ids of the classes present joined by ';'" in problems[1]

    export = export_tasks(queries, dataset, tmp_path / "round" / "ls" / "tasks.json")
    tasks = json.loads(export.tasks.read_text())
    assert "Mark every class present" in tasks[0]["data"]["question"] and "predictions" not in tasks[0]
    config = export.config.read_text()
    assert 'choice="multiple"' in config and f'<Choice value="{classes[3]}"/>' in config
    chosen = [[classes[3], classes[1]], ["none"], [classes[2]]]
    for task, choices in zip(tasks, chosen):
        task["annotations"] = [{"result": [{"from_name": "tags", "to_name": "image", "type": "choices",
                                            "value": {"choices": choices}}], "lead_time": 6.5,
                                "completed_by": {"email": "ana@example.org"}}]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    out = tmp_path / "round" / "human_answers.csv"
    assert import_answers(tmp_path / "export.json", queries, out) == 3
    assert [(r["answer"], r["clicks"], r["seconds"]) for r in rows(out)] == [
        ("1;3", "3", "6.5"), ("none", "1", "6.5"), ("2", "2", "6.5")]
    tasks[1]["annotations"][0]["result"][0]["value"]["choices"] = ["none", classes[0]]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    with pytest.raises(AnswerFileError, match="task 2 .*is not the ids of the classes present"):
        import_answers(tmp_path / "export.json", queries, tmp_path / "other.csv")


def test_a_tags_experiment_runs_in_the_workflow(tmp_path):
    """Two rounds of every tags strategy through Snakemake on the tiny synthetic data."""
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    config["round"] = 2
    config["experiments"] = {f"tags_{s}": {"unit": "tags", "strategy": s, "budget": 3,
                                           "initial": {"kind": "pixels", "per_image": 5}}
                             for s in ("random", "entropy", "diverse")}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(tmp_path / "config.yaml"), "--cores", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    results = tmp_path / "results"
    for name in config["experiments"]:
        tagged: set[int] = set()
        for r in (1, 2):
            rdir = results / name / f"round_{r}"
            images = {int(q["image_index"]) for q in rows(rdir / "queries.csv")}
            assert len(images) == 3 and not images & tagged
            tagged |= images
            metrics = json.loads((rdir / "metrics.json").read_text())
            assert metrics["unit"] == "tags" and metrics["labelled_pixels"] == 8 * 5
            log = json.loads((rdir / "train_log.json").read_text())
            assert any("answer_loss" in epoch for epoch in log["history"])  # the tags trained
            with h5py.File(rdir / "inference.h5") as h5:
                assert list(h5) == ["image"]  # what the tags unit reads
        assert len(rows(results / name / "learning_curve.csv")) == 3
    assert "tags_diverse" in (results / "comparison.csv").read_text()
