"""What binary answers are worth in training, and which loss weights to use (alseg.train with answers).

On the default config's synthetic data (64 pool images, 8 classes) and schedule (config.yaml ``defaults``):
label 10 random pixels per pool image (as the pixel experiments' round 0), then give the model *every*
answer not already shown by a labelled pixel (the oracle's yes/no for the remaining image-class pairs), and
train with several loss settings; report the val and test mIoU per training seed. Variants:

- ``none``: pixels only (the round-0 model);
- ``no only``: only the "no" answers (absent-class constraint; no presence loss);
- ``w, r``: all answers, ``presence_weight`` w and log-sum-exp sharpness r (``absent_weight`` 1).

The setting is **chosen on val** (the mean val mIoU over the seeds; val also picks each training's
checkpoint, as in every round); test mIoU is reported beside it and chooses nothing.

    nice -n 19 python benchmarks/binary_answer_losses.py --seeds 2 3 4 5 6 --output benchmarks/results/binary_answer_losses.md
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from alseg.config import resolve_config
from alseg.data import dataset_info, load_split
from alseg.data.prepared import prepare_dataset
from alseg.points import PointLabels
from alseg.predict import evaluate
from alseg.train import train_model
from alseg.units.binary import class_presence_from_masks

REPO = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, dict | None] = {
    "none": None,
    "no only": {"presence_weight": 0.0},
    "w 1, r 5": {"presence_weight": 1.0, "lse_r": 5.0},
    "w 0.1, r 20": {"presence_weight": 0.1, "lse_r": 20.0},
    "w 1, r 20": {"presence_weight": 1.0, "lse_r": 20.0},
    "w 1, r 50": {"presence_weight": 1.0, "lse_r": 50.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    parser.add_argument("--pixels", type=int, default=10, help="random labelled pixels per pool image")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = resolve_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    experiment = next(e for e in config["experiments"].values() if e["unit"] == "pixel")
    training = {k: v for k, v in experiment["training"].items() if k != "warm_start"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.h5"
        prepare_dataset(config["datasets"][experiment["dataset"]], path)
        info = dataset_info(path)
        pool, val, test = (load_split(path, s) for s in ("train", "val", "test"))
    n, c = len(pool.stems), len(info.classes)
    rng = np.random.default_rng(0)
    parts = []
    for i, mask in enumerate(pool.masks):
        ys, xs = np.nonzero(mask != info.ignore_index)
        pick = rng.choice(ys.size, args.pixels, replace=False)
        parts.append((np.full(args.pixels, i), ys[pick], xs[pick], mask[ys[pick], xs[pick]]))
    points = PointLabels(*(np.concatenate(column) for column in zip(*parts)))
    truth = class_presence_from_masks(pool.masks, np.arange(n), c, info.ignore_index)
    shown = np.zeros((n, c), dtype=bool)
    shown[points.image, points.cls] = True
    answers = np.where(truth, 1, -1).astype(np.int8)
    answers[shown] = 0

    scores: dict[str, dict[str, list[float]]] = {v: {"val": [], "test": []} for v in args.variants}
    started = time.perf_counter()
    for seed in args.seeds:
        for variant in args.variants:
            loss = VARIANTS[variant]
            given = None if loss is None else (np.minimum(answers, 0) if variant == "no only" else answers)
            result = train_model(experiment["model"], training, pool.images, points, val.images, val.masks, c,
                                 info.ignore_index, seed=seed, log=lambda _: None, answers=given, answer_loss=loss)
            for split, data in (("val", val), ("test", test)):
                scores[variant][split].append(100 * evaluate(result.model, data.images, data.masks, c,
                                                             info.ignore_index).miou)
            print(f"seed {seed} {variant}: val {scores[variant]['val'][-1]:.2f} test {scores[variant]['test'][-1]:.2f}",
                  flush=True)
    setting = (f"config.yaml's synthetic data and training schedule; {args.pixels} random labelled pixels per pool "
               f"image ({len(points)} pixels, showing {int(shown.sum())} of the {n * c} image-class pairs as present), "
               f"then all {int((answers != 0).sum())} remaining pairs answered ({int((answers > 0).sum())} yes, "
               f"{int((answers < 0).sum())} no); absent_weight 1 throughout.")
    text = report(scores, args, setting, time.perf_counter() - started)
    if args.output:
        args.output.write_text(text)
    print(text)


def report(scores: dict[str, dict[str, list[float]]], args: argparse.Namespace, setting: str, wall: float) -> str:
    """The results file: the setting chosen on val, then val and test mIoU (%) per variant and seed."""
    means = {v: {split: float(np.mean(values)) for split, values in s.items()} for v, s in scores.items()}
    ranked = sorted(means, key=lambda v: means[v]["val"], reverse=True)
    best, second = ranked[0], ranked[1] if len(ranked) > 1 else ranked[0]
    gaps = np.subtract(scores[best]["val"], scores[second]["val"])
    lines = [
        "# Binary answers in training: loss weights",
        "",
        f"Command: `nice -n 19 python benchmarks/binary_answer_losses.py --seeds {' '.join(map(str, args.seeds))}"
        f"{'' if args.output is None else ' --output ' + str(args.output)}`",
        "",
        f"Machine: {os.cpu_count()} CPUs (shared), Python {platform.python_version()}, torch {torch.__version__}, "
        f"{args.threads} thread(s); {wall / 60:.1f} min.",
        "",
        f"Setting: {setting}",
        "",
        f"**Chosen on val: {best}** (mean val mIoU {means[best]['val']:.2f}; test {means[best]['test']:.2f}). "
        f"Ahead of the next on val, {second}, in {int((gaps > 0).sum())} of {len(gaps)} seeds (paired "
        f"differences {', '.join(f'{g:+.2f}' for g in gaps)}).",
        "",
    ]
    for split in ("val", "test"):
        base = means["none"][split] if "none" in means else float("nan")
        lines += [f"{split.capitalize()} mIoU (%) per training seed:", "",
                  "| variant | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean | mean - none |",
                  "|---|" + "---|" * (len(args.seeds) + 2)]
        for variant, values in scores.items():
            mean = means[variant][split]
            lines.append(f"| {variant} | " + " | ".join(f"{v:.2f}" for v in values[split])
                         + f" | {mean:.2f} | {mean - base:+.2f} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
