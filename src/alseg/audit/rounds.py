"""The checks of one experiment's rounds, in round order: each replays what the workflow did and names
what a file says otherwise (docs/audit.md lists them)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alseg import plan
from alseg.answers import answer_problems, read_answers
from alseg.audit.files import Experiment, Finding, differing_keys, read_json, same_value
from alseg.labels import COST_SOURCES, LabelStore, load_labels
from alseg.queries import ANSWER_COLUMNS, SKIP, Table, read_queries, read_rows, table_rows
from alseg.steps import add_round
from alseg.units import UNITS, Job, labelled_pixels, unit_named, unit_of_row

#: Names of the parts of what a query asks about, by column of :meth:`QueryUnit.asked_items`'s keys
_ITEM_PARTS = {"pixel": ("image", "y", "x"), "superpixel": ("image", "base superpixel"),
               "binary": ("image", "class")}
#: Row units by code in the audit's item rows (the same for every experiment, so that they compare)
ROW_UNITS = sorted({unit.row_unit for unit in UNITS.values()})
#: Rows listed of one kind of finding in one file (then a count)
_LISTED = 10


@dataclass
class RoundSummary:
    """What one round asked, who answered, what it cost and which models it involved (the audit's table)."""

    experiment: str
    round: int
    asked: int = 0
    answered: int = 0
    skipped: int = 0
    clicks: float | None = None
    seconds: float | None = None
    cost_source: str = ""
    answered_by: str = ""
    scored_by: str = ""
    model: str = ""
    miou: float | None = None


@dataclass
class ExperimentState:
    """What the audit carries from round to round: the replayed store (None once a round cannot be
    replayed), every item asked so far, and the previous round's model checksum."""

    store: LabelStore | None = None
    replayable: bool = True
    asked_keys: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))  # (unit, keys) rows
    asked_round: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    asked_id: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    items: dict[int, np.ndarray] = field(default_factory=dict)  # round -> its distinct items (item_rows)
    previous_model: str | None = None
    notes: list[str] = field(default_factory=list)
    unchecked_digests: list[int] = field(default_factory=list)


def _at(table: Table, row: int) -> str:
    return f"line {row + 2} ({table['query_id'][row]})"


def _item_text(key: np.ndarray) -> str:
    """``pixel image 3, y 5, x 7`` of a row (unit code, three keys; -1 where a key does not apply)."""
    unit = ROW_UNITS[int(key[0])]
    values = [int(v) for v in key[1:] if v != -1]
    return f"{unit} " + ", ".join(f"{name} {value}" for name, value in zip(_ITEM_PARTS.get(unit, ("image",)), values))


def check_queries(path: Path, round_index: int, findings: list[Finding]) -> Table | None:
    """The round's query table, or None (with a finding) when it cannot be read; duplicate ids and rows
    of another round are findings."""
    try:
        table = read_queries(path)
    except (OSError, ValueError) as err:
        findings.append(Finding(path, "", f"cannot read it: {err}"))
        return None
    ids = table["query_id"]
    _, first, counts = np.unique(ids, return_index=True, return_counts=True)
    for row in np.sort(first[counts > 1]):
        findings.append(Finding(path, _at(table, row), f"query id {ids[row]} appears {counts[first == row][0]} "
                                                       "times"))
    for row in np.flatnonzero(table["round"] != round_index):
        findings.append(Finding(path, _at(table, row), f"round {table['round'][row]} in round {round_index}'s queries"))
    return table


def check_answers(path: Path, table: Table, classes: list[str], findings: list[Finding]) -> Table | None:
    """The round's answers in query order (empty costs NaN), or None when they do not answer the queries
    one to one, validly for each query's unit (each problem a finding)."""
    if not path.is_file():
        findings.append(Finding(path, "", "missing"))
        return None
    try:
        rows = read_rows(path, ANSWER_COLUMNS)
    except (OSError, ValueError) as err:
        findings.append(Finding(path, "", f"cannot read it: {err}"))
        return None
    problems = answer_problems(rows, table, classes)
    findings += [Finding(path, *problem.split(": ", 1)) if problem.startswith("line ") else
                 Finding(path, "", problem) for problem in problems]
    return None if problems else read_answers(path, table, classes, empty_cost=np.nan)


def item_rows(keys: np.ndarray) -> np.ndarray:
    """Rows of an int64 (M, k) array as one opaque value each (void), so that numpy sets compare rows."""
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    return keys.view(np.dtype((np.void, keys.dtype.itemsize * keys.shape[1]))).reshape(-1)


def check_asked_once(exp: Experiment, job: Job, table: Table, given: Table, state: ExperimentState,
                     findings: list[Finding]) -> None:
    """Nothing is asked twice: not within the round, not after an earlier round asked it (a pixel, a base
    superpixel, an (image, class) question, an image), unless that earlier query was skipped and its unit
    asks skipped queries again (:meth:`~alseg.units.base.QueryUnit.asked_items`). A repeat names the
    query that asked the item first."""
    path = exp.file(job.round_index, "queries.csv")
    units = np.asarray(table["unit"])
    parts = []
    for name in dict.fromkeys(units.tolist()):
        rows = np.flatnonzero(units == name)
        try:
            keys, query = unit_of_row(name).asked_items(job, table_rows(table, rows), given["answer"][rows])
        except (OSError, ValueError) as err:
            findings.append(Finding(path, "", f"cannot tell what its {name} queries ask: {err}"))
            continue
        code = np.full((len(query), 1), ROW_UNITS.index(name), dtype=np.int64)
        parts.append((np.hstack([code, np.asarray(keys, dtype=np.int64).reshape(-1, 3)]), rows[query]))
    keys = np.concatenate([k for k, _ in parts]) if parts else np.zeros((0, 4), np.int64)
    rows = np.concatenate([r for _, r in parts]) if parts else np.zeros(0, np.int64)
    earlier = len(state.asked_keys)
    every = np.concatenate([state.asked_keys, keys])
    _, first, inverse = np.unique(item_rows(every), return_index=True, return_inverse=True)
    first_asker = first[inverse.reshape(-1)[earlier:]]
    for i in np.flatnonzero(first_asker < earlier + np.arange(len(keys))):
        j = int(first_asker[i])
        if j < earlier:
            asker_round, asker_id = state.asked_round[j], state.asked_id[j]
        else:
            asker_round, asker_id = job.round_index, table["query_id"][rows[j - earlier]]
        findings.append(Finding(path, _at(table, int(rows[i])), f"asks {_item_text(keys[i])} again: round "
                                                                f"{asker_round} asked it ({asker_id})"))
    state.asked_keys = every
    state.asked_round = np.concatenate([state.asked_round, np.full(len(keys), job.round_index)])
    state.asked_id = np.concatenate([state.asked_id, np.asarray(table["query_id"], dtype=object)[rows]])
    state.items[job.round_index] = np.unique(item_rows(keys))


def check_simulated(exp: Experiment, round_index: int, table: Table, given: Table, findings: list[Finding]) -> None:
    """A simulated round's answers are what the simulated annotator answers (it is deterministic: the
    same seed gives the same answers, mistakes included), at the configured cost."""
    from alseg.steps import simulated_answers

    job = Job(exp.dataset, plan.answer_settings(exp.config, exp.name, round_index), round_index,
              round_job(exp, round_index).files)
    try:
        expected, _ = simulated_answers(job, table)
    except (OSError, ValueError) as err:
        findings.append(Finding(exp.file(round_index, "answers.csv"), "", f"cannot be simulated again: {err}"))
        return
    wrong = np.flatnonzero((expected["answer"] != given["answer"]) | (given["source"] != "oracle")
                           | ~np.isclose(expected["clicks"], given["clicks"], rtol=1e-6)
                           | ~np.isclose(expected["seconds"], given["seconds"], rtol=1e-6))
    path = exp.file(round_index, "answers.csv")
    for row in wrong[:_LISTED]:
        findings.append(Finding(path, f"query {table['query_id'][row]}", (
            f"answer {given['answer'][row]!r} from {given['source'][row]} at {given['clicks'][row]:g} clicks, "
            f"{given['seconds'][row]:g} s; the simulated annotator answers {expected['answer'][row]!r} at "
            f"{expected['clicks'][row]:g} clicks, {expected['seconds'][row]:g} s")))
    if wrong.size > _LISTED:
        findings.append(Finding(path, "", f"... and {wrong.size - _LISTED} more answers that the simulated annotator "
                                          "does not give"))


def check_replay(exp: Experiment, job: Job, table: Table, given: Table | None, state: ExperimentState,
                 findings: list[Finding]) -> None:
    """``labels.npz`` equals the store rebuilt from the dataset and every answer of rounds 0..r, its round
    costs included (the answers' own clicks and seconds, or the configured estimate where a person's are
    empty)."""
    path = exp.file(job.round_index, "labels.npz")
    if given is None or not state.replayable:
        if state.replayable is False:
            state.notes.append(f"{exp.name} round {job.round_index}: labels.npz not replayed (a finding in an "
                               "earlier round stops the replay)")
        state.replayable = False
        return
    try:
        replayed, _ = add_round(state.store, job, table, given)
    except (OSError, ValueError) as err:
        findings.append(Finding(exp.file(job.round_index, "answers.csv"), "", f"cannot be replayed: {err}"))
        state.replayable = False
        return
    state.store = replayed
    if not path.is_file():
        findings.append(Finding(path, "", "missing"))
        return
    try:
        saved = load_labels(path)
    except (OSError, ValueError) as err:
        findings.append(Finding(path, "", f"cannot read it: {err}"))
        return
    findings += [Finding(path, name, problem) for name, problem in store_differences(replayed, saved, job.round_index)]


def store_differences(replayed: LabelStore, saved: LabelStore, round_index: int) -> list[tuple[str, str]]:
    """(array name, what differs) for every array of ``saved`` that the replay does not give."""
    out = []
    for name in sorted(set(replayed.names()) | set(saved.names())):
        a, b = _array(replayed, name), _array(saved, name)
        if a is None or b is None:
            out.append((name, "not an array of the replayed store" if a is None else "missing"))
        elif name in ("round_clicks", "round_seconds") and a.shape == b.shape:
            bad = np.flatnonzero(~np.isclose(a, b, rtol=1e-9, atol=1e-9))
            out += [(f"{name}[{r}]", f"{b[r]:g}, but the answers of round {r} cost {a[r]:g}") for r in bad]
        elif name == "round_cost_source" and a.shape == b.shape and not np.array_equal(a, b):
            r = int(np.flatnonzero(a != b)[0])
            out.append((f"{name}[{r}]", f"{_source(b[r])}, but the answers of round {r} make it {_source(a[r])}"))
        elif a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
            differ = int((a != b).sum()) if a.shape == b.shape else None
            out.append((name, f"differs from the replay of the answers of rounds 0..{round_index} ("
                        + (f"{differ} of {a.size} values differ" if differ is not None else
                           f"{b.shape[0] if b.ndim else 0} entries, the replay has {a.shape[0] if a.ndim else 0}")
                        + ")"))
    return out


def _array(store: LabelStore, name: str) -> np.ndarray | None:
    try:
        return store[name]
    except KeyError:
        return None


def _source(code: Any) -> str:
    return COST_SOURCES[int(code)] if 0 <= int(code) < len(COST_SOURCES) else f"code {int(code)}"


def check_scored_by(exp: Experiment, round_index: int, table: Table, state: ExperimentState,
                    findings: list[Finding]) -> str:
    """Every query that names a model was scored by round r-1's model; every scored query names one.
    Returns the models named (for the summary)."""
    path = exp.file(round_index, "queries.csv")
    models = np.asarray(table["model"], dtype=str)  # read_queries: strings, "" where empty
    named = models != ""
    for row in np.flatnonzero(~named & np.isfinite(table["score"])):
        findings.append(Finding(path, _at(table, row), "has a score but names no model"))
    if round_index == 0 or state.previous_model is None:
        wrong, why = named, ("but no earlier round trained one" if round_index == 0 else
                             f"but round {round_index - 1}'s model could not be read")
    else:
        wrong, why = named & (models != state.previous_model), f"but round {round_index - 1} trained " \
                                                               f"{state.previous_model}"
    for row in np.flatnonzero(wrong):
        findings.append(Finding(path, _at(table, row), f"names model {models[row]}, {why}"))
    named = sorted(set(models[named].tolist()))
    return ", ".join(named)


def check_human(exp: Experiment, round_index: int, table: Table, findings: list[Finding]) -> None:
    """A person's round: the acceptance record names this ``queries.csv`` and this ``human_answers.csv``,
    and ``answers.csv`` is that file as validated (:func:`alseg.human.accepted_rows`)."""
    from alseg.annotate.progress import file_sha256
    from alseg.human import HUMAN_ANSWERS, accepted_path, accepted_rows

    human = exp.file(round_index, HUMAN_ANSWERS)
    record = read_json(accepted_path(human), findings)
    if record is None:
        return
    queries = exp.file(round_index, "queries.csv")
    if record.get("queries_sha256") != file_sha256(queries):
        findings.append(Finding(accepted_path(human), "queries_sha256", f"the answers were accepted for another "
                                f"version of {queries.name} (it changed after {record.get('accepted_at')})"))
    if not human.is_file():
        findings.append(Finding(human, "", "missing: the person's answers the round was accepted from"))
        return
    if record.get("answers_sha256") != file_sha256(human):
        findings.append(Finding(human, "", f"changed after it was accepted ({record.get('accepted_at')}): its "
                                "SHA-256 is not the one the acceptance record holds"))
    try:
        expected = accepted_rows(read_rows(human, ANSWER_COLUMNS), table)
        found = read_rows(exp.file(round_index, "answers.csv"), ANSWER_COLUMNS)
    except (OSError, ValueError, KeyError) as err:
        findings.append(Finding(human, "", f"cannot be compared with answers.csv: {err}"))
        return
    answers = exp.file(round_index, "answers.csv")
    for line, (want, got) in enumerate(zip(expected, found), start=2):
        got = {column: got.get(column, "") for column in ANSWER_COLUMNS}
        if want != got:
            findings.append(Finding(answers, f"line {line}", f"is {got}, but {human.name} answers "
                                                             f"{want['query_id']} with {want}"))
    if len(expected) != len(found):
        findings.append(Finding(answers, "", f"{len(found)} answers, {human.name} has {len(expected)}"))


def summarise(exp: Experiment, round_index: int, table: Table | None, given: Table | None,
              store: LabelStore | None) -> RoundSummary:
    """The round's row of the audit table (costs from the replayed store)."""
    summary = RoundSummary(exp.name, round_index)
    if table is not None:
        summary.asked = len(table["query_id"])
    if given is not None:
        skipped = np.asarray(given["answer"]) == SKIP
        summary.skipped, summary.answered = int(skipped.sum()), int((~skipped).sum())
        who = Counter("simulated" if s == "oracle" else (a or "?") for s, a in zip(given["source"], given["annotator"]))
        summary.answered_by = ", ".join(f"{name} ({n})" if len(who) > 1 else name for name, n in who.most_common())
    if store is not None and store["round_clicks"].size > round_index:
        summary.clicks = float(store["round_clicks"][round_index])
        summary.seconds = float(store["round_seconds"][round_index])
        summary.cost_source = _source(store["round_cost_source"][round_index])
    return summary


def check_metrics(exp: Experiment, round_index: int, model: str | None, store: LabelStore | None,
                  findings: list[Finding]) -> float | None:
    """``metrics.json`` holds ``evaluation.json``'s scores, the round's model, the replayed store's cost and
    the experiment's name, unit and strategy. Returns its test mIoU."""
    path = exp.file(round_index, "metrics.json")
    metrics = read_json(path, findings)
    evaluation = read_json(exp.file(round_index, "evaluation.json"), findings)
    if metrics is None:
        return None
    expected: dict[str, Any] = {"round": round_index, "experiment": exp.name,
                                **{key: exp.settings[key] for key in ("unit", "strategy")}}
    if evaluation is not None:
        expected.update({k: v for k, v in evaluation.items() if k not in ("per_class_iou", "confusion_matrix")})
        for key in ("per_class_iou", "confusion_matrix"):
            if evaluation.get(key) != metrics.get(key):
                findings.append(Finding(path, key, "differs from evaluation.json's"))
    if model is not None:
        expected["model"] = model
    if store is not None:
        expected.update({"labelled_pixels": labelled_pixels(store), "clicks": store.clicks,
                         "seconds": store.seconds, "hours": store.seconds / 3600.0, "cost_source": store.cost_source})
    findings += [Finding(path, "", text) for text in differing_keys(expected, metrics)]
    return metrics.get("miou")


def round_job(exp: Experiment, round_index: int) -> Job:
    """The job that answered and stored the round: its dataset, configured costs and files."""
    files = {**plan.resource_files(exp.config, exp.name), **plan.side_files(exp.config, exp.name, round_index)}
    return Job(exp.dataset, {"costs": exp.settings["costs"]}, round_index, files)


def check_digest(exp: Experiment, round_index: int, with_models: bool, findings: list[Finding],
                 unchecked: list[int]) -> None:
    """``train_log.json``'s ``training_digest`` is the digest of the inputs it names, recomputed from the
    round's ``labels.npz``, the dataset and the settings. Training that reads the previous model (sieving)
    is recomputed only ``with_models`` (it imports torch); else its round is added to ``unchecked``."""
    from alseg.model_job import training_inputs

    path = exp.file(round_index, "train_log.json")
    log = read_json(path, findings)
    if log is None:
        return
    unit = unit_named(exp.settings["unit"])
    if unit.train_reads_previous_model(exp.settings, round_index) and not with_models:
        unchecked.append(round_index)
        return
    inputs = plan.train_inputs(exp.config, exp.name, round_index)
    files = {k: v for k, v in inputs.items() if k not in ("dataset", "labels", "init_model", "twin_model", "twin_log")}
    job = Job(exp.dataset, plan.train_settings(exp.config, exp.name, round_index), round_index, files)
    try:
        digest = training_inputs(job, load_labels(exp.file(round_index, "labels.npz")), inputs.get("init_model"),
                                 version=str(log.get("alseg_version"))).digest
    except (OSError, ValueError) as err:
        findings.append(Finding(path, "training_digest", f"cannot be recomputed: {err}"))
        return
    if not same_value(digest, log.get("training_digest")):
        findings.append(Finding(path, "training_digest", f"{log.get('training_digest')} is not the digest of the "
                                f"inputs it names ({digest}: labels.npz, the dataset, the model and schedule)"))

