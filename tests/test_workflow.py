"""End to end: the real Snakemake workflow on tiny synthetic data (2 rounds, resume to 3, kill and resume)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from conftest import CAMVID, REPO, needs_camvid

from alseg.labels import load_labels
from alseg.units import labelled_pixels

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TINY = REPO / "tests" / "configs" / "tiny.yaml"


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(TINY), "--cores", "2", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return done


def ran_jobs(done: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts by rule from Snakemake's 'Job stats' table."""
    text = done.stdout + done.stderr
    counts: dict[str, int] = {}
    if "Job stats:" not in text:
        return counts
    table = text.split("Job stats:", 1)[1].splitlines()[3:]
    for line in table:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total" or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def file_digests(root: Path, names=("queries.csv", "answers.csv", "metrics.json")) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for n in names for p in sorted(root.rglob(n))}


@pytest.fixture(scope="module")
def three_rounds(tmp_path_factory) -> Path:
    """An uninterrupted run of rounds 0..2, the reference for resumed runs."""
    workdir = tmp_path_factory.mktemp("straight")
    snakemake(workdir, "--config", "round=2")
    return workdir


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> tuple[Path, dict[str, float], subprocess.CompletedProcess]:
    """Rounds 0..1, then the same workflow extended to round 2."""
    workdir = tmp_path_factory.mktemp("resumed")
    snakemake(workdir, "--config", "round=1")
    mtimes = {str(p): p.stat().st_mtime for p in (workdir / "results").rglob("round_[01]/*") if p.is_file()}
    extended = snakemake(workdir, "--config", "round=2")
    return workdir, mtimes, extended


def test_round_files_follow_the_contract(resumed):
    workdir, _, _ = resumed
    rdir = workdir / "results" / "margin" / "round_1"
    for name in ["queries.csv", "answers.csv", "labels.npz", "model.pt", "inference.h5", "metrics.json"]:
        assert (rdir / name).is_file(), name
    with open(rdir / "queries.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:13] == ["query_id", "round", "image", "unit", "y", "x", "superpixel", "class",
                                  "score", "rank", "strategy", "seed", "model"]
    assert len(rows) == 8 * 5  # 8 pool images x budget 5
    assert {r["unit"] for r in rows} == {"pixel"} and {r["strategy"] for r in rows} == {"margin"}
    assert all(r["model"] and r["score"] and r["superpixel"] == "" for r in rows)
    metrics = json.loads((rdir / "metrics.json").read_text())
    for key in ["miou", "per_class_iou", "pixel_accuracy", "labelled_pixels", "clicks", "seconds", "round", "split"]:
        assert key in metrics, key
    assert metrics["split"] == "test" and metrics["round"] == 1
    with open(rdir / "answers.csv") as f:
        answers = list(csv.DictReader(f))
    assert list(answers[0])[:6] == ["query_id", "answer", "source", "annotator", "seconds", "clicks"]
    store = load_labels(rdir / "labels.npz")
    assert store["asked_image"].size == 2 * 8 * 5  # cumulative over rounds 0 and 1
    assert metrics["labelled_pixels"] == labelled_pixels(store)
    assert metrics["clicks"] == 80 and metrics["seconds"] == pytest.approx(80 * 1.42)
    with h5py.File(rdir / "inference.h5") as h5:  # the next round's draws, among round 1's eligible pixels
        assert "pixel/top1" not in h5 and h5["pixel/margin/offsets"].shape == (8 + 1,)
        assert h5["pixel/margin/top2"].dtype == np.float16
        assert (h5["pixel/eligible"][()] <= 32 * 32 - 2 * 5).all() and h5["pixel"].attrs["budget"] == 5
    round0 = workdir / "results" / "random" / "round_0" / "queries.csv"
    assert round0.read_text().count("random") == 8 * 5
    curve = (workdir / "results" / "margin" / "learning_curve.csv").read_text().splitlines()
    assert len(curve) == 1 + 3
    assert (workdir / "results" / "comparison.png").stat().st_size > 1000


def test_extending_rounds_runs_only_the_new_round(resumed):
    _, mtimes, extended = resumed
    jobs = ran_jobs(extended)
    assert jobs.get("train") == 2 and jobs.get("select_queries") == 2, jobs  # round 2 of each experiment
    assert "prepare_dataset" not in jobs
    for path, mtime in mtimes.items():
        assert Path(path).stat().st_mtime == mtime, f"{path} was rewritten"


def test_resumed_run_equals_uninterrupted_run(resumed, three_rounds):
    workdir, _, _ = resumed
    assert file_digests(workdir / "results") == file_digests(three_rounds / "results")


def test_round_0_is_trained_once_and_shared_by_experiments_that_differ_later(three_rounds, tmp_path):
    results = three_rounds / "results"
    margin, random = (json.loads((results / e / "round_0" / "train_log.json").read_text()) for e in ("margin", "random"))
    assert "model_of" not in margin and random["model_of"] == "results/margin/round_0/model.pt"
    assert random["training_digest"] == margin["training_digest"] and random["history"] == margin["history"]
    assert (results / "random/round_0/model.pt").read_bytes() == (results / "margin/round_0/model.pt").read_bytes()
    shared = {e: json.loads((results / e / "round_0" / "metrics.json").read_text()) for e in ("margin", "random")}
    assert shared["margin"]["model"] == shared["random"]["model"]
    assert shared["margin"]["miou"] == shared["random"]["miou"]
    logs = [(results / e / "round_1" / "train_log.json").read_text() for e in ("margin", "random")]
    assert all("model_of" not in text for text in logs)  # later rounds train their own labels
    # share_round0: false trains it in each; the training is deterministic, so the models are the same
    alone = tmp_path / "alone"
    alone.mkdir()
    done = snakemake(alone, "--config", "round=0", "share_round0=False")
    assert ran_jobs(done).get("train") == 2
    for e in ("margin", "random"):
        own = json.loads((alone / "results" / e / "round_0" / "train_log.json").read_text())
        assert "model_of" not in own and own["training_digest"] == margin["training_digest"]
        metrics = json.loads((alone / "results" / e / "round_0" / "metrics.json").read_text())
        assert metrics["model"] == shared["margin"]["model"]  # the checksum of the weights


def test_a_warm_schedule_trains_the_later_rounds_from_the_previous_model(tmp_path):
    """``training.warm_start`` as a mapping: round 0 trains cold with the schedule, round 1 starts from round
    0's model with the mapping's schedule; changing that schedule retrains round 1 only."""
    config = yaml.safe_load(TINY.read_text())
    config["experiments"] = {"margin": {"strategy": "margin", "training": {"warm_start": {"epochs": 1}}}}
    path = tmp_path / "warm.yaml"
    path.write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "--configfile", str(path))
    logs = [json.loads((tmp_path / "results/margin" / f"round_{r}" / "train_log.json").read_text()) for r in (0, 1)]
    assert [len(log["history"]) for log in logs] == [config["defaults"]["training"]["epochs"], 1]
    # the digest names the model it starts from by its weights, so the run audits clean from anywhere
    from alseg.cli import main

    assert main(["audit", str(tmp_path / "results"), "--configfile", str(path)]) == 0
    config["experiments"]["margin"]["training"]["warm_start"]["epochs"] = 3
    path.write_text(yaml.safe_dump(config))
    assert ran_jobs(snakemake(tmp_path, "--configfile", str(path), "-n"))["train"] == 1


def test_nothing_reruns_when_nothing_changed(three_rounds):
    done = snakemake(three_rounds, "--config", "round=2", "-n")
    assert "Nothing to be done" in done.stdout + done.stderr


def test_a_resumed_run_audits_clean(resumed, capsys):
    """The pixel experiments' run, resumed from round 1 to 2: every file agrees (tests/test_audit.py has
    the tampering cases); both share round 0, then part."""
    from alseg.cli import main

    workdir = resumed[0]
    code = main(["audit", str(workdir / "results"), "--configfile", str(TINY), "--compare", "margin", "random"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "no findings: the 6 rounds of 2 experiments agree" in out
    assert "margin (A) and random (B) first ask different items in round 1" in out


def kill_midway(workdir: Path, sig: int) -> None:
    """Start a 3-round run and send ``sig`` to Snakemake once round 1 is under way."""
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(TINY), "--cores", "2", "--config", "round=2"]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    target = workdir / "results" / "margin" / "round_1" / "labels.npz"
    deadline = time.time() + 300
    while not target.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, sig)
    proc.wait(timeout=120)


def test_hard_killed_run_resumes_after_unlock(tmp_path, three_rounds):
    kill_midway(tmp_path, signal.SIGKILL)  # no clean-up at all: Snakemake's lock stays behind
    snakemake(tmp_path, "--config", "round=2", "--unlock")
    snakemake(tmp_path, "--config", "round=2")
    assert file_digests(tmp_path / "results") == file_digests(three_rounds / "results")


def test_bad_round_stops_before_any_job(tmp_path):
    for value in ["1e1", "-1", "ten"]:
        done = snakemake(tmp_path, "--config", f"round={value}", check=False)
        assert done.returncode != 0
        assert "config 'round'" in done.stderr
    assert not (tmp_path / "results").exists()


def test_report_holds_the_curves_and_comparison(three_rounds):
    report = three_rounds / "report.html"
    snakemake(three_rounds, "--config", "round=2", "--report", str(report))
    html = report.read_text(encoding="utf-8", errors="replace")
    for name in ["comparison.png", "comparison.csv", "learning_curve.csv"]:
        assert name in html, f"{name} missing from the report"


def test_an_interim_report_reads_the_finished_experiments_and_writes_nothing_in_the_run(three_rounds, tmp_path):
    """benchmarks/camvid.py --report-only: finished experiments give the workflow's own comparison; an
    experiment with a round not yet evaluated is left out; a missing metrics.json is computed beside."""
    import shutil

    sys.path.insert(0, str(REPO / "benchmarks"))
    from finished_runs import finished_results

    from alseg.config import resolve_config

    cfg = resolve_config({**yaml.safe_load(TINY.read_text()), "round": 2})
    done, unfinished = finished_results([three_rounds], cfg, tmp_path / "interim")
    assert sorted(done["experiments"]) == ["margin", "random"] and unfinished == []
    for name in ("comparison_rounds.csv", "comparison.md", "comparison.csv", "per_class_iou.csv"):
        assert (tmp_path / "interim/results" / name).read_bytes() == (three_rounds / "results" / name).read_bytes()

    run = tmp_path / "run"
    shutil.copytree(three_rounds / "results", run / "results", ignore=shutil.ignore_patterns("*.h5", "*.pt"))
    (run / "results/random/round_2/evaluation.json").unlink()  # random's last round is still training
    (run / "results/margin/round_2/metrics.json").unlink()  # margin's last metrics step has not run
    before = {str(p): p.read_bytes() for p in (run / "results").rglob("*") if p.is_file()}
    done, unfinished = finished_results([run], cfg, tmp_path / "interim")
    assert list(done["experiments"]) == ["margin"] and done["compare"] == ["margin"] and unfinished == ["random"]
    assert {str(p): p.read_bytes() for p in (run / "results").rglob("*") if p.is_file()} == before  # untouched
    computed = tmp_path / "interim/results/margin/round_2/metrics.json"
    assert not computed.is_symlink()
    assert computed.read_bytes() == (three_rounds / "results/margin/round_2/metrics.json").read_bytes()
    assert not (tmp_path / "interim/results/random").exists()


def test_kept_experiments_are_reported_beside_a_later_run_and_never_overwritten(three_rounds, tmp_path):
    """benchmarks/camvid.py --keep: a finished experiment's small files are copied into a store (no models,
    no labels); a report over a later run folder that lacks it plus the store equals the original report;
    keeping again leaves the kept copy as it is."""
    import shutil

    sys.path.insert(0, str(REPO / "benchmarks"))
    from finished_runs import finished_results, keep_finished

    from alseg.config import resolve_config

    cfg = resolve_config({**yaml.safe_load(TINY.read_text()), "round": 2})
    run = tmp_path / "run"
    shutil.copytree(three_rounds / "results", run / "results", ignore=shutil.ignore_patterns("*.h5", "*.pt"))
    (run / "results/random/round_2/evaluation.json").unlink()  # random is not finished
    (run / "results/margin/round_2/metrics.json").unlink()  # computed while keeping
    store = tmp_path / "kept"
    assert keep_finished(run, cfg, store) == (["margin"], [])
    kept = sorted(p.relative_to(store / "results/margin").as_posix() for p in (store / "results/margin").rglob("*")
                  if p.is_file())
    assert kept and all(p.split("/")[-1] in ("evaluation.json", "metrics.json", "train_log.json") or
                        p.split("/")[1] == "logs" for p in kept)
    assert "round_2/metrics.json" in kept and not list(store.rglob("*.npz")) and not list(store.rglob("*.pt"))

    later = tmp_path / "later"  # another machine: random finished there, margin only in the store
    shutil.copytree(three_rounds / "results/random", later / "results/random")
    done, unfinished = finished_results([later, store], cfg, tmp_path / "interim")
    assert sorted(done["experiments"]) == ["margin", "random"] and unfinished == []
    for name in ("comparison_rounds.csv", "comparison.md", "per_class_iou.csv"):
        assert (tmp_path / "interim/results" / name).read_bytes() == (three_rounds / "results" / name).read_bytes()

    before = (store / "results/margin/round_0/evaluation.json").read_bytes()
    (run / "results/margin/round_0/evaluation.json").write_text("{}")
    assert keep_finished(run, cfg, store) == ([], ["margin"])
    assert (store / "results/margin/round_0/evaluation.json").read_bytes() == before


@needs_camvid
def test_camvid_smoke_run(tmp_path):
    """Two rounds on a handful of real CamVid images (SegNet layout), resized small."""
    config = tmp_path / "camvid.yaml"
    config.write_text(
        "round: 1\n"
        "datasets:\n"
        f"  camvid: {{kind: camvid, root: '{CAMVID}', resize: [72, 96],"
        " limit: {train: 6, val: 3, test: 3}}\n"
        "defaults:\n"
        "  dataset: camvid\n"
        "  budget: 10\n"
        "  model: {name: small_unet, width: 8}\n"
        "  training: {epochs: 1, batch_size: 3, milestones: [], augment: {scale: [1.0, 1.0]}}\n"
        "experiments:\n"
        "  margin: {strategy: margin}\n"
    )
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(config), "--cores", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-5000:]
    metrics = json.loads((tmp_path / "results" / "margin" / "round_1" / "metrics.json").read_text())
    assert metrics["labelled_pixels"] == 6 * 10 * 2
    assert len(metrics["per_class_iou"]) == 11 and "Pedestrian" in metrics["per_class_iou"]
    with h5py.File(tmp_path / "results" / "datasets" / "camvid.h5") as f:
        assert f["train/images"].shape == (6, 72, 96, 3)


def test_lint_is_clean():
    done = subprocess.run([*SNAKEMAKE, "--lint", "--cores", "1"], cwd=REPO, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Lints for" not in done.stdout + done.stderr, done.stdout + done.stderr
