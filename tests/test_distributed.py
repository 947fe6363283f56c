"""Training in several processes (``training.gpus``): the ranks' shares make one process's batch, and two
gloo ranks on CPU train one process's model.

Without BatchNorm (replaced by identities in tests/ddp_train_worker.py) and without dropout, two ranks give
one process's weights up to float rounding (measured: at most 2e-6 after 4 epochs) and the same history,
with binary answers and with a batch smaller than the ranks (a stand-in sample). With BatchNorm, CPU ranks
normalise over their own share (torch has no SyncBatchNorm on CPU): another model, which learns as well.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO
from test_train import _disc_data, _sparse_points
from test_workflow_shards import snakemake

from alseg.batches import _batches
from alseg.distributed import World, rank_positions, term_scales
from alseg.points import TrainingLabels
from alseg.train import train_model

WORKER = REPO / "tests" / "ddp_train_worker.py"
MODEL = {"name": "small_unet", "width": 8, "levels": 2, "dropout": 0.0}
TRAINING = {"epochs": 4, "lr": 5e-3, "backbone_lr": 5e-3, "milestones": [100], "loader_threads": 0,
            "augment": {"scale": [0.8, 1.25], "color_jitter": 0.1}, "device": "cpu"}


@pytest.mark.parametrize("batch_size, ranks", [(8, 2), (5, 2), (3, 4), (1, 2), (7, 3)])
def test_the_ranks_shares_cover_each_batch_position_once(batch_size: int, ranks: int) -> None:
    shares = [rank_positions(batch_size, World(rank, ranks)) for rank in range(ranks)]
    counted = np.concatenate([positions for positions, counts in shares if counts])
    assert sorted(counted.tolist()) == list(range(batch_size))
    stand_ins = [positions for positions, counts in shares if not counts]
    assert len(stand_ins) == max(0, ranks - batch_size)
    assert all(positions.tolist() == [0] for positions in stand_ins)
    assert shares[0][1]  # rank 0 always trains a real sample


def test_scaled_rank_means_average_to_the_whole_batch_mean() -> None:
    rng = np.random.default_rng(0)
    values = [rng.normal(size=n) for n in (5, 0, 3)]  # rank 1 has nothing of this term
    world = 3
    counts = [v.size for v in values]
    scales = [term_scales([n], [sum(counts)], World(rank, world))[0] for rank, n in enumerate(counts)]
    averaged = sum(s * (v.mean() if v.size else 0.0) for s, v in zip(scales, values)) / world
    assert averaged == pytest.approx(np.concatenate(values).mean(), rel=1e-12)
    assert term_scales([0, 2], [0, 4], World(0, 2)) == (0.0, 1.0)


def test_the_ranks_batches_are_the_one_process_batch_split() -> None:
    images, masks = _disc_data(7, seed=0)
    points = TrainingLabels((_sparse_points(masks, 3, seed=0),)).by_image(len(images))
    order = [np.array([3, 1, 4]), np.array([0, 6, 2]), np.array([5])]
    augment = {"scale": [0.8, 1.25], "color_jitter": 0.1}
    whole = list(_batches(images, points, order, 7, 2, augment, None, None))
    ranks = [list(_batches(images, points, order, 7, 2, augment, None, None, World(r, 2))) for r in range(2)]
    for k, batch in enumerate(whole):
        for rank in range(2):
            share, counts = rank_positions(len(order[k]), World(rank, 2))
            part = ranks[rank][k]
            np.testing.assert_array_equal(part.images, batch.images[share])
            assert part.stand_in == (not counts)
            if counts:
                picked = np.isin(batch.point_batch, share)
                np.testing.assert_array_equal(part.point_y, batch.point_y[picked])
                np.testing.assert_array_equal(part.point_cls, batch.point_cls[picked])
            else:
                assert part.kept == part.offered == 0 and part.point_y.size == 0
        assert sum(ranks[r][k].kept for r in range(2)) == batch.kept


def test_train_model_with_gpus_outside_a_process_group_is_an_error() -> None:
    images, masks = _disc_data(2, seed=0)
    with pytest.raises(ValueError, match="training.gpus is 2, but this process is one of 1"):
        train_model(MODEL, {**TRAINING, "gpus": 2}, images, _sparse_points(masks, 2, seed=0), None, None, 2, 255,
                    seed=0, log=lambda line: None)


def _train(folder: Path, ranks: int, batchnorm: bool, batch_size: int, labelled: int, answers: bool) -> dict:
    """Train in ``ranks`` processes (torchrun) or one, on 8 disc images of which ``labelled`` have points."""
    images, masks = _disc_data(8, seed=0)
    val_images, val_masks = _disc_data(4, seed=1)
    points = _sparse_points(masks, 5, seed=0)
    keep = points.image < labelled
    arrays = {"images": images, "val_images": val_images, "val_masks": val_masks,
              **{name: getattr(points, name)[keep] for name in ("image", "y", "x", "cls")}}
    if answers:  # image 7 answer-only (when unlabelled), "yes" and "no" answers on labelled images
        arrays["answers"] = np.zeros((8, 2), np.int8)
        arrays["answers"][[7, 2, 5]] = [[1, -1], [0, 1], [1, 0]]
    np.savez(folder / "data.npz", **arrays)
    settings = {"model": MODEL, "seed": 3, "batchnorm": batchnorm,
                "training": {**TRAINING, "batch_size": batch_size, "gpus": ranks}}
    (folder / "settings.json").write_text(json.dumps(settings))
    out = folder / f"ranks{ranks}.pt"
    launcher = [] if ranks == 1 else ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
    done = subprocess.run([sys.executable, *launcher, str(WORKER), str(folder / "data.npz"),
                           str(folder / "settings.json"), str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return torch.load(out)


@pytest.mark.parametrize("batch_size, labelled, answers", [
    (3, 7, True),   # answers: an answer-only image joins every batch; "yes" and "no" losses
    (3, 7, False),  # 7 images in batches of 3: the last batch has one sample, rank 1 a stand-in
], ids=["answers", "stand_in"])
def test_two_ranks_train_the_one_process_model_without_batchnorm(tmp_path, batch_size, labelled, answers) -> None:
    one = _train(tmp_path, 1, False, batch_size, labelled, answers)
    two = _train(tmp_path, 2, False, batch_size, labelled, answers)
    for name, weights in one["state"].items():
        np.testing.assert_allclose(two["state"][name].numpy(), weights.numpy(), atol=2e-5, err_msg=name)
    assert two["best_epoch"] == one["best_epoch"]
    for mine, theirs in zip(two["history"], one["history"]):
        for key in ("points", "seen_fraction", "skipped_batches", "val_miou"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-6), key
        for key in ("loss", "answer_loss") if answers else ("loss",):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-4), key


def test_two_ranks_with_batchnorm_train_a_model_as_good(tmp_path) -> None:
    one = _train(tmp_path, 1, True, 4, 8, False)
    two = _train(tmp_path, 2, True, 4, 8, False)
    assert one["best_val_miou"] > 0.8 and two["best_val_miou"] > 0.8, (one["best_val_miou"], two["best_val_miou"])
    assert [h["points"] for h in two["history"]] == [h["points"] for h in one["history"]]


def test_the_workflow_trains_with_two_processes(tmp_path) -> None:
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    config["round"] = 1
    config["experiments"] = {"margin": {"strategy": "margin", "training": {"gpus": 2}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path)
    for r in (0, 1):
        folder = tmp_path / "results" / "margin" / f"round_{r}"
        log = (folder / "logs" / "train.log").read_text()
        assert "training in 2 processes" in log, log
        train_log = json.loads((folder / "train_log.json").read_text())
        assert len(train_log["history"]) == config["defaults"]["training"]["epochs"]
        assert train_log["history"][-1]["val_miou"] is not None
    assert (tmp_path / "results" / "margin" / "round_1" / "queries.csv").is_file()
    assert (tmp_path / "results" / "margin" / "learning_curve.csv").is_file()
