"""The workflow config: per-experiment merging and validation.

An experiment's settings come from three layers, later ones winning key by key (deep merge):
``BUILTIN_DEFAULTS`` (:mod:`alseg.defaults`), the config's ``defaults`` section, then the experiment's own
entry.
The merged experiment is validated against ``$defs/experiment`` of the JSON schema in
``config.schema.yaml`` beside this module; every problem is reported with where it is in the config.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from alseg.defaults import BUILTIN_DEFAULTS
from alseg.mc_dropout import OFFICIAL, official_model
from alseg.units import UNITS

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")   # package data: found in an installed alseg too

class ConfigError(ValueError):
    """The workflow config is invalid; the message says where and why."""


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``override``, merging nested mappings key by key (inputs untouched)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_schema(path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """Read the config JSON schema (YAML)."""
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def check_round(value: Any) -> int:
    """Return ``value`` as the last round to run, or raise :class:`ConfigError`.

    Snakemake parses ``--config round=1e1`` as the float 10.0, which a JSON-schema ``integer`` accepts,
    and ``round=ten`` as a string; both are refused here with the form the user should type.
    """
    if value is None:
        raise ConfigError("config has no 'round' (the last round to run): add 'round: 10' to the config file, "
                          "or pass --config round=10")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"config 'round' must be a whole number >= 0 (the last round to run), got {value!r} "
            f"({type(value).__name__}); for example: --config round=10"
        )
    if value < 0:
        raise ConfigError(f"config 'round' must be >= 0, got {value}; for example: --config round=10")
    return value


def _schema_errors(instance: Any, schema: dict[str, Any], where: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    messages = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        path = "/".join(str(p) for p in error.absolute_path)
        messages.append(f"{where}{'/' + path if path else ''}: {error.message}")
    return messages


def resolve_config(config: Mapping[str, Any], schema_path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """Validate ``config`` and return it with every experiment fully merged.

    Returns
    -------
    dict
        ``round`` (int), ``results`` (str), ``datasets`` (as given), ``experiments`` (name -> merged
        settings; an entry with ``seeds`` becomes one experiment per seed, :func:`expand_seeds`),
        ``compare`` (experiment names in the comparison; a group name stands for its experiments),
        ``references`` (group -> the group whose final mIoU is its 100% in the comparison, or None;
        :func:`references_of`), ``model_threads``, ``container``, ``round0_twins`` (:func:`round0_twins`; empty when
        ``share_round0`` is false).

    Raises
    ------
    ConfigError
        Listing every schema violation with its location, an unknown dataset reference, or a bad round.
    """
    schema = load_schema(schema_path)
    check_round(config.get("round"))
    errors = _schema_errors(dict(config), schema, "config")
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))

    defaults = deep_merge(BUILTIN_DEFAULTS, config.get("defaults") or {})
    experiment_schema = {**schema["$defs"]["experiment"], "$defs": schema["$defs"]}
    experiments: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {}
    for entry_name, entry in config["experiments"].items():
        for name, merged in expand_seeds(entry_name, deep_merge(defaults, entry or {})):
            unit = UNITS.get(str(merged.get("unit")))
            if unit is not None:
                unit.complete(merged, entry or {})
            if merged.get("initial_budget") is None:
                merged["initial_budget"] = merged.get("budget")
            errors += _schema_errors(merged, experiment_schema, f"experiments/{name}")
            if unit is not None and merged.get("strategy") not in unit.strategies:
                errors.append(f"experiments/{name}/strategy: {merged.get('strategy')!r} is not a strategy of unit "
                              f"{unit.name!r} (one of {', '.join(unit.strategies)})")
            errors += [f"experiments/{name}/{problem}" for problem in (unit.config_problems(merged) if unit else [])]
            errors += _official_mc_dropout(merged)
            if merged.get("dataset") not in config["datasets"]:
                errors.append(
                    f"experiments/{name}/dataset: {merged.get('dataset')!r} is not one of the configured "
                    f"datasets {sorted(config['datasets'])}"
                )
            if name in experiments:
                errors.append(f"experiments/{entry_name}: its seed copy {name!r} is also an experiment's name")
            experiments[name] = merged
            groups.setdefault(str(merged.get("group")), []).append(name)
    compare: list[str] = []
    for item in config.get("compare") or experiments:
        if item not in experiments and item not in groups:
            errors.append(f"config/compare: unknown experiment or group {item!r}")
        compare += [n for n in groups.get(item, [item]) if n in experiments and n not in compare]
    reference = config.get("reference")
    if reference is not None and reference not in groups:
        errors.append(f"config/reference: {reference!r} is not an experiment or group")
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    return {
        "round": config["round"],
        "results": config.get("results", "results"),
        "datasets": dict(config["datasets"]),
        "experiments": experiments,
        "compare": compare,
        "references": references_of(experiments, reference),
        "model_threads": config.get("model_threads"),
        "container": config.get("container", "alseg.sif"),
        "round0_twins": round0_twins(experiments) if config.get("share_round0", True) else {},
    }


def _official_mc_dropout(merged: dict[str, Any]) -> list[str]:
    """``acquisition.mc_mode: official`` (pixel unit only) sets the model's dropout to the official placement
    (:func:`alseg.mc_dropout.official_model`), in place; the problems, if any."""
    if (merged.get("acquisition") or {}).get("mc_mode") != OFFICIAL:
        return []
    if merged.get("unit") != "pixel":
        return [f"acquisition/mc_mode: official is PixelPick's MC dropout, for unit pixel (not {merged.get('unit')!r})"]
    merged["model"] = official_model(merged.get("model") or {})
    return []


def round0_twins(experiments: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Experiments whose round-0 model may be an earlier experiment's: name -> that experiment's name.

    Round 0 asks random queries whatever the strategy, so experiments that differ only in what they do
    from round 1 on train the same round-0 model. Each maps to the first experiment (in config order)
    with the same dataset, seed, round-0 queries (the unit's
    :meth:`~alseg.units.base.QueryUnit.round0_key`) and oracle, model and training; the train step then
    checks that the training inputs are identical (:func:`alseg.model_job.training_digest`) and trains
    itself when they are not. Experiments answered by people (whose round-0 answers are their own) and
    units that never share (the fully supervised ``full``) neither share nor are shared.
    """
    first: dict[str, str] = {}
    twins: dict[str, str] = {}
    for name, e in experiments.items():
        queries = UNITS[e["unit"]].round0_key(e)
        if queries is None or (e.get("oracle") or {}).get("kind") == "human":
            continue
        key = repr([
            e.get("dataset"), e.get("seed"), queries, (e.get("acquisition") or {}).get("query_void"),
            e.get("oracle"), e.get("model"), {k: v for k, v in (e.get("training") or {}).items() if k != "warm_start"},
        ])
        if key in first:
            twins[name] = first[key]
        else:
            first[key] = name
    return twins


def references_of(experiments: Mapping[str, Mapping[str, Any]], reference: str | None) -> dict[str, str | None]:
    """Each group's reference: the config's ``reference`` for every group, or else the group of the
    fully supervised (``unit: full``) experiments with the same dataset, model and training as the group's
    (None where there is no such group, or more than one)."""
    def setting(e: Mapping[str, Any]) -> str:
        return repr([e.get("dataset"), e.get("model"), e.get("training")])

    full: dict[str, set[str]] = {}
    for e in experiments.values():
        if e.get("unit") == "full":
            full.setdefault(setting(e), set()).add(str(e["group"]))
    references: dict[str, str | None] = {}
    for e in experiments.values():
        found = full.get(setting(e), set())
        references[str(e["group"])] = reference if reference is not None else (
            next(iter(found)) if len(found) == 1 else None)
    return references


def expand_seeds(name: str, merged: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The experiments of one config entry: itself, or one copy per seed of its ``seeds`` list.

    A copy is named ``<name>_seed<s>`` and has ``seed: s``; every copy has ``group: <name>``, so that
    the comparison reports their mean and spread. Without ``seeds``, ``group`` defaults to the name.
    """
    seeds = merged.pop("seeds", None)
    merged.setdefault("group", name)
    if not seeds:
        return [(name, merged)]
    return [(f"{name}_seed{seed}", {**copy.deepcopy(merged), "seed": seed}) for seed in seeds]


def experiment_last_round(config_round: int, experiment: Mapping[str, Any]) -> int:
    """The experiment's last round: the config's ``round``, or its own ``last_round`` where smaller."""
    own = experiment.get("last_round")
    return config_round if own is None else min(config_round, int(own))


def wildcard_pattern(names: list[str]) -> str:
    """A regex matching exactly one of ``names`` (for Snakemake wildcard constraints)."""
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
