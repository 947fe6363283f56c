import copy

import numpy as np
import pytest
import yaml
from conftest import REPO

from alseg.config import ConfigError, check_round, deep_merge, resolve_config
from alseg.metrics import confusion_matrix, scores_from_confusion


def test_miou_on_a_hand_computed_case():
    target = np.array([0, 0, 1, 1, 2, 255])
    pred = np.array([0, 1, 1, 1, 0, 2])
    cm = confusion_matrix(pred, target, 3, ignore_index=255)
    assert cm.sum() == 5  # the ignored pixel is not counted
    s = scores_from_confusion(cm)
    # class 0: tp 1, union 3; class 1: tp 2, union 3; class 2: tp 0, union 1
    np.testing.assert_allclose(s.iou, [1 / 3, 2 / 3, 0.0])
    assert s.miou == pytest.approx(1 / 3)
    assert s.pixel_accuracy == pytest.approx(3 / 5)


def test_absent_class_is_excluded_from_the_mean():
    cm = confusion_matrix(np.array([0, 0]), np.array([0, 0]), 3)
    s = scores_from_confusion(cm)
    assert s.miou == 1.0 and np.isnan(s.iou[1])
    assert s.per_class(["a", "b", "c"]) == {"a": 1.0, "b": None, "c": None}


def test_confusion_refuses_values_outside_the_classes():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0]), np.array([7]), 3, ignore_index=255)


def default_config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.mark.parametrize("path", sorted((REPO / "benchmarks" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_benchmark_configs_are_valid(path):
    config = yaml.safe_load(path.read_text())
    assert resolve_config(config)["experiments"]


def test_default_config_resolves_with_margin_and_random():
    cfg = resolve_config(default_config())
    strategies = {e["strategy"] for e in cfg["experiments"].values()}
    assert {"margin", "random"} <= strategies
    exp = cfg["experiments"]["pixel_margin"]
    assert exp["training"]["weight_decay"] == 2e-4  # built-in default kept under the config's overrides
    assert exp["initial_budget"] == exp["budget"]


@pytest.mark.parametrize("value", [10.0, "ten", -1, True, None])
def test_round_must_be_a_whole_number(value):
    with pytest.raises(ConfigError, match="round"):
        check_round(value)
    cfg = default_config()
    cfg["round"] = value
    with pytest.raises(ConfigError, match="round"):
        resolve_config(cfg)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["experiments"]["pixel_margin"].update(strategy="best"), "experiments/pixel_margin/strategy"),
        (lambda c: c["experiments"]["pixel_margin"].update(dataset="nope"), "not one of the configured"),
        (lambda c: c["defaults"].update(budget=0), "budget"),
        (lambda c: c["defaults"]["training"].update(epochs="many"), "training/epochs"),
        (lambda c: c["datasets"].update(bad={"kind": "imagenet"}), "datasets/bad/kind"),
        (lambda c: c.update(typo=1), "typo"),
        (lambda c: c["experiments"].update({"datasets": {}}), "datasets"),
        (lambda c: c.update(model_threads=0), "model_threads"),
    ],
)
def test_bad_config_is_rejected_with_its_location(edit, message):
    cfg = copy.deepcopy(default_config())
    edit(cfg)
    with pytest.raises(ConfigError, match=message):
        resolve_config(cfg)


def test_deep_merge_overrides_key_by_key():
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    assert deep_merge(base, {"a": {"c": 5}}) == {"a": {"b": 1, "c": 5}, "d": 3}
    assert base["a"]["c"] == 2


def test_official_mc_dropout_config():
    """``acquisition.mc_mode: official``: the official dropout placement and T = 20; pixel unit only; the
    default stays the mean softmax of ``mc_passes`` passes with the model as configured."""
    from alseg.mc_dropout import mc_passes

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    default = resolve_config(cfg)["experiments"]
    assert all(e["acquisition"]["mc_mode"] == "mean_softmax" and "encoder_dropout" not in e["model"]
               for e in default.values())
    name = next(n for n, e in default.items() if e["unit"] == "pixel")
    edited = copy.deepcopy(cfg)
    edited["experiments"][name] = {**(edited["experiments"][name] or {}), "acquisition": {"mc_mode": "official"}}
    official = resolve_config(edited)["experiments"][name]
    assert official["model"]["encoder_dropout"] == 0.2 and official["model"]["dropout"] == 0.0
    assert mc_passes(official["acquisition"]) == 20
    assert mc_passes({**official["acquisition"], "mc_passes": 5}) == 5
    assert mc_passes(default[name]["acquisition"]) == 0
    binary = next(n for n, e in default.items() if e["unit"] == "binary")
    edited["experiments"][binary] = {**(edited["experiments"][binary] or {}), "acquisition": {"mc_mode": "official"}}
    with pytest.raises(ConfigError, match="official is PixelPick's MC dropout"):
        resolve_config(edited)
