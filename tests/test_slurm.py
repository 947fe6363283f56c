"""The real workflow through a real (single-node) SLURM cluster, with the slurm-ci profile.

Needs root and Debian's packages ``slurmctld slurmd slurm-client munge`` (``.ci/run`` installs
them); skipped otherwise. The node has 2 CPUs and 2 fake GPUs; the tiny config runs with its inference
dump in 2 shards and its training in 2 processes (``training.gpus: 2``, gloo on the CPUs). Checks that
every job got what it asked for (GPUs, CPUs, partition, memory, time limit), that GPU jobs never held more
GPUs than the node has, that the training ran in 2 processes, that the bookkeeping steps ran inside
Snakemake rather than through sbatch, and that every round's files were written.
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

# What the workflow runs with here: 2 inference shards, training in 2 processes (one per GPU)
SHARDS, TRAINING_GPUS = 2, 2
# The contract with rules/*.smk: these steps hold GPUs (how many), these run inside Snakemake (localrules).
GPU_RULES = {"train": TRAINING_GPUS, "infer_shard": 1}
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
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"), cpus=2, gpus=TRAINING_GPUS, min_job_age=3600)
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
    config = yaml.safe_load(TINY.read_text())
    config["defaults"]["inference"] = {**config["defaults"]["inference"], "batch_size": 4, "shards": SHARDS}
    config["defaults"]["training"]["gpus"] = TRAINING_GPUS
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    env = cluster.env()
    # the jobs start `python -m snakemake` and import alseg: put this interpreter first on PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--profile", str(PROFILE),
        "--configfile", str(workdir / "config.yaml"),
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


def _by_rule(jobs: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    by_rule: dict[str, list[dict[str, str]]] = {}
    for job in jobs:
        by_rule.setdefault(_rule_of(job.get("Comment", "")), []).append(job)
    return by_rule


def _gpus(job: dict[str, str], field: str) -> int:
    """GPUs in a field: ``gres:gpu:2`` (asked: TresPerJob) or ``gpu:2`` (got: JOB_GRES)."""
    found = re.search(r"gpu:(\d+)", job.get(field, ""))
    return int(found.group(1)) if found else 0


def test_every_job_got_the_resources_it_asked_for(slurm_run):
    _, _, jobs = slurm_run
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    by_rule = _by_rule(jobs)
    assert set(GPU_RULES) <= set(by_rule), f"GPU steps missing from SLURM: {sorted(by_rule)}"
    for rule, rule_jobs in by_rule.items():
        for job in rule_jobs:
            assert job["JobState"] == "COMPLETED", (rule, job["JobId"], job["JobState"])
            gpus = GPU_RULES.get(rule, 0)
            assert _gpus(job, "TresPerJob") == gpus, (rule, job["JobId"], job.get("TresPerJob"))
            assert _gpus(job, "JOB_GRES") == gpus, (rule, job["JobId"], job.get("JOB_GRES"))
            assert job["Partition"] == ("gpu" if gpus else "cpu"), (rule, job["Partition"])
            # the model jobs' threads (capped by the profile's max-threads) became their CPUs
            if gpus:
                assert job["NumCPUs"] == job["CPUs/Task"] == str(profile["max-threads"]), (rule, job["NumCPUs"])
            memory = f"{profile['default-resources']['mem_mb']}M"
            assert job["MinMemoryNode"] == memory and f"mem={memory}" in job["TRES"], (rule, job["TRES"])
            assert job["TimeLimit"] == f"00:{profile['default-resources']['runtime']:02d}:00", (rule, job["TimeLimit"])
    assert len(by_rule["infer_shard"]) == len(by_rule["train"]) * (SHARDS - 1)


def test_gpu_jobs_never_held_more_gpus_than_the_node_has(slurm_run):
    _, _, jobs = slurm_run
    events = sorted((_time(j[key]), sign * _gpus(j, "JOB_GRES")) for j in jobs
                    for key, sign in (("StartTime", 1), ("EndTime", -1)))
    held = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts at the same second
        held += change
        assert held <= TRAINING_GPUS, events


def test_training_ran_in_two_processes(slurm_run):
    workdir, _, _ = slurm_run
    logs = sorted((workdir / "results").glob("*/round_*/logs/train.log"))
    trained = [path for path in logs if "its model is reused" not in path.read_text()]  # round-0 twins copy
    assert len(trained) >= len(logs) - 1 >= 1, logs
    for path in trained:
        text = path.read_text()
        assert f"training in {TRAINING_GPUS} processes" in text, path
        assert "best epoch" in text, path


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
            for name in ("queries.csv", "answers.csv", "metrics.json", "inference.h5", "inference_shard1.h5"):
                assert (folder / name).is_file(), folder / name
            assert list(folder.glob("labels.*")), f"no label store in {folder}"
            assert list(folder.glob("model.*")), f"no model in {folder}"
        assert (results / exp / "learning_curve.csv").is_file()
