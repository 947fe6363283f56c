"""Selection steps on a generated Cityscapes-size pool: seconds and peak resident memory, one core each.

Generates (once, under ``--root``) a pool of ``--n`` images of ``--height`` x ``--width`` with 19 classes and
about 9 % void pixels (blocky random images and masks: no real data), base superpixels on a 16 x 16 grid
(256 px each; written as a ``seeds`` file), round 0 of a pixel and of a superpixel experiment (the real
selection steps; answers from the masks, or random classes for regions), and round 0's inference dump,
written by ``alseg.infer.write_inference`` with a fake model (no training): logits of a 1 x 1 convolution of
the stride-32 average-pooled image, upsampled bilinearly, so the softmax is smooth with uncertain
boundaries. The dump holds the pixel, image and superpixel groups, as the three units' dumps would.

Then every selection step runs in a fresh process pinned to one core (``--core``), through
``alseg.steps.select_queries`` as the workflow's rule calls it: its wall seconds (start-up and imports
included) and its peak resident set size (``VmHWM`` of the process at its end: ``ru_maxrss`` would count
the parent's memory at the fork). Steps: pixel round 0 (random, 10 px per image) and round 1
(margin, least confidence, entropy, random: 10 px per image from the top 5 %); superpixel round 1 (SP:
class-balanced without merging; AMSP: with adaptive merging, eps 0.1) choosing one region per image;
binary round 1 (greedy, one question per image, C_max 5). And the fully supervised reference's training
inputs (``full_training_inputs``): its round-0 selection (every image's mask), then what a train job holds
before its first batch: the training targets, the training digest and each image's points grouped for
batches (``alseg.model_job.training_inputs``, ``alseg.training_data._training_data``; no model is built).
``superpixel_training_inputs`` is the same for a superpixel experiment whose store labels 60 % of the base
superpixels (random classes; about what 5 rounds of AMSP+S label), round 0, so not sieved: the
training labels, their digest and grouping.

    nice -n 10 python benchmarks/large_pool.py --root /tmp/large_pool [--n 3000] [--out table.md]

``--keep`` keeps the generated files (default: deleted at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

CLASSES = 19
STEPS = ("pixel_round0", "pixel_margin", "pixel_least_confidence", "pixel_entropy", "pixel_random",
         "superpixel_sp", "superpixel_amsp", "binary_greedy", "full_training_inputs", "superpixel_training_inputs")

#: The generated files a step needs beyond its own, when not all of them
NEEDS = {"full_training_inputs": ("pool.h5",), "superpixel_training_inputs": ("pool.h5", "superpixels.h5")}


def settings(step: str, n: int) -> tuple[dict[str, Any], int]:
    """The selection settings of a step (its unit's ``select_settings``) and its round."""
    from alseg.config import deep_merge
    from alseg.defaults import BUILTIN_DEFAULTS
    from alseg.units import unit_named

    unit, _, strategy = step.partition("_")
    experiment = deep_merge(BUILTIN_DEFAULTS, {"dataset": "large", "unit": unit, "budget": 10, "initial_budget": 10})
    if unit == "superpixel":
        experiment = deep_merge(experiment, {"strategy": "class_balanced", "budget": n, "initial_budget": n,
                                             "superpixel": {"merge": strategy == "amsp"}})
    elif unit == "binary":
        experiment = deep_merge(experiment, {"strategy": "greedy", "budget": n, "initial": {"per_image": 10}})
    elif strategy != "round0":
        experiment["strategy"] = strategy
    round_index = 0 if strategy == "round0" else 1
    return unit_named(unit).select_settings(experiment, round_index), round_index


# -- generating the pool --------------------------------------------------------------------------------


def write_dataset(path: Path, n: int, height: int, width: int) -> None:
    """A prepared dataset (the layout of ``alseg.data.prepared``) of blocky random images and masks."""
    from alseg.data import CITYSCAPES_CLASSES

    rng = np.random.default_rng(0)
    gzip = {"compression": "gzip", "compression_opts": 1}
    with h5py.File(path, "w") as h5:
        h5.attrs.update(classes=json.dumps(list(CITYSCAPES_CLASSES)), ignore_index=255, height=height, width=width,
                        kind="generated", source="benchmarks/large_pool.py")
        for split, count in (("train", n), ("val", 2), ("test", 2)):
            group = h5.create_group(split)
            images = group.create_dataset("images", (count, height, width, 3), np.uint8, chunks=(1, height, width, 3),
                                          **gzip)
            masks = group.create_dataset("masks", (count, height, width), np.uint8, chunks=(1, height, width), **gzip)
            for i in range(count):
                colours = rng.integers(0, 256, (height // 32, width // 32, 3), dtype=np.uint8)
                images[i] = colours.repeat(32, axis=0).repeat(32, axis=1)
                cells = rng.integers(0, CLASSES, (height // 16, width // 16)).astype(np.uint8)
                cells[rng.random(cells.shape) < 0.09] = 255
                masks[i] = cells.repeat(16, axis=0).repeat(16, axis=1)
            group.create_dataset("stems", data=[f"{split}_{i:05d}" for i in range(count)], dtype=h5py.string_dtype())


def write_grid_superpixels(path: Path, n: int, height: int, width: int) -> None:
    from alseg.superpixels import write_superpixels

    cols = -(-width // 16)
    grid = (np.arange(height)[:, None] // 16) * cols + np.arange(width)[None, :] // 16
    count = int(grid.max()) + 1
    write_superpixels(path, ((grid, count) for _ in range(n)), n, height, width, "seeds", max_per_image=count,
                      attrs={"pixels_per_superpixel": 256, "generated": "16 x 16 grid"})


def fake_model() -> Any:
    """The fake model: logits of a 1 x 1 convolution of the stride-32 pooled image, upsampled (module doc)."""
    import torch
    from torch import nn

    class Encoder(nn.Module):
        output_stride = 32

        def __init__(self) -> None:
            super().__init__()
            self.project = nn.Conv2d(3, 16, 1)

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [torch.tanh(self.project(nn.functional.avg_pool2d(x, 32)))]

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.head = Encoder(), nn.Conv2d(16, CLASSES, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            low = 4.0 * self.head(self.encoder(x)[-1])
            return nn.functional.interpolate(low, size=x.shape[-2:], mode="bilinear")

    torch.manual_seed(0)
    return Model().eval()


def round0(root: Path, unit: str) -> None:
    """Round 0 of a unit through the selection step, and its label store (answers from the masks)."""
    from alseg import steps
    from alseg.data import load_masks
    from alseg.labels import LabelStore, save_labels
    from alseg.queries import read_queries
    from alseg.units.pixel import add_pixel_answers
    from alseg.units.superpixel.files import load_regions
    from alseg.units.superpixel.labels import add_superpixel_answers

    n = len(h5py.File(root / "pool.h5")["train/stems"])
    select, _ = settings(f"{unit}_round0" if unit == "pixel" else "superpixel_sp", n)
    out = root / f"{unit}_round0"
    out.mkdir(exist_ok=True)
    files = {"superpixels": root / "superpixels.h5", "regions": out / "regions.npz"} if unit == "superpixel" else {}
    steps.select_queries(root / "pool.h5", select, 0, out / "queries.csv", **files)
    table = read_queries(out / "queries.csv")
    if unit == "pixel":
        classes = np.zeros(len(table["query_id"]), dtype=np.int64)
        for start in range(0, n, 64):
            rows = (table["image_index"] >= start) & (table["image_index"] < start + 64)
            masks = load_masks(root / "pool.h5", "train", start, min(start + 64, n))
            classes[rows] = masks[table["image_index"][rows] - start, table["y"][rows], table["x"][rows]]
        store = add_pixel_answers(LabelStore(), 0, table["image_index"], table["y"], table["x"],
                                  np.where(classes == 255, -1, classes))
    else:
        regions = load_regions(out / "regions.npz")
        answers = np.random.default_rng(0).integers(0, CLASSES, regions.num_queries)
        store = add_superpixel_answers(LabelStore(), 0, regions.base_id, regions.base_query, answers,
                                       regions.base_pixels)
    save_labels(root / f"labels_{unit}.npz", store)


def write_dump(root: Path, batch_size: int) -> None:
    """Round 0's dump by ``write_inference`` with the fake model, streaming images and superpixels from disk."""
    from alseg.data import load_masks
    from alseg.infer import write_inference
    from alseg.labels import load_labels
    from alseg.pixel_dump import PixelDumpRequest
    from alseg.superpixels import SuperpixelMaps
    from alseg.units.pixel import asked_mask, eligibility, eligible_pixels

    store = load_labels(root / "labels_pixel.npz")
    select, _ = settings("pixel_margin", 0)
    with h5py.File(root / "pool.h5") as pool, h5py.File(root / "superpixels.h5") as sp:
        images = pool["train/images"]
        n, height, width = images.shape[:3]
        maps = SuperpixelMaps(sp["labels"], sp["offsets"][()].astype(np.int64), np.arange(n),
                              {"method": "seeds", "pixels_per_superpixel": 256})

        def eligible(start: int, stop: int) -> np.ndarray:
            return eligible_pixels(asked_mask(store, height, width, start, stop),
                                   load_masks(root / "pool.h5", "train", start, stop), 255, False)

        request = PixelDumpRequest(select["budget"], select["acquisition"]["top_percent"], eligible,
                                   eligibility(store, False))
        write_inference(root / "inference.h5", fake_model(), images, CLASSES, batch_size=batch_size, device="cpu",
                        attrs={"round": 0, "classes": [str(c) for c in range(CLASSES)]},
                        groups=("pixel", "image", "superpixel"), superpixels=maps, pixels=request)


def generate(root: Path, n: int, height: int, width: int, batch_size: int, steps: list[str]) -> dict[str, float]:
    """Write what ``steps`` need (:data:`NEEDS`) and is missing under ``root``; the seconds each part took."""
    root.mkdir(parents=True, exist_ok=True)
    parts = {"pool.h5": lambda: write_dataset(root / "pool.h5", n, height, width),
             "superpixels.h5": lambda: write_grid_superpixels(root / "superpixels.h5", n, height, width),
             "labels_pixel.npz": lambda: round0(root, "pixel"),
             "labels_superpixel.npz": lambda: round0(root, "superpixel"),
             "inference.h5": lambda: write_dump(root, batch_size)}
    needed = {name for step in steps for name in NEEDS.get(step, parts)}
    seconds = {}
    for name, make in parts.items():
        if name in needed and not (root / name).exists():
            print(f"generating {name}...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            make()
            seconds[name] = time.perf_counter() - started
    return seconds


# -- measuring ------------------------------------------------------------------------------------------


def full_training_inputs(root: Path, out: Path) -> None:
    """The fully supervised reference's round 0: its selection step, then its training inputs (module doc)."""
    from alseg import steps
    from alseg.config import deep_merge
    from alseg.defaults import BUILTIN_DEFAULTS
    from alseg.labels import LabelStore
    from alseg.model_job import training_inputs
    from alseg.queries import read_queries
    from alseg.training_data import _training_data
    from alseg.units import Job, unit_named
    from alseg.units.full import add_dense_images

    experiment = deep_merge(BUILTIN_DEFAULTS, {"dataset": "large", "unit": "full"})
    steps.select_queries(root / "pool.h5", unit_named("full").select_settings(experiment, 0), 0, out / "queries.csv")
    table = read_queries(out / "queries.csv")
    store = add_dense_images(LabelStore(), 0, table["image_index"], table["pixels"])
    job = Job(root / "pool.h5", {key: experiment[key] for key in ("unit", "seed", "model", "training")}, 0)
    inputs = training_inputs(job, store)
    _training_data(job.training_images, inputs.points, job.info.num_classes, None, None, print)


def superpixel_training_inputs(root: Path, out: Path) -> None:
    """A superpixel experiment's training inputs, 60 % of the base superpixels labelled (module doc)."""
    from alseg.config import deep_merge
    from alseg.defaults import BUILTIN_DEFAULTS
    from alseg.labels import LabelStore
    from alseg.model_job import training_inputs
    from alseg.training_data import _training_data
    from alseg.units import Job
    from alseg.units.superpixel.files import base_pixel_counts
    from alseg.units.superpixel.labels import add_superpixel_answers

    counts = base_pixel_counts(root / "superpixels.h5")
    rng = np.random.default_rng(0)
    asked = np.sort(rng.choice(counts.size, int(0.6 * counts.size), replace=False))
    store = add_superpixel_answers(LabelStore(), 0, asked, np.arange(asked.size),
                                   rng.integers(0, CLASSES, asked.size), counts[asked])
    experiment = deep_merge(BUILTIN_DEFAULTS, {"dataset": "large", "unit": "superpixel"})
    job = Job(root / "pool.h5", {key: experiment[key] for key in ("unit", "seed", "model", "training", "inference")},
              0, {"superpixels": root / "superpixels.h5"})
    inputs = training_inputs(job, store)
    _training_data(job.training_images, inputs.points, job.info.num_classes, None, None, print)


def run_step(root: Path, step: str, core: int) -> None:
    """One step, in this process (the child), pinned to ``core``."""
    os.sched_setaffinity(0, {core})
    from alseg import steps

    out = root / "out" / step
    out.mkdir(parents=True, exist_ok=True)
    training = {"full_training_inputs": full_training_inputs, "superpixel_training_inputs": superpixel_training_inputs}
    if step in training:
        training[step](root, out)
        _write_peak(out)
        return
    n = len(h5py.File(root / "pool.h5")["train/stems"])
    select, round_index = settings(step, n)
    unit = step.split("_")[0]
    files: dict[str, Path] = {}
    if round_index > 0:
        files["labels"] = root / f"labels_{'superpixel' if unit == 'superpixel' else 'pixel'}.npz"
        if step != "pixel_random":
            files["inference"] = root / "inference.h5"
    if unit == "superpixel":
        files.update(superpixels=root / "superpixels.h5", regions=out / "regions.npz")
    steps.select_queries(root / "pool.h5", select, round_index, out / "queries.csv", **files)
    _write_peak(out)


def _write_peak(out: Path) -> None:
    """This process's peak resident set size (kB) to ``out/peak_kb``."""
    peak = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    (out / "peak_kb").write_text(peak.split()[1])


def measure(root: Path, step: str, core: int) -> dict[str, Any]:
    """Wall seconds, peak RSS (GB) and queries (``-``: a step that selects none) of one step in a fresh
    process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "--root", str(root), "--run-step", step, "--core", str(core)],
                             env=env)
    if child.wait() != 0:
        raise SystemExit(f"step {step} failed (status {child.returncode})")
    seconds = time.perf_counter() - started
    written = root / "out" / step / "queries.csv"
    queries = len(written.read_text().splitlines()) - 1 if written.exists() else "-"
    peak_kb = int((root / "out" / step / "peak_kb").read_text())
    return {"seconds": seconds, "peak_gb": peak_kb * 1024 / 1e9, "queries": queries}


def report(root: Path, results: dict[str, dict[str, Any]], generated: dict[str, float]) -> str:
    with h5py.File(root / "pool.h5") as h5:
        n, height, width = h5["train/masks"].shape
    sizes = {name: (root / name).stat().st_size / 1e9 for name in ("pool.h5", "superpixels.h5", "inference.h5")
             if (root / name).exists()}
    groups = {}
    if "inference.h5" in sizes:
        with h5py.File(root / "inference.h5") as h5:
            groups = {g: sum(h5[g][k].id.get_storage_size() if isinstance(h5[g][k], h5py.Dataset) else
                             sum(d.id.get_storage_size() for d in h5[g][k].values()) for k in h5[g]) for g in h5}
    lines = [f"Pool: {n} images of {height} x {width} ({n * height * width / 1e9:.2f} G pixels), 19 classes; "
             "files: " + ", ".join(f"{name} {size:.2f} GB" for name, size in sizes.items())
             + "".join(f", dump group {g} {b / (n * height * width):.3f} bytes/pixel" for g, b in groups.items())
             + ".",
             "Generated in " + ", ".join(f"{k} {v:.0f} s" for k, v in generated.items()) + "." if generated else "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; each step "
             "pinned to one core.", "",
             "| step | queries | seconds | peak RSS GB |", "|---|---:|---:|---:|"]
    lines += [f"| {step} | {r['queries']} | {r['seconds']:.1f} | {r['peak_gb']:.2f} |" for step, r in results.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/large_pool"))
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=4, help="of the fake model's inference")
    parser.add_argument("--steps", nargs="*", default=list(STEPS), choices=STEPS)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--run-step", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_step:
        run_step(args.root, args.run_step, args.core)
        return
    generated = generate(args.root, args.n, args.height, args.width, args.batch_size, args.steps)
    results = {}
    for step in args.steps:
        results[step] = measure(args.root, step, args.core)
        print(f"{step}: {results[step]}", file=sys.stderr, flush=True)
    text = report(args.root, results, generated)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if not args.keep:
        shutil.rmtree(args.root)


if __name__ == "__main__":
    main()
