"""The image built from envs/Containerfile with podman, and the workflow run inside it (docs/containers.md).

Needs podman, runc and debootstrap (``.ci/run`` installs them) and root (rootful podman makes the base with
debootstrap); skipped otherwise. The first build installs the dependencies (torch, about 5 GB) and saves them
as an OCI archive in the cache (``ALSEG_CI_CACHE``); later builds load it and add only the package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from slurm_cluster import SlurmCluster, conflicting_config, missing_binaries
from test_workflow import ran_jobs

from alseg.cli import main

SCRIPT = REPO / "envs" / "container.sh"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
TAG = "localhost/alseg:test"
MISSING = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]

pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(bool(MISSING), reason=f"missing {', '.join(MISSING)} (apt-get install podman runc debootstrap)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="builds a debootstrapped base with rootful podman: run as root"),
]


def container(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    """``envs/container.sh ARGS`` with its output, failing the test with the tail of its log."""
    done = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"envs/container.sh {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.fixture(scope="module")
def image() -> str:
    start = time.perf_counter()
    container("build", "--local-base", "--tag", TAG)
    print(f"image {TAG} built in {time.perf_counter() - start:.0f} s")
    return TAG


def owners(folder: Path) -> set[int]:
    return {path.lstat().st_uid for path in folder.rglob("*")}


def test_the_default_workflow_runs_in_the_image(image, tmp_path, capsys):
    """Two rounds of the default config inside the image: every round's files land in the mounted working
    folder, owned by the invoking user, and audit clean."""
    done = container("run", "--tag", image, "--workdir", str(tmp_path), "--",
                     "snakemake", "--cores", "2", "--config", "round=2")
    jobs = ran_jobs(done)
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    results = tmp_path / "results"
    for experiment in default["experiments"]:
        for r in range(3):
            assert (results / experiment / f"round_{r}" / "metrics.json").is_file(), (experiment, r)
        assert (results / experiment / "round_2" / "queries.csv").is_file(), experiment
    assert (results / "comparison.csv").is_file() and jobs["train"] >= len(default["experiments"]), jobs
    assert owners(tmp_path) == {os.getuid()}
    code = main(["audit", str(results), "--configfile", str(REPO / "config.yaml")])
    out = capsys.readouterr().out
    assert code == 0 and "no findings" in out, out


def test_files_belong_to_the_user_the_container_runs_as(image, tmp_path):
    """A non-root user's run writes files that user owns, not root."""
    workdir = tmp_path / "user"
    workdir.mkdir()
    os.chown(workdir, 1000, 1000)
    container("run", "--tag", image, "--workdir", str(workdir), "--user", "1000:1000", "--",
              "alseg", "make-synthetic", "--seed", "1", "/work/synthetic")
    assert any((workdir / "synthetic").rglob("*.png"))
    assert owners(workdir) == {1000}


def test_the_image_holds_this_checkouts_package(image):
    done = container("run", "--tag", image, "--", "python", "-c", "import alseg; print(alseg.__version__)")
    import alseg

    assert done.stdout.strip().splitlines()[-1] == alseg.__version__


def apptainer_stand_in(tmp_path: Path, image: str) -> tuple[dict[str, str], Path, Path]:
    """PATH with tests/apptainer_podman.py as ``apptainer``, the "image file" naming ``image``, and its call log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "apptainer"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} {REPO / 'tests' / 'apptainer_podman.py'} \"$@\"\n")
    shim.chmod(0o755)
    sif = tmp_path / "alseg.sif"
    sif.write_text(image)
    log = tmp_path / "apptainer.jsonl"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "ALSEG_APPTAINER_LOG": str(log)}
    return env, sif, log


def run_in_apptainer(env: dict[str, str], sif: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(TINY), "--config", "round=1", f"container={sif}", "--sdm", "apptainer", *args],
        capture_output=True, text=True, env=env, timeout=1800, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def test_every_job_runs_in_the_image_with_sdm_apptainer(image, tmp_path):
    """``snakemake --sdm apptainer`` wraps every job in the config's ``container`` image. Apptainer is not
    installable here: tests/apptainer_podman.py stands in for it and runs each ``apptainer exec`` with podman."""
    env, sif, log = apptainer_stand_in(tmp_path, image)
    workdir = tmp_path / "run"
    done = run_in_apptainer(env, sif, workdir, "--cores", "2", "results/random/round_1/metrics.json")
    jobs = ran_jobs(done)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == sum(jobs.values()) >= 6, (len(calls), jobs)   # every job (all are script: rules)
    assert all(image in call and f"--user={os.getuid()}:{os.getgid()}" in call for call in calls)
    assert (workdir / "results" / "random" / "round_1" / "metrics.json").is_file()
    assert owners(workdir / "results") == {os.getuid()}


@pytest.mark.slurm
@pytest.mark.skipif(bool(missing_binaries()), reason="SLURM/munge not installed (apt-get install slurmctld slurmd "
                    "slurm-client munge)")
@pytest.mark.skipif(bool(conflicting_config()), reason=f"{conflicting_config()}")
def test_slurm_job_steps_run_in_the_image(image, tmp_path):
    """Through a real single-node SLURM cluster with --sdm apptainer: the train jobs Snakemake submits run
    their step inside the image (tests/apptainer_podman.py standing in for apptainer on the node)."""
    env, sif, log = apptainer_stand_in(tmp_path, image)
    cluster = SlurmCluster(tmp_path / "slurm", min_job_age=3600)
    try:
        cluster.start()
        workdir = tmp_path / "run"
        done = run_in_apptainer(cluster.env(env), sif, workdir, "--profile",
                                str(REPO / "workflow" / "profiles" / "slurm-ci"), "results/margin/round_1/metrics.json")
        submitted = cluster.jobs()
    finally:
        cluster.stop()
    trains = [job for job in submitted if job.get("Comment", "").startswith("rule_train")]
    assert len(trains) == 2 and all(job["JobState"] == "COMPLETED" for job in trains), submitted
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    in_image = [call for call in calls if image in call]
    assert len(in_image) == len(calls) == sum(ran_jobs(done).values()), (len(calls), ran_jobs(done))
    assert (workdir / "results" / "margin" / "round_1" / "metrics.json").is_file()
