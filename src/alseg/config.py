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

#: The official PixelPick CamVid schedule (DESIGN.md 2.1). The single source: ``alseg.train`` imports
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

#: Seconds per answer from the papers (DESIGN.md 2.4): PixelPick's user study, 1.42 s per pixel.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "unit": "pixel",
    "strategy": "margin",
    "budget": 10,
    "initial_budget": None,
    "seed": 0,
    "model": {"name": "small_unet", "dropout": 0.1, "weights": None},
    "training": TRAINING_DEFAULTS,
    "acquisition": {"top_percent": 5.0, "mc_passes": 0, "query_void": False},
    "oracle": {"error_rate": 0.0},
    "costs": {"pixel": {"clicks": 1, "seconds": 1.42}},
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
        settings), ``compare`` (experiment names in the comparison).

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
    for name, entry in config["experiments"].items():
        merged = deep_merge(defaults, entry or {})
        if merged.get("initial_budget") is None:
            merged["initial_budget"] = merged.get("budget")
        errors += _schema_errors(merged, experiment_schema, f"experiments/{name}")
        if merged.get("dataset") not in config["datasets"]:
            errors.append(
                f"experiments/{name}/dataset: {merged.get('dataset')!r} is not one of the configured "
                f"datasets {sorted(config['datasets'])}"
            )
        experiments[name] = merged
    compare = list(config.get("compare") or experiments)
    unknown = [n for n in compare if n not in experiments]
    if unknown:
        errors.append(f"config/compare: unknown experiments {unknown}")
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    return {
        "round": config["round"],
        "results": config.get("results", "results"),
        "datasets": dict(config["datasets"]),
        "experiments": experiments,
        "compare": compare,
    }


def wildcard_pattern(names: list[str]) -> str:
    """A regex matching exactly one of ``names`` (for Snakemake wildcard constraints)."""
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
