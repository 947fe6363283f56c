"""Benchmark comparisons: seed groups, the fully supervised reference (unit: full) and the report tables."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import REPO

from alseg import steps
from alseg.config import ConfigError, experiment_last_round, resolve_config
from alseg.data import dataset_info, load_split
from alseg.data.prepared import prepare_dataset
from alseg.labels import load_labels
from alseg.queries import read_queries
from alseg.report import (
    _draw_axis,
    curve_styles,
    mean_interval,
    per_class_table,
    plot_axis,
    read_rows,
    round_table,
)
from alseg.report_markdown import markdown_summary
from alseg.units import labelled_pixels

TINY = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())


def config_with(experiments: dict, **top) -> dict:
    config = copy.deepcopy(TINY)
    config["experiments"] = experiments
    config.update(top)
    return config


def test_seeds_make_one_experiment_per_seed_in_one_group():
    cfg = resolve_config(config_with({"margin": {"strategy": "margin", "seeds": [3, 1]}, "random": {}}))
    assert list(cfg["experiments"]) == ["margin_seed3", "margin_seed1", "random"]
    assert [cfg["experiments"][n]["seed"] for n in ("margin_seed3", "margin_seed1")] == [3, 1]
    assert {cfg["experiments"][n]["group"] for n in ("margin_seed3", "margin_seed1")} == {"margin"}
    assert cfg["experiments"]["random"]["group"] == "random"
    assert "seeds" not in cfg["experiments"]["margin_seed1"]


def test_seeds_in_defaults_replicate_every_experiment_and_compare_takes_group_names():
    cfg = resolve_config(config_with({"margin": {}, "random": {"strategy": "random"}},
                                     defaults={**TINY["defaults"], "seeds": [0, 1]}, compare=["random"]))
    assert sorted(cfg["experiments"]) == ["margin_seed0", "margin_seed1", "random_seed0", "random_seed1"]
    assert cfg["compare"] == ["random_seed0", "random_seed1"]


@pytest.mark.parametrize(
    ("experiments", "top", "message"),
    [
        ({"m": {"seeds": [1, 1]}}, {}, "non-unique"),
        ({"m": {"seeds": "0"}}, {}, "not of type 'array'"),
        ({"m": {"seeds": [0]}, "m_seed0": {}}, {}, "also an experiment's name"),
        ({"m": {}}, {"reference": "nope"}, "config/reference: 'nope'"),
        ({"m": {}}, {"compare": ["nope"]}, "unknown experiment or group 'nope'"),
        ({"f": {"unit": "full", "oracle": {"kind": "human"}}}, {}, "answered from the ground-truth masks"),
        ({"f": {"unit": "full", "strategy": "margin"}}, {}, "not a strategy of unit 'full'"),
    ],
)
def test_bad_groups_references_and_full_experiments_are_rejected(experiments, top, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(config_with(experiments, **top))


def test_full_experiment_stops_at_round_zero_and_is_the_reference_of_its_model():
    wide = {"name": "small_unet", "width": 12}
    cfg = resolve_config(config_with({"full": {"unit": "full"}, "margin": {}, "full_wide": {"unit": "full", "model": wide},
                                      "margin_wide": {"model": wide}, "other": {"training": {"epochs": 3}}}, round=4))
    full = cfg["experiments"]["full"]
    assert full["strategy"] == "dense" and full["initial"]["kind"] == "dense" and full["initial"]["images"] is None
    assert experiment_last_round(cfg["round"], full) == 0
    assert experiment_last_round(cfg["round"], cfg["experiments"]["margin"]) == 4
    assert experiment_last_round(4, {"last_round": 2}) == 2 and experiment_last_round(1, {"last_round": 2}) == 1
    assert cfg["references"] == {"full": "full", "margin": "full", "full_wide": "full_wide",
                                 "margin_wide": "full_wide", "other": None}
    named = resolve_config(config_with({"full": {"unit": "full"}, "margin": {}}, reference="margin"))
    assert named["references"] == {"full": "margin", "margin": "margin"}


def curve(name: str, mious: list[float], pixels: int = 100, per_class: tuple[float, float] = (0.5, 0.5)) -> list[dict]:
    return [{"experiment": name, "round": float(r), "labelled_pixels": float(pixels * (r + 1)),
             "clicks": float(pixels * (r + 1)), "hours": pixels * (r + 1) / 3600, "miou": m,
             "iou_road": per_class[0], "iou_pole": per_class[1]} for r, m in enumerate(mious)]


def test_round_table_gives_mean_spread_and_percent_of_the_reference():
    curves = {"m_seed0": curve("m_seed0", [0.2, 0.4]), "m_seed1": curve("m_seed1", [0.4, 0.6]),
              "full": curve("full", [0.8], pixels=10_000)}
    groups = {"m_seed0": "m", "m_seed1": "m", "full": "full"}
    rows = round_table(curves, groups, {"m": "full", "full": "full"})
    m1 = next(r for r in rows if r["group"] == "m" and r["round"] == 1)
    assert m1["seeds"] == 2 and m1["miou_mean"] == pytest.approx(0.5)
    assert m1["miou_std"] == pytest.approx(np.std([0.4, 0.6], ddof=1))
    assert (m1["miou_min"], m1["miou_max"]) == (0.4, 0.6)
    half = 12.7062 * np.std([0.4, 0.6], ddof=1) / np.sqrt(2)  # Student t, 1 degree of freedom, 97.5%
    assert (m1["miou_ci95_low"], m1["miou_ci95_high"]) == (pytest.approx(0.5 - half, abs=1e-4),
                                                           pytest.approx(0.5 + half, abs=1e-4))
    one_seed = next(r for r in rows if r["group"] == "full")
    assert one_seed["miou_ci95_low"] is None and one_seed["miou_ci95_high"] is None
    assert m1["percent_of_reference"] == pytest.approx(62.5) and m1["reference"] == "full"
    assert next(r for r in rows if r["group"] == "full")["percent_of_reference"] == pytest.approx(100)
    assert all(r["percent_of_reference"] is None for r in round_table(curves, groups))


def test_per_class_table_averages_the_final_round_over_seeds_and_markdown_shows_it():
    curves = {"a": curve("a", [0.1, 0.3], per_class=(0.9, 0.1)), "b": curve("b", [0.2, 0.5], per_class=(0.7, 0.3))}
    classes = per_class_table(curves, {"a": "g", "b": "g"})
    assert classes == [{"group": "g", "round": 1, "seeds": 2, "miou": pytest.approx(0.4),
                        "iou_road": pytest.approx(0.8), "iou_pole": pytest.approx(0.2)}]
    text = markdown_summary(round_table(curves, {"a": "g", "b": "g"}), classes)
    assert "| g | 2 |  | 15.0 ± 7.1 | 40.0 ± 14.1 |" in text
    assert "| g | 2 | [-48.5, 78.5] | [-87.1, 167.1] |" in text  # 95% intervals of the mean: two seeds, t = 12.7
    assert "| g | 1 | 40.0 | 80.0 | 20.0 |" in text


def test_the_cost_tables_say_whether_the_hours_were_measured_or_estimated():
    def with_source(rows: list[dict], source: str | None) -> list[dict]:
        return [{**row, "cost_source": source} for row in rows]

    curves = {"people": with_source(curve("people", [0.2, 0.4]), "measured"),
              "sim": curve("sim", [0.2, 0.3]),  # a curve from before cost_source: estimated
              "both_seed0": with_source(curve("both_seed0", [0.2, 0.4]), "measured"),
              "both_seed1": with_source(curve("both_seed1", [0.2, 0.4]), "estimated")}
    rows = round_table(curves, {"both_seed0": "both", "both_seed1": "both"})
    assert {row["group"]: row["cost_source"] for row in rows} == {"people": "measured", "sim": "estimated",
                                                                  "both": "mixed"}
    text = markdown_summary(rows, [])
    assert "| group | round | labelled pixels | clicks | hours | hours from |" in text
    assert "| people | 1 | 200 | 200 | 0.06 | measured |" in text
    assert "| sim | 1 | 200 | 200 | 0.06 | estimated |" in text and "| both | 1 | 200 | 200 | 0.06 | mixed |" in text


def test_the_interval_of_the_mean_narrows_with_seeds_at_the_same_spread():
    three, ten = mean_interval([0.40, 0.42, 0.44]), mean_interval([0.40, 0.42, 0.44] * 3 + [0.42])
    assert three == (pytest.approx(0.42 - 4.3027 * 0.02 / np.sqrt(3), abs=1e-5),
                     pytest.approx(0.42 + 4.3027 * 0.02 / np.sqrt(3), abs=1e-5))
    assert ten[1] - ten[0] < (three[1] - three[0]) / 3
    assert mean_interval([0.5]) is None and mean_interval([]) is None


def test_axis_plot_is_written(tmp_path):
    curves = {"a": curve("a", [0.1, 0.3]), "b": curve("b", [0.2, 0.5]), "full": curve("full", [0.9])}
    out = tmp_path / "hours.png"
    plot_axis(curves, "hours", out, {"a": "g", "b": "g", "full": "full"}, {"g": "full", "full": "full"})
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_every_curve_of_a_benchmark_gets_its_own_colour_and_marker():
    groups = [f"strategy_{i}" for i in range(14)]
    styles = curve_styles(groups)
    assert list(styles) == groups
    assert len({colour for colour, _ in styles.values()}) == 14  # not the default cycle's 10
    assert len({marker for _, marker in list(styles.values())[:10]}) == 10


def test_labelled_pixels_axis_turns_logarithmic_when_regions_dwarf_pixels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def scale(pixels: list[float]) -> str:
        rows = [{"group": f"g{i}", "round": 0, "seeds": 1, "miou_mean": 0.3, "labelled_pixels": p}
                for i, p in enumerate(pixels)]
        fig, ax = plt.subplots()
        _draw_axis(ax, rows, "labelled_pixels")
        plt.close(fig)
        return ax.get_xscale()

    assert scale([3670, 1_400_000]) == "log"
    assert scale([3670, 36_700]) == "linear"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synthetic.h5"
    prepare_dataset({"kind": "synthetic", "seed": 0, "n_train": 6, "n_val": 2, "n_test": 2, "height": 24,
                     "width": 24}, path)
    return path


def test_full_round_labels_every_pool_image_densely_at_the_image_cost(dataset, tmp_path):
    exp = resolve_config(config_with({"full": {"unit": "full"}}))["experiments"]["full"]
    queries, answers, labels = tmp_path / "queries.csv", tmp_path / "answers.csv", tmp_path / "labels.npz"
    assert steps.select_queries(dataset, exp, 0, queries) == 6
    steps.answer_queries(dataset, queries, exp, 0, answers)
    steps.update_labels(dataset, queries, answers, 0, labels, costs=exp["costs"])
    table = read_queries(queries)
    assert set(table["unit"]) == {"image"} and list(table["image_index"]) == list(range(6))
    store = load_labels(labels)
    masks = load_split(dataset, "train").masks
    non_void = int((masks != dataset_info(dataset).ignore_index).sum())
    assert labelled_pixels(store) == non_void and store["pixel_image"].size == 0
    assert list(store["dense_image"]) == list(range(6))
    assert store.seconds == pytest.approx(6 * exp["costs"]["image"]["seconds"])
    with pytest.raises(ValueError, match="round 0 only"):
        steps.select_queries(dataset, exp, 1, tmp_path / "q1.csv")


def test_workflow_reports_seed_groups_against_the_fully_supervised_reference(tmp_path):
    config = config_with({"margin": {"strategy": "margin", "seeds": [0, 1]}, "full": {"unit": "full"}})
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(path), "--cores", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-5000:]
    results = tmp_path / "results"
    assert sorted(p.name for p in (results / "full").glob("round_*")) == ["round_0"]
    full = json.loads((results / "full" / "round_0" / "metrics.json").read_text())
    assert full["unit"] == "full" and full["labelled_pixels"] > 8 * 32 * 32 * 0.5
    rounds = read_rows(results / "comparison_rounds.csv")
    assert sorted((r["group"], r["round"], r["seeds"]) for r in rounds) == [
        ("full", 0, 1), ("margin", 0, 2), ("margin", 1, 2)]
    final = [json.loads((results / f"margin_seed{s}" / "round_1" / "metrics.json").read_text())["miou"]
             for s in (0, 1)]
    margin_final = next(r for r in rounds if r["group"] == "margin" and r["round"] == 1)
    assert margin_final["miou_mean"] == pytest.approx(np.mean(final))
    assert margin_final["percent_of_reference"] == pytest.approx(100 * np.mean(final) / full["miou"])
    assert len(read_rows(results / "per_class_iou.csv")) == 2
    assert "| margin | 2 |" in (results / "comparison.md").read_text()
    for axis in ("labelled_pixels", "clicks", "hours"):
        assert (results / f"comparison_{axis}.png").stat().st_size > 5000



def test_dense_images_add_their_pixels_and_are_never_paid_twice():
    from alseg.labels import LabelStore
    from alseg.units.full import add_dense_images
    from alseg.units.pixel import add_pixel_answers

    store = add_pixel_answers(LabelStore(), 0, [0], [1], [1], [2])
    store = add_dense_images(store, 1, [3, 5], [100, 90])
    assert labelled_pixels(store) == 1 + 190 and list(store["dense_round"]) == [1, 1]
    assert store["pixel_image"].size == 1
    kept = add_pixel_answers(store, 2, [0], [2], [2], [1])
    assert list(kept["dense_image"]) == [3, 5]  # a pixel round keeps the dense images
    with pytest.raises(ValueError, match="already given"):
        add_dense_images(store, 2, [5], [90])
