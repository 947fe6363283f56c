"""The CamVid benchmark's verdicts on the papers' claims (benchmarks/camvid.py) follow the numbers."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def camvid():
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("camvid_benchmark", REPO / "benchmarks" / "camvid.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(group: str, mious: list[float], hours_per_round: float = 1.0) -> list[dict]:
    return [{"group": group, "round": r, "miou_mean": m, "hours": hours_per_round * (r + 1)}
            for r, m in enumerate(mious)]


def claims(camvid, table: list[dict], classes=None, tmp_path=None, cfg=None):
    return camvid.Claims(table, classes or {}, tmp_path, cfg or {"experiments": {}}, "")


def test_margin_must_lead_in_every_round_after_round_zero(camvid):
    table = rows("pixel_margin", [0.2, 0.4, 0.5]) + rows("pixel_random", [0.2, 0.3, 0.4])
    assert claims(camvid, table).margin_beats_random().startswith("**holds**")
    table = rows("pixel_margin", [0.2, 0.4, 0.35]) + rows("pixel_random", [0.2, 0.3, 0.4])
    verdict = claims(camvid, table).margin_beats_random()
    assert verdict.startswith("**does not hold here**") and "1 of 2 rounds" in verdict
    assert claims(camvid, rows("pixel_margin", [0.2])).margin_beats_random() == "not yet run"


def test_percent_of_full_is_judged_at_100_pixels_per_image_only(camvid):
    full = rows("fully_supervised", [0.5])
    short = claims(camvid, rows("pixel_margin", [0.3, 0.49]) + full).percent_of_full()
    assert short.startswith("**not yet run at 100 px**") and "98%" in short
    ten = claims(camvid, rows("pixel_margin", [0.3] * 9 + [0.45]) + full).percent_of_full()
    assert ten.startswith("**does not hold here**") and "100 px per image" in ten and "90%" in ten


def test_sieving_verdicts_read_the_label_noise_of_the_train_logs(camvid, tmp_path):
    for r, (noise, before) in enumerate([(0.1, 0.1), (0.08, 0.12), (0.09, 0.11)]):
        folder = tmp_path / "sp_s" / f"round_{r}"
        folder.mkdir(parents=True)
        (folder / "train_log.json").write_text(json.dumps(
            {"superpixel": {"label_noise": noise, "label_noise_before_sieve": before}}))
    cfg = {"experiments": {"sp_s": {"group": "sp_s"}}}
    table = rows("sp_class_balanced", [0.2, 0.3, 0.4]) + rows("sp_s", [0.2, 0.31, 0.39])
    verdict = claims(camvid, table, tmp_path=tmp_path, cfg=cfg).sieving()
    assert "lowers label noise: **holds** (round 1: 12.0% -> 8.0%, round 2: 11.0% -> 9.0%)" in verdict
    assert "raises mIoU: **does not hold here**" in verdict and "+1.0, -1.0" in verdict


def test_class_balance_and_binary_hours(camvid):
    classes = {"sp_class_balanced": {f"iou_{c}": 0.3 for c in camvid.RARE_CLASSES},
               "sp_uncertainty": {f"iou_{c}": 0.2 for c in camvid.RARE_CLASSES}}
    classes["sp_uncertainty"]["iou_Pole"] = 0.4
    assert claims(camvid, [], classes).class_balance().startswith("**partly holds**")
    table = rows("binary_greedy", [0.3, 0.45], hours_per_round=0.5) + rows("sp_class_balanced", [0.2, 0.45])
    verdict = claims(camvid, table).binary_hours()
    assert verdict.startswith("**holds**") and "reaches 45.0 after 1.00" in verdict and "after 2.00 h" in verdict
    # faster to 40, but the regions go on to 45, which binary questions never reach
    table = rows("binary_greedy", [0.3, 0.4], hours_per_round=0.5) + rows("sp_class_balanced", [0.2, 0.45])
    verdict = claims(camvid, table).binary_hours()
    assert verdict.startswith("**partly holds: only up to 40.0 mIoU") and "the regions' 45.0 (round 1, 2.00 h)" in verdict
    table = rows("binary_greedy", [0.3, 0.4], hours_per_round=3) + rows("sp_class_balanced", [0.2, 0.45])
    assert claims(camvid, table).binary_hours().startswith("**does not hold here**")


def test_binary_selection_must_beat_both_baselines(camvid):
    baselines = rows("binary_rr", [0.3, 0.32, 0.33]) + rows("binary_ee", [0.3, 0.31, 0.34])
    table = rows("binary_lp", [0.3, 0.33, 0.35]) + rows("binary_greedy", [0.3, 0.34, 0.36]) + baselines
    verdict = claims(camvid, table).binary_selection()
    assert verdict.startswith("**holds**") and "LP 2 of 2, greedy 2 of 2" in verdict
    assert "round 2: LP 35.0, greedy 36.0, RR 33.0, EE 34.0" in verdict
    # ahead of RR but not of EE at the final round: not a win
    table = rows("binary_lp", [0.3, 0.33, 0.335]) + rows("binary_greedy", [0.3, 0.31, 0.33]) + baselines
    verdict = claims(camvid, table).binary_selection()
    assert verdict.startswith("**does not hold here**") and "LP 1 of 2, greedy 0 of 2" in verdict
    table = rows("binary_lp", [0.3, 0.31, 0.35]) + rows("binary_greedy", [0.3, 0.31, 0.33]) + baselines
    assert claims(camvid, table).binary_selection().startswith("**partly holds**")
    assert claims(camvid, rows("binary_lp", [0.3, 0.4])).binary_selection() == "not yet run"
