"""Pixel queries (PixelPick): "what is the class of this pixel?", one key press each.

Round 0 asks ``initial_budget`` random pixels per pool image; round r >= 1 asks ``budget`` per image,
drawn from each image's ``acquisition.top_percent`` % most uncertain pixels never asked (``strategy``:
least confidence 1 - p1, margin p1 - p2, entropy, or random; :func:`alseg.acquire.pixel.select_pixels`).
Round r-1's dump keeps, per image and strategy, just the pixels such a draw can reach
(:mod:`alseg.pixel_dump`; :meth:`PixelUnit.dump_settings` and :meth:`PixelUnit.dump_request` say which),
and selection draws from them a chunk of the pool at a time. Pixels asked before are never asked again;
void pixels are not asked unless ``acquisition.query_void``. The store keeps every labelled pixel
(``pixel_*``) and every pixel asked (``asked_*``, skips included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alseg.acquire.pixel import PixelSelection, eligible_pixels, select_from_candidates, select_pixels
from alseg.data import load_masks
from alseg.joblog import log
from alseg.labels import LabelStore
from alseg.pixel_dump import PixelDumpRequest, asked_digest
from alseg.points import PointLabels
from alseg.queries import Table, query_table
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

#: Where Label Studio draws a pixel query: a point this wide (percent of the image width)
_POINT_WIDTH = 0.6


def select_pixel_queries(job: Job, strategy: str, budget: int, top_percent: float, query_void: bool) -> Table:
    """Choose ``budget`` pixels per pool image never asked before (round r-1's store ``labels``).

    ``strategy`` other than ``random`` draws from each image's ``top_percent`` % most uncertain pixels as
    round r-1's dump (``inference``) keeps them (:mod:`alseg.pixel_dump`); ``random`` reads the pool's masks.
    Both go through the pool a chunk of images at a time (:meth:`~alseg.units.base.Job.image_chunks`). An image
    with fewer pixels left gives what it has, with a warning; a pool with none left is an error.
    """
    stems = job.stems
    store = job.previous_store()
    n = len(stems)
    seed = job.seed("select_queries")
    rng = np.random.default_rng(seed)
    if strategy == "random":
        selection, left, model = *_random_selection(job, store, budget, query_void, rng), ""
    else:
        selection, left, model = _dump_selection(job, store, strategy, budget, top_percent, query_void, rng)
    if left == 0:
        raise ValueError(f"{job.dataset}: no pixel of the pool is left to ask in round {job.round_index} "
                         f"({store['asked_image'].size} asked so far); lower 'round' or the budget")
    if selection.shortfall:
        asked = sum(selection.shortfall.values())
        log(f"warning: {len(selection.shortfall)} of {n} images had fewer than {budget} pixels left to ask; asking "
            f"{asked} there instead of {budget * len(selection.shortfall)} ({selection.size} queries in all)")
    score = selection.score if selection.score is not None else np.full(selection.size, np.nan)
    table = query_table(job.round_index, selection.image, stems, "pixel", strategy, seed, model,
                        y=selection.y, x=selection.x, score=score, rank=selection.rank,
                        pixels=np.ones(selection.size, dtype=np.int64))
    log(f"round {job.round_index}: {selection.size} {strategy} pixel queries over {n} images")
    return table


def _random_selection(job: Job, store: LabelStore, budget: int, query_void: bool, rng: np.random.Generator
                      ) -> tuple[PixelSelection, int]:
    """Random pixels of every image, and the number of eligible pixels, a chunk of the pool's masks at a time."""
    info = job.info
    parts, left = [], 0
    for start, stop in job.image_chunks():
        masks = None if query_void else load_masks(job.dataset, "train", start, stop)
        eligible = eligible_pixels(asked_mask(store, info.height, info.width, start, stop), masks, info.ignore_index,
                                   query_void)
        left += int(np.count_nonzero(eligible))
        parts.append(select_pixels(None, eligible, budget, 0.0, rng, first_image=start))
    return PixelSelection.concatenate(parts), left


def _dump_selection(job: Job, store: LabelStore, strategy: str, budget: int, top_percent: float, query_void: bool,
                    rng: np.random.Generator) -> tuple[PixelSelection, int, str]:
    """The draws of an uncertainty strategy from round r-1's dump, the number of eligible pixels, the model."""
    from alseg.inference_file import InferenceDump
    from alseg.mc_dropout import summed_passes
    from alseg.pixel_dump import check_pixel_dump, read_pixel_candidates

    info, n = job.info, len(job.stems)
    with InferenceDump(job.dump()) as dump:
        check_pixel_dump(dump, strategy, (n, info.height, info.width), eligibility(store, query_void), budget,
                         top_percent)
        passes = summed_passes(dump.attrs)
        parts, left = [], 0
        for start, stop in job.image_chunks():
            candidates = read_pixel_candidates(dump, strategy, start, stop)
            left += int(candidates.eligible.sum())
            parts.append(select_from_candidates(candidates, strategy, budget, top_percent, rng, passes))
        return PixelSelection.concatenate(parts), left, str(dump.attrs.get("model", ""))


def eligibility(store: LabelStore, query_void: bool) -> dict[str, Any]:
    """What decides the pixels the next selection may ask, beyond the pool (the pixel dump records it): the
    pixels asked so far and whether void pixels are asked."""
    return {"query_void": bool(query_void), "asked_pixels": int(store["asked_image"].size),
            "asked": asked_digest(store["asked_image"], store["asked_y"], store["asked_x"])}


def asked_mask(store: LabelStore, height: int, width: int, start: int, stop: int) -> np.ndarray:
    """Boolean (stop - start, H, W) map of the pixels of pool images ``start .. stop`` asked in any round so
    far (answered or skipped)."""
    mask = np.zeros((stop - start, height, width), dtype=bool)
    image = store["asked_image"]
    inside = (image >= start) & (image < stop)
    mask[image[inside] - start, store["asked_y"][inside], store["asked_x"][inside]] = True
    return mask


def answer_pixels(
    masks: np.ndarray,
    image: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    num_classes: int,
    ignore_index: int,
    error_rate: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The class of each queried pixel, as a (possibly mistaken) annotator would give it.

    Parameters
    ----------
    masks : ndarray of uint8, shape (N, H, W)
        Ground truth of the pool.
    image, y, x : ndarray of int, shape (Q,)
    error_rate : float
        Probability that an answer is replaced by a class drawn uniformly from the C - 1 wrong ones
        (PixelPick's noise study flips 10%).

    Returns
    -------
    answers : ndarray of int64, shape (Q,)
        Class id, or -1 where the pixel is void (the annotator skips it).
    flipped : ndarray of bool, shape (Q,)
        Where a simulated error changed the answer.
    """
    if not 0 <= error_rate <= 1:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
    truth = masks[image, y, x].astype(np.int64)
    void = truth == ignore_index
    answers = np.where(void, -1, truth)
    flipped = (rng.random(truth.size) < error_rate) & ~void
    if num_classes > 1:
        offsets = rng.integers(1, num_classes, size=truth.size)
        answers = np.where(flipped, (truth + offsets) % num_classes, answers)
    else:
        flipped[:] = False
    return answers, flipped


def add_pixel_answers(store: LabelStore, round_index: int, image: np.ndarray, y: np.ndarray, x: np.ndarray,
                      answer_class: np.ndarray) -> LabelStore:
    """Return a new store with one round of pixel answers added (``store`` is not modified).

    Parameters
    ----------
    image, y, x : ndarray of int, shape (Q,)
        The asked pixels.
    answer_class : ndarray of int, shape (Q,)
        The class answered for each, or -1 for a skipped query (asked and paid, but no label).

    Raises
    ------
    ValueError
        If a pixel was already asked in an earlier round or twice in this one (it would be paid twice).
    """
    image, y, x = (np.asarray(a, dtype=np.int32) for a in (image, y, x))
    answer_class = np.asarray(answer_class, dtype=np.int64)
    keys_new = np.stack([image, y, x], axis=1)
    keys_old = np.stack([store["asked_image"], store["asked_y"], store["asked_x"]], axis=1)
    if len(np.unique(keys_new, axis=0)) != len(keys_new):
        raise ValueError(f"round {round_index} asks the same pixel twice")
    if keys_old.size and keys_new.size:
        both = np.concatenate([keys_old, keys_new])
        if len(np.unique(both, axis=0)) != len(both):
            raise ValueError(f"round {round_index} asks pixels that an earlier round already asked")
    answered = answer_class >= 0
    return store.updated(
        pixel_image=np.concatenate([store["pixel_image"], image[answered]]),
        pixel_y=np.concatenate([store["pixel_y"], y[answered]]),
        pixel_x=np.concatenate([store["pixel_x"], x[answered]]),
        pixel_class=np.concatenate([store["pixel_class"], answer_class[answered].astype(np.int16)]),
        pixel_round=np.concatenate([store["pixel_round"], np.full(int(answered.sum()), round_index, np.int16)]),
        asked_image=np.concatenate([store["asked_image"], image]),
        asked_y=np.concatenate([store["asked_y"], y]),
        asked_x=np.concatenate([store["asked_x"], x]),
    )


class PixelUnit(QueryUnit):
    name = "pixel"
    row_unit = "pixel"
    strategies = ("margin", "random", "least_confidence", "entropy")
    store_arrays = {"pixel_image": np.int32, "pixel_y": np.int32, "pixel_x": np.int32, "pixel_class": np.int16,
                    "pixel_round": np.int16, "asked_image": np.int32, "asked_y": np.int32, "asked_x": np.int32}
    page_script = "pixel.js"
    labelstudio_name = "pixel"
    dump_groups = ("pixel",)

    def round0_key(self, experiment: Mapping[str, Any]) -> Any:
        return ["pixel", experiment.get("initial_budget")]

    def select_settings(self, experiment: Mapping[str, Any], round_index: int) -> dict[str, Any]:
        # Round 0 is random whatever the strategy: changing the strategy keeps round 0's files.
        chosen = {key: experiment[key] for key in ("unit", "seed", "initial_budget", "dataset")}
        if round_index == 0:
            return {**chosen, "acquisition": {"query_void": experiment["acquisition"]["query_void"]}}
        return {**chosen, "strategy": experiment["strategy"], "budget": experiment["budget"],
                "acquisition": dict(experiment["acquisition"])}

    def select_reads_dump(self, experiment: Mapping[str, Any], round_index: int) -> bool:
        return round_index > 0 and experiment["strategy"] != "random"

    def dump_settings(self, experiment: Mapping[str, Any], round_index: int) -> dict[str, Any]:
        # the draws of round r + 1, whatever the strategy: every strategy's experiments keep one round 0
        acquisition = experiment["acquisition"]
        return {"budget": experiment["budget"], "top_percent": acquisition["top_percent"],
                "query_void": acquisition["query_void"]}

    def dump_request(self, job: Job, store: LabelStore, images: tuple[int, int]) -> dict[str, Any]:
        if "dump" not in job.settings:
            raise ValueError(f"round {job.round_index}: the model job's settings lack the pixel dump's ('dump': "
                             "alseg.plan.train_settings)")
        dump, info = job.settings["dump"], job.info

        def eligible(start: int, stop: int) -> np.ndarray:
            return eligible_pixels(asked_mask(store, info.height, info.width, start, stop), job.pool_masks(start, stop),
                                   info.ignore_index, dump["query_void"])

        return {"pixels": PixelDumpRequest(int(dump["budget"]), float(dump["top_percent"]), eligible,
                                           eligibility(store, dump["query_void"]))}

    def select(self, job: Job) -> Table:
        settings = job.settings
        acquisition = settings["acquisition"]
        if job.round_index == 0:
            return select_pixel_queries(job, "random", int(settings["initial_budget"]), 0.0,
                                        acquisition["query_void"])
        return select_pixel_queries(job, settings["strategy"], int(settings["budget"]), acquisition["top_percent"],
                                    acquisition["query_void"])

    def answer(self, job: Job, queries: Table, rng: np.random.Generator) -> SimulatedAnswers:
        info = job.info
        masks, rows = job.masks_at(queries["image_index"])
        answers, flipped = answer_pixels(masks, rows, queries["y"], queries["x"], info.num_classes,
                                         info.ignore_index, job.settings["oracle"]["error_rate"], rng)
        return SimulatedAnswers(class_id_strings(answers), f"{int((answers < 0).sum())} void skipped, "
                                                           f"{int(flipped.sum())} simulated errors")

    def answer_cost(self, answers: np.ndarray, costs: Mapping[str, Any], num_classes: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        return fixed_cost(answers, costs["pixel"])

    def asked_items(self, job: Job, queries: Table, answers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return image_keys(queries["image_index"], queries["y"], queries["x"]), np.arange(len(queries["query_id"]))

    def add_answers(self, store: LabelStore, job: Job, queries: Table, answers: np.ndarray) -> LabelStore:
        return add_pixel_answers(store, job.round_index, queries["image_index"], queries["y"], queries["x"],
                                 class_answers(answers))

    def labelled_pixels(self, store: LabelStore) -> int:
        return int(store["pixel_image"].size)

    def known_pairs(self, store: LabelStore, num_images: int, num_classes: int) -> np.ndarray | None:
        # a labelled pixel shows its class in its image
        pixel_class = store["pixel_class"].astype(np.int64)
        if pixel_class.size and (pixel_class.min() < 0 or pixel_class.max() >= num_classes):
            raise ValueError(f"label store holds pixel classes outside 0..{num_classes - 1}")
        known = np.zeros((num_images, num_classes), dtype=bool)
        known[store["pixel_image"].astype(np.int64), pixel_class] = True
        return known

    def training_targets(self, store: LabelStore, job: Job) -> TrainingTargets | None:
        if store["pixel_image"].size == 0:
            return None
        return TrainingTargets(points=PointLabels(image=store["pixel_image"], y=store["pixel_y"], x=store["pixel_x"],
                                                  cls=store["pixel_class"]))

    # -- people ----------------------------------------------------------------------------------------

    def answer_hint(self, class_range: str) -> str:
        return f"a class id in {class_range}"

    def answer_problem(self, answer: str, num_classes: int, class_range: str) -> str | None:
        return class_answer_problem(answer, "pixel", num_classes, class_range)

    def query_problem(self, query: Mapping[str, Any], height: int, width: int, num_classes: int) -> str | None:
        if 0 <= query["y"] < height and 0 <= query["x"] < width:
            return None
        return f"pixel ({query['y']}, {query['x']}) is outside {height}x{width}"

    def page_query(self, query: Mapping[str, Any], classes: Sequence[str]) -> dict[str, Any]:
        return {"y": int(query["y"]), "x": int(query["x"])}

    def labelstudio_control(self, classes: Sequence[str], image: str, labels: Sequence[str]) -> list[str]:
        return [f'  <KeyPointLabels name="{self.labelstudio_name}" toName="{image}" strokeWidth="2" snap="pixel">',
                *labels, "  </KeyPointLabels>"]

    def labelstudio_question(self, query: Mapping[str, Any], classes: Sequence[str]) -> str:
        return "Label the point with the class of the pixel under it (or skip)."

    def labelstudio_prediction(self, query: Mapping[str, Any], shape: tuple[int, int], region: np.ndarray | None
                               ) -> list[tuple[str, dict[str, Any]]]:
        height, width = shape
        y, x = int(query["y"]), int(query["x"])
        return [("keypointlabels", {"x": 100.0 * (x + 0.5) / width, "y": 100.0 * (y + 0.5) / height,
                                    "width": _POINT_WIDTH})]


UNIT = PixelUnit()
