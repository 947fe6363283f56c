"""The CamVid benchmark's verdicts on the papers' claims (benchmarks/camvid_claims.py) follow the numbers and the
rules of alseg.verdicts: a claim holds only when its paired difference over seeds and rounds is clearly
above zero, one seed gives no verdict, and a sparse-label model above its reference is no "holds"."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
from conftest import REPO

from alseg.report import round_table
from alseg.verdicts import HOLDS, NOT_SHOWN, bootstrap, break_even_seconds, compare, ratio_of_means


def _benchmark_module(name: str):
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def camvid_claims():
    return _benchmark_module("camvid_claims")


@pytest.fixture(scope="module")
def camvid():
    return _benchmark_module("camvid")


def claims(camvid_claims, groups: dict[str, list[list[float]]], hours: dict[str, float] | None = None, classes=None,
           tmp_path=None, per_class: dict[str, list[dict[str, float]]] | None = None, budget: int = 10):
    """Claims over ``groups``: group -> one mIoU curve per seed (seeds 0, 1, ...); each round costs 100 clicks
    and ``hours[group]`` hours (default 1), and asks ``budget`` pixels per image."""
    cfg = {"experiments": {}}
    curves = {}
    for group, seeds in groups.items():
        for seed, mious in enumerate(seeds):
            name = f"{group}_seed{seed}"
            cfg["experiments"][name] = {"group": group, "seed": seed, "budget": budget,
                                        "costs": {"superpixel": {"seconds": 2.0}}}
            curves[name] = [{"round": r, "miou": m, "hours": (hours or {}).get(group, 1.0) * (r + 1), "clicks": 100.0 * (r + 1),
                             "labelled_pixels": 1.0, **(per_class or {}).get(group, [{}] * len(seeds))[seed]}
                            for r, m in enumerate(mious)]
    rows = round_table(curves, {n: e["group"] for n, e in cfg["experiments"].items()})
    return camvid_claims.Claims(rows, classes or {}, tmp_path, cfg, "", curves)


def test_the_bootstrap_interval_is_paired_and_counts_seeds():
    steady = {s: {r: 0.5 + 0.01 * r + 0.02 for r in range(1, 6)} for s in range(3)}
    base = {s: {r: 0.5 + 0.01 * r for r in range(1, 6)} for s in range(3)}
    diff = compare(steady, base)
    assert diff.verdict == HOLDS and diff.seeds == 3 and diff.pairs == 15
    assert diff.low == pytest.approx(0.02) and diff.high == pytest.approx(0.02)
    assert compare({0: steady[0]}, {0: base[0]}).verdict == NOT_SHOWN  # one seed: no verdict
    swinging = bootstrap({0: np.array([0.05, 0.04]), 1: np.array([-0.06, -0.05]), 2: np.array([0.03, 0.02])})
    assert swinging.verdict == NOT_SHOWN and swinging.low < 0 < swinging.high
    assert "3 seeds x 2 rounds paired" in swinging.text()
    assert break_even_seconds(0.5, 900) == pytest.approx(2.0)


def test_the_ratio_of_means_draws_each_groups_seeds():
    steady = ratio_of_means([0.45, 0.45, 0.45], [0.5, 0.5])
    assert (steady.value, steady.low, steady.high, steady.seeds_a, steady.seeds_b) == (
        pytest.approx(0.9), pytest.approx(0.9), pytest.approx(0.9), 3, 2)
    spread = ratio_of_means([0.40, 0.45, 0.50], [0.48, 0.50, 0.52])
    assert spread.value == pytest.approx(0.9) and 0.8 < spread.low < 0.88 and 0.92 < spread.high <= 1.0
    assert spread.low >= 0.40 / 0.52 - 1e-12 and spread.high <= 0.50 / 0.48 + 1e-12  # within the extremes


def test_margin_must_lead_beyond_the_seed_to_seed_spread(camvid_claims):
    ahead = claims(camvid_claims, {"pixel_margin": [[0.2, 0.4, 0.5]] * 3, "pixel_random": [[0.2, 0.3, 0.4]] * 3})
    verdict = ahead.margin_beats_random()
    assert verdict.startswith("**holds**: margin minus random over rounds 1-2: +10.0 points")
    assert "3 seeds x 2 rounds paired" in verdict and "margin ahead in 2 of 2 rounds" in verdict
    one = claims(camvid_claims, {"pixel_margin": [[0.2, 0.4, 0.5]], "pixel_random": [[0.2, 0.3, 0.4]]})
    assert one.margin_beats_random().startswith("**not shown**") and "one seed: no verdict" in one.margin_beats_random()
    noisy = claims(camvid_claims, {"pixel_margin": [[0.2, 0.45, 0.5], [0.2, 0.25, 0.35], [0.2, 0.42, 0.44]],
                            "pixel_random": [[0.2, 0.3, 0.4], [0.2, 0.33, 0.42], [0.2, 0.31, 0.41]]})
    assert noisy.margin_beats_random().startswith("**not shown**")
    assert claims(camvid_claims, {"pixel_margin": [[0.2]]}).margin_beats_random() == "not yet run"


def test_a_model_above_its_fully_supervised_reference_is_an_unsaturated_reference(camvid_claims):
    """The CPU protocol's margin reached 105% of its reference and was called "holds"; it must not be."""
    full = {"fully_supervised": [[0.41]] * 3}
    above = claims(camvid_claims, {"pixel_margin": [[0.3] * 9 + [0.43]] * 3, **full}).percent_of_full()
    assert above.startswith("**reference not saturated") and "105%" in above and "holds" not in above.split(":")[0]
    near = claims(camvid_claims, {"pixel_margin": [[0.3] * 9 + [0.39]] * 3, **full}).percent_of_full()
    assert near.startswith("**holds**") and "95%" in near
    low = claims(camvid_claims, {"pixel_margin": [[0.3] * 9 + [0.35]] * 3, **full}).percent_of_full()
    assert low.startswith("**does not hold here**") and "85%" in low
    one = claims(camvid_claims, {"pixel_margin": [[0.3] * 9 + [0.39]], "fully_supervised": [[0.41]]}).percent_of_full()
    assert one.startswith("**not shown: one seed of margin**")
    one_reference = claims(camvid_claims, {"pixel_margin": [[0.3] * 9 + [0.39]] * 3, "fully_supervised": [[0.41]]})
    assert one_reference.percent_of_full().startswith("**not shown: one seed of the reference**")
    # 95% on average, but the seeds spread from 88% to 102%: the interval straddles 94%
    spread = claims(camvid_claims, {"pixel_margin": [[0.3] * 9 + [m] for m in (0.36, 0.39, 0.42)], **full}).percent_of_full()
    assert spread.startswith("**not shown: the interval straddles 94%**") and "95%, 95% interval [" in spread
    short = claims(camvid_claims, {"pixel_margin": [[0.3, 0.4]] * 3, **full}).percent_of_full()
    assert short.startswith("**not yet run at 100 px**")
    # 20 px per image per round: 100 px is round 4, whatever comes after it
    twenty = claims(camvid_claims, {"pixel_margin": [[0.3] * 4 + [0.39, 0.2]] * 3, **full}, budget=20).percent_of_full()
    assert twenty.startswith("**holds**") and "at 100 px per image" in twenty and "95%" in twenty


def test_sieving_verdicts_pair_seeds_and_read_the_label_noise_of_the_train_logs(camvid_claims, tmp_path):
    for seed in range(2):
        for r, (noise, before) in enumerate([(0.1, 0.1), (0.08, 0.12), (0.09, 0.11)]):
            folder = tmp_path / f"sp_s_seed{seed}" / f"round_{r}"
            folder.mkdir(parents=True)
            (folder / "train_log.json").write_text(json.dumps(
                {"superpixel": {"label_noise": noise, "label_noise_before_sieve": before}}))
    groups = {"sp_class_balanced": [[0.2, 0.3, 0.4], [0.2, 0.32, 0.41]],
              "sp_s": [[0.2, 0.31, 0.39], [0.2, 0.33, 0.42]]}  # +1, -1 and +1, +1 points: within the noise
    verdict = claims(camvid_claims, groups, tmp_path=tmp_path).sieving()
    assert "lowers label noise: **holds** (noise before minus after sieving, rounds 1 on: +3.0 points of %" in verdict
    assert "raises mIoU: **not shown** (SP+S minus SP, class-balanced, rounds 1 on: +0.5 points" in verdict


def test_adaptive_superpixels_pair_seeds_and_compare_the_training_labels_of_both(camvid_claims, tmp_path):
    """AMSP+S against SP at the same region budget per round: mIoU paired over seeds and rounds 1 on, and the noise
    and pixel count of each one's training labels from its train logs."""
    logs = {"sp_class_balanced": [(0.10, 1000), (0.12, 2000), (0.13, 3000)],
            "amsp_s": [(0.10, 1000), (0.08, 5000), (0.09, 6000)]}
    for group, rounds in logs.items():
        for seed in range(2):
            for r, (noise, pixels) in enumerate(rounds):
                folder = tmp_path / f"{group}_seed{seed}" / f"round_{r}"
                folder.mkdir(parents=True)
                (folder / "train_log.json").write_text(json.dumps(
                    {"superpixel": {"label_noise": noise, "training_pixels": pixels}}))
    groups = {"sp_class_balanced": [[0.2, 0.30, 0.40], [0.2, 0.31, 0.41]],
              "amsp_s": [[0.2, 0.33, 0.43], [0.2, 0.34, 0.44]]}
    verdict = claims(camvid_claims, groups, tmp_path=tmp_path).adaptive_superpixels()
    assert verdict.startswith("raises mIoU: **holds** (AMSP+S minus SP, class-balanced, the same region budget per round, "
                              "rounds 1 on: +3.0 points")
    assert "lowers the training labels' noise: **holds** (SP's minus AMSP+S's, rounds 1 on: +4.0 points of %" in verdict
    assert "AMSP+S trains on 2.0-2.5x SP's pixels per round" in verdict
    worse = claims(camvid_claims, {"sp_class_balanced": groups["amsp_s"], "amsp_s": groups["sp_class_balanced"]},
                   tmp_path=tmp_path).adaptive_superpixels()
    assert worse.startswith("raises mIoU: **does not hold here**")
    assert claims(camvid_claims, {"amsp_s": groups["amsp_s"]}).adaptive_superpixels() == "not yet run"


def test_class_balance_pairs_rare_classes_over_seeds(camvid_claims):
    rare = camvid_claims.RARE_CLASSES
    per_class = {"sp_class_balanced": [{f"iou_{c}": 0.3 for c in rare}] * 2,
                 "sp_uncertainty": [{f"iou_{c}": 0.2 for c in rare}] * 2}
    classes = {"sp_class_balanced": {f"iou_{c}": 0.3 for c in rare}, "sp_uncertainty": {f"iou_{c}": 0.2 for c in rare}}
    groups = {"sp_class_balanced": [[0.2, 0.3]] * 2, "sp_uncertainty": [[0.2, 0.3]] * 2}
    verdict = claims(camvid_claims, groups, classes=classes, per_class=per_class).class_balance()
    assert verdict.startswith("**holds**") and "+10.0 points" in verdict and "2 seeds x 4 rounds" in verdict


def test_binary_hours_print_their_break_even_region_cost(camvid_claims):
    groups = {"binary_greedy": [[0.3, 0.45]] * 2, "sp_class_balanced": [[0.2, 0.45]] * 2}
    verdict = claims(camvid_claims, groups, hours={"binary_greedy": 0.5}).binary_hours()
    # binary reaches 45 after 1.00 h; the regions after 200 regions: cheaper while a region costs > 18 s
    assert verdict.startswith("**holds**") and "after 1.00 estimated hours" in verdict
    assert "cheaper in hours while a region costs more than 18.00 s (estimated: 2.0 s per region" in verdict
    one = claims(camvid_claims, {"binary_greedy": [[0.3, 0.45]], "sp_class_balanced": [[0.2, 0.45]]},
                 hours={"binary_greedy": 0.5})
    assert one.binary_hours().startswith("**not shown: one seed**")
    # the yes/no rounds lose mIoU: binary's best is its round 0 (pixel labels), so no hours are compared
    losing = claims(camvid_claims, {"binary_greedy": [[0.39, 0.36, 0.37], [0.38, 0.37, 0.36]],
                                    "sp_class_balanced": [[0.38, 0.41, 0.43]] * 2}).binary_hours()
    assert losing.startswith("**does not hold here**: no yes/no round lifts binary (greedy)'s mean above its round 0 "
                             "(38.5, the labels every binary round starts from; best later: 36.5 at round 1)")
    assert "rounds 1 on minus round 0: -2.0 points" in losing and "2 seeds x 2 rounds paired" in losing
    assert "cheaper in hours" not in losing and "class-balanced regions reach 43.0 (round 2" in losing
    flat = claims(camvid_claims, {"binary_greedy": [[0.39, 0.40, 0.37], [0.38, 0.36, 0.37]],
                                  "sp_class_balanced": [[0.38, 0.41, 0.43]] * 2}).binary_hours()
    assert flat.startswith("**not shown: the yes/no rounds add no mIoU**")


def test_binary_selection_must_beat_the_better_baseline_in_every_seed(camvid_claims):
    baselines = {"binary_rr": [[0.3, 0.32, 0.33]] * 2, "binary_ee": [[0.3, 0.31, 0.34]] * 2}
    verdict = claims(camvid_claims, {"binary_lp": [[0.3, 0.33, 0.35]] * 2, "binary_greedy": [[0.3, 0.34, 0.36]] * 2,
                              **baselines}).binary_selection()
    assert verdict.startswith("**holds**") and "LP minus the better of RR and EE: +1.0 points" in verdict
    assert "round 2: LP 35.0, greedy 36.0, RR 33.0, EE 34.0" in verdict
    worse = claims(camvid_claims, {"binary_lp": [[0.3, 0.31, 0.33]] * 2, "binary_greedy": [[0.3, 0.30, 0.33]] * 2,
                            **baselines}).binary_selection()
    assert worse.startswith("**does not hold here**")
    assert claims(camvid_claims, {"binary_lp": [[0.3, 0.4]]}).binary_selection() == "not yet run"
    rr_only = claims(camvid_claims, {"binary_greedy": [[0.3, 0.34, 0.36]] * 2,
                              "binary_rr": baselines["binary_rr"]}).binary_selection()
    assert rr_only.startswith("**holds**") and "greedy minus the better of RR: +2.5 points" in rr_only


def test_a_claim_whose_experiments_were_not_chosen_says_so_instead_of_not_yet_run(camvid_claims):
    """A chunk of a protocol (--experiments binary_greedy binary_rr --no-reference) reports its own claims;
    the others name the group that is not in the invocation; a planned but unfinished one is "not yet run"."""
    chunk = claims(camvid_claims, {"binary_greedy": [[0.3, 0.34, 0.36]] * 2, "binary_rr": [[0.3, 0.32, 0.33]] * 2})
    chunk.planned = {"binary_greedy", "binary_rr"}
    lines = chunk.lines()
    assert lines[-1].endswith(chunk.binary_selection()) and "**holds**" in lines[-1]
    assert lines[1].endswith("not in this report (no pixel_margin, fully_supervised experiment in this invocation)")
    assert lines[5].endswith("not in this report (no sp_class_balanced experiment in this invocation)")
    assert lines[3].endswith("not in this report (no sp_class_balanced, amsp_s experiment in this invocation)")
    chunk.planned |= {"sp_class_balanced"}
    assert chunk.verdict("binary_hours") == "not yet run"
    chunk.planned = {"binary_lp"}
    assert chunk.verdict("binary_selection") == ("not in this report (no binary_rr or binary_ee experiment in "
                                                 "this invocation)")


def test_the_reference_reports_whether_its_best_epoch_is_its_last(camvid, tmp_path):
    def run(name: str, vals: list[float | None]) -> None:
        folder = tmp_path / name / "round_0"
        folder.mkdir(parents=True)
        history = [{"epoch": e + 1, "val_miou": v} for e, v in enumerate(vals)]
        (folder / "train_log.json").write_text(json.dumps({"history": history}))

    run("full_seed0", [None, 0.40, None, 0.55, None, 0.54])
    run("full_seed1", [None, 0.40, None, 0.50, None, 0.56])
    run("margin_seed0", [None, 0.30])
    cfg = {"experiments": {"full_seed0": {"unit": "full"}, "full_seed1": {"unit": "full"},
                           "full_seed2": {"unit": "full"}, "margin_seed0": {"unit": "pixel"}}}
    lines = camvid.reference_convergence(tmp_path, cfg)
    assert len(lines) == 2  # seed 2 has not run, margin is no reference
    assert "full_seed0: best val mIoU 0.5500 at epoch 4 of 6 (last scored 0.5400); converged" in lines[0]
    assert "full_seed1: best val mIoU 0.5600 at epoch 6 of 6" in lines[1] and "may still improve" in lines[1]
