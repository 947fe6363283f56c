"""One function per workflow step: read the step's input files, call the package, write its outputs.

These are the I/O edges that ``scripts/*.py`` call with paths from the ``snakemake`` object; tests call
them directly. Steps that need a model import torch inside the function, so that bookkeeping steps
(queries, answers, labels, reports) start in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from alseg import __version__
from alseg.acquire.pixel import eligible_pixels, select_pixels, strategy_scores
from alseg.atomic import atomic_path, write_json_atomic
from alseg.data import dataset_info, load_split
from alseg.labels import (
    LabelStore,
    add_dense_images,
    add_pixel_answers,
    load_labels,
    record_round_cost,
    round_cost_source,
    save_labels,
)
from alseg.oracle import answer_pixels
from alseg.queries import (
    ANSWER_COLUMNS,
    MASK,
    QUERY_COLUMNS,
    query_ids,
    read_answers,
    read_queries,
    write_table,
)
from alseg.seeds import step_rng, step_seed

PathLike = str | os.PathLike[str]


def log(message: str) -> None:
    """Progress and warnings go to stderr (Snakemake shows it and keeps it in the job log)."""
    print(message, file=sys.stderr, flush=True)


def select_queries(
    dataset: PathLike,
    experiment: dict[str, Any],
    round_index: int,
    out: PathLike,
    labels: PathLike | None = None,
    inference: PathLike | None = None,
) -> int:
    """Write round ``round_index``'s ``queries.csv``; return the number of queries.

    Round 0 draws ``initial_budget`` random pixels per pool image; round r >= 1 scores every eligible
    pixel with round r-1's inference dump (``inference``) and excludes pixels already asked
    (``labels``, round r-1's store). Binary experiments: :func:`alseg.steps_binary.select_queries`.
    """
    if experiment.get("unit") == "binary":
        from alseg import steps_binary

        return steps_binary.select_queries(dataset, experiment, round_index, out, labels, inference)
    if experiment.get("unit") == "full":
        from alseg import steps_full

        return steps_full.select_queries(dataset, experiment, round_index, out)
    info = dataset_info(dataset)
    pool = load_split(dataset, "train")
    store = load_labels(labels) if labels is not None else LabelStore()
    n, h, w = pool.masks.shape
    acquisition = experiment["acquisition"]
    eligible = eligible_pixels(
        store.asked_mask(n, h, w), pool.masks, info.ignore_index, acquisition["query_void"]
    )
    if not eligible.any():
        raise ValueError(
            f"{dataset}: no pixel of the pool is left to ask in round {round_index} "
            f"({store.asked_image.size} asked so far); lower 'round' or the budget"
        )
    strategy = "random" if round_index == 0 else experiment["strategy"]
    budget = experiment["initial_budget"] if round_index == 0 else experiment["budget"]
    seed = step_seed(experiment["seed"], round_index, "select_queries")
    rng = np.random.default_rng(seed)
    score_map = priority = None
    model = ""
    if strategy != "random":
        if inference is None:
            raise ValueError(f"strategy {strategy!r} needs the previous round's inference dump")
        from alseg.inference_file import read_inference

        fields = read_inference(inference, ["top1", "top2", "entropy"])
        score_map, priority = strategy_scores(strategy, fields)
        model = str(fields.attrs.get("model", ""))
    top_percent = acquisition["top_percent"] if strategy != "random" else 0.0
    selection = select_pixels(priority, eligible, budget, top_percent, rng)
    if selection.shortfall:
        asked = sum(selection.shortfall.values())
        log(
            f"warning: {len(selection.shortfall)} of {n} images had fewer than {budget} pixels left to "
            f"ask; asking {asked} there instead of {budget * len(selection.shortfall)} "
            f"({selection.size} queries in all)"
        )
    q = selection.size
    score = (
        score_map[selection.image, selection.y, selection.x].astype(np.float64)
        if score_map is not None
        else np.full(q, np.nan)
    )
    table = {
        "query_id": query_ids(round_index, q),
        "round": np.full(q, round_index),
        "image": np.asarray(pool.stems, dtype=object)[selection.image],
        "unit": np.full(q, "pixel", dtype=object),
        "y": selection.y,
        "x": selection.x,
        "superpixel": np.full(q, -1),
        "class": np.full(q, -1),
        "score": score,
        "rank": selection.rank,
        "strategy": np.full(q, strategy, dtype=object),
        "seed": np.full(q, seed),
        "model": np.full(q, model, dtype=object),
        "image_index": selection.image,
        "pixels": np.ones(q, dtype=np.int64),
    }
    write_table(out, table, QUERY_COLUMNS)
    log(f"round {round_index}: {q} {strategy} pixel queries over {n} images -> {out}")
    return q


def answer_queries(
    dataset: PathLike,
    queries: PathLike,
    experiment: dict[str, Any],
    round_index: int,
    out: PathLike,
    superpixels: PathLike | None = None,
    regions: PathLike | None = None,
    human: PathLike | None = None,
) -> None:
    """Answer ``queries`` from ground truth (the simulated annotator) into ``answers.csv``.

    Superpixel experiments (``superpixels``: base superpixel file, ``regions``: the round's
    ``regions.npz``): :func:`alseg.steps_superpixel.answer_superpixel_queries_step`.
    Human experiments (``oracle.kind: human``) copy a person's validated answers, ``human``
    (``human_answers.csv``, None while it does not exist): :func:`alseg.human.accept_human_answers`.
    """
    if experiment.get("oracle", {}).get("kind") == "human":
        from alseg.human import accept_human_answers

        accept_human_answers(dataset, queries, out, human=human, regions=superpixels)
        return
    if regions is not None or experiment.get("unit") == "superpixel":
        from alseg import steps_superpixel

        return steps_superpixel.answer_superpixel_queries_step(
            dataset, superpixels, queries, regions, experiment, round_index, out
        )
    from alseg import steps_binary

    table = read_queries(queries)
    if (table["unit"] == "image").any():  # whole images: the fully supervised reference
        from alseg import steps_full

        return steps_full.answer_queries(dataset, queries, experiment, out)
    if steps_binary.is_binary_table(table):  # binary questions or a dense initial set
        return steps_binary.answer_queries(dataset, queries, experiment, round_index, out)
    info = dataset_info(dataset)
    pool = load_split(dataset, "train")
    rng = step_rng(experiment["seed"], round_index, "oracle")
    answers, flipped = answer_pixels(
        pool.masks,
        table["image_index"],
        table["y"],
        table["x"],
        len(info.classes),
        info.ignore_index,
        experiment["oracle"]["error_rate"],
        rng,
    )
    q = answers.size
    cost = experiment["costs"]["pixel"]
    write_table(
        out,
        {
            "query_id": table["query_id"],
            "answer": np.array([str(a) if a >= 0 else "skip" for a in answers], dtype=object),
            "source": np.full(q, "oracle", dtype=object),
            "annotator": np.full(q, "simulated", dtype=object),
            "seconds": np.full(q, float(cost["seconds"])),
            "clicks": np.full(q, float(cost["clicks"])),
        },
        ANSWER_COLUMNS,
    )
    log(
        f"round {round_index}: answered {q} queries ({int((answers < 0).sum())} void skipped, "
        f"{int(flipped.sum())} simulated errors) -> {out}"
    )


def update_labels(
    dataset: PathLike,
    queries: PathLike,
    answers: PathLike,
    round_index: int,
    out: PathLike,
    previous: PathLike | None = None,
    regions: PathLike | None = None,
    costs: Mapping[str, Mapping[str, float]] | None = None,
) -> None:
    """Add round ``round_index``'s answers to the previous store and write the cumulative store.

    The unit's own update builds the store (:func:`update_labels_by_unit`); then the round's cost is
    completed: answers without measured ``seconds`` or ``clicks`` (empty cells, in a person's file)
    are paid the configured estimate of their unit (``costs``, the experiment's ``costs``), and the
    round's cost source is recorded: measured when every answer is a person's with its seconds,
    estimated when none is, mixed otherwise (:func:`alseg.labels.round_cost_source`).
    """
    info = dataset_info(dataset)
    table = read_queries(queries)
    answer_table = read_answers(answers, table, list(info.classes), empty_cost=np.nan)
    out = Path(out)
    staged = out.with_name(f".{out.name}.unit")
    try:
        update_labels_by_unit(dataset, queries, answers, round_index, staged, previous, regions)
        store = load_labels(staged)
    finally:
        staged.unlink(missing_ok=True)
    estimate = {"seconds": np.zeros(len(table["unit"])), "clicks": np.zeros(len(table["unit"]))}
    for unit in np.unique(table["unit"]):
        rows = table["unit"] == unit
        for key in estimate:
            estimate[key][rows] = float(((costs or {}).get(str(unit)) or {}).get(key, 0.0))
    seconds, clicks = answer_table["seconds"], answer_table["clicks"]
    measured = int(((answer_table["source"] == "human") & ~np.isnan(seconds)).sum())
    source = round_cost_source(measured, len(seconds))
    updated = record_round_cost(
        store,
        round_index,
        source,
        earlier=load_labels(previous) if previous is not None else None,
        clicks=float(estimate["clicks"][np.isnan(clicks)].sum()),
        seconds=float(estimate["seconds"][np.isnan(seconds)].sum()),
    )
    save_labels(out, updated)
    log(
        f"round {round_index}: cost {source} ({measured} of {len(seconds)} answers with measured seconds), "
        f"{updated.seconds / 3600:.3f} h so far -> {out}"
    )


def update_labels_by_unit(
    dataset: PathLike,
    queries: PathLike,
    answers: PathLike,
    round_index: int,
    out: PathLike,
    previous: PathLike | None = None,
    regions: PathLike | None = None,
) -> None:
    """The store after round ``round_index`` as each unit builds it (empty costs count 0).

    Superpixel queries (``regions``: the round's ``regions.npz``):
    :func:`alseg.steps_superpixel.update_superpixel_labels`.
    """
    if regions is not None:
        from alseg import steps_superpixel

        return steps_superpixel.update_superpixel_labels(dataset, queries, answers, regions, round_index, out,
                                                         previous)
    from alseg import steps_binary

    table = read_queries(queries)
    whole_images = (table["unit"] == "image").any()  # the fully supervised reference (alseg.steps_full)
    # a dense initial set is also strategy "dense": whole-image queries are told apart first
    if not whole_images and steps_binary.is_binary_table(table):
        return steps_binary.update_labels(dataset, queries, answers, round_index, out, previous)
    info = dataset_info(dataset)
    answer_table = read_answers(answers, table, list(info.classes))
    store = load_labels(previous) if previous is not None else LabelStore()
    answer = answer_table["answer"]
    cost = {"clicks": float(answer_table["clicks"].sum()), "seconds": float(answer_table["seconds"].sum())}
    if whole_images:
        given = answer == MASK
        updated = add_dense_images(store, round_index, table["image_index"][given], table["pixels"][given], **cost)
    else:
        answer_class = np.array([int(a) if a != "skip" else -1 for a in answer], dtype=np.int64)
        updated = add_pixel_answers(
            store, round_index, table["image_index"], table["y"], table["x"], answer_class, **cost
        )
    save_labels(out, updated)
    log(
        f"round {round_index}: {updated.labelled_pixels} labelled pixels, {updated.clicks:.0f} clicks, "
        f"{updated.seconds / 3600:.2f} h -> {out}"
    )


def train(
    dataset: PathLike,
    labels: PathLike,
    experiment: dict[str, Any],
    round_index: int,
    out_model: PathLike,
    out_log: PathLike,
    init_model: PathLike | None = None,
    superpixels: PathLike | None = None,
    sieve_model: PathLike | None = None,
    twin_model: PathLike | None = None,
    twin_log: PathLike | None = None,
) -> None:
    """Train round ``round_index``'s model on the cumulative labels; select the checkpoint on val.

    Superpixel experiments train on the pixels of answered regions (``superpixels``: the base superpixel
    file), sieved with round r-1's model ``sieve_model`` when sieving is on
    (:func:`alseg.steps_superpixel.superpixel_training_points`; the record goes to ``train_log.json``).

    ``twin_model`` and its ``twin_log``: another experiment's model of the same round (round 0,
    :func:`alseg.config.round0_twins`). When the log's ``training_digest`` equals this training's, the
    training would repeat it exactly: that model is copied instead, and the log says so
    (``model_of``). Otherwise this model is trained as usual.
    """
    import torch

    from alseg.models import load_model, save_model
    from alseg.points import PointLabels
    from alseg.steps_binary import answer_training
    from alseg.train import train_model

    info = dataset_info(dataset)
    pool = load_split(dataset, "train")
    val = load_split(dataset, "val")
    store = load_labels(labels)
    points = PointLabels(
        image=store.pixel_image, y=store.pixel_y, x=store.pixel_x, cls=store.pixel_class
    )
    if store.dense_image.size:  # whole images labelled by their mask (the fully supervised reference)
        dense = PointLabels.from_masks(pool.masks[store.dense_image], info.ignore_index)
        points = PointLabels(
            image=np.concatenate([points.image, store.dense_image[dense.image]]),
            y=np.concatenate([points.y, dense.y]),
            x=np.concatenate([points.x, dense.x]),
            cls=np.concatenate([points.cls, dense.cls]),
        )
    extra_log: dict[str, Any] = {}
    if experiment.get("unit") == "superpixel":
        from alseg.steps_superpixel import superpixel_training_points

        points, extra_log["superpixel"] = superpixel_training_points(
            pool, store, superpixels, experiment, round_index, info.ignore_index, sieve_model
        )
    seed = step_seed(experiment["seed"], round_index, "train")
    training = {k: v for k, v in experiment["training"].items() if k != "warm_start"}
    answers = answer_training(store, len(pool.images), len(info.classes), experiment)
    digest = training_digest(
        {"model": experiment["model"], "training": training, "seed": seed, "classes": len(info.classes),
         "ignore_index": info.ignore_index, "answer_loss": answers.get("answer_loss"),
         "init_model": str(init_model) if init_model is not None else None, "alseg": __version__},
        {"image": points.image, "y": points.y, "x": points.x, "class": points.cls,
         "answers": answers.get("answers", np.zeros(0, np.int8)), "pool": pool.images, "val": val.images,
         "val_masks": val.masks},
    )
    twin = json.loads(Path(twin_log).read_text()) if twin_model and twin_log and init_model is None else None
    if twin is not None and twin.get("training_digest") == digest:
        log(f"round {round_index}: the same training as {twin_model} (digest {digest[:12]}): its model is "
            "reused, not retrained")
        with atomic_path(out_model) as tmp:
            shutil.copyfile(twin_model, tmp)
        write_json_atomic(out_log, {**twin, "model_of": str(twin_model)})
        return
    init_state = None
    if init_model is not None:
        init_state = load_model(init_model, torch.device("cpu"))[0].state_dict()
    log(f"round {round_index}: training on {len(points)} labelled pixels (seed {seed})")
    result = train_model(
        experiment["model"],
        training,
        pool.images,
        points,
        val.images,
        val.masks,
        num_classes=len(info.classes),
        ignore_index=info.ignore_index,
        seed=seed,
        log=log,
        init_state=init_state,
        **answers,
    )
    save_model(
        out_model,
        result.model,
        experiment["model"],
        len(info.classes),
        {"round": round_index, "best_epoch": result.best_epoch, "best_val_miou": result.best_val_miou},
    )
    write_json_atomic(
        out_log,
        {
            "round": round_index,
            "seed": seed,
            "best_epoch": result.best_epoch,
            "best_val_miou": result.best_val_miou,
            "history": result.history,
            "alseg_version": __version__,
            "training_digest": digest,
            **extra_log,
        },
    )


def training_digest(settings: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> str:
    """A hex digest of everything a training reads: equal digests mean the same training.

    Parameters
    ----------
    settings : mapping
        JSON-able settings (model, schedule, seed, ...); key order does not matter.
    arrays : mapping of str to ndarray
        The data (training points, images, ...): names, dtypes, shapes and bytes all count.
    """
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps(settings, sort_keys=True, default=repr).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def evaluate(
    dataset: PathLike,
    model_path: PathLike,
    labels: PathLike,
    experiment_name: str,
    experiment: dict[str, Any],
    round_index: int,
    out: PathLike,
    split: str = "test",
) -> dict[str, Any]:
    """Evaluate round ``round_index``'s model on ``split`` and write ``metrics.json``."""
    import torch

    from alseg.metrics import confusion_matrix, scores_from_confusion
    from alseg.models import load_model, model_checksum, resolve_device
    from alseg.predict import predict

    info = dataset_info(dataset)
    data = load_split(dataset, split)
    device = resolve_device(experiment["inference"]["device"])
    model, meta = load_model(model_path, device)
    pred = predict(model, data.images, experiment["inference"]["batch_size"], device)
    cm = confusion_matrix(pred, data.masks, len(info.classes), info.ignore_index)
    scores = scores_from_confusion(cm)
    store = load_labels(labels)
    metrics = {
        "experiment": experiment_name,
        "round": round_index,
        "split": split,
        "miou": scores.miou,
        "per_class_iou": scores.per_class(list(info.classes)),
        "pixel_accuracy": scores.pixel_accuracy,
        "labelled_pixels": store.labelled_pixels,
        "clicks": store.clicks,
        "seconds": store.seconds,
        "hours": store.seconds / 3600.0,
        "cost_source": store.cost_source,
        "unit": experiment["unit"],
        "strategy": experiment["strategy"],
        "model": model_checksum(model),
        "best_val_miou": meta.get("best_val_miou"),
        "best_epoch": meta.get("best_epoch"),
        "images": int(data.images.shape[0]),
        "confusion_matrix": cm.tolist(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    write_json_atomic(out, metrics)
    log(f"round {round_index}: {split} mIoU {scores.miou:.4f}, accuracy {scores.pixel_accuracy:.4f} -> {out}")
    return metrics


def infer(
    dataset: PathLike,
    model_path: PathLike,
    experiment: dict[str, Any],
    round_index: int,
    out: PathLike,
    superpixels: PathLike | None = None,
) -> None:
    """Run round ``round_index``'s model over the pool and write ``inference.h5``.

    With ``superpixels`` (the base superpixel file of a superpixel experiment) the dump also holds the
    ``/superpixel`` statistics of every base superpixel (docs/superpixels.md).
    """
    from alseg.infer import write_inference
    from alseg.models import load_model, model_checksum, resolve_device

    info = dataset_info(dataset)
    pool = load_split(dataset, "train")
    device = resolve_device(experiment["inference"]["device"])
    model, _ = load_model(model_path, device)
    maps = None
    if superpixels is not None:
        from alseg.superpixels import read_superpixels

        maps = read_superpixels(superpixels, expected_shape=pool.masks.shape)
    write_inference(
        out,
        model,
        pool.images,
        num_classes=len(info.classes),
        batch_size=experiment["inference"]["batch_size"],
        device=device,
        mc_passes=experiment["acquisition"]["mc_passes"],
        seed=step_seed(experiment["seed"], round_index, "infer"),
        attrs={"model": model_checksum(model), "round": round_index, "classes": list(info.classes)},
        superpixels=maps,
    )
    log(f"round {round_index}: inference over {pool.images.shape[0]} pool images -> {out}")



class _Tee:
    """A text stream writing to two streams (the terminal and a job's log file)."""

    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


@contextlib.contextmanager
def logged_step(log_path: PathLike) -> Iterator[None]:
    """Run a step with stderr copied to ``log_path``; report input errors as one clear line.

    Errors about the user's data or files (ValueError, OSError and their subclasses, such as
    DatasetError or AnswerFileError) end the job with ``error: <message>`` and exit status 1;
    anything else is a bug and keeps its traceback.
    """
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    start_up = process_age()
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log_file:
        original = sys.stderr
        sys.stderr = _Tee(original, log_file)  # type: ignore[assignment]
        try:
            yield
            if start_up is not None:  # read by benchmarks/default_run.py
                log(f"timing: start-up {start_up:.2f} s, step {time.perf_counter() - started:.2f} s")
        except (ValueError, OSError) as exc:
            log(f"error: {exc}")
            raise SystemExit(1) from exc
        finally:
            sys.stderr = original


def process_age() -> float | None:
    """Seconds since this process started (interpreter, Snakemake's script preamble, imports).

    Linux only (``/proc``); None elsewhere.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as stat, open("/proc/uptime", encoding="ascii") as up:
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
            uptime = float(up.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def limit_threads(threads: int) -> None:
    """Give torch the job's threads, never more than the cores this process may run on.

    Call it before anything imports torch: it also makes idle OpenMP threads sleep instead of spin
    (``OMP_WAIT_POLICY=PASSIVE``, unless set). A trade measured in BENCHMARKS.md (section 6): on an
    otherwise idle machine spinning threads are faster (51 against 75 ms per step of the default
    model on 2 cores), but when a program outside this login session keeps a core busy, spinning
    threads stall at every barrier (640 against 198 ms). Set ``OMP_WAIT_POLICY=ACTIVE`` on a
    dedicated machine.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(max(1, min(int(threads), len(os.sched_getaffinity(0)))))
