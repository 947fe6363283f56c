"""What an audit reads: the experiments of a results folder, their rounds' files, and what a check found."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from alseg import plan
from alseg.config import ConfigError, deep_merge, resolve_config

PathLike = str | os.PathLike[str]

_ROUND_DIR = re.compile(r"round_(\d+)")


@dataclass(frozen=True)
class Finding:
    """A disagreement between a run's files: the file, where in it (``line 5 (r3-000003)``, an array's
    name, a key; empty for the whole file) and what disagrees."""

    file: Path
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where + ': ' if self.where else ''}{self.message}"


@dataclass
class Experiment:
    """One experiment of a run: its settings (merged, as the workflow resolved them) and its rounds."""

    name: str
    config: dict[str, Any]
    rounds: list[int] = field(default_factory=list)

    @property
    def settings(self) -> dict[str, Any]:
        return self.config["experiments"][self.name]

    @property
    def folder(self) -> Path:
        return Path(self.config["results"]) / self.name

    def file(self, round_index: int, name: str) -> Path:
        """``<results>/<experiment>/round_<r>/<name>``."""
        return Path(plan.round_file(self.config, self.name, round_index, name))

    @property
    def dataset(self) -> Path:
        return Path(plan.dataset_file(self.config, self.name))


def load_run_config(configfiles: Sequence[PathLike], results: PathLike) -> dict[str, Any]:
    """The workflow config of a run as the workflow resolved it, with ``results`` as given.

    ``configfiles`` are merged in order, as Snakemake merges ``--configfile`` files; none: ``config.yaml``
    of the working directory (the workflow's own).
    """
    paths = [Path(p) for p in configfiles] or [Path("config.yaml")]
    merged: dict[str, Any] = {}
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (name the run's config with --configfile)")
        try:
            merged = deep_merge(merged, yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
    merged.setdefault("round", 0)
    config = resolve_config(merged)
    config["results"] = str(results)
    return config


def run_experiments(config: dict[str, Any], names: Sequence[str] = ()) -> tuple[list[Experiment], list[str]]:
    """The experiments of the config that have a results folder (only ``names`` if given), each with the
    rounds it has ``queries.csv`` for; and notes on what is not audited (folders of no configured
    experiment).

    Raises
    ------
    ConfigError
        A name in ``names`` that is not an experiment of the config.
    """
    unknown = [n for n in names if n not in config["experiments"]]
    if unknown:
        raise ConfigError(f"--experiment {', '.join(unknown)}: not an experiment of the config "
                          f"({', '.join(config['experiments'])})")
    root = Path(config["results"])
    experiments = []
    for name in names or list(config["experiments"]):
        rounds = sorted(int(m.group(1)) for d in (root / name).glob("round_*")
                        if (m := _ROUND_DIR.fullmatch(d.name)) and (d / "queries.csv").is_file())
        if rounds:
            experiments.append(Experiment(name, config, rounds))
    known = set(config["experiments"]) | {"datasets", "logs"}
    notes = [f"{d}: no experiment of the config is named {d.name!r}; not audited"
             for d in sorted(root.iterdir()) if d.is_dir() and d.name not in known and any(d.glob("round_*"))] \
        if root.is_dir() else []
    return experiments, notes


def read_json(path: Path, findings: list[Finding]) -> dict[str, Any] | None:
    """A JSON file's object, or None with a finding when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        findings.append(Finding(path, "", "missing"))
        return None
    except (OSError, ValueError) as err:
        findings.append(Finding(path, "", f"cannot read it: {err}"))
        return None
    if not isinstance(data, dict):
        findings.append(Finding(path, "", "not a JSON object"))
        return None
    return data


def same_value(a: Any, b: Any, rel: float = 1e-9) -> bool:
    """Equal values, numbers within ``rel`` (CSV cells as strings compare as the numbers they hold; an
    empty cell equals None)."""
    a, b = (None if x in ("", None) else x for x in (a, b))
    if a is None or b is None:
        return a is b
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)
    return x == y or abs(x - y) <= rel * max(abs(x), abs(y))


def differing_keys(expected: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """The keys of ``expected`` whose value in ``found`` differs (:func:`same_value`), as
    ``key is X, expected Y`` (Y: what the run's other files give)."""
    return [f"{key} is {found.get(key)!r}, expected {value!r}" for key, value in expected.items()
            if not same_value(value, found.get(key))]
