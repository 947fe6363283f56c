"""The initial labelled set of experiments whose questions need a model from the start (``initial:``).

Binary and tags experiments ask image-level questions from round 1 on; their round 0 is a labelled set
to train the first model on, asked as ordinary queries of another unit so that answers, labels and
training treat it like any round of that unit:

- ``{kind: pixels, per_image: k}``: k random pixels per pool image, exactly the round 0 of a pixel
  experiment with ``initial_budget: k`` (same seed, same pixels, strategy ``random``), answered and paid
  like pixel queries (``costs.pixel``);
- ``{kind: dense, images: N0}``: N0 pool images drawn at random (seeded; null: all), each asked as one
  whole-image query answered by its ground-truth mask and paid ``costs.image``
  (:mod:`alseg.units.full`). Masks are given, never subject to ``oracle.error_rate``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from alseg.queries import Table
from alseg.units.base import Job, QueryUnit
from alseg.units.full import image_queries
from alseg.units.pixel import select_pixel_queries

KINDS = ("pixels", "dense")


def initial_row_unit(initial: Mapping[str, Any]) -> str:
    """The row unit of round 0's queries: ``pixel`` or ``image``."""
    return "pixel" if initial["kind"] == "pixels" else "image"


def initial_settings(experiment: Mapping[str, Any]) -> dict[str, Any]:
    """What round 0's selection reads."""
    chosen = {key: experiment[key] for key in ("unit", "seed", "dataset", "initial")}
    if experiment["initial"]["kind"] == "pixels":
        chosen["acquisition"] = {"query_void": experiment["acquisition"]["query_void"]}
    return chosen


def initial_round0_key(experiment: Mapping[str, Any]) -> list[Any]:
    """Round 0 of random pixels is a pixel experiment's round 0 (:meth:`PixelUnit.round0_key`)."""
    initial = experiment.get("initial") or {}
    if initial.get("kind") == "pixels":
        return ["pixel", initial.get("per_image")]
    return ["dense", initial]


def initial_problems(experiment: Mapping[str, Any]) -> list[str]:
    """A dense initial set asks for whole masks, which people do not draw on the page or in Label Studio."""
    initial = experiment.get("initial") or {}
    if initial.get("kind") == "dense" and (experiment.get("oracle") or {}).get("kind") == "human":
        return ["initial: a dense initial set (whole masks) is not answered by people; use initial: "
                "{kind: pixels, per_image: k} in a human experiment"]
    return []


def dense_initial_images(num_images: int, count: int | None, seed: int) -> np.ndarray:
    """The ``count`` pool images of a dense initial set (None: all), drawn without replacement, sorted (int64).

    Raises
    ------
    ValueError
        ``count`` < 1 or larger than the pool.
    """
    if count is None:
        return np.arange(num_images, dtype=np.int64)
    if count < 1 or count > num_images:
        raise ValueError(f"initial.images must be between 1 and the {num_images} pool images, got {count}")
    return np.sort(np.random.default_rng(seed).choice(num_images, size=count, replace=False)).astype(np.int64)


def initial_queries(job: Job) -> Table:
    """Round 0's queries: the initial labelled set of ``job.settings["initial"]``."""
    initial = job.settings["initial"]
    if initial["kind"] == "pixels":
        return select_pixel_queries(job, "random", int(initial["per_image"]), 0.0,
                                    job.settings["acquisition"]["query_void"])
    images = dense_initial_images(len(job.stems), initial.get("images"), job.seed("select_queries"))
    return image_queries(job, images)


class InitialSetUnit(QueryUnit):
    """A query unit whose round 0 is the initial labelled set (``initial``) and whose own queries start in
    round 1 (binary questions, image tags): it implements :meth:`select_after_round0` and
    :meth:`select_settings_after_round0`."""

    def config_problems(self, experiment: Mapping[str, Any]) -> list[str]:
        return initial_problems(experiment)

    def round0_key(self, experiment: Mapping[str, Any]) -> Any:
        return initial_round0_key(experiment)

    def asks(self, experiment: Mapping[str, Any], round_index: int) -> tuple[str, ...]:
        return (initial_row_unit(experiment["initial"]),) if round_index == 0 else (self.row_unit,)

    def select_settings(self, experiment: Mapping[str, Any], round_index: int) -> dict[str, Any]:
        if round_index == 0:
            return initial_settings(experiment)
        return self.select_settings_after_round0(experiment, round_index)

    def select(self, job: Job) -> Table:
        return initial_queries(job) if job.round_index == 0 else self.select_after_round0(job)

    @abstractmethod
    def select_settings_after_round0(self, experiment: Mapping[str, Any], round_index: int) -> dict[str, Any]:
        """The settings its own selection reads (rounds >= 1)."""

    @abstractmethod
    def select_after_round0(self, job: Job) -> Table:
        """Its own queries (rounds >= 1)."""
