"""The cumulative label store of a round (``round_<r>/labels.npz``).

Round r's store holds every answer of rounds 0..r, so a training job has one label input whatever the
round, and round r+1 builds its store from round r's without touching it. The arrays are listed in
``docs/architecture.md``.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field, fields
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
    annotation cost paid in each round.
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

    @property
    def labelled_pixels(self) -> int:
        """Number of pixels with a class label."""
        return int(self.pixel_image.size)

    @property
    def clicks(self) -> float:
        """Clicks paid so far (all rounds)."""
        return float(self.round_clicks.sum())

    @property
    def seconds(self) -> float:
        """Estimated or measured annotation seconds paid so far (all rounds)."""
        return float(self.round_seconds.sum())

    def asked_mask(self, num_images: int, height: int, width: int) -> np.ndarray:
        """Boolean (N, H, W) map of pixels asked in any round so far."""
        mask = np.zeros((num_images, height, width), dtype=bool)
        mask[self.asked_image, self.asked_y, self.asked_x] = True
        return mask


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
            missing = [fl.name for fl in fields(LabelStore) if fl.name not in data.files]
            if missing:
                raise LabelStoreError(f"{path}: label store lacks arrays {missing}")
            return LabelStore(**{fl.name: data[fl.name] for fl in fields(LabelStore)})
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
    cost_clicks = np.zeros(round_index + 1)
    cost_seconds = np.zeros(round_index + 1)
    prev = store.round_clicks.size
    cost_clicks[:prev] = store.round_clicks[: round_index + 1]
    cost_seconds[:prev] = store.round_seconds[: round_index + 1]
    cost_clicks[round_index] += clicks
    cost_seconds[round_index] += seconds
    return LabelStore(
        pixel_image=np.concatenate([store.pixel_image, image[answered]]),
        pixel_y=np.concatenate([store.pixel_y, y[answered]]),
        pixel_x=np.concatenate([store.pixel_x, x[answered]]),
        pixel_class=np.concatenate([store.pixel_class, answer_class[answered].astype(np.int16)]),
        pixel_round=np.concatenate([store.pixel_round, np.full(n, round_index, dtype=np.int16)]),
        asked_image=np.concatenate([store.asked_image, image]),
        asked_y=np.concatenate([store.asked_y, y]),
        asked_x=np.concatenate([store.asked_x, x]),
        binary_image=store.binary_image.copy(),
        binary_class=store.binary_class.copy(),
        binary_present=store.binary_present.copy(),
        binary_round=store.binary_round.copy(),
        round_clicks=cost_clicks,
        round_seconds=cost_seconds,
    )
