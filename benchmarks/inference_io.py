"""Size and throughput of the inference dump (``inference.h5``) at CamVid size, before and since issue 15.

Two layouts of the pixel group, N images of 360 x 480 with C = 11, per compression:

- ``maps`` (before issue 15): the whole per-pixel fields, ``top1``, ``top2``, ``entropy`` float16 and
  ``pred`` uint8, one image per chunk (written here with h5py as that writer did; its code is gone).
  Selection read them whole (margin: ``top1`` and ``top2``).
- ``candidates`` (now, :mod:`alseg.pixel_dump`): per strategy, the eligible pixels that PixelPick's draw of
  round r + 1 can reach (budget 10, top 5 %; 10 pixels per image already asked), written through
  :class:`alseg.pixel_dump.PixelDumpWriter`, the code path of ``write_inference``.

Then the superpixel group (:func:`alseg.inference_file.create_superpixel_group`) at 256 px per superpixel
(a 16 x 16 grid), as the dump stored it before (int64 counts, uncompressed) and now (int32, compressed).

Bytes are the file's size per pool pixel. Write throughput: pool images per second through the writer
(fields computed once, before timing). Read throughput: images per second that margin selection reads
(``maps``: ``top1`` and ``top2`` whole; ``candidates``: its candidates chunk by chunk, as
:func:`alseg.units.pixel.select_pixel_queries` does), and the three strategies' reads for ``candidates``.
Reads directly after writes come from the OS page cache: they measure decompression, not the disk.

Probability sources (``--source``):

- ``synthetic`` (default): a smooth synthetic softmax. Per image and class, a 9 x 12 grid of N(0, 1)
  logits is upsampled (bicubic) to a quarter of full size, multiplied by 14, perturbed with N(0, 0.3^2)
  noise, then upsampled bilinearly x4 as DeepLabV3+/FPN heads do: large confident regions with uncertain
  boundaries, like a trained model's output (median top1 0.99, 72% of pixels above 0.9).
- ``model``: softmax of a randomly initialised small U-Net on real CamVid train images (needs the data).
  Near-uniform, noisy probabilities: its entropy saturates in float16, so most of an image ties at the cut.

Usage::

    python benchmarks/inference_io.py [--n 100] [--source synthetic|model] [--options gzip-1+shuffle ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch

from alseg.acquire.superpixel_stats import superpixel_stats_from_probs
from alseg.infer import probability_fields
from alseg.inference_file import InferenceDump, compression_options, create_superpixel_group, write_superpixel_rows
from alseg.pixel_dump import STRATEGIES, PixelDumpRequest, PixelDumpWriter, read_pixel_candidates

HEIGHT, WIDTH, NUM_CLASSES = 360, 480, 11
OPTIONS = ["none", "lzf+shuffle", "gzip-1+shuffle", "gzip-4+shuffle"]
MAP_FIELDS = {"top1": np.float16, "top2": np.float16, "entropy": np.float16, "pred": np.uint8}
BATCH = 4
SUPERPIXEL = 16  # grid cell side: 256 px per superpixel


def synthetic_probabilities(count: int, rng: np.random.Generator) -> torch.Tensor:
    """Smooth synthetic softmax, float32 (count, C, H, W) (see the module docstring)."""
    low_h, low_w = HEIGHT // 4, WIDTH // 4
    coarse = rng.standard_normal((count, NUM_CLASSES, 9, 12)).astype(np.float32)
    low = np.stack([
        np.stack([cv2.resize(c, (low_w, low_h), interpolation=cv2.INTER_CUBIC) for c in image])
        for image in coarse
    ])
    low = 14.0 * low + 0.3 * rng.standard_normal(low.shape).astype(np.float32)
    # stride-4 logits upsampled bilinearly, as DeepLabV3+ and FPN heads do
    logits = torch.nn.functional.interpolate(torch.from_numpy(low), size=(HEIGHT, WIDTH), mode="bilinear")
    return torch.softmax(logits, dim=1)


def model_probabilities(start: int, count: int, camvid: Path, model: torch.nn.Module) -> torch.Tensor:
    """Softmax of a random small U-Net on CamVid train images ``start .. start + count``."""
    from alseg.augment import normalise_images
    from alseg.models import forward_logits

    files = sorted((camvid / "train").glob("*.png"))[start : start + count]
    if len(files) < count:
        raise SystemExit(f"not enough CamVid train images in {camvid / 'train'}")
    images = np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])
    with torch.inference_mode():
        return torch.softmax(forward_logits(model, torch.from_numpy(normalise_images(images))), dim=1)


def grid_superpixels(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Local ids of a 16 x 16 grid (count, H, W) and the per-image counts (count,)."""
    rows, cols = -(-HEIGHT // SUPERPIXEL), -(-WIDTH // SUPERPIXEL)
    ids = (np.arange(HEIGHT)[:, None] // SUPERPIXEL) * cols + np.arange(WIDTH)[None, :] // SUPERPIXEL
    return np.broadcast_to(ids, (count, HEIGHT, WIDTH)), np.full(count, rows * cols)


def make_batches(n: int, source: str, camvid: Path) -> list[dict[str, np.ndarray]]:
    """Per-batch pixel fields of n images as ``write_inference`` computes them, and superpixel statistics."""
    rng = np.random.default_rng(0)
    model = None
    if source == "model":
        from alseg.models import build_model

        torch.manual_seed(0)
        model = build_model({"name": "small_unet"}, NUM_CLASSES).eval()
    batches = []
    for start in range(0, n, BATCH):
        count = min(BATCH, n - start)
        probs = synthetic_probabilities(count, rng) if model is None else model_probabilities(start, count, camvid,
                                                                                                model)
        fields = {k: v.numpy() for k, v in probability_fields(probs).items() if k in MAP_FIELDS}
        labels, counts = grid_superpixels(count)
        stats, mean_prob = superpixel_stats_from_probs(probs.numpy(), labels, counts, fields["top1"], fields["top2"],
                                                       fields["pred"])
        fields["superpixel"] = {"pixel_count": stats.pixel_count, "uncertainty_sum": stats.uncertainty_sum,
                                "pred_counts": stats.pred_counts, "mean_prob": mean_prob}
        batches.append(fields)
    return batches


def asked_request(n: int) -> PixelDumpRequest:
    """Round 1's draws (PixelPick: budget 10, top 5 %) over pools whose 10 random pixels per image were asked."""
    asked = np.zeros((n, HEIGHT * WIDTH), bool)
    rng = np.random.default_rng(1)
    for row in asked:
        row[rng.choice(row.size, 10, replace=False)] = True
    asked = asked.reshape(n, HEIGHT, WIDTH)
    return PixelDumpRequest(10, 5.0, lambda start, stop: ~asked[start:stop], {"benchmark": True})


def write_maps(path: Path, batches: list[dict], n: int, option: str) -> None:
    with h5py.File(path, "w") as h5:
        for name, dtype in MAP_FIELDS.items():
            h5.create_dataset(f"pixel/{name}", shape=(n, HEIGHT, WIDTH), dtype=dtype, chunks=(1, HEIGHT, WIDTH),
                              **compression_options(option))
        for k, fields in enumerate(batches):
            for name, dtype in MAP_FIELDS.items():
                h5[f"pixel/{name}"][k * BATCH : k * BATCH + len(fields[name])] = fields[name].astype(dtype)


def write_candidates(path: Path, batches: list[dict], n: int, option: str, request: PixelDumpRequest) -> None:
    with h5py.File(path, "w") as h5:
        writer = PixelDumpWriter(h5, request, n, HEIGHT, WIDTH, compression=option)
        for k, fields in enumerate(batches):
            writer.write(k * BATCH, fields)
        h5.attrs["image_start"], h5.attrs["image_stop"] = 0, n


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def read_candidates(path: Path, n: int, strategies: tuple[str, ...]) -> None:
    with InferenceDump(path) as dump:
        for strategy in strategies:
            for start in range(0, n, 185):  # the chunk of 2^25 pixels selection reads at CamVid size
                read_pixel_candidates(dump, strategy, start, min(start + 185, n))


def measure_layout(layout: str, path: Path, option: str, batches: list[dict], n: int,
                   request: PixelDumpRequest) -> dict[str, float]:
    """Bytes per pixel and throughput of one layout of the pixel group."""
    if layout == "maps":
        write_s = timed(lambda: write_maps(path, batches, n, option))
        with h5py.File(path) as h5:
            read_s = timed(lambda: [h5[f"pixel/{name}"][()] for name in ("top1", "top2")])
        all_s = float("nan")
    else:
        write_s = timed(lambda: write_candidates(path, batches, n, option, request))
        read_s = timed(lambda: read_candidates(path, n, ("margin",)))
        all_s = timed(lambda: read_candidates(path, n, STRATEGIES))
    size = path.stat().st_size
    path.unlink()
    return {"bytes_px": size / (n * HEIGHT * WIDTH), "write_img_s": n / write_s, "read_img_s": n / read_s,
            "read_all_img_s": n / all_s}


def measure_pixels(option: str, batches: list[dict], n: int, folder: Path) -> dict[str, dict[str, float]]:
    """Bytes per pixel and throughput of both layouts of the pixel group."""
    request = asked_request(n)
    return {layout: measure_layout(layout, folder / f"{layout}_{option.replace('+', '_')}.h5", option, batches, n,
                                   request) for layout in ("maps", "candidates")}


def measure_superpixels(batches: list[dict], n: int, folder: Path) -> dict[str, float]:
    """Bytes per pixel of the superpixel group: as stored before (int64 counts, uncompressed) and now."""
    stats = {name: np.concatenate([b["superpixel"][name] for b in batches]) for name in batches[0]["superpixel"]}
    sizes = {}
    with h5py.File(folder / "before.h5", "w") as h5:
        for name, dtype in {"pixel_count": np.int64, "uncertainty_sum": np.float64, "pred_counts": np.int32,
                            "mean_prob": np.float32}.items():
            h5[f"superpixel/{name}"] = stats[name].astype(dtype)
    with h5py.File(folder / "now.h5", "w") as h5:
        create_superpixel_group(h5, stats["pixel_count"].size, NUM_CLASSES)
        write_superpixel_rows(h5, 0, stats)
    for name in ("before", "now"):
        sizes[name] = (folder / f"{name}.h5").stat().st_size / (n * HEIGHT * WIDTH)
        (folder / f"{name}.h5").unlink()
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="images (CamVid train has 367)")
    parser.add_argument("--source", choices=["synthetic", "model"], default="synthetic")
    parser.add_argument(
        "--camvid", type=Path, default=Path(os.environ.get("ALSEG_CAMVID", "../shared/data/camvid")),
        help="CamVid root (SegNet layout), for --source model",
    )
    parser.add_argument("--options", nargs="*", default=OPTIONS)
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the temporary dumps")
    args = parser.parse_args()

    print(f"preparing fields of {args.n} images ({args.source})...", file=sys.stderr, flush=True)
    batches = make_batches(args.n, args.source, args.camvid)
    top1 = np.concatenate([b["top1"] for b in batches]).astype(np.float32)
    print(f"\nInference dump, pixel group: N={args.n}, {HEIGHT}x{WIDTH}, C={NUM_CLASSES}, source={args.source} "
          f"(median top1 {np.median(top1):.3f}, share of pixels with top1 > 0.9: {np.mean(top1 > 0.9):.0%})\n")
    print("| layout | compression | bytes/pixel | write img/s | margin read img/s | 3 strategies read img/s |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        for option in args.options:
            for layout, r in measure_pixels(option, batches, args.n, Path(folder)).items():
                print(f"| {layout} | {option} | {r['bytes_px']:.3f} | {r['write_img_s']:.1f} | {r['read_img_s']:.1f} "
                      f"| {r['read_all_img_s']:.1f} |", flush=True)
        sizes = measure_superpixels(batches, args.n, Path(folder))
    print(f"\nSuperpixel group, 256 px per superpixel (16 x 16 grid): {sizes['before']:.3f} bytes/pixel before "
          f"(int64 counts, uncompressed), {sizes['now']:.3f} now (int32, gzip-1+shuffle)")


if __name__ == "__main__":
    main()
