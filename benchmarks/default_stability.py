"""How steady the default run's curves are, over seeds: the checks of BENCHMARKS.md, section 1.

Reads every round's ``metrics.json`` of a run whose experiments have several seeds (``defaults: {seeds: [0,
1]}``: experiments ``<group>_seed<s>``) and prints, per group, the mean test mIoU per round, the largest drop
of the mean curve (and of each seed's) between neighbouring rounds, margin minus random per round (mean and
each seed's), and each binary group's last round against its round 0.

Usage::

    python benchmarks/default_run.py --seeds 0 1 --keep DIR
    python benchmarks/default_stability.py DIR/results
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path


def seed_curves(results: Path) -> dict[str, dict[int, list[float]]]:
    """group -> seed -> test mIoU per round, from each experiment's ``round_<r>/metrics.json``."""
    curves: dict[str, dict[int, list[float]]] = defaultdict(dict)
    for folder in sorted(p for p in results.iterdir() if (p / "round_0" / "metrics.json").is_file()):
        match = re.fullmatch(r"(.*?)(?:_seed(\d+))?", folder.name)
        group, seed = match.group(1), int(match.group(2) or 0)
        rounds = sorted(int(p.name.split("_")[1]) for p in folder.glob("round_*") if (p / "metrics.json").is_file())
        curves[group][seed] = [json.loads((folder / f"round_{r}" / "metrics.json").read_text())["miou"]
                               for r in rounds]
    return curves


def late_best_epochs(results: Path) -> tuple[int, int]:
    """How many trainings (of how many) chose a checkpoint in their last tenth of epochs: a schedule that
    stops while val mIoU still climbs."""
    late = total = 0
    for path in results.glob("*/round_*/train_log.json"):
        log = json.loads(path.read_text())
        if "history" not in log or "model_of" in log:
            continue
        total += 1
        late += log["best_epoch"] > 0.9 * len(log["history"])
    return late, total


def mean_curve(by_seed: dict[int, list[float]]) -> list[float]:
    rounds = min(len(curve) for curve in by_seed.values())
    return [sum(curve[r] for curve in by_seed.values()) / len(by_seed) for r in range(rounds)]


def largest_drop(curve: list[float]) -> float:
    """The largest fall of ``curve`` from one round to the next (0 if it never falls)."""
    return max([0.0] + [before - after for before, after in zip(curve, curve[1:])])


def report(results: Path) -> str:
    curves = seed_curves(results)
    lines = []
    for group, by_seed in curves.items():
        mean = mean_curve(by_seed)
        lines.append(f"{group} ({len(by_seed)} seeds): mean " + " ".join(f"{v:.3f}" for v in mean)
                     + f"; largest drop {largest_drop(mean):.3f}; seeds' largest drops "
                     + ", ".join(f"{largest_drop(c):.3f}" for c in by_seed.values()))
        if "binary" in group:
            lines.append(f"  last round - round 0: mean {mean[-1] - mean[0]:+.3f}; seeds "
                         + ", ".join(f"{c[-1] - c[0]:+.3f}" for c in by_seed.values()))
    if {"pixel_margin", "pixel_random"} <= curves.keys():
        margin, random = curves["pixel_margin"], curves["pixel_random"]
        seeds = sorted(margin.keys() & random.keys())
        rounds = min(len(curve[s]) for curve in (margin, random) for s in seeds)
        diffs = [[margin[s][r] - random[s][r] for s in seeds] for r in range(rounds)]
        lines.append("margin - random per round (mean [per seed]): " + "; ".join(
            f"r{r} {sum(d) / len(d):+.3f} [{', '.join(f'{x:+.3f}' for x in d)}]" for r, d in enumerate(diffs)))
        behind = [r for r, d in enumerate(diffs) if r > 0 and sum(d) / len(d) <= 0]
        lines.append(f"rounds >= 1 where margin's mean is not ahead: {behind or 'none'}")
    late, total = late_best_epochs(results)
    lines.append(f"trainings whose best epoch is in their last tenth: {late} of {total}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="a run's results folder")
    args = parser.parse_args()
    print(report(args.results))


if __name__ == "__main__":
    main()
