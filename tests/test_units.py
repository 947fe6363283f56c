"""The query-unit interface: the registry, what each step reads, and the structure the units keep."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO

from alseg import plan
from alseg.config import load_schema, resolve_config
from alseg.labels import LabelStore
from alseg.units import ROW_UNITS, UNITS, QueryUnit, known_pairs, labelled_pixels, unit_named, unit_of_row
from alseg.units.base import Job

SRC = REPO / "src" / "alseg"


def test_every_unit_is_found_and_named_once():
    assert {"pixel", "superpixel", "binary", "full"} <= set(UNITS)
    assert all(isinstance(unit, QueryUnit) and name == unit.name for name, unit in UNITS.items())
    assert set(ROW_UNITS) == {unit.row_unit for unit in UNITS.values()}
    assert unit_of_row("image") is UNITS["full"] and unit_named("pixel") is UNITS["pixel"]
    with pytest.raises(ValueError, match="unknown query unit 'voxel'; the units are"):
        unit_named("voxel")
    with pytest.raises(ValueError, match="unknown query unit 'voxel' in a query table"):
        unit_of_row("voxel")


def test_the_schema_lists_the_units_and_their_strategies():
    experiment = load_schema()["$defs"]["experiment"]["properties"]
    assert set(experiment["unit"]["enum"]) == set(UNITS)
    strategies = {s for unit in UNITS.values() for s in unit.strategies}
    assert set(experiment["strategy"]["enum"]) == strategies
    for unit in UNITS.values():  # each unit's strategies are named in the schema's description
        assert all(s in experiment["strategy"]["description"] for s in unit.strategies), unit.name


def test_store_arrays_belong_to_one_unit_each():
    names = [name for unit in UNITS.values() for name in unit.store_arrays]
    assert len(names) == len(set(names))
    store = LabelStore()
    for unit in UNITS.values():
        for name, dtype in unit.store_arrays.items():
            assert store[name].dtype == np.dtype(dtype) and store[name].size == 0
        assert unit.labelled_pixels(store) == 0
    assert labelled_pixels(store) == 0 and not known_pairs(store, 3, 4).any()


def config(**experiments) -> dict:
    base = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    base["experiments"] = experiments
    return resolve_config(base)


def test_round_0_of_every_strategy_reads_the_same_settings():
    """Changing an experiment's strategy reruns nothing of round 0 but its metrics (round 0 is random)."""
    units = {
        "pixel": ("random", "entropy"), "superpixel": ("random", "class_balanced"), "binary": ("rr", "greedy"),
    }
    for unit, (first, second) in units.items():
        cfg = config(a={"unit": unit, "strategy": first}, b={"unit": unit, "strategy": second})
        for step in (plan.select_settings, plan.answer_settings, plan.train_settings):
            assert step(cfg, "a", 0) == step(cfg, "b", 0), (unit, step.__name__)
        assert cfg["round0_twins"] == {"b": "a"}  # and b's round 0 is a's model (when its training is the same)
        assert plan.select_settings(cfg, "a", 1) != plan.select_settings(cfg, "b", 1)
        assert plan.metrics_description(cfg, "a") != plan.metrics_description(cfg, "b")


def test_steps_read_only_the_settings_of_what_they_do():
    cfg = config(sp={"unit": "superpixel", "strategy": "class_balanced", "superpixel": {"sieve": False}},
                 bin={"unit": "binary", "strategy": "greedy"}, px={"strategy": "margin"})
    # the costs of the units a round asks, nothing else
    assert set(plan.answer_settings(cfg, "px", 1)["costs"]) == {"pixel"}
    assert set(plan.answer_settings(cfg, "bin", 0)["costs"]) == {"pixel"}  # its initial set: random pixels
    assert set(plan.answer_settings(cfg, "bin", 1)["costs"]) == {"binary"}
    # sieving settings only where sieving reads them; answer losses only once there are answers
    assert plan.train_settings(cfg, "sp", 1)["superpixel"] == {"sieve": False}
    assert "superpixel" not in plan.train_settings(cfg, "sp", 0)
    assert "binary" not in plan.train_settings(cfg, "bin", 0) and "loss" in plan.train_settings(cfg, "bin", 1)["binary"]
    assert "loss" not in plan.select_settings(cfg, "bin", 1)["binary"]
    # files: the dump only where selection reads it, the superpixels wherever the unit reads them
    assert "inference" in plan.select_inputs(cfg, "px", 1) and "inference" not in plan.select_inputs(cfg, "px", 0)
    assert plan.select_inputs(cfg, "sp", 0)["superpixels"].endswith("synthetic.superpixels-seeds-256.h5")
    assert set(plan.side_files(cfg, "sp", 2)) == {"regions"} and plan.side_files(cfg, "px", 2) == {}
    assert "regions" in plan.update_inputs(cfg, "sp", 1) and "previous_model" not in plan.train_inputs(cfg, "sp", 1)


def test_job_names_a_missing_file():
    job = Job("data.h5", {"unit": "pixel", "seed": 0}, 3)
    with pytest.raises(ValueError, match="round 3: this step of a pixel experiment needs round 2's inference dump"):
        job.file("inference")
    assert job.optional_file("inference") is None and job.seed("x") == job.seed("x") != job.seed("y")


def _module_imports(path: Path) -> set[str]:
    """The alseg modules a file imports at module level (imports inside functions run lazily)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If):  # TYPE_CHECKING blocks import nothing at run time
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("alseg"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("alseg")}
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_cycle_among_the_package_modules():
    graph = {_module_name(p): _module_imports(p) for p in SRC.rglob("*.py")}
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            target = target if target in graph else target.rsplit(".", 1)[0]  # a name imported from a package
            if state.get(target) == 1:
                pytest.fail("import cycle: " + " -> ".join([*trail[trail.index(target):], target]))
            if target in graph and not state.get(target):
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(graph):
        if not state.get(module):
            visit(module, [module])


def test_no_module_over_500_lines():
    long = {str(p.relative_to(REPO)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"modules over 500 lines: {long}"


def test_bookkeeping_steps_do_not_import_torch_nor_superpixel_computing():
    """Every bookkeeping job pays its imports: torch (~1.5 s) and the superpixel methods (scikit-image,
    scipy.ndimage: ~0.7 s) belong to the jobs that use them."""
    code = ("import sys, alseg.steps, alseg.plan, alseg.answers, alseg.human, alseg.config, alseg.annotate, "
            "alseg.annotate.labelstudio, alseg.units; "
            "sys.exit(','.join(m for m in ('torch', 'alseg.superpixel_methods') if m in sys.modules) or None)")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, "a bookkeeping step imports what it does not use: " + done.stderr


def test_the_train_params_keep_their_keys_and_order():
    """Snakemake compares a rule's params as written, key order included: a reordered or new key reruns every
    model job of every existing run. One shard and one training process add nothing to them."""
    cfg = config(px={"strategy": "margin", "inference": {"shards": 1}, "training": {"gpus": 1}})
    settings = plan.train_settings(cfg, "px", 1)
    assert list(settings) == ["unit", "seed", "model", "training", "inference", "acquisition", "dump"]
    assert "gpus" not in settings["training"] and "shards" not in settings["inference"]
    more = config(px={"strategy": "margin", "inference": {"shards": 2}, "training": {"gpus": 2}})
    assert plan.train_settings(more, "px", 1)["training"]["gpus"] == 2
    assert plan.train_settings(more, "px", 1)["inference"]["shards"] == 2
