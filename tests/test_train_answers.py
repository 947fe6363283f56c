"""Training from binary answers through alseg.train.train_model, and what augmentation tells the losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alseg.augment import augment_sample, normalise_images
from alseg.models import forward_logits, model_checksum
from alseg.points import PointLabels, TrainingLabels
from alseg.train import train_model

MODEL = {"name": "small_unet", "width": 8, "levels": 2}
TRAIN = {
    "epochs": 60,
    "batch_size": 5,
    "lr": 1e-2,
    "backbone_lr": 1e-2,
    "milestones": [100],
    "augment": {"scale": [1.0, 1.0], "color_jitter": 0.0, "grayscale": 0.0, "blur": 0.0},
    "loader_threads": 0,
}
COLOURS = np.array([[230, 20, 20], [20, 230, 20], [20, 20, 230]], dtype=np.float64)  # classes 0, 1, 2
SIZE = 16


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def constructed_pool() -> tuple[np.ndarray, PointLabels]:
    """Four images, each half one class and half another in pure class colours, every pixel labelled;
    a fifth image halfway between the colours of class 1 and class 2, with no labelled pixel."""
    rng = np.random.default_rng(0)
    images, masks = [], []
    for a, b in [(0, 2), (1, 2), (0, 1), (2, 0)]:
        mask = np.full((SIZE, SIZE), a)
        mask[:, SIZE // 2 :] = b
        masks.append(mask)
        images.append(COLOURS[mask])
    images.append(np.broadcast_to(0.5 * COLOURS[1] + 0.5 * COLOURS[2], (SIZE, SIZE, 3)))
    pool = np.clip(np.stack(images) + rng.normal(0, 6, (5, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    masks_arr = np.stack(masks)
    image, y, x = np.nonzero(np.ones_like(masks_arr, dtype=bool))
    return pool, PointLabels(image, y, x, masks_arr[image, y, x])


def class_probability(model: torch.nn.Module, image: np.ndarray, cls: int) -> np.ndarray:
    with torch.no_grad():
        logits = forward_logits(model.eval(), torch.from_numpy(normalise_images(image[None])))
    return torch.softmax(logits.float(), dim=1)[0, cls].numpy()


def test_a_no_answer_drives_that_class_out_of_that_image(one_thread):
    """The model alone calls the unlabelled image 4 (between the colours of classes 1 and 2) mostly the
    one class; "that class is not in image 4" makes its probability there near zero at inference."""
    pool, points = constructed_pool()
    without = train_model(MODEL, TRAIN, pool, points, None, None, 3, None, seed=0, log=lambda _: None)
    p_without = {c: class_probability(without.model, pool[4], c) for c in (1, 2)}
    target = max(p_without, key=lambda c: p_without[c].mean())
    answers = np.zeros((5, 3), dtype=np.int8)
    answers[4, target] = -1
    logs: list[str] = []
    treated = train_model(MODEL, TRAIN, pool, points, None, None, 3, None, seed=0, log=logs.append,
                          answers=answers)
    p_with = class_probability(treated.model, pool[4], target)
    assert p_without[target].mean() > 0.5
    assert p_with.max() < 0.05 and p_with.mean() < 0.02 * p_without[target].mean()  # 0.94 -> 0.004
    assert "and 1 binary answers on 5/5 images" in logs[0]
    assert all(np.isfinite(h["answer_loss"]) for h in treated.history)
    labelled = class_probability(treated.model, pool[2 if target == 1 else 0], target)
    assert labelled[:, SIZE // 2 :].mean() > 0.8  # the class where it is labelled survives


def test_images_with_only_answers_are_trained_and_batches_are_not_skipped(one_thread):
    pool, points = constructed_pool()
    answers = np.zeros((5, 3), dtype=np.int8)
    answers[4] = [-1, 1, 0]
    config = {**TRAIN, "epochs": 2, "batch_size": 1,
              "augment": {"scale": [0.6, 1.6], "crop": [12, 12], "flip": True}}
    result = train_model(MODEL, config, pool, PointLabels([0], [0], [0], [0]), None, None, 3, None, seed=0,
                         log=lambda _: None, answers=answers)
    # one batch per image: image 0's single point may fall outside its crop (skipped), image 4 has no
    # point but answers, and its batch always trains
    assert all(h["skipped_batches"] <= 1 and np.isfinite(h["answer_loss"]) for h in result.history)
    # answers alone: a training whose units gave no labelled pixel at all (no part) trains as one with none
    alone = [train_model(MODEL, {**config, "epochs": 1}, pool, labels, None, None, 3, None, seed=0,
                         log=lambda _: None, answers=answers)
             for labels in (TrainingLabels(()), PointLabels([], [], [], []))]
    assert model_checksum(alone[0].model) == model_checksum(alone[1].model)
    assert alone[0].history[0]["points"] == 0 and np.isfinite(alone[0].history[0]["answer_loss"])
    with pytest.raises(ValueError, match="answers must have shape"):
        train_model(MODEL, config, pool, points, None, None, 3, None, seed=0, answers=answers[:4])
    contradictory = np.zeros((5, 3), dtype=np.int8)
    contradictory[4] = -1
    logs: list[str] = []
    train_model(MODEL, {**config, "epochs": 1}, pool, points, None, None, 3, None, seed=0, log=logs.append,
                answers=contradictory)
    assert any("every class answered 'no'" in line for line in logs)


def test_augmentation_reports_the_image_region_and_whole_image():
    image = np.full((20, 30, 3), 200, dtype=np.uint8)
    none = np.zeros(0, dtype=np.int64)
    padded = augment_sample(image, none, none, none, np.random.default_rng(1),
                            {"scale": [0.5, 0.5], "flip": False, "color_jitter": 0, "grayscale": 0, "blur": 0},
                            out_size=(20, 30))
    assert padded.whole_image
    top, bottom, left, right = padded.region
    assert (bottom - top, right - left) == (10, 15)
    shown = np.zeros((20, 30), dtype=bool)
    shown[top:bottom, left:right] = True
    assert (padded.image[:, ~shown] == 0).all() and (padded.image[:, shown] != 0).all()  # padding is 0
    for seed in range(6):  # flips move the region with the image
        sample = augment_sample(image, none, none, none, np.random.default_rng(seed),
                                {"scale": [0.6, 0.6], "flip": True, "color_jitter": 0, "grayscale": 0,
                                 "blur": 0}, out_size=(20, 30))
        top, bottom, left, right = sample.region
        shown = np.zeros((20, 30), dtype=bool)
        shown[top:bottom, left:right] = True
        assert (sample.image[:, ~shown] == 0).all() and (sample.image[:, shown] != 0).all()
    cropped = augment_sample(image, none, none, none, np.random.default_rng(0),
                             {"scale": [1.0, 1.0], "crop": [10, 10]}, out_size=(20, 30))
    assert not cropped.whole_image and cropped.region == (0, 10, 0, 10)
    same = augment_sample(image, none, none, none, None, None, out_size=(20, 30))
    assert same.whole_image and same.region == (0, 20, 0, 30)


def test_answer_only_images_join_the_batches_without_thinning_the_points(one_thread):
    """Images with answers and no point ride along: every epoch still shows every labelled point."""
    pool, points = constructed_pool()
    config = {**TRAIN, "epochs": 2, "batch_size": 2, "iterations_per_epoch": 3}
    answers = np.zeros((5, 3), dtype=np.int8)
    answers[4, 2] = -1
    plain = train_model(MODEL, config, pool, points, None, None, 3, None, seed=0, log=lambda _: None)
    joined = train_model(MODEL, config, pool, points, None, None, 3, None, seed=0, log=lambda _: None,
                         answers=answers)
    assert [h["points"] for h in joined.history] == [h["points"] for h in plain.history]
    assert all(np.isfinite(h["answer_loss"]) and h["answer_loss"] > 0 for h in joined.history)
