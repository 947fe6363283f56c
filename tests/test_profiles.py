"""The Snakemake profiles in workflow/profiles parse and drive a dry run of the real workflow.

A dry run with the SLURM executor needs no SLURM installation. It shows the resources every job
would be submitted with, which is how the GPU requests and partitions are checked here (the real
submission is checked by tests/test_slurm.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "workflow" / "profiles"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
NAMES = ["default", "slurm", "slurm-ci"]
GPU_RULES = {"train"}


def load(name: str) -> dict:
    data = yaml.safe_load((PROFILES / name / "config.yaml").read_text())
    assert isinstance(data, dict), name
    return data


@cache
def snakemake_help() -> str:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--help"], capture_output=True, text=True, check=True
    ).stdout


@cache
def dry_run(name: str, *extra: str) -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        done = subprocess.run(
            [
                sys.executable, "-m", "snakemake", "-n",
                "--snakefile", str(REPO / "Snakefile"),
                "--directory", workdir,
                "--configfile", str(TINY),
                "--profile", str(PROFILES / name),
                *extra,
            ],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"dry run with profile {name} failed:\n{out[-4000:]}"
    return out


def job_resources(log: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job in a dry run's output."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", log):
        m = re.match(r"(?:local)?rule (\w+):", block)
        r = re.search(r"^\s+resources: (.*)$", block, flags=re.MULTILINE)
        if m and r:
            pairs = (item.split("=", 1) for item in r.group(1).split(", ") if "=" in item)
            jobs.append((m.group(1), {k: v for k, v in pairs}))
    return jobs


@pytest.mark.parametrize("name", NAMES)
def test_profile_keys_are_snakemake_options(name):
    options = set(re.findall(r"--([a-z][a-z0-9-]*)", snakemake_help()))
    unknown = [key for key in load(name) if key not in options]
    assert not unknown, f"profile {name}: unknown options {unknown}"


def test_default_profile_runs_one_gpu_job_at_a_time():
    profile = load("default")
    assert profile["resources"] == {"gpu": 1}
    assert "code" not in profile["rerun-triggers"]
    assert profile["keep-going"] is False


@pytest.mark.parametrize("name", ["slurm", "slurm-ci"])
def test_slurm_profiles(name):
    profile = load(name)
    assert profile["executor"] == "slurm"
    # the plugin prefers cpus_per_task to cpus_per_gpu: a default would hide the rules' cpus_per_gpu
    assert "cpus_per_task" not in profile.get("default-resources", {})
    assert profile["default-resources"]["slurm_partition"] == "cpu"
    for rule in GPU_RULES:
        assert profile["set-resources"][rule]["slurm_partition"] == "gpu"


def test_ci_profile_works_without_slurmdbd():
    profile = load("slurm-ci")
    assert profile["slurm-status-command"] == "squeue"
    assert profile["slurm-init-seconds-before-status-checks"] <= 5


@pytest.mark.parametrize("name", NAMES)
def test_dry_run(name):
    jobs = job_resources(dry_run(name))
    rules = {rule for rule, _ in jobs}
    assert GPU_RULES <= rules, rules
    for rule, res in jobs:
        if rule in GPU_RULES:
            assert res.get("gpu") == "1", (rule, res)
        else:
            assert "gpu" not in res, (rule, res)
        if name != "default" and rule != "all":
            assert res["slurm_partition"] == ("gpu" if rule in GPU_RULES else "cpu"), (rule, res)


def test_dry_run_slurm_executor_explicit():
    """The README's form: the profile plus an explicit --executor slurm (no SLURM needed)."""
    log = dry_run("slurm", "--executor", "slurm")
    assert "This was a dry-run" in log


def test_conda_env_matches_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "envs" / "alseg.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(pip) == sorted(deps)
    assert "python=3.11" in env["dependencies"]


@pytest.mark.parametrize("name", ["slurm", "slurm-ci"])
def test_slurm_profile_needs_no_cores(name, tmp_path):
    """A real (not dry) run through a cluster executor has no --cores: the workflow must still
    load. (A dry run sets cores=1 and hides this; --list-changes loads the workflow as a real run
    does, without submitting anything.)"""
    done = subprocess.run(
        [
            sys.executable, "-m", "snakemake", "--list-changes", "params",
            "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(tmp_path),
            "--configfile", str(TINY),
            "--profile", str(PROFILES / name),
        ],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
