"""Workflow steps of binary experiments (``unit: binary``): "is class c in image i?".

Round 0 is the initial labelled set (``initial`` in the config), written as ordinary pixel queries so
that the answer, label and training steps treat it like any pixel round:

- ``{kind: pixels, per_image: k}``: k random pixels per pool image, exactly as the round 0 of a pixel
  experiment with ``initial_budget: k`` (same seed, same pixels, ``strategy`` ``random``), each answered
  and paid like a pixel query (``costs.pixel``);
- ``{kind: dense, images: N0}``: N0 pool images drawn at random (seeded) with their full ground-truth
  masks: one ``pixel`` row per non-void pixel, ``strategy`` ``dense``. A dense image is paid as one
  full-image annotation (``costs.image``): the first row of each image carries the image's cost, the
  others 0, so the round's total is exact. Dense masks are given, never subject to ``oracle.error_rate``.

Rounds r >= 1 ask ``budget`` binary questions chosen by :func:`alseg.acquire.binary.select_binary` (the
experiment's ``strategy``: ``lp``, ``greedy``, ``milp``, ``rr`` or ``ee``) from round r-1's inference dump
(``/image/class_presence``, ``/image/features``). Pairs whose answer is already known are never asked:
pairs asked before, every pair of a densely labelled image, and pairs whose class a labelled pixel of
the image already shows. The answers go to the store's ``binary_*`` arrays, and training uses them
(:func:`answer_training`, :func:`alseg.train.train_model`).

Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from alseg.acquire.binary import asked_pairs_mask, binary_scores, select_binary
from alseg.data import dataset_info, load_split
from alseg.labels import LabelStore, add_pixel_answers, load_labels, save_labels
from alseg.oracle import answer_pixels
from alseg.oracle_binary import answer_binary
from alseg.queries import ANSWER_COLUMNS, QUERY_COLUMNS, query_ids, read_answers, read_queries, write_table
from alseg.seeds import step_rng, step_seed

PathLike = str | os.PathLike[str]
Table = dict[str, np.ndarray]

#: ``strategy`` of the rows of a dense initial set (round 0).
DENSE = "dense"
UNIT = "binary"


def _log(message: str) -> None:
    from alseg.steps import log

    log(message)


# ----------------------------------------------------------------------------------------------------------
# pure helpers
# ----------------------------------------------------------------------------------------------------------


def dense_initial_images(num_images: int, count: int, seed: int) -> np.ndarray:
    """The ``count`` pool images of a dense initial set, drawn without replacement, sorted (int64).

    Raises
    ------
    ValueError
        ``count`` < 1 or larger than the pool.
    """
    if count < 1 or count > num_images:
        raise ValueError(
            f"initial.images must be between 1 and the {num_images} pool images, got {count}"
        )
    return np.sort(np.random.default_rng(seed).choice(num_images, size=count, replace=False)).astype(np.int64)


def dense_pixels(masks: np.ndarray, images: np.ndarray, ignore_index: int | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every non-void pixel of ``images`` as ``(image, y, x)`` (int64), image by image in row-major order."""
    parts = []
    for i in np.asarray(images, dtype=np.int64).tolist():
        labelled = masks[i] != ignore_index if ignore_index is not None else np.ones(masks[i].shape, bool)
        ys, xs = np.nonzero(labelled)
        parts.append((np.full(ys.size, i, np.int64), ys.astype(np.int64), xs.astype(np.int64)))
    if not parts:
        return tuple(np.zeros(0, np.int64) for _ in range(3))  # type: ignore[return-value]
    return tuple(np.concatenate(column) for column in zip(*parts))  # type: ignore[return-value]


def dense_images_of(store: LabelStore, initial: dict[str, Any]) -> np.ndarray:
    """Pool images labelled densely in round 0 (empty unless ``initial["kind"]`` is ``dense``)."""
    if initial.get("kind") != DENSE:
        return np.zeros(0, dtype=np.int64)
    return np.unique(store.pixel_image[store.pixel_round == 0]).astype(np.int64)


def known_pairs(store: LabelStore, num_images: int, num_classes: int, dense_images: np.ndarray) -> np.ndarray:
    """(N, C) bool: the (image, class) pairs not worth asking.

    Pairs asked in an earlier round (answered), every pair of a densely labelled image (its mask says
    which classes are there), and pairs whose class a labelled pixel of the image shows (a known "yes").
    """
    known = asked_pairs_mask(num_images, num_classes, store.binary_image, store.binary_class)
    pixel_class = store.pixel_class.astype(np.int64)
    if pixel_class.size and (pixel_class.min() < 0 or pixel_class.max() >= num_classes):
        raise ValueError(f"label store holds pixel classes outside 0..{num_classes - 1}")
    known[store.pixel_image.astype(np.int64), pixel_class] = True
    known[np.asarray(dense_images, dtype=np.int64)] = True
    return known


def pair_capacity(known: np.ndarray, c_max: int) -> int:
    """Questions a round can ask at most: ``sum_i min(C_max, unknown pairs of image i)``."""
    return int(np.minimum(int(c_max), (~np.asarray(known, dtype=bool)).sum(axis=1)).sum())


def add_binary_answers(
    store: LabelStore,
    round_index: int,
    image: np.ndarray,
    class_id: np.ndarray,
    present: np.ndarray,
    answered: np.ndarray,
    clicks: float,
    seconds: float,
) -> LabelStore:
    """Return a new store with one round of binary answers added (``store`` is not modified).

    Parameters
    ----------
    image, class_id : ndarray of int, shape (Q,)
        The asked pairs.
    present : ndarray of bool, shape (Q,)
        The answers ("yes" = True).
    answered : ndarray of bool, shape (Q,)
        False for a skipped question: paid, but nothing is stored (it may be asked again).
    clicks, seconds : float
        The cost of these answers, added to the round's cost.

    Raises
    ------
    ValueError
        A pair asked twice in this round or answered in an earlier one, or mismatched lengths.
    """
    image = np.asarray(image, dtype=np.int64)
    class_id = np.asarray(class_id, dtype=np.int64)
    present = np.asarray(present, dtype=bool)
    answered = np.asarray(answered, dtype=bool)
    if not image.shape == class_id.shape == present.shape == answered.shape:
        raise ValueError("binary answers: image, class, answer and answered arrays differ in length")
    if image.size and (image.min() < 0 or class_id.min() < 0):
        raise ValueError(f"round {round_index}: binary answers name a negative image or class")
    width = int(max(class_id.max(initial=0), store.binary_class.max(initial=0))) + 1
    new_keys = image * width + class_id
    if np.unique(new_keys).size != new_keys.size:
        raise ValueError(f"round {round_index} asks the same image-class pair twice")
    old_keys = store.binary_image.astype(np.int64) * width + store.binary_class.astype(np.int64)
    if np.isin(new_keys[answered], old_keys).any():
        raise ValueError(f"round {round_index} asks image-class pairs that an earlier round already answered")
    rounds = max(round_index + 1, store.round_clicks.size)
    cost_clicks = np.zeros(rounds)
    cost_seconds = np.zeros(rounds)
    cost_clicks[: store.round_clicks.size] = store.round_clicks
    cost_seconds[: store.round_seconds.size] = store.round_seconds
    cost_clicks[round_index] += clicks
    cost_seconds[round_index] += seconds
    n = int(answered.sum())
    return dataclasses.replace(
        store,
        binary_image=np.concatenate([store.binary_image, image[answered].astype(np.int32)]),
        binary_class=np.concatenate([store.binary_class, class_id[answered].astype(np.int16)]),
        binary_present=np.concatenate([store.binary_present, present[answered]]),
        binary_round=np.concatenate([store.binary_round, np.full(n, round_index, dtype=np.int16)]),
        round_clicks=cost_clicks,
        round_seconds=cost_seconds,
    )


def is_binary_table(table: Table) -> bool:
    """Whether a query table needs the binary steps: binary questions, or a dense initial set."""
    return bool((table["unit"] == UNIT).any() or (table["strategy"] == DENSE).any())


def answer_training(
    store: LabelStore, num_images: int, num_classes: int, experiment: dict[str, Any]
) -> dict[str, Any]:
    """Keyword arguments of :func:`alseg.train.train_model` for the store's binary answers.

    Empty when the store holds none (pixel experiments, round 0), so that such training is unchanged.
    Otherwise ``answers``: the int8 (N, C) matrix of :func:`alseg.binary_loss.answer_matrix` (+1 yes,
    -1 no, 0 not asked), and ``answer_loss``: the experiment's ``binary.loss`` weights.
    """
    if store.binary_image.size == 0:
        return {}
    from alseg.binary_loss import answer_matrix  # torch: only training reaches this

    answers = answer_matrix(num_images, num_classes, store.binary_image, store.binary_class,
                            store.binary_present)
    return {"answers": answers, "answer_loss": dict(experiment.get("binary", {}).get("loss") or {})}


# ----------------------------------------------------------------------------------------------------------
# steps
# ----------------------------------------------------------------------------------------------------------


def select_queries(
    dataset: PathLike,
    experiment: dict[str, Any],
    round_index: int,
    out: PathLike,
    labels: PathLike | None = None,
    inference: PathLike | None = None,
) -> int:
    """Write round ``round_index``'s ``queries.csv`` of a binary experiment; return the number of rows.

    Round 0: the initial labelled set (module docstring). Round r >= 1: ``budget`` binary questions
    chosen with round r-1's dump ``inference`` and store ``labels``; when fewer pairs are left under
    C_max, the round asks what is left and says so; none left is an error.
    """
    if round_index == 0:
        return _select_initial(dataset, experiment, out)
    info = dataset_info(dataset)
    pool = load_split(dataset, "train")
    n, c = len(pool.stems), len(info.classes)
    if inference is None:
        raise ValueError(f"binary round {round_index} needs round {round_index - 1}'s inference dump")
    from alseg.inference_file import read_inference

    fields = read_inference(inference, ["class_presence", "features"])
    presence = fields["class_presence"]
    if presence.shape != (n, c):
        raise ValueError(
            f"{inference}: class presence has shape {presence.shape}, expected ({n}, {c}) for the pool "
            f"of {dataset}"
        )
    store = load_labels(labels) if labels is not None else LabelStore()
    settings = experiment["binary"]
    c_max = int(settings["c_max"])
    known = known_pairs(store, n, c, dense_images_of(store, experiment["initial"]))
    capacity = pair_capacity(known, c_max)
    if capacity == 0:
        raise ValueError(
            f"{dataset}: no image-class pair of the pool is left to ask in round {round_index} "
            f"({store.binary_image.size} answered, {int(known.sum())} of {n * c} known); lower 'round' "
            f"or the budget"
        )
    budget = int(experiment["budget"])
    if budget > capacity:
        _log(
            f"warning: only {capacity} image-class pairs are left to ask under C_max = {c_max}; asking "
            f"{capacity} instead of {budget}"
        )
        budget = capacity
    seed = step_seed(experiment["seed"], round_index, "select_queries")
    scores = binary_scores(presence, fields["features"], float(settings["alpha"]),
                           scaling=settings["confidence_scaling"])
    selection = select_binary(
        scores,
        experiment["strategy"],
        budget,
        c_max=c_max,
        lam=float(settings["lambda"]),
        asked=known,
        seed=seed,
        solver=settings["solver"],
        time_limit=settings["time_limit"],
    )
    q = selection.size
    table = {
        "query_id": query_ids(round_index, q),
        "round": np.full(q, round_index),
        "image": np.asarray(pool.stems, dtype=object)[selection.image],
        "unit": np.full(q, UNIT, dtype=object),
        "y": np.full(q, -1),
        "x": np.full(q, -1),
        "superpixel": np.full(q, -1),
        "class": selection.class_id,
        "score": selection.score,
        "rank": selection.rank,
        "strategy": np.full(q, experiment["strategy"], dtype=object),
        "seed": np.full(q, seed),
        "model": np.full(q, str(fields.attrs.get("model", "")), dtype=object),
        "image_index": selection.image,
        "pixels": np.full(q, -1),
    }
    write_table(out, table, QUERY_COLUMNS)
    _log(
        f"round {round_index}: {q} {experiment['strategy']} binary questions on {selection.num_images} of {n} "
        f"images (objective {selection.objective:.4f}, redundancy {selection.redundancy:.2f}, "
        f"{int(known.sum())} pairs known before) -> {out}"
    )
    if selection.info:
        _log(f"selection details: {json.dumps(_rounded(selection.info), default=str)}")
    return q


def _rounded(value: Any) -> Any:
    """``value`` with its floats rounded to 4 significant digits (for the log)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _select_initial(dataset: PathLike, experiment: dict[str, Any], out: PathLike) -> int:
    """Round 0: the initial labelled set as pixel queries (module docstring)."""
    initial = experiment["initial"]
    if initial["kind"] == "pixels":
        from alseg.steps import select_queries as select_pixel_queries

        as_pixel = {**experiment, "unit": "pixel", "strategy": "random",
                    "initial_budget": int(initial["per_image"])}
        return select_pixel_queries(dataset, as_pixel, 0, out)
    if initial["kind"] != DENSE:
        raise ValueError(f"unknown initial set kind {initial['kind']!r}; expected 'dense' or 'pixels'")
    info = dataset_info(dataset)
    pool = load_split(dataset, "train")
    seed = step_seed(experiment["seed"], 0, "select_queries")
    images = dense_initial_images(len(pool.stems), int(initial["images"]), seed)
    image, y, x = dense_pixels(pool.masks, images, info.ignore_index)
    q = image.size
    table = {
        "query_id": query_ids(0, q),
        "round": np.zeros(q, dtype=np.int64),
        "image": np.asarray(pool.stems, dtype=object)[image],
        "unit": np.full(q, "pixel", dtype=object),
        "y": y,
        "x": x,
        "superpixel": np.full(q, -1),
        "class": np.full(q, -1),
        "score": np.full(q, np.nan),
        "rank": np.full(q, -1),
        "strategy": np.full(q, DENSE, dtype=object),
        "seed": np.full(q, seed),
        "model": np.full(q, "", dtype=object),
        "image_index": image,
        "pixels": np.ones(q, dtype=np.int64),
    }
    write_table(out, table, QUERY_COLUMNS)
    _log(f"round 0: dense initial set, {images.size} images ({q} labelled pixels) -> {out}")
    return q


def answer_queries(
    dataset: PathLike, queries: PathLike, experiment: dict[str, Any], round_index: int, out: PathLike
) -> None:
    """Answer a binary round (or a dense initial set) from ground truth into ``answers.csv``.

    Binary questions: ``yes`` iff a ground-truth pixel of the class is in the image (void excluded),
    flipped with probability ``oracle.error_rate``; each costs ``costs.binary``. Rows of a dense initial
    set: the mask's class, no errors, ``costs.image`` per image (on its first row). Other pixel rows as
    the pixel oracle does (``costs.pixel``).
    """
    info = dataset_info(dataset)
    pool = load_split(dataset, "train")
    table = read_queries(queries)
    q = table["query_id"].size
    costs = experiment["costs"]
    answer = np.empty(q, dtype=object)
    seconds = np.zeros(q)
    clicks = np.zeros(q)
    rng = step_rng(experiment["seed"], round_index, "oracle")
    error_rate = float(experiment["oracle"]["error_rate"])

    binary = table["unit"] == UNIT
    dense = (table["unit"] == "pixel") & (table["strategy"] == DENSE)
    pixel = (table["unit"] == "pixel") & ~dense
    other = ~(binary | dense | pixel)
    if other.any():
        raise ValueError(f"{queries}: binary experiments ask pixel or binary queries, found "
                         f"{sorted(set(table['unit'][other]))}")
    flipped_count = 0
    if binary.any():
        present, flipped = answer_binary(pool.masks, table["image_index"][binary], table["class"][binary],
                                         len(info.classes), info.ignore_index, error_rate, rng)
        answer[binary] = np.where(present, "yes", "no")
        seconds[binary] = float(costs["binary"]["seconds"])
        clicks[binary] = float(costs["binary"]["clicks"])
        flipped_count += int(flipped.sum())
    if dense.any():
        rows = np.flatnonzero(dense)
        classes = pool.masks[table["image_index"][rows], table["y"][rows], table["x"][rows]]
        answer[rows] = [str(int(v)) for v in classes]
        _, first = np.unique(table["image_index"][rows], return_index=True)
        seconds[rows[first]] = float(costs["image"]["seconds"])
        clicks[rows[first]] = float(costs["image"]["clicks"])
    if pixel.any():
        rows = np.flatnonzero(pixel)
        classes, flipped = answer_pixels(pool.masks, table["image_index"][rows], table["y"][rows],
                                         table["x"][rows], len(info.classes), info.ignore_index,
                                         error_rate, rng)
        answer[rows] = [str(int(a)) if a >= 0 else "skip" for a in classes]
        seconds[rows] = float(costs["pixel"]["seconds"])
        clicks[rows] = float(costs["pixel"]["clicks"])
        flipped_count += int(flipped.sum())
    write_table(
        out,
        {
            "query_id": table["query_id"],
            "answer": answer,
            "source": np.full(q, "oracle", dtype=object),
            "annotator": np.full(q, "simulated", dtype=object),
            "seconds": seconds,
            "clicks": clicks,
        },
        ANSWER_COLUMNS,
    )
    yes = int((answer[binary] == "yes").sum()) if binary.any() else 0
    _log(
        f"round {round_index}: answered {int(binary.sum())} binary questions ({yes} yes), "
        f"{int(dense.sum())} dense-mask pixels, {int(pixel.sum())} pixel queries; {flipped_count} simulated "
        f"errors; {seconds.sum() / 3600:.3f} h -> {out}"
    )


def update_labels(
    dataset: PathLike,
    queries: PathLike,
    answers: PathLike,
    round_index: int,
    out: PathLike,
    previous: PathLike | None = None,
) -> None:
    """Add round ``round_index``'s answers (binary and pixel rows) to the previous store and write it."""
    info = dataset_info(dataset)
    table = read_queries(queries)
    answer_table = read_answers(answers, table, list(info.classes))
    store = load_labels(previous) if previous is not None else LabelStore()
    answer = answer_table["answer"]
    binary = table["unit"] == UNIT
    pixel = ~binary
    if pixel.any():
        answer_class = np.array([int(a) if a != "skip" else -1 for a in answer[pixel]], dtype=np.int64)
        store = add_pixel_answers(
            store, round_index, table["image_index"][pixel], table["y"][pixel], table["x"][pixel],
            answer_class, clicks=float(answer_table["clicks"][pixel].sum()),
            seconds=float(answer_table["seconds"][pixel].sum()),
        )
    if binary.any() or not pixel.any():
        store = add_binary_answers(
            store, round_index, table["image_index"][binary], table["class"][binary],
            answer[binary] == "yes", answer[binary] != "skip",
            clicks=float(answer_table["clicks"][binary].sum()),
            seconds=float(answer_table["seconds"][binary].sum()),
        )
    save_labels(out, store)
    _log(
        f"round {round_index}: {store.binary_image.size} binary answers "
        f"({int(store.binary_present.sum())} yes), {store.labelled_pixels} labelled pixels, "
        f"{store.clicks:.0f} clicks, {store.seconds / 3600:.2f} h -> {out}"
    )
