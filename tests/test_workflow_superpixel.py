"""End to end: a superpixel experiment (AMSP+S) through the real Snakemake workflow on tiny synthetic data.

tests/configs/tiny.yaml plus the override tests/configs/tiny_superpixel.yaml; rounds 0..1, then extended to
round 2 (only round 2 runs); a corrupt base superpixel file stops the run with an error naming it.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REPO

from alseg.labels import load_labels
from alseg.units import labelled_pixels
from alseg.units.superpixel.files import load_regions

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CONFIGS = [REPO / "tests" / "configs" / "tiny.yaml", REPO / "tests" / "configs" / "tiny_superpixel.yaml"]
EXP = "sp_amsp_s"
SUPERPIXELS = "results/datasets/synthetic.superpixels-seeds-16.h5"


def targets(last_round: int) -> list[str]:
    return [f"results/{EXP}/learning_curve.csv",
            *(f"results/{EXP}/round_{r}/overlays" for r in range(last_round + 1))]


def snakemake(workdir: Path, last_round: int, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", *map(str, CONFIGS), "--cores", "2", "--config", f"round={last_round}", *args,
           "--", *targets(last_round)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return done


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict[str, float], subprocess.CompletedProcess]:
    """Rounds 0..1, then extended to round 2."""
    workdir = tmp_path_factory.mktemp("superpixel")
    snakemake(workdir, 1)
    mtimes = {str(p): p.stat().st_mtime for p in (workdir / "results" / EXP).rglob("round_[01]/*") if p.is_file()}
    extended = snakemake(workdir, 2)
    return workdir, mtimes, extended


def test_round_files(run) -> None:
    workdir, _, _ = run
    root = workdir / "results" / EXP
    for r in range(3):
        rdir = root / f"round_{r}"
        for name in ["queries.csv", "regions.npz", "answers.csv", "labels.npz", "model.pt", "train_log.json",
                     "metrics.json", "inference.h5"]:
            assert (rdir / name).is_file(), f"round {r}: {name}"
        queries = rows(rdir / "queries.csv")
        assert len(queries) == 12  # budget (and initial budget): 12 regions
        assert {q["unit"] for q in queries} == {"superpixel"}
        assert {q["strategy"] for q in queries} == {"random" if r == 0 else "class_balanced"}
        assert all(q["superpixel"] != "" and int(q["pixels"]) > 0 and q["y"] == "" for q in queries)
        assert all((q["score"] != "") == (r > 0) and (q["model"] != "") == (r > 0) for q in queries)
        regions = load_regions(rdir / "regions.npz", len(queries))
        np.testing.assert_array_equal(regions.query_region, [int(q["superpixel"]) for q in queries])
        pngs = sorted((rdir / "overlays").glob("*.png"))
        assert len(pngs) == 2 and all(p.stat().st_size > 1000 for p in pngs)
        answers = rows(rdir / "answers.csv")
        assert [a["query_id"] for a in answers] == [q["query_id"] for q in queries]
        assert all(a["answer"] == "skip" or a["answer"].isdigit() for a in answers)
        with h5py.File(rdir / "inference.h5") as h5:
            assert h5["superpixel/mean_prob"].shape[0] == regions.parent.size


def test_no_base_superpixel_is_asked_twice_and_labels_accumulate(run) -> None:
    workdir, _, _ = run
    root = workdir / "results" / EXP
    bases = [load_regions(root / f"round_{r}" / "regions.npz").base_id for r in range(3)]
    everything = np.concatenate(bases)
    assert np.unique(everything).size == everything.size
    stores = [load_labels(root / f"round_{r}" / "labels.npz") for r in range(3)]
    for r in (1, 2):
        previous, current = stores[r - 1], stores[r]
        n = previous["superpixel_id"].size
        np.testing.assert_array_equal(current["superpixel_id"][:n], previous["superpixel_id"])
        np.testing.assert_array_equal(np.sort(current["superpixel_id"][n:]), np.sort(bases[r]))
        assert labelled_pixels(current) > labelled_pixels(previous)
    clicks = [len(rows(root / f"round_{r}" / "queries.csv")) for r in range(3)]
    for r in range(3):
        metrics = json.loads((root / f"round_{r}" / "metrics.json").read_text())
        assert metrics["unit"] == "superpixel"
        assert metrics["labelled_pixels"] == labelled_pixels(stores[r])
        assert metrics["clicks"] == sum(clicks[: r + 1])


def test_sieved_share_is_recorded(run) -> None:
    workdir, _, _ = run
    root = workdir / "results" / EXP
    log0 = json.loads((root / "round_0" / "train_log.json").read_text())["superpixel"]
    assert log0["sieve"] is False and log0["sieved_share"] == 0
    for r in (1, 2):
        record = json.loads((root / f"round_{r}" / "train_log.json").read_text())["superpixel"]
        assert record["sieve"] is True and record["sieve_model"].endswith(f"round_{r - 1}/model.pt")
        assert 0 <= record["sieved_share"] < 1
        assert record["training_pixels"] + record["sieved_out_pixels"] == record["labelled_pixels"]
        assert "label_noise" in record and "label_noise_before_sieve" in record
    log_text = (root / "round_1" / "logs" / "train.log").read_text()
    assert "sieved out" in log_text


def test_extension_runs_only_the_new_round_and_shares_the_superpixels(run) -> None:
    workdir, mtimes, extended = run
    text = extended.stdout + extended.stderr
    assert "rule superpixels:" not in text and "rule prepare_dataset:" not in text
    assert "select_queries_with_regions" in text
    for path, mtime in mtimes.items():
        assert Path(path).stat().st_mtime == mtime, f"{path} was rewritten"
    done = snakemake(workdir, 2, "-n")
    assert "Nothing to be done" in done.stdout + done.stderr


def test_a_corrupt_superpixel_file_stops_with_its_name(run, tmp_path) -> None:
    workdir, _, _ = run
    (tmp_path / "results" / "datasets").mkdir(parents=True)
    shutil.copy(workdir / "results" / "datasets" / "synthetic.h5", tmp_path / "results" / "datasets")
    (tmp_path / SUPERPIXELS).write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    done = snakemake(tmp_path, 0, check=False)
    assert done.returncode != 0
    assert "synthetic.superpixels-seeds-16.h5: cannot read superpixel file" in done.stdout + done.stderr
