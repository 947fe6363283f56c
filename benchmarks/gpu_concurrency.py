"""Training and inference throughput on a GPU: with and without AMP, and k trainings at once.

The GPU protocol of the CamVid benchmark (``benchmarks/camvid.py --protocol gpu --gpu-jobs k``) can let
Snakemake run k train jobs on one GPU at once. Small models leave a big GPU idle (the data pipeline, the
optimiser step and Python overhead are serial), so k > 1 may finish a benchmark sooner; this script
measures it instead of guessing. For each k it starts k training processes at the same moment, each
running the real training loop (:func:`alseg.train.train_model`, the official augmentation, sparse labels:
10 random pixels per image) for ``--iterations`` batches of 4 CamVid images, and reports the images per
second of all of them together. It also reports one process's training and inference images per second
with and without AMP.

Usage (on the GPU machine; ``--device cpu`` and a small ``--size`` check the script anywhere)::

    python benchmarks/gpu_concurrency.py --model mnv2 --jobs 1 2 3 4
    python benchmarks/gpu_concurrency.py --model r50 --jobs 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = {"mnv2": {"name": "deeplabv3plus", "encoder": "mobilenet_v2"}, "r50": {"name": "fpn", "encoder": "resnet50"},
          "small_unet": {"name": "small_unet", "width": 16}}
BATCH = 4


def sparse_points(masks: np.ndarray, ignore_index: int, per_image: int, seed: int):
    """``per_image`` random non-void pixels of every mask, as :class:`alseg.points.PointLabels`."""
    from alseg.points import PointLabels

    rng = np.random.default_rng(seed)
    parts = []
    for i, mask in enumerate(masks):
        ys, xs = np.nonzero(mask != ignore_index)
        pick = rng.choice(ys.size, size=min(per_image, ys.size), replace=False)
        parts.append((np.full(pick.size, i), ys[pick], xs[pick], mask[ys[pick], xs[pick]]))
    return PointLabels(*(np.concatenate(column) for column in zip(*parts)))


def worker(args: argparse.Namespace) -> dict:
    """One training of ``args.iterations`` batches (and, with ``--inference``, timed inference)."""
    import torch

    from alseg.data import dataset_info, load_split
    from alseg.models import build_model, forward_logits, resolve_device
    from alseg.train import train_model

    info = dataset_info(args.dataset)
    pool = load_split(args.dataset, "train")
    device = resolve_device(args.device)
    points = sparse_points(pool.masks, info.ignore_index, 10, args.seed)
    config = {"epochs": 1, "iterations_per_epoch": args.iterations, "batch_size": BATCH, "milestones": [],
              "amp": args.amp, "device": str(device), "val_every": 1}
    started = time.perf_counter()
    train_model(MODELS[args.model], config, pool.images, points, None, None, len(info.classes), info.ignore_index,
                seed=args.seed, log=lambda _: None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    result = {"train_seconds": time.perf_counter() - started, "train_images": args.iterations * BATCH}
    if args.inference:
        model = build_model(MODELS[args.model], len(info.classes)).to(device).eval()
        images = torch.from_numpy(pool.images[:16]).permute(0, 3, 1, 2).float().div(255).to(device)
        for amp in (False, True):
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
                forward_logits(model, images[:BATCH])  # warm-up
                if device.type == "cuda":
                    torch.cuda.synchronize()
                started = time.perf_counter()
                for _ in range(args.repeats):
                    for start in range(0, len(images), BATCH):
                        forward_logits(model, images[start:start + BATCH])
                if device.type == "cuda":
                    torch.cuda.synchronize()
            result[f"inference_images_per_s_amp_{amp}"] = args.repeats * len(images) / (time.perf_counter() - started)
    return result


def launch(args: argparse.Namespace, dataset: Path, jobs: int, amp: bool, inference: bool) -> tuple[float, list[dict]]:
    """Start ``jobs`` worker processes at once; return the wall seconds until all finish and their results."""
    cmd = [sys.executable, __file__, "--worker", "--dataset", str(dataset), "--model", args.model, "--device",
           args.device, "--iterations", str(args.iterations), "--repeats", str(args.repeats)]
    cmd += ["--amp"] if amp else []
    cmd += ["--inference"] if inference else []
    started = time.perf_counter()
    processes = [subprocess.Popen([*cmd, "--seed", str(i)], stdout=subprocess.PIPE, text=True) for i in range(jobs)]
    outputs = [p.communicate()[0] for p in processes]
    wall = time.perf_counter() - started
    if any(p.returncode for p in processes):
        sys.exit(f"a worker failed: {[p.returncode for p in processes]}")
    return wall, [json.loads(out.strip().splitlines()[-1]) for out in outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="mnv2")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--iterations", type=int, default=200, help="batches of 4 per training process")
    parser.add_argument("--repeats", type=int, default=10, help="inference passes over 16 images")
    parser.add_argument("--images", type=int, default=64, help="CamVid train images loaded")
    parser.add_argument("--size", type=int, nargs=2, default=[360, 480])
    parser.add_argument("--device", default="auto")
    default_camvid = Path(os.environ.get("ALSEG_CAMVID", REPO.parent / "shared" / "data" / "camvid"))
    parser.add_argument("--camvid", type=Path, default=default_camvid)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--amp", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inference", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    import torch

    from alseg.data.prepared import prepare_dataset

    if not (args.camvid / "trainannot").is_dir():
        sys.exit(f"CamVid not found at {args.camvid}; use --camvid or ALSEG_CAMVID")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and args.device != "cpu" else "CPU"
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(tmp) / "camvid.h5"
        prepare_dataset({"kind": "camvid", "root": str(args.camvid), "resize": args.size,
                         "limit": {"train": args.images, "val": 1, "test": 1}}, dataset)
        print(f"# {args.model} ({MODELS[args.model]}), {args.size[0]}x{args.size[1]}, batch {BATCH}, "
              f"{args.iterations} iterations per process; device: {device}\n")
        print("| AMP | train img/s (1 process) | inference img/s, fp32 | inference img/s, AMP |")
        print("|---|---:|---:|---:|")
        for amp in (False, True):
            wall, (result,) = launch(args, dataset, 1, amp, inference=not amp)
            rate = result["train_images"] / result["train_seconds"]
            inference = (f"{result['inference_images_per_s_amp_False']:.1f} | "
                         f"{result['inference_images_per_s_amp_True']:.1f}") if not amp else "(above) | (above)"
            print(f"| {'on' if amp else 'off'} | {rate:.1f} | {inference} |")
        print("\n| trainings at once (AMP) | wall s | train img/s, all together | vs the first row |")
        print("|---:|---:|---:|---:|")
        single = None
        for jobs in args.jobs:
            wall, results = launch(args, dataset, jobs, True, inference=False)
            rate = sum(r["train_images"] for r in results) / wall
            single = single or rate
            print(f"| {jobs} | {wall:.1f} | {rate:.1f} | {rate / single:.2f}x |", flush=True)
        print("\nWall time per setting includes each process's start (imports, model build, data load): the "
              "same cost a Snakemake train job pays.")


if __name__ == "__main__":
    main()
