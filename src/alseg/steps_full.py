"""The fully supervised reference (``unit: full``): every pool image's ground-truth mask, in round 0.

It is the 100% of a comparison: the same model and schedule as the active-learning experiments, trained
on every labelled pixel of the pool. Round 0 asks one ``image`` query per pool image ("draw its whole
mask"), paid ``costs.image``; the answer (``mask``) is the image's ground-truth mask. The label store
records the image as densely labelled (:func:`alseg.labels.add_dense_images`, through
:func:`alseg.steps.update_labels`), not pixel by pixel: at 360 x 480 the
CamVid pool has 63M pixels, and one CSV row or store entry each would take gigabytes.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from alseg.data import dataset_info, load_split
from alseg.queries import ANSWER_COLUMNS, MASK, QUERY_COLUMNS, query_ids, read_queries, write_table
from alseg.seeds import step_seed

PathLike = str | os.PathLike[str]


def _log(message: str) -> None:
    from alseg.steps import log

    log(message)


def labelled_counts(masks: np.ndarray, ignore_index: int | None) -> np.ndarray:
    """Pixels with a class in each mask (ignore excluded), shape (N,), int64, from masks (N, H, W)."""
    masks = np.asarray(masks)
    if ignore_index is None:
        return np.full(masks.shape[0], masks.shape[1] * masks.shape[2], dtype=np.int64)
    return (masks != ignore_index).sum(axis=(1, 2), dtype=np.int64)


def select_queries(dataset: PathLike, experiment: dict[str, Any], round_index: int, out: PathLike) -> int:
    """Write round 0's ``queries.csv``: one ``image`` query per pool image; return their number."""
    if round_index != 0:
        raise ValueError(f"a fully supervised experiment (unit: full) has round 0 only, not round {round_index}")
    info = dataset_info(dataset)
    pool = load_split(dataset, "train")
    n = len(pool.stems)
    seed = step_seed(experiment["seed"], 0, "select_queries")
    table = {
        "query_id": query_ids(0, n),
        "round": np.zeros(n, dtype=np.int64),
        "image": np.asarray(pool.stems, dtype=object),
        "unit": np.full(n, "image", dtype=object),
        "y": np.full(n, -1),
        "x": np.full(n, -1),
        "superpixel": np.full(n, -1),
        "class": np.full(n, -1),
        "score": np.full(n, np.nan),
        "rank": np.full(n, -1),
        "strategy": np.full(n, "dense", dtype=object),
        "seed": np.full(n, seed),
        "model": np.full(n, "", dtype=object),
        "image_index": np.arange(n, dtype=np.int64),
        "pixels": labelled_counts(pool.masks, info.ignore_index),
    }
    write_table(out, table, QUERY_COLUMNS)
    _log(f"round 0: {n} whole-image queries (fully supervised reference) -> {out}")
    return n


def answer_queries(dataset: PathLike, queries: PathLike, experiment: dict[str, Any], out: PathLike) -> None:
    """Answer every ``image`` query with its ground-truth mask (``mask``), each paid ``costs.image``."""
    table = read_queries(queries)
    q = len(table["query_id"])
    cost = experiment["costs"]["image"]
    write_table(
        out,
        {
            "query_id": table["query_id"],
            "answer": np.full(q, MASK, dtype=object),
            "source": np.full(q, "oracle", dtype=object),
            "annotator": np.full(q, "simulated", dtype=object),
            "seconds": np.full(q, float(cost["seconds"])),
            "clicks": np.full(q, float(cost["clicks"])),
        },
        ANSWER_COLUMNS,
    )
    _log(f"round 0: {q} ground-truth masks -> {out}")

