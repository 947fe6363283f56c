"""Superpixel queries (``unit: superpixel``): "what is the main class of this region?", one click each.

SP (Cai et al.) and Adaptive Superpixel (AMSP+S, Kim et al., ICCV 2023): base superpixels computed once
per dataset (:mod:`.files`), merged every round with the previous model and chosen class-balanced
(:mod:`.select`), answered with their dominant class (:mod:`.oracle`, :mod:`.labels`), and trained on with
sieved labels (:mod:`.sieving`); :mod:`.overlays` draws a few images per round for the audit.
docs/superpixels.md has the method, the files and the measurements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alseg.labels import LabelStore
from alseg.queries import Table
from alseg.units.base import (
    Job,
    QueryUnit,
    SimulatedAnswers,
    TrainingTargets,
    class_answer_problem,
    class_answers,
    class_id_strings,
    fixed_cost,
    image_keys,
)
from alseg.units.superpixel.files import load_regions, superpixel_file_name
from alseg.units.superpixel.labels import add_superpixel_rows, answer_superpixel_rows

if TYPE_CHECKING:
    from alseg.regions import RegionSource

#: Settings of the base superpixels (round 0 reads only these)
_BASE_SETTINGS = ("method", "pixels_per_superpixel")
#: Settings of the selection from round 1 on
_MERGE_SETTINGS = ("merge", "eps", "merge_fraction", "class_share")


class SuperpixelUnit(QueryUnit):
    name = "superpixel"
    row_unit = "superpixel"
    strategies = ("random", "uncertainty", "class_balanced")
    side_files = {"regions": "regions.npz"}
    store_arrays = {"superpixel_id": np.int64, "superpixel_round": np.int16, "superpixel_query": np.int32,
                    "superpixel_class": np.int16, "superpixel_pixels": np.int32}
    page_script = "superpixel.js"
    labelstudio_name = "region"
    region_resource = "superpixels"
    dump_groups = ("superpixel",)

    def round0_key(self, experiment: Mapping[str, Any]) -> Any:
        base = {key: experiment["superpixel"][key] for key in _BASE_SETTINGS}
        return ["superpixel", experiment.get("initial_budget"), base]

    def select_settings(self, experiment: Mapping[str, Any], round_index: int) -> dict[str, Any]:
        # Round 0 is random base superpixels whatever the strategy and merging: changing those keeps round 0.
        settings = experiment["superpixel"]
        chosen = {key: experiment[key] for key in ("unit", "seed", "initial_budget", "dataset")}
        chosen["superpixel"] = {key: settings[key] for key in _BASE_SETTINGS}
        if round_index > 0:
            chosen.update(strategy=experiment["strategy"], budget=experiment["budget"])
            chosen["superpixel"].update({key: settings[key] for key in _MERGE_SETTINGS})
        return chosen

    def train_settings(self, experiment: Mapping[str, Any], round_index: int) -> dict[str, Any]:
        if round_index == 0:  # no model to sieve with
            return {}
        settings = experiment["superpixel"]
        keys = ("sieve", "sieve_min_size", "sieve_points") if settings["sieve"] else ("sieve",)
        return {"superpixel": {key: settings[key] for key in keys}}

    def resources(self, experiment: Mapping[str, Any]) -> dict[str, str]:
        return {"superpixels": superpixel_file_name(experiment["dataset"], experiment["superpixel"])}

    def select_reads_dump(self, experiment: Mapping[str, Any], round_index: int) -> bool:
        return round_index > 0 and (experiment["strategy"] != "random" or bool(experiment["superpixel"]["merge"]))

    def train_reads_previous_model(self, experiment: Mapping[str, Any], round_index: int) -> bool:
        return round_index > 0 and bool(experiment["superpixel"]["sieve"])

    def extra_outputs(self, experiment: Mapping[str, Any]) -> tuple[str, ...]:
        return ("overlays",) if experiment["superpixel"]["overlays"] > 0 else ()

    def dump_request(self, job: Job, store: LabelStore, images: tuple[int, int]) -> dict[str, Any]:
        from alseg.superpixels import read_superpixels

        return {"superpixels": read_superpixels(job.file("superpixels"), images=slice(*images),
                                                expected_shape=job.pool_shape)}

    def select(self, job: Job) -> Table:
        from alseg.units.superpixel.select import select_superpixel_queries

        return select_superpixel_queries(job)

    def answer(self, job: Job, queries: Table, rng: np.random.Generator) -> SimulatedAnswers:
        answers, summary = answer_superpixel_rows(job, queries, rng)
        return SimulatedAnswers(class_id_strings(answers), summary)

    def answer_cost(self, answers: np.ndarray, costs: Mapping[str, Any], num_classes: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        return fixed_cost(answers, costs["superpixel"])

    def asked_items(self, job: Job, queries: Table, answers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The base superpixels of each query's region (skipped ones too: they are never asked again)."""
        regions = load_regions(job.file("regions"), len(queries["query_id"]))
        return image_keys(regions.query_image[regions.base_query], regions.base_id), regions.base_query

    def add_answers(self, store: LabelStore, job: Job, queries: Table, answers: np.ndarray) -> LabelStore:
        return add_superpixel_rows(store, job, queries, class_answers(answers))

    def labelled_pixels(self, store: LabelStore) -> int:
        answered = store["superpixel_class"] >= 0
        return int(store["superpixel_pixels"][answered].sum(dtype=np.int64))

    def training_targets(self, store: LabelStore, job: Job) -> TrainingTargets | None:
        if store["superpixel_id"].size == 0:
            return None
        from alseg.units.superpixel.sieving import superpixel_training_targets

        return superpixel_training_targets(store, job)

    # -- people ----------------------------------------------------------------------------------------

    def answer_hint(self, class_range: str) -> str:
        return f"a class id in {class_range}"

    def answer_problem(self, answer: str, num_classes: int, class_range: str) -> str | None:
        return class_answer_problem(answer, "superpixel", num_classes, class_range)

    def query_problem(self, query: Mapping[str, Any], height: int, width: int, num_classes: int) -> str | None:
        return None if query["superpixel"] >= 0 else "superpixel query without a superpixel id"

    def page_query(self, query: Mapping[str, Any], classes: Sequence[str]) -> dict[str, Any]:
        return {"superpixel": int(query["superpixel"])}

    def region_source(self, queries_path: Path, regions: Path | None, key: str | None = None
                      ) -> RegionSource | None:
        """The regions of ``--regions FILE``; with a base superpixel file and the round's ``regions.npz``
        beside ``queries_path``, each query's region is what its merged region covers."""
        from alseg.regions import regions_from_file, regions_from_superpixel_file

        if regions is None:
            return None
        side = Path(queries_path).with_name(self.side_files["regions"])
        if key is None and side.is_file() and _is_base_superpixel_file(regions):
            from alseg.units.superpixel.files import load_regions

            return regions_from_superpixel_file(regions, load_regions(side).members())
        return regions_from_file(regions, key)

    def labelstudio_control(self, classes: Sequence[str], image: str, labels: Sequence[str]) -> list[str]:
        return [f'  <PolygonLabels name="{self.labelstudio_name}" toName="{image}" strokeWidth="2" opacity="0.15">',
                *labels, "  </PolygonLabels>"]

    def labelstudio_question(self, query: Mapping[str, Any], classes: Sequence[str]) -> str:
        return "Label the outlined region with its main class (or skip)."

    def labelstudio_prediction(self, query: Mapping[str, Any], shape: tuple[int, int], region: np.ndarray | None
                               ) -> list[tuple[str, dict[str, Any]]]:
        from alseg.regions import outline_polygons

        assert region is not None
        height, width = shape
        return [("polygonlabels", {"points": [[100.0 * px / width, 100.0 * py / height] for px, py in polygon],
                                   "closed": True}) for polygon in outline_polygons(region)]


def _is_base_superpixel_file(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            return "labels" in h5 and "offsets" in h5
    except OSError:
        return False


UNIT = SuperpixelUnit()
