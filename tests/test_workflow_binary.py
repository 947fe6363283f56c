"""End to end: binary experiments through the real Snakemake workflow (tiny data, rounds 0..2).

tests/configs/tiny.yaml with its experiments replaced by those of tests/configs/tiny_binary.yaml: one
greedy experiment on a dense initial set, one LP experiment on sparse initial pixels.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO

from alseg.data import dataset_info, load_split
from alseg.labels import load_labels
from alseg.units import labelled_pixels
from alseg.units.binary import class_presence_from_masks

TINY = REPO / "tests" / "configs" / "tiny.yaml"
BINARY = REPO / "tests" / "configs" / "tiny_binary.yaml"


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("binary")
    config = {**yaml.safe_load(TINY.read_text()), **yaml.safe_load(BINARY.read_text())}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    again = subprocess.run([*cmd, "-n"], capture_output=True, text=True, cwd=workdir)
    assert "Nothing to be done" in again.stdout + again.stderr
    return workdir, config


def test_binary_rounds_follow_the_config(run):
    workdir, config = run
    dataset = workdir / "results" / "datasets" / "synthetic.h5"
    info = dataset_info(dataset)
    masks = load_split(dataset, "train").masks
    n, c = masks.shape[0], len(info.classes)
    truth = class_presence_from_masks(masks, np.arange(n), c, info.ignore_index)
    for name, exp in config["experiments"].items():
        folder = workdir / "results" / name
        store0 = load_labels(folder / "round_0" / "labels.npz")
        known = np.zeros((n, c), dtype=bool)
        known[store0["pixel_image"], store0["pixel_class"]] = True
        if exp["initial"]["kind"] == "dense":
            dense = store0["dense_image"]
            assert dense.size == exp["initial"]["images"]
            known[dense] = True
            assert store0.seconds == exp["initial"]["images"] * 468.0
        else:
            assert labelled_pixels(store0) == n * exp["initial"]["per_image"]
        asked: set[tuple[int, int]] = set()
        previous = store0
        for r in (1, 2):
            queries = read_rows(folder / f"round_{r}" / "queries.csv")
            assert len(queries) == exp["budget"]  # the budget is met exactly
            assert {q["unit"] for q in queries} == {"binary"} and {q["strategy"] for q in queries} == {
                exp["strategy"]}
            assert all(q["score"] and q["model"] and q["seed"] and q["image"].startswith("train_") for q in queries)
            assert sorted(int(q["rank"]) for q in queries) == list(range(exp["budget"]))
            pairs = [(int(q["image_index"]), int(q["class"])) for q in queries]
            assert np.bincount([i for i, _ in pairs]).max() <= exp["binary"]["c_max"]  # C_max respected
            assert len(set(pairs)) == len(pairs) and not set(pairs) & asked  # never asked twice
            assert not any(known[i, j] for i, j in pairs)  # nor anything the labels already show
            asked |= set(pairs)
            answers = read_rows(folder / f"round_{r}" / "answers.csv")
            assert [a["answer"] for a in answers] == ["yes" if truth[i, j] else "no" for i, j in pairs]
            store = load_labels(folder / f"round_{r}" / "labels.npz")
            # cumulative: the previous round's store, then this round's answers
            k = previous["binary_image"].size
            assert store["binary_image"].size == k + len(pairs)
            np.testing.assert_array_equal(store["binary_image"][:k], previous["binary_image"])
            assert set(zip(store["binary_image"][k:].tolist(), store["binary_class"][k:].tolist())) == set(pairs)
            assert (store["binary_round"][k:] == r).all()
            assert labelled_pixels(store) == labelled_pixels(store0)
            metrics = json.loads((folder / f"round_{r}" / "metrics.json").read_text())
            assert metrics["unit"] == "binary" and metrics["strategy"] == exp["strategy"]
            assert metrics["seconds"] == pytest.approx(store0.seconds + 3.0 * exp["budget"] * r)
            previous = store
        curve = read_rows(folder / "learning_curve.csv")
        assert [int(row["round"]) for row in curve] == [0, 1, 2]
    assert (workdir / "results" / "comparison.csv").is_file()
