"""Augmentation that carries sparse labelled points through geometric transforms.

Sparse labels are points (y, x, class) on an image. PixelPick's official code resized the sparse label
mask with nearest neighbour, which silently loses labelled pixels when down-scaling and smears nothing
back when up-scaling. Here the points themselves are transformed:

- scale: every point survives exactly once, at ``floor((y + 0.5) * new_h / h)`` (pixel-centre mapping).
  Two points may land on the same output pixel when down-scaling; both stay, each with its own loss term.
- crop: points outside the window are removed and counted (``n_outside``), never silently.
- flip: ``x -> w - 1 - x``.
- photometric jitter, grayscale and blur change the image only.

Order: scale, crop (with zero padding where the scaled image is smaller than the window), flip,
photometric ops (on the crop, which is cheaper), normalisation with the ImageNet mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from alseg.defaults import AUGMENT_DEFAULTS

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255.0
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255.0

#: Luma weights (ITU-R 601) for grayscale and saturation jitter.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

#: Defaults of the augmentation config (PixelPick's CamVid training augmentation).
DEFAULT_AUGMENT: dict[str, Any] = AUGMENT_DEFAULTS

#: A config that changes nothing (the evaluation path).
NO_AUGMENT: dict[str, Any] = {
    "scale": [1.0, 1.0],
    "crop": None,
    "flip": False,
    "color_jitter": 0.0,
    "grayscale": 0.0,
    "blur": 0.0,
}


@dataclass(frozen=True)
class AugmentedSample:
    """One augmented training sample.

    Attributes
    ----------
    image : ndarray, float32, shape (3, h, w)
        Normalised image (ImageNet mean/std), channels first.
    ys, xs : ndarray, int64, shape (P',)
        Labelled points in ``image`` coordinates.
    classes : ndarray, int64, shape (P',)
        Their classes.
    n_outside : int
        Points that fell outside the crop window and were removed (P' = P - n_outside).
    region : (top, bottom, left, right)
        The rows ``top:bottom`` and columns ``left:right`` of ``image`` that show the source image; the
        rest is padding (image-level losses, such as those of binary answers, skip it).
    whole_image : bool
        Whether the sample shows all of the (scaled) source image, nothing cropped away: an image-level
        "class c is present" still holds for it.
    """

    image: np.ndarray
    ys: np.ndarray
    xs: np.ndarray
    classes: np.ndarray
    n_outside: int
    region: tuple[int, int, int, int] = (0, 0, 0, 0)
    whole_image: bool = True


def normalise_images(images: np.ndarray) -> np.ndarray:
    """Normalise uint8 RGB images with the ImageNet mean/std, channels first.

    Parameters
    ----------
    images : ndarray, uint8 (or float in [0, 255]), shape (H, W, 3) or (N, H, W, 3)

    Returns
    -------
    ndarray, float32, shape (3, H, W) or (N, 3, H, W)
    """
    normalised = (images.astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(np.moveaxis(normalised, -1, -3))


def scale_points(
    ys: np.ndarray, xs: np.ndarray, size: tuple[int, int], new_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Map pixel coordinates from an image of ``size`` to one resized to ``new_size`` (pixel centres).

    ``y' = floor((y + 0.5) * new_h / h)``, computed in integers as ``((2y + 1) new_h) // (2h)``, so that
    every point lands in ``[0, new_h)`` exactly once with no floating-point edge cases.

    Parameters
    ----------
    ys, xs : ndarray of int, shape (P,)
    size, new_size : (h, w)

    Returns
    -------
    ys, xs : ndarray, int64, shape (P,)
    """
    (h, w), (new_h, new_w) = size, new_size
    ys64, xs64 = ys.astype(np.int64), xs.astype(np.int64)
    return ((2 * ys64 + 1) * new_h) // (2 * h), ((2 * xs64 + 1) * new_w) // (2 * w)


def _random_window_start(rng: np.random.Generator, size: int, window: int) -> int:
    """Start of a window of ``window`` pixels over ``size`` pixels; negative when the window is larger
    (the image is then placed at a random offset inside a zero-padded window)."""
    low, high = min(0, size - window), max(0, size - window)
    return int(rng.integers(low, high + 1))


def _colour_jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast and saturation factors in ``[1 - s, 1 + s]`` (float32 image in [0, 255])."""
    brightness, contrast, saturation = rng.uniform(max(0.0, 1 - strength), 1 + strength, size=3)
    image = image * np.float32(brightness)
    gray = image @ _LUMA
    image = (image - gray.mean()) * np.float32(contrast) + gray.mean()
    gray = (image @ _LUMA)[..., None]
    image = gray + (image - gray) * np.float32(saturation)
    return np.clip(image, 0.0, 255.0, out=image)


def _draw(rng: np.random.Generator | None) -> np.random.Generator:
    """``rng``, for a random draw the config asks for."""
    if rng is None:
        raise ValueError("augmentation config draws random numbers but rng is None")
    return rng


def _checked_points(ys: np.ndarray, xs: np.ndarray, classes: np.ndarray, height: int, width: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The points as int64 arrays, after checking their shapes and that they lie in the image."""
    ys = np.asarray(ys, dtype=np.int64)
    xs = np.asarray(xs, dtype=np.int64)
    classes = np.asarray(classes, dtype=np.int64)
    if ys.shape != xs.shape or ys.shape != classes.shape:
        raise ValueError(f"ys, xs, classes differ in shape: {ys.shape}, {xs.shape}, {classes.shape}")
    if ys.size and (ys.min() < 0 or ys.max() >= height or xs.min() < 0 or xs.max() >= width):
        raise ValueError(f"labelled points outside the {height}x{width} image")
    return ys, xs, classes


def _scaled(image: np.ndarray, ys: np.ndarray, xs: np.ndarray, scale_range: Any, rng: np.random.Generator | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """The image resized by a random factor in ``scale_range`` with its points, and its new (h, w)."""
    height, width = image.shape[:2]
    scale_lo, scale_hi = (float(v) for v in scale_range)
    scale = _draw(rng).uniform(scale_lo, scale_hi) if scale_hi > scale_lo else scale_lo
    new_size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if new_size != (height, width):
        # INTER_AREA avoids aliasing when shrinking; bilinear when enlarging
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_size[1], new_size[0]), interpolation=interpolation)
        ys, xs = scale_points(ys, xs, (height, width), new_size)
    return image, ys, xs, new_size


def _cropped_points(ys: np.ndarray, xs: np.ndarray, classes: np.ndarray, size: tuple[int, int],
                    window: tuple[int, int], rng: np.random.Generator | None
                    ) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, int]:
    """A random window over an image of ``size``: its start (top, left; negative where the window is
    larger), the points inside it in window coordinates, and how many fell outside."""
    top = left = 0
    n_outside = 0
    if window != size:
        top = _random_window_start(_draw(rng), size[0], window[0])
        left = _random_window_start(_draw(rng), size[1], window[1])
        ys, xs = ys - top, xs - left
        inside = (ys >= 0) & (ys < window[0]) & (xs >= 0) & (xs < window[1])
        n_outside = int(inside.size - np.count_nonzero(inside))
        if n_outside:
            ys, xs, classes = ys[inside], xs[inside], classes[inside]
    return top, left, ys, xs, classes, n_outside


def _photometric(region: np.ndarray, cfg: dict[str, Any], rng: np.random.Generator | None) -> np.ndarray:
    """Colour jitter, grayscale and blur of the image region only (padding stays the mean colour, 0 after
    normalisation); float32 (h, w, 3)."""
    if float(cfg["color_jitter"]) > 0:
        region = _colour_jitter(region, float(cfg["color_jitter"]), _draw(rng))
    if float(cfg["grayscale"]) > 0 and _draw(rng).random() < float(cfg["grayscale"]):
        region = np.repeat((region @ _LUMA)[..., None], 3, axis=2)
    if float(cfg["blur"]) > 0 and _draw(rng).random() < float(cfg["blur"]):
        sigma = float(_draw(rng).uniform(0.1, 2.0))
        region = cv2.GaussianBlur(region, (0, 0), sigma)
    return region


def _in_window(region: np.ndarray, window: tuple[int, int], shown: tuple[int, int, int, int], top: int,
               left: int) -> np.ndarray:
    """The window (h, w, 3) float32: ``region`` (rows y0:y1, columns x0:x1 of the scaled image, ``shown``)
    at its place, the mean colour around it."""
    y0, x0, y1, x1 = shown
    if (y0, x0, y1, x1) == (0, 0, window[0], window[1]):
        return region
    work = np.empty((window[0], window[1], 3), dtype=np.float32)
    work[:] = IMAGENET_MEAN
    work[y0 - top : y1 - top, x0 - left : x1 - left] = region
    return work


def augment_sample(
    image: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    classes: np.ndarray,
    rng: np.random.Generator | None,
    cfg: dict[str, Any] | None,
    out_size: tuple[int, int] | None = None,
) -> AugmentedSample:
    """Augment one image and carry its labelled points along.

    Parameters
    ----------
    image : ndarray, uint8, shape (H, W, 3)
        RGB image.
    ys, xs, classes : ndarray of int, shape (P,)
        Labelled points (row, column, class); rows in ``[0, H)``, columns in ``[0, W)``.
    rng : numpy.random.Generator or None
        Source of every random draw (None only when ``cfg`` draws nothing, e.g. :data:`NO_AUGMENT`).
    cfg : dict or None
        Keys (defaults in :data:`DEFAULT_AUGMENT`): ``scale`` [lo, hi] random scale factor ([1, 1]
        disables); ``crop`` [h, w] or None, the random window taken after scaling (zero padded where the
        scaled image is smaller); ``flip`` horizontal flip with probability 0.5; ``color_jitter`` strength of
        brightness/contrast/saturation (0 disables); ``grayscale`` and ``blur`` probabilities.
        None means no augmentation.
    out_size : (h, w) or None
        Window size used when ``cfg["crop"]`` is None, so that samples of a batch share one size (the
        trainer passes the dataset's image size: random scaling then crops or pads back to it). None with no
        crop keeps the scaled size.

    Returns
    -------
    AugmentedSample
        Padding pixels are 0 after normalisation (the mean colour) and hold no points.
    """
    cfg = NO_AUGMENT if cfg is None else {**DEFAULT_AUGMENT, **cfg}
    height, width = image.shape[:2]
    ys, xs, classes = _checked_points(ys, xs, classes, height, width)
    image, ys, xs, new_size = _scaled(image, ys, xs, cfg["scale"], rng)

    # crop window: the region of the scaled image that the window covers; the rest of the window is padding
    window = cfg["crop"] if cfg["crop"] is not None else out_size
    window = new_size if window is None else (int(window[0]), int(window[1]))
    top, left, ys, xs, classes, n_outside = _cropped_points(ys, xs, classes, new_size, window, rng)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + window[0], new_size[0]), min(left + window[1], new_size[1])
    region = _photometric(image[y0:y1, x0:x1].astype(np.float32), cfg, rng)
    work = _in_window(region, window, (y0, x0, y1, x1), top, left)

    shown_left, shown_right = x0 - left, x1 - left
    if cfg["flip"] and _draw(rng).random() < 0.5:
        work = work[:, ::-1]
        xs = window[1] - 1 - xs
        shown_left, shown_right = window[1] - shown_right, window[1] - shown_left

    return AugmentedSample(
        image=normalise_images(work),
        ys=np.ascontiguousarray(ys),
        xs=np.ascontiguousarray(xs),
        classes=classes,
        n_outside=n_outside,
        region=(y0 - top, y1 - top, shown_left, shown_right),
        whole_image=(y0, x0, y1, x1) == (0, 0, new_size[0], new_size[1]),
    )
