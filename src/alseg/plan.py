"""What each rule of a round reads: its named input files and the settings in its params, asked of the units.

The rules (``rules/round.smk``) are thin: their input and params functions call these with the resolved
config (:func:`alseg.config.resolve_config`), the experiment and the round. A step's params hold exactly the
settings it reads, so that changing one setting reruns only the steps (and experiments) that read it
(Snakemake reruns a job whose params changed). Paths are relative to the working directory, like the
rules' outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alseg.inference_file import dump_file_names
from alseg.units import QueryUnit, unit_named

Config = Mapping[str, Any]


def round_file(config: Config, experiment: str, round_index: int, name: str) -> str:
    """``<results>/<experiment>/round_<r>/<name>``."""
    return f"{config['results']}/{experiment}/round_{round_index}/{name}"


def dataset_file(config: Config, experiment: str) -> str:
    """The prepared dataset of an experiment: ``<results>/datasets/<dataset>.h5``."""
    return f"{config['results']}/datasets/{config['experiments'][experiment]['dataset']}.h5"


def unit_of(config: Config, experiment: str) -> QueryUnit:
    return unit_named(config["experiments"][experiment]["unit"])


def resource_files(config: Config, experiment: str) -> dict[str, str]:
    """The unit's dataset-level files of an experiment (``superpixels``), by name."""
    settings = config["experiments"][experiment]
    return {name: f"{config['results']}/datasets/{file}" for name, file in unit_of(config, experiment)
            .resources(settings).items()}


def side_files(config: Config, experiment: str, round_index: int) -> dict[str, str]:
    """The files a round's selection writes beside ``queries.csv`` (``regions``), by name."""
    return {name: round_file(config, experiment, round_index, file)
            for name, file in unit_of(config, experiment).side_files.items()}


def is_human(config: Config, experiment: str) -> bool:
    return config["experiments"][experiment]["oracle"]["kind"] == "human"


def side_file_groups(config: Config) -> dict[tuple[tuple[str, str], ...], list[str]]:
    """The experiments by the side files their selection writes (one selection rule per group)."""
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for experiment in config["experiments"]:
        groups.setdefault(tuple(sorted(unit_of(config, experiment).side_files.items())), []).append(experiment)
    return groups


# -- selection ---------------------------------------------------------------------------------------------


def select_inputs(config: Config, experiment: str, round_index: int) -> dict[str, str]:
    """The dataset, round r-1's store (``labels``) and dump (``inference``, when the unit reads it), and the
    unit's dataset-level files."""
    settings = config["experiments"][experiment]
    files = {"dataset": dataset_file(config, experiment), **resource_files(config, experiment)}
    if round_index > 0:
        files["labels"] = round_file(config, experiment, round_index - 1, "labels.npz")
        if unit_of(config, experiment).select_reads_dump(settings, round_index):
            dump = inference_files(config, experiment, round_index - 1)
            files["inference"] = dump[0] if len(dump) == 1 else dump
    return files


def select_settings(config: Config, experiment: str, round_index: int) -> dict[str, Any]:
    return unit_of(config, experiment).select_settings(config["experiments"][experiment], round_index)


# -- answers and labels ----------------------------------------------------------------------------------


def answer_inputs(config: Config, experiment: str, round_index: int) -> dict[str, str]:
    """The dataset, the round's queries and side files, and the unit's dataset-level files."""
    return {"dataset": dataset_file(config, experiment),
            "queries": round_file(config, experiment, round_index, "queries.csv"),
            **side_files(config, experiment, round_index), **resource_files(config, experiment)}


def asked_costs(settings: Mapping[str, Any], round_index: int) -> dict[str, Any]:
    """The configured costs of the query units the experiment asks in the round."""
    asked = unit_named(settings["unit"]).asks(settings, round_index)
    return {row: settings["costs"][row] for row in asked if row in settings["costs"]}


def answer_settings(config: Config, experiment: str, round_index: int) -> dict[str, Any]:
    """Simulated: the seed, the oracle's error rate and the costs of the units asked (``kind`` left out, so
    that results from before it existed are kept). Human: a person's answers depend on no setting."""
    settings = config["experiments"][experiment]
    if is_human(config, experiment):
        return {"oracle": {"kind": "human"}}
    return {"seed": settings["seed"], "oracle": {k: v for k, v in settings["oracle"].items() if k != "kind"},
            "costs": asked_costs(settings, round_index)}


def update_inputs(config: Config, experiment: str, round_index: int) -> dict[str, str]:
    """The dataset, the round's queries, answers and side files, and round r-1's store (``previous``)."""
    files = {"dataset": dataset_file(config, experiment),
             "queries": round_file(config, experiment, round_index, "queries.csv"),
             "answers": round_file(config, experiment, round_index, "answers.csv"),
             **side_files(config, experiment, round_index)}
    if round_index > 0:
        files["previous"] = round_file(config, experiment, round_index - 1, "labels.npz")
    return files


# -- the model ---------------------------------------------------------------------------------------------


def training_gpus(config: Config, experiment: str) -> int:
    """How many processes (GPUs) train a round's model (``training.gpus``)."""
    return int(config["experiments"][experiment]["training"].get("gpus", 1))


def inference_shards(config: Config, experiment: str) -> int:
    """How many files a round's inference dump is split into (``inference.shards``)."""
    return int(config["experiments"][experiment]["inference"].get("shards", 1))


def inference_files(config: Config, experiment: str, round_index: int) -> list[str]:
    """The files of round ``round_index``'s inference dump (:func:`alseg.inference_file.dump_file_names`): the
    train job writes ``inference.h5``, the ``infer_shard`` jobs the other shards."""
    return [round_file(config, experiment, round_index, name)
            for name in dump_file_names(inference_shards(config, experiment))]


def infer_inputs(config: Config, experiment: str, round_index: int) -> dict[str, str]:
    """What an ``infer_shard`` job reads: the round's model and what its train job reads to write a dump (the
    dataset, the round's store, the unit's dataset-level files)."""
    return {"model": round_file(config, experiment, round_index, "model.pt"),
            "dataset": dataset_file(config, experiment),
            "labels": round_file(config, experiment, round_index, "labels.npz"),
            **resource_files(config, experiment)}


def train_inputs(config: Config, experiment: str, round_index: int) -> dict[str, str]:
    """The dataset, the round's store, the unit's dataset-level files, round r-1's model where training
    starts from it (``init_model``, ``training.warm_start``) or the unit reads it (``previous_model``), and
    the round-0 twin's model and log (:func:`alseg.config.round0_twins`)."""
    settings = config["experiments"][experiment]
    files = {"dataset": dataset_file(config, experiment),
             "labels": round_file(config, experiment, round_index, "labels.npz"),
             **resource_files(config, experiment)}
    previous = round_file(config, experiment, round_index - 1, "model.pt")
    if round_index > 0 and settings["training"]["warm_start"] is not False:
        files["init_model"] = previous
    if unit_of(config, experiment).train_reads_previous_model(settings, round_index):
        files["previous_model"] = previous
    twin = config["round0_twins"].get(experiment)
    if twin and round_index == 0:
        files["twin_model"] = round_file(config, twin, 0, "model.pt")
        files["twin_log"] = round_file(config, twin, 0, "train_log.json")
    return files


def round_training(training: Mapping[str, Any], round_index: int) -> dict[str, Any]:
    """The schedule round ``round_index`` trains with: ``training``, and in the rounds that start from the
    previous round's model (>= 1) the settings a mapping ``warm_start`` holds over it. ``warm_start`` becomes
    a boolean: whether the experiment's rounds >= 1 start warm."""
    warm = training.get("warm_start", False)
    merged = {**training, "warm_start": warm is not False}
    if isinstance(warm, Mapping) and round_index > 0:
        merged.update(warm)
    return merged


def train_settings(config: Config, experiment: str, round_index: int) -> dict[str, Any]:
    """What training, evaluation and inference read: seed, model, schedule, inference, MC dropout, the unit
    (which groups the dump holds), the unit's own training settings and what its dump reads (``dump``)."""
    settings = config["experiments"][experiment]
    unit = unit_of(config, experiment)
    chosen = {key: settings[key] for key in ("unit", "seed", "model")}
    # one process is the training as it was before data parallelism existed: its runs keep their models
    chosen["training"] = {key: value for key, value in round_training(settings["training"], round_index).items()
                          if key != "gpus" or value != 1}
    # one shard is the dump as it was before shards existed: its runs keep their models
    chosen["inference"] = {key: value for key, value in settings["inference"].items()
                           if key != "shards" or value != 1}
    chosen["acquisition"] = {key: settings["acquisition"][key] for key in ("mc_passes", "mc_mode")}
    dump = unit.dump_settings(settings, round_index)
    return {**chosen, **unit.train_settings(settings, round_index), **({"dump": dump} if dump else {})}


def metrics_description(config: Config, experiment: str) -> dict[str, Any]:
    """What ``metrics.json`` says of the experiment besides its scores and costs."""
    settings = config["experiments"][experiment]
    return {"unit": settings["unit"], "strategy": settings["strategy"]}


def extra_round_targets(config: Config, experiment: str, rounds: range) -> list[str]:
    """The files of every round that rules of the unit's own make (superpixel overlays)."""
    outputs = unit_of(config, experiment).extra_outputs(config["experiments"][experiment])
    return [round_file(config, experiment, r, name) for r in rounds for name in outputs]
