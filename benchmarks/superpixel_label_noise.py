"""Label noise of superpixel queries: SP, SP+S and AMSP+S through the real workflow on CamVid (resized).

The dominant label of a superpixel is wrong for the pixels of other classes inside it. This benchmark runs
four superpixel experiments through Snakemake on CamVid resized for a CPU, with everything equal but the
switches of the paper's names:

- ``SP``: class-balanced selection of SEEDS base superpixels, no merging, no sieving (Cai et al.);
- ``SP+S``: the same with sieving (Kneedle, previous round's model, rounds >= 1);
- ``AMSP+S``: adaptive merging every round, class-balanced selection, sieving (Kim et al., ICCV 2023);
- ``AMSP+S, 10 % merged``: the same with the paper's partial merging (only each image's 10 % most uncertain
  superpixels are visited by merging).

Per round and method it reports the share of training pixels whose label is wrong, before and after
sieving, as the train step records it in ``train_log.json`` (``superpixel.label_noise_before_sieve`` and
``superpixel.label_noise``: a void pixel that receives its region's label counts as wrong), the same with
void pixels left out (``label_noise_non_void``, the only figure before issue 17), with the sieved share,
the labelled and training pixels, the clicks and the test mIoU.

    nice -n 19 python benchmarks/superpixel_label_noise.py --camvid ../shared/data/camvid \\
        --out benchmarks/results/superpixel_label_noise.md

Work files go to ``benchmarks/out/superpixel_label_noise/`` (ignored by git); rerunning resumes there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
METHODS = {
    "SP": {"merge": False, "sieve": False},
    "SP+S": {"merge": False, "sieve": True},
    "AMSP+S": {"merge": True, "sieve": True},
    "AMSP+S, 10 % merged": {"merge": True, "sieve": True, "merge_fraction": 0.1},
}
EXPERIMENT_NAMES = {"SP": "sp", "SP+S": "sp_s", "AMSP+S": "amsp_s", "AMSP+S, 10 % merged": "amsp_s_10"}


def make_config(args: argparse.Namespace) -> dict:
    """The workflow config of the experiments (one per method)."""
    superpixel = {"pixels_per_superpixel": args.pixels_per_superpixel, "sieve_min_size": args.sieve_min_size,
                  "overlays": 2}
    return {
        "round": args.rounds,
        "results": "results",
        "datasets": {"camvid": {"kind": "camvid", "root": str(Path(args.camvid).resolve()),
                                "resize": [args.height, args.width],
                                "limit": {"train": args.train_images, "val": args.val_images,
                                          "test": args.test_images}}},
        "defaults": {
            "dataset": "camvid",
            "unit": "superpixel",
            "strategy": "class_balanced",
            "budget": args.budget,
            "seed": 0,
            "model": {"name": "small_unet", "width": 16, "dropout": 0.1},
            "training": {"epochs": args.epochs, "batch_size": 8, "lr": 0.003, "backbone_lr": 0.003,
                         "milestones": [max(1, int(args.epochs * 0.75))], "val_every": 2,
                         "augment": {"scale": [1.0, 1.0], "crop": None}},
            "inference": {"batch_size": 16},
        },
        "experiments": {EXPERIMENT_NAMES[m]: {"superpixel": {**superpixel, **switches}}
                        for m, switches in METHODS.items()},
    }


def run_workflow(workdir: Path, config_path: Path, cores: int) -> float:
    """Run every experiment's rounds; return the wall seconds."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(config_path), "--cores", str(cores)]
    started = time.perf_counter()
    with open(workdir / "snakemake.log", "w") as log:
        done = subprocess.run(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"snakemake failed; see {workdir / 'snakemake.log'}")
    return time.perf_counter() - started


def collect(results: Path, rounds: int) -> dict[str, list[dict]]:
    """Per method, per round: the train step's superpixel record and the metrics."""
    table: dict[str, list[dict]] = {}
    for method, name in EXPERIMENT_NAMES.items():
        table[method] = []
        for r in range(rounds + 1):
            rdir = results / name / f"round_{r}"
            record = json.loads((rdir / "train_log.json").read_text())["superpixel"]
            metrics = json.loads((rdir / "metrics.json").read_text())
            table[method].append({"round": r, **record, "miou": metrics["miou"], "clicks": metrics["clicks"]})
    return table


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def markdown(table: dict[str, list[dict]], args: argparse.Namespace, wall: float, command: str) -> str:
    lines = [
        "# Superpixel label noise: SP, SP+S, AMSP+S (CamVid, resized)",
        "",
        "Share of training pixels whose label is wrong (a void pixel that receives its region's label counts",
        "as wrong), per round, as recorded by the train step (`train_log.json`, `superpixel.label_noise`;",
        "before sieving: `label_noise_before_sieve`); \"non-void\": the same with void pixels left out",
        "(`label_noise_non_void`). Same data, model, seeds and budget for every method; only the",
        "merge and sieve switches differ. Round 0 (random base superpixels) is never sieved.",
        "",
        f"Setting: CamVid train limited to the first {args.train_images} images (val {args.val_images}, test "
        f"{args.test_images}), resized to {args.height} x {args.width}; SEEDS at {args.pixels_per_superpixel} px "
        f"per superpixel; class-balanced acquisition, {args.budget} regions (clicks) per round; sieving of regions "
        f">= {args.sieve_min_size} px (Kneedle, 20 points, previous round's model); merging eps 0.1; small_unet "
        f"(width 16, random init), {args.epochs} epochs per round. Rounds 0..{args.rounds}.",
        "",
        "| method | round | clicks | labelled px | training px | sieved out | noise before sieving | "
        "noise of training px | non-void noise of training px | noise of sieved-out px | test mIoU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, rows in table.items():
        for row in rows:
            lines.append(
                f"| {method} | {row['round']} | {row['clicks']:.0f} | {row['labelled_pixels']} | "
                f"{row['training_pixels']} | {pct(row['sieved_share'])} | {pct(row['label_noise_before_sieve'])} | "
                f"{pct(row['label_noise'])} | {pct(row.get('label_noise_non_void'))} | "
                f"{pct(row.get('sieved_out_noise'))} | {row['miou']:.4f} |")
    lines += ["", "Last round, noise of the training pixels: " + ", ".join(
        f"{m} {pct(rows[-1]['label_noise'])}" for m, rows in table.items()) + ".", ""]
    lines += [
        f"This invocation ({len(METHODS)} experiments x {args.rounds + 1} rounds; rounds already in the work "
        f"folder are reused, SEEDS and dataset preparation included when not): {wall / 60:.1f} min wall on "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}, a machine shared with other work).",
        "",
        "Command:",
        "",
        "```",
        command,
        "```",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camvid", default=str(REPO.parent / "shared" / "data" / "camvid"))
    parser.add_argument("--height", type=int, default=90)
    parser.add_argument("--width", type=int, default=120)
    parser.add_argument("--train-images", type=int, default=80)
    parser.add_argument("--val-images", type=int, default=20)
    parser.add_argument("--test-images", type=int, default=40)
    parser.add_argument("--pixels-per-superpixel", type=int, default=64)
    parser.add_argument("--sieve-min-size", type=int, default=128)
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3, help="last round (rounds 0..R)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "out" / "superpixel_label_noise"))
    parser.add_argument("--out", help="markdown report (default: print)")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(make_config(args), sort_keys=False))
    wall = run_workflow(workdir, config_path, args.cores)
    command = "python benchmarks/superpixel_label_noise.py " + " ".join(sys.argv[1:])
    text = markdown(collect(workdir / "results", args.rounds), args, wall, command.strip())
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    print(text)


if __name__ == "__main__":
    main()
