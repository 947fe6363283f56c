"""Dataset adapters: find the image/mask pairs of each split of a source layout.

An adapter turns a dataset spec (one entry of the workflow config) into a :class:`SourceDataset`:
class names, ignore value, and per split the sorted list of :class:`SourceItem` (stem, the files to
name in errors, and how to read the pair). Nothing is decoded here except split lists; reading,
validating and resizing the pixels is :func:`alseg.data.prepared.prepare_dataset`'s job. The class names and
label values of the datasets are in :mod:`alseg.data.classes`.

Spec keys (defaults in brackets; unknown keys are an error):

=================  ==================================  ==========================================
key                kinds                               meaning
=================  ==================================  ==========================================
``kind``           all                                 synthetic, camvid, cityscapes, voc, folder
``root``           all but synthetic                   the source folder
``resize``         all [null]                          ``[H, W]``: resize every image at load
``limit``          all [null]                          ``{train: n, val: n, test: n}``: first n
                                                       stems (sorted) of a split; keys optional
``seed``           all [0]                             synthetic generation and split carving
``n_train``,       synthetic [64, 16, 32]              images per split
``n_val``,
``n_test``
``height``,        synthetic [64, 64]                  generated image size
``width``
``val_fraction``   cityscapes, voc [0.1]               share of train carved out as val
``classes``        folder (required)                   class names, index = class id
``ignore_index``   folder [255]                        mask value of unlabelled pixels
``split_ratios``   folder [[0.7, 0.1, 0.2]]            train/val/test fractions when the folder
                                                       has no ``splits/``
=================  ==================================  ==========================================
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alseg.data.classes import (
    CAMVID_CLASSES,
    CAMVID_IGNORE_INDEX,
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABEL_TO_TRAIN_ID,
    IGNORE_INDEX,
    VOC_CLASSES,
)
from alseg.data.errors import DatasetError
from alseg.data.files import (
    list_images_by_stem,
    read_label_image,
    read_rgb,
    read_stem_list,
)
from alseg.data.splits import SPLITS, carve_val_from_train, split_by_ratios
from alseg.data.synthetic import (
    SYNTHETIC_CLASSES,
    SYNTHETIC_IGNORE_INDEX,
    make_synthetic,
)

KINDS = ("synthetic", "camvid", "cityscapes", "voc", "folder")
_COMMON_DEFAULTS: dict[str, Any] = {"resize": None, "limit": None, "seed": 0}
_KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "synthetic": {"n_train": 64, "n_val": 16, "n_test": 32, "height": 64, "width": 64},
    "camvid": {"root": None},
    "cityscapes": {"root": None, "val_fraction": 0.1},
    "voc": {"root": None, "val_fraction": 0.1},
    "folder": {
        "root": None,
        "classes": None,
        "ignore_index": IGNORE_INDEX,
        "split_ratios": [0.7, 0.1, 0.2],
    },
}


@dataclass(frozen=True)
class SourceItem:
    """One image/mask pair of a source dataset, not read yet.

    Attributes
    ----------
    stem : str
        The pair's name, unique in the dataset.
    image, mask : str
        What to name in an error about the image or the mask (usually their paths).
    read : callable () -> (image, mask)
        Returns the image, uint8 (H, W, 3) RGB, and the raw mask, (H, W) of uint8 or int32 holding
        class ids (not validated yet); raises :class:`DatasetError` naming the file it cannot read.
    """

    stem: str
    image: str
    mask: str
    read: Callable[[], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class SourceDataset:
    """What an adapter found: classes, ignore value and the items of each split (sorted by stem)."""

    kind: str
    source: str
    classes: tuple[str, ...]
    ignore_index: int
    splits: dict[str, list[SourceItem]]


def normalise_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Check a dataset spec and fill in defaults (see the module docstring for the keys).

    Returns
    -------
    dict
        Every key the spec's kind uses, with defaults filled in; ``resize`` as ``[H, W]`` or None,
        ``root`` as an absolute path string.

    Raises
    ------
    DatasetError
        For an unknown kind or key, a missing required key, or a value of the wrong type or range.
    """
    kind = spec.get("kind")
    if kind not in KINDS:
        raise DatasetError(f"dataset spec: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    known = {"kind", *_COMMON_DEFAULTS, *_KIND_DEFAULTS[kind]}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise DatasetError(
            f"dataset spec: key(s) {', '.join(unknown)} not used by kind {kind!r} "
            f"(it takes {', '.join(sorted(known))})"
        )
    full = {"kind": kind, **_COMMON_DEFAULTS, **_KIND_DEFAULTS[kind]}
    full.update({k: v for k, v in spec.items() if v is not None or k in ("resize", "limit")})

    full["seed"] = _non_negative_int(full["seed"], "seed")
    if full["resize"] is not None:
        resize = full["resize"]
        if not isinstance(resize, (list, tuple)) or len(resize) != 2:
            raise DatasetError(f"dataset spec: resize must be [H, W], got {resize!r}")
        full["resize"] = [_positive_int(v, "resize") for v in resize]
    if full["limit"] is not None:
        limit = full["limit"]
        if not isinstance(limit, Mapping) or set(limit) - set(SPLITS):
            raise DatasetError(f"dataset spec: limit must map some of {SPLITS} to n, got {limit!r}")
        full["limit"] = {s: _positive_int(n, f"limit.{s}") for s, n in limit.items()}
    if kind != "synthetic":
        if full["root"] is None:
            raise DatasetError(f"dataset spec: kind {kind!r} needs root (the source folder)")
        full["root"] = str(Path(full["root"]).expanduser().resolve())
    if kind == "synthetic":
        for key in ("n_train", "n_val", "n_test"):
            full[key] = _positive_int(full[key], key)
        for key in ("height", "width"):
            full[key] = _positive_int(full[key], key)
            if full[key] < 16:
                raise DatasetError(f"dataset spec: {key} must be >= 16, got {full[key]}")
    if kind in ("cityscapes", "voc"):
        fraction = full["val_fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise DatasetError(f"dataset spec: val_fraction must be a number, got {fraction!r}")
        if not 0 < fraction < 1:
            raise DatasetError(f"dataset spec: val_fraction must be in (0, 1), got {fraction}")
    if kind == "folder":
        _check_folder_spec(full)
    return full


def _check_folder_spec(full: dict[str, Any]) -> None:
    classes = full["classes"]
    if not isinstance(classes, (list, tuple)) or not classes:
        raise DatasetError("dataset spec: kind 'folder' needs classes (a non-empty list of names)")
    if not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
        raise DatasetError(f"dataset spec: classes must be distinct strings, got {classes!r}")
    full["classes"] = list(classes)
    ignore = full["ignore_index"]
    if isinstance(ignore, bool) or not isinstance(ignore, int) or not 0 <= ignore <= 255:
        raise DatasetError(f"dataset spec: ignore_index must be an int in [0, 255] (uint8), got {ignore!r}")
    if ignore < len(classes):
        raise DatasetError(
            f"dataset spec: ignore_index {ignore} is a class id (there are {len(classes)} classes); "
            f"it must be >= {len(classes)}"
        )
    ratios = full["split_ratios"]
    if (
        not isinstance(ratios, (list, tuple))
        or len(ratios) != 3
        or any(isinstance(r, bool) or not isinstance(r, (int, float)) or r < 0 for r in ratios)
        or abs(sum(ratios) - 1.0) > 1e-6
    ):
        raise DatasetError(
            f"dataset spec: split_ratios must be three non-negative fractions (train, val, test) "
            f"summing to 1, got {ratios!r}"
        )
    full["split_ratios"] = [float(r) for r in ratios]


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DatasetError(f"dataset spec: {key} must be an integer >= 1, got {value!r}")
    return value


def _non_negative_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DatasetError(f"dataset spec: {key} must be an integer >= 0, got {value!r}")
    return value


def open_source(spec: Mapping[str, Any]) -> SourceDataset:
    """Find the items of every split of the dataset described by ``spec``, with ``limit`` applied.

    Parameters
    ----------
    spec : mapping
        A dataset spec (see the module docstring); it is normalised first.

    Returns
    -------
    SourceDataset
        Splits "train", "val" and "test", items sorted by stem.

    Raises
    ------
    DatasetError
        For a bad spec, a missing root folder, missing files or split lists, or a split list naming
        a stem that does not exist.
    """
    full = normalise_spec(spec)
    if full["kind"] != "synthetic" and not Path(full["root"]).is_dir():
        raise DatasetError(f"{full['root']}: dataset root folder not found (kind {full['kind']})")
    source = _ADAPTERS[full["kind"]](full)
    limit = full["limit"] or {}
    splits = {split: items[: limit.get(split, len(items))] for split, items in source.splits.items()}
    return SourceDataset(source.kind, source.source, source.classes, source.ignore_index, splits)


def _file_pair_item(
    stem: str, image: Path, mask: Path, decode_mask: Callable[[Path], np.ndarray]
) -> SourceItem:
    return SourceItem(stem, str(image), str(mask), functools.partial(_read_pair, image, mask, decode_mask))


def _read_pair(
    image: Path, mask: Path, decode_mask: Callable[[Path], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    return read_rgb(image), decode_mask(mask)


def _require_dir(folder: Path, what: str) -> Path:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: {what} folder not found")
    return folder


def synthetic_source(full: dict[str, Any]) -> SourceDataset:
    """The generated dataset of :func:`alseg.data.synthetic.make_synthetic`; stems ``<split>_<i>``."""
    arrays = make_synthetic(
        full["seed"], full["n_train"], full["n_val"], full["n_test"], full["height"], full["width"]
    )
    splits: dict[str, list[SourceItem]] = {}
    for split, (images, masks) in arrays.items():
        splits[split] = [
            SourceItem(
                stem := f"{split}_{i:04d}",
                f"synthetic image {stem}",
                f"synthetic mask {stem}",
                functools.partial(_pick, images, masks, i),
            )
            for i in range(len(images))
        ]
    source = f"synthetic(seed={full['seed']})"
    return SourceDataset("synthetic", source, tuple(SYNTHETIC_CLASSES), SYNTHETIC_IGNORE_INDEX, splits)


def _pick(images: np.ndarray, masks: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    return images[index], masks[index]


def camvid_source(full: dict[str, Any]) -> SourceDataset:
    """CamVid in the SegNet layout: ``<split>/<name>.png`` with its mask ``<split>annot/<name>.png``.

    11 classes (:data:`CAMVID_CLASSES`), void = 11. Masks are 8-bit single-channel class ids. The
    ``<split>.txt`` lists of the SegNet copy are not used (their paths point at /SegNet/...); a split
    is every image in its folder.
    """
    root = Path(full["root"])
    splits: dict[str, list[SourceItem]] = {}
    for split in SPLITS:
        images = list_images_by_stem(_require_dir(root / split, f"CamVid {split} image"))
        mask_dir = _require_dir(root / f"{split}annot", f"CamVid {split} annotation")
        items = []
        for stem, image in sorted(images.items()):
            mask = mask_dir / image.name
            if not mask.is_file():
                raise DatasetError(f"no mask for image {image}: expected {mask}")
            items.append(_file_pair_item(stem, image, mask, read_label_image))
        splits[split] = items
    return SourceDataset("camvid", str(root), tuple(CAMVID_CLASSES), CAMVID_IGNORE_INDEX, splits)


def _cityscapes_lookup() -> np.ndarray:
    lookup = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lookup[list(CITYSCAPES_LABEL_TO_TRAIN_ID)] = list(CITYSCAPES_LABEL_TO_TRAIN_ID.values())
    return lookup


_CITYSCAPES_LOOKUP = _cityscapes_lookup()


def read_cityscapes_label_ids(path: Path) -> np.ndarray:
    """Read a ``*_gtFine_labelIds.png`` and map it to train ids, uint8 (H, W); other ids -> 255."""
    label_ids = read_label_image(path)
    if label_ids.dtype != np.uint8:
        raise DatasetError(f"{path}: labelIds image is not 8-bit")
    return _CITYSCAPES_LOOKUP[label_ids]


def cityscapes_source(full: dict[str, Any]) -> SourceDataset:
    """Cityscapes fine annotations: ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` with
    ``gtFine/<split>/<city>/<stem>_gtFine_labelIds.png``.

    labelIds are mapped to the 19 train ids of the official table (:data:`CITYSCAPES_CLASSES`);
    every other id becomes 255 (ignored). Cityscapes publishes no test labels, so the official
    ``val`` split is used as ``test``, and ``val`` is a seeded random ``val_fraction`` of the
    official ``train`` (``seed``), which keeps the rest as ``train``. Images are 1024 x 2048: set
    ``resize`` for anything but a GPU cluster.
    """
    root = Path(full["root"])
    found = {split: _cityscapes_pairs(root, split) for split in ("train", "val")}
    train, val = carve_val_from_train(sorted(found["train"]), full["val_fraction"], full["seed"])
    stems = {"train": train, "val": val, "test": sorted(found["val"])}
    pairs = {**found["train"], **found["val"]}
    splits = {
        split: [_file_pair_item(s, *pairs[s], read_cityscapes_label_ids) for s in stems[split]]
        for split in SPLITS
    }
    return SourceDataset("cityscapes", str(root), tuple(CITYSCAPES_CLASSES), IGNORE_INDEX, splits)


def _cityscapes_pairs(root: Path, split: str) -> dict[str, tuple[Path, Path]]:
    """Stem -> (image, labelIds mask) of one official split, checking every image has its mask."""
    image_dir = _require_dir(root / "leftImg8bit" / split, f"Cityscapes {split} image")
    mask_dir = _require_dir(root / "gtFine" / split, f"Cityscapes {split} annotation")
    pairs: dict[str, tuple[Path, Path]] = {}
    for image in sorted(image_dir.glob("*/*_leftImg8bit.png")):
        stem = image.name.removesuffix("_leftImg8bit.png")
        mask = mask_dir / image.parent.name / f"{stem}_gtFine_labelIds.png"
        if not mask.is_file():
            raise DatasetError(f"no mask for image {image}: expected {mask}")
        pairs[stem] = (image, mask)
    return pairs


def voc_source(full: dict[str, Any]) -> SourceDataset:
    """PASCAL VOC 2012 segmentation: ``JPEGImages/<stem>.jpg``, ``SegmentationClass/<stem>.png``
    (palette PNG read as class indices), lists ``ImageSets/Segmentation/{train,val}.txt``.

    21 classes (:data:`VOC_CLASSES`, 0 = background), 255 = object borders and difficult regions
    (ignored). VOC publishes no test labels, so the official ``val`` list is used as ``test``, and
    ``val`` is a seeded random ``val_fraction`` of the official ``train`` list (``seed``). Images
    differ in size (at most 500 x 500), so a VOC spec needs ``resize``.
    """
    root = Path(full["root"])
    image_dir = _require_dir(root / "JPEGImages", "VOC image")
    mask_dir = _require_dir(root / "SegmentationClass", "VOC annotation")
    lists = root / "ImageSets" / "Segmentation"
    official = {split: read_stem_list(lists / f"{split}.txt") for split in ("train", "val")}
    train, val = carve_val_from_train(official["train"], full["val_fraction"], full["seed"])
    stems = {"train": train, "val": val, "test": sorted(official["val"])}
    splits: dict[str, list[SourceItem]] = {}
    for split in SPLITS:
        items = []
        for stem in stems[split]:
            image, mask = image_dir / f"{stem}.jpg", mask_dir / f"{stem}.png"
            list_file = lists / ("val.txt" if split == "test" else "train.txt")
            if not image.is_file():
                raise DatasetError(f"{list_file}: names {stem!r} but {image} does not exist")
            if not mask.is_file():
                raise DatasetError(f"no mask for image {image}: expected {mask}")
            items.append(_file_pair_item(stem, image, mask, read_label_image))
        splits[split] = items
    return SourceDataset("voc", str(root), tuple(VOC_CLASSES), IGNORE_INDEX, splits)


def folder_source(full: dict[str, Any]) -> SourceDataset:
    """A generic folder: ``images/<stem>.<png|jpg|jpeg|tif|tiff>`` and ``masks/<stem>.png``.

    Masks are single-channel class ids (grey or palette PNG); classes and ignore value come from the
    spec. If ``splits/`` exists it must hold ``train.txt``, ``val.txt`` and ``test.txt`` (stems, one
    per line, no stem in two lists); otherwise every image is split at random by ``split_ratios``
    with ``seed``. Images outside the split lists are not used.
    """
    root = Path(full["root"])
    images = list_images_by_stem(root / "images")
    mask_dir = _require_dir(root / "masks", "mask")
    splits_dir = root / "splits"
    if splits_dir.is_dir():
        stems = {split: read_stem_list(splits_dir / f"{split}.txt") for split in SPLITS}
        _check_disjoint(stems, splits_dir)
        for split, names in stems.items():
            missing = [s for s in names if s not in images]
            if missing:
                raise DatasetError(
                    f"{splits_dir / f'{split}.txt'}: names {len(missing)} stem(s) with no image in "
                    f"{root / 'images'}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
                )
            stems[split] = sorted(names)
    else:
        stems = split_by_ratios(list(images), full["split_ratios"], full["seed"])
    splits: dict[str, list[SourceItem]] = {}
    for split in SPLITS:
        items = []
        for stem in stems[split]:
            mask = mask_dir / f"{stem}.png"
            if not mask.is_file():
                raise DatasetError(f"no mask for image {images[stem]}: expected {mask}")
            items.append(_file_pair_item(stem, images[stem], mask, read_label_image))
        splits[split] = items
    return SourceDataset("folder", str(root), tuple(full["classes"]), full["ignore_index"], splits)


def _check_disjoint(stems: dict[str, list[str]], splits_dir: Path) -> None:
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            shared = sorted(set(stems[a]) & set(stems[b]))
            if shared:
                raise DatasetError(
                    f"{splits_dir}: {a}.txt and {b}.txt both name {', '.join(shared[:5])}; "
                    "a stem may be in one split only"
                )


_ADAPTERS: dict[str, Callable[[dict[str, Any]], SourceDataset]] = {
    "synthetic": synthetic_source,
    "camvid": camvid_source,
    "cityscapes": cityscapes_source,
    "voc": voc_source,
    "folder": folder_source,
}
