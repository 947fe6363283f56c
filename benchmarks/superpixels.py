"""Superpixel queries over CamVid train: SEEDS, region statistics, adaptive merge and acquisition, against a
faithful re-implementation of the official per-region algorithm, side by side on the same inputs.

Ours (``alseg.superpixel*``, ``alseg.region_stats``, ``alseg.acquire.superpixel*``): statistics of every
base superpixel in one bincount pass per field, adjacency from label changes, merging as a parent-id array
(no map rewritten), merged-region statistics added up from the base ones, class-balanced top-B selection.

Official (``scripts/gen_adaptive_spx.py``, ``scripts/extract_model_predictions_cb.py`` and
``scripts/region_selection_using_cb.py`` of the ICCV 2023 code, re-implemented here at one resolution):
``np.where(R == j)`` per region for its mean softmax, size and uncertainty, and once more for its
"center"; edges from a Python loop over the label changes with a membership test per pair; the merge
flood fill with ``scipy.spatial.distance.jensenshannon`` per pair and ``R = np.where(R == merged, seed,
R)`` per merge; then per merged region another ``np.where`` scan for its mean uncertainty and its
predicted dominant class, class weights ``exp(-p)``, min-max normalised uncertainty and an argsort.
(Graph: a dict of dicts instead of networkx, which only favours the official side.)

Inputs: CamVid train images (SEEDS at 256 px per superpixel) and a synthetic softmax per image, seeded:
a smooth random field (low-resolution Gaussian logits upsampled) plus blurred ground-truth evidence, so
that neighbouring superpixels of one object have close distributions and merging really happens. Both
sides get the same softmax, per-pixel uncertainty ``p2 / p1`` and argmax maps (the inference dump's
fields); making those is not timed. Times are process CPU seconds (``time.process_time``; the machine may
be shared), wall seconds in brackets.

    nice -n 19 python benchmarks/superpixels.py --n 367 --official-n 20 --out benchmarks/results/superpixels.md
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.spatial import distance

from alseg.acquire.superpixel import (
    candidate_regions,
    merge_summary,
    predicted_class_shares,
    query_of_base,
    region_scores,
    select_regions,
)
from alseg.acquire.superpixel_merge import adaptive_merge, superpixel_edges
from alseg.acquire.superpixel_stats import SuperpixelStats, superpixel_stats_from_probs
from alseg.superpixel_methods import seeds_superpixels
from alseg.superpixels import (
    offsets_from_counts,
    read_superpixels,
    write_superpixels,
)

REPO = Path(__file__).resolve().parents[1]
NUM_CLASSES = 11
IGNORE = 11


class Clock:
    """Accumulates CPU and wall seconds per stage."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    def run(self, stage: str, fn: Callable[[], Any]) -> Any:
        cpu, wall = time.process_time(), time.perf_counter()
        value = fn()
        self.cpu[stage] = self.cpu.get(stage, 0.0) + time.process_time() - cpu
        self.wall[stage] = self.wall.get(stage, 0.0) + time.perf_counter() - wall
        return value


# ---------------------------------------------------------------------------------------------- inputs


def load_camvid(root: Path, n: int, resize: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """First ``n`` train images (RGB uint8 (n, H, W, 3)) and masks (uint8 (n, H, W)), sorted by name."""
    names = sorted(p.name for p in (root / "train").glob("*.png"))[:n]
    images, masks = [], []
    for name in names:
        image = cv2.cvtColor(cv2.imread(str(root / "train" / name), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(str(root / "trainannot" / name), cv2.IMREAD_GRAYSCALE)
        if resize is not None:
            image = cv2.resize(image, (resize[1], resize[0]), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, (resize[1], resize[0]), interpolation=cv2.INTER_NEAREST)
        images.append(image)
        masks.append(mask)
    return np.stack(images), np.stack(masks)


def synthetic_softmax(mask: np.ndarray, seed: int) -> np.ndarray:
    """A seeded, spatially smooth softmax (float32 (C, H, W)) that half-follows the ground truth."""
    rng = np.random.default_rng(seed)
    height, width = mask.shape
    low = rng.normal(0.0, 1.0, (NUM_CLASSES, max(2, height // 60), max(2, width // 60))).astype(np.float32)
    logits = np.stack([cv2.resize(low[c], (width, height), interpolation=cv2.INTER_CUBIC)
                       for c in range(NUM_CLASSES)])
    for c in range(NUM_CLASSES):
        evidence = (mask == c).astype(np.float32)
        if evidence.any():
            logits[c] += 5.0 * cv2.GaussianBlur(evidence, (0, 0), 4.0)
    logits -= logits.max(axis=0, keepdims=True)
    probs = np.exp(logits)
    return (probs / probs.sum(axis=0, keepdims=True)).astype(np.float32)


def dump_fields(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """top1, top2 (float32 (H, W)), pred (int64 (H, W)) and u = top2 / top1, as the inference dump has them."""
    top = np.partition(probs, NUM_CLASSES - 2, axis=0)
    top1, top2 = top[-1], top[-2]
    return top1, top2, probs.argmax(axis=0), (top2 / top1).astype(np.float32)


# ---------------------------------------------------------------------------------- official, faithful


def official_build_region_graph(feature: np.ndarray, uncertainty: np.ndarray, region_map: np.ndarray):
    """``build_region_graph``: one full-image scan per region (twice: statistics and 'center')."""
    region_feature = {}
    for index in np.unique(region_map):
        y, x = np.where(region_map == index)
        region_feature[index] = (np.mean(feature[y, x], axis=0), len(y), np.mean(uncertainty[y, x]))
    graph: dict[int, dict[int, None]] = {}
    center = {}
    for index in np.unique(region_map):
        y, x = np.where(region_map == index)
        center[index] = (y[0], x[0])
        graph[index] = {}
    for y, x in zip(*np.where(region_map[:, :-1] != region_map[:, 1:])):
        u, v = region_map[y, x], region_map[y, x + 1]
        if v not in graph[u]:
            graph[u][v] = None
            graph[v][u] = None
    for y, x in zip(*np.where(region_map[:-1, :] != region_map[1:, :])):
        u, v = region_map[y, x], region_map[y + 1, x]
        if v not in graph[u]:
            graph[u][v] = None
            graph[v][u] = None
    return graph, center, region_feature


def official_merge(graph, center, region_map: np.ndarray, feature: dict, eps: float) -> np.ndarray:
    """``merge_graph_from_uncert``: flood fill from uncertain seeds, one full-map relabel per merge."""
    order = sorted(feature, key=lambda u: -feature[u][2])
    merged_arr: list[int] = []
    for u in order:
        if u in merged_arr:
            continue
        merged_arr.append(u)
        adj_arr = [u]
        while adj_arr:  # the official code's first loop over u's neighbours is this loop's first pass
            adj = adj_arr.pop()
            for v in graph[adj]:
                if v not in merged_arr:
                    org_idx = region_map[center[adj]]
                    merged_idx = region_map[center[v]]
                    if org_idx != merged_idx and distance.jensenshannon(feature[adj][0], feature[v][0]) < eps:
                        region_map = np.where(region_map == merged_idx, org_idx, region_map)
                        feature[v] = feature[adj]
                        merged_arr.append(v)
                        adj_arr.append(v)
    return region_map


def official_region_scores(region_map: np.ndarray, uncertainty: np.ndarray, pred: np.ndarray, first_id: int,
                           class_to_region: dict[int, list[list[int]]], region_uncertainty: dict[int, float]) -> None:
    """``compute_sp_pseudo_label_uncertainty``: per merged region, a full scan for u(s) and D(s)."""
    for j in np.unique(region_map):
        y, x = np.where(region_map == j)
        unique, unique_counts = np.unique(pred[y, x], return_counts=True)
        class_id = int(unique[np.argmax(unique_counts)])
        class_to_region[class_id].append([int(j) + first_id, y.size])
        region_uncertainty[int(j) + first_id] = float(np.mean(uncertainty[y, x]))


def official_select(class_to_region, region_uncertainty, total_pixels: int, budget: int) -> np.ndarray:
    """``region_selection_using_cb``: min-max normalised u times exp(-p(class)), top B by argsort."""
    ids = np.array(sorted(region_uncertainty))
    u = np.array([region_uncertainty[i] for i in ids])
    u = (u - u.min()) / (u.max() - u.min())
    weight = np.ones(ids.size)
    position = {int(r): k for k, r in enumerate(ids)}
    for c in range(NUM_CLASSES):
        pixels = sum(size for _, size in class_to_region[c])
        w = np.exp(-pixels / total_pixels)
        for region, _ in class_to_region[c]:
            weight[position[region]] = w
    return ids[np.argsort(u * weight)[::-1][:budget]]


# ------------------------------------------------------------------------------------------------- ours


def ours_statistics(probs: list[np.ndarray], labels: np.ndarray, counts: np.ndarray, fields: list[tuple]):
    """Per base superpixel: mean softmax (S, C) and SuperpixelStats, image by image (as the infer step)."""
    mean_prob, stats = [], []
    for i, p in enumerate(probs):
        top1, top2, pred, _ = fields[i]
        st, mp = superpixel_stats_from_probs(p[None], labels[i:i + 1], counts[i:i + 1], top1[None], top2[None],
                                             pred[None])
        mean_prob.append(mp)
        stats.append(st)
    return np.concatenate(mean_prob), SuperpixelStats.concatenate(stats)


def ours_acquire(parent, stats, offsets, budget: int, rng: np.random.Generator):
    asked = np.zeros(stats.num_superpixels, dtype=bool)
    regions = candidate_regions(parent, stats, asked, offsets)
    shares = predicted_class_shares(parent, stats, mode="region")
    scores = region_scores(regions, "class_balanced", shares)
    chosen = select_regions(regions, scores, min(budget, len(regions)), rng)
    return query_of_base(parent, asked, chosen.region), len(regions)


# ------------------------------------------------------------------------------------------------- main


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{model}, nproc {os.cpu_count()}, load average {load:.2f} at start; Python "
            f"{platform.python_version()}, numpy {np.__version__}, OpenCV {cv2.__version__}")


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fmt(clock: Clock, stage: str, n: int) -> str:
    cpu, wall = clock.cpu.get(stage, 0.0), clock.wall.get(stage, 0.0)
    return f"{cpu:.3f} ({wall:.3f}) | {1000 * cpu / n:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--camvid", type=Path, default=REPO.parent / "shared" / "data" / "camvid")
    parser.add_argument("--n", type=int, default=367, help="train images for our pipeline (all: 367)")
    parser.add_argument("--official-n", type=int, default=20, help="first images also run the official way")
    parser.add_argument("--resize", type=int, nargs=2, metavar=("H", "W"), default=None)
    parser.add_argument("--pixels-per-superpixel", type=float, default=256)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--clicks-per-image", type=int, default=10, help="budget B = this x images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown report here")
    args = parser.parse_args()
    n_official = min(args.official_n, args.n)

    images, masks = load_camvid(args.camvid, args.n, tuple(args.resize) if args.resize else None)
    n, height, width = masks.shape
    print(f"{n} images {height}x{width}", file=sys.stderr)

    ours = Clock()
    maps = [ours.run("seeds", lambda im=im: seeds_superpixels(im, args.pixels_per_superpixel)) for im in images]
    labels = np.stack([m for m, _ in maps])
    counts = np.array([c for _, c in maps], dtype=np.int64)
    offsets = offsets_from_counts(counts)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "superpixels.h5"
        ours.run("file write", lambda: write_superpixels(path, zip(labels, counts.tolist()), n, height, width,
                                                         "seeds", max_per_image=int(counts.max())))
        file_bytes = path.stat().st_size
        reread = ours.run("file read", lambda: read_superpixels(path, expected_shape=(n, height, width)))
        assert np.array_equal(reread.labels, labels)

    # our statistics over all n images, one image's softmax at a time (memory as in the infer step)
    mean_prob_parts, stats_parts = [], []
    for i in range(n):
        probs = synthetic_softmax(masks[i], args.seed * 100003 + i)
        fields = dump_fields(probs)
        one = slice(i, i + 1)
        mp, st = ours.run("statistics", lambda p=probs, s=one, f=fields: ours_statistics([p], labels[s], counts[s],
                                                                                          [f]))
        mean_prob_parts.append(mp)
        stats_parts.append(st)
    mean_prob = np.concatenate(mean_prob_parts)
    stats = SuperpixelStats.concatenate(stats_parts)
    edges = ours.run("adjacency", lambda: superpixel_edges(labels, offsets[:-1]))
    parent = ours.run("merge", lambda: adaptive_merge(mean_prob, stats.mean_uncertainty, edges, offsets, args.eps))
    _, num_candidates = ours.run("acquisition", lambda: ours_acquire(parent, stats, offsets,
                                                                     args.clicks_per_image * n,
                                                                     np.random.default_rng(args.seed)))
    summary = merge_summary(parent, offsets)

    # side by side on the first n_official images: ours again (on that pool only) and the official way
    sub = slice(0, n_official)
    sub_offsets = offsets_from_counts(counts[sub])
    sub_probs = [synthetic_softmax(masks[i], args.seed * 100003 + i) for i in range(n_official)]
    sub_fields = [dump_fields(p) for p in sub_probs]
    mine = Clock()
    mp, st = mine.run("statistics", lambda: ours_statistics(sub_probs, labels[sub], counts[sub], sub_fields))
    sub_edges = mine.run("adjacency", lambda: superpixel_edges(labels[sub], sub_offsets[:-1]))
    sub_parent = mine.run("merge", lambda: adaptive_merge(mp, st.mean_uncertainty, sub_edges, sub_offsets,
                                                          args.eps))
    mine.run("acquisition", lambda: ours_acquire(sub_parent, st, sub_offsets, args.clicks_per_image * n_official,
                                                 np.random.default_rng(args.seed)))
    official = Clock()
    class_to_region: dict[int, list[list[int]]] = {c: [] for c in range(NUM_CLASSES)}
    region_uncertainty: dict[int, float] = {}
    same_partition, same_base = 0, 0
    for i in range(n_official):
        feature = np.ascontiguousarray(sub_probs[i].transpose(1, 2, 0))
        _, _, pred, u = sub_fields[i]
        region_map = labels[i].astype(np.int64)
        graph, center, region_feature = official.run(
            "statistics + adjacency", lambda f=feature, u=u, r=region_map: official_build_region_graph(f, u, r))
        merged = official.run("merge", lambda g=graph, c=center, r=region_map, f=region_feature:
                              official_merge(g, c, r, f, args.eps))
        official.run("acquisition", lambda m=merged, u=u, p=pred, first=int(sub_offsets[i]):
                     official_region_scores(m, u, p, first, class_to_region, region_uncertainty))
        # compare partitions: official seed label of each base superpixel vs our parent (local ids)
        theirs = np.zeros(counts[i], dtype=np.int64)
        theirs[region_map.reshape(-1)] = merged.reshape(-1)
        ours_local = sub_parent[sub_offsets[i]:sub_offsets[i + 1]] - sub_offsets[i]
        same_partition += int(np.array_equal(theirs, ours_local))
        same_base += int(np.sum(theirs == ours_local))
    official.run("acquisition", lambda: official_select(class_to_region, region_uncertainty,
                                                        n_official * height * width,
                                                        args.clicks_per_image * n_official))
    ours_core = sum(mine.cpu.values())
    official_core = sum(official.cpu.values())

    rows = [
        ("| stage | ours, all n images: CPU s (wall s) | ms / image | ours, first m: CPU s | "
         "official, first m: CPU s | speed-up |"),
        "|---|---|---|---|---|---|",
        f"| SEEDS (OpenCV, both sides) | {fmt(ours, 'seeds', n)} | - | - | - |",
    ]
    stat_ours = mine.cpu["statistics"] + mine.cpu["adjacency"]
    stat_off = official.cpu["statistics + adjacency"]
    rows.append(f"| base statistics + adjacency | {ours.cpu['statistics'] + ours.cpu['adjacency']:.3f} "
                f"({ours.wall['statistics'] + ours.wall['adjacency']:.3f}) | "
                f"{1000 * (ours.cpu['statistics'] + ours.cpu['adjacency']) / n:.2f} | {stat_ours:.3f} | "
                f"{stat_off:.3f} | {stat_off / stat_ours:.0f}x |")
    for stage in ("merge", "acquisition"):
        rows.append(f"| {stage} | {fmt(ours, stage, n)} | {mine.cpu[stage]:.3f} | {official.cpu[stage]:.3f} | "
                    f"{official.cpu[stage] / mine.cpu[stage]:.0f}x |")
    ours_all = sum(ours.cpu[k] for k in ("statistics", "adjacency", "merge", "acquisition"))
    rows.append(f"| **statistics + merge + acquisition** | {ours_all:.3f}"
                f" | {1000 * ours_all / n:.2f} | {ours_core:.3f} | "
                f"{official_core:.3f} | **{official_core / ours_core:.0f}x** |")
    per_image = (f"Per image, ours amortised over all {n} images against the official over its {n_official}: "
                 f"{1000 * ours_all / n:.2f} ms against {1000 * official_core / n_official:.1f} ms, "
                 f"{(official_core / n_official) / (ours_all / n):.0f}x (our merge loop has a fixed cost per "
                 f"call that a larger pool shares).")
    pool = (f"Pool: CamVid train, n = {n} images of {height}x{width} ({n * height * width / 1e6:.1f}M pixels); "
            f"m = {n_official} for the side-by-side run. SEEDS at {args.pixels_per_superpixel:g} px per "
            f"superpixel: {counts.mean():.0f} base superpixels per image ({height * width / counts.mean():.0f} px "
            f"each). Merging at eps {args.eps}: {summary['regions_per_image']:.0f} regions per image "
            f"({summary['bases_per_region']:.2f} base superpixels each); {num_candidates} candidate regions; "
            f"B = {args.clicks_per_image} clicks per image.")
    storage = (f"Superpixel file ({n} maps, uint16, gzip-4 + shuffle): {file_bytes / n / 1e3:.1f} kB per image "
               f"(raw int32 {height * width * 4 / 1e3:.0f} kB), written in {ours.cpu['file write']:.2f} s CPU, read "
               f"and checked in {ours.cpu['file read']:.2f} s CPU.")
    agreement = (f"Same merge as the official code: identical partition on {same_partition} of {n_official} "
                 f"images, {same_base} of {int(counts[sub].sum())} base superpixels in the same region.")
    report = "\n".join([f"Machine: {machine()}; alseg commit {git_commit()}.", "", pool, "", *rows, "", per_image, "", storage, "", agreement])
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "nice -n 19 python benchmarks/superpixels.py " + " ".join(sys.argv[1:])
        args.out.write_text(f"# Superpixel benchmark\n\nCommand (from the repository root):\n\n    {command}\n\n"
                            f"{report}\n")


if __name__ == "__main__":
    main()
