"""Dataset adapters and the prepared HDF5 file every workflow step reads.

``prepare_dataset`` reads a dataset from its source layout (synthetic, CamVid, Cityscapes, VOC,
generic folder), validates every image and mask, applies the optional resize and ``limit``, and writes
``results/datasets/<name>.h5`` (layout in docs/architecture.md) atomically.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from alseg.atomic import atomic_path
from alseg.data.errors import DatasetError
from alseg.data.files import (
    check_label_values,
    list_images_by_stem,
    read_label_image,
    read_rgb,
    read_stem_list,
    resize_image,
    resize_mask,
)
from alseg.data.splits import SPLITS, carve_val_from_train, split_by_ratios
from alseg.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_IGNORE_INDEX, make_synthetic

CAMVID_CLASSES = [
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist",
]
CITYSCAPES_CLASSES = [
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
    "bicycle",
]
#: Cityscapes labelIds of the 19 evaluated classes, in train-id order (the official labels.py table).
CITYSCAPES_LABEL_IDS = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]

Pair = tuple[str, Path, Path]  # (stem, image file, mask file)


@dataclass
class Split:
    """One split of a prepared dataset: images uint8 (N, H, W, 3), masks uint8 (N, H, W), stems."""

    images: np.ndarray
    masks: np.ndarray
    stems: list[str]


@dataclass
class DatasetInfo:
    """What a prepared dataset is, read from its attributes only."""

    classes: list[str]
    ignore_index: int
    height: int
    width: int
    kind: str
    sizes: dict[str, int]


def _root(spec: dict[str, Any]) -> Path:
    if "root" not in spec:
        raise DatasetError(f"dataset of kind {spec['kind']!r} needs 'root' (its source folder)")
    root = Path(spec["root"]).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    return root


def _pairs_from_folders(images: Path, masks: Path, stems: list[str] | None = None) -> list[Pair]:
    """Match images to masks by stem; a missing mask (or a listed stem without image) is an error."""
    image_files = list_images_by_stem(images)
    mask_files = list_images_by_stem(masks)
    wanted = sorted(image_files) if stems is None else stems
    pairs = []
    for stem in wanted:
        if stem not in image_files:
            raise DatasetError(f"{images}: no image named {stem!r} (listed in the split)")
        if stem not in mask_files:
            raise DatasetError(f"{masks}: no mask for image {image_files[stem]}")
        pairs.append((stem, image_files[stem], mask_files[stem]))
    return pairs


def camvid_pairs(root: Path) -> dict[str, list[Pair]]:
    """CamVid, SegNet layout: ``<split>/`` images and ``<split>annot/`` masks of the same name."""
    return {s: _pairs_from_folders(root / s, root / f"{s}annot") for s in SPLITS}


def folder_pairs(root: Path, spec: dict[str, Any]) -> dict[str, list[Pair]]:
    """Generic layout: ``images/``, ``masks/``, optional ``splits/{train,val,test}.txt``."""
    split_dir = root / "splits"
    if split_dir.is_dir():
        lists = {}
        for s in SPLITS:
            if not (split_dir / f"{s}.txt").is_file():
                raise DatasetError(f"{split_dir / f'{s}.txt'}: split list not found")
            lists[s] = read_stem_list(split_dir / f"{s}.txt")
    else:
        stems = sorted(list_images_by_stem(root / "images"))
        lists = split_by_ratios(stems, spec.get("split_ratios", [0.7, 0.1, 0.2]), spec.get("seed", 0))
    return {s: _pairs_from_folders(root / "images", root / "masks", lists[s]) for s in SPLITS}


def cityscapes_pairs(root: Path, spec: dict[str, Any]) -> dict[str, list[Pair]]:
    """Cityscapes: test labels are not public, so ``val`` is the test split and a seeded
    ``val_fraction`` of ``train`` (default 0.1) is the val split."""

    def pairs(split: str) -> list[Pair]:
        found = []
        for image in sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png")):
            stem = image.name[: -len("_leftImg8bit.png")]
            mask = root / "gtFine" / split / image.parent.name / f"{stem}_gtFine_labelIds.png"
            if not mask.is_file():
                raise DatasetError(f"{mask}: no label file for image {image}")
            found.append((stem, image, mask))
        return found

    train = pairs("train")
    test = pairs("val")
    train_stems, val_stems = carve_val_from_train([p[0] for p in train], spec.get("val_fraction", 0.1), spec.get("seed", 0))
    by_stem = {p[0]: p for p in train}
    return {"train": [by_stem[s] for s in train_stems], "val": [by_stem[s] for s in val_stems], "test": test}


def voc_pairs(root: Path, spec: dict[str, Any]) -> dict[str, list[Pair]]:
    """PASCAL VOC 2012: ``val`` is the test split; a seeded part of ``train`` is the val split."""
    lists = root / "ImageSets" / "Segmentation"
    for name in ("train.txt", "val.txt"):
        if not (lists / name).is_file():
            raise DatasetError(f"{lists / name}: split list not found")
    train = _pairs_from_folders(root / "JPEGImages", root / "SegmentationClass", read_stem_list(lists / "train.txt"))
    test = _pairs_from_folders(root / "JPEGImages", root / "SegmentationClass", read_stem_list(lists / "val.txt"))
    train_stems, val_stems = carve_val_from_train([p[0] for p in train], spec.get("val_fraction", 0.1), spec.get("seed", 0))
    by_stem = {p[0]: p for p in train}
    return {"train": [by_stem[s] for s in train_stems], "val": [by_stem[s] for s in val_stems], "test": test}


def _cityscapes_train_ids(label_ids: np.ndarray) -> np.ndarray:
    lookup = np.full(256, 255, dtype=np.uint8)
    lookup[CITYSCAPES_LABEL_IDS] = np.arange(len(CITYSCAPES_LABEL_IDS), dtype=np.uint8)
    return lookup[label_ids.astype(np.uint8)]


def _read_pair(pair: Pair, kind: str, num_classes: int, ignore_index: int, resize: list[int] | None):
    stem, image_path, mask_path = pair
    image = read_rgb(image_path)
    mask = read_label_image(mask_path)
    if mask.shape != image.shape[:2]:
        raise DatasetError(
            f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image {image_path} is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    if kind == "cityscapes":
        mask = _cityscapes_train_ids(mask)
    check_label_values(mask, num_classes, ignore_index, mask_path)
    if resize is not None:
        image = resize_image(image, *resize)
        mask = resize_mask(mask.astype(np.uint8), *resize)
    return stem, image, mask.astype(np.uint8), image_path


def _stack(split: str, pairs: list[Pair], kind: str, classes: list[str], ignore: int, resize) -> Split:
    if not pairs:
        raise DatasetError(f"split {split!r} is empty")
    workers = min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(workers) as pool:
        read = list(pool.map(lambda p: _read_pair(p, kind, len(classes), ignore, resize), pairs))
    first = read[0]
    for stem, image, mask, path in read:
        if image.shape != first[1].shape:
            raise DatasetError(
                f"images differ in size: {first[3]} is {first[1].shape[1]}x{first[1].shape[0]}, {path} is "
                f"{image.shape[1]}x{image.shape[0]}; set 'resize: [H, W]' for this dataset"
            )
    return Split(
        images=np.stack([r[1] for r in read]),
        masks=np.stack([r[2] for r in read]),
        stems=[r[0] for r in read],
    )


def read_dataset(spec: dict[str, Any]) -> tuple[dict[str, Split], list[str], int]:
    """Read and validate a dataset from its source; return its splits, class names and ignore value."""
    kind = spec["kind"]
    resize = spec.get("resize")
    limit = spec.get("limit") or {}
    if kind == "synthetic":
        sizes = {k: spec[k] for k in ("n_train", "n_val", "n_test", "height", "width") if k in spec}
        generated = make_synthetic(spec.get("seed", 0), **sizes)
        splits = {}
        for s, (images, masks) in generated.items():
            n = min(limit.get(s, len(images)), len(images))
            images, masks = images[:n], masks[:n]
            if resize is not None:
                images = np.stack([resize_image(im, *resize) for im in images])
                masks = np.stack([resize_mask(m, *resize) for m in masks])
            splits[s] = Split(images, masks, [f"{s}_{i:04d}" for i in range(n)])
        return splits, list(SYNTHETIC_CLASSES), SYNTHETIC_IGNORE_INDEX
    root = _root(spec)
    if kind == "camvid":
        pairs, classes, ignore = camvid_pairs(root), CAMVID_CLASSES, 11
    elif kind == "cityscapes":
        pairs, classes, ignore = cityscapes_pairs(root, spec), CITYSCAPES_CLASSES, 255
    elif kind == "voc":
        pairs, classes, ignore = voc_pairs(root, spec), VOC_CLASSES, 255
    elif kind == "folder":
        if "classes" not in spec:
            raise DatasetError(f"{root}: a 'folder' dataset needs 'classes' (class names) in the config")
        pairs, classes, ignore = folder_pairs(root, spec), list(spec["classes"]), spec.get("ignore_index", 255)
    else:
        raise DatasetError(f"unknown dataset kind {kind!r}")
    if not 0 <= ignore <= 255:
        raise DatasetError(f"ignore_index must be in [0, 255], got {ignore}")
    splits = {}
    for s in SPLITS:
        chosen = sorted(pairs[s])[: limit[s]] if s in limit else pairs[s]
        print(f"reading {len(chosen)} {s} images of {root}", file=sys.stderr, flush=True)
        splits[s] = _stack(s, chosen, kind, classes, ignore, resize)
    return splits, classes, ignore


def prepare_dataset(spec: dict[str, Any], out_path: str | os.PathLike[str]) -> None:
    """Read, validate and write a dataset as the prepared HDF5 file (atomically)."""
    splits, classes, ignore = read_dataset(spec)
    shapes = {s.images.shape[1:3] for s in splits.values()}
    if len(shapes) > 1:
        raise DatasetError(f"splits differ in image size {sorted(shapes)}; set 'resize: [H, W]'")
    height, width = shapes.pop()
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w") as h5:
            for name, split in splits.items():
                group = h5.create_group(name)
                n = len(split.stems)
                group.create_dataset("images", data=split.images, chunks=(1, height, width, 3), compression="lzf")
                group.create_dataset("masks", data=split.masks, chunks=(1, height, width), compression="lzf")
                group.create_dataset("stems", data=np.array(split.stems, dtype=object), dtype=h5py.string_dtype())
                assert n == split.images.shape[0]
            h5.attrs.update(
                classes=json.dumps(classes), ignore_index=int(ignore), height=int(height), width=int(width),
                kind=spec["kind"], source=str(spec.get("root", "")),
            )


def _open(path: str | os.PathLike[str]) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        raise DatasetError(
            f"{path}: cannot read the prepared dataset ({exc}); delete it to let the workflow rebuild it"
        ) from exc


def load_split(path: str | os.PathLike[str], split: str) -> Split:
    """Read one split of a prepared dataset into memory."""
    with _open(path) as h5:
        if split not in h5:
            raise DatasetError(f"{path}: prepared dataset has no split {split!r}")
        group = h5[split]
        try:
            return Split(
                images=group["images"][()],
                masks=group["masks"][()],
                stems=[s.decode() if isinstance(s, bytes) else str(s) for s in group["stems"][()]],
            )
        except (OSError, KeyError) as exc:
            raise DatasetError(f"{path}: corrupt prepared dataset ({exc}); delete it to rebuild it") from exc


def dataset_info(path: str | os.PathLike[str]) -> DatasetInfo:
    """Class names, ignore value, image size and split sizes of a prepared dataset (attributes only)."""
    with _open(path) as h5:
        try:
            return DatasetInfo(
                classes=json.loads(h5.attrs["classes"]),
                ignore_index=int(h5.attrs["ignore_index"]),
                height=int(h5.attrs["height"]),
                width=int(h5.attrs["width"]),
                kind=str(h5.attrs["kind"]),
                sizes={s: int(h5[s]["images"].shape[0]) for s in SPLITS if s in h5},
            )
        except KeyError as exc:
            raise DatasetError(f"{path}: prepared dataset lacks {exc}; delete it to rebuild it") from exc
