"""Image tags (``unit: tags``): "mark every class present in this image", one answer per image.

Round 0 is the initial labelled set (``initial``, :mod:`alseg.units.initial`), as for binary questions.
Rounds r >= 1 choose ``budget`` pool images never tagged before, from round r-1's dump
(``/image/class_presence`` p, the mean probability of each class over the image, as the binary unit reads
it; ``/image/features``, pooled encoder features):

- ``random``: uniformly among the images left;
- ``entropy``: the images whose tags the model is least sure of, by ``sum_c H(p_ic)`` (the binary
  entropy of each class's presence, :func:`alseg.acquire.binary.binary_entropy`);
- ``diverse`` (ours, no paper's): the ``tags.candidates`` x ``budget`` most uncertain images (by
  ``entropy``), then k-center greedy on the cosine distance of their features (the core-set selection of
  Sener and Savarese, ICLR 2018), started from the images whose tags are known: each pick is the candidate
  farthest from every known or picked image, so one round does not spend its budget on near-copies.

Images whose every class the store already tells (tagged before, densely labelled) are never asked. The
answer is the set of class ids present, written ``0;3;5`` (``none``: no class of the dataset is in the
image); the simulated annotator gives the classes with a non-void ground-truth pixel, each class flipped
with probability ``oracle.error_rate``. Cost: one click per class marked plus one for the submit, and
``costs.tags.seconds_per_class`` per class of the dataset (each class is considered once; 1 s per class as
in Bearman et al., ECCV 2016, "What's the point", 20 s per PASCAL VOC image of 20 classes), or the seconds a
person took. Training: the classes marked are presence targets, every other class an exact "no" (the
image-level losses of :mod:`alseg.binary_loss`, ``tags.loss`` weights). docs/tags.md has the details.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alseg.acquire.binary import binary_entropy
from alseg.acquire.pixel import top_k_with_random_ties
from alseg.joblog import log
from alseg.labels import LabelStore
from alseg.queries import SKIP, Table, query_table
from alseg.units.base import Job, SimulatedAnswers, TrainingTargets, image_keys
from alseg.units.binary import answer_matrix, class_presence_from_masks
from alseg.units.initial import InitialSetUnit

#: The answer of an image with no class of the dataset
NONE = "none"
SEPARATOR = ";"


def format_tags(present: np.ndarray) -> str:
    """The answer for a bool (C,) row of classes present: ``0;3;5``, or ``none``."""
    ids = np.flatnonzero(present)
    return SEPARATOR.join(str(int(i)) for i in ids) if ids.size else NONE


def parse_tags(answer: str, num_classes: int) -> np.ndarray:
    """The bool (C,) classes of a valid answer (:meth:`TagsUnit.answer_problem` says what is valid)."""
    present = np.zeros(num_classes, dtype=bool)
    if answer != NONE:
        present[[int(part) for part in answer.split(SEPARATOR)]] = True
    return present


def tags_problem(answer: str, num_classes: int, class_range: str) -> str | None:
    """Why ``answer`` is not a set of class ids (``0;3``) or ``none``; None when it is."""
    if answer == NONE:
        return None
    parts = answer.split(SEPARATOR)
    if not all(part.isdigit() for part in parts):
        return (f"answer {answer!r} is not the ids of the classes present joined by {SEPARATOR!r} (for example "
                f"0{SEPARATOR}3), {NONE} or skip")
    bad = [part for part in parts if int(part) >= num_classes]
    if bad:
        return f"answer {answer!r} names {', '.join(bad)}, not a class id of the dataset ({class_range})"
    if len(set(parts)) != len(parts):
        return f"answer {answer!r} names a class twice"
    return None


def presence_uncertainty(presence: np.ndarray) -> np.ndarray:
    """``sum_c H(p_ic)`` per image (float64 (N,)) from class presence probabilities p (N, C)."""
    return binary_entropy(np.asarray(presence, dtype=np.float64)).sum(axis=1)


def k_center_order(features: np.ndarray, candidates: np.ndarray, centers: np.ndarray, count: int,
                   priority: np.ndarray) -> np.ndarray:
    """``count`` of ``candidates`` by k-center greedy on cosine distance: each the farthest from ``centers``
    and the ones picked before it (ties, and the first pick without centers, go to the higher ``priority``).

    Parameters
    ----------
    features : ndarray of float, shape (N, F)
    candidates, centers : ndarray of int
        Pool indices.
    count : int
    priority : ndarray of float, shape (N,)

    Returns
    -------
    ndarray of int64, shape (count,), in the order picked
    """
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = np.divide(features, norms, out=np.zeros_like(features, dtype=np.float64), where=norms > 0)
    nearest = np.full(candidates.size, np.inf)
    if centers.size:
        nearest = (1.0 - unit[candidates] @ unit[centers].T).min(axis=1)
    order = np.lexsort((-priority[candidates],))  # candidates by priority, for the ties
    chosen: list[int] = []
    taken = np.zeros(candidates.size, dtype=bool)
    for _ in range(min(count, candidates.size)):
        distance = np.where(taken, -np.inf, nearest)[order]
        pick = int(order[int(np.argmax(distance))])
        chosen.append(int(candidates[pick]))
        taken[pick] = True
        nearest = np.minimum(nearest, 1.0 - unit[candidates] @ unit[candidates[pick]])
    return np.asarray(chosen, dtype=np.int64)


def choose_images(strategy: str, uncertainty: np.ndarray, features: np.ndarray | None, eligible: np.ndarray,
                  budget: int, candidates: int, rng: np.random.Generator) -> np.ndarray:
    """The pool images to tag this round (int64, in the strategy's order), ``budget`` of the ``eligible``;
    ``diverse`` keeps them far from the images whose tags are known already (the others)."""
    pool = np.flatnonzero(eligible)
    if strategy == "random":
        return rng.choice(pool, size=min(budget, pool.size), replace=False).astype(np.int64)
    top = pool[top_k_with_random_ties(uncertainty[pool], min(pool.size, budget * (
        candidates if strategy == "diverse" else 1)), rng)]
    top = top[np.lexsort((top, -uncertainty[top]))]  # most uncertain first (ties by index)
    if strategy == "entropy":
        return top[:budget]
    if strategy == "diverse":
        assert features is not None
        return k_center_order(features.astype(np.float64), top, np.flatnonzero(~eligible), budget, uncertainty)
    raise ValueError(f"unknown tags strategy {strategy!r}; expected one of {TagsUnit.strategies}")


def select_tags_queries(job: Job) -> Table:
    """Round r >= 1: ``budget`` images never tagged whose tags the store does not tell; fewer (with a
    warning) when fewer are left, an error when none is."""
    from alseg.inference_file import dump_name, read_inference
    from alseg.units import known_pairs

    settings, r = job.settings, job.round_index
    n, c = len(job.stems), job.info.num_classes
    store = job.previous_store()
    eligible = ~known_pairs(store, n, c).all(axis=1)
    if not eligible.any():
        raise ValueError(f"{job.dataset}: every pool image is tagged (or its classes known) before round {r}; "
                         "lower 'round' or the budget")
    budget = int(settings["budget"])
    if budget > eligible.sum():
        log(f"warning: only {int(eligible.sum())} pool images are left to tag; asking them instead of {budget}")
    strategy, seed = settings["strategy"], job.seed("select_queries")
    uncertainty, features, model = np.zeros(n), None, ""
    if strategy != "random":
        fields = read_inference(job.dump(), ["class_presence", "features"])
        if fields["class_presence"].shape != (n, c):
            raise ValueError(f"{dump_name(job.dump())}: class presence has shape {fields['class_presence'].shape}, "
                             f"expected ({n}, {c}) for the pool of {job.dataset}")
        uncertainty, features = presence_uncertainty(fields["class_presence"]), fields["features"]
        model = str(fields.attrs.get("model", ""))
    images = choose_images(strategy, uncertainty, features, eligible, budget, int(settings["tags"]["candidates"]),
                           np.random.default_rng(seed))
    log(f"round {r}: {images.size} {strategy} images to tag of the {int(eligible.sum())} left")
    return query_table(r, images, job.stems, "tags", strategy, seed, model,
                       score=uncertainty[images] if strategy != "random" else np.full(images.size, np.nan),
                       rank=np.arange(images.size) if strategy != "random" else np.full(images.size, -1))


def add_tags_answers(store: LabelStore, round_index: int, images: np.ndarray, present: np.ndarray) -> LabelStore:
    """Return a new store with tagged ``images`` (int (T,)) and their classes ``present`` (bool (T, C)) added.

    Raises
    ------
    ValueError
        An image tagged twice in this round or tagged in an earlier one.
    """
    images = np.asarray(images, dtype=np.int64)
    if np.unique(images).size != images.size:
        raise ValueError(f"round {round_index} tags the same image twice")
    if np.isin(images, store["tags_image"]).any():
        raise ValueError(f"round {round_index} tags images that an earlier round already tagged")
    row, cls = np.nonzero(np.asarray(present, dtype=bool))
    return store.updated(
        tags_image=np.concatenate([store["tags_image"], images.astype(np.int32)]),
        tags_round=np.concatenate([store["tags_round"], np.full(images.size, round_index, dtype=np.int16)]),
        tags_present_image=np.concatenate([store["tags_present_image"], images[row].astype(np.int32)]),
        tags_present_class=np.concatenate([store["tags_present_class"], cls.astype(np.int16)]),
    )


class TagsUnit(InitialSetUnit):
    name = "tags"
    row_unit = "tags"
    strategies = ("random", "entropy", "diverse")
    store_arrays = {"tags_image": np.int32, "tags_round": np.int16, "tags_present_image": np.int32,
                    "tags_present_class": np.int16}
    page_script = "tags.js"
    labelstudio_name = "tags"
    dump_groups = ("image",)

    def select_settings_after_round0(self, experiment: Mapping[str, Any], round_index: int) -> dict[str, Any]:
        chosen = {key: experiment[key] for key in ("unit", "seed", "dataset", "strategy", "budget")}
        return {**chosen, "tags": {"candidates": experiment["tags"]["candidates"]}}

    def train_settings(self, experiment: Mapping[str, Any], round_index: int) -> dict[str, Any]:
        return {"tags": {"loss": experiment["tags"]["loss"]}} if round_index > 0 else {}

    def select_reads_dump(self, experiment: Mapping[str, Any], round_index: int) -> bool:
        return round_index > 0 and experiment["strategy"] != "random"

    def select_after_round0(self, job: Job) -> Table:
        return select_tags_queries(job)

    def answer(self, job: Job, queries: Table, rng: np.random.Generator) -> SimulatedAnswers:
        info = job.info
        present = class_presence_from_masks(*job.masks_at(queries["image_index"]), info.num_classes,
                                            info.ignore_index)
        error_rate = float(job.settings["oracle"]["error_rate"])
        flipped = rng.random(present.shape) < error_rate if error_rate > 0 else np.zeros_like(present)
        given = present ^ flipped
        return SimulatedAnswers(np.array([format_tags(row) for row in given], dtype=object),
                                f"{int(given.sum())} classes marked, {int(flipped.sum())} simulated errors")

    def answer_cost(self, answers: np.ndarray, costs: Mapping[str, Any], num_classes: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        cost = costs["tags"]
        marked = np.array([0 if a in (NONE, SKIP) else len(a.split(SEPARATOR)) for a in answers], dtype=np.float64)
        return marked + float(cost["clicks"]), np.full(len(answers), float(cost["seconds_per_class"]) * num_classes)

    def asked_items(self, job: Job, queries: Table, answers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked = np.flatnonzero(np.asarray(answers) != SKIP)
        return image_keys(queries["image_index"][asked]), asked

    def add_answers(self, store: LabelStore, job: Job, queries: Table, answers: np.ndarray) -> LabelStore:
        answered = np.asarray(answers) != SKIP  # a skipped image is paid, not stored: it may be asked again
        present = np.array([parse_tags(a, job.info.num_classes) for a in np.asarray(answers)[answered]],
                           dtype=bool).reshape(-1, job.info.num_classes)
        return add_tags_answers(store, job.round_index, queries["image_index"][answered], present)

    def known_pairs(self, store: LabelStore, num_images: int, num_classes: int) -> np.ndarray | None:
        known = np.zeros((num_images, num_classes), dtype=bool)
        known[store["tags_image"].astype(np.int64)] = True  # a tagged image tells every class
        return known

    def training_targets(self, store: LabelStore, job: Job) -> TrainingTargets | None:
        if store["tags_image"].size == 0:
            return None
        n, c = len(job.stems), job.info.num_classes
        present = np.zeros((n, c), dtype=bool)
        present[store["tags_present_image"], store["tags_present_class"]] = True
        image = np.repeat(store["tags_image"].astype(np.int64), c)
        cls = np.tile(np.arange(c), store["tags_image"].size)
        return TrainingTargets(answers=answer_matrix(n, c, image, cls, present[image, cls]),
                               answer_loss=dict(job.settings["tags"]["loss"]))

    # -- people ----------------------------------------------------------------------------------------

    def answer_hint(self, class_range: str) -> str:
        return f"the ids of the classes present joined by {SEPARATOR!r} (in {class_range}), or {NONE}"

    def answer_problem(self, answer: str, num_classes: int, class_range: str) -> str | None:
        return tags_problem(answer, num_classes, class_range)

    def answered_clicks(self, answer: str) -> int:
        return 1 + (0 if answer == NONE else len(answer.split(SEPARATOR)))

    def labelstudio_control(self, classes: Sequence[str], image: str, labels: Sequence[str]) -> list[str]:
        from xml.sax.saxutils import quoteattr

        return [f'  <Choices name="{self.labelstudio_name}" toName="{image}" choice="multiple" showInline="true">',
                *(f"    <Choice value={quoteattr(name)}/>" for name in classes),
                f'    <Choice value="{NONE}"/>', "  </Choices>"]

    def labelstudio_question(self, query: Mapping[str, Any], classes: Sequence[str]) -> str:
        return f"Mark every class present in this image ({NONE} if there is none; Skip if you cannot tell)."

    def labelstudio_answer(self, labels: set[str], classes: Sequence[str]) -> str:
        if NONE in labels or not labels:
            return NONE if labels == {NONE} else SEPARATOR.join(sorted(labels))  # several or none: refused
        unknown = sorted(labels - set(classes))
        if unknown:
            return SEPARATOR.join(unknown)  # refused as not class ids, naming them
        return SEPARATOR.join(str(i) for i in sorted(list(classes).index(label) for label in labels))


UNIT = TagsUnit()
