"""The cumulative label store of a round (``round_<r>/labels.npz``).

Round r's store holds every answer of rounds 0..r, so a training job has one label input whatever the
round, and round r+1 builds its store from round r's without touching it. The arrays are listed in
``docs/architecture.md``.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from alseg.atomic import atomic_path


class LabelStoreError(ValueError):
    """A label store file is unreadable or inconsistent; the message names the file."""


def _empty(dtype: type) -> np.ndarray:
    return np.zeros(0, dtype=dtype)


@dataclass
class LabelStore:
    """Sparse labels over the pool (1-D arrays, one entry per item).

    Pixel labels: ``pixel_image``/``pixel_y``/``pixel_x`` (int32) and ``pixel_class`` (int16), with
    the ``pixel_round`` that labelled them. ``asked_*`` lists every pixel ever asked, answered or
    skipped, so that no pixel is asked (and paid) twice. ``binary_*`` holds answered image-class
    questions. ``round_clicks``/``round_seconds`` (float64, one entry per round 0..r) hold the
    annotation cost paid in each round, and ``round_cost_source`` (int8, a code of
    :data:`COST_SOURCES`) how that round's seconds were obtained: estimated from the configured cost
    per query, measured (a person's answers with the seconds they took), or mixed.

    Superpixel answers are stored per asked *base* superpixel (global id in the pool's superpixel
    file), never per pixel: ``superpixel_id`` (int64), the ``superpixel_round`` and the
    ``superpixel_query`` (row of that round's ``queries.csv``) that asked it, the ``superpixel_class``
    answered for that query (-1: skipped, asked and paid but no label) and its ``superpixel_pixels``
    (pixel count). The labelled pixels are the pixels of answered base superpixels; they are derived
    from the superpixel maps when needed (:mod:`alseg.steps_superpixel`).

    Whole images labelled by their ground-truth mask (the fully supervised reference,
    :mod:`alseg.steps_full`): ``dense_image`` (int32), ``dense_round`` and ``dense_pixels`` (int64, the
    mask's non-ignore pixels); their pixels come from the dataset's masks when training.
    """

    pixel_image: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    pixel_y: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    pixel_x: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    pixel_class: np.ndarray = field(default_factory=lambda: _empty(np.int16))
    pixel_round: np.ndarray = field(default_factory=lambda: _empty(np.int16))
    asked_image: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    asked_y: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    asked_x: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    binary_image: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    binary_class: np.ndarray = field(default_factory=lambda: _empty(np.int16))
    binary_present: np.ndarray = field(default_factory=lambda: _empty(np.bool_))
    binary_round: np.ndarray = field(default_factory=lambda: _empty(np.int16))
    round_clicks: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    round_seconds: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    superpixel_id: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    superpixel_round: np.ndarray = field(default_factory=lambda: _empty(np.int16))
    superpixel_query: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    superpixel_class: np.ndarray = field(default_factory=lambda: _empty(np.int16))
    superpixel_pixels: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    round_cost_source: np.ndarray = field(default_factory=lambda: _empty(np.int8))
    dense_image: np.ndarray = field(default_factory=lambda: _empty(np.int32))
    dense_round: np.ndarray = field(default_factory=lambda: _empty(np.int16))
    dense_pixels: np.ndarray = field(default_factory=lambda: _empty(np.int64))

    @property
    def labelled_pixels(self) -> int:
        """Number of pixels with a class label (pixel answers, answered superpixels, dense images)."""
        answered = self.superpixel_class >= 0
        return (int(self.pixel_image.size) + int(self.superpixel_pixels[answered].sum(dtype=np.int64))
                + int(self.dense_pixels.sum(dtype=np.int64)))

    @property
    def clicks(self) -> float:
        """Clicks paid so far (all rounds)."""
        return float(self.round_clicks.sum())

    @property
    def seconds(self) -> float:
        """Estimated or measured annotation seconds paid so far (all rounds)."""
        return float(self.round_seconds.sum())

    @property
    def cost_source(self) -> str:
        """How the seconds paid so far were obtained: "estimated", "measured" or "mixed" (both).

        A round without a ``round_cost_source`` entry (a store written before it existed) counts as
        estimated.
        """
        rounds = self.round_seconds.size
        codes = np.zeros(rounds, dtype=np.int8)
        known = min(rounds, self.round_cost_source.size)
        codes[:known] = self.round_cost_source[:known]
        names = {COST_SOURCES[int(c)] for c in np.unique(codes)}
        if names <= {"estimated"} or names <= {"measured"}:
            return names.pop() if names else "estimated"
        return "mixed"

    def asked_mask(self, num_images: int, height: int, width: int) -> np.ndarray:
        """Boolean (N, H, W) map of pixels asked in any round so far."""
        mask = np.zeros((num_images, height, width), dtype=bool)
        mask[self.asked_image, self.asked_y, self.asked_x] = True
        return mask


#: Arrays added after the first store format: a store written before them reads as having none.
_OPTIONAL_ARRAYS = frozenset(
    {"superpixel_id", "superpixel_round", "superpixel_query", "superpixel_class", "superpixel_pixels",
     "round_cost_source", "dense_image", "dense_round", "dense_pixels"}
)

#: ``round_cost_source`` codes (index = code): how a round's annotation seconds were obtained.
COST_SOURCES = ("estimated", "measured", "mixed")


def round_cost_source(measured: int, answers: int) -> str:
    """The cost source of a round in which ``measured`` of its ``answers`` carry measured seconds."""
    if answers > 0 and measured == answers:
        return "measured"
    return "mixed" if measured > 0 else "estimated"


def record_round_cost(
    store: LabelStore,
    round_index: int,
    source: str,
    *,
    earlier: LabelStore | None = None,
    clicks: float = 0.0,
    seconds: float = 0.0,
) -> LabelStore:
    """Return ``store`` with round ``round_index``'s cost source set and ``clicks``/``seconds`` added.

    Parameters
    ----------
    source : str
        One of :data:`COST_SOURCES`.
    earlier : LabelStore, optional
        The previous round's store: the cost sources of rounds before ``round_index`` come from it
        (whatever the unit-specific update kept), else from ``store``.
    clicks, seconds : float
        Cost added to the round (the configured estimate of answers that carry no measured cost).
    """
    if source not in COST_SOURCES:
        raise ValueError(f"cost source {source!r} is not one of {', '.join(COST_SOURCES)}")
    rounds = max(round_index + 1, store.round_seconds.size)
    cost_clicks = np.zeros(rounds)
    cost_seconds = np.zeros(rounds)
    cost_clicks[: store.round_clicks.size] = store.round_clicks
    cost_seconds[: store.round_seconds.size] = store.round_seconds
    cost_clicks[round_index] += clicks
    cost_seconds[round_index] += seconds
    codes = np.zeros(rounds, dtype=np.int8)
    before = (earlier if earlier is not None else store).round_cost_source[:round_index]
    codes[: before.size] = before
    codes[round_index] = COST_SOURCES.index(source)
    return replace(store, round_clicks=cost_clicks, round_seconds=cost_seconds, round_cost_source=codes)


def save_labels(path: str | os.PathLike[str], store: LabelStore) -> None:
    """Write ``store`` to ``path`` (npz, compressed) atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **{fl.name: getattr(store, fl.name) for fl in fields(store)})


def load_labels(path: str | os.PathLike[str]) -> LabelStore:
    """Read a label store; a missing, truncated or incomplete file raises :class:`LabelStoreError`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [fl.name for fl in fields(LabelStore)
                       if fl.name not in data.files and fl.name not in _OPTIONAL_ARRAYS]
            if missing:
                raise LabelStoreError(f"{path}: label store lacks arrays {missing}")
            return LabelStore(**{fl.name: data[fl.name] for fl in fields(LabelStore) if fl.name in data.files})
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, LabelStoreError):
            raise
        raise LabelStoreError(
            f"{path}: cannot read the label store ({exc}); delete it to let the workflow rebuild it"
        ) from exc


def add_pixel_answers(
    store: LabelStore,
    round_index: int,
    image: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    answer_class: np.ndarray,
    clicks: float,
    seconds: float,
) -> LabelStore:
    """Return a new store with one round of pixel answers added (``store`` is not modified).

    Parameters
    ----------
    image, y, x : ndarray of int, shape (Q,)
        The asked pixels.
    answer_class : ndarray of int, shape (Q,)
        The class answered for each, or -1 for a skipped query (asked and paid, but no label).
    clicks, seconds : float
        The round's total cost.

    Raises
    ------
    ValueError
        If a pixel was already asked in an earlier round or twice in this one (it would be paid twice).
    """
    image, y, x = (np.asarray(a, dtype=np.int32) for a in (image, y, x))
    answer_class = np.asarray(answer_class, dtype=np.int64)
    keys_new = np.stack([image, y, x], axis=1)
    keys_old = np.stack([store.asked_image, store.asked_y, store.asked_x], axis=1)
    if len(np.unique(keys_new, axis=0)) != len(keys_new):
        raise ValueError(f"round {round_index} asks the same pixel twice")
    if keys_old.size and keys_new.size:
        both = np.concatenate([keys_old, keys_new])
        if len(np.unique(both, axis=0)) != len(both):
            raise ValueError(f"round {round_index} asks pixels that an earlier round already asked")
    answered = answer_class >= 0
    n = int(answered.sum())
    cost_clicks, cost_seconds = _round_costs(store, round_index, clicks, seconds)
    return replace(  # every array this does not extend (binary, superpixel, dense) carries over
        store,
        pixel_image=np.concatenate([store.pixel_image, image[answered]]),
        pixel_y=np.concatenate([store.pixel_y, y[answered]]),
        pixel_x=np.concatenate([store.pixel_x, x[answered]]),
        pixel_class=np.concatenate([store.pixel_class, answer_class[answered].astype(np.int16)]),
        pixel_round=np.concatenate([store.pixel_round, np.full(n, round_index, dtype=np.int16)]),
        asked_image=np.concatenate([store.asked_image, image]),
        asked_y=np.concatenate([store.asked_y, y]),
        asked_x=np.concatenate([store.asked_x, x]),
        round_clicks=cost_clicks,
        round_seconds=cost_seconds,
    )


def add_dense_images(
    store: LabelStore,
    round_index: int,
    images: np.ndarray,
    pixels: np.ndarray,
    clicks: float,
    seconds: float,
) -> LabelStore:
    """Return a new store with whole images labelled by their ground-truth mask (``store`` unchanged).

    Parameters
    ----------
    images : ndarray of int, shape (D,)
        Pool indices of the images whose mask was given.
    pixels : ndarray of int, shape (D,)
        Each mask's non-ignore pixels (counted in ``labelled_pixels``).
    clicks, seconds : float
        The round's total cost.

    Raises
    ------
    ValueError
        If an image is labelled twice (it would be paid twice).
    """
    images = np.asarray(images, dtype=np.int32)
    if np.unique(np.concatenate([store.dense_image, images])).size != store.dense_image.size + images.size:
        raise ValueError(f"round {round_index} labels an image whose mask was already given")
    cost_clicks, cost_seconds = _round_costs(store, round_index, clicks, seconds)
    return replace(
        store,
        dense_image=np.concatenate([store.dense_image, images]),
        dense_round=np.concatenate([store.dense_round, np.full(images.size, round_index, dtype=np.int16)]),
        dense_pixels=np.concatenate([store.dense_pixels, np.asarray(pixels, dtype=np.int64)]),
        round_clicks=cost_clicks,
        round_seconds=cost_seconds,
    )


def add_superpixel_answers(
    store: LabelStore,
    round_index: int,
    base_id: np.ndarray,
    base_query: np.ndarray,
    query_class: np.ndarray,
    base_pixels: np.ndarray,
    clicks: float,
    seconds: float,
) -> LabelStore:
    """Return a new store with one round of superpixel answers added (``store`` is not modified).

    Parameters
    ----------
    base_id : ndarray of int, shape (M,)
        Global ids of the base superpixels this round's queries cover (the never-asked part of each
        queried region).
    base_query : ndarray of int, shape (M,)
        The query (row of the round's ``queries.csv``, ``0 .. Q-1``) covering each.
    query_class : ndarray of int, shape (Q,)
        Each query's answer: a class id, or -1 for ``skip`` (asked and paid, no label).
    base_pixels : ndarray of int, shape (M,)
        Pixel count of each base superpixel.
    clicks, seconds : float
        The round's total cost.

    Raises
    ------
    ValueError
        If a base superpixel was asked in an earlier round or twice in this one (its pixels would be
        paid twice), or a query index is out of range.
    """
    base_id = np.asarray(base_id, dtype=np.int64).reshape(-1)
    base_query = np.asarray(base_query, dtype=np.int64).reshape(-1)
    query_class = np.asarray(query_class, dtype=np.int64).reshape(-1)
    base_pixels = np.asarray(base_pixels, dtype=np.int64).reshape(-1)
    if not base_id.shape == base_query.shape == base_pixels.shape:
        raise ValueError(f"base_id {base_id.shape}, base_query {base_query.shape} and base_pixels "
                         f"{base_pixels.shape} differ in length")
    if base_query.size and (base_query.min() < 0 or base_query.max() >= query_class.size):
        raise ValueError(f"round {round_index}: base superpixels refer to queries outside 0 .. {query_class.size - 1}")
    if np.unique(base_id).size != base_id.size:
        raise ValueError(f"round {round_index} asks the same base superpixel twice")
    again = np.intersect1d(base_id, store.superpixel_id)
    if again.size:
        raise ValueError(f"round {round_index} asks {again.size} base superpixels that an earlier round already "
                         f"asked (e.g. {int(again[0])}); they would be paid twice")
    cost_clicks, cost_seconds = _round_costs(store, round_index, clicks, seconds)
    return LabelStore(
        **{fl.name: getattr(store, fl.name).copy() for fl in fields(store) if not fl.name.startswith("superpixel_")
           and fl.name not in ("round_clicks", "round_seconds")},
        round_clicks=cost_clicks,
        round_seconds=cost_seconds,
        superpixel_id=np.concatenate([store.superpixel_id, base_id]),
        superpixel_round=np.concatenate([store.superpixel_round,
                                         np.full(base_id.size, round_index, dtype=np.int16)]),
        superpixel_query=np.concatenate([store.superpixel_query, base_query.astype(np.int32)]),
        superpixel_class=np.concatenate([store.superpixel_class, query_class[base_query].astype(np.int16)]),
        superpixel_pixels=np.concatenate([store.superpixel_pixels, base_pixels.astype(np.int32)]),
    )


def _round_costs(store: LabelStore, round_index: int, clicks: float, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """``round_clicks``/``round_seconds`` of ``store`` extended to ``round_index`` with its cost added."""
    cost_clicks = np.zeros(max(round_index + 1, store.round_clicks.size))
    cost_seconds = np.zeros_like(cost_clicks)
    cost_clicks[: store.round_clicks.size] = store.round_clicks
    cost_seconds[: store.round_seconds.size] = store.round_seconds
    cost_clicks[round_index] += clicks
    cost_seconds[round_index] += seconds
    return cost_clicks, cost_seconds


def asked_superpixels(store: LabelStore, num_superpixels: int) -> np.ndarray:
    """Boolean (S,): base superpixels asked in any round so far (answered or skipped)."""
    ids = store.superpixel_id
    if ids.size and (ids.min() < 0 or ids.max() >= num_superpixels):
        raise LabelStoreError(f"the label store holds base superpixel ids up to {int(ids.max())}, but the "
                              f"superpixel file has {num_superpixels}: was it made with another superpixel file?")
    asked = np.zeros(num_superpixels, dtype=bool)
    asked[ids] = True
    return asked


def superpixel_labels(store: LabelStore, num_superpixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Label and labelling query of every base superpixel.

    Returns
    -------
    label : ndarray of int16, shape (S,)
        The answered class of the query that covered it; -1 if never asked or skipped.
    region : ndarray of int64, shape (S,)
        A number ``0 .. K-1`` per answered query (all rounds, in (round, query) order), -1 where
        ``label`` is -1: the regions that sieving treats one by one.
    """
    asked_superpixels(store, num_superpixels)  # checks the ids
    label = np.full(num_superpixels, -1, dtype=np.int16)
    region = np.full(num_superpixels, -1, dtype=np.int64)
    answered = store.superpixel_class >= 0
    ids = store.superpixel_id[answered]
    label[ids] = store.superpixel_class[answered]
    key = store.superpixel_round[answered].astype(np.int64) * (1 << 32) + store.superpixel_query[answered]
    region[ids] = np.unique(key, return_inverse=True)[1].reshape(-1)
    return label, region
