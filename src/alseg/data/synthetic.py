"""A small synthetic segmentation dataset in which active learning matters, and a folder writer.

Each image is a background field with a few rotated ellipses of textured classes on top, some rare
blobs, thin curves, and unlabelled (void) objects and borders. What makes it a test of active learning
rather than of colour thresholds:

- classes are told apart by *texture* (stripe orientation, checker, dots, grain, a pixel-scale
  checker); every region's colour is drawn from a palette shared by several classes, and each image
  gets its own colour cast and brightness, so colour alone is ambiguous;
- background covers about 60 % of the pixels (class imbalance);
- ``rare_blob`` is a few small blobs in about 15 % of the images (well under 2 % of the pixels);
- ``thin_curve`` is 1-3 px wide curves, mostly boundary pixels;
- some region borders and a few small objects are void (ignore value 255), as in hand-labelled data;
- every image has Gaussian noise.

Class pixel frequencies of ``make_synthetic(0)`` (defaults: 64/16/32 images of 64 x 64), measured over
all splits; void is the share of ignore pixels. ``rare_blob`` is in 10 of the 64 train images. A
nearest-mean-colour classifier fitted on train labels 38 % of the test pixels right (it would score
59 % by answering "background" everywhere, so colour carries almost no information):

==================  ========
class               fraction
==================  ========
background          61.59 %
horizontal_stripes  8.16 %
diagonal_stripes    5.57 %
checker             6.89 %
grain               6.57 %
dots                6.79 %
rare_blob           0.23 %
thin_curve          2.82 %
void (255)          1.36 %
==================  ========
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from alseg.data.splits import SPLITS

SYNTHETIC_CLASSES = [
    "background",
    "horizontal_stripes",
    "diagonal_stripes",
    "checker",
    "grain",
    "dots",
    "rare_blob",
    "thin_curve",
]
SYNTHETIC_IGNORE_INDEX = 255

_BACKGROUND, _RARE, _THIN = 0, 6, 7
_REGION_CLASSES = np.array([1, 2, 3, 4, 5])  # the classes of the ellipses
_VOID_OBJECT = len(SYNTHETIC_CLASSES)  # rendered like an object, labelled 255

# Shared palette (RGB). Each class draws its region colour from three entries, and every entry is
# used by several classes, so a colour never identifies a class.
_PALETTE = np.array(
    [
        [170, 80, 70],
        [80, 150, 90],
        [70, 90, 170],
        [180, 170, 80],
        [140, 90, 160],
        [125, 125, 125],
    ],
    dtype=np.float32,
)
_CLASS_PALETTE_CHOICES = np.array(
    [
        [5, 1, 2],  # background
        [0, 3, 5],  # horizontal_stripes
        [0, 2, 4],  # diagonal_stripes
        [1, 3, 4],  # checker
        [2, 5, 0],  # grain
        [3, 4, 1],  # dots
        [1, 4, 5],  # rare_blob
        [0, 2, 3],  # thin_curve
        [0, 1, 2],  # void object (overwritten by a random colour)
    ]
)
# How strongly each class's texture modulates brightness (grey levels per unit of texture).
_TEXTURE_CONTRAST = np.array([28, 50, 50, 50, 45, 50, 55, 0, 0], dtype=np.float32)

_NOISE_SIGMA = 8.0
_RARE_IMAGE_FRACTION = 0.15
_VOID_BORDER_IMAGE_FRACTION = 0.3
_VOID_OBJECT_IMAGE_FRACTION = 0.15


def make_synthetic(
    seed: int,
    n_train: int = 64,
    n_val: int = 16,
    n_test: int = 32,
    height: int = 64,
    width: int = 64,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Generate the synthetic dataset (see the module docstring).

    Parameters
    ----------
    seed : int
        Everything is drawn from numpy generators seeded by ``(seed, split)``: the same seed gives the
        same arrays, and a split does not change when another split's size changes.
    n_train, n_val, n_test : int
        Number of images of each split, each >= 1.
    height, width : int
        Image size, each >= 16.

    Returns
    -------
    dict of str to (images, masks)
        For "train", "val", "test": images uint8 (N, H, W, 3) RGB and masks uint8 (N, H, W) holding a
        class id in ``[0, len(SYNTHETIC_CLASSES))`` or 255 (void).
    """
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    if min(sizes.values()) < 1 or min(height, width) < 16:
        raise ValueError(f"need >= 1 image per split and size >= 16x16, got {sizes}, {height}x{width}")
    return {
        split: _make_split(np.random.default_rng([seed, index]), sizes[split], height, width)
        for index, split in enumerate(SPLITS)
    }


def _make_split(
    rng: np.random.Generator, n: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (n, H, W, 3) and masks uint8 (n, H, W) of one split."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y[None], x[None]  # (1, H, W), broadcast against per-image parameters of shape (n, 1, 1)
    scale = float(min(height, width))

    drawn = _region_layout(rng, n, y, x, scale)
    void = _region_borders(drawn) & (rng.random(n) < _VOID_BORDER_IMAGE_FRACTION)[:, None, None]

    blobs = _blobs(rng, n, y, x, radius=(2.5, 4.5), max_count=2, image_fraction=_RARE_IMAGE_FRACTION)
    drawn = np.where(blobs, _RARE, drawn)
    curves = _thin_curves(rng, n, y, x, scale)
    drawn = np.where(curves, _THIN, drawn)
    void &= ~(blobs | curves)

    void_objects = _blobs(
        rng, n, y, x, radius=(2.0, 3.5), max_count=1, image_fraction=_VOID_OBJECT_IMAGE_FRACTION
    )
    drawn = np.where(void_objects, _VOID_OBJECT, drawn)
    void |= void_objects

    images = _render(rng, drawn, y, x)
    masks = np.where(void, SYNTHETIC_IGNORE_INDEX, drawn).astype(np.uint8)
    return images, masks


def _region_layout(
    rng: np.random.Generator, n: int, y: np.ndarray, x: np.ndarray, scale: float
) -> np.ndarray:
    """Class per pixel, int64 (n, H, W): background with up to 5 rotated textured ellipses on top."""
    slots = 5
    active = rng.random((n, slots)) < 0.75
    classes = rng.choice(_REGION_CLASSES, size=(n, slots))
    cy = rng.uniform(0, y.max(), (n, slots, 1, 1))
    cx = rng.uniform(0, x.max(), (n, slots, 1, 1))
    semi_major = rng.uniform(0.14, 0.36, (n, slots, 1, 1)) * scale
    semi_minor = semi_major * rng.uniform(0.4, 1.0, (n, slots, 1, 1))
    angle = rng.uniform(0, np.pi, (n, slots, 1, 1))
    dy, dx = y[:, None] - cy, x[:, None] - cx  # (n, slots, H, W)
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    inside = ((u / semi_major) ** 2 + (v / semi_minor) ** 2 <= 1.0) & active[:, :, None, None]
    # Later ellipses lie on top: the class of the last slot that covers the pixel.
    last_slot = slots - 1 - np.argmax(inside[:, ::-1], axis=1)
    covering = np.take_along_axis(classes[:, :, None, None], last_slot[:, None], axis=1)[:, 0]
    return np.where(inside.any(axis=1), covering, _BACKGROUND)


def _region_borders(labels: np.ndarray) -> np.ndarray:
    """Bool (n, H, W): pixels whose right or lower neighbour has another label (1 px borders)."""
    borders = np.zeros(labels.shape, dtype=bool)
    borders[:, :, :-1] |= labels[:, :, 1:] != labels[:, :, :-1]
    borders[:, :-1, :] |= labels[:, 1:, :] != labels[:, :-1, :]
    return borders


def _blobs(
    rng: np.random.Generator,
    n: int,
    y: np.ndarray,
    x: np.ndarray,
    radius: tuple[float, float],
    max_count: int,
    image_fraction: float,
) -> np.ndarray:
    """Bool (n, H, W): 1..max_count small round blobs in ``image_fraction`` of the images (at least 1).

    The images are chosen without replacement, so every split of >= 1 image gets blobs somewhere.
    """
    with_blobs = np.zeros(n, dtype=bool)
    with_blobs[rng.choice(n, size=max(1, round(image_fraction * n)), replace=False)] = True
    count = rng.integers(1, max_count + 1, n)
    active = with_blobs[:, None] & (np.arange(max_count)[None] < count[:, None])  # (n, max_count)
    margin = radius[1]
    cy = rng.uniform(margin, y.max() - margin, (n, max_count, 1, 1))
    cx = rng.uniform(margin, x.max() - margin, (n, max_count, 1, 1))
    r = rng.uniform(*radius, (n, max_count, 1, 1))
    inside = (y[:, None] - cy) ** 2 + (x[:, None] - cx) ** 2 <= r**2
    return (inside & active[:, :, None, None]).any(axis=1)


def _thin_curves(
    rng: np.random.Generator, n: int, y: np.ndarray, x: np.ndarray, scale: float
) -> np.ndarray:
    """Bool (n, H, W): up to two sinusoidal curves per image, each 1-3 px wide, in ~half the images."""
    slots = 2
    active = rng.random((n, slots)) < 0.35
    shape = (n, slots, 1, 1)
    angle = rng.uniform(0, np.pi, shape)
    offset = rng.uniform(-0.35, 0.35, shape) * scale
    amplitude = rng.uniform(0.03, 0.15, shape) * scale
    wavelength = rng.uniform(0.4, 1.2, shape) * scale
    phase = rng.uniform(0, 2 * np.pi, shape)
    half_width = rng.uniform(0.6, 1.5, shape)
    dy, dx = y[:, None] - y.mean(), x[:, None] - x.mean()
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    k = 2 * np.pi / wavelength
    offset_from_curve = v - offset - amplitude * np.sin(k * u + phase)
    # Divide the vertical offset by the curve's slope factor to get (approximately) the distance
    # across the curve, so a steep stretch is as thin as a flat one.
    slope = amplitude * k * np.cos(k * u + phase)
    distance = np.abs(offset_from_curve) / np.sqrt(1.0 + slope**2)
    return ((distance <= half_width) & active[:, :, None, None]).any(axis=1)


def _rotated(
    rng: np.random.Generator, n: int, y: np.ndarray, x: np.ndarray, angle: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (u, v), float32 (n, H, W), rotated by ``angle`` (n, 1, 1) with a random origin."""
    y0 = y - rng.uniform(0, 100, (n, 1, 1)).astype(np.float32)
    x0 = x - rng.uniform(0, 100, (n, 1, 1)).astype(np.float32)
    return x0 * np.cos(angle) + y0 * np.sin(angle), -x0 * np.sin(angle) + y0 * np.cos(angle)


def _textures(rng: np.random.Generator, n: int, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Texture of every class over whole images, float32 (C + 1, n, H, W), values in about [-1, 1].

    Row c is what a region of class c looks like wherever it is drawn (the last row is the void
    object, flat). Parameters are drawn per image.
    """
    per_image = (n, 1, 1)
    shape = (n, *y.shape[1:])
    textures = np.zeros((len(SYNTHETIC_CLASSES) + 1, *shape), dtype=np.float32)

    # background: a smooth field of three long-wavelength waves
    for _ in range(3):
        u, _v = _rotated(rng, n, y, x, rng.uniform(0, np.pi, per_image))
        textures[0] += np.cos(2 * np.pi * u / rng.uniform(25, 70, per_image)) / 3

    # horizontal and diagonal stripes: same frequencies, told apart by orientation only
    period = rng.uniform(5, 9, per_image)
    u, v = _rotated(rng, n, y, x, np.pi / 2 + rng.uniform(-0.2, 0.2, per_image))
    textures[1] = np.tanh(2.5 * np.sin(2 * np.pi * u / period))
    diagonal = rng.choice([np.pi / 4, 3 * np.pi / 4], per_image) + rng.uniform(-0.2, 0.2, per_image)
    u, v = _rotated(rng, n, y, x, diagonal)
    textures[2] = np.tanh(2.5 * np.sin(2 * np.pi * u / rng.uniform(5, 9, per_image)))

    # checker: squares of 4-7 px at any angle
    period = rng.uniform(8, 14, per_image)
    u, v = _rotated(rng, n, y, x, rng.uniform(0, np.pi / 2, per_image))
    textures[3] = np.tanh(4 * np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period))

    # grain: strong pixel-wise noise, stronger than the image noise everything gets
    textures[4] = np.clip(rng.normal(0, 0.7, shape), -1.5, 1.5)

    # dots: bright spots on a rotated lattice
    period = rng.uniform(5, 8, per_image)
    u, v = _rotated(rng, n, y, x, rng.uniform(0, np.pi / 2, per_image))
    lattice = (np.cos(2 * np.pi * u / period) + np.cos(2 * np.pi * v / period)) / 2
    textures[5] = np.where(lattice > 0.4, 1.0, -0.5)

    # rare blob: a one-pixel checkerboard (regular, unlike grain, which is also high-frequency)
    textures[6] = np.where((y.astype(np.int64) + x.astype(np.int64)) % 2 == 0, 1.0, -1.0)
    # thin curve and void object: flat colour (rows stay 0)
    return textures


def _render(rng: np.random.Generator, drawn: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """RGB images uint8 (n, H, W, 3) of the class layout ``drawn`` (n, H, W)."""
    n = drawn.shape[0]
    n_drawn_classes = len(SYNTHETIC_CLASSES) + 1
    textures = _textures(rng, n, y, x)
    texture = np.take_along_axis(textures, drawn[None], axis=0)[0]  # (n, H, W)

    # One colour per (image, class) from that class's palette entries, jittered.
    entry = _CLASS_PALETTE_CHOICES[
        np.arange(n_drawn_classes)[None], rng.integers(0, 3, (n, n_drawn_classes))
    ]
    colours = _PALETTE[entry] + rng.normal(0, 12, (n, n_drawn_classes, 3))
    colours[:, _VOID_OBJECT] = rng.uniform(30, 225, (n, 3))
    contrast = _TEXTURE_CONTRAST * rng.uniform(0.7, 1.2, (n, n_drawn_classes))

    image_index = np.arange(n)[:, None, None]
    pixels = colours[image_index, drawn] + (contrast[image_index, drawn] * texture)[..., None]
    # Per-image colour cast and brightness, then sensor noise.
    pixels = pixels * rng.uniform(0.8, 1.2, (n, 1, 1, 3)) + rng.uniform(-20, 20, (n, 1, 1, 1))
    pixels += rng.normal(0, _NOISE_SIGMA, pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def write_folder_dataset(
    out_dir: str | Path,
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
    classes: Sequence[str],
    ignore_index: int = SYNTHETIC_IGNORE_INDEX,
) -> Path:
    """Write a dataset in the generic folder layout read by the ``folder`` adapter.

    Writes ``images/<stem>.png`` (RGB), ``masks/<stem>.png`` (8-bit grey, class index or
    ``ignore_index``), ``splits/<split>.txt`` (stems, one per line) and ``dataset.json`` (class names
    and ignore value, to copy into a config). Stems are ``<split>_<index:04d>``.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing; files already there with the same names are overwritten.
    splits : mapping of str to (images, masks)
        Images uint8 (N, H, W, 3), masks uint8 (N, H, W), as returned by :func:`make_synthetic`.
    classes : sequence of str
    ignore_index : int

    Returns
    -------
    Path
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    for sub in ("images", "masks", "splits"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    for split, (images, masks) in splits.items():
        if images.shape[:3] != masks.shape or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"split {split}: images {images.shape} and masks {masks.shape} disagree")
        stems = [f"{split}_{i:04d}" for i in range(len(images))]
        for stem, image, mask in zip(stems, images, masks):
            Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="RGB").save(
                out_dir / "images" / f"{stem}.png"
            )
            Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="L").save(
                out_dir / "masks" / f"{stem}.png"
            )
        (out_dir / "splits" / f"{split}.txt").write_text("".join(s + "\n" for s in stems))
    (out_dir / "dataset.json").write_text(
        json.dumps({"classes": list(classes), "ignore_index": ignore_index}, indent=2) + "\n"
    )
    return out_dir
