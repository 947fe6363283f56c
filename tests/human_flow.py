"""A finished run in which people answer superpixel and binary rounds (tests/test_human_units.py,
tests/test_audit.py share it: one run per test session, see conftest.py).

One workdir holds four experiments on tiny synthetic data: an AMSP+S superpixel experiment and a binary
(greedy) one, each twice: answered by the simulated oracle, and answered by a person (``oracle.kind:
human``) whose ``human_answers.csv`` is written from the ground truth, with measured seconds.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from alseg.config import resolve_config
from alseg.queries import ANSWER_COLUMNS, write_table
from alseg.steps import answer_queries

REPO = Path(__file__).resolve().parents[1]

TINY = REPO / "tests" / "configs" / "tiny.yaml"
SUPERPIXEL = yaml.safe_load((REPO / "tests" / "configs" / "tiny_superpixel.yaml").read_text())
UNITS = {
    "superpixel": SUPERPIXEL["experiments"]["sp_amsp_s"],
    "binary": {"unit": "binary", "strategy": "greedy", "budget": 6, "binary": {"c_max": 2},
               "initial": {"kind": "pixels", "per_image": 5}},
}
SUPERPIXELS = "results/datasets/synthetic.superpixels-seeds-16.h5"
#: Arrays of the label store that say what was paid, not what was learnt
COST_ARRAYS = {"round_clicks", "round_seconds", "round_cost_source"}


def snakemake(workdir: Path, code_version: str | None = None) -> subprocess.CompletedProcess:
    """The user's command; with ``code_version``, as if alseg's code had been updated to that version."""
    args = ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
            str(workdir / "config.yaml"), "--cores", "2", "--keep-going"]
    if code_version is None:
        cmd = [sys.executable, "-m", "snakemake", *args]
    else:
        cmd = [sys.executable, "-c", f"import sys, alseg; alseg.__version__ = {code_version!r}; "
               "from snakemake.cli import main; sys.argv = ['snakemake', *sys.argv[1:]]; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def person_answers(workdir: Path, config: dict, unit: str, r: int, seconds: float) -> None:
    """Answer round r of ``<unit>_human`` as a person would: the oracle's answers, ``seconds`` each."""
    rdir = workdir / "results" / f"{unit}_human" / f"round_{r}"
    oracle = resolve_config(config)["experiments"][f"{unit}_oracle"]
    dataset = workdir / "results" / "datasets" / "synthetic.h5"
    given = rdir / "oracle_answers.csv"
    regions = {"superpixels": workdir / SUPERPIXELS, "regions": rdir / "regions.npz"} if unit == "superpixel" else {}
    answer_queries(dataset, rdir / "queries.csv", oracle, r, given, **regions)
    answers = rows(given)
    given.unlink()
    table = {c: np.array([a[c] for a in answers], dtype=object) for c in ANSWER_COLUMNS}
    table.update(source=np.full(len(answers), "human", dtype=object),
                 annotator=np.full(len(answers), "ana", dtype=object),
                 seconds=np.full(len(answers), repr(seconds), dtype=object))
    write_table(rdir / "human_answers.csv", table, ANSWER_COLUMNS)


def run_human_flow(workdir: Path) -> dict:
    """Run (people's experiments stop at round 0), answer, rerun (stop at round 1), answer, rerun."""
    config = yaml.safe_load(TINY.read_text())
    config["experiments"] = {}
    for unit, settings in UNITS.items():
        config["experiments"][f"{unit}_oracle"] = settings
        config["experiments"][f"{unit}_human"] = {**settings, "oracle": {"kind": "human"}}
    config["compare"] = list(config["experiments"])
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    seconds = {0: 1.5, 1: 4.0}
    runs = [snakemake(workdir)]
    for r in (0, 1):
        for unit in UNITS:
            person_answers(workdir, config, unit, r, seconds[r])
        runs.append(snakemake(workdir))
    return {"workdir": workdir, "runs": runs, "seconds": seconds}
