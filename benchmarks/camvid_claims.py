"""The papers' claims checked against the CamVid benchmark's numbers (``benchmarks/camvid.py``).

Each claim is a method of :class:`Claims` over one model family's groups; its verdict follows the rules of
:mod:`alseg.verdicts`: a paired comparison over seeds and rounds, no verdict from one seed, a sparse-label
model above its reference reported as an unsaturated reference, a verdict that rests on an estimated cost
printing its break-even cost (docs/verdicts.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from alseg.verdicts import (
    DOES_NOT_HOLD,
    HOLDS,
    LEVEL,
    MIN_SEEDS,
    NOT_SHOWN,
    PairedDifference,
    RatioOfMeans,
    bootstrap,
    break_even_seconds,
    compare,
    paired_differences,
    ratio_of_means,
)

RARE_CLASSES = ["Pole", "SignSymbol", "Pedestrian", "Bicyclist"]
REFERENCE = "fully_supervised"


def superpixel_records(results: Path, names: list[str], cfg: dict) -> dict[int, dict[int, dict[str, Any]]]:
    """Per seed and round, the superpixel record of the experiments' train logs (``train_log.json``:
    labelled and training pixels, label noise before and after sieving)."""
    records: dict[int, dict[int, dict[str, Any]]] = {}
    for name in names:
        for log in sorted((results / name).glob("round_*/train_log.json")):
            record = json.loads(log.read_text()).get("superpixel")
            if record:
                r = int(log.parent.name.split("_")[1])
                records.setdefault(int(cfg["experiments"][name]["seed"]), {})[r] = record
    return records


def _field(records: dict[int, dict[int, dict[str, Any]]], key: str) -> dict[int, dict[int, float]]:
    """Seed -> round -> ``records``' ``key``, rounds 1 on (round 0 has no sieving and no merging)."""
    return {s: {r: float(record[key]) for r, record in rounds.items() if r > 0} for s, rounds in records.items()}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


class Claims:
    """The papers' claims, each checked against one model family's groups (names ``<prefix><group>``).

    ``rows``: the per-round table (:func:`alseg.report.round_table`: group means); ``curves``: each
    experiment's learning curve, whose seeds give the paired comparisons of :mod:`alseg.verdicts`;
    ``planned``: the groups of the invocation, finished or not (None: every group), so that a claim whose
    experiments were not chosen says so instead of "not yet run".
    """

    # each claim's groups: one group of every tuple must be planned for the claim to be in the report
    NEEDS = {
        "margin_beats_random": [("pixel_margin",), ("pixel_random",)],
        "percent_of_full": [("pixel_margin",), (REFERENCE,)],
        "sieving": [("sp_class_balanced",), ("sp_s",)],
        "adaptive_superpixels": [("sp_class_balanced",), ("amsp_s",)],
        "class_balance": [("sp_class_balanced",), ("sp_uncertainty",)],
        "binary_hours": [("binary_greedy",), ("sp_class_balanced",)],
        "binary_selection": [("binary_lp", "binary_greedy"), ("binary_rr", "binary_ee")],
    }

    def __init__(self, rows: list[dict], classes: dict[str, dict], results: Path, cfg: dict, prefix: str,
                 curves: dict[str, list[dict]] | None = None, planned: set[str] | None = None) -> None:
        self.rows, self.classes, self.results, self.cfg, self.prefix = rows, classes, results, cfg, prefix
        self.planned = planned
        self.curves = curves or {}

    def curve(self, group: str) -> list[dict]:
        return [r for r in self.rows if r["group"] == self.prefix + group]

    def members(self, group: str) -> list[str]:
        return [n for n, e in self.cfg["experiments"].items() if e["group"] == self.prefix + group]

    def by_seed(self, group: str, column: str = "miou", last_only: bool = False) -> dict[int, dict[int, float]]:
        """seed -> round -> ``column`` of the group's learning curves (only the last round: ``last_only``)."""
        out: dict[int, dict[int, float]] = {}
        for name in self.members(group):
            rows = [r for r in self.curves.get(name, []) if r.get(column) is not None]
            if rows:
                rows = rows[-1:] if last_only else rows
                out[int(self.cfg["experiments"][name]["seed"])] = {int(r["round"]): float(r[column]) for r in rows}
        return out

    def ran(self, *groups: str) -> bool:
        """Whether every one of ``groups`` has finished rounds in this report."""
        return all(self.curve(group) for group in groups)

    def records(self, group: str) -> dict[int, dict[int, dict[str, Any]]]:
        """:func:`superpixel_records` of the group's experiments."""
        return superpixel_records(self.results, self.members(group), self.cfg)

    def after_round0(self, group: str, control: str) -> PairedDifference:
        """``group`` minus ``control`` in mIoU, paired over seeds and ``group``'s rounds 1 on (round 0 asks
        random queries whatever the strategy)."""
        return compare(self.by_seed(group), self.by_seed(control), [r["round"] for r in self.curve(group) if r["round"] > 0])

    def margin_beats_random(self) -> str:
        margin, random = self.curve("pixel_margin"), self.curve("pixel_random")
        if not margin or not random:
            return "not yet run"
        pairs = [(m, r) for m, r in zip(margin, random) if m["round"] > 0]
        if not pairs:
            return "not yet run"
        diff = compare(self.by_seed("pixel_margin"), self.by_seed("pixel_random"), [m["round"] for m, _ in pairs])
        wins = sum(m["miou_mean"] > r["miou_mean"] for m, r in pairs)
        detail = ", ".join(f"round {m['round']}: {_pct(m['miou_mean'])} vs {_pct(r['miou_mean'])}" for m, r in pairs)
        return (f"**{diff.verdict}**: margin minus random over rounds 1-{pairs[-1][0]['round']}: {diff.text()} "
                f"(mean curves: margin ahead in {wins} of {len(pairs)} rounds; {detail})")

    def percent_of_full(self) -> str:
        margin, full = self.curve("pixel_margin"), self.curve(REFERENCE)
        if not margin or not full:
            return "not yet run"
        budget = int(self.cfg["experiments"][self.members("pixel_margin")[0]]["budget"])
        at_100 = [r for r in margin if budget * (r["round"] + 1) >= 100][:1]  # PixelPick's 100 px per image
        last = at_100[0] if at_100 else margin[-1]
        pixels_per_image = budget * (last["round"] + 1)
        ratio = ratio_of_means([c[last["round"]] for c in self.by_seed("pixel_margin").values() if last["round"] in c],
                               [next(iter(c.values())) for c in self.by_seed(REFERENCE, last_only=True).values()])
        verdict = percent_verdict(ratio) if at_100 else "not yet run at 100 px"
        return (f"**{verdict}**: margin at {pixels_per_image} px per image {_pct(last['miou_mean'])} mIoU "
                f"({ratio.seeds_a} seeds), fully supervised {_pct(full[-1]['miou_mean'])} ({ratio.seeds_b} seeds): "
                f"{100 * ratio.value:.0f}%, {100 * LEVEL:.0f}% interval [{100 * ratio.low:.0f}%, "
                f"{100 * ratio.high:.0f}%] (bootstrap over the seeds of each) (paper: 96%, with ImageNet weights)")

    def sieving(self) -> str:
        if not self.ran("sp_class_balanced", "sp_s"):
            return "not yet run"
        records = self.records("sp_s")
        lowers = compare(_field(records, "label_noise_before_sieve"), _field(records, "label_noise"))
        raises = self.after_round0("sp_s", "sp_class_balanced")
        return (f"lowers label noise: **{lowers.verdict}** (noise before minus after sieving, rounds 1 on: "
                f"{lowers.text(unit='points of %')}); raises mIoU: **{raises.verdict}** (SP+S minus SP, "
                f"class-balanced, rounds 1 on: {raises.text()})")

    def adaptive_superpixels(self) -> str:
        if not self.ran("sp_class_balanced", "amsp_s"):
            return "not yet run"
        raises = self.after_round0("amsp_s", "sp_class_balanced")
        sp, amsp = self.records("sp_class_balanced"), self.records("amsp_s")
        noise = compare(_field(sp, "label_noise"), _field(amsp, "label_noise"))
        pixels = [amsp[s][r]["training_pixels"] / sp[s][r]["training_pixels"]
                  for s in set(sp) & set(amsp) for r in set(sp[s]) & set(amsp[s]) if r > 0]
        extra = (f"; AMSP+S trains on {min(pixels):.1f}-{max(pixels):.1f}x SP's pixels per round (merged regions "
                 "are larger; it asks fewer where too few regions are left unasked)" if pixels else "")
        return (f"raises mIoU: **{raises.verdict}** (AMSP+S minus SP, class-balanced, the same region budget per round, "
                f"rounds 1 on: {raises.text()}); lowers the training labels' noise: **{noise.verdict}** (SP's minus "
                f"AMSP+S's, rounds 1 on: {noise.text(unit='points of %')}){extra}")

    def class_balance(self) -> str:
        balanced, control = self.classes.get(self.prefix + "sp_class_balanced"), self.classes.get(
            self.prefix + "sp_uncertainty")
        if not balanced or not control:
            return "not yet run"
        diffs: dict[int, list[float]] = {}
        for c in RARE_CLASSES:  # at the final round, each rare class's IoU per seed
            pairs = paired_differences(self.by_seed("sp_class_balanced", f"iou_{c}", last_only=True),
                                       self.by_seed("sp_uncertainty", f"iou_{c}", last_only=True))
            for s, d in pairs.items():
                diffs.setdefault(s, []).extend(d.tolist())
        diff = bootstrap({s: np.array(d) for s, d in diffs.items()})
        detail = ", ".join(f"{c} {_pct(balanced.get(f'iou_{c}'))} vs {_pct(control.get(f'iou_{c}'))}"
                           for c in RARE_CLASSES)
        return (f"**{diff.verdict}** at the final round, class-balanced minus uncertainty-only superpixels over the "
                f"rare classes: {diff.text()} (mean per-class IoU: {detail})")

    def binary_hours(self) -> str:
        binary, region = self.curve("binary_greedy"), self.curve("sp_class_balanced")
        if not binary or not region:
            return "not yet run"
        curves = {"binary": binary, "region": region}
        best = {name: max(curve, key=lambda r: r["miou_mean"]) for name, curve in curves.items()}
        target = min(best["binary"]["miou_mean"], best["region"]["miou_mean"])
        reached = {name: next(r for r in curve if r["miou_mean"] >= target) for name, curve in curves.items()}
        hours = {name: row["hours"] for name, row in reached.items()}
        faster = hours["binary"] < hours["region"]
        seeds = min(int(row["seeds"]) for row in reached.values())
        if seeds >= MIN_SEEDS and len(binary) > 1 and best["binary"]["round"] == 0:
            return self.binary_no_gain(binary, best["region"])
        if seeds < MIN_SEEDS:
            verdict = "not shown: one seed"
        elif faster and best["binary"]["miou_mean"] < best["region"]["miou_mean"]:
            verdict = f"partly holds: only up to {_pct(target)} mIoU, the best binary questions reach"
        else:
            verdict = "holds" if faster else "does not hold here"
        even = break_even_seconds(hours["binary"], reached["region"]["clicks"])
        return (f"**{verdict}**: binary (greedy) reaches {_pct(target)} after {hours['binary']:.2f} estimated hours, "
                f"class-balanced superpixel regions after {hours['region']:.2f} h (including each one's round 0; "
                f"mean curves of {seeds} seed(s)); binary questions are cheaper in hours while a region costs more "
                f"than {even:.2f} s (estimated: {region_seconds(self.cfg)} s per region, flagged as an estimate); "
                f"binary's best is {_pct(best['binary']['miou_mean'])} (round {best['binary']['round']}; round 0: "
                f"{_pct(binary[0]['miou_mean'])}), the regions' {_pct(best['region']['miou_mean'])} (round "
                f"{best['region']['round']}, {best['region']['hours']:.2f} h)")

    def binary_no_gain(self, binary: list[dict], region: dict) -> str:
        """The binary-hours verdict when no yes/no round lifts the mean above round 0: the hours to any mIoU
        binary reaches are its round-0 labels' (pixels), not the questions', so the verdict rests on the
        rounds after round 0 minus round 0, paired over seeds."""
        curves = self.by_seed("binary_greedy")
        gain = compare({s: {r: v for r, v in c.items() if r > 0} for s, c in curves.items()},
                       {s: {r: c[0] for r in c if r > 0} for s, c in curves.items() if 0 in c})
        verdict = DOES_NOT_HOLD if gain.verdict == DOES_NOT_HOLD else "not shown: the yes/no rounds add no mIoU"
        later = max(binary[1:], key=lambda r: r["miou_mean"])
        return (f"**{verdict}**: no yes/no round lifts binary (greedy)'s mean above its round 0 "
                f"({_pct(binary[0]['miou_mean'])}, the labels every binary round starts from; best later: "
                f"{_pct(later['miou_mean'])} at round {later['round']}); rounds 1 on minus round 0: {gain.text()}; "
                f"the yes/no questions buy no mIoU to compare in hours, while class-balanced regions reach "
                f"{_pct(region['miou_mean'])} (round {region['round']}, {region['hours']:.2f} estimated h)")

    def binary_selection(self) -> str:
        chosen = {"LP": "binary_lp", "greedy": "binary_greedy"}
        chosen = {name: group for name, group in chosen.items() if self.curve(group)}
        baselines = {name: group for name, group in {"RR": "binary_rr", "EE": "binary_ee"}.items() if self.curve(group)}
        if not chosen or not baselines:
            return "not yet run"
        curves = {name: self.curve(group) for name, group in (chosen | baselines).items()}
        last = min(len(curve) for curve in curves.values()) - 1
        if last < 1:
            return "not yet run"
        best_baseline = _pointwise_max([self.by_seed(group) for group in baselines.values()])
        diffs = {name: compare(self.by_seed(group), best_baseline, range(1, last + 1)) for name, group in chosen.items()}
        verdicts = {d.verdict for d in diffs.values()}
        verdict = verdicts.pop() if len(verdicts) == 1 else ("partly holds" if HOLDS in verdicts else NOT_SHOWN)
        per_round = "; ".join(
            f"round {r}: " + ", ".join(f"{name} {_pct(curve[r]['miou_mean'])}" for name, curve in curves.items())
            for r in range(last + 1))
        against = " and ".join(baselines)
        tests = "; ".join(f"{name} minus the better of {against}: {d.text()}" for name, d in diffs.items())
        return f"**{verdict}** ({tests}; mean curves: {per_round})"

    def verdict(self, claim: str) -> str:
        """The claim's verdict, or why it is not in this report: a needed group was not planned."""
        missing = [" or ".join(alternatives) for alternatives in self.NEEDS[claim] if self.planned is not None
                   and not any(self.prefix + group in self.planned for group in alternatives)]
        if missing:
            return f"not in this report (no {', '.join(missing)} experiment in this invocation)"
        return getattr(self, claim)()

    def lines(self) -> list[str]:
        return [
            f"- Margin beats random in every round (PixelPick): {self.verdict('margin_beats_random')}",
            f"- About 96% of fully supervised at 100 px per image (PixelPick): {self.verdict('percent_of_full')}",
            f"- Sieving lowers label noise and raises mIoU (Adaptive Superpixel): {self.verdict('sieving')}",
            "- Adaptive merging with sieving (AMSP+S) beats plain superpixels at the same clicks (Adaptive "
            f"Superpixel): {self.verdict('adaptive_superpixels')}",
            f"- Class balance helps rare classes ({', '.join(RARE_CLASSES)}): {self.verdict('class_balance')}",
            "- Binary queries reach a given mIoU in fewer estimated hours than region labels: "
            f"{self.verdict('binary_hours')}",
            f"- The chosen binary questions beat random (RR) and entropy-ranked (EE) ones (Binary Feedback): "
            f"{self.verdict('binary_selection')}",
        ]


def percent_verdict(ratio: RatioOfMeans) -> str:
    """PixelPick's "about 96% of fully supervised": holds when the ratio's interval lies at 94% or above,
    does not hold when it lies below 94%, else not shown; it needs two seeds of margin and of the reference.
    Above 100% the sparse-label model beats its reference, which says the reference is not trained to
    saturation, not that the claim holds."""
    if ratio.value > 1.0:
        return "reference not saturated (above 100%: the fully supervised model is weak here; no verdict)"
    if min(ratio.seeds_a, ratio.seeds_b) < MIN_SEEDS:
        return f"not shown: one seed of {'margin' if ratio.seeds_a < MIN_SEEDS else 'the reference'}"
    if ratio.low >= 0.94:
        return HOLDS
    return "does not hold here" if ratio.high < 0.94 else "not shown: the interval straddles 94%"


def region_seconds(cfg: dict) -> Any:
    """The configured (estimated) seconds of one superpixel region."""
    costs = [e.get("costs", {}).get("superpixel", {}).get("seconds") for e in cfg["experiments"].values()]
    return next((c for c in costs if c is not None), "?")


def _pointwise_max(curves: list[dict[int, dict[int, float]]]) -> dict[int, dict[int, float]]:
    """Per seed and round, the best of ``curves`` (seeds and rounds all of them have)."""
    seeds = set.intersection(*(set(c) for c in curves)) if curves else set()
    return {s: {r: max(c[s][r] for c in curves) for r in set.intersection(*(set(c[s]) for c in curves))}
            for s in seeds}
