"""Reading and resizing image/mask files, with errors that name the file.

Images and masks are both read with PIL: it decodes palette PNGs to their indices (VOC masks), raises
on truncated files instead of returning a half-grey image, and releases the GIL while decoding so a
thread pool reads in parallel.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from alseg.data.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

# Modes PIL converts to 8-bit RGB without losing meaning; 16-bit and float images would be clipped.
_RGB_CONVERTIBLE_MODES = {"RGB", "RGBA", "RGBX", "L", "LA", "P", "PA", "1", "CMYK", "YCbCr"}
# Single-channel modes whose pixel values are class ids (P: palette indices, read as indices).
_LABEL_MODES = {"L", "P", "1", "I", "I;16", "I;16L", "I;16B"}


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB.

    Parameters
    ----------
    path : Path
        An image file PIL can decode (PNG, JPEG, TIFF, ...), 8 bits per channel.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        Grey and palette images are expanded to RGB, alpha is dropped.

    Raises
    ------
    DatasetError
        If the file is missing, unreadable, truncated or not 8-bit.
    """
    try:
        with Image.open(path) as image:
            if image.mode not in _RGB_CONVERTIBLE_MODES:
                raise DatasetError(
                    f"{path}: image mode {image.mode!r} is not 8-bit; convert it to 8-bit RGB"
                )
            image.load()
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        if isinstance(err, DatasetError):
            raise
        raise DatasetError(f"{path}: cannot read image ({err})") from err


def read_label_image(path: Path) -> np.ndarray:
    """Read a single-channel label image as its raw pixel values (class ids before validation).

    Parameters
    ----------
    path : Path
        A single-channel image: grey ('L', 16-bit 'I;16'), 1-bit, or palette ('P'). Palette images
        are read as their indices, never converted through the palette to colours.

    Returns
    -------
    ndarray, shape (H, W)
        uint8 for 8-bit and palette images, int32 for 16-bit ones (so that values above 255 can be
        reported instead of silently wrapping).

    Raises
    ------
    DatasetError
        If the file is missing, unreadable, or has more than one channel (an RGB colour mask).
    """
    try:
        with Image.open(path) as image:
            if image.mode not in _LABEL_MODES:
                raise DatasetError(
                    f"{path}: mask is not single-channel (mode {image.mode!r}, "
                    f"bands {image.getbands()}); masks must hold one class index per pixel"
                )
            image.load()
            values = np.asarray(image)
    except FileNotFoundError:
        raise DatasetError(f"{path}: mask file not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        if isinstance(err, DatasetError):
            raise
        raise DatasetError(f"{path}: cannot read mask ({err})") from err
    if values.dtype == bool:
        return values.astype(np.uint8)
    if values.dtype != np.uint8:
        return values.astype(np.int32)
    return values


def check_label_values(
    mask: np.ndarray, num_classes: int, ignore_index: int, path: Path | str
) -> None:
    """Raise if ``mask`` holds a value that is neither a class id in [0, C) nor ``ignore_index``.

    Parameters
    ----------
    mask : ndarray of uint8 or int, shape (H, W)
    num_classes : int
        C.
    ignore_index : int
    path : Path or str
        The mask's file, named in the error.
    """
    flat = mask.reshape(-1)
    if flat.dtype != np.uint8 and flat.size and (flat.min() < 0 or flat.max() > 65535):
        raise DatasetError(f"{path}: mask values outside [0, 65535]")
    counts = np.bincount(flat.astype(np.int64, copy=False), minlength=256)
    allowed = np.zeros(counts.size, dtype=bool)
    allowed[:num_classes] = True
    allowed[ignore_index] = True
    bad_values = np.flatnonzero((counts > 0) & ~allowed)
    if bad_values.size:
        shown = ", ".join(f"{v} ({counts[v]} px)" for v in bad_values[:10])
        more = f" and {bad_values.size - 10} more" if bad_values.size > 10 else ""
        raise DatasetError(
            f"{path}: mask holds values that are neither a class id in [0, {num_classes}) nor the "
            f"ignore value {ignore_index}: {shown}{more}"
        )


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an RGB image to (height, width).

    Area averaging when shrinking (no aliasing), bilinear when enlarging.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)

    Returns
    -------
    ndarray of uint8, shape (height, width, 3)
    """
    if image.shape[:2] == (height, width):
        return image
    shrinking = height <= image.shape[0] and width <= image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a class-index mask to (height, width) by nearest neighbour, so classes never mix.

    Parameters
    ----------
    mask : ndarray of uint8, shape (H, W)

    Returns
    -------
    ndarray of uint8, shape (height, width)
        Holds only values present in ``mask``.
    """
    if mask.shape == (height, width):
        return mask
    # INTER_NEAREST_EXACT samples at pixel centres like INTER_AREA/LINEAR do for the image, so the
    # mask stays aligned with it; plain INTER_NEAREST is shifted by up to half a source pixel.
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)


def list_images_by_stem(folder: Path) -> dict[str, Path]:
    """Map each image file's stem to its path, for files in ``folder`` with an image suffix.

    Suffixes are matched case-insensitively; hidden files are skipped.

    Raises
    ------
    DatasetError
        If ``folder`` is not a folder, or two images share a stem (``a.png`` and ``a.jpg``).
    """
    if not folder.is_dir():
        raise DatasetError(f"{folder}: image folder not found")
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in by_stem:
            raise DatasetError(
                f"{path}: two images share the stem {path.stem!r} ({by_stem[path.stem].name} and "
                f"{path.name}); keep one"
            )
        by_stem[path.stem] = path
    return by_stem


def read_stem_list(path: Path) -> list[str]:
    """Read a split list: one stem per line; blank lines and surrounding spaces are ignored.

    Raises
    ------
    DatasetError
        If the file is missing or names a stem twice.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: split list not found")
    stems = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    seen: set[str] = set()
    for stem in stems:
        if stem in seen:
            raise DatasetError(f"{path}: names {stem!r} twice")
        seen.add(stem)
    return stems
