"""The real workflow through a real (single-node) SLURM cluster, with the slurm-ci profile.

Needs root and Debian's packages ``slurmctld slurmd slurm-client munge`` (``.ci/run`` installs
them); skipped otherwise. Checks that every GPU step was submitted with a GPU request, that the
bookkeeping steps ran inside Snakemake rather than through sbatch, and that every round's files
were written.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from slurm_cluster import SlurmCluster, conflicting_config, missing_binaries

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
PROFILE = REPO / "workflow" / "profiles" / "slurm-ci"

# The contract with rules/*.smk: these steps hold a GPU, these run inside Snakemake (localrules).
GPU_RULES = {"train"}
LOCAL_RULES = {"select_queries", "answer_queries", "update_labels", "metrics", "learning_curve", "compare"}

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="the SLURM test starts slurmctld/slurmd/munged: run it as root"
    ),
    pytest.mark.skipif(
        bool(missing_binaries()),
        reason="SLURM/munge not installed (missing: "
        + ", ".join(missing_binaries())
        + "); on Debian: apt-get install slurmctld slurmd slurm-client munge",
    ),
    pytest.mark.skipif(bool(conflicting_config()), reason=f"{conflicting_config()}"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # finished jobs stay visible to squeue/scontrol for an hour: the evidence checked below, even
    # on a slow machine
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"), min_job_age=3600)
    try:
        c.start()
        print(f"SLURM cluster up in {c.startup_seconds:.1f} s")
        yield c
    finally:
        c.stop()


def _rule_of(comment: str) -> str:
    """The plugin's job comment is ``rule_<name>`` or ``rule_<name>_wildcards_<values>``."""
    assert comment.startswith("rule_"), comment
    return comment[len("rule_"):].split("_wildcards_")[0]


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm_workflow")
    env = cluster.env()
    # the jobs start `python -m snakemake` and import alseg: put this interpreter first on PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--profile", str(PROFILE),
        "--configfile", str(TINY),
    ]
    t0 = time.monotonic()
    done = subprocess.run(
        cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=1800,
        stdin=subprocess.DEVNULL,
    )
    seconds = time.monotonic() - t0
    log = done.stdout + done.stderr
    (workdir / "snakemake_output.log").write_text(log)
    if done.returncode != 0:
        pytest.fail(
            f"snakemake through SLURM failed ({done.returncode}) after {seconds:.0f} s:\n"
            f"{log[-6000:]}\n{cluster.diagnostics()}"
        )
    print(f"2-round workflow through SLURM: {seconds:.0f} s")
    return workdir, log, cluster.jobs()


def test_gpu_steps_request_a_gpu(slurm_run):
    _, _, jobs = slurm_run
    by_rule: dict[str, list[dict[str, str]]] = {}
    for job in jobs:
        by_rule.setdefault(_rule_of(job.get("Comment", "")), []).append(job)
    assert GPU_RULES <= set(by_rule), f"GPU steps missing from SLURM: {sorted(by_rule)}"
    for rule, rule_jobs in by_rule.items():
        for job in rule_jobs:
            assert job["JobState"] == "COMPLETED", (rule, job["JobId"], job["JobState"])
            gres = job.get("TresPerJob", "") + job.get("TresPerNode", "")
            if rule in GPU_RULES:
                # sbatch --gpus=1 shows as TresPerJob=gres:gpu:1
                assert "gpu:1" in gres, f"{rule} job {job['JobId']} asked for no GPU: {job}"
                assert job["Partition"] == "gpu", (rule, job["Partition"])
            else:
                assert "gpu" not in gres, f"{rule} job {job['JobId']} asked for a GPU"
                assert job["Partition"] == "cpu", (rule, job["Partition"])
    # the fake GPU is one device: GPU jobs never overlapped
    gpu_jobs = sorted(
        (j for r in GPU_RULES for j in by_rule[r]), key=lambda j: _time(j["StartTime"])
    )
    for before, after in zip(gpu_jobs, gpu_jobs[1:]):
        assert _time(after["StartTime"]) >= _time(before["EndTime"]), (before, after)


def test_bookkeeping_steps_stay_local(slurm_run):
    _, log, jobs = slurm_run
    submitted = {_rule_of(job["Comment"]) for job in jobs}
    local = set(re.findall(r"^localrule (\w+):", log, flags=re.MULTILINE))
    remote = re.findall(r"^rule (\w+):", log, flags=re.MULTILINE)
    assert LOCAL_RULES <= local, f"bookkeeping steps not run locally: {LOCAL_RULES - local}"
    assert not (LOCAL_RULES & submitted), f"submitted to SLURM: {LOCAL_RULES & submitted}"
    # every job Snakemake announced as a cluster job (except the input-only target `all`) went
    # through sbatch, one SLURM job each
    announced = [r for r in remote if r != "all"]
    assert len(jobs) == len(announced), (len(jobs), sorted(announced))
    assert submitted == set(announced)


def test_round_files_exist(slurm_run):
    workdir, _, _ = slurm_run
    cfg = yaml.safe_load(TINY.read_text())
    results = workdir / cfg.get("results", "results")
    last = int(cfg["round"])
    assert last >= 1
    for exp in cfg["experiments"]:
        for r in range(last + 1):
            folder = results / exp / f"round_{r}"
            for name in ("queries.csv", "answers.csv", "metrics.json", "inference.h5"):
                assert (folder / name).is_file(), folder / name
            assert list(folder.glob("labels.*")), f"no label store in {folder}"
            assert list(folder.glob("model.*")), f"no model in {folder}"
        assert (results / exp / "learning_curve.csv").is_file()
