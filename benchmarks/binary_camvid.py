"""Binary queries on CamVid through the workflow: mIoU per round of LP, greedy (ours), RR and EE.

Every method runs as one experiment of one Snakemake invocation (the real rules: select, answer, update,
train + evaluate + infer), on CamVid resized for a CPU, with the paper's setting scaled down: an initial
labelled set of N0 densely labelled pool images, B questions per round over the rest of the pool, at most
C_max per image, lambda = alpha = 1. The four experiments share the seed, so their round 0 (the initial
set and its model) is identical; they differ from round 1 on by the questions asked. The report is the
test mIoU per round, the answers ("yes" share), the images asked per round, the annotation time and the
selection's objective as each method's log gives it.

    nice -n 19 python benchmarks/binary_camvid.py --output benchmarks/results/binary_camvid.md

Defaults (about 20 minutes on 2 shared CPU cores): 90 x 120 images, the whole train split as the pool
(367 images), val limited to 40 images (checkpoint selection), the whole test split (233), N0 = 20,
B = 100, C_max = 5, rounds 0..3, small U-Net (width 16) trained 30 epochs of 12 batches of 8.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
METHODS = ("lp", "greedy", "rr", "ee")


def build_config(args: argparse.Namespace) -> dict:
    limit = {"val": args.val}
    if args.pool:
        limit["train"] = args.pool
    return {
        "round": args.rounds,
        "results": "results",
        "datasets": {"camvid": {"kind": "camvid", "root": str(args.camvid), "resize": list(args.size),
                                "limit": limit}},
        "defaults": {
            "dataset": "camvid",
            "unit": "binary",
            "budget": args.budget,
            "seed": args.seed,
            "initial": {"kind": "dense", "images": args.initial_images},
            "binary": {"c_max": args.c_max, "solver": args.solver},
            "model": {"name": "small_unet", "width": 16, "dropout": 0.1},
            "training": {"epochs": args.epochs, "batch_size": 8, "lr": 0.003, "backbone_lr": 0.003,
                         "milestones": [max(1, int(args.epochs * 0.75))], "val_every": 3,
                         "iterations_per_epoch": args.iterations,
                         "augment": {"scale": [1.0, 1.0], "crop": None}},
            "inference": {"batch_size": 32},
        },
        "experiments": {f"binary_{m}": {"strategy": m} for m in args.methods},
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def selection_line(log: Path) -> str:
    """objective and redundancy from a select_queries log (alseg.units.binary)."""
    text = log.read_text() if log.is_file() else ""
    found = re.search(r"objective ([0-9.]+), redundancy ([0-9.]+)", text)
    return f"{float(found.group(1)):.1f} / {float(found.group(2)):.1f}" if found else ""


def report(out: Path, args: argparse.Namespace, wall: float, command: str) -> str:
    results = out / "results"
    lines = [
        "# Binary queries on CamVid: mIoU per round",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {os.cpu_count()} CPUs (shared), Python {platform.python_version()}; "
        f"`snakemake --cores {args.cores}`; wall time {wall / 60:.1f} min for all "
        f"{len(args.methods)} experiments",
        "",
        f"Setting: CamVid (SegNet layout, 11 classes, void excluded) resized to {args.size[0]}x{args.size[1]}; "
        f"pool = train split{f' (first {args.pool} images)' if args.pool else ' (367 images)'}; val limited to "
        f"{args.val} images (checkpoints); test split (233 images) reported. Initial set: {args.initial_images} "
        f"pool images with dense masks (round 0, identical for every method); then {args.budget} binary "
        f"questions per round, C_max {args.c_max}, lambda 1, alpha 1, min-max scaling, solver {args.solver}; "
        f"small U-Net (width 16, random init) retrained every round, {args.epochs} epochs x "
        f"{args.iterations} batches of 8; seed {args.seed}.",
        "",
        "## Test mIoU (%) per round",
        "",
        "| method | " + " | ".join(f"round {r}" for r in range(args.rounds + 1)) + " | last - round 0 |",
        "|---|" + "---|" * (args.rounds + 2),
    ]
    details = []
    for method in args.methods:
        name = f"binary_{method}"
        curve = read_csv(results / name / "learning_curve.csv")
        miou = [100 * float(row["miou"]) for row in curve]
        lines.append(f"| {method} | " + " | ".join(f"{m:.2f}" for m in miou) + f" | {miou[-1] - miou[0]:+.2f} |")
        for r in range(1, args.rounds + 1):
            folder = results / name / f"round_{r}"
            queries = read_csv(folder / "queries.csv")
            answers = read_csv(folder / "answers.csv")
            yes = sum(a["answer"] == "yes" for a in answers)
            images = len({q["image_index"] for q in queries})
            details.append(
                f"| {method} | {r} | {len(queries)} | {images} | {yes} ({100 * yes / max(1, len(answers)):.0f}%) "
                f"| {selection_line(folder / 'logs' / 'select_queries.log')} | "
                f"{100 * float(curve[r]['miou']):.2f} | {float(curve[r]['hours']):.2f} |"
            )
    lines += [
        "",
        "## Per round",
        "",
        "Objective / v^T R v: the integer objective `sum G M + lambda v^T R v` of the selection and its "
        "redundancy term, on that round's scores (lower is better; comparable between methods within a round "
        "only when their round r-1 models agree, i.e. in round 1).",
        "",
        "| method | round | questions | images | yes | objective / v^T R v | test mIoU | hours so far |",
        "|---|---|---|---|---|---|---|---|",
        *details,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_camvid = Path(os.environ.get("ALSEG_CAMVID", REPO.parent / "shared" / "data" / "camvid"))
    parser.add_argument("--camvid", type=Path, default=default_camvid)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "binary_camvid")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=["lp", "lp_tight", "greedy", "milp", "rr", "ee"])
    parser.add_argument("--rounds", type=int, default=3, help="last round (rounds 0..R)")
    parser.add_argument("--size", type=int, nargs=2, default=[90, 120])
    parser.add_argument("--pool", type=int, default=0, help="limit the pool to its first N images (0: all)")
    parser.add_argument("--val", type=int, default=40)
    parser.add_argument("--initial-images", type=int, default=20)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--c-max", type=int, default=5)
    parser.add_argument("--solver", default="highs", choices=["highs", "cbc"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--output", type=Path, default=None, help="markdown report (default: print)")
    args = parser.parse_args()
    if not (args.camvid / "trainannot").is_dir():
        sys.exit(f"CamVid not found at {args.camvid} (SegNet layout; --camvid or ALSEG_CAMVID)")
    args.out.mkdir(parents=True, exist_ok=True)
    config = args.out / "config.yaml"
    config.write_text(yaml.safe_dump(build_config(args), sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(args.out), "--configfile", str(config), "--cores", str(args.cores)]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=args.out, capture_output=True, text=True)
    wall = time.perf_counter() - started
    (args.out / "snakemake.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"snakemake failed ({done.returncode}); see {args.out / 'snakemake.log'}\n{done.stderr[-3000:]}")
    shown = " ".join(["nice -n 19 python benchmarks/binary_camvid.py", *sys.argv[1:]])
    text = report(args.out, args, wall, shown)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
