"""PNG overlays of a superpixel round, for the audit: what was merged, asked, labelled and sieved out.

``round_<r>/overlays/<image>.png`` for the ``superpixel.overlays`` images with the most queries of the
round: left, base (grey) and merged (yellow) boundaries with the round's queried regions (red); right,
the labelled pixels of all rounds in class colours, sieved-out pixels in magenta.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from alseg.data import dataset_info, load_rows
from alseg.data.prepared import load_stems
from alseg.joblog import log
from alseg.labels import load_labels
from alseg.units.superpixel.files import RegionsFileError, load_regions, read_pool_superpixels
from alseg.units.superpixel.labels import labelled_pixels
from alseg.units.superpixel.sieving import label_confidences, load_sieve_model, sieve_pixels

PathLike = str | os.PathLike[str]

_BASE_COLOUR = (200, 200, 200)  # RGB
_MERGED_COLOUR = (255, 220, 0)
_QUERY_COLOUR = (255, 40, 40)
_SIEVED_COLOUR = (255, 0, 255)


def class_palette(num_classes: int) -> np.ndarray:
    """A distinct RGB colour per class (uint8 (C, 3)): hues evenly spaced from orange to violet, leaving out
    the red and magenta of the overlays' marks."""
    import cv2

    hues = (12 + np.arange(num_classes) * 128 // max(num_classes, 1)).astype(np.uint8)
    hsv = np.stack([hues, np.full(num_classes, 200, np.uint8), np.full(num_classes, 230, np.uint8)], axis=1)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label (bool, same shape as the 2-D ``labels``)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def overlay_images(query_image: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` pool images with the most queries this round (ties: smaller index), ascending."""
    images, per_image = np.unique(np.asarray(query_image, dtype=np.int64), return_counts=True)
    order = np.lexsort((images, -per_image))[:count]
    return np.sort(images[order])


def draw_overlay(
    image: np.ndarray,
    base: np.ndarray,
    merged: np.ndarray,
    query: np.ndarray,
    label: np.ndarray,
    sieved_out: np.ndarray,
    palette: np.ndarray,
    caption: str,
) -> np.ndarray:
    """One overlay (RGB uint8): left, base (grey) and merged (yellow) boundaries with this round's queried
    regions (red); right, the labelled pixels of all rounds in class colours, sieved-out pixels in magenta and
    this round's queries outlined in red. Small images are enlarged (nearest) to at least 256 px.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
    base : ndarray of int, shape (H, W)
        Base superpixel of every pixel.
    merged : ndarray of int, shape (H, W), or None
        Merged region of every pixel; None when the round did not merge.
    query : ndarray of int, shape (H, W)
        This round's query covering the pixel, -1 for none.
    label : ndarray of int, shape (H, W)
        Label of the pixel (-1: none).
    sieved_out : ndarray of bool, shape (H, W)
    palette : ndarray of uint8, shape (C, 3)
    caption : str
    """
    import cv2

    h, w = base.shape
    scale = max(1, int(np.ceil(256 / min(h, w))))

    def up(a: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)

    img, base, query, label, sieved_out = (up(a) for a in (image, base, query, label, sieved_out))
    asked = query >= 0
    left = img.astype(np.float32)
    left[asked] = 0.6 * left[asked] + 0.4 * np.array(_QUERY_COLOUR, np.float32)
    left[boundaries(base)] = _BASE_COLOUR
    if merged is not None:
        left[boundaries(up(merged))] = _MERGED_COLOUR
    query_edge = boundaries(np.where(asked, query, -1)) & (asked | np.roll(asked, -1, 0) | np.roll(asked, -1, 1))
    left[query_edge] = _QUERY_COLOUR
    right = 0.45 * img.astype(np.float32)
    labelled = label >= 0
    right[labelled] = 0.35 * right[labelled] + 0.65 * palette[label[labelled]].astype(np.float32)
    right[sieved_out] = _SIEVED_COLOUR
    right[query_edge] = _QUERY_COLOUR
    panel = np.concatenate([left, np.full((left.shape[0], 4, 3), 255, np.float32), right], axis=1)
    footer = np.full((34, panel.shape[1], 3), 255, np.float32)
    canvas = np.ascontiguousarray(np.concatenate([panel, footer], axis=0).clip(0, 255).astype(np.uint8))
    y = panel.shape[0]
    cv2.putText(canvas, caption, (4, y + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    legend = "grey: base  yellow: merged  red: asked this round  magenta: sieved out"
    cv2.putText(canvas, legend, (4, y + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (90, 90, 90), 1, cv2.LINE_AA)
    return canvas


def _safe_name(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "image"


def write_superpixel_overlays(
    dataset: PathLike,
    superpixels: PathLike,
    regions: PathLike,
    labels: PathLike,
    experiment: dict[str, Any],
    round_index: int,
    out_dir: PathLike,
    sieve_model: PathLike | None = None,
) -> list[Path]:
    """Write ``<out_dir>/<image>.png`` for the ``superpixel.overlays`` images with the most queries this round.

    Sieved-out pixels are those of the round's training labels (``labels``, round r's store) that sieving
    with ``sieve_model`` (round r-1's model) drops; sieving works region by region and a region lies in one
    image, so sieving only the drawn images gives their pixels the same verdict as the train step.
    The folder is replaced as a whole (written under a temporary name, then renamed).
    """
    import cv2

    info = dataset_info(dataset)
    stems = load_stems(dataset, "train")
    settings = experiment["superpixel"]
    rr = load_regions(regions)
    store = load_labels(labels)
    chosen = overlay_images(rr.query_image, int(settings["overlays"]))
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    written: list[Path] = []
    try:
        if chosen.size:
            images = load_rows(dataset, "train", "images", chosen)  # the drawn images only
            maps = read_pool_superpixels(superpixels, (len(stems), info.height, info.width), images=chosen)
            if maps.num_superpixels != rr.num_superpixels:
                raise RegionsFileError(f"{regions}: made for {rr.num_superpixels} base superpixels, {superpixels} "
                                       f"has {maps.num_superpixels}")
            pixels = labelled_pixels(store, maps)
            keep = np.ones(len(pixels), dtype=bool)
            if settings["sieve"] and round_index > 0 and sieve_model is not None and len(pixels):
                confidence = label_confidences(load_sieve_model(sieve_model, "cpu"), images, chosen,
                                               pixels, experiment["inference"]["batch_size"])
                keep, _ = sieve_pixels(pixels, confidence, settings["sieve_min_size"], settings["sieve_points"])
            query_of_base = rr.query_of_base()
            merged = not np.array_equal(rr.parent, np.arange(rr.num_superpixels))
            palette = class_palette(info.num_classes)
            position = np.searchsorted(chosen, pixels.image)
            h, w = info.height, info.width
            for k, index in enumerate(chosen):
                ids = maps.labels[k].astype(np.int64) + maps.offsets[index]
                label = np.full((h, w), -1, dtype=np.int64)
                sieved = np.zeros((h, w), dtype=bool)
                mine = position == k
                label[pixels.y[mine], pixels.x[mine]] = pixels.cls[mine]
                sieved[pixels.y[mine & ~keep], pixels.x[mine & ~keep]] = True
                query = query_of_base[ids]
                caption = (f"{stems[index]}  round {round_index}: {np.unique(query[query >= 0]).size} queries, "
                           f"{int((label >= 0).sum())} labelled px, {int(sieved.sum())} sieved out")
                canvas = draw_overlay(images[k], ids, rr.parent[ids] if merged else None, query, label,
                                      sieved, palette, caption)
                path = tmp / f"{_safe_name(stems[index])}.png"
                if not cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
                    raise OSError(f"cannot write {path}")
                written.append(out_dir / path.name)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"round {round_index}: {len(written)} overlays -> {out_dir}")
    return written
