"""A human experiment (oracle.kind: human): the workflow stops for a person's answers and carries on.

End to end with the real Snakemake workflow on tests/configs/tiny.yaml reduced to one human experiment
of 2 rounds, then the steps on their own (alseg.human, update_labels' cost source, the report labels).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from annotate_fixtures import make_dataset
from conftest import REPO
from test_workflow import ran_jobs

from alseg.annotate.progress import progress_path_for
from alseg.config import deep_merge
from alseg.data import dataset_info, load_split
from alseg.defaults import BUILTIN_DEFAULTS
from alseg.human import (
    HumanAnswersError,
    accept_human_answers,
    accepted_path,
    human_answers_input,
)
from alseg.labels import LabelStore, load_labels, record_round_cost, round_cost_source
from alseg.queries import ANSWER_COLUMNS, QUERY_COLUMNS, AnswerFileError, read_queries, write_table
from alseg.report import hours_label
from alseg.steps import select_queries, update_labels

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
EXP = "people"


def human_config(path: Path, **experiment) -> Path:
    """tiny.yaml with one experiment, answered by people."""
    config = yaml.safe_load(TINY.read_text())
    config["experiments"] = {EXP: {"strategy": "margin", "oracle": {"kind": "human"}, **experiment}}
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """The same command every time (as a user reruns it), in ``workdir`` with its config.yaml."""
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)


def output(done: subprocess.CompletedProcess) -> str:
    return done.stdout + done.stderr


def round_dir(workdir: Path, r: int) -> Path:
    return workdir / "results" / EXP / f"round_{r}"


def truth_answers(dataset: Path, queries: Path, seconds: np.ndarray, annotator: str = "ana") -> list[dict[str, str]]:
    """A person's perfect answers to ``queries``: the ground truth class, ``skip`` on void."""
    table = read_queries(queries)
    masks = load_split(dataset, "train").masks
    truth = masks[table["image_index"], table["y"], table["x"]]
    ignore = dataset_info(dataset).ignore_index
    return [
        {"query_id": qid, "answer": "skip" if t == ignore else str(int(t)), "source": "human",
         "annotator": annotator, "seconds": repr(float(s)), "clicks": "1"}
        for qid, t, s in zip(table["query_id"], truth, seconds)
    ]


def write_answers(path: Path, rows: list[dict[str, str]]) -> Path:
    table = {c: np.array([row[c] for row in rows], dtype=object) for c in ANSWER_COLUMNS}
    write_table(path, table, ANSWER_COLUMNS)
    return path


def answer_round(workdir: Path, r: int, seconds: np.ndarray) -> Path:
    rdir = round_dir(workdir, r)
    dataset = workdir / "results" / "datasets" / "synthetic.h5"
    return write_answers(rdir / "human_answers.csv", truth_answers(dataset, rdir / "queries.csv", seconds))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def snapshot(paths) -> dict[str, tuple[bytes, int]]:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


def human_files(workdir: Path) -> list[Path]:
    return sorted((workdir / "results").rglob("human_answers*"))


@pytest.fixture(scope="module")
def flow(tmp_path_factory) -> dict:
    """The whole user flow: run (stops at round 0), answer, rerun (stops at round 1), answer, rerun."""
    workdir = tmp_path_factory.mktemp("human")
    human_config(workdir / "config.yaml")
    first = snakemake(workdir)
    stopped_at_0 = tmp_path_factory.mktemp("stopped_at_0")
    shutil.copytree(workdir, stopped_at_0, dirs_exist_ok=True)
    seconds = {0: np.round(np.linspace(0.6, 2.5, 40), 3), 1: np.round(np.linspace(1.0, 3.0, 40), 3)}
    answer_round(workdir, 0, seconds[0])
    second = snakemake(workdir)
    answer_round(workdir, 1, seconds[1])
    third = snakemake(workdir)
    return {"workdir": workdir, "runs": [first, second, third], "seconds": seconds, "stopped_at_0": stopped_at_0}


def copy_of(flow: dict, tmp_path: Path, which: str = "workdir") -> Path:
    """A copy of a finished (or stopped) run, times kept, for a test that changes it."""
    target = tmp_path / "run"
    shutil.copytree(flow[which], target)
    return target


def test_stops_at_round_0_naming_the_file_and_the_command(flow):
    done = flow["runs"][0]
    assert done.returncode != 0
    text = output(done)
    rdir = f"results/{EXP}/round_0"
    assert f"round 0 of experiment '{EXP}' waits for a person" in text
    assert f"Answer the 40 queries of {rdir}/queries.csv into {rdir}/human_answers.csv" in text
    assert (f"alseg annotate {rdir}/queries.csv --dataset results/datasets/synthetic.h5 "
            f"--out {rdir}/human_answers.csv") in text
    assert f"alseg import-labelstudio export.json {rdir}/queries.csv" in text
    assert "rerun the same snakemake command" in text and "--keep-going" in text
    stopped = flow["stopped_at_0"] / rdir
    assert (stopped / "queries.csv").is_file()
    assert not (stopped / "answers.csv").exists() and not (stopped / "human_answers.csv").exists()


def test_answered_round_0_carries_on_to_round_1_and_stops_again(flow):
    done = flow["runs"][1]
    assert done.returncode != 0
    text = output(done)
    assert f"round 1 of experiment '{EXP}' waits for a person" in text
    assert f"alseg annotate results/{EXP}/round_1/queries.csv" in text
    assert "round 0 of experiment" not in text


def test_answered_run_completes_with_the_people_s_answers_and_measured_hours(flow):
    done, workdir, seconds = flow["runs"][2], flow["workdir"], flow["seconds"]
    assert done.returncode == 0, output(done)[-5000:]
    for r in (0, 1):
        rdir = round_dir(workdir, r)
        answers, given = read_csv(rdir / "answers.csv"), read_csv(rdir / "human_answers.csv")
        assert answers == given  # the validated copy, in the order of queries.csv
        assert {a["source"] for a in answers} == {"human"} and {a["annotator"] for a in answers} == {"ana"}
        metrics = json.loads((rdir / "metrics.json").read_text())
        paid = sum(float(s.sum()) for k, s in seconds.items() if k <= r)
        assert metrics["cost_source"] == "measured"
        assert metrics["seconds"] == pytest.approx(paid) and metrics["hours"] == pytest.approx(paid / 3600)
        assert metrics["clicks"] == 40 * (r + 1)
    curve = read_csv(workdir / "results" / EXP / "learning_curve.csv")
    assert [row["cost_source"] for row in curve] == ["measured", "measured"]
    assert read_csv(workdir / "results" / "comparison.csv")[0]["cost_source"] == "measured"
    assert {row["cost_source"] for row in read_csv(workdir / "results" / "comparison_rounds.csv")} == {"measured"}
    assert "| measured |" in (workdir / "results" / "comparison.md").read_text()
    assert (workdir / "results" / "comparison.png").stat().st_size > 1000


def test_rerun_and_touched_queries_leave_the_human_answers_alone(flow, tmp_path):
    workdir = copy_of(flow, tmp_path)
    before = snapshot(human_files(workdir))
    assert len(before) == 4  # human_answers.csv and its acceptance record, rounds 0 and 1
    done = snakemake(workdir)
    assert done.returncode == 0 and "Nothing to be done" in output(done), output(done)[-3000:]
    time.sleep(0.01)
    for r in (0, 1):
        (round_dir(workdir, r) / "queries.csv").touch()
    # Snakemake 9 compares the content of an input that only looks newer: nothing reruns.
    done = snakemake(workdir)
    assert done.returncode == 0 and "Nothing to be done" in output(done), output(done)[-3000:]
    assert snapshot(human_files(workdir)) == before


def test_edited_earlier_answer_retrains_but_keeps_the_answered_queries(flow, tmp_path):
    """Fixing round 0's answers retrains rounds 0 and 1; round 1's queries (answered) are kept."""
    workdir = copy_of(flow, tmp_path)
    human0 = round_dir(workdir, 0) / "human_answers.csv"
    rows = read_csv(human0)
    rows[0]["answer"] = "skip"
    write_answers(human0, rows)
    round1 = [round_dir(workdir, 1) / n for n in ("queries.csv", "human_answers.csv", "answers.csv")]
    kept = snapshot(round1)
    done = snakemake(workdir)
    assert done.returncode == 0, output(done)[-5000:]
    jobs = ran_jobs(done)
    assert jobs.get("answer_queries") == 1 and jobs.get("train") == 2 and "select_queries" not in jobs, jobs
    assert snapshot(round1) == kept
    assert read_csv(round_dir(workdir, 0) / "answers.csv")[0]["answer"] == "skip"


def test_queries_chosen_again_are_not_answered_by_old_answers(flow, tmp_path):
    workdir = copy_of(flow, tmp_path)
    before = snapshot(human_files(workdir))
    human_config(workdir / "config.yaml", budget=4)  # other queries in every round
    done = snakemake(workdir, "--keep-going")
    assert done.returncode != 0
    text = output(done)
    assert f"results/{EXP}/round_0/human_answers.csv answers another version of results/{EXP}/round_0/queries.csv" in text
    assert "were chosen again after human_answers.csv was accepted for them" in text
    assert "Answers are never applied to other questions" in text and "alseg annotate" in text
    assert snapshot(human_files(workdir)) == before
    assert not (round_dir(workdir, 0) / "answers.csv").exists()


def test_malformed_human_answers_are_reported_and_nothing_is_used(flow, tmp_path):
    workdir = copy_of(flow, tmp_path, "stopped_at_0")
    rdir = round_dir(workdir, 0)
    rows = truth_answers(workdir / "results/datasets/synthetic.h5", rdir / "queries.csv", np.ones(40))
    rows[3]["query_id"] = "r0-999999"
    rows[5]["answer"] = "42"
    write_answers(rdir / "human_answers.csv", rows)
    done = snakemake(workdir)
    assert done.returncode != 0
    text = output(done)
    assert f"results/{EXP}/round_0/human_answers.csv: invalid answers (3 problems); nothing was used" in text
    assert "line 7: query 'r0-000005' (pixel): answer '42' is not a class id of the dataset (0..7" in text
    assert "1 answers for unknown query ids (not among the 40 queries): line 5 'r0-999999'" in text
    assert "1 queries have no answer: 'r0-000003'" in text
    assert not (rdir / "answers.csv").exists() and not accepted_path(rdir / "human_answers.csv").exists()


def test_answers_written_to_answers_csv_stop_the_run_before_they_are_lost(flow, tmp_path):
    """A person's answers in the workflow's own answers.csv: moved, not deleted by a rerun."""
    workdir = copy_of(flow, tmp_path, "stopped_at_0")
    rdir = round_dir(workdir, 0)
    misplaced = write_answers(rdir / "answers.csv", truth_answers(
        workdir / "results/datasets/synthetic.h5", rdir / "queries.csv", np.ones(40)))
    before = misplaced.read_bytes()
    done = snakemake(workdir)
    assert done.returncode != 0
    text = output(done)
    assert f"results/{EXP}/round_0/answers.csv holds a person's answers" in text
    assert f"mv results/{EXP}/round_0/answers.csv results/{EXP}/round_0/human_answers.csv" in text
    assert misplaced.read_bytes() == before


# -- the steps on their own ----------------------------------------------------------------------------


@pytest.fixture
def human_round(tmp_path: Path) -> dict[str, Path]:
    """Round 0 of a human experiment on a tiny dataset: queries.csv and the paths around it."""
    dataset = make_dataset(tmp_path / "data.h5", n_train=3, height=24, width=32)
    experiment = deep_merge(BUILTIN_DEFAULTS, {"dataset": "d", "initial_budget": 4, "oracle": {"kind": "human"}})
    rdir = tmp_path / "results" / "exp" / "round_0"
    select_queries(dataset, experiment, 0, rdir / "queries.csv")
    return {"dataset": dataset, "queries": rdir / "queries.csv", "human": rdir / "human_answers.csv",
            "answers": rdir / "answers.csv", "experiment": experiment}


def test_without_answers_the_step_names_the_file_and_commands(human_round):
    with pytest.raises(HumanAnswersError) as info:
        accept_human_answers(human_round["dataset"], human_round["queries"], human_round["answers"])
    message = str(info.value)
    assert message.startswith("round 0 of experiment 'exp' waits for a person (oracle: human). Answer the 12 queries")
    assert f"alseg annotate {human_round['queries']} --dataset {human_round['dataset']} --out {human_round['human']}" in message
    assert f"alseg export-labelstudio {human_round['queries']}" in message
    assert not human_round["answers"].exists()
    # The file appeared after the run was planned (not an input of the job): rerun to use it.
    write_answers(human_round["human"], truth_answers(human_round["dataset"], human_round["queries"], np.ones(12)))
    with pytest.raises(HumanAnswersError, match="appeared after this run was planned; rerun the same snakemake"):
        accept_human_answers(human_round["dataset"], human_round["queries"], human_round["answers"])


def test_accepted_answers_are_copied_and_bound_to_their_queries(human_round):
    dataset, queries, human, answers = (human_round[k] for k in ("dataset", "queries", "human", "answers"))
    rows = truth_answers(dataset, queries, np.arange(12) / 4)
    write_answers(human, rows[::-1])  # any order
    assert accept_human_answers(dataset, queries, answers, human=human) == 12
    assert read_csv(answers) == rows  # in the order of queries.csv
    record = json.loads(accepted_path(human).read_text())
    assert record["queries"] == "queries.csv" and record["pool"]["height"] == 24
    given = human.read_bytes()
    # Idempotent: the same answers again.
    assert accept_human_answers(dataset, queries, answers, human=human) == 12
    # The queries change (chosen again): refused, nothing written, the person's file untouched.
    table = read_queries(queries)
    table["x"] = (table["x"] + 1) % 32
    write_table(queries, table, QUERY_COLUMNS)
    answers.unlink()
    with pytest.raises(HumanAnswersError, match="answers another version of .*were chosen again after"):
        accept_human_answers(dataset, queries, answers, human=human)
    assert not answers.exists() and human.read_bytes() == given


def test_first_acceptance_checks_the_annotation_progress_or_the_file_times(human_round):
    dataset, queries, human, answers = (human_round[k] for k in ("dataset", "queries", "human", "answers"))
    write_answers(human, truth_answers(dataset, queries, np.ones(12)))
    progress = progress_path_for(human)
    progress.write_text(json.dumps({"format": "alseg-annotation-progress/1", "queries_sha256": "0" * 64, "answers": []}))
    with pytest.raises(HumanAnswersError, match="changed after the annotation page began on them"):
        accept_human_answers(dataset, queries, answers, human=human)
    progress.unlink()
    later = human.stat().st_mtime + 5
    os.utime(queries, (later, later))  # queries.csv written after the answers
    with pytest.raises(HumanAnswersError, match=r"were written after human_answers.csv.*\n    touch "):
        accept_human_answers(dataset, queries, answers, human=human)
    os.utime(human, (later + 1, later + 1))  # the user says: these answers are for these queries
    assert accept_human_answers(dataset, queries, answers, human=human) == 12


def test_a_person_s_file_says_human(human_round):
    dataset, queries, human, answers = (human_round[k] for k in ("dataset", "queries", "human", "answers"))
    rows = truth_answers(dataset, queries, np.ones(12))
    rows[2]["source"] = "oracle"
    write_answers(human, rows)
    with pytest.raises(AnswerFileError, match="line 4: source 'oracle' in a person's answers file"):
        accept_human_answers(dataset, queries, answers, human=human)
    assert not answers.exists()


def test_input_function_guards_a_person_s_answers_in_answers_csv(human_round):
    rdir = human_round["queries"].parent
    assert human_answers_input(rdir) == []
    rows = truth_answers(human_round["dataset"], human_round["queries"], np.ones(12))
    write_answers(human_round["answers"], [dict(r, source="oracle") for r in rows])
    assert human_answers_input(rdir) == []  # simulated answers: the workflow's to rewrite
    write_answers(human_round["answers"], rows)
    with pytest.raises(HumanAnswersError, match="holds a person's answers.*\n    mv "):
        human_answers_input(rdir)
    write_answers(human_round["human"], rows)
    assert human_answers_input(rdir) == [str(human_round["human"])]


def test_answers_without_seconds_are_paid_the_estimate_and_make_the_cost_mixed(human_round):
    dataset, queries, answers = human_round["dataset"], human_round["queries"], human_round["answers"]
    rows = truth_answers(dataset, queries, np.full(12, 2.0))
    for row in rows[:3]:
        row["seconds"] = ""
    write_answers(answers, rows)
    costs = {"pixel": {"clicks": 1, "seconds": 1.5}}
    update_labels(dataset, queries, answers, 0, answers.with_name("labels.npz"), costs=costs)
    store = load_labels(answers.with_name("labels.npz"))
    assert store.seconds == pytest.approx(9 * 2.0 + 3 * 1.5)
    assert store.cost_source == "mixed" and store["round_cost_source"].tolist() == [2]
    assert not list(answers.parent.glob(".labels.npz*"))  # the staged store is gone
    # Simulated answers: estimated; a round of a person's measured answers after them: mixed overall.
    write_answers(answers, [dict(r, source="oracle", seconds="1.5") for r in rows])
    update_labels(dataset, queries, answers, 0, answers.with_name("labels.npz"), costs=costs)
    assert load_labels(answers.with_name("labels.npz")).cost_source == "estimated"


def test_cost_source_of_rounds_and_of_the_plot():
    assert round_cost_source(5, 5) == "measured" and round_cost_source(0, 5) == "estimated"
    assert round_cost_source(2, 5) == "mixed" and round_cost_source(0, 0) == "estimated"
    store = record_round_cost(LabelStore(), 0, "measured", seconds=3.0)
    assert store.cost_source == "measured" and store.seconds == 3.0
    assert record_round_cost(store, 1, "estimated").cost_source == "mixed"
    assert LabelStore(round_seconds=np.ones(2)).cost_source == "estimated"  # a store from before
    measured = {"a": [{"cost_source": "measured"}]}
    estimated = {"b": [{"cost_source": "estimated"}, {"cost_source": None}]}
    assert hours_label(measured) == "annotation hours (measured)"
    assert hours_label(estimated) == "annotation hours (estimated)"
    assert hours_label({**measured, **estimated}) == "annotation hours (measured and estimated)"
    assert hours_label({"c": [{"cost_source": "mixed"}]}) == "annotation hours (measured and estimated)"
