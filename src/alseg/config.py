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

#: The strategies each query unit accepts (the schema lists their union).
UNIT_STRATEGIES: dict[str, tuple[str, ...]] = {
    "pixel": ("random", "least_confidence", "margin", "entropy"),
    "superpixel": ("random", "uncertainty", "class_balanced"),
    "binary": ("lp", "greedy", "milp", "rr", "ee"),
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

#: Seconds per answer from the papers (DESIGN.md 2.4): PixelPick's user study, 1.42 s per pixel; a binary
#: answer 3 s (the middle of the Binary Feedback study's 2-4 s); a full-image mask (``costs.image``, the
#: dense initial set of binary experiments) 468 s = 7.8 min, the low end of the 7.8-37.5 min range, so
#: that the saving of cheap queries is not overstated (our images are smaller than those of the studies).
BUILTIN_DEFAULTS: dict[str, Any] = {
    "unit": "pixel",
    "strategy": "margin",
    "budget": 10,
    "initial_budget": None,
    "seed": 0,
    "model": {"name": "small_unet", "dropout": 0.1, "weights": None},
    "training": TRAINING_DEFAULTS,
    "acquisition": {"top_percent": 5.0, "mc_passes": 0, "query_void": False},
    "oracle": {"kind": "simulated", "error_rate": 0.0},
    "costs": {"pixel": {"clicks": 1, "seconds": 1.42}, "superpixel": {"clicks": 1, "seconds": 2.0},
              "binary": {"clicks": 1, "seconds": 3.0}, "image": {"clicks": 1, "seconds": 468.0}},
    "superpixel": SUPERPIXEL_DEFAULTS,
    "binary": BINARY_DEFAULTS,
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
        allowed = UNIT_STRATEGIES.get(str(merged.get("unit")))
        if allowed is not None and merged.get("strategy") not in allowed:
            errors.append(f"experiments/{name}/strategy: {merged.get('strategy')!r} is not a strategy of unit "
                          f"{merged.get('unit')!r} (one of {', '.join(allowed)})")
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
        "model_threads": config.get("model_threads"),
    }


def wildcard_pattern(names: list[str]) -> str:
    """A regex matching exactly one of ``names`` (for Snakemake wildcard constraints)."""
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
