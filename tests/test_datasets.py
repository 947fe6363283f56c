"""Dataset adapters: the folder round trip, CamVid, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from alseg.data import (
    DatasetError,
    dataset_info,
    load_split,
    make_synthetic,
    prepare_dataset,
    write_folder_dataset,
    SYNTHETIC_CLASSES,
)
from conftest import CAMVID, needs_camvid


@pytest.fixture
def folder(tmp_path):
    splits = make_synthetic(0, n_train=4, n_val=2, n_test=2, height=32, width=32)
    write_folder_dataset(tmp_path / "ds", splits, SYNTHETIC_CLASSES, ignore_index=255)
    return tmp_path / "ds", splits


def spec(root, **extra):
    return {"kind": "folder", "root": str(root), "classes": SYNTHETIC_CLASSES, "ignore_index": 255, **extra}


def test_synthetic_is_deterministic_and_has_rare_and_thin_classes():
    a = make_synthetic(0, n_train=16, n_val=2, n_test=2)
    b = make_synthetic(0, n_train=16, n_val=2, n_test=2)
    np.testing.assert_array_equal(a["train"][0], b["train"][0])
    assert not np.array_equal(a["train"][0], make_synthetic(1, n_train=16, n_val=2, n_test=2)["train"][0])
    masks = make_synthetic(0)["train"][1]
    share = np.bincount(masks.ravel(), minlength=256)[: len(SYNTHETIC_CLASSES)] / masks.size
    assert (share > 0).all()  # every class present in the pool
    assert share[SYNTHETIC_CLASSES.index("rare_blob")] < 0.02
    assert share[SYNTHETIC_CLASSES.index("background")] > 0.3  # imbalance


def test_folder_round_trip_and_resize(folder, tmp_path):
    root, splits = folder
    prepare_dataset(spec(root), tmp_path / "p.h5")
    train = load_split(tmp_path / "p.h5", "train")
    order = np.argsort(train.stems)
    np.testing.assert_array_equal(train.masks[order], splits["train"][1])
    info = dataset_info(tmp_path / "p.h5")
    assert info.classes == SYNTHETIC_CLASSES and info.ignore_index == 255 and info.sizes["val"] == 2
    prepare_dataset(spec(root, resize=[20, 24]), tmp_path / "r.h5")
    small = load_split(tmp_path / "r.h5", "train")
    assert small.images.shape[1:] == (20, 24, 3)
    assert set(np.unique(small.masks)) <= set(np.unique(train.masks))  # nearest: no mixed classes


def test_mask_of_another_size_names_the_file(folder, tmp_path):
    root, _ = folder
    stem = (root / "splits" / "train.txt").read_text().split()[0]
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "masks" / f"{stem}.png")
    with pytest.raises(DatasetError, match=f"{stem}.png.*32x32"):
        prepare_dataset(spec(root), tmp_path / "p.h5")


def test_mask_values_outside_the_classes_name_the_file(folder, tmp_path):
    root, _ = folder
    stem = (root / "splits" / "val.txt").read_text().split()[0]
    Image.fromarray(np.full((32, 32), 42, np.uint8)).save(root / "masks" / f"{stem}.png")
    with pytest.raises(DatasetError, match=f"{stem}.png.*42"):
        prepare_dataset(spec(root), tmp_path / "p.h5")


def test_missing_mask_and_unreadable_image(folder, tmp_path):
    root, _ = folder
    stem = (root / "splits" / "test.txt").read_text().split()[0]
    (root / "masks" / f"{stem}.png").unlink()
    with pytest.raises(DatasetError, match=f"no mask for image .*{stem}"):
        prepare_dataset(spec(root), tmp_path / "p.h5")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "masks" / f"{stem}.png")
    (root / "images" / f"{stem}.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=f"{stem}.png"):
        prepare_dataset(spec(root), tmp_path / "p.h5")


def test_empty_split_and_missing_root(folder, tmp_path):
    root, _ = folder
    (root / "splits" / "val.txt").write_text("")
    with pytest.raises(DatasetError, match="empty"):
        prepare_dataset(spec(root), tmp_path / "p.h5")
    with pytest.raises(DatasetError, match="not found"):
        prepare_dataset(spec(tmp_path / "nowhere"), tmp_path / "p.h5")


def test_corrupt_prepared_file_says_delete_it(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="delete it"):
        dataset_info(bad)


@needs_camvid
def test_camvid_handful(tmp_path):
    prepare_dataset({"kind": "camvid", "root": str(CAMVID), "limit": {"train": 3, "val": 2, "test": 2},
                     "resize": [90, 120]}, tmp_path / "c.h5")
    info = dataset_info(tmp_path / "c.h5")
    assert info.ignore_index == 11 and len(info.classes) == 11 and (info.height, info.width) == (90, 120)
    split = load_split(tmp_path / "c.h5", "train")
    assert split.images.shape == (3, 90, 120, 3) and split.masks.max() <= 11
