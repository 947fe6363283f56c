"""The inference dump file (``inference.h5``): its layout, writing batches, and reading fields back.

Torch-free, so that acquisition steps can read a dump without importing torch; ``alseg.infer`` runs the
model and writes through :class:`InferenceWriter`.

Layout (docs/architecture.md, "Inference dump"); a dump holds the groups that its experiment's query unit
reads (:attr:`alseg.units.base.QueryUnit.dump_groups`):

- ``/pixel/top1``, ``/pixel/top2``, ``/pixel/entropy``: float16 (N, H, W); ``/pixel/pred``: uint8 (N, H, W);
  chunked one image per chunk and compressed (:data:`DEFAULT_COMPRESSION`).
- ``/image/class_presence`` float32 (N, C), ``/image/pred_pixels`` int64 (N, C), ``/image/features``
  float32 (N, F).
- ``/superpixel/pixel_count`` int64 (S,), ``uncertainty_sum`` float64 (S,),
  ``pred_counts`` int32 (S, C), ``mean_prob`` float32 (S, C), per base superpixel (:data:`SUPERPIXEL_FIELDS`).
- attrs: ``model`` (checksum), ``mc_passes``, ``seed``, ``num_classes``, plus the caller's (``round``,
  ``classes``, ...); lists and dicts are stored as JSON strings (:mod:`alseg.h5attrs`) and decoded by
  :func:`read_inference`.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from alseg.h5attrs import _attr_value, _decode_attr

PIXEL_FIELDS = ("top1", "top2", "entropy", "pred")
IMAGE_FIELDS = ("class_presence", "pred_pixels", "features")
FIELD_PATHS = {**{f: f"pixel/{f}" for f in PIXEL_FIELDS}, **{f: f"image/{f}" for f in IMAGE_FIELDS}}
FIELD_DTYPES = {
    "top1": np.float16,
    "top2": np.float16,
    "entropy": np.float16,
    "pred": np.uint8,
    "class_presence": np.float32,
    "pred_pixels": np.int64,
    "features": np.float32,
}
ENTROPY_EPS = 1e-12

#: Compression of the per-pixel datasets, chosen with ``benchmarks/inference_io.py`` (CamVid size, 367
#: images, smooth synthetic softmax, 2-core CPU): gzip level 1 with the byte-shuffle filter stores 645 kB per
#: image (raw 1210 kB), writes 59 img/s and reads 311 img/s; gzip 4-6 save 5-7 % more at 0.5-0.8x the write
#: speed, lzf+shuffle writes 1.6x faster but is 15 % larger, no compression is 1.9x larger.
DEFAULT_COMPRESSION = "gzip-1+shuffle"


class InferenceFileError(ValueError):
    """A missing, corrupt or incomplete inference dump (the message names the file)."""


def compression_options(spec: str) -> dict[str, Any]:
    """h5py dataset keyword arguments for a compression spec.

    Parameters
    ----------
    spec : str
        ``none``, ``lzf`` or ``gzip-<0..9>``, optionally followed by ``+shuffle`` (HDF5 byte shuffle,
        which groups the high and low bytes of float16 values and helps the compressor).

    Returns
    -------
    dict
        ``compression``, ``compression_opts``, ``shuffle`` for ``h5py.Group.create_dataset``.
    """
    base, _, suffix = spec.partition("+")
    if suffix not in ("", "shuffle"):
        raise ValueError(f"unknown compression option {spec!r} (expected e.g. 'gzip-1+shuffle')")
    options: dict[str, Any] = {"shuffle": suffix == "shuffle"}
    if base == "none":
        options["shuffle"] = False
    elif base == "lzf":
        options["compression"] = "lzf"
    elif base.startswith("gzip-") and base[5:].isdigit() and 0 <= int(base[5:]) <= 9:
        options.update(compression="gzip", compression_opts=int(base[5:]))
    else:
        raise ValueError(f"unknown compression {spec!r} (expected none, lzf or gzip-<0..9>)")
    return options


class InferenceWriter:
    """Creates the datasets of a dump's ``pixel`` and ``image`` groups in an open HDF5 file and writes batches.

    Parameters
    ----------
    h5 : h5py.File
        Open for writing.
    num_images, height, width, num_classes : int
    compression : str
        See :func:`compression_options`; applies to the per-pixel datasets.
    groups : collection of str
        Which of ``pixel`` and ``image`` to write; fields of other groups given to :meth:`write` are
        left out.
    """

    def __init__(self, h5: h5py.File, num_images: int, height: int, width: int, num_classes: int,
                 compression: str = DEFAULT_COMPRESSION, groups: Collection[str] = ("pixel", "image")) -> None:
        self.h5 = h5
        self.num_images = num_images
        self.fields = {name for name in FIELD_PATHS if FIELD_PATHS[name].split("/")[0] in groups}
        options = compression_options(compression)
        for name in PIXEL_FIELDS if "pixel" in groups else ():
            h5.create_dataset(FIELD_PATHS[name], shape=(num_images, height, width), dtype=FIELD_DTYPES[name],
                              chunks=(1, height, width) if num_images else None, **options)
        for name in ("class_presence", "pred_pixels") if "image" in groups else ():
            h5.create_dataset(FIELD_PATHS[name], shape=(num_images, num_classes), dtype=FIELD_DTYPES[name])

    def write(self, start: int, fields: dict[str, np.ndarray]) -> None:
        """Write the fields of images ``start .. start + b`` (each array's first axis is b)."""
        fields = {name: values for name, values in fields.items() if name in self.fields}
        if "features" in fields and FIELD_PATHS["features"] not in self.h5:
            # F is known only once the model has run
            feature_dim = fields["features"].shape[1]
            self.h5.create_dataset(FIELD_PATHS["features"], shape=(self.num_images, feature_dim),
                                   dtype=FIELD_DTYPES["features"])
        for name, values in fields.items():
            self.h5[FIELD_PATHS[name]][start : start + len(values)] = values.astype(FIELD_DTYPES[name], copy=False)


class InferenceData(dict):  # type: ignore[type-arg]
    """``dict[str, numpy.ndarray]`` of the fields read, keyed by short name (``top1``, ``features``, ...),
    with the file's attributes as ``.attrs`` (JSON-decoded)."""

    attrs: dict[str, Any]


def read_inference(
    path: str | os.PathLike[str],
    fields: list[str] | None = None,
    images: slice | np.ndarray | None = None,
) -> InferenceData:
    """Read fields of an inference dump.

    Parameters
    ----------
    path : path
    fields : list of str, optional
        Short names (``top1``, ``top2``, ``entropy``, ``pred``, ``class_presence``, ``pred_pixels``,
        ``features``) or paths (``pixel/top1``); None reads all of them.
    images : slice or ndarray of int, optional
        Subset of images (first axis) to read; None reads all. Index arrays must be increasing.

    Returns
    -------
    InferenceData
        A dict of arrays keyed by short name, with ``.attrs``.

    Raises
    ------
    FileNotFoundError, InferenceFileError
        Missing file, unreadable/corrupt file, or a missing field; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"inference dump not found: {path}")
    names = list(FIELD_PATHS) if fields is None else [f.strip("/").split("/")[-1] for f in fields]
    unknown = [n for n in names if n not in FIELD_PATHS]
    if unknown:
        raise InferenceFileError(f"{path}: unknown inference fields {unknown}; known: {list(FIELD_PATHS)}")
    selection = slice(None) if images is None else images
    try:
        with h5py.File(path, "r") as h5:
            missing = [n for n in names if FIELD_PATHS[n] not in h5]
            if missing:
                raise InferenceFileError(f"{path}: inference dump lacks fields {missing}")
            data = InferenceData({n: h5[FIELD_PATHS[n]][selection] for n in names})
            data.attrs = {k: _decode_attr(v) for k, v in h5.attrs.items()}
    except InferenceFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise InferenceFileError(f"{path}: cannot read inference dump (corrupt or incomplete): {err}") from err
    return data


#: ``/superpixel/<name>``: statistics of every base superpixel (global ids, pool order), written when the
#: model ran for a superpixel experiment (``docs/superpixels.md``).
SUPERPIXEL_FIELDS: dict[str, type] = {
    "pixel_count": np.int64,
    "uncertainty_sum": np.float64,
    "pred_counts": np.int32,
    "mean_prob": np.float32,
}


def create_superpixel_group(h5: h5py.File, num_superpixels: int, num_classes: int,
                            attrs: dict[str, Any] | None = None) -> None:
    """Create the ``/superpixel`` datasets of a dump (filled by :func:`write_superpixel_rows`).

    ``attrs`` (for example the superpixel file's method and size) go on the group.
    """
    group = h5.create_group("superpixel")
    for name, dtype in SUPERPIXEL_FIELDS.items():
        shape = (num_superpixels, num_classes) if name in ("pred_counts", "mean_prob") else (num_superpixels,)
        group.create_dataset(name, shape=shape, dtype=dtype)
    for key, value in (attrs or {}).items():
        group.attrs[key] = _attr_value(value)


def write_superpixel_rows(h5: h5py.File, start: int, fields: dict[str, np.ndarray]) -> None:
    """Write the statistics of superpixels ``start .. start + k`` (each array's first axis is k)."""
    for name, values in fields.items():
        h5[f"superpixel/{name}"][start : start + len(values)] = values.astype(SUPERPIXEL_FIELDS[name], copy=False)


def read_superpixel_fields(path: str | os.PathLike[str], fields: list[str] | None = None) -> InferenceData:
    """Read the ``/superpixel`` group of a dump.

    Parameters
    ----------
    path : path
    fields : list of str, optional
        Names in :data:`SUPERPIXEL_FIELDS`; None reads all.

    Returns
    -------
    InferenceData
        Arrays keyed by name; ``.attrs`` holds the file's attributes and the group's (prefixed
        ``superpixel.``).

    Raises
    ------
    FileNotFoundError, InferenceFileError
        Missing file, corrupt file, or a dump without superpixel statistics (made for a pixel
        experiment, or before the superpixel file was an input); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"inference dump not found: {path}")
    names = list(SUPERPIXEL_FIELDS) if fields is None else list(fields)
    unknown = [n for n in names if n not in SUPERPIXEL_FIELDS]
    if unknown:
        raise InferenceFileError(f"{path}: unknown superpixel fields {unknown}; known: {list(SUPERPIXEL_FIELDS)}")
    try:
        with h5py.File(path, "r") as h5:
            if "superpixel" not in h5:
                raise InferenceFileError(
                    f"{path}: inference dump has no /superpixel statistics (written for another query unit?); "
                    "delete it to let the workflow rebuild it")
            missing = [n for n in names if n not in h5["superpixel"]]
            if missing:
                raise InferenceFileError(f"{path}: inference dump lacks superpixel fields {missing}")
            data = InferenceData({n: h5[f"superpixel/{n}"][()] for n in names})
            data.attrs = {k: _decode_attr(v) for k, v in h5.attrs.items()}
            data.attrs.update({f"superpixel.{k}": _decode_attr(v) for k, v in h5["superpixel"].attrs.items()})
    except InferenceFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise InferenceFileError(f"{path}: cannot read inference dump (corrupt or incomplete): {err}") from err
    return data
