"""Small prepared datasets, query files and region maps for the annotation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alseg.data import prepare_dataset
from alseg.queries import QUERY_COLUMNS, query_ids, write_table


def make_dataset(path: Path, n_train: int = 3, height: int = 24, width: int = 32) -> Path:
    """A tiny synthetic prepared dataset (8 classes) at ``path``."""
    spec = {"kind": "synthetic", "n_train": n_train, "n_val": 1, "n_test": 1, "height": height, "width": width}
    prepare_dataset(spec, path)
    return path


def block_regions(n: int, height: int, width: int, block: int = 8) -> np.ndarray:
    """Hand-made superpixels: square blocks of ``block`` pixels, ids row-major per image (N, H, W)."""
    ys, xs = np.mgrid[0:height, 0:width]
    per_row = -(-width // block)
    ids = (ys // block) * per_row + xs // block
    return np.broadcast_to(ids, (n, height, width)).astype(np.int32).copy()


#: The columns an item of :func:`write_queries` sets, by unit.
ITEM_COLUMNS = {
    "pixel": ("image_index", "y", "x"),
    "superpixel": ("image_index", "superpixel"),
    "binary": ("image_index", "class"),
    "tags": ("image_index",),
}


def write_queries(path: Path, unit: str, items: list[tuple[int, ...]], round_index: int = 1) -> Path:
    """Write a ``queries.csv`` of one unit.

    ``items`` are ``(image_index, y, x)`` for pixel queries, ``(image_index, superpixel)`` for
    superpixel queries, ``(image_index, class)`` for binary ones and ``(image_index,)`` for image tags.
    """
    q = len(items)
    table = {c: np.full(q, -1, dtype=np.int64) for c in QUERY_COLUMNS}
    table.update(
        query_id=query_ids(round_index, q),
        round=np.full(q, round_index),
        image=np.array([f"train_{item[0]:03d}" for item in items], dtype=object),
        unit=np.full(q, unit, dtype=object),
        score=np.linspace(0.1, 0.5, q),
        strategy=np.full(q, "margin", dtype=object),
        model=np.full(q, "abc123", dtype=object),
        seed=np.full(q, 7),
        rank=np.arange(q),
        pixels=np.ones(q, dtype=np.int64),
    )
    for position, column in enumerate(ITEM_COLUMNS[unit]):
        table[column] = np.array([item[position] for item in items], dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table(path, table, QUERY_COLUMNS)
    return path
