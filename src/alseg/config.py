"""The workflow config: built-in defaults, per-experiment merging and validation.

An experiment's settings come from three layers, later ones winning key by key (deep merge):
``BUILTIN_DEFAULTS`` (this module), the config's ``defaults`` section, then the experiment's own entry.
The merged experiment is validated against ``$defs/experiment`` of the JSON schema in
``workflow/schemas/config.schema.yaml``; every problem is reported with where it is in the config.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from alseg.units import UNITS

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

#: PixelPick's CamVid training augmentation. The single source: ``alseg.augment`` imports it.
AUGMENT_DEFAULTS: dict[str, Any] = {
    "scale": [0.5, 2.0],
    "crop": None,
    "flip": True,
    "color_jitter": 0.3,
    "grayscale": 0.1,
    "blur": 0.1,
}

#: The official PixelPick CamVid schedule (README, "Models and training"). The single source: ``alseg.train`` imports
#: it (all keys but ``warm_start``, which the workflow decides).
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 50,
    "batch_size": 4,
    "lr": 5e-4,
    "backbone_lr": 5e-5,
    "weight_decay": 2e-4,
    "milestones": [20, 40],
    "gamma": 0.1,
    "val_every": 1,
    "iterations_per_epoch": None,
    "warm_start": False,
    "amp": True,
    "device": "auto",
    "loader_threads": 2,
    "eval_batch_size": 8,
    "augment": AUGMENT_DEFAULTS,
}

#: Superpixel experiments (``unit: superpixel``; docs/superpixels.md). These defaults are the plain
#: superpixel baseline "SP" (Cai et al.): SEEDS at 256 px per superpixel, no merging, no sieving; the
#: merge and sieve values are the official Adaptive Superpixel ones (eps 0.1, Kneedle on 20 points of
#: regions of >= 512 px).
SUPERPIXEL_DEFAULTS: dict[str, Any] = {
    "method": "seeds",
    "pixels_per_superpixel": 256,
    "merge": False,
    "eps": 0.1,
    "merge_fraction": 1.0,
    "sieve": False,
    "sieve_min_size": 512,
    "sieve_points": 20,
    "class_share": "region",
    "overlays": 4,
}

#: Binary experiments (``unit: binary``; docs/binary_queries.md): the paper's C_max, alpha and lambda;
#: HiGHS (the ``highspy`` dependency) as the LP solver, since PuLP 4 no longer bundles CBC; the answer
#: losses' weights and log-sum-exp sharpness (``alseg.binary_loss``): r = 20 rather than the function's 5,
#: measured by benchmarks/binary_answer_losses.py (docs/binary_queries.md).
BINARY_DEFAULTS: dict[str, Any] = {
    "c_max": 5,
    "alpha": 1.0,
    "lambda": 1.0,
    "solver": "highs",
    "time_limit": None,
    "confidence_scaling": "minmax",
    "loss": {"absent_weight": 1.0, "presence_weight": 1.0, "lse_r": 20.0},
}

#: Image tags (``unit: tags``; docs/tags.md): the candidate pool of the ``diverse`` strategy (this many times
#: the budget, the most uncertain images), and the image-level answer losses, as the binary unit's.
TAGS_DEFAULTS: dict[str, Any] = {"candidates": 4, "loss": dict(BINARY_DEFAULTS["loss"])}

#: Seconds per answer from the papers (README, "Configuration"; docs/binary_queries.md, docs/tags.md): PixelPick's user study, 1.42 s per pixel; a binary
#: answer 3 s (the middle of the Binary Feedback study's 2-4 s); a full-image mask (``costs.image``, the
#: dense initial set of binary experiments) 468 s = 7.8 min, the low end of the 7.8-37.5 min range, so
#: that the saving of cheap queries is not overstated (our images are smaller than those of the studies);
#: an image's tags 1 s per class of the dataset (Bearman et al., ECCV 2016: 20 s per PASCAL VOC image of 20
#: classes) and a click per class marked plus the submit.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "unit": "pixel",
    "strategy": "margin",
    "budget": 10,
    "initial_budget": None,
    "seed": 0,
    "last_round": None,
    "model": {"name": "small_unet", "dropout": 0.1, "weights": None},
    "training": TRAINING_DEFAULTS,
    "acquisition": {"top_percent": 5.0, "mc_passes": 0, "query_void": False},
    "oracle": {"kind": "simulated", "error_rate": 0.0},
    "costs": {"pixel": {"clicks": 1, "seconds": 1.42}, "superpixel": {"clicks": 1, "seconds": 2.0},
              "binary": {"clicks": 1, "seconds": 3.0}, "image": {"clicks": 1, "seconds": 468.0},
              "tags": {"clicks": 1, "seconds_per_class": 1.0}},
    "superpixel": SUPERPIXEL_DEFAULTS,
    "binary": BINARY_DEFAULTS,
    "tags": TAGS_DEFAULTS,
    "initial": {"kind": "pixels", "per_image": 10, "images": None},
    "inference": {"batch_size": 8, "device": "auto"},
}


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
        :func:`references_of`), ``model_threads``, ``round0_twins`` (:func:`round0_twins`; empty when
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
        "round0_twins": round0_twins(experiments) if config.get("share_round0", True) else {},
    }


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
