"""People answer superpixel and binary rounds through the real workflow, as they answer pixel ones.

The run of tests/human_flow.py holds four experiments on tiny synthetic data: an AMSP+S superpixel
experiment and a binary (greedy) one, each answered by the simulated oracle and by a person whose
``human_answers.csv`` is written from the ground truth, with measured seconds. The person's run stops at each round for the answers, then completes; since the answers are the oracle's,
it must pick the same queries and hold the same labels as the oracle's run, and be paid the seconds the
person took rather than the estimate. (Pixel rounds: tests/test_human_round.py.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from human_flow import COST_ARRAYS, SUPERPIXELS, UNITS, rows, snakemake

from alseg.labels import load_labels
from alseg.queries import ANSWER_COLUMNS, write_table


@pytest.fixture(scope="module")
def flow(human_flow) -> dict:
    return human_flow


@pytest.mark.parametrize("unit", list(UNITS))
def test_people_s_rounds_stop_for_answers_then_complete(flow, unit):
    first, second, third = (r.stdout + r.stderr for r in flow["runs"])
    assert flow["runs"][0].returncode != 0 and flow["runs"][1].returncode != 0
    assert f"round 0 of experiment '{unit}_human' waits for a person" in first
    assert f"round 1 of experiment '{unit}_human' waits for a person" in second
    assert f"round 0 of experiment '{unit}_human'" not in second
    if unit == "superpixel":  # people see the merged regions they are asked about
        assert f"--regions {SUPERPIXELS}" in first
    assert flow["runs"][2].returncode == 0, third[-5000:]


@pytest.mark.parametrize("unit", list(UNITS))
def test_perfect_answers_give_the_oracle_s_queries_and_labels_at_measured_cost(flow, unit):
    results = flow["workdir"] / "results"
    for r in (0, 1):
        human, oracle = results / f"{unit}_human" / f"round_{r}", results / f"{unit}_oracle" / f"round_{r}"
        asked = rows(human / "queries.csv")
        assert asked and {q["unit"] for q in asked} == {"pixel" if r == 0 and unit == "binary" else unit}
        assert asked == rows(oracle / "queries.csv")
        answers = rows(human / "answers.csv")
        assert [a["answer"] for a in answers] == [a["answer"] for a in rows(oracle / "answers.csv")]
        assert {a["source"] for a in answers} == {"human"}
        mine, theirs = load_labels(human / "labels.npz"), load_labels(oracle / "labels.npz")
        assert mine.names() == theirs.names()
        for name in mine.names():
            if name not in COST_ARRAYS:
                np.testing.assert_array_equal(mine[name], theirs[name], err_msg=f"round {r}: {name}")
        metrics = json.loads((human / "metrics.json").read_text())
        assert metrics["cost_source"] == "measured"
        paid = sum(flow["seconds"][k] * len(rows(results / f"{unit}_human" / f"round_{k}" / "answers.csv"))
                   for k in range(r + 1))
        assert metrics["seconds"] == pytest.approx(paid)
        assert json.loads((oracle / "metrics.json").read_text())["cost_source"] == "estimated"


def snapshot(paths: list[Path]) -> dict[str, tuple[bytes, int]]:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


@pytest.fixture(scope="module")
def edited(flow, tmp_path_factory) -> dict:
    """The finished run, then a person's fix to an earlier answer of each unit and an update of the code."""
    workdir = tmp_path_factory.mktemp("edited") / "run"
    shutil.copytree(flow["workdir"], workdir)
    results = workdir / "results"
    answered = {unit: [p for r in (0, 1) for p in sorted((results / f"{unit}_human" / f"round_{r}").iterdir())
                       if p.name in ("queries.csv", "regions.npz")] for unit in UNITS}
    oracle = {unit: results / f"{unit}_oracle" / "round_1" / "queries.csv" for unit in UNITS}
    before = {unit: snapshot(paths) for unit, paths in answered.items()}
    oracle_before = {unit: path.stat().st_mtime_ns for unit, path in oracle.items()}
    trained = {unit: (results / f"{unit}_human" / "round_1" / "train_log.json").stat().st_mtime_ns for unit in UNITS}
    for unit in UNITS:
        human0 = results / f"{unit}_human" / "round_0" / "human_answers.csv"
        answers = rows(human0)
        answers[0]["answer"] = "skip"
        table = {c: np.array([a[c] for a in answers], dtype=object) for c in ANSWER_COLUMNS}
        write_table(human0, table, ANSWER_COLUMNS)
    done = snakemake(workdir, code_version="99.0")
    return {"workdir": workdir, "done": done, "answered": answered, "before": before, "oracle": oracle,
            "oracle_before": oracle_before, "trained": trained}


@pytest.mark.parametrize("unit", list(UNITS))
def test_an_edited_answer_and_a_code_update_keep_the_answered_queries(edited, unit):
    """Every protection of a person's answers holds for every unit: retraining after an edited answer
    (or a new code version) never chooses other queries for rounds a person answered."""
    done = edited["done"]
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    assert snapshot(edited["answered"][unit]) == edited["before"][unit]  # queries (and regions) kept
    results = edited["workdir"] / "results" / f"{unit}_human"
    assert rows(results / "round_0" / "answers.csv")[0]["answer"] == "skip"  # the fix is used...
    assert (results / "round_1" / "train_log.json").stat().st_mtime_ns != edited["trained"][unit]  # ...and trained on
    # the code update reached the simulated experiment, which chose its queries again
    assert edited["oracle"][unit].stat().st_mtime_ns != edited["oracle_before"][unit]
