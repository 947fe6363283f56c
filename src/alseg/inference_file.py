"""The inference dump file (``inference.h5``): its layout, the image and superpixel groups, reading it back.

Torch-free, so that acquisition steps can read a dump without importing torch; ``alseg.infer`` runs the
model and writes through :class:`InferenceWriter`, :func:`create_superpixel_group` and the pixel group's
writer (:mod:`alseg.pixel_dump`).

Layout (docs/architecture.md, "Inference dump"); a dump holds the groups that its experiment's query unit
reads (:attr:`alseg.units.base.QueryUnit.dump_groups`):

- ``/pixel``: for each uncertainty strategy, the pixels that the next round's draws can reach
  (:mod:`alseg.pixel_dump`); no whole per-pixel map.
- ``/image/class_presence`` float32 (N, C), ``/image/pred_pixels`` int64 (N, C), ``/image/features``
  float32 (N, F).
- ``/superpixel/pixel_count`` int32 (S,), ``uncertainty_sum`` float64 (S,), ``pred_counts`` int32 (S, C),
  ``mean_prob`` float32 (S, C), per base superpixel (:data:`SUPERPIXEL_FIELDS`), chunked and compressed.
- attrs: ``format`` (:data:`FILE_FORMAT`), ``version`` (:data:`FILE_VERSION`), ``image_start`` and
  ``image_stop`` (the pool images the file holds), ``model`` (checksum), ``mc_passes``, ``mc_mode``,
  ``seed``, ``num_classes``, plus the caller's (``round``, ``classes``, ...); lists and dicts are stored as
  JSON strings (:mod:`alseg.h5attrs`) and decoded by the readers.

A dump is one file or several shard files, each holding consecutive pool images (``image_start`` ..
``image_stop``; its superpixel rows from the group's ``superpixel_start``): :class:`InferenceDump` reads
either the same way. Files of version 1 (no ``format``) keep the image and superpixel groups readable;
their whole per-pixel maps are refused by the pixel group's reader.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from alseg.h5attrs import _attr_value, _decode_attr

FILE_FORMAT = "alseg-inference"
#: 1: whole per-pixel maps (``/pixel/top1`` ...); 2: the pixel group keeps each strategy's candidates
FILE_VERSION = 2
IMAGE_FIELDS = ("class_presence", "pred_pixels", "features")
FIELD_PATHS = {f: f"image/{f}" for f in IMAGE_FIELDS}
FIELD_DTYPES = {"class_presence": np.float32, "pred_pixels": np.int64, "features": np.float32}
ENTROPY_EPS = 1e-12

#: Compression of the datasets that grow with the pool (the pixel group, the superpixel statistics),
#: chosen with ``benchmarks/inference_io.py``: gzip level 1 with the byte-shuffle filter (BENCHMARKS.md,
#: section 3, has the measurements of both dump formats).
DEFAULT_COMPRESSION = "gzip-1+shuffle"

PathLike = str | os.PathLike[str]


def dump_name(paths: PathLike | Sequence[PathLike]) -> str:
    """How messages name a dump: its file, or its first shard file and how many more there are."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    return str(paths[0]) if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} shards)"


class InferenceFileError(ValueError):
    """A missing, corrupt or incomplete inference dump (the message names the file)."""


def compression_options(spec: str) -> dict[str, Any]:
    """h5py dataset keyword arguments for a compression spec.

    Parameters
    ----------
    spec : str
        ``none``, ``lzf`` or ``gzip-<0..9>``, optionally followed by ``+shuffle`` (HDF5 byte shuffle,
        which groups the high and low bytes of multi-byte values and helps the compressor).

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


def dump_file_names(shards: int) -> list[str]:
    """The file names of a round's dump in ``shards`` files: ``inference.h5`` (the whole pool, or its first
    shard), then ``inference_shard<k>.h5`` for k = 1 .. shards - 1."""
    return ["inference.h5", *(f"inference_shard{k}.h5" for k in range(1, shards))]


def shard_ranges(num_images: int, shards: int, batch_size: int) -> list[tuple[int, int]]:
    """The pool images of each of ``shards`` inference shards: consecutive ranges ``(start, stop)`` of whole
    batches of ``batch_size`` (so that every batch, and its MC-dropout seed, is the one a single file has),
    as equal in batches as they can be (some empty when there are fewer batches than shards)."""
    if shards < 1 or batch_size < 1:
        raise ValueError(f"shards and batch_size must be >= 1, got {shards} and {batch_size}")
    batches = -(-num_images // batch_size)
    bounds = [min(num_images, (k * batches // shards) * batch_size) for k in range(shards + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def write_file_attrs(h5: h5py.File, image_start: int, image_stop: int, attrs: dict[str, Any]) -> None:
    """The format, version and image range of a dump file, and ``attrs`` (JSON where needed)."""
    for key, value in {"format": FILE_FORMAT, "version": FILE_VERSION, "image_start": int(image_start),
                       "image_stop": int(image_stop), **attrs}.items():
        h5.attrs[key] = _attr_value(value)


class InferenceWriter:
    """Creates the datasets of a dump's ``image`` group in an open HDF5 file and writes batches.

    Parameters
    ----------
    h5 : h5py.File
        Open for writing.
    num_images, num_classes : int
    groups : collection of str
        The dump's groups; without ``image`` the writer writes nothing.
    """

    def __init__(self, h5: h5py.File, num_images: int, num_classes: int, groups: Collection[str] = ("image",)) -> None:
        self.h5 = h5
        self.num_images = num_images
        self.fields = set(IMAGE_FIELDS) if "image" in groups else set()
        for name in ("class_presence", "pred_pixels") if self.fields else ():
            h5.create_dataset(FIELD_PATHS[name], shape=(num_images, num_classes), dtype=FIELD_DTYPES[name])

    def write(self, start: int, fields: dict[str, np.ndarray]) -> None:
        """Write the image fields of images ``start .. start + b`` (each array's first axis is b); other
        fields are left out."""
        fields = {name: values for name, values in fields.items() if name in self.fields}
        if "features" in fields and FIELD_PATHS["features"] not in self.h5:
            # F is known only once the model has run
            feature_dim = fields["features"].shape[1]
            self.h5.create_dataset(FIELD_PATHS["features"], shape=(self.num_images, feature_dim),
                                   dtype=FIELD_DTYPES["features"])
        for name, values in fields.items():
            self.h5[FIELD_PATHS[name]][start : start + len(values)] = values.astype(FIELD_DTYPES[name], copy=False)


class InferenceData(dict):  # type: ignore[type-arg]
    """``dict[str, numpy.ndarray]`` of the fields read, keyed by short name (``class_presence``, ...), with
    the file's attributes as ``.attrs`` (JSON-decoded)."""

    attrs: dict[str, Any]


class InferenceDump:
    """An inference dump open for reading: one file, or shard files that each hold consecutive pool images.

    Use as a context manager (``with InferenceDump(path) as dump``); the files stay open inside it.

    Parameters
    ----------
    paths : path or sequence of paths
        The dump's file, or its shards in any order (they must cover consecutive images from 0).

    Raises
    ------
    FileNotFoundError, InferenceFileError
        A missing, unreadable or corrupt file, or shards with gaps or overlaps; the message names the file.
    """

    def __init__(self, paths: PathLike | Sequence[PathLike]) -> None:
        self.paths = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
        self.name = dump_name(self.paths)
        self.files: list[h5py.File] = []
        self.ranges: list[tuple[int, int]] = []

    def __enter__(self) -> InferenceDump:
        try:
            for path in self.paths:
                if not path.is_file():
                    raise FileNotFoundError(f"inference dump not found: {path}")
                self.files.append(self._guarded(path, lambda p=path: h5py.File(p, "r")))
            self.ranges = [self._guarded(p, lambda f=f: _image_range(f)) for p, f in zip(self.paths, self.files)]
            order = sorted(range(len(self.files)), key=lambda k: self.ranges[k])
            self.paths, self.files = [self.paths[k] for k in order], [self.files[k] for k in order]
            self.ranges = [self.ranges[k] for k in order]
            starts = [start for start, _ in self.ranges]
            if starts[0] != 0 or any(stop != nxt for (_, stop), nxt in zip(self.ranges, starts[1:])):
                raise InferenceFileError(f"{self.name}: its shards do not hold consecutive images from 0 "
                                         f"({self.ranges})")
            self._check_shards_agree()
            self._drop_empty_shards()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for h5 in self.files:
            h5.close()
        self.files = []

    def _check_shards_agree(self) -> None:
        """Every shard must come from the same model and round, and the files must be all the shards their
        ``shards`` attribute counts (a shard left from another run, or one missing, is an error)."""
        first = self.files[0].attrs
        for path, h5 in zip(self.paths[1:], self.files[1:]):
            for key in ("model", "round", "mc_passes", "mc_mode"):
                mine, theirs = _decode_attr(h5.attrs.get(key)), _decode_attr(first.get(key))
                if mine != theirs:
                    raise InferenceFileError(f"{path}: a shard of another dump ({key} {mine!r}, {self.paths[0]} "
                                             f"has {theirs!r})")
        expected = {int(h5.attrs.get("shards", 1)) for h5 in self.files}
        if expected != {len(self.files)}:
            raise InferenceFileError(f"{self.name}: {len(self.files)} file(s), but the dump was written as "
                                     f"{sorted(expected)} shard(s)")

    def _drop_empty_shards(self) -> None:
        """Close the shards that hold no image (more shards than inference batches): they have no rows to
        read, and an image group written without a batch lacks ``features``."""
        keep = [k for k, (start, stop) in enumerate(self.ranges) if stop > start] or [0]
        for k in set(range(len(self.files))) - set(keep):
            self.files[k].close()
        self.paths, self.files = [self.paths[k] for k in keep], [self.files[k] for k in keep]
        self.ranges = [self.ranges[k] for k in keep]

    def _guarded(self, path: Path, read: Any) -> Any:
        """``read()``, with HDF5 and layout errors as an :class:`InferenceFileError` naming ``path``."""
        try:
            return read()
        except (InferenceFileError, FileNotFoundError):
            raise
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise InferenceFileError(f"{path}: cannot read inference dump (corrupt or incomplete): {err}") from err

    @property
    def attrs(self) -> dict[str, Any]:
        """The first file's attributes (the model's, shared by every shard), JSON-decoded."""
        return {key: _decode_attr(value) for key, value in self.files[0].attrs.items()}

    @property
    def version(self) -> int:
        return int(self.files[0].attrs.get("version", 1))

    @property
    def num_images(self) -> int:
        return self.ranges[-1][1]

    def pieces(self, start: int, stop: int) -> list[tuple[h5py.File, int, int, int]]:
        """The files that hold pool images ``start .. stop``, in order: (file, its first and stop local
        image of the range, the pool index of its image 0)."""
        if not 0 <= start <= stop <= self.num_images:
            raise InferenceFileError(f"{self.name}: images {start} .. {stop} are outside its {self.num_images}")
        return [(h5, max(start, a) - a, min(stop, b) - a, a) for h5, (a, b) in zip(self.files, self.ranges)
                if max(start, a) < min(stop, b)]

    def read(self, path: str, rows: slice | None = None) -> np.ndarray:
        """Dataset ``path`` of the dump, its files joined on the first axis (image rows; superpixel rows for
        ``superpixel/...``); ``rows``: a slice of the joined rows (step 1)."""
        def joined() -> np.ndarray:
            datasets = [h5[path] for h5 in self.files]
            firsts = [_first_row(h5, path) for h5 in self.files]
            total = firsts[-1] + datasets[-1].shape[0]
            start, stop, _ = (rows or slice(None)).indices(total)
            parts = [ds[max(start, a) - a : min(stop, a + ds.shape[0]) - a] for ds, a in zip(datasets, firsts)
                     if max(start, a) < min(stop, a + ds.shape[0])]
            if not parts:
                return datasets[0][0:0]
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        return self._guarded(self.paths[0], joined)  # type: ignore[no-any-return]

    def require(self, paths: Collection[str], what: str = "fields") -> None:
        """Every file must hold every dataset of ``paths`` (an :class:`InferenceFileError` names those it lacks)."""
        for file_path, h5 in zip(self.paths, self.files):
            missing = [p.split("/")[-1] for p in paths if p not in h5]
            if missing:
                raise InferenceFileError(f"{file_path}: inference dump lacks {what} {missing}")


def _first_row(h5: h5py.File, path: str) -> int:
    """The dump row of a file's first row of dataset ``path``: its first image, or first superpixel."""
    if path.startswith("superpixel/"):
        return int(h5["superpixel"].attrs.get("superpixel_start", 0))
    return int(h5.attrs.get("image_start", 0))


def _image_range(h5: h5py.File) -> tuple[int, int]:
    """The pool images a dump file holds: its attributes, or (version 1) the whole pool of its datasets."""
    if "image_start" in h5.attrs:
        return int(h5.attrs["image_start"]), int(h5.attrs["image_stop"])
    for path in ("image/class_presence", "pixel/top1"):
        if path in h5:
            return 0, int(h5[path].shape[0])
    return 0, 0


def read_inference(
    path: PathLike | Sequence[PathLike],
    fields: list[str] | None = None,
    images: slice | np.ndarray | None = None,
) -> InferenceData:
    """Read fields of a dump's ``image`` group.

    Parameters
    ----------
    path : path or sequence of paths
        The dump (its shards: :class:`InferenceDump`).
    fields : list of str, optional
        Short names (``class_presence``, ``pred_pixels``, ``features``) or paths (``image/features``);
        None reads all of them.
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
    names = list(FIELD_PATHS) if fields is None else [f.strip("/").split("/")[-1] for f in fields]
    unknown = [n for n in names if n not in FIELD_PATHS]
    if unknown:
        raise InferenceFileError(f"{path}: unknown inference fields {unknown}; known: {list(FIELD_PATHS)} "
                                 "(the per-pixel fields are read with alseg.pixel_dump)")
    with InferenceDump(path) as dump:
        dump.require([FIELD_PATHS[n] for n in names])
        data = InferenceData({n: dump.read(FIELD_PATHS[n]) for n in names})
        data.attrs = dump.attrs
    if images is not None:
        data = _subset(data, images)
    return data


def _subset(data: InferenceData, images: slice | np.ndarray) -> InferenceData:
    subset = InferenceData({name: values[images] for name, values in data.items()})
    subset.attrs = data.attrs
    return subset


#: ``/superpixel/<name>``: statistics of every base superpixel (global ids, pool order), written when the
#: model ran for a superpixel experiment (``docs/superpixels.md``). Counts are int32 (a superpixel is
#: smaller than its image); the readers of version-1 dumps get their int64 counts as stored.
SUPERPIXEL_FIELDS: dict[str, type] = {
    "pixel_count": np.int32,
    "uncertainty_sum": np.float64,
    "pred_counts": np.int32,
    "mean_prob": np.float32,
}
#: Superpixel rows per HDF5 chunk of the statistics
SUPERPIXEL_CHUNK = 1 << 14


def create_superpixel_group(h5: h5py.File, num_superpixels: int, num_classes: int,
                            attrs: dict[str, Any] | None = None, compression: str = DEFAULT_COMPRESSION,
                            superpixel_start: int = 0) -> None:
    """Create the ``/superpixel`` datasets of a dump (filled by :func:`write_superpixel_rows`).

    ``attrs`` (for example the superpixel file's method and size) go on the group, with
    ``superpixel_start``: the global id of its first row (0 but in a shard).
    """
    group = h5.create_group("superpixel")
    options = compression_options(compression) if num_superpixels else {}
    for name, dtype in SUPERPIXEL_FIELDS.items():
        shape = (num_superpixels, num_classes) if name in ("pred_counts", "mean_prob") else (num_superpixels,)
        chunks = (min(SUPERPIXEL_CHUNK, num_superpixels), *shape[1:]) if num_superpixels else None
        group.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, **options)
    for key, value in {**(attrs or {}), "superpixel_start": int(superpixel_start)}.items():
        group.attrs[key] = _attr_value(value)


def write_superpixel_rows(h5: h5py.File, start: int, fields: dict[str, np.ndarray]) -> None:
    """Write the statistics of superpixels ``start .. start + k`` (each array's first axis is k)."""
    for name, values in fields.items():
        h5[f"superpixel/{name}"][start : start + len(values)] = values.astype(SUPERPIXEL_FIELDS[name], copy=False)


def read_superpixel_fields(path: PathLike | Sequence[PathLike], fields: list[str] | None = None,
                           rows: slice | None = None) -> InferenceData:
    """Read the ``/superpixel`` group of a dump.

    Parameters
    ----------
    path : path or sequence of paths
        The dump (its shards: :class:`InferenceDump`).
    fields : list of str, optional
        Names in :data:`SUPERPIXEL_FIELDS`; None reads all.
    rows : slice, optional
        Global superpixel ids to read (a chunk of images: ``offsets[a]:offsets[b]``); None reads all.

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
    names = list(SUPERPIXEL_FIELDS) if fields is None else list(fields)
    unknown = [n for n in names if n not in SUPERPIXEL_FIELDS]
    if unknown:
        raise InferenceFileError(f"{path}: unknown superpixel fields {unknown}; known: {list(SUPERPIXEL_FIELDS)}")
    with InferenceDump(path) as dump:
        if any("superpixel" not in h5 for h5 in dump.files):
            raise InferenceFileError(
                f"{dump.name}: inference dump has no /superpixel statistics (written for another query unit?); "
                "delete it to let the workflow rebuild it")
        dump.require([f"superpixel/{n}" for n in names], "superpixel fields")
        data = InferenceData({n: dump.read(f"superpixel/{n}", rows) for n in names})
        data.attrs = dump.attrs
        data.attrs.update({f"superpixel.{k}": _decode_attr(v) for k, v in dump.files[0]["superpixel"].attrs.items()})
    return data
