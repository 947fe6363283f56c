"""The synthetic dataset: determinism and the properties that make it a test of active learning."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from alseg.data import SYNTHETIC_CLASSES, make_synthetic, write_folder_dataset

RARE = SYNTHETIC_CLASSES.index("rare_blob")
THIN = SYNTHETIC_CLASSES.index("thin_curve")
BACKGROUND = SYNTHETIC_CLASSES.index("background")


@pytest.fixture(scope="module")
def default_dataset() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return make_synthetic(0)


def test_same_seed_same_arrays_other_seed_differs() -> None:
    a, b, c = make_synthetic(7, 4, 2, 2), make_synthetic(7, 4, 2, 2), make_synthetic(8, 4, 2, 2)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(a[split][0], b[split][0])
        np.testing.assert_array_equal(a[split][1], b[split][1])
        assert not np.array_equal(a[split][0], c[split][0])
        assert not np.array_equal(a[split][1], c[split][1])


def test_a_split_does_not_depend_on_the_size_of_another() -> None:
    small, large = make_synthetic(1, n_train=4, n_test=3), make_synthetic(1, n_train=9, n_test=3)
    np.testing.assert_array_equal(small["test"][0], large["test"][0])
    np.testing.assert_array_equal(small["test"][1], large["test"][1])


def test_shapes_dtypes_and_values(default_dataset) -> None:
    sizes = {"train": 64, "val": 16, "test": 32}
    for split, (images, masks) in default_dataset.items():
        assert images.shape == (sizes[split], 64, 64, 3) and images.dtype == np.uint8
        assert masks.shape == (sizes[split], 64, 64) and masks.dtype == np.uint8
        assert set(np.unique(masks)) <= set(range(len(SYNTHETIC_CLASSES))) | {255}
    images, masks = make_synthetic(0, 2, 1, 1, height=40, width=56)["val"]
    assert images.shape == (1, 40, 56, 3) and masks.shape == (1, 40, 56)


def test_class_balance_rare_and_void(default_dataset) -> None:
    masks = np.concatenate([m for _, m in default_dataset.values()])
    frequency = np.bincount(masks.ravel(), minlength=256) / masks.size
    train_masks = default_dataset["train"][1]
    for c in range(len(SYNTHETIC_CLASSES)):
        assert (train_masks == c).any(), f"class {SYNTHETIC_CLASSES[c]} missing from train"
    assert frequency[BACKGROUND] > 0.4  # class imbalance: background dominates
    assert 0 < frequency[RARE] < 0.02
    # rare: in a few images only, but in every split so that it can be evaluated
    images_with_rare = (train_masks == RARE).any(axis=(1, 2)).sum()
    assert 1 <= images_with_rare <= 0.3 * len(train_masks)
    for _, split_masks in default_dataset.values():
        assert (split_masks == RARE).any()
    assert 0 < frequency[255] < 0.05


def test_thin_class_is_at_most_three_pixels_wide(default_dataset) -> None:
    thin = default_dataset["train"][1] == THIN
    assert thin.sum() > 100
    # A line at most 3 px wide disappears after two erosions with the 4-neighbour cross (a few
    # pixels survive where two curves cross).
    cross = ndimage.generate_binary_structure(2, 1)[None]
    eroded = ndimage.binary_erosion(thin, structure=cross, iterations=2)
    assert eroded.sum() < 0.01 * thin.sum()


def test_colour_alone_does_not_solve_it(default_dataset) -> None:
    # Nearest class-mean colour per pixel, fitted on train, scored on test.
    (train_images, train_masks), (test_images, test_masks) = (
        default_dataset["train"],
        default_dataset["test"],
    )
    x, y = train_images.reshape(-1, 3).astype(float), train_masks.ravel()
    means = np.stack([x[y == c].mean(axis=0) for c in range(len(SYNTHETIC_CLASSES))])
    xt, yt = test_images.reshape(-1, 3).astype(float), test_masks.ravel()
    labelled = yt != 255
    pred = np.argmin(((xt[labelled, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == yt[labelled]).mean() < 0.6


def test_images_are_noisy_and_textured(default_dataset) -> None:
    images, masks = default_dataset["train"]
    # Within one background region neighbouring pixels differ (noise), not a flat colour.
    background = masks[0] == BACKGROUND
    assert images[0][background].std(axis=0).min() > 3


def test_write_folder_dataset_layout(tmp_path) -> None:
    data = make_synthetic(2, 3, 1, 2, 32, 32)
    write_folder_dataset(tmp_path, data, SYNTHETIC_CLASSES)
    assert (tmp_path / "splits" / "val.txt").read_text() == "val_0000\n"
    assert (tmp_path / "dataset.json").is_file()
    for split, (images, masks) in data.items():
        stems = (tmp_path / "splits" / f"{split}.txt").read_text().split()
        assert len(stems) == len(images)
        for stem, image, mask in zip(stems, images, masks):
            np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "images" / f"{stem}.png")), image)
            read_mask = Image.open(tmp_path / "masks" / f"{stem}.png")
            assert read_mask.mode == "L"
            np.testing.assert_array_equal(np.asarray(read_mask), mask)
