"""Whole-image queries: "draw this image's mask", answered by its ground-truth mask (``mask``).

``unit: full`` is the fully supervised reference, the 100% of a comparison: in round 0 it asks one
``image`` query per pool image, paid ``costs.image``, and trains the experiments' model and schedule on
every labelled pixel of the pool. The dense initial set of binary and tags experiments
(``initial: {kind: dense}``) asks the same queries of a few random images (:mod:`alseg.units.initial`).
The store records each image as densely labelled (``dense_*``), not pixel by pixel: at 360 x 480 the
CamVid pool has 63M pixels, and one CSV row or store entry each would take gigabytes. Training reads the
labelled images' masks (:class:`alseg.points.DenseLabels`), not their pixels as points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from alseg.labels import LabelStore
from alseg.points import DenseLabels, labelled_counts
from alseg.queries import SKIP, Table, query_table
from alseg.units.base import Job, QueryUnit, SimulatedAnswers, TrainingTargets, fixed_cost

#: The answer of an ``image`` query: its ground-truth mask was drawn
MASK = "mask"
#: The strategy of whole-image queries
DENSE = "dense"


def image_queries(job: Job, images: np.ndarray) -> Table:
    """One ``image`` query per pool image of ``images`` (sorted pool indices), strategy ``dense``."""
    images = np.asarray(images, dtype=np.int64)
    return query_table(job.round_index, images, job.stems, "image", DENSE, job.seed("select_queries"),
                       pixels=labelled_counts(job.masks_of(images), job.info.ignore_index))


def add_dense_images(store: LabelStore, round_index: int, images: np.ndarray, pixels: np.ndarray) -> LabelStore:
    """Return a new store with whole images labelled by their ground-truth mask (``store`` unchanged).

    Parameters
    ----------
    images : ndarray of int, shape (D,)
        Pool indices of the images whose mask was given.
    pixels : ndarray of int, shape (D,)
        Each mask's non-ignore pixels (counted as labelled pixels).

    Raises
    ------
    ValueError
        If an image is labelled twice (it would be paid twice).
    """
    images = np.asarray(images, dtype=np.int32)
    if np.unique(np.concatenate([store["dense_image"], images])).size != store["dense_image"].size + images.size:
        raise ValueError(f"round {round_index} labels an image whose mask was already given")
    return store.updated(
        dense_image=np.concatenate([store["dense_image"], images]),
        dense_round=np.concatenate([store["dense_round"], np.full(images.size, round_index, dtype=np.int16)]),
        dense_pixels=np.concatenate([store["dense_pixels"], np.asarray(pixels, dtype=np.int64)]),
    )


class FullUnit(QueryUnit):
    name = "full"
    row_unit = "image"
    strategies = (DENSE,)
    store_arrays = {"dense_image": np.int32, "dense_round": np.int16, "dense_pixels": np.int64}

    def complete(self, experiment: dict[str, Any], entry: Mapping[str, Any]) -> None:
        # every pool image's mask, in round 0 only
        experiment["strategy"] = entry.get("strategy", DENSE)
        experiment["initial"] = {"kind": "dense", "images": None, "per_image": None}
        experiment["last_round"] = 0

    def config_problems(self, experiment: Mapping[str, Any]) -> list[str]:
        if (experiment.get("oracle") or {}).get("kind") == "human":
            return ["oracle: a fully supervised experiment (unit: full) is answered from the ground-truth masks; "
                    "use oracle kind simulated"]
        return []

    def select_settings(self, experiment: Mapping[str, Any], round_index: int) -> dict[str, Any]:
        return {key: experiment[key] for key in ("unit", "seed", "dataset")}

    def select(self, job: Job) -> Table:
        if job.round_index != 0:
            raise ValueError(f"a fully supervised experiment (unit: full) has round 0 only, not round {job.round_index}")
        return image_queries(job, np.arange(len(job.stems)))

    def answer(self, job: Job, queries: Table, rng: np.random.Generator) -> SimulatedAnswers:
        return SimulatedAnswers(np.full(len(queries["query_id"]), MASK, dtype=object), "ground-truth masks")

    def answer_cost(self, answers: np.ndarray, costs: Mapping[str, Any], num_classes: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        return fixed_cost(answers, costs["image"])

    def add_answers(self, store: LabelStore, job: Job, queries: Table, answers: np.ndarray) -> LabelStore:
        given = np.asarray(answers) == MASK
        return add_dense_images(store, job.round_index, queries["image_index"][given], queries["pixels"][given])

    def labelled_pixels(self, store: LabelStore) -> int:
        return int(store["dense_pixels"].sum(dtype=np.int64))

    def known_pairs(self, store: LabelStore, num_images: int, num_classes: int) -> np.ndarray | None:
        # a whole mask tells every class of its image
        known = np.zeros((num_images, num_classes), dtype=bool)
        known[store["dense_image"].astype(np.int64)] = True
        return known

    def training_targets(self, store: LabelStore, job: Job) -> TrainingTargets | None:
        if store["dense_image"].size == 0:
            return None
        images = store["dense_image"]
        return TrainingTargets(points=DenseLabels(images, job.masks_of(images), job.info.ignore_index))

    def answer_hint(self, class_range: str) -> str:
        return MASK

    def answer_problem(self, answer: str, num_classes: int, class_range: str) -> str | None:
        return None if answer == MASK else f"answer {answer!r} is not {MASK} or {SKIP} (a whole-image query)"

    def query_problem(self, query: Mapping[str, Any], height: int, width: int, num_classes: int) -> str | None:
        return ("whole-image queries (the fully supervised reference) are answered from the ground-truth masks, "
                "not on this page")


UNIT = FullUnit()
