"""Progress of long steps: every line names the experiment and round, and a training run writes a bounded
number of them (a bar on a terminal instead)."""

from __future__ import annotations

import io
import sys
from types import SimpleNamespace

import numpy as np

from alseg.joblog import PROGRESS_LINES, Progress, job_name, logged_step, report_every
from alseg.points import PointLabels
from alseg.train import train_model

EPOCHS = 16
TINY_TRAINING = {"epochs": EPOCHS, "batch_size": 2, "iterations_per_epoch": 1, "milestones": [100], "augment": None,
                 "loader_threads": 0, "val_every": 100}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _tiny_training() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
    labels = PointLabels(np.array([0, 1]), np.array([3, 4]), np.array([5, 6]), np.array([0, 1]))
    train_model({"name": "small_unet", "width": 4, "levels": 2}, TINY_TRAINING, images, labels, None, None,
                num_classes=2, ignore_index=255, seed=0, device="cpu")


def test_job_name_is_the_experiment_and_round():
    assert job_name(SimpleNamespace(exp="margin", r="3")) == "margin r3"
    assert job_name(SimpleNamespace(exp="margin")) == "margin"
    assert job_name(SimpleNamespace(dataset="synthetic")) is None


def test_training_lines_name_experiment_and_round_and_are_few(tmp_path, monkeypatch):
    terminal = io.StringIO()  # Snakemake's log or a pipe: no terminal
    monkeypatch.setattr(sys, "stderr", terminal)
    with logged_step(tmp_path / "train.log", "margin r3"):
        _tiny_training()
    lines = terminal.getvalue().splitlines()
    assert lines and all(line.startswith("[margin r3] ") for line in lines)
    epochs = [line for line in lines if line.startswith("[margin r3] epoch ")]
    assert 5 <= len(epochs) <= PROGRESS_LINES + 2, epochs
    assert epochs[0].startswith(f"[margin r3] epoch 1/{EPOCHS} loss") and f"epoch {EPOCHS}/{EPOCHS} " in epochs[-1]
    logged = [line for line in (tmp_path / "train.log").read_text().splitlines() if line.startswith("epoch ")]
    assert logged == [line.removeprefix("[margin r3] ") for line in epochs]  # the file's path names the job


def test_a_terminal_gets_a_bar_and_the_log_file_the_lines(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with logged_step(tmp_path / "train.log", "margin r3"):
        progress = Progress(40, "train")
        for epoch in range(1, 41):
            progress.step(epoch, f"epoch {epoch}/40 loss 0.5", "loss 0.5")
        progress.close()
    shown = terminal.getvalue()
    assert "[margin r3] train" in shown and "40/40" in shown and "epoch 1/40" not in shown
    logged = [line for line in (tmp_path / "train.log").read_text().splitlines() if line.startswith("epoch ")]
    assert logged == [f"epoch {e}/40 loss 0.5" for e in (1, 5, 10, 15, 20, 25, 30, 35, 40)]


def test_lines_are_about_progress_lines_whatever_the_length():
    assert report_every(2) == 1 and report_every(60) == 8 and report_every(1000) == 125
    for total, batch in [(2, 1), (60, 1), (61, 1), (1000, 1), (100, 32)]:
        lines: list[str] = []
        progress = Progress(total, "infer", lines.append)
        for done in range(batch, total + batch, batch):
            progress.step(min(done, total), str(min(done, total)))
        assert lines[-1] == str(total) and len(lines) <= min(total, PROGRESS_LINES + 2), (total, lines)
