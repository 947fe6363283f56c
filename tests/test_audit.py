"""``alseg audit``: a clean run audits clean, and each kind of tampering is found and named.

The run is tests/human_flow.py's (made once per session): superpixel and binary experiments answered by
the simulated annotator and by a person, two rounds each. Each tampering test edits a copy of it.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from human_flow import rows

from alseg.cli import main
from alseg.labels import load_labels, save_labels
from alseg.models import build_model, model_checksum, save_model
from alseg.torchfile import TorchFileError, read_torch_file, stored_weights_checksum


def audit(workdir: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["audit", str(workdir / "results"), "--configfile", str(workdir / "config.yaml"), *extra])
    return code, capsys.readouterr().out


def findings(out: str) -> list[str]:
    return [line.removeprefix("FINDING ") for line in out.splitlines() if line.startswith("FINDING ")]


@pytest.fixture
def run(human_flow, tmp_path) -> Path:
    """A copy of the finished run, to tamper with."""
    shutil.copytree(human_flow["workdir"], tmp_path / "run")
    return tmp_path / "run"


def round_dir(run: Path, experiment: str, r: int) -> Path:
    return run / "results" / experiment / f"round_{r}"


def write_rows(path: Path, table: list[dict[str, str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)


def test_a_clean_run_audits_clean_without_torch(human_flow, tmp_path):
    workdir = human_flow["workdir"]
    out = tmp_path / "audit.md"
    code = ("import sys; from alseg.cli import main; code = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'the audit imported torch'; sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, "audit", str(workdir / "results"), "--configfile",
                           str(workdir / "config.yaml"), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no findings: the 8 rounds of 4 experiments agree" in done.stdout
    table = [line.split() for line in done.stdout.splitlines()]
    human = [line for line in table if line and line[0] == "binary_human"]
    assert [line[1] for line in human] == ["0", "1"]
    assert all("measured" in line and "ana" in line for line in human)  # who answered, and the cost's source
    oracle = [line for line in table if line and line[0] == "binary_oracle"]
    assert all("estimated" in line and "simulated" in line for line in oracle)
    report = out.read_text()
    assert "**No findings**" in report and "| binary_human | 1 |" in report
    for sieved in ("superpixel_oracle", "superpixel_human"):  # their digests need the previous model
        assert f"note: {sieved} rounds 1: training_digest not checked" in done.stdout


def test_the_digests_of_sieved_training_are_checked_with_the_models(human_flow, capsys):
    code, out = audit(human_flow["workdir"], capsys, "--with-models", "--experiment", "superpixel_oracle")
    assert code == 0, out
    assert "training_digest not checked" not in out


def test_an_edited_answer_is_found(run, capsys):
    answers = round_dir(run, "binary_oracle", 1) / "answers.csv"
    table = rows(answers)
    table[0]["answer"] = "no" if table[0]["answer"] == "yes" else "yes"
    write_rows(answers, table)
    code, out = audit(run, capsys)
    found = findings(out)
    assert code == 1
    assert any(f.startswith(f"{answers}: query {table[0]['query_id']}: answer") and "simulated annotator" in f
               for f in found), found
    assert any(f.startswith(f"{answers.with_name('labels.npz')}: binary_present") for f in found), found


def test_an_answer_that_differs_from_the_person_s_accepted_file_is_found(run, capsys):
    answers = round_dir(run, "superpixel_human", 1) / "answers.csv"
    table = rows(answers)
    table[1]["annotator"] = "mallory"
    write_rows(answers, table)
    code, out = audit(run, capsys)
    assert code == 1
    assert any(f.startswith(f"{answers}: line 3: ") and "human_answers.csv answers" in f for f in findings(out))


def test_a_deleted_answer_row_is_found(run, capsys):
    answers = round_dir(run, "superpixel_oracle", 1) / "answers.csv"
    table = rows(answers)
    write_rows(answers, table[:-1])
    code, out = audit(run, capsys)
    assert code == 1
    assert f"{answers}: 1 queries have no answer: '{table[-1]['query_id']}'" in findings(out)


def test_a_duplicated_query_is_found(run, capsys):
    rdir = round_dir(run, "binary_oracle", 0)  # binary round 0 asks pixels
    queries, answers = rows(rdir / "queries.csv"), rows(rdir / "answers.csv")
    copy = {**queries[0], "query_id": "r0-999999"}
    write_rows(rdir / "queries.csv", [*queries, copy])
    write_rows(rdir / "answers.csv", [*answers, {**answers[0], "query_id": "r0-999999"}])
    code, out = audit(run, capsys)
    assert code == 1
    line = len(queries) + 2
    expected = (f"{rdir / 'queries.csv'}: line {line} (r0-999999): asks pixel image {copy['image_index']}, "
                f"y {copy['y']}, x {copy['x']} again: round 0 asked it ({queries[0]['query_id']})")
    assert expected in findings(out)


def test_a_replaced_model_is_found(run, capsys):
    rdir = round_dir(run, "superpixel_oracle", 1)
    shutil.copyfile(round_dir(run, "superpixel_oracle", 0) / "model.pt", rdir / "model.pt")
    code, out = audit(run, capsys)
    found = findings(out)
    assert code == 1
    assert any(f.startswith(f"{rdir / 'inference.h5'}: model: ") for f in found), found
    assert any(f.startswith(f"{rdir / 'metrics.json'}: model is ") for f in found), found


def test_weights_edited_inside_a_model_file_are_found(run, capsys):
    path = round_dir(run, "binary_oracle", 1) / "model.pt"
    payload = torch.load(path, weights_only=True)
    first = sorted(payload["state_dict"])[0]
    payload["state_dict"][first] = payload["state_dict"][first] + 1
    torch.save(payload, path)
    code, out = audit(run, capsys)
    assert code == 1
    assert any(f.startswith(f"{path}: checksum: the file says ") for f in findings(out))


def test_an_edited_label_store_is_found(run, capsys):
    path = round_dir(run, "superpixel_oracle", 1) / "labels.npz"
    store = load_labels(path)
    classes = store["superpixel_class"].copy()
    classes[0] = (classes[0] + 1) % 8
    save_labels(path, store.updated(superpixel_class=classes))
    code, out = audit(run, capsys)
    assert code == 1
    assert (f"{path}: superpixel_class: differs from the replay of the answers of rounds 0..1 (1 of "
            f"{classes.size} values differ)") in findings(out)


def test_a_person_s_answer_file_changed_after_acceptance_is_found(run, capsys):
    human = round_dir(run, "binary_human", 0) / "human_answers.csv"
    table = rows(human)
    table[0]["seconds"] = "99.0"
    write_rows(human, table)
    code, out = audit(run, capsys)
    assert code == 1
    assert any(f.startswith(f"{human}: changed after it was accepted") for f in findings(out))


def test_edited_metrics_are_found_in_the_round_and_the_learning_curve(run, capsys):
    rdir = round_dir(run, "binary_oracle", 1)
    text = (rdir / "metrics.json").read_text()
    (rdir / "metrics.json").write_text(text.replace('"miou": 0.', '"miou": 0.9', 1))
    code, out = audit(run, capsys)
    found = findings(out)
    assert code == 1
    assert any(f.startswith(f"{rdir / 'metrics.json'}: miou is ") for f in found), found
    assert any(f.startswith(f"{run / 'results' / 'binary_oracle' / 'learning_curve.csv'}: line 3: miou is ")
               for f in found), found


def test_compare_names_where_two_experiments_part(human_flow, capsys):
    code, out = audit(human_flow["workdir"], capsys, "--compare", "binary_oracle", "binary_human")
    assert code == 0
    assert "binary_oracle (A) and binary_human (B) ask the same items in every round" in out
    code, out = audit(human_flow["workdir"], capsys, "--compare", "superpixel_oracle", "binary_oracle")
    assert "first ask different items in round 0" in out
    assert [line.split()[:5] for line in out.splitlines() if line.split()[:1] == ["0"]][0][3] == "0"  # no overlap


def test_a_table_from_an_older_version_names_its_missing_column_and_the_rerun(run, capsys):
    path = run / "results" / "comparison_rounds.csv"
    write_rows(path, [{k: v for k, v in row.items() if k != "cost_source"} for row in rows(path)])
    code, out = audit(run, capsys)
    assert code == 1
    assert findings(out) == [f"{path}: lacks the column(s) cost_source that alseg.report writes (written by another "
                             "alseg version? rerun the comparison: snakemake --forcerun compare)"]


def test_a_round_waiting_for_a_person_is_a_note_not_a_finding(run, capsys):
    rdir = round_dir(run, "binary_human", 1)
    for name in ("answers.csv", "labels.npz", "model.pt", "train_log.json", "inference.h5", "evaluation.json",
                 "metrics.json", "human_answers.csv", "human_answers.accepted.json"):
        (rdir / name).unlink()
    (run / "results" / "comparison.csv").unlink()
    (run / "results" / "comparison_rounds.csv").unlink()
    (run / "results" / "binary_human" / "learning_curve.csv").unlink()
    code, out = audit(run, capsys)
    assert code == 0, out
    assert "note: binary_human round 1: not finished (answers.csv" in out


def test_torch_files_read_without_torch_give_the_model_checksum(tmp_path):
    model = build_model({"name": "small_unet", "width": 8}, 5)
    checksum = save_model(tmp_path / "m.pt", model, {"name": "small_unet", "width": 8}, 5)
    payload = read_torch_file(tmp_path / "m.pt")
    assert stored_weights_checksum(payload["state_dict"]) == checksum == model_checksum(model)
    assert any(t.array.ndim == 0 for t in payload["state_dict"].values())  # BatchNorm's counter stays 0-d
    key = sorted(payload["state_dict"])[0]
    np.testing.assert_array_equal(payload["state_dict"][key].array, model.state_dict()[key].numpy())


def test_torch_files_holding_objects_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(2), "hook": Path("x")}, tmp_path / "odd.pt")
    with pytest.raises(TorchFileError, match="odd.pt: holds pathlib"):
        read_torch_file(tmp_path / "odd.pt")
    (tmp_path / "text.pt").write_text("not a model")
    with pytest.raises(TorchFileError, match="text.pt: cannot read it"):
        read_torch_file(tmp_path / "text.pt")
