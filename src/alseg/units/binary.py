"""Binary questions (``unit: binary``): "is class c in image i?", answered yes or no.

Round 0 is the initial labelled set (``initial``, :mod:`alseg.units.initial`). Rounds r >= 1 ask
``budget`` questions chosen by :func:`alseg.acquire.binary.select_binary` (the experiment's ``strategy``:
``lp``, ``lp_tight``, ``greedy``, ``milp``, ``rr`` or ``ee``) from round r-1's dump (``/image/class_presence``,
``/image/features``), at most ``binary.c_max`` per image. Pairs whose answer the store already tells are
never asked (:func:`alseg.units.known_pairs`: pairs answered before, pairs whose class a labelled pixel
shows, every pair of a densely labelled image). The answers (``binary_*`` in the store) train through the
image-level losses of :mod:`alseg.binary_loss` (``binary.loss`` weights). docs/binary_queries.md has the
methods.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alseg.acquire.binary import binary_scores, select_binary
from alseg.joblog import log
from alseg.labels import LabelStore
from alseg.queries import SKIP, Table, query_table
from alseg.units.base import Job, SimulatedAnswers, TrainingTargets, fixed_cost, image_keys
from alseg.units.initial import InitialSetUnit

BINARY_ANSWERS = ("yes", "no")


def class_presence_from_masks(
    masks: np.ndarray, images: np.ndarray, num_classes: int, ignore_index: int | None
) -> np.ndarray:
    """Which classes occur in each of ``images``: one ``bincount`` per image (no per-class scans).

    Parameters
    ----------
    masks : ndarray of uint8 (or int), shape (N, H, W)
        Ground truth of the pool.
    images : ndarray of int, shape (K,)
        Pool indices to look at (duplicates allowed).
    num_classes : int
    ignore_index : int or None
        Void value, excluded: void pixels are not a class and never make a class present.

    Returns
    -------
    ndarray of bool, shape (K, C)

    Raises
    ------
    ValueError
        An image index outside the pool, or a mask value that is neither a class nor the ignore value
        (the message names the image).
    """
    images = np.asarray(images, dtype=np.int64)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {masks.shape}")
    if images.size and (images.min() < 0 or images.max() >= len(masks)):
        raise ValueError(f"image indices must be in [0, {len(masks)}), got [{images.min()}, {images.max()}]")
    unique, inverse = np.unique(images, return_inverse=True)
    present = np.zeros((unique.size, num_classes), dtype=bool)
    for row, i in enumerate(unique.tolist()):
        values = np.asarray(masks[i]).reshape(-1)
        if values.size and values.min() < 0:
            raise ValueError(f"mask of image {i} holds negative values")
        counts = np.bincount(values, minlength=num_classes)
        if ignore_index is not None and 0 <= ignore_index < counts.size:
            counts[ignore_index] = 0
        if (counts[num_classes:] > 0).any():
            bad = np.flatnonzero(counts[num_classes:]) + num_classes
            raise ValueError(f"mask of image {i} holds values {bad.tolist()} outside the {num_classes} classes "
                             f"(ignore value {ignore_index})")
        present[row] = counts[:num_classes] > 0
    return present[inverse.reshape(-1)]


def answer_binary(
    masks: np.ndarray,
    image: np.ndarray,
    class_id: np.ndarray,
    num_classes: int,
    ignore_index: int | None,
    error_rate: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Answer each "is class ``class_id[q]`` in image ``image[q]``?" from ground truth.

    "Yes" when at least one ground-truth pixel of the class is in the image (void excluded); flipped with
    probability ``error_rate`` (a simulated mistake, drawn from ``rng``).

    Returns
    -------
    present : ndarray of bool, shape (Q,)
        The (possibly mistaken) answer: True = "yes".
    flipped : ndarray of bool, shape (Q,)
        Where a simulated error changed the answer.
    """
    image = np.asarray(image, dtype=np.int64)
    class_id = np.asarray(class_id, dtype=np.int64)
    if image.shape != class_id.shape or image.ndim != 1:
        raise ValueError(f"image {image.shape} and class_id {class_id.shape} must be equal 1-D shapes")
    if class_id.size and (class_id.min() < 0 or class_id.max() >= num_classes):
        raise ValueError(f"class ids must be in [0, {num_classes}), got [{class_id.min()}, {class_id.max()}]")
    if not 0 <= error_rate <= 1:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
    presence = class_presence_from_masks(masks, image, num_classes, ignore_index)
    truth = presence[np.arange(image.size), class_id]
    if error_rate > 0:
        if rng is None:
            raise ValueError("error_rate > 0 needs a random generator")
        flipped = rng.random(truth.size) < error_rate
    else:
        flipped = np.zeros(truth.size, dtype=bool)
    return truth ^ flipped, flipped


def add_binary_answers(store: LabelStore, round_index: int, image: np.ndarray, class_id: np.ndarray,
                       present: np.ndarray, answered: np.ndarray) -> LabelStore:
    """Return a new store with one round of binary answers added (``store`` is not modified).

    Parameters
    ----------
    image, class_id : ndarray of int, shape (Q,)
        The asked pairs.
    present : ndarray of bool, shape (Q,)
        The answers ("yes" = True).
    answered : ndarray of bool, shape (Q,)
        False for a skipped question: paid, but nothing is stored (it may be asked again).

    Raises
    ------
    ValueError
        A pair asked twice in this round or answered in an earlier one, or mismatched lengths.
    """
    image, class_id = np.asarray(image, dtype=np.int64), np.asarray(class_id, dtype=np.int64)
    present, answered = np.asarray(present, dtype=bool), np.asarray(answered, dtype=bool)
    if not image.shape == class_id.shape == present.shape == answered.shape:
        raise ValueError("binary answers: image, class, answer and answered arrays differ in length")
    if image.size and (image.min() < 0 or class_id.min() < 0):
        raise ValueError(f"round {round_index}: binary answers name a negative image or class")
    width = int(max(class_id.max(initial=0), store["binary_class"].max(initial=0))) + 1
    new_keys = image * width + class_id
    if np.unique(new_keys).size != new_keys.size:
        raise ValueError(f"round {round_index} asks the same image-class pair twice")
    old_keys = store["binary_image"].astype(np.int64) * width + store["binary_class"].astype(np.int64)
    if np.isin(new_keys[answered], old_keys).any():
        raise ValueError(f"round {round_index} asks image-class pairs that an earlier round already answered")
    n = int(answered.sum())
    return store.updated(
        binary_image=np.concatenate([store["binary_image"], image[answered].astype(np.int32)]),
        binary_class=np.concatenate([store["binary_class"], class_id[answered].astype(np.int16)]),
        binary_present=np.concatenate([store["binary_present"], present[answered]]),
        binary_round=np.concatenate([store["binary_round"], np.full(n, round_index, dtype=np.int16)]),
    )


def answer_matrix(num_images: int, num_classes: int, image: np.ndarray, class_id: np.ndarray,
                  present: np.ndarray) -> np.ndarray:
    """Image-level answers as an int8 (N, C) matrix: +1 "yes", -1 "no", 0 not asked.

    Raises
    ------
    ValueError
        Mismatched lengths, indices outside the pool or classes, or one pair answered both ways.
    """
    image, cls = np.asarray(image, dtype=np.int64), np.asarray(class_id, dtype=np.int64)
    present = np.asarray(present, dtype=bool)
    if not image.shape == cls.shape == present.shape:
        raise ValueError(f"binary answers have mismatched lengths {image.shape}, {cls.shape}, {present.shape}")
    if image.size and (image.min() < 0 or image.max() >= num_images):
        raise ValueError(f"binary answers name images outside [0, {num_images})")
    if cls.size and (cls.min() < 0 or cls.max() >= num_classes):
        raise ValueError(f"binary answers name classes outside [0, {num_classes})")
    yes = np.zeros((num_images, num_classes), dtype=bool)
    no = np.zeros_like(yes)
    yes[image[present], cls[present]] = True
    no[image[~present], cls[~present]] = True
    if (yes & no).any():
        i, c = np.argwhere(yes & no)[0]
        raise ValueError(f"image {i}, class {c} is answered both 'yes' and 'no'")
    matrix = np.zeros((num_images, num_classes), dtype=np.int8)
    matrix[yes] = 1
    matrix[no] = -1
    return matrix


def pair_capacity(known: np.ndarray, c_max: int) -> int:
    """Questions a round can ask at most: ``sum_i min(C_max, unknown pairs of image i)``."""
    return int(np.minimum(int(c_max), (~np.asarray(known, dtype=bool)).sum(axis=1)).sum())


def select_binary_queries(job: Job) -> Table:
    """Round r >= 1: ``budget`` questions chosen with round r-1's dump and store; fewer (with a warning)
    when fewer pairs are left under C_max, an error when none is."""
    from alseg.inference_file import dump_name, read_inference
    from alseg.units import known_pairs

    settings, r = job.settings, job.round_index
    n, c = len(job.stems), job.info.num_classes
    fields = read_inference(job.dump(), ["class_presence", "features"])
    presence = fields["class_presence"]
    if presence.shape != (n, c):
        raise ValueError(f"{dump_name(job.dump())}: class presence has shape {presence.shape}, expected ({n}, {c}) "
                         f"for the pool of {job.dataset}")
    store = job.previous_store()
    binary, c_max = settings["binary"], int(settings["binary"]["c_max"])
    known = known_pairs(store, n, c)
    capacity = pair_capacity(known, c_max)
    if capacity == 0:
        raise ValueError(f"{job.dataset}: no image-class pair of the pool is left to ask in round {r} "
                         f"({store['binary_image'].size} answered, {int(known.sum())} of {n * c} known); lower "
                         "'round' or the budget")
    budget = int(settings["budget"])
    if budget > capacity:
        log(f"warning: only {capacity} image-class pairs are left to ask under C_max = {c_max}; asking {capacity} "
            f"instead of {budget}")
        budget = capacity
    seed = job.seed("select_queries")
    scores = binary_scores(presence, fields["features"], float(binary["alpha"]), scaling=binary["confidence_scaling"])
    selection = select_binary(scores, settings["strategy"], budget, c_max=c_max, lam=float(binary["lambda"]),
                              asked=known, seed=seed, solver=binary["solver"], time_limit=binary["time_limit"])
    log(f"round {r}: {selection.size} {settings['strategy']} binary questions on {selection.num_images} of {n} "
        f"images (objective {selection.objective:.4f}, redundancy {selection.redundancy:.2f}, "
        f"{int(known.sum())} pairs known before)")
    if selection.info:
        log(f"selection details: {json.dumps(_rounded(selection.info), default=str)}")
    return query_table(r, selection.image, job.stems, "binary", settings["strategy"], seed,
                       str(fields.attrs.get("model", "")), **{"class": selection.class_id},
                       score=selection.score, rank=selection.rank)


def _rounded(value: Any) -> Any:
    """``value`` with its floats rounded to 4 significant digits (for the log)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


class BinaryUnit(InitialSetUnit):
    name = "binary"
    row_unit = "binary"
    strategies = ("lp", "lp_tight", "greedy", "milp", "rr", "ee")
    store_arrays = {"binary_image": np.int32, "binary_class": np.int16, "binary_present": np.bool_,
                    "binary_round": np.int16}
    page_script = "binary.js"
    labelstudio_name = "answer"
    dump_groups = ("image",)

    def select_settings_after_round0(self, experiment: Mapping[str, Any], round_index: int) -> dict[str, Any]:
        selection = {key: value for key, value in experiment["binary"].items() if key != "loss"}
        return {**{key: experiment[key] for key in ("unit", "seed", "dataset", "strategy", "budget")},
                "binary": selection}

    def train_settings(self, experiment: Mapping[str, Any], round_index: int) -> dict[str, Any]:
        return {"binary": {"loss": experiment["binary"]["loss"]}} if round_index > 0 else {}

    def select_reads_dump(self, experiment: Mapping[str, Any], round_index: int) -> bool:
        return round_index > 0

    def select_after_round0(self, job: Job) -> Table:
        return select_binary_queries(job)

    def answer(self, job: Job, queries: Table, rng: np.random.Generator) -> SimulatedAnswers:
        info = job.info
        masks, rows = job.masks_at(queries["image_index"])
        present, flipped = answer_binary(masks, rows, queries["class"], info.num_classes, info.ignore_index,
                                         float(job.settings["oracle"]["error_rate"]), rng)
        return SimulatedAnswers(np.where(present, "yes", "no").astype(object),
                                f"{int(present.sum())} yes, {int(flipped.sum())} simulated errors")

    def answer_cost(self, answers: np.ndarray, costs: Mapping[str, Any], num_classes: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        return fixed_cost(answers, costs["binary"])

    def asked_items(self, job: Job, queries: Table, answers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked = np.flatnonzero(np.asarray(answers) != SKIP)  # a skipped question may be asked again
        return image_keys(queries["image_index"][asked], queries["class"][asked]), asked

    def add_answers(self, store: LabelStore, job: Job, queries: Table, answers: np.ndarray) -> LabelStore:
        answers = np.asarray(answers)
        return add_binary_answers(store, job.round_index, queries["image_index"], queries["class"],
                                  answers == "yes", answers != SKIP)

    def known_pairs(self, store: LabelStore, num_images: int, num_classes: int) -> np.ndarray | None:
        from alseg.acquire.binary import asked_pairs_mask

        return asked_pairs_mask(num_images, num_classes, store["binary_image"], store["binary_class"])

    def training_targets(self, store: LabelStore, job: Job) -> TrainingTargets | None:
        if store["binary_image"].size == 0:
            return None
        matrix = answer_matrix(len(job.stems), job.info.num_classes, store["binary_image"], store["binary_class"],
                               store["binary_present"])
        return TrainingTargets(answers=matrix, answer_loss=dict(job.settings["binary"]["loss"] or {}))

    # -- people ----------------------------------------------------------------------------------------

    def answer_hint(self, class_range: str) -> str:
        return "yes, no"

    def answer_problem(self, answer: str, num_classes: int, class_range: str) -> str | None:
        if answer in BINARY_ANSWERS:
            return None
        hint = " (a class id answers pixel and superpixel queries, not binary ones)" if answer.isdigit() else ""
        return f"answer {answer!r} is not yes, no or skip{hint}"

    def query_problem(self, query: Mapping[str, Any], height: int, width: int, num_classes: int) -> str | None:
        if 0 <= query["class"] < num_classes:
            return None
        return f"class {query['class']} is not a class of the dataset"

    def page_query(self, query: Mapping[str, Any], classes: Sequence[str]) -> dict[str, Any]:
        class_id = int(query["class"])
        return {"class_id": class_id, "class_name": classes[class_id]}

    def labelstudio_control(self, classes: Sequence[str], image: str, labels: Sequence[str]) -> list[str]:
        return [f'  <Choices name="{self.labelstudio_name}" toName="{image}" choice="single" showInline="true">',
                '    <Choice value="yes"/>', '    <Choice value="no"/>', '    <Choice value="skip"/>', "  </Choices>"]

    def labelstudio_question(self, query: Mapping[str, Any], classes: Sequence[str]) -> str:
        class_id = int(query["class"])
        return f"Is there any {classes[class_id] if class_id >= 0 else ''} in this image? (yes / no / skip)"


UNIT = BinaryUnit()
