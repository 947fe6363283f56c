"""The pool's inference pass in shards: seconds and bytes of each shard job, one core each.

Prepares CamVid's train split as the pool (``--resize``, default full 360 x 480; cached under ``--root``),
saves a model (``--model``: the pretrained protocol's DeepLabV3+ EfficientNet-Lite0 with ImageNet weights,
untrained head: the pass costs what a trained model's costs) and writes round 0's dump of a pixel margin
experiment with ``inference.shards`` 1 and then N, each shard job in a fresh process pinned to one core
(``alseg.model_job.infer``, as the ``train`` and ``infer_shard`` rules call it; wall seconds with start-up,
dataset and model loading; peak resident memory, ``VmHWM``). Then checks that the N shard files hold what the single file holds.

On a cluster the shards run side by side, one GPU each: a round's pass takes the slowest shard's time.

    nice -n 10 python benchmarks/inference_shards.py --root /tmp/shards --shards 3 [--out table.md]
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

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL = {"name": "deeplabv3plus", "encoder": "efficientnet_lite0", "weights": "imagenet"}
JOB = """
import json, sys
from pathlib import Path
from alseg.model_job import infer, limit_threads
limit_threads(1)
args = json.loads(sys.argv[1])
infer(args["dataset"], args["model"], args["settings"], 0, args["out"], shard=args["shard"])
status = Path("/proc/self/status").read_text().splitlines()
print(next(line for line in status if line.startswith("VmHWM:")).split()[1])
"""


def experiment_settings(camvid: Path, resize: list[int] | None, shards: int) -> dict:
    """The ``train`` rule's params of round 0 of a pixel margin experiment on CamVid (``alseg.plan``)."""
    from alseg.config import resolve_config
    from alseg.plan import train_settings

    config = resolve_config({
        "round": 1, "results": "results",
        "datasets": {"camvid": {"kind": "camvid", "root": str(camvid), "resize": resize}},
        "defaults": {"dataset": "camvid", "model": MODEL, "inference": {"batch_size": 16, "device": "cpu",
                                                                        "shards": shards}},
        "experiments": {"pixel_margin": {"strategy": "margin"}}})
    return train_settings(config, "pixel_margin", 0)


def prepare(root: Path, camvid: Path, resize: list[int] | None) -> tuple[Path, Path]:
    """The prepared dataset and a saved model under ``root`` (made once)."""
    from alseg.data import dataset_info
    from alseg.data.prepared import prepare_dataset
    from alseg.models import build_model, save_model

    root.mkdir(parents=True, exist_ok=True)
    dataset, model = root / "camvid.h5", root / "model.pt"
    if not dataset.is_file():
        prepare_dataset({"kind": "camvid", "root": str(camvid), "resize": resize}, dataset)
    if not model.is_file():
        classes = dataset_info(dataset).num_classes
        import torch

        torch.manual_seed(0)  # the same untrained head on every machine
        save_model(model, build_model(MODEL, classes), MODEL, classes)  # without `weights` in its config
    return dataset, model


def run_shards(dataset: Path, model: Path, settings: dict, folder: Path, core: int) -> list[dict]:
    """Each shard job of one dump in turn, pinned to ``core``: its file, images, seconds and bytes."""
    from alseg.inference_file import dump_file_names

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for shard, name in enumerate(dump_file_names(int(settings["inference"].get("shards", 1)))):
        args = {"dataset": str(dataset), "model": str(model), "settings": settings, "out": str(folder / name),
                "shard": shard}
        started = time.perf_counter()
        done = subprocess.run(["taskset", "-c", str(core), sys.executable, "-c", JOB, json.dumps(args)], check=True,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - started
        peak_mb = int(done.stdout.split()[-1]) / 1024
        print(f"{name} of {settings['inference'].get('shards', 1)}: {seconds:.1f} s, peak {peak_mb:.0f} MB", flush=True)
        with h5py.File(folder / name, "r") as h5:  # one shard alone is not a dump: read its range directly
            images = (int(h5.attrs["image_start"]), int(h5.attrs["image_stop"]))
        rows.append({"file": name, "images": images, "seconds": seconds, "bytes": (folder / name).stat().st_size,
                     "peak_mb": peak_mb})
    return rows


def same_contents(one: list[Path], shards: list[Path], num_images: int) -> bool:
    """The shard files hold what the single file holds: every strategy's pixel candidates, their fields and
    the eligible-pixel counts (a pixel experiment's dump has no other group)."""
    from alseg.acquire.pixel import STRATEGY_FIELDS
    from alseg.inference_file import InferenceDump
    from alseg.pixel_dump import read_pixel_candidates

    with InferenceDump(one) as whole, InferenceDump(shards) as split:
        for strategy in STRATEGY_FIELDS:
            x, y = (read_pixel_candidates(d, strategy, 0, num_images) for d in (whole, split))
            arrays = ("index", "offsets", "eligible", "cover", "nan")
            if not (all(np.array_equal(getattr(x, a), getattr(y, a)) for a in arrays)
                    and all(np.array_equal(x.fields[f], y.fields[f]) for f in x.fields)):
                return False
    return True


def table(runs: dict[int, list[dict]], pixels: int, identical: bool, args: argparse.Namespace) -> str:
    lines = [f"Command: `nice -n 10 python benchmarks/inference_shards.py --root DIR --shards {args.shards}"
             f"{' --resize ' + ' '.join(map(str, args.resize)) if args.resize else ''}`", "",
             f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; each shard job one process on one "
             f"core (`taskset`), one after the other. Pool: CamVid train, {pixels / 1e6:.1f} M pixels; model "
             "DeepLabV3+ EfficientNet-Lite0; inference batches of 16; round 0 of pixel margin.", "",
             "| shards | file | images | seconds | MB | bytes per pool pixel | peak RSS MB |",
             "|---:|---|---|---:|---:|---:|---:|"]
    for n, rows in runs.items():
        for row in rows:
            lines.append(f"| {n} | {row['file']} | {row['images'][0]}-{row['images'][1]} | {row['seconds']:.1f} | "
                         f"{row['bytes'] / 1e6:.2f} | {row['bytes'] / max(pixels, 1):.3f} | {row['peak_mb']:.0f} |")
    slowest = {n: max(r["seconds"] for r in rows) for n, rows in runs.items()}
    lines += ["", "Slowest job per dump (a round's pass when the shards run side by side): "
              + ", ".join(f"{n} shard(s) {s:.1f} s" for n, s in slowest.items())
              + f". The shard files hold exactly what the single file holds: {'yes' if identical else 'NO'}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--camvid", type=Path, default=Path(os.environ.get("ALSEG_CAMVID",
                                                                           REPO.parent / "shared" / "data" / "camvid")))
    parser.add_argument("--resize", type=int, nargs=2, help="H W (default: full resolution)")
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from alseg.data import dataset_info

    resize = list(args.resize) if args.resize else None
    dataset, model = prepare(args.root, args.camvid, resize)
    runs = {n: run_shards(dataset, model, experiment_settings(args.camvid, resize, n), args.root / f"shards{n}",
                          args.core) for n in (1, args.shards)}
    info = dataset_info(dataset)
    num_images = runs[1][0]["images"][1]
    identical = same_contents([args.root / "shards1" / "inference.h5"],
                              [args.root / f"shards{args.shards}" / row["file"] for row in runs[args.shards]], num_images)
    text = table(runs, num_images * info.height * info.width, identical, args)
    print(text)
    if args.out:
        args.out.write_text(text)
    if not identical:
        sys.exit("the shards differ from the single file")


if __name__ == "__main__":
    main()
