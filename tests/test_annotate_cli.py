"""``alseg annotate`` as a command: serves until every query is answered, Ctrl-C keeps progress."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from annotate_fixtures import make_dataset, write_queries

from alseg.cli import main


@pytest.fixture
def round_files(tmp_path: Path) -> tuple[Path, Path]:
    dataset = make_dataset(tmp_path / "ds.h5", n_train=2, height=16, width=16)
    queries = write_queries(tmp_path / "round_2" / "queries.csv", "pixel", [(0, 1, 2), (1, 3, 4)])
    return dataset, queries


def start(dataset: Path, queries: Path, sigint_ignored: bool = False) -> tuple[subprocess.Popen, str]:
    """Start ``alseg annotate``; ``sigint_ignored``: as a shell starts a background job (``&``)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "alseg.cli", "annotate", str(queries), "--dataset", str(dataset),
         "--annotator", "cli-user", "--no-browser", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
    )
    for line in process.stdout:
        if line.startswith("open "):
            return process, line.split()[1]
    raise AssertionError(f"no URL printed: {process.stderr.read()}")


def post(url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        url.rstrip("/") + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_command_serves_until_done_and_resumes_after_ctrl_c(round_files: tuple[Path, Path]) -> None:
    dataset, queries = round_files
    process, url = start(dataset, queries)
    assert url.startswith("http://127.0.0.1:")
    state = post(url, "/api/answer", {"query_id": "r1-000000", "answer": "3", "seconds": 1.5})
    assert state["answered"] == 1
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 130 and "1 of 2 answers kept" in err and "run the same command" in err
    assert not (queries.parent / "answers.csv").exists()

    process, url = start(dataset, queries)
    with urllib.request.urlopen(url + "api/state", timeout=10) as response:
        assert json.loads(response.read())["current"]["query_id"] == "r1-000001"
    post(url, "/api/answer", {"query_id": "r1-000001", "answer": "skip", "seconds": 0.5})
    out, _ = process.communicate(timeout=20)
    assert process.returncode == 0 and "wrote" in out
    assert (queries.parent / "answers.csv").read_text().splitlines()[1:] == [
        "r1-000000,3,human,cli-user,1.5,1", "r1-000001,skip,human,cli-user,0.5,1"
    ]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_command_started_in_the_background_stops_on_int_and_term(round_files, sig) -> None:
    dataset, queries = round_files
    process, url = start(dataset, queries, sigint_ignored=True)
    post(url, "/api/answer", {"query_id": "r1-000000", "answer": "3", "seconds": 1.5})
    process.send_signal(sig)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 130 and "1 of 2 answers kept" in err


def test_command_refuses_existing_answers_and_foreign_posts(round_files, capsys) -> None:
    dataset, queries = round_files
    process, url = start(dataset, queries)
    request = urllib.request.Request(
        url + "api/answer", data=b'{"query_id": "r1-000000", "answer": "1", "seconds": 1}',
        headers={"Content-Type": "application/json", "Origin": "http://evil.example"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 403
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=20)

    (queries.parent / "answers.csv").write_text("precious\n")
    assert main(["annotate", str(queries), "--dataset", str(dataset), "--no-browser"]) == 1
    assert "never overwritten" in capsys.readouterr().err
    assert (queries.parent / "answers.csv").read_text() == "precious\n"


def test_superpixel_queries_need_regions(tmp_path: Path, capsys) -> None:
    dataset = make_dataset(tmp_path / "ds.h5", n_train=1, height=16, width=16)
    queries = write_queries(tmp_path / "queries.csv", "superpixel", [(0, 3)])
    assert main(["annotate", str(queries), "--dataset", str(dataset), "--no-browser"]) == 1
    assert "pass the superpixel label maps of the pool (alseg annotate --regions FILE)" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["ds.h5", "queries.csv"]  # nothing written
