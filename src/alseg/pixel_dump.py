"""The pixel group of the inference dump: per uncertainty strategy, the pixels the next round's draws can reach.

PixelPick draws an image's queries from its ``top_percent`` % most uncertain eligible pixels
(:mod:`alseg.acquire.pixel`). Round r's dump is written once round r's labels exist, so the pixels that
round r + 1 may ask are known then. Per image and strategy the group keeps only the eligible pixels whose
priority reaches the cut of that draw, ties included (:func:`alseg.acquire.pixel.candidate_members`), with
the float16 fields the strategy's score reads, and the number of eligible pixels; from them round r + 1
draws exactly what it would draw from whole maps (:func:`alseg.acquire.pixel.select_from_candidates`),
reading a few percent of the pixels, a chunk of images at a time.

Its datasets and attributes (``eligible``, ``cover``, and per strategy ``offsets``, ``index``, the float16
fields and ``nan``) are described once, in docs/architecture.md ("Inference dump").
The 1-D datasets are chunked and compressed (:data:`alseg.inference_file.DEFAULT_COMPRESSION`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from alseg.acquire.pixel import STRATEGY_FIELDS, PixelCandidates, candidates_from_maps
from alseg.h5attrs import _attr_value, _decode_attr
from alseg.inference_file import DEFAULT_COMPRESSION, InferenceDump, InferenceFileError, compression_options

STRATEGIES = tuple(STRATEGY_FIELDS)
#: Rows per HDF5 chunk of the members' arrays
MEMBER_CHUNK = 1 << 16


@dataclass(frozen=True)
class PixelDumpRequest:
    """The draws the pixel group covers: those of the next round's selection.

    Attributes
    ----------
    budget : int
        Pixels per image the next round asks.
    top_percent : float
        Its draw pool, % of an image's eligible pixels.
    eligible : callable
        ``eligible(start, stop)``: bool (b, H, W), the pixels the next round may ask in pool images
        ``start .. stop``.
    eligibility : dict
        JSON-able, what decides ``eligible`` (the asked pixels' digest, whether void is asked): stored, and
        compared by the selection with its own.
    """

    budget: int
    top_percent: float
    eligible: Callable[[int, int], np.ndarray]
    eligibility: dict[str, Any]


def asked_digest(image: np.ndarray, y: np.ndarray, x: np.ndarray) -> str:
    """A hex digest of a set of pixels (order does not matter): which pixels were asked before."""
    keys = np.stack([np.asarray(a, dtype=np.int64).reshape(-1) for a in (image, y, x)], axis=1)
    keys = keys[np.lexsort(keys.T[::-1])]
    return hashlib.blake2b(np.ascontiguousarray(keys).tobytes(), digest_size=16).hexdigest()


class PixelDumpWriter:
    """Creates a dump's ``/pixel`` group in an open HDF5 file and appends batches of images, in order.

    Parameters
    ----------
    h5 : h5py.File
    request : PixelDumpRequest
    num_images, height, width : int
    passes : int
        The score's factor (:func:`alseg.mc_dropout.summed_passes` of the dump's attributes).
    compression : str
        :func:`alseg.inference_file.compression_options`.
    first_image : int
        The pool index of the file's image 0 (a shard's ``image_start``): :meth:`write` takes pool indices.
    """

    def __init__(self, h5: h5py.File, request: PixelDumpRequest, num_images: int, height: int, width: int,
                 passes: int = 1, compression: str = DEFAULT_COMPRESSION, first_image: int = 0) -> None:
        self.request, self.passes = request, int(passes)
        self.first_image = self.next_image = int(first_image)
        self.group = h5.create_group("pixel")
        for key, value in {"budget": int(request.budget), "top_percent": float(request.top_percent),
                           "passes": self.passes, "height": int(height), "width": int(width),
                           "eligibility": request.eligibility}.items():
            self.group.attrs[key] = _attr_value(value)
        for name in ("eligible", "cover"):
            self.group.create_dataset(name, shape=(num_images,), dtype=np.int64)
        options = compression_options(compression)
        for strategy, fields in STRATEGY_FIELDS.items():
            sub = self.group.create_group(strategy)
            sub.create_dataset("offsets", shape=(num_images + 1,), dtype=np.int64)
            sub.create_dataset("nan", shape=(num_images,), dtype=np.int64)
            for name, dtype in {"index": np.uint32, **{f: np.float16 for f in fields}}.items():
                sub.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(MEMBER_CHUNK,), **options)

    def write(self, start: int, fields: dict[str, np.ndarray]) -> None:
        """Add images ``start .. start + b`` from their per-pixel fields (``top1``, ``top2``, ``entropy``:
        float (b, H, W), stored as float16 as the scores read them)."""
        if start != self.next_image:
            raise ValueError(f"pixel dump batches must come in order: image {start}, expected {self.next_image}")
        stop = start + len(fields["top1"])
        eligible = self.request.eligible(start, stop)
        maps = {name: np.asarray(fields[name]).astype(np.float16) for name in ("top1", "top2", "entropy")}
        for strategy in STRATEGIES:
            candidates = candidates_from_maps(strategy, maps, eligible, self.request.budget, self.request.top_percent,
                                              self.passes, start)
            self._append(strategy, start, candidates)
        local = slice(start - self.first_image, stop - self.first_image)
        # every strategy's candidates count the same eligible pixels and draws
        self.group["eligible"][local] = candidates.eligible
        self.group["cover"][local] = candidates.cover
        self.next_image = stop

    def _append(self, strategy: str, start: int, candidates: PixelCandidates) -> None:
        sub = self.group[strategy]
        before, count = sub["index"].shape[0], candidates.index.size
        for name, values in {"index": candidates.index, **candidates.fields}.items():
            sub[name].resize((before + count,))
            sub[name][before:] = values
        first = start - self.first_image
        sub["offsets"][first + 1 : first + candidates.eligible.size + 1] = before + candidates.offsets[1:]
        sub["nan"][first : first + candidates.eligible.size] = candidates.nan


def check_pixel_dump(dump: InferenceDump, strategy: str, shape: tuple[int, int, int], eligibility: dict[str, Any],
                     budget: int, top_percent: float) -> None:
    """Raise :class:`InferenceFileError` (naming the dump) unless its pixel group serves this selection: the
    pool's shape (N, H, W), the same ``eligibility``, and draws of ``budget`` and ``top_percent`` that its
    members cover."""
    if any("pixel/top1" in h5 for h5 in dump.files):
        raise InferenceFileError(
            f"{dump.name}: an inference dump of an earlier alseg (whole per-pixel maps, format version 1); pixel "
            "selection reads the compact dump (version 2): delete the dump to let the workflow rebuild it")
    if any(f"pixel/{strategy}" not in h5 for h5 in dump.files):
        raise InferenceFileError(f"{dump.name}: inference dump has no pixel candidates of {strategy!r} (written for "
                                 "another query unit?); delete it to let the workflow rebuild it")
    attrs = {k: _decode_attr(v) for k, v in dump.files[0]["pixel"].attrs.items()}
    if (dump.num_images, attrs["height"], attrs["width"]) != tuple(shape):
        raise InferenceFileError(f"{dump.name}: pixel candidates of {dump.num_images} images of {attrs['height']}x"
                                 f"{attrs['width']}, but the pool is {shape[0]} of {shape[1]}x{shape[2]}")
    if attrs["eligibility"] != eligibility:
        raise InferenceFileError(f"{dump.name}: its pixel candidates were chosen among other eligible pixels "
                                 f"({attrs['eligibility']}) than this round's ({eligibility}): another label store "
                                 "or query_void; delete it to let the workflow rebuild it")
    if budget > attrs["budget"] or top_percent > attrs["top_percent"]:
        raise InferenceFileError(f"{dump.name}: its pixel candidates cover draws of budget {attrs['budget']} from "
                                 f"the top {attrs['top_percent']} %, this selection asks {budget} from the top "
                                 f"{top_percent} %; delete it to let the workflow rebuild it")


def read_pixel_candidates(dump: InferenceDump, strategy: str, start: int, stop: int) -> PixelCandidates:
    """The members of ``strategy`` in pool images ``start .. stop`` (after :func:`check_pixel_dump`)."""
    parts = []
    for h5, first, last, image0 in dump.pieces(start, stop):
        group, sub = h5["pixel"], h5["pixel"][strategy]
        offsets = sub["offsets"][first : last + 1]
        rows = slice(int(offsets[0]), int(offsets[-1]))
        parts.append(PixelCandidates(
            first_image=image0 + first, width=int(group.attrs["width"]), eligible=group["eligible"][first:last],
            cover=group["cover"][first:last], nan=sub["nan"][first:last], offsets=offsets - offsets[0],
            index=sub["index"][rows], fields={name: sub[name][rows] for name in STRATEGY_FIELDS[strategy]}))
    return _joined(parts, start)


def _joined(parts: list[PixelCandidates], start: int) -> PixelCandidates:
    """The candidates of consecutive images from several files, as one."""
    if len(parts) == 1:
        return parts[0]
    shifts = np.cumsum([0] + [p.index.size for p in parts[:-1]])
    return PixelCandidates(
        first_image=start, width=parts[0].width if parts else 0,
        eligible=np.concatenate([p.eligible for p in parts] or [np.zeros(0, np.int64)]),
        cover=np.concatenate([p.cover for p in parts] or [np.zeros(0, np.int64)]),
        nan=np.concatenate([p.nan for p in parts] or [np.zeros(0, np.int64)]),
        offsets=np.concatenate([np.zeros(1, np.int64)] + [p.offsets[1:] + shift for p, shift in zip(parts, shifts)]),
        index=np.concatenate([p.index for p in parts] or [np.zeros(0, np.uint32)]),
        fields={name: np.concatenate([p.fields[name] for p in parts]) for name in (parts[0].fields if parts else {})},
    )
