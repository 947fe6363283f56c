"""The cumulative label store of a round (``round_<r>/labels.npz``).

Round r's store holds every answer of rounds 0..r, so a training job has one label input whatever the
round, and round r+1 builds its store from round r's without touching it. It is a bag of named 1-D
arrays: each query unit keeps its own (``pixel_*``, ``superpixel_*``, ``binary_*``, ``dense_*``, ...;
declared by the unit, :attr:`alseg.units.base.QueryUnit.store_arrays`), and the store keeps what every
round cost (``round_clicks``, ``round_seconds``, ``round_cost_source``). The arrays are listed in
``docs/architecture.md``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from alseg.atomic import atomic_path


class LabelStoreError(ValueError):
    """A label store file is unreadable or inconsistent; the message names the file."""


#: ``round_cost_source`` codes (index = code): how a round's annotation seconds were obtained.
COST_SOURCES = ("estimated", "measured", "mixed")
#: What every round cost: one entry per round 0..r.
COST_ARRAYS: dict[str, np.dtype] = {
    "round_clicks": np.dtype(np.float64),
    "round_seconds": np.dtype(np.float64),
    "round_cost_source": np.dtype(np.int8),
}
#: Every array a store may hold, with its dtype: the cost arrays and what the query units declare.
_DECLARED: dict[str, np.dtype] = dict(COST_ARRAYS)


def declare_arrays(arrays: Mapping[str, Any]) -> None:
    """Declare the arrays (name -> dtype) a query unit keeps in the store.

    Every store written afterwards holds them (empty until the unit adds answers), and a store read
    from a file that lacks them (written before the unit existed) reads them as empty.

    Raises
    ------
    ValueError
        If a name is already declared with another dtype.
    """
    for name, dtype in arrays.items():
        dtype = np.dtype(dtype)
        if _DECLARED.setdefault(name, dtype) != dtype:
            raise ValueError(f"label store array {name!r} is declared twice, as {_DECLARED[name]} and {dtype}")


class LabelStore:
    """Sparse labels over the pool: named 1-D arrays, one entry per labelled item (immutable).

    ``store["pixel_image"]`` is an array; one that the store does not hold reads as empty, with its
    declared dtype. :meth:`updated` returns a new store with some arrays replaced.
    """

    def __init__(self, **arrays: Any) -> None:
        self._arrays = {name: np.asarray(value) for name, value in arrays.items()}

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._arrays:
            return self._arrays[name]
        if name not in _DECLARED:
            raise KeyError(f"the label store has no array {name!r}; declared: {sorted(_DECLARED)}")
        return np.zeros(0, dtype=_DECLARED[name])

    def names(self) -> list[str]:
        """The arrays a written store holds: every declared one, and any other it was given."""
        return sorted(set(_DECLARED) | set(self._arrays))

    def updated(self, **arrays: Any) -> LabelStore:
        """A new store with ``arrays`` replaced (or added); this one is not changed."""
        return LabelStore(**{**self._arrays, **arrays})

    @property
    def clicks(self) -> float:
        """Clicks paid so far (all rounds)."""
        return float(self["round_clicks"].sum())

    @property
    def seconds(self) -> float:
        """Estimated or measured annotation seconds paid so far (all rounds)."""
        return float(self["round_seconds"].sum())

    @property
    def cost_source(self) -> str:
        """How the seconds paid so far were obtained: "estimated", "measured" or "mixed" (both).

        A round without a ``round_cost_source`` entry (a store written before it existed) counts as
        estimated.
        """
        rounds = self["round_seconds"].size
        codes = np.zeros(rounds, dtype=np.int8)
        known = min(rounds, self["round_cost_source"].size)
        codes[:known] = self["round_cost_source"][:known]
        names = {COST_SOURCES[int(c)] for c in np.unique(codes)}
        if names <= {"estimated"} or names <= {"measured"}:
            return names.pop() if names else "estimated"
        return "mixed"


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
        The previous round's store: the cost sources of rounds before ``round_index`` come from it,
        else from ``store``.
    clicks, seconds : float
        Cost added to the round.
    """
    if source not in COST_SOURCES:
        raise ValueError(f"cost source {source!r} is not one of {', '.join(COST_SOURCES)}")
    rounds = max(round_index + 1, store["round_seconds"].size)
    cost_clicks = np.zeros(rounds)
    cost_seconds = np.zeros(rounds)
    cost_clicks[: store["round_clicks"].size] = store["round_clicks"]
    cost_seconds[: store["round_seconds"].size] = store["round_seconds"]
    cost_clicks[round_index] += clicks
    cost_seconds[round_index] += seconds
    codes = np.zeros(rounds, dtype=np.int8)
    before = (earlier if earlier is not None else store)["round_cost_source"][:round_index]
    codes[: before.size] = before
    codes[round_index] = COST_SOURCES.index(source)
    return store.updated(round_clicks=cost_clicks, round_seconds=cost_seconds, round_cost_source=codes)


def save_labels(path: str | os.PathLike[str], store: LabelStore) -> None:
    """Write ``store`` to ``path`` (npz, compressed) atomically: every declared array, empty or not."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **{name: store[name] for name in store.names()})


def load_labels(path: str | os.PathLike[str]) -> LabelStore:
    """Read a label store; a missing, truncated or unreadable file raises :class:`LabelStoreError`.

    Arrays the file lacks (declared after it was written) read as empty; arrays of a declared name but
    another dtype or shape are refused.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise LabelStoreError(
            f"{path}: cannot read the label store ({exc}); delete it to let the workflow rebuild it"
        ) from exc
    wrong = [f"{name} ({array.dtype}, {array.ndim}-D)" for name, array in arrays.items()
             if name in _DECLARED and (array.dtype != _DECLARED[name] or array.ndim != 1)]
    if wrong:
        raise LabelStoreError(f"{path}: label store arrays of an unexpected type: {', '.join(wrong)}; delete it to "
                              "let the workflow rebuild it")
    return LabelStore(**arrays)
