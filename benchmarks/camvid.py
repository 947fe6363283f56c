"""CamVid benchmark: every strategy on one cost axis against the fully supervised model, through the workflow.

The experiments are in ``benchmarks/configs/camvid_<protocol>.yaml``; this script fills in the CamVid
folder, runs the project's Snakefile on that config (no second pipeline: the learning curves, figures and
tables are the workflow's own report step), then writes ``benchmarks/results/camvid_<protocol>.md``: the
command, the machine, the wall time, the workflow's tables and figures, and the papers' claims checked
against the numbers.

Usage::

    python benchmarks/camvid.py --protocol cpu                                    # every experiment
    python benchmarks/camvid.py --protocol cpu --experiments pixel_margin pixel_random   # core comparison
    python benchmarks/camvid.py --protocol gpu --gpu-jobs 3                       # on a GPU machine

``--experiments`` runs the named entries of the config (the reference ``fully_supervised`` entries are
added unless ``--no-reference``); results are cached in the work folder, so a later invocation with more experiments or a
later ``--round`` only runs what is missing. The summary covers the experiments of the invocation. ``--seeds 0 1 2`` runs every
experiment once per seed and reports the mean and spread. CamVid comes from ``--camvid``, else
``$ALSEG_CAMVID``, else ``../shared/data/camvid`` next to the repository (SegNet layout). ``--report-only``
runs nothing and reports the experiments whose rounds have all been evaluated, while a run goes on
(an interim report that names the experiments it leaves out). ``--keep`` copies the finished experiments'
small files into ``benchmarks/results/camvid_<protocol>/kept``, which ``--report-only`` reads beside
``--out``: a protocol longer than a session runs in chunks of whole experiments on machines that do not
outlive one (``finished_runs.py``).

Protocols:

- ``cpu``: 90 x 120 images, a small U-Net, 60 epochs of 20 batches of 8 per round; rounds 0..5 (the
  pixel margin and random experiments to round 9, 100 px per image).
- ``gpu``: the papers' 360 x 480 images, DeepLabV3+ MobileNetV2 and FPN-ResNet50 (experiment names
  ``mnv2_*`` and ``r50_*``), PixelPick's official schedule (50 epochs, Adam 5e-4 / 5e-5, milestones 20
  and 40, batch 4, scale / crop / flip / colour augmentation), 10 px per image per round to 100.
  ``--gpu-jobs k`` lets Snakemake run k trainings on the GPU at once (each train job holds ``gpu=1``);
  measure which k is fastest with ``benchmarks/gpu_concurrency.py`` first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from camvid_claims import REFERENCE, Claims  # noqa: E402
from default_run import job_timings, machine  # noqa: E402
from finished_runs import finished_results, keep_finished  # noqa: E402

from alseg.config import resolve_config  # noqa: E402
from alseg.report import COST_AXES, read_rows, round_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def benchmark_config(protocol: str, camvid: Path, experiments: list[str] | None, seeds: list[int] | None,
                     last_round: int | None, reference: bool = True) -> dict[str, Any]:
    """The protocol's config with the CamVid folder, the chosen experiments (plus references, unless
    ``reference`` is false) and seeds."""
    config = yaml.safe_load((REPO / "benchmarks" / "configs" / f"camvid_{protocol}.yaml").read_text())
    config["datasets"]["camvid"]["root"] = str(camvid.resolve())
    if experiments:
        unknown = sorted(set(experiments) - set(config["experiments"]))
        if unknown:
            sys.exit(f"unknown experiments {unknown}; camvid_{protocol}.yaml has {sorted(config['experiments'])}")
        keep = [n for n in config["experiments"] if n in experiments or (reference and n.endswith(REFERENCE))]
        config["experiments"] = {n: config["experiments"][n] for n in keep}
        if not reference:
            config.pop("reference", None)
    if seeds:
        config["defaults"]["seeds"] = seeds
    if last_round is not None:
        config["round"] = last_round
    return config


def run_workflow(out: Path, cores: int, gpu_jobs: int, dry_run: bool = False, first: list[str] | None = None) -> float:
    """Run the Snakefile on ``out/config.yaml`` in ``out``; print its progress lines; return wall seconds.

    ``first``: experiments whose rounds Snakemake schedules before the others (``--prioritize``)."""
    # the profile's rerun triggers decide what is cached: the dry run must use them too
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(out),
           "--configfile", str(out / "config.yaml"), "--profile", str(REPO / "workflow" / "profiles" / "default"),
           "--cores", str(cores), "--resources", f"gpu={gpu_jobs}"]
    if first:
        cmd += ["--prioritize", *(f"results/{name}/learning_curve.csv" for name in first)]
    if dry_run:
        subprocess.run([*cmd, "--dry-run", "--quiet", "rules"], cwd=out, check=True)
        return 0.0
    print("running " + " ".join(cmd), flush=True)
    started = time.perf_counter()
    with open(out / "snakemake.log", "a", encoding="utf-8") as log:
        process = subprocess.Popen(cmd, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if "steps (" in line or "Error" in line:
                print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {line.strip()}", flush=True)
        code = process.wait()
    if code != 0:
        sys.exit(f"snakemake failed ({code}); see {out / 'snakemake.log'}")
    return time.perf_counter() - started


def curves_by_group(results: Path, cfg: dict[str, Any]) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """Learning curves of every configured experiment that has one, and each experiment's group."""
    curves, groups = {}, {}
    for name, experiment in cfg["experiments"].items():
        path = results / name / "learning_curve.csv"
        if path.is_file():
            curves[name] = read_rows(path)
            groups[name] = experiment["group"]
    return curves, groups


def schedule(training: dict) -> str:
    """A training schedule in words: epochs and batches."""
    return (f"{training['epochs']} epochs x {training['iterations_per_epoch'] or 'one pass'} batches of "
            f"{training['batch_size']}")


def reference_convergence(results: Path, cfg: dict) -> list[str]:
    """One line per fully supervised run: its best epoch against its last and its val mIoU at both. A best
    epoch before the last says that the reference stopped improving (trained to convergence)."""
    lines = []
    for name, experiment in cfg["experiments"].items():
        log = results / name / "round_0" / "train_log.json"
        if experiment["unit"] != "full" or not log.is_file():
            continue
        history = json.loads(log.read_text())["history"]
        scored = [(h["epoch"], h["val_miou"]) for h in history if h["val_miou"] is not None]
        best_epoch, best = max(scored, key=lambda item: item[1])
        last_epoch, last = scored[-1]
        verdict = ("converged: its best epoch is not its last" if best_epoch < last_epoch else
                   "**best at its last epoch: it may still improve**")
        lines.append(f"- {name}: best val mIoU {best:.4f} at epoch {best_epoch} of {history[-1]['epoch']} "
                     f"(last scored {last:.4f}); {verdict}")
    return lines


def summary(out: Path, protocol: str, cfg: dict, wall: float | None, command: str, figures: Path,
            unfinished: list[str] | None = None, planned: set[str] | None = None) -> str:
    """The results file's text for the experiments of ``cfg`` in ``out/results``; ``wall`` None and
    ``unfinished``: an interim report of a run still going on (``--report-only``); ``planned``: the groups
    of the invocation (default: those of ``cfg``)."""
    results = out / "results"
    curves, groups = curves_by_group(results, cfg)
    rows = round_table(curves, groups, cfg["references"])
    classes = {row["group"]: row for row in read_rows(results / "per_class_iou.csv")} if (
        results / "per_class_iou.csv").is_file() else {}
    timings = job_timings(results)
    train_seconds = sum(step for _, step in timings.get("train", []))
    camvid = cfg["datasets"]["camvid"]
    first = next((e for e in cfg["experiments"].values() if e["unit"] != "full"),
                 next(iter(cfg["experiments"].values())))
    reference = next((e for e in cfg["experiments"].values() if e["unit"] == "full"), first)
    lines = [
        f"# CamVid benchmark, {protocol.upper()} protocol",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}.",
        (f"Wall time of this invocation: {wall / 60:.1f} min (cached results are not rerun); " if wall is not None
         else "Report only: nothing was run; ")
        + f"train jobs' step time summed over all results: {train_seconds / 60:.1f} min over "
        f"{len(timings.get('train', []))} jobs.",
        *(["", f"**Interim**: the run is not finished; left out until all their rounds are evaluated "
               f"({len(unfinished)}): {', '.join(unfinished)}."] if unfinished else []),
        "",
        f"Setting: CamVid (SegNet layout, 11 classes, void ignored), resized to {camvid.get('resize')}; pool = "
        "train (367 images), checkpoint chosen on val (101), reported on test (233). Model "
        f"{first['model']['name']} ({', '.join(f'{k} {v}' for k, v in first['model'].items() if k != 'name')}), "
        f"{'ImageNet encoder weights' if first['model'].get('weights') else 'random init'}, re-initialised each "
        f"round; training {schedule(first['training'])} per round"
        + ("" if schedule(reference["training"]) == schedule(first["training"]) else
           f", the fully supervised reference {schedule(reference['training'])}")
        + f". Config: `benchmarks/configs/camvid_{protocol}.yaml`.",
        "",
        "## Results (the workflow's report step: `results/comparison.md`)",
        "",
        (results / "comparison.md").read_text() if (results / "comparison.md").is_file() else "(not yet run)",
        "",
        *[f"![test mIoU against {label}](camvid_{protocol}/comparison_{column}.png)" for column, label in COST_AXES],
        "",
        "## The fully supervised reference: trained to convergence?",
        "",
        *(reference_convergence(results, cfg) or ["(no fully supervised run)"]),
        "",
        "## The papers' claims",
        "",
    ]
    prefixes = sorted({g[: -len(REFERENCE)] for g in groups.values() if g.endswith(REFERENCE)}) or [""]
    planned = planned or {e["group"] for e in cfg["experiments"].values()}
    for prefix in prefixes:
        if prefix:
            lines += [f"### {prefix.rstrip('_')}", ""]
        lines += Claims(rows, classes, results, cfg, prefix, curves, planned).lines() + [""]
    for column, _ in COST_AXES:
        source = results / f"comparison_{column}.png"
        if source.is_file():
            figures.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, figures / source.name)
    return "\n".join(lines) + "\n"


def keep(out: Path, cfg: dict, store: Path) -> None:
    """``--keep``: copy the finished experiments of ``cfg`` (resolved) in ``out`` into ``store``; say which."""
    kept, already = keep_finished(out, cfg, store)
    print(f"kept in {store}: {', '.join(kept) or 'nothing new'}"
          + (f"; already kept (left as they are): {', '.join(already)}" if already else ""), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    protocols = sorted(p.stem.removeprefix("camvid_") for p in (REPO / "benchmarks" / "configs").glob("camvid_*.yaml"))
    parser.add_argument("--protocol", choices=protocols, default="cpu",
                        help="benchmarks/configs/camvid_<protocol>.yaml")
    parser.add_argument("--experiments", nargs="+", help="config entries to run (default: all)")
    parser.add_argument("--no-reference", action="store_true", help="with --experiments: leave out the fully "
                        "supervised reference (a chunk of a protocol whose reference ran in another chunk)")
    parser.add_argument("--seeds", type=int, nargs="+", help="run every experiment once per seed")
    parser.add_argument("--round", type=int, help="override the config's last round")
    default_camvid = Path(os.environ.get("ALSEG_CAMVID", REPO.parent / "shared" / "data" / "camvid"))
    parser.add_argument("--camvid", type=Path, default=default_camvid)
    parser.add_argument("--out", type=Path, help="work folder (default benchmarks/out/camvid_<protocol>)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dry-run", action="store_true", help="list the jobs that would run, run nothing")
    parser.add_argument("--first", nargs="+", default=[], help="experiments to finish before the others (Snakemake "
                        "schedules rounds of several experiments in no particular order)")
    parser.add_argument("--report-only", action="store_true", help="run nothing: report the experiments whose "
                        "rounds have all been evaluated (an interim report while a run goes on; finished_runs.py)")
    parser.add_argument("--keep", action="store_true", help="copy the small files of the finished experiments' "
                        "rounds into benchmarks/results/camvid_<protocol>/kept, which --report-only reads beside "
                        "--out: a protocol run in chunks on machines that do not outlive a session")
    parser.add_argument("--gpu-jobs", type=int, help="train jobs at once (default: 1 on the gpu protocol, "
                        "--cores on the cpu protocol, whose jobs take one thread each)")
    args = parser.parse_args()
    if not (args.camvid / "trainannot").is_dir():
        sys.exit(f"CamVid not found at {args.camvid} (SegNet layout: train/, trainannot/, ...); use --camvid or "
                 "ALSEG_CAMVID")
    out = args.out or REPO / "benchmarks" / "out" / f"camvid_{args.protocol}"
    out.mkdir(parents=True, exist_ok=True)
    config = benchmark_config(args.protocol, args.camvid, args.experiments, args.seeds, args.round,
                              not args.no_reference)
    gpu_jobs = args.gpu_jobs or (1 if args.protocol == "gpu" else args.cores)
    if args.protocol == "gpu":  # a train job claims model_threads cores: k of them must fit at once
        config["model_threads"] = max(1, args.cores // gpu_jobs)
    command = " ".join(["python benchmarks/camvid.py", *sys.argv[1:]])
    figures = REPO / "benchmarks" / "results" / f"camvid_{args.protocol}"
    kept = figures / "kept"
    resolved = resolve_config(config)
    if args.report_only:  # the run's own config.yaml is left as it is
        if args.keep:
            keep(out, resolved, kept)
        finished, unfinished = finished_results([out, kept], resolved, out / "interim")
        text = summary(out / "interim", args.protocol, finished, None, command, figures, unfinished,
                       {e["group"] for e in resolved["experiments"].values()})
    else:
        (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        unknown = sorted(set(args.first) - set(resolved["experiments"]))
        if unknown:
            sys.exit(f"--first: {unknown} are not experiments of this invocation")
        wall = run_workflow(out, args.cores, gpu_jobs, args.dry_run, args.first)
        if args.dry_run:
            return
        if args.keep:
            keep(out, resolved, kept)
        text = summary(out, args.protocol, resolved, wall, command, figures)
    target = REPO / "benchmarks" / "results" / f"camvid_{args.protocol}.md"
    target.write_text(text)
    print(text)
    print(f"-> {target}")


if __name__ == "__main__":
    main()
