"""Size and throughput of the inference dump (``inference.h5``) for CamVid-sized arrays, per compression.

For each compression option the per-pixel fields of N images (360 x 480, C = 11) are written through
:class:`alseg.inference_file.InferenceWriter` (the code path of ``write_inference``, minus the model), then read back
whole (as pixel acquisition does) and one random image at a time. Throughput is in uncompressed MB of the
four per-pixel fields (7 bytes per pixel) per second, and in images per second. The fields are computed
once, before timing, so the numbers are I/O and (de)compression only.

Probability sources (``--source``):

- ``synthetic`` (default): a smooth synthetic softmax. Per image and class, a 9 x 12 grid of N(0, 1)
  logits is upsampled (bicubic) to a quarter of full size, multiplied by 14, perturbed with N(0, 0.3^2)
  noise, then upsampled bilinearly x4 as DeepLabV3+/FPN heads do: large confident regions with uncertain
  boundaries, like a trained model's output (median top1 0.99, 72% of pixels above 0.9).
- ``model``: softmax of a randomly initialised small U-Net on real CamVid train images (needs the data).
  Near-uniform, noisy probabilities: a pessimistic case for compression.

Reads directly after writes come from the OS page cache, so read numbers measure decompression rather
than the disk. Usage::

    python benchmarks/inference_io.py [--n 100] [--source synthetic|model] [--out benchmarks/out]
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

from alseg.infer import probability_fields
from alseg.inference_file import PIXEL_FIELDS, InferenceWriter

HEIGHT, WIDTH, NUM_CLASSES = 360, 480, 11
OPTIONS = ["none", "lzf", "lzf+shuffle", "gzip-1", "gzip-1+shuffle", "gzip-4+shuffle", "gzip-6+shuffle"]
BYTES_PER_PIXEL = 2 + 2 + 2 + 1  # top1, top2, entropy float16 + pred uint8
BATCH = 4


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


def make_fields(n: int, source: str, camvid: Path) -> list[dict[str, np.ndarray]]:
    """Per-batch pixel fields of n images, as ``write_inference`` computes them."""
    rng = np.random.default_rng(0)
    model = None
    if source == "model":
        from alseg.models import build_model

        torch.manual_seed(0)
        model = build_model({"name": "small_unet"}, NUM_CLASSES).eval()
    batches = []
    for start in range(0, n, BATCH):
        count = min(BATCH, n - start)
        if model is None:
            probs = synthetic_probabilities(count, rng)
        else:
            probs = model_probabilities(start, count, camvid, model)
        fields = probability_fields(probs)
        batches.append({k: fields[k].numpy() for k in PIXEL_FIELDS})
    return batches


def measure(option: str, batches: list[dict[str, np.ndarray]], n: int, folder: Path) -> dict[str, float]:
    path = folder / f"dump_{option.replace('+', '_')}.h5"
    started = time.perf_counter()
    with h5py.File(path, "w") as h5:
        writer = InferenceWriter(h5, n, HEIGHT, WIDTH, NUM_CLASSES, compression=option)
        for k, fields in enumerate(batches):
            writer.write(k * BATCH, fields)
    write_s = time.perf_counter() - started
    size = path.stat().st_size
    with h5py.File(path, "r") as h5:
        field_kb = {name: h5[f"pixel/{name}"].id.get_storage_size() / n / 1e3 for name in PIXEL_FIELDS}

    started = time.perf_counter()
    with h5py.File(path, "r") as h5:
        for name in PIXEL_FIELDS:
            h5[f"pixel/{name}"][:]
    read_s = time.perf_counter() - started

    picks = np.random.default_rng(1).choice(n, size=min(n, 50), replace=False)
    started = time.perf_counter()
    with h5py.File(path, "r") as h5:
        for i in picks:
            for name in PIXEL_FIELDS:
                h5[f"pixel/{name}"][i]
    random_s = (time.perf_counter() - started) / len(picks)
    path.unlink()

    raw_mb = n * HEIGHT * WIDTH * BYTES_PER_PIXEL / 1e6
    return {
        "kb_per_image": size / n / 1e3,
        "ratio": n * HEIGHT * WIDTH * BYTES_PER_PIXEL / size,
        "write_mb_s": raw_mb / write_s,
        "write_img_s": n / write_s,
        "read_mb_s": raw_mb / read_s,
        "read_img_s": n / read_s,
        "one_image_ms": random_s * 1e3,
        "fields": " / ".join(f"{field_kb[name]:.0f}" for name in PIXEL_FIELDS),
    }


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
    batches = make_fields(args.n, args.source, args.camvid)
    top1 = np.concatenate([b["top1"] for b in batches]).astype(np.float32)
    print(
        f"\nInference dump I/O: N={args.n}, {HEIGHT}x{WIDTH}, C={NUM_CLASSES}, source={args.source} "
        f"(median top1 {np.median(top1):.3f}, share of pixels with top1 > 0.9: {np.mean(top1 > 0.9):.0%}); "
        f"raw per-pixel fields {HEIGHT * WIDTH * BYTES_PER_PIXEL / 1e3:.0f} kB/image\n"
    )
    print(
        "| compression | kB/image | top1 / top2 / entropy / pred kB | ratio | write MB/s | write img/s "
        "| read MB/s | read img/s | one image ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        for option in args.options:
            r = measure(option, batches, args.n, Path(folder))
            print(
                f"| {option} | {r['kb_per_image']:.0f} | {r['fields']} | {r['ratio']:.2f} "
                f"| {r['write_mb_s']:.0f} | {r['write_img_s']:.1f} | {r['read_mb_s']:.0f} "
                f"| {r['read_img_s']:.1f} | {r['one_image_ms']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
