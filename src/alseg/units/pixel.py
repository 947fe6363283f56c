"""Pixel queries (PixelPick): "what is the class of this pixel?", one key press each.

Round 0 asks ``initial_budget`` random pixels per pool image; round r >= 1 scores every pixel never asked
with round r-1's dump (``strategy``: least confidence 1 - p1, margin p1 - p2, entropy, or random) and asks
``budget`` per image, drawn from each image's ``acquisition.top_percent`` % most uncertain
(:func:`alseg.acquire.pixel.select_pixels`). Pixels asked before are never asked again; void pixels are
not asked unless ``acquisition.query_void``. The store keeps every labelled pixel (``pixel_*``) and every
pixel asked (``asked_*``, skips included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alseg.acquire.pixel import eligible_pixels, select_pixels, strategy_scores
from alseg.joblog import log
from alseg.labels import LabelStore
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

    ``strategy`` other than ``random`` scores the pixels with round r-1's dump (``inference``) and draws
    from each image's ``top_percent`` % most uncertain. An image with fewer pixels left gives what it has,
    with a warning; a pool with none left is an error.
    """
    pool, info = job.pool, job.info
    store = job.previous_store()
    n, h, w = pool.masks.shape
    eligible = eligible_pixels(asked_mask(store, n, h, w), pool.masks, info.ignore_index, query_void)
    if not eligible.any():
        raise ValueError(f"{job.dataset}: no pixel of the pool is left to ask in round {job.round_index} "
                         f"({store['asked_image'].size} asked so far); lower 'round' or the budget")
    seed = job.seed("select_queries")
    rng = np.random.default_rng(seed)
    score_map = priority = None
    model = ""
    if strategy != "random":
        from alseg.inference_file import read_inference
        from alseg.mc_dropout import summed_passes

        fields = read_inference(job.file("inference"), ["top1", "top2", "entropy"])
        score_map, priority = strategy_scores(strategy, fields, summed_passes(fields.attrs))
        model = str(fields.attrs.get("model", ""))
    selection = select_pixels(priority, eligible, budget, top_percent if strategy != "random" else 0.0, rng)
    if selection.shortfall:
        asked = sum(selection.shortfall.values())
        log(f"warning: {len(selection.shortfall)} of {n} images had fewer than {budget} pixels left to ask; asking "
            f"{asked} there instead of {budget * len(selection.shortfall)} ({selection.size} queries in all)")
    score = (score_map[selection.image, selection.y, selection.x].astype(np.float64) if score_map is not None
             else np.full(selection.size, np.nan))
    table = query_table(job.round_index, selection.image, pool.stems, "pixel", strategy, seed, model,
                        y=selection.y, x=selection.x, score=score, rank=selection.rank,
                        pixels=np.ones(selection.size, dtype=np.int64))
    log(f"round {job.round_index}: {selection.size} {strategy} pixel queries over {n} images")
    return table


def asked_mask(store: LabelStore, num_images: int, height: int, width: int) -> np.ndarray:
    """Boolean (N, H, W) map of the pixels asked in any round so far (answered or skipped)."""
    mask = np.zeros((num_images, height, width), dtype=bool)
    mask[store["asked_image"], store["asked_y"], store["asked_x"]] = True
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
        answers, flipped = answer_pixels(job.pool.masks, queries["image_index"], queries["y"], queries["x"],
                                         info.num_classes, info.ignore_index, job.settings["oracle"]["error_rate"],
                                         rng)
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
