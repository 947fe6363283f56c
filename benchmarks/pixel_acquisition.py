"""Pixel acquisition over CamVid train at full resolution (367 x 360 x 480 = 63.4M pixels), on one core.

Times the real acquisition step (``alseg.steps.select_queries``: read the round's inference dump, whose
pixel group keeps each strategy's candidates among the eligible pixels, and choose 10 pixels per image
from each image's top 5%; random: read the masks, exclude asked and void pixels, draw) and its parts on
whole maps. The dump is written from CamVid-sized float16 fields drawn at random (top1 uniform in [1/C, 1],
top2 a uniform share of the rest) through :class:`alseg.pixel_dump.PixelDumpWriter`: acquisition time
does not depend on the values, only on their number (float16 ties are as frequent as in a real dump).
Run pinned to one core:

    taskset -c 0 python benchmarks/pixel_acquisition.py [--camvid ../shared/data/camvid]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from alseg.acquire.pixel import eligible_pixels, select_pixels, strategy_scores
from alseg.data import load_split, prepare_dataset
from alseg.defaults import BUILTIN_DEFAULTS
from alseg.inference_file import write_file_attrs
from alseg.labels import LabelStore, save_labels
from alseg.pixel_dump import PixelDumpRequest, PixelDumpWriter
from alseg.steps import select_queries
from alseg.units.pixel import add_pixel_answers, eligibility

REPO = Path(__file__).resolve().parents[1]


def timed(label: str, fn, results: list[tuple[str, float]]):
    start = time.perf_counter()
    value = fn()
    results.append((label, time.perf_counter() - start))
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--camvid", type=Path, default=REPO.parent / "shared" / "data" / "camvid")
    parser.add_argument("--work", type=Path, default=None, help="folder for the prepared data and dump")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="alseg-bench-"))
    dataset = work / "camvid.h5"
    if not dataset.exists():
        prepare_dataset({"kind": "camvid", "root": str(args.camvid)}, dataset)
    pool = load_split(dataset, "train")
    n, h, w = pool.masks.shape
    rng = np.random.default_rng(0)
    top1 = rng.uniform(1 / 11, 1, (n, h, w)).astype(np.float16)
    top2 = (rng.uniform(0, 1, (n, h, w)) * (1 - top1)).astype(np.float16)
    entropy = rng.uniform(0, np.log(11), (n, h, w)).astype(np.float16)
    # round 0 already asked 10 random pixels per image
    first = select_pixels(None, np.ones((n, h, w), bool), 10, 0, np.random.default_rng(1))
    labels = work / "labels.npz"
    store = add_pixel_answers(LabelStore(), 0, first.image, first.y, first.x,
                              pool.masks[first.image, first.y, first.x].astype(int))
    save_labels(labels, store)
    asked = np.zeros((n, h, w), bool)
    asked[first.image, first.y, first.x] = True
    dump = work / "inference.h5"
    request = PixelDumpRequest(10, 5.0, lambda a, b: eligible_pixels(asked[a:b], pool.masks[a:b], 11, False),
                               eligibility(store, False))
    with h5py.File(dump, "w") as f:
        writer = PixelDumpWriter(f, request, n, h, w)
        for i in range(0, n, 16):
            writer.write(i, {"top1": top1[i:i + 16], "top2": top2[i:i + 16], "entropy": entropy[i:i + 16]})
        write_file_attrs(f, 0, n, {"model": "benchmark"})
    experiment = {**BUILTIN_DEFAULTS, "initial_budget": 10}

    results: list[tuple[str, float]] = []
    for strategy in ("margin", "entropy", "random"):
        timed(f"whole step, {strategy} (read the dump or the masks, select, write queries.csv)",
              lambda strategy=strategy: select_queries(dataset, {**experiment, "strategy": strategy}, 1, work / "q.csv",
                                     labels=labels, inference=dump if strategy != "random" else None),
              results)
    eligible = timed("eligible pixels (asked, void)", lambda: eligible_pixels(asked, pool.masks, 11, False), results)
    fields = {"top1": top1, "top2": top2, "entropy": entropy}
    _, priority = timed("margin scores", lambda: strategy_scores("margin", fields), results)
    timed("select, top 5% then uniform", lambda: select_pixels(priority, eligible, 10, 5, rng), results)
    timed("select, plain top-k (M=0)", lambda: select_pixels(priority, eligible, 10, 0, rng), results)
    timed("select, random", lambda: select_pixels(None, eligible, 10, 0, rng), results)

    cores = len(os.sched_getaffinity(0))
    print(f"pool: {n} images x {h} x {w} = {n * h * w / 1e6:.1f}M pixels; machine: {platform.processor() or platform.machine()}, "
          f"{cores} core(s) available to this process")
    print("| step | seconds |\n|---|---:|")
    for label, seconds in results:
        print(f"| {label} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
