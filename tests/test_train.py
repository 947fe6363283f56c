"""Training on sparse points: learning, point-only loss, determinism, checkpoint selection on val."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alseg.augment import normalise_images
from alseg.batch_loss import point_loss
from alseg.models import build_model, forward_logits, model_checksum
from alseg.points import DenseLabels, PointLabels, TrainingLabels
from alseg.predict import evaluate, predict
from alseg.train import train_model

MODEL = {"name": "small_unet", "width": 8, "levels": 2}
FAST = {
    "epochs": 8,
    "batch_size": 4,
    "lr": 5e-3,
    "backbone_lr": 5e-3,
    "milestones": [100],
    "augment": {"scale": [0.8, 1.25], "color_jitter": 0.1},
    "iterations_per_epoch": 4,
    "loader_threads": 2,
}
IGNORE = 255


def _disc_data(count: int, seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Two classes with a clear colour rule: reddish disc (class 1) on a bluish background (class 0)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.zeros((count, size, size, 3), np.uint8)
    masks = np.zeros((count, size, size), np.uint8)
    for i in range(count):
        cy, cx = rng.integers(10, size - 10, 2)
        radius = rng.integers(5, 9)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
        masks[i] = disc
        colours = np.where(disc[..., None], [200, 50, 40], [40, 60, 190])
        images[i] = np.clip(colours + rng.integers(-25, 26, (size, size, 3)), 0, 255)
    masks[:, 0, :] = IGNORE  # a void row: ignored by metrics and never a label
    return images, masks


def _sparse_points(masks: np.ndarray, per_class: int, seed: int) -> PointLabels:
    rng = np.random.default_rng(seed)
    parts = []
    for i, mask in enumerate(masks):
        for c in (0, 1):
            ys, xs = np.nonzero(mask == c)
            pick = rng.choice(ys.size, per_class, replace=False)
            parts.append((np.full(per_class, i), ys[pick], xs[pick], np.full(per_class, c)))
    return PointLabels(*(np.concatenate(column) for column in zip(*parts)))


@pytest.fixture(scope="module")
def data():
    train_images, train_masks = _disc_data(8, seed=0)
    val_images, val_masks = _disc_data(4, seed=1)
    return train_images, train_masks, val_images, val_masks


def test_dense_labels_train_the_model_of_their_points(data) -> None:
    images, masks, val_images, val_masks = data
    dense = DenseLabels(np.array([5, 0, 3]), masks[[5, 0, 3]], IGNORE)
    cfg = {**FAST, "epochs": 2}
    runs = [train_model(MODEL, cfg, images, labels, val_images, val_masks, 2, IGNORE, seed=3, log=lambda s: None)
            for labels in (TrainingLabels((dense,)), dense.points())]
    assert model_checksum(runs[0].model) == model_checksum(runs[1].model)
    assert runs[0].history[-1]["points"] == runs[1].history[-1]["points"] > 0
    assert [h["loss"] for h in runs[0].history] == [h["loss"] for h in runs[1].history]


def test_dense_labels_of_camvid_sized_masks_are_quick() -> None:
    import time

    masks = np.random.default_rng(0).integers(0, 12, (20, 360, 480), dtype=np.uint8)
    started = time.perf_counter()
    labels = TrainingLabels((DenseLabels(np.arange(20), masks, 11),))
    columns = {name: sum(p.size for p in labels.column(name).pieces()) for name in ("image", "y", "x", "class")}
    groups = labels.by_image(20)
    points = sum(groups.of(i)[0].size for i in range(20))
    assert time.perf_counter() - started < 2.0  # ~160k points per image, each made four times
    assert set(columns.values()) == {points} and points == len(labels) == int((masks != 11).sum())


def test_sparse_points_reach_high_val_miou(data) -> None:
    images, masks, val_images, val_masks = data
    labels = _sparse_points(masks, per_class=5, seed=0)  # 10 points per image
    lines: list[str] = []
    result = train_model(MODEL, FAST, images, labels, val_images, val_masks, 2, IGNORE, seed=0, log=lines.append)
    assert result.best_val_miou > 0.85
    assert len(result.history) == FAST["epochs"]
    assert sum(line.startswith("epoch ") for line in lines) == FAST["epochs"]
    assert all(0 < entry["seen_fraction"] <= 1 for entry in result.history)
    assert not result.model.training
    scores = evaluate(result.model, val_images, val_masks, 2, IGNORE, batch_size=3)
    assert scores.miou == pytest.approx(result.best_val_miou)


def test_trainer_loss_is_the_mean_over_labelled_points_only(data) -> None:
    """With lr 0, no augmentation and no dropout, the logged loss of one step equals cross-entropy at the
    labelled points of the initial model; unlabelled pixels (here: all of class 0) play no part."""
    images, masks, _, _ = data
    model_cfg = {**MODEL, "dropout": 0.0}
    ys, xs = np.nonzero(masks[0] == 1)
    labels = PointLabels(np.zeros(ys.size), ys, xs, np.ones(ys.size))
    cfg = {**FAST, "epochs": 1, "iterations_per_epoch": 1, "batch_size": 1, "lr": 0.0, "backbone_lr": 0.0,
           "augment": None}
    result = train_model(model_cfg, cfg, images, labels, None, None, 2, IGNORE, seed=4, log=lambda s: None)

    torch.manual_seed(4)  # the trainer initialises under the run's seed
    model = build_model(model_cfg, 2).train()
    with torch.no_grad():
        logits = forward_logits(model, torch.from_numpy(normalise_images(images[:1])))
    point_ce = torch.nn.functional.cross_entropy(logits[0, :, ys, xs].T, torch.ones(ys.size, dtype=torch.long))
    dense_ce = torch.nn.functional.cross_entropy(logits, torch.from_numpy(masks[:1].astype(np.int64)),
                                                 ignore_index=IGNORE)
    assert result.history[0]["loss"] == pytest.approx(float(point_ce), rel=1e-5)
    assert result.history[0]["loss"] != pytest.approx(float(dense_ce), rel=1e-2)
    assert result.history[0]["points"] == ys.size and result.history[0]["seen_fraction"] == 1.0


def test_point_loss_gathers_exactly_the_labelled_logits() -> None:
    logits = torch.randn(2, 3, 5, 6, requires_grad=True)
    b, y, x, c = (torch.tensor(v) for v in ([0, 1, 1], [0, 4, 2], [5, 0, 3], [2, 0, 1]))
    loss = point_loss(logits, b, y, x, c)
    expected = torch.nn.functional.cross_entropy(
        torch.stack([logits[0, :, 0, 5], logits[1, :, 4, 0], logits[1, :, 2, 3]]), c
    )
    torch.testing.assert_close(loss, expected)
    loss.backward()
    touched = logits.grad.abs().sum(dim=1) > 0
    assert touched.sum() == 3 and touched[0, 0, 5] and touched[1, 4, 0] and touched[1, 2, 3]


def test_training_is_deterministic_on_cpu(data) -> None:
    images, masks, val_images, val_masks = data
    labels = _sparse_points(masks, per_class=3, seed=1)
    cfg = {**FAST, "epochs": 2, "augment": {}}  # full default augmentation: every random draw is used
    runs = [
        train_model(MODEL, cfg, images, labels, val_images, val_masks, 2, IGNORE, seed=5, log=lambda s: None)
        for _ in range(2)
    ]
    first, second = (r.model.state_dict() for r in runs)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert [h["loss"] for h in runs[0].history] == [h["loss"] for h in runs[1].history]
    other = train_model(MODEL, cfg, images, labels, val_images, val_masks, 2, IGNORE, seed=6, log=lambda s: None)
    assert model_checksum(other.model) != model_checksum(runs[0].model)


def test_loader_threads_do_not_change_the_result(data) -> None:
    images, masks, val_images, val_masks = data
    labels = _sparse_points(masks, per_class=3, seed=1)
    checksums = {
        model_checksum(
            train_model(MODEL, {**FAST, "epochs": 1, "loader_threads": threads}, images, labels, None, None,
                        2, IGNORE, seed=3, log=lambda s: None).model
        )
        for threads in (0, 1, 3)
    }
    assert len(checksums) == 1


def test_best_checkpoint_is_the_best_val_epoch(data) -> None:
    images, masks, val_images, val_masks = data
    labels = _sparse_points(masks, per_class=2, seed=2)
    # a learning rate high enough that val mIoU moves up and down between epochs
    cfg = {**FAST, "epochs": 6, "lr": 0.05, "backbone_lr": 0.05, "iterations_per_epoch": 2}
    result = train_model(MODEL, cfg, images, labels, val_images, val_masks, 2, IGNORE, seed=0, log=lambda s: None)
    curve = [h["val_miou"] for h in result.history]
    assert result.best_epoch == int(np.argmax(curve)) + 1
    assert result.best_val_miou == max(curve)
    scores = evaluate(result.model, val_images, val_masks, 2, IGNORE)
    assert scores.miou == pytest.approx(result.best_val_miou)


def test_val_every_and_no_val_set(data) -> None:
    images, masks, val_images, val_masks = data
    labels = _sparse_points(masks, per_class=2, seed=2)
    cfg = {**FAST, "epochs": 3, "val_every": 2}
    result = train_model(MODEL, cfg, images, labels, val_images, val_masks, 2, IGNORE, seed=0, log=lambda s: None)
    assert [h["val_miou"] is not None for h in result.history] == [False, True, True]  # every 2nd and last
    without = train_model(MODEL, cfg, images, labels, None, None, 2, IGNORE, seed=0, log=lambda s: None)
    assert without.best_epoch == 3 and np.isnan(without.best_val_miou)


def test_milestones_decay_the_learning_rate(data) -> None:
    images, masks, _, _ = data
    labels = _sparse_points(masks, per_class=1, seed=0)
    cfg = {**FAST, "epochs": 3, "milestones": [2], "gamma": 0.1, "iterations_per_epoch": 1}
    result = train_model(MODEL, cfg, images, labels, None, None, 2, IGNORE, seed=0, log=lambda s: None)
    assert [h["lr"] for h in result.history] == pytest.approx([5e-3, 5e-3, 5e-4])


def test_warm_start_uses_the_given_state(data) -> None:
    images, masks, _, _ = data
    labels = _sparse_points(masks, per_class=1, seed=0)
    torch.manual_seed(123)
    start = build_model(MODEL, 2).state_dict()
    cfg = {**FAST, "epochs": 1, "iterations_per_epoch": 1, "lr": 0.0, "backbone_lr": 0.0, "augment": None}
    result = train_model(MODEL, cfg, images, labels, None, None, 2, IGNORE, seed=0, log=lambda s: None,
                         init_state=start)
    # lr 0: weights unchanged (BatchNorm running statistics do move)
    for key, value in start.items():
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(result.model.state_dict()[key], value)


def test_invalid_labels_are_rejected(data) -> None:
    images, masks, _, _ = data
    with pytest.raises(ValueError, match="no labelled points"):
        train_model(MODEL, FAST, images, PointLabels([], [], [], []), None, None, 2, IGNORE, 0)
    with pytest.raises(ValueError, match="class outside"):
        train_model(MODEL, FAST, images, PointLabels([0], [1], [1], [IGNORE]), None, None, 2, IGNORE, 0)
    with pytest.raises(ValueError, match="image index"):
        train_model(MODEL, FAST, images, PointLabels([99], [1], [1], [0]), None, None, 2, IGNORE, 0)


def test_predict_shape_and_dtype(data) -> None:
    images, _, _, _ = data
    model = build_model(MODEL, 2)
    pred = predict(model, images, batch_size=3)
    assert pred.shape == images.shape[:3] and pred.dtype == np.uint8
    assert model.training  # predict restores the mode it found


def test_images_on_disk_train_the_same_model(data, tmp_path) -> None:
    """A pool too large to hold is read a sample at a time (loader threads reading at once): the same training."""
    import h5py

    from alseg.data import ImagesOnDisk

    images, masks, val_images, val_masks = data
    with h5py.File(tmp_path / "pool.h5", "w") as h5:
        h5.create_dataset("train/images", data=images, chunks=(1, *images.shape[1:]), compression="gzip")
    on_disk = ImagesOnDisk(tmp_path / "pool.h5", "train")
    labels = _sparse_points(masks, per_class=3, seed=1)
    runs = [train_model(MODEL, {**FAST, "epochs": 2, "val_every": 1}, pool, labels, val_images, val_masks, 2, IGNORE,
                        seed=4, log=lambda s: None) for pool in (images, on_disk)]
    assert model_checksum(runs[0].model) == model_checksum(runs[1].model)
    in_memory, read = ([{k: v for k, v in h.items() if k != "seconds"} for h in r.history] for r in runs)
    assert in_memory == read
