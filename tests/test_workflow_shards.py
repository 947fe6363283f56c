"""End to end: ``inference: {shards: 3}`` asks the same queries as one dump file, for every unit that reads
a dump, and a lost shard is rerun alone.

tests/configs/tiny.yaml (8 pool images; inference batches of 2, so shards of 2, 2 and 4 images) with one
experiment per unit (pixel margin with MC dropout, AMSP+S superpixels, binary greedy, tag entropy), rounds
0..1, once with one dump file and once with three shards.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_workflow import ran_jobs

from alseg.cli import main

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
EXPERIMENTS = {
    "margin_mc": {"strategy": "margin", "acquisition": {"mc_passes": 2}},
    "sp_amsp_s": {"unit": "superpixel", "strategy": "class_balanced", "budget": 12,
                  "superpixel": {"pixels_per_superpixel": 16, "merge": True, "merge_fraction": 0.25, "sieve": True,
                                 "sieve_min_size": 24, "sieve_points": 10, "overlays": 0}},
    "binary_greedy": {"unit": "binary", "strategy": "greedy", "budget": 6, "initial": {"kind": "pixels",
                                                                                        "per_image": 5},
                      "binary": {"c_max": 2}},
    "tags_entropy": {"unit": "tags", "strategy": "entropy", "budget": 3,
                     "initial": {"kind": "pixels", "per_image": 5}},
}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
           str(workdir / "config.yaml"), "--cores", "2", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if done.returncode != 0:
        raise AssertionError(f"snakemake failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return done


def run(workdir: Path, shards: int) -> Path:
    config = yaml.safe_load(TINY.read_text())
    config["experiments"] = EXPERIMENTS
    config["defaults"]["inference"] = {"batch_size": 2, "shards": shards}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(workdir)
    return workdir / "results"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    return run(tmp_path_factory.mktemp("one_file"), 1), run(tmp_path_factory.mktemp("three_shards"), 3)


def test_three_shard_files_per_round(runs) -> None:
    one, three = runs
    for exp in EXPERIMENTS:
        for r in (0, 1):
            assert sorted(p.name for p in (three / exp / f"round_{r}").glob("inference*.h5")) == [
                "inference.h5", "inference_shard1.h5", "inference_shard2.h5"]
            assert [p.name for p in (one / exp / f"round_{r}").glob("inference*.h5")] == ["inference.h5"]


@pytest.mark.parametrize("exp", list(EXPERIMENTS))
def test_the_queries_do_not_depend_on_the_shards(runs, exp: str) -> None:
    one, three = runs
    for r in (0, 1):
        assert (three / exp / f"round_{r}" / "queries.csv").read_bytes() == \
            (one / exp / f"round_{r}" / "queries.csv").read_bytes(), f"{exp} round {r}"
    assert (three / exp / "round_1" / "labels.npz").is_file()


def audit(workdir: Path, capsys) -> tuple[int, str]:
    code = main(["audit", str(workdir / "results"), "--configfile", str(workdir / "config.yaml"), "--with-models"])
    return code, capsys.readouterr().out


def test_a_killed_round_reruns_only_its_missing_shard_and_the_audit_checks_every_shard(runs, capsys,
                                                                                        tmp_path) -> None:
    """A round whose model and other shards are written but one shard is not (its job was killed): the audit
    calls the round unfinished, and only that shard's job runs again. A shard missing from a finished
    round is a finding."""
    _, three = runs
    workdir = three.parent
    assert audit(workdir, capsys)[0] == 0
    lost = three / "margin_mc" / "round_1" / "inference_shard2.h5"
    lost.unlink()
    code, out = audit(workdir, capsys)
    assert code == 0 and "margin_mc round 1: not finished (inference_shard2.h5 not written yet)" in out, out
    jobs = ran_jobs(snakemake(workdir))
    assert jobs == {"infer_shard": 1, "all": 1}, jobs
    assert lost.is_file()
    assert audit(workdir, capsys)[0] == 0

    earlier = three / "margin_mc" / "round_0" / "inference_shard1.h5"
    kept = tmp_path / earlier.name
    shutil.move(earlier, kept)
    code, out = audit(workdir, capsys)
    assert code == 1 and "margin_mc/round_0/inference_shard1.h5: missing" in out, out
    shutil.move(kept, earlier)
    assert audit(workdir, capsys)[0] == 0
