"""Dataset adapters, validation errors and the prepared HDF5 file."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from alseg.data import (
    CAMVID_CLASSES,
    CITYSCAPES_CLASSES,
    SYNTHETIC_CLASSES,
    VOC_CLASSES,
    DatasetError,
    ImagesOnDisk,
    dataset_info,
    load_split,
    make_synthetic,
    prepare_dataset,
    write_folder_dataset,
)

CAMVID = Path(
    os.environ.get("ALSEG_CAMVID", Path(__file__).resolve().parents[2] / "shared/data/camvid")
)
SPLITS = ("train", "val", "test")


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array), mode=mode).save(path)
    return path


def rgb(height: int = 8, width: int = 8, value: int = 100) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


@pytest.fixture
def synthetic_small() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return make_synthetic(5, n_train=6, n_val=2, n_test=3, height=32, width=32)


@pytest.fixture
def folder(tmp_path, synthetic_small) -> Path:
    return write_folder_dataset(tmp_path / "folder", synthetic_small, SYNTHETIC_CLASSES)


def folder_spec(root: Path, **extra) -> dict:
    return {"kind": "folder", "root": str(root), "classes": SYNTHETIC_CLASSES, **extra}


def tiny_folder(root: Path, n: int = 3, classes: int = 2) -> Path:
    """images/ and masks/ of n 8x8 pairs s0..s{n-1}, with splits/ putting one stem in each split."""
    for i in range(n):
        write_png(root / "images" / f"s{i}.png", rgb(value=40 * i))
        write_png(root / "masks" / f"s{i}.png", (np.arange(64).reshape(8, 8) % classes).astype(np.uint8))
    (root / "splits").mkdir(parents=True, exist_ok=True)
    for i, split in enumerate(SPLITS):
        (root / "splits" / f"{split}.txt").write_text(f"s{i}\n")
    return root


def tiny_spec(root: Path, **extra) -> dict:
    return {"kind": "folder", "root": str(root), "classes": ["a", "b"], **extra}


# --- prepared file round trips -------------------------------------------------------------------


def test_folder_round_trip(tmp_path, folder, synthetic_small) -> None:
    out = tmp_path / "prepared.h5"
    prepare_dataset(folder_spec(folder), out)
    info = dataset_info(out)
    assert info.classes == SYNTHETIC_CLASSES and info.num_classes == 8
    assert (info.ignore_index, info.height, info.width, info.kind) == (255, 32, 32, "folder")
    assert info.sizes == {"train": 6, "val": 2, "test": 3}
    assert info.source == str(folder.resolve())
    for split, (images, masks) in synthetic_small.items():
        loaded = load_split(out, split)
        assert loaded.stems == [f"{split}_{i:04d}" for i in range(len(images))] and len(loaded) == len(images)
        np.testing.assert_array_equal(loaded.images, images)
        np.testing.assert_array_equal(loaded.masks, masks)
        assert loaded.images.dtype == np.uint8 and loaded.masks.dtype == np.uint8


def test_prepared_layout_matches_architecture_doc(tmp_path) -> None:
    out = tmp_path / "syn.h5"
    prepare_dataset({"kind": "synthetic", "n_train": 3, "n_val": 1, "n_test": 2, "height": 16, "width": 24}, out)
    with h5py.File(out, "r") as h5:
        assert json.loads(h5.attrs["classes"]) == SYNTHETIC_CLASSES
        assert (h5.attrs["ignore_index"], h5.attrs["height"], h5.attrs["width"]) == (255, 16, 24)
        assert h5.attrs["kind"] == "synthetic" and "seed=0" in h5.attrs["source"]
        assert h5["train/images"].shape == (3, 16, 24, 3) and h5["train/images"].dtype == np.uint8
        assert h5["train/masks"].shape == (3, 16, 24) and h5["train/masks"].chunks == (1, 16, 24)
        assert list(h5["test/stems"].asstr()[()]) == ["test_0000", "test_0001"]
    expected = make_synthetic(0, 3, 1, 2, 16, 24)["val"]
    np.testing.assert_array_equal(load_split(out, "val").images, expected[0])


def test_images_on_disk_read_the_slices_of_the_loaded_split(tmp_path) -> None:
    out = tmp_path / "syn.h5"
    prepare_dataset({"kind": "synthetic", "n_train": 5, "n_val": 1, "n_test": 1, "height": 16, "width": 24}, out)
    loaded = load_split(out, "train").images
    on_disk = ImagesOnDisk(out, "train")
    assert on_disk.shape == loaded.shape and len(on_disk) == 5 and on_disk.dtype == np.uint8
    for rows in (slice(0, 2), slice(2, 5), slice(3, None), slice(4, 4), slice(0, 9)):
        np.testing.assert_array_equal(on_disk[rows], loaded[rows])
    for index in (0, np.int64(3), -1):
        np.testing.assert_array_equal(on_disk[index], loaded[index])
    assert on_disk.ndim == 4 and on_disk.nbytes == loaded.nbytes
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(on_disk))[2], loaded[2])  # after a read: reopens
    with pytest.raises(IndexError, match="image 5 is outside split 'train' of 5"):
        on_disk[5]
    with pytest.raises(TypeError, match="slice"):
        on_disk[[0, 2]]
    with pytest.raises(DatasetError, match="no split 'pool'"):
        ImagesOnDisk(out, "pool")


def test_a_job_reads_pool_slices_from_the_file_until_it_loads_the_pool(tmp_path) -> None:
    from alseg.units import Job

    out = tmp_path / "syn.h5"
    prepare_dataset({"kind": "synthetic", "n_train": 5, "n_val": 1, "n_test": 1, "height": 16, "width": 24}, out)
    loaded = load_split(out, "train")
    job = Job(out, {"unit": "pixel"}, 1)
    assert isinstance(job.pool_images(), ImagesOnDisk) and "pool" not in job.__dict__
    np.testing.assert_array_equal(job.pool_images()[1:4], loaded.images[1:4])
    np.testing.assert_array_equal(job.pool_masks(1, 4), loaded.masks[1:4])
    chosen = np.array([4, 0, 3])
    np.testing.assert_array_equal(job.masks_of(chosen), loaded.masks[chosen])
    np.testing.assert_array_equal(job.images_of(chosen), loaded.images[chosen])
    assert job.masks_of(np.zeros(0, np.int64)).shape == (0, 16, 24)
    masks, rows = job.masks_at(np.array([3, 1, 3, 4]))  # an annotator's view: each distinct image read once
    assert len(masks) == 3 and rows.shape == (4,)
    np.testing.assert_array_equal(masks[rows], loaded.masks[[3, 1, 3, 4]])
    assert "pool" not in job.__dict__  # nothing above loaded the whole pool
    pool = job.pool
    assert job.pool_images() is pool.images  # once loaded, the loaded arrays
    np.testing.assert_array_equal(job.pool_masks(2, 5), loaded.masks[2:5])
    np.testing.assert_array_equal(job.masks_of(chosen), loaded.masks[chosen])
    np.testing.assert_array_equal(job.images_of(chosen), loaded.images[chosen])


def test_load_rows_reads_any_rows_in_their_order(tmp_path, monkeypatch) -> None:
    from alseg.data import load_rows, prepared

    out = tmp_path / "syn.h5"
    prepare_dataset({"kind": "synthetic", "n_train": 7, "n_val": 1, "n_test": 1, "height": 16, "width": 24}, out)
    loaded = load_split(out, "train")
    monkeypatch.setattr(prepared, "_READ_BYTES", 2 * 16 * 24)  # two masks per read: long runs are split
    for rows in ([0, 1, 2, 3, 4], [6, 0, 3, 4, 5, 1], [2, 2, 5], [6], []):
        rows = np.array(rows, dtype=np.int64)
        np.testing.assert_array_equal(load_rows(out, "train", "masks", rows), loaded.masks[rows])
        np.testing.assert_array_equal(load_rows(out, "train", "images", rows), loaded.images[rows])
    for bad in (7, -1):
        with pytest.raises(DatasetError, match=f"image {bad} is outside split 'train' of 7"):
            load_rows(out, "train", "masks", np.array([0, bad]))
    with pytest.raises(DatasetError, match="no split 'pool'"):
        load_rows(out, "pool", "masks", np.array([0]))


def test_a_job_trains_on_images_in_memory_unless_the_pool_is_too_large(tmp_path, monkeypatch) -> None:
    from alseg.units import Job, base

    out = tmp_path / "syn.h5"
    prepare_dataset({"kind": "synthetic", "n_train": 5, "n_val": 1, "n_test": 1, "height": 16, "width": 24}, out)
    loaded = load_split(out, "train")
    small = Job(out, {"unit": "pixel"}, 1).training_images
    assert isinstance(small, np.ndarray)
    np.testing.assert_array_equal(small, loaded.images)
    monkeypatch.setattr(base, "POOL_IN_MEMORY_BYTES", loaded.images.nbytes - 1)
    job = Job(out, {"unit": "pixel"}, 1)
    assert isinstance(job.training_images, ImagesOnDisk) and "pool" not in job.__dict__
    np.testing.assert_array_equal(job.training_images[3], loaded.images[3])
    loaded_first = Job(out, {"unit": "pixel"}, 1)
    assert loaded_first.pool is not None and loaded_first.training_images is loaded_first.pool.images


def test_seeded_split_by_ratios_without_split_lists(tmp_path, folder) -> None:
    for txt in (folder / "splits").iterdir():
        txt.unlink()
    (folder / "splits").rmdir()
    spec = folder_spec(folder, split_ratios=[0.5, 0.2, 0.3], seed=3)
    prepare_dataset(spec, tmp_path / "a.h5")
    prepare_dataset(spec, tmp_path / "b.h5")
    stems = {s: load_split(tmp_path / "a.h5", s).stems for s in SPLITS}
    assert {s: len(v) for s, v in stems.items()} == {"train": 6, "val": 2, "test": 3}
    assert sorted(s for split_stems in stems.values() for s in split_stems) == sorted(p.stem for p in (folder / "images").iterdir())
    assert all(v == sorted(v) for v in stems.values())
    assert stems == {s: load_split(tmp_path / "b.h5", s).stems for s in SPLITS}


def test_resize_keeps_only_existing_class_values(tmp_path, folder) -> None:
    out, full_size = tmp_path / "resized.h5", tmp_path / "full.h5"
    prepare_dataset(folder_spec(folder, resize=[21, 45]), out)
    prepare_dataset(folder_spec(folder), full_size)
    original = load_split(full_size, "train")
    resized = load_split(out, "train")
    assert resized.images.shape == (6, 21, 45, 3) and resized.masks.shape == (6, 21, 45)
    assert dataset_info(out).height == 21 and dataset_info(out).width == 45
    for before, after in zip(original.masks, resized.masks):
        assert set(np.unique(after)) <= set(np.unique(before))


def test_resize_makes_mixed_sizes_usable(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    write_png(root / "images" / "s2.png", rgb(12, 10))
    write_png(root / "masks" / "s2.png", np.ones((12, 10), dtype=np.uint8))
    prepare_dataset(tiny_spec(root, resize=[6, 6]), tmp_path / "out.h5")
    assert load_split(tmp_path / "out.h5", "test").masks.shape == (1, 6, 6)


def test_limit_takes_first_sorted_stems(tmp_path, folder) -> None:
    out = tmp_path / "limited.h5"
    prepare_dataset(folder_spec(folder, limit={"train": 2, "test": 1}), out)
    assert load_split(out, "train").stems == ["train_0000", "train_0001"]
    assert load_split(out, "test").stems == ["test_0000"]
    assert len(load_split(out, "val")) == 2


def test_jpg_and_palette_and_grey_inputs(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    (root / "images" / "s1.png").unlink()
    Image.fromarray(rgb()).save(root / "images" / "s1.JPG")
    grey_image = root / "images" / "s2.png"
    write_png(grey_image, np.full((8, 8), 7, dtype=np.uint8), mode="L")
    palette_mask = Image.fromarray(np.ones((8, 8), dtype=np.uint8), mode="P")
    palette_mask.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    palette_mask.save(root / "masks" / "s1.png")
    prepare_dataset(tiny_spec(root), tmp_path / "out.h5")
    assert (load_split(tmp_path / "out.h5", "val").masks == 1).all()
    assert (load_split(tmp_path / "out.h5", "test").images == 7).all()


# --- bad input -----------------------------------------------------------------------------------


def prepare_error(spec: dict, tmp_path: Path) -> str:
    out = tmp_path / "out.h5"
    with pytest.raises(DatasetError) as raised:
        prepare_dataset(spec, out)
    assert not out.exists()
    return str(raised.value)


def test_missing_root(tmp_path) -> None:
    message = prepare_error(tiny_spec(tmp_path / "nowhere"), tmp_path)
    assert "nowhere" in message and "not found" in message


def test_unreadable_image(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    (root / "images" / "s1.png").write_bytes(b"not a png at all")
    message = prepare_error(tiny_spec(root), tmp_path)
    assert "s1.png" in message and "cannot read image" in message


def test_truncated_image(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    write_png(root / "images" / "s0.png", np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8))
    data = (root / "images" / "s0.png").read_bytes()
    (root / "images" / "s0.png").write_bytes(data[: len(data) // 2])
    assert "s0.png" in prepare_error(tiny_spec(root), tmp_path)


def test_missing_mask(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    (root / "masks" / "s2.png").unlink()
    message = prepare_error(tiny_spec(root), tmp_path)
    assert "s2.png" in message and "no mask" in message


def test_mask_size_differs_from_image(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    write_png(root / "masks" / "s1.png", np.zeros((8, 9), dtype=np.uint8))
    message = prepare_error(tiny_spec(root), tmp_path)
    assert "s1.png" in message and "8x9" in message and "8x8" in message


def test_colour_mask_is_rejected(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    write_png(root / "masks" / "s0.png", np.zeros((8, 8, 3), dtype=np.uint8))
    message = prepare_error(tiny_spec(root), tmp_path)
    assert "s0.png" in message and "single-channel" in message


def test_mask_values_outside_classes(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[0, :3] = [5, 9, 9]
    write_png(root / "masks" / "s1.png", mask)
    message = prepare_error(tiny_spec(root), tmp_path)
    assert "s1.png" in message and "5 (1 px)" in message and "9 (2 px)" in message


def test_ignore_value_is_accepted_and_must_fit_uint8(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    write_png(root / "masks" / "s0.png", np.full((8, 8), 200, dtype=np.uint8))
    prepare_dataset(tiny_spec(root, ignore_index=200), tmp_path / "ok.h5")
    assert dataset_info(tmp_path / "ok.h5").ignore_index == 200
    assert "ignore_index" in prepare_error(tiny_spec(root, ignore_index=256), tmp_path)
    assert "ignore_index" in prepare_error(tiny_spec(root, ignore_index=1), tmp_path)


def test_empty_split(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    (root / "splits" / "val.txt").write_text("\n")
    message = prepare_error(tiny_spec(root), tmp_path)
    assert "'val' is empty" in message and str(root.resolve()) in message


def test_missing_split_list(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    (root / "splits" / "test.txt").unlink()
    assert "test.txt" in prepare_error(tiny_spec(root), tmp_path)


def test_split_list_names_missing_stem(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    (root / "splits" / "train.txt").write_text("s0\nghost\n")
    message = prepare_error(tiny_spec(root), tmp_path)
    assert "train.txt" in message and "ghost" in message


def test_stem_in_two_splits(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    (root / "splits" / "val.txt").write_text("s0\n")
    assert "s0" in prepare_error(tiny_spec(root), tmp_path)


def test_different_image_sizes_without_resize(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    write_png(root / "images" / "s2.png", rgb(12, 10))
    write_png(root / "masks" / "s2.png", np.zeros((12, 10), dtype=np.uint8))
    message = prepare_error(tiny_spec(root), tmp_path)
    assert "s0.png" in message and "s2.png" in message and "12x10" in message and "resize" in message


def test_bad_spec_keys(tmp_path) -> None:
    assert "colour" in prepare_error({"kind": "synthetic", "colour": 1}, tmp_path)
    assert "kind" in prepare_error({"kind": "kitti"}, tmp_path)
    assert "classes" in prepare_error({"kind": "folder", "root": str(tmp_path)}, tmp_path)
    assert "resize" in prepare_error({"kind": "synthetic", "resize": [10]}, tmp_path)


def test_failed_prepare_keeps_previous_file(tmp_path) -> None:
    root = tiny_folder(tmp_path / "d")
    out = tmp_path / "out.h5"
    prepare_dataset(tiny_spec(root), out)
    before = out.read_bytes()
    (root / "masks" / "s2.png").unlink()
    with pytest.raises(DatasetError):
        prepare_dataset(tiny_spec(root), out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --- corrupt prepared files ----------------------------------------------------------------------


def test_truncated_prepared_file(tmp_path) -> None:
    out = tmp_path / "syn.h5"
    prepare_dataset({"kind": "synthetic", "n_train": 2, "n_val": 1, "n_test": 1}, out)
    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    for read in (lambda: load_split(out, "train"), lambda: dataset_info(out)):
        with pytest.raises(DatasetError, match="delete it") as raised:
            read()
        assert str(out) in str(raised.value)


def test_garbage_missing_and_wrong_split(tmp_path) -> None:
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\0" * 100)
    with pytest.raises(DatasetError, match="garbage.h5"):
        dataset_info(garbage)
    with pytest.raises(DatasetError, match="not found"):
        load_split(tmp_path / "absent.h5", "train")
    with h5py.File(tmp_path / "partial.h5", "w") as h5:
        h5.attrs["classes"] = "[]"
    with pytest.raises(DatasetError, match="delete it"):
        load_split(tmp_path / "partial.h5", "train")
    with pytest.raises(DatasetError, match="pool"):
        load_split(tmp_path / "partial.h5", "pool")


# --- Cityscapes, VOC, CamVid ---------------------------------------------------------------------


def test_cityscapes_adapter(tmp_path) -> None:
    root = tmp_path / "cityscapes"
    label_ids = np.array([[7, 26, 0, 33]] * 4 + [[24, 1, 255, 11]] * 4, dtype=np.uint8).repeat(2, axis=1)
    for split, city, stems in (("train", "aachen", ["aachen_000000_000019", "aachen_000001_000019"]),
                               ("val", "frankfurt", ["frankfurt_000000_000294"])):
        for stem in stems:
            write_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rgb())
            write_png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label_ids)
            write_png(root / "gtFine" / split / city / f"{stem}_gtFine_color.png", rgb())
    out = tmp_path / "cs.h5"
    prepare_dataset({"kind": "cityscapes", "root": str(root), "val_fraction": 0.5, "seed": 1}, out)
    info = dataset_info(out)
    assert info.classes == CITYSCAPES_CLASSES and info.ignore_index == 255
    assert info.sizes == {"train": 1, "val": 1, "test": 1}
    test = load_split(out, "test")
    assert test.stems == ["frankfurt_000000_000294"]
    np.testing.assert_array_equal(test.masks[0, 0], [0, 0, 13, 13, 255, 255, 18, 18])
    np.testing.assert_array_equal(test.masks[0, 7], [11, 11, 255, 255, 255, 255, 2, 2])
    carved = load_split(out, "train").stems + load_split(out, "val").stems
    assert sorted(carved) == ["aachen_000000_000019", "aachen_000001_000019"]

    (root / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000294_gtFine_labelIds.png").unlink()
    message = prepare_error({"kind": "cityscapes", "root": str(root)}, tmp_path)
    assert "frankfurt_000000_000294_leftImg8bit.png" in message and "no mask" in message


def make_voc(root: Path) -> Path:
    indices = np.zeros((8, 8), dtype=np.uint8)
    indices[2:5, 2:5] = 15  # person
    indices[1, :] = 255  # border
    palette = [0, 0, 0] + [128, 0, 0] * 254 + [224, 224, 192]
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir(parents=True)
    for stem in ("2007_000032", "2007_000039", "2007_000063", "2007_000033"):
        Image.fromarray(rgb()).save(root / "JPEGImages" / f"{stem}.jpg")
        mask = Image.fromarray(indices, mode="P")
        mask.putpalette(palette)  # masks are stored as colours; the adapter must read the indices
        mask.save(root / "SegmentationClass" / f"{stem}.png")
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("2007_000032\n2007_000039\n2007_000063\n")
    (lists / "val.txt").write_text("2007_000033\n")
    return root


def test_voc_adapter_reads_palette_indices(tmp_path) -> None:
    root = make_voc(tmp_path / "VOC2012")
    out = tmp_path / "voc.h5"
    prepare_dataset({"kind": "voc", "root": str(root), "val_fraction": 0.3}, out)
    info = dataset_info(out)
    assert info.classes == VOC_CLASSES and len(VOC_CLASSES) == 21
    assert info.sizes == {"train": 2, "val": 1, "test": 1}
    test = load_split(out, "test")
    assert test.stems == ["2007_000033"]
    assert set(np.unique(test.masks)) == {0, 15, 255}
    assert (test.masks[0, 2:5, 2:5] == 15).all()

    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000033\n2008_999999\n")
    message = prepare_error({"kind": "voc", "root": str(root)}, tmp_path)
    assert "val.txt" in message and "2008_999999" in message


@pytest.mark.skipif(not CAMVID.exists(), reason=f"CamVid not found at {CAMVID} (set ALSEG_CAMVID)")
def test_camvid_adapter_on_a_few_images(tmp_path) -> None:
    out = tmp_path / "camvid.h5"
    prepare_dataset({"kind": "camvid", "root": str(CAMVID), "limit": {"train": 2, "val": 1, "test": 1}}, out)
    info = dataset_info(out)
    assert info.classes == CAMVID_CLASSES and info.ignore_index == 11
    assert (info.height, info.width) == (360, 480)
    assert info.sizes == {"train": 2, "val": 1, "test": 1}
    train = load_split(out, "train")
    assert train.stems == sorted(p.stem for p in (CAMVID / "train").glob("*.png"))[:2]
    assert train.masks.max() <= 11 and len(np.unique(train.masks)) > 5
    assert train.images.std() > 10


def test_camvid_layout_errors(tmp_path) -> None:
    root = tmp_path / "camvid"
    for split in SPLITS:
        write_png(root / split / "0001TP_006690.png", rgb())
        write_png(root / f"{split}annot" / "0001TP_006690.png", np.full((8, 8), 11, dtype=np.uint8))
    prepare_dataset({"kind": "camvid", "root": str(root)}, tmp_path / "ok.h5")
    write_png(root / "valannot" / "0001TP_006690.png", np.full((8, 8), 12, dtype=np.uint8))
    message = prepare_error({"kind": "camvid", "root": str(root)}, tmp_path)
    assert "valannot" in message and "12 (64 px)" in message
    write_png(root / "valannot" / "0001TP_006690.png", np.zeros((8, 8, 3), dtype=np.uint8))
    assert "single-channel" in prepare_error({"kind": "camvid", "root": str(root)}, tmp_path)
    (root / "testannot" / "0001TP_006690.png").unlink()
    assert "no mask" in prepare_error({"kind": "camvid", "root": str(root)}, tmp_path)
    for p in (root / "testannot").iterdir():
        p.unlink()
    (root / "testannot").rmdir()
    assert "testannot" in prepare_error({"kind": "camvid", "root": str(root)}, tmp_path)
