"""A user's own config: only its experiments run (not the default config.yaml's), and several datasets with
different classes are compared end to end (README, "Your data")."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import REPO
from test_workflow import ran_jobs

from alseg.report import read_rows

TINY = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
FOLDER_CLASSES = [f"c{i}" for i in range(8)]


def snakemake(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    """Snakemake in ``workdir`` (which holds a copy of the default config.yaml) with ``--configfile config``."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(config), "--cores", "2", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, check=False)
    assert done.returncode == 0, f"snakemake failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def own_config(workdir: Path, experiments: dict, datasets: dict) -> Path:
    """Write the default config.yaml in ``workdir`` (as in a clone) and a user's config ``my.yaml`` beside it."""
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    config = {"round": 1, "datasets": datasets, "defaults": {**TINY["defaults"], "dataset": "mine"},
              "experiments": experiments}
    path = workdir / "my.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_user_config_runs_only_its_own_experiments(tmp_path):
    mine = own_config(tmp_path, {"mine_margin": {"strategy": "margin"}}, {"mine": TINY["datasets"]["synthetic"]})
    done = snakemake(tmp_path, mine, "-n")
    jobs = ran_jobs(done)
    assert jobs["train"] == 2 and jobs["learning_curve"] == 1 and jobs["prepare_dataset"] == 1, jobs
    text = done.stdout + done.stderr
    assert "results/mine_margin/round_1/model.pt" in text and "pixel_margin" not in text
    assert "results/datasets/synthetic.h5" not in text and "superpixels" not in jobs
    again = snakemake(tmp_path, mine, "-n", "--config", "round=3")  # --config still overrides the user's config
    assert ran_jobs(again)["train"] == 4


def test_two_datasets_with_different_classes_are_compared_per_dataset(tmp_path):
    folder = tmp_path / "folder"
    subprocess.run([sys.executable, "-m", "alseg.cli", "make-synthetic", "--seed", "1", str(folder)], check=True,
                   capture_output=True)
    datasets = {"mine": TINY["datasets"]["synthetic"],
                "photos": {"kind": "folder", "root": str(folder), "classes": FOLDER_CLASSES, "ignore_index": 255,
                           "resize": [32, 32], "limit": {"train": 8, "val": 4, "test": 4}}}
    experiments = {"mine_random": {"strategy": "random"},
                   "photos_random": {"strategy": "random", "dataset": "photos",
                                     "training": {"epochs": 20, "milestones": [10]}}}
    done = snakemake(tmp_path, own_config(tmp_path, experiments, datasets), "--config", "round=0")
    epochs = [line for line in done.stderr.splitlines() if line.startswith("[photos_random r0] epoch ")]
    assert epochs[-1].startswith("[photos_random r0] epoch 20/20 ") and len(epochs) <= 10, epochs  # joblog.Progress
    results = tmp_path / "results"
    final = {row["experiment"]: row for row in read_rows(results / "comparison.csv")}
    assert {name: row["dataset"] for name, row in final.items()} == {"mine_random": "mine", "photos_random": "photos"}
    assert not any(key.startswith("iou_") for key in final["mine_random"])  # classes are not compared across datasets
    assert {(row["dataset"], row["group"]) for row in read_rows(results / "comparison_rounds.csv")} == {
        ("mine", "mine_random"), ("photos", "photos_random")}
    for name, dataset, classes in [("mine", "mine_random", "iou_background"), ("photos", "photos_random", "iou_c0")]:
        rows = read_rows(results / f"per_class_iou_{name}.csv")
        assert [row["group"] for row in rows] == [dataset] and classes in rows[0], rows
    assert not (results / "per_class_iou.csv").exists()
    summary = (results / "comparison.md").read_text()
    assert summary.startswith("## Dataset mine") and summary.count("## Dataset") == 2
    mine, photos = summary.split("## Dataset photos")
    assert "background" in mine and "| c0 |" not in mine and "| c0 |" in photos and "background" not in photos
    for figure in ["comparison.png", "comparison_hours.png"]:
        assert (results / figure).stat().st_size > 5000
