"""The Label Studio round trip against a real Label Studio server, not against the converter's rules.

For a pixel, a superpixel, a binary and a tags round: ``alseg export-labelstudio`` writes the tasks,
their labelling config and images; through Label Studio's HTTP API, logged in as a person's browser
is, the test creates a project with that config (and a local-files storage for the images), imports
the tasks, fetches each task's image, labels the tasks the way the labelling page does (a point's or
a region's prediction relabelled, a choice made, the *Skip* button) and exports in the JSON and
JSON-MIN formats. ``alseg import-labelstudio`` must read back exactly the answers given.

Needs Label Studio's own environment (tests/labelstudio_env.py; tests/run.sh makes it): skipped
without it, or with ALSEG_SKIP_LABELSTUDIO=1; under CI=true a missing environment fails the test.
One server serves the module and is always stopped (its process group killed) at the end.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import h5py
import pytest
from annotate_fixtures import block_regions, make_dataset, write_queries
from labelstudio_env import is_ready, venv_path
from labelstudio_server import Browser, LabelStudioServer

from alseg.annotate.labelstudio import import_answers
from alseg.cli import main
from alseg.data import dataset_info
from alseg.queries import AnswerFileError

pytestmark = pytest.mark.labelstudio

H, W = 24, 32

#: What the person does with each query of a round, in order: ("label", class or "skip") relabels the
#: prediction's point or regions, ("choose", [choices]) picks choices, ("skip-button",) presses Skip.
ROUNDS: dict[str, tuple[list[tuple[int, ...]], list[tuple[Any, ...]]]] = {
    "pixel": ([(0, 1, 2), (1, 23, 31), (2, 5, 9)],
              [("label", "checker"), ("skip-button",), ("label", "skip")]),
    "superpixel": ([(0, 5), (1, 0), (2, 3)],
                   [("label", "dots"), ("label", "background"), ("label", "skip")]),
    "binary": ([(0, 2), (1, 6), (2, 1)],
               [("choose", ["yes"]), ("choose", ["no"]), ("choose", ["skip"])]),
    "tags": ([(1,), (2,)],
             [("choose", ["dots", "checker"]), ("choose", ["none"])]),
}


@pytest.fixture(scope="module")
def labelstudio(tmp_path_factory: pytest.TempPathFactory):
    """A running Label Studio server (stopped at the end of the module, whatever happens)."""
    if os.environ.get("ALSEG_SKIP_LABELSTUDIO") == "1":
        pytest.skip("ALSEG_SKIP_LABELSTUDIO=1")
    venv = venv_path()
    if not is_ready(venv):
        message = (f"no Label Studio environment at {venv}: make it with `python3 tests/labelstudio_env.py` "
                   "(tests/run.sh does; it needs the package registry)")
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; set ALSEG_SKIP_LABELSTUDIO=1 to skip this test in CI")
        pytest.skip(message)
    server = LabelStudioServer(venv, tmp_path_factory.mktemp("labelstudio"))
    try:
        server.start()
        print(f"Label Studio up at {server.url} in {server.startup_seconds:.1f} s")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(labelstudio: LabelStudioServer) -> Browser:
    browser = Browser(labelstudio.url)
    browser.login()
    return browser


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny dataset of 3 pool images and their superpixels (8x8 blocks)."""
    root = tmp_path_factory.mktemp("pool")
    dataset = make_dataset(root / "ds.h5", n_train=3, height=H, width=W)
    with h5py.File(root / "superpixels.h5", "w") as h5:
        h5["superpixels"] = block_regions(3, H, W, block=8)
    return dataset, root / "superpixels.h5"


def export_round(unit: str, root: Path, dataset: Path, regions: Path) -> tuple[Path, Path]:
    """``alseg export-labelstudio`` of a round of ``unit``: (queries.csv, tasks.json)."""
    queries = write_queries(root / "queries.csv", unit, ROUNDS[unit][0])
    tasks = root / "ls" / "tasks.json"
    args = ["export-labelstudio", str(queries), "--dataset", str(dataset), "--out", str(tasks)]
    assert main([*args, "--regions", str(regions)] if unit == "superpixel" else args) == 0
    return queries, tasks


def create_project(browser: Browser, title: str, tasks_path: Path) -> dict[str, Any]:
    """A project with the exported labelling config, a local-files storage for the exported images (which
    lets Label Studio serve them) and the exported tasks imported."""
    config = tasks_path.with_name(tasks_path.stem + "_config.xml").read_text()
    project = browser.api("POST", "/api/projects/", {"title": title, "label_config": config})
    images = tasks_path.with_name(tasks_path.stem + "_images")
    browser.api("POST", "/api/storages/localfiles/", {
        "project": project["id"], "title": "alseg images", "path": str(images.resolve()), "use_blob_urls": False})
    tasks = json.loads(tasks_path.read_text())
    imported = browser.api("POST", f"/api/projects/{project['id']}/import", tasks)
    assert imported["task_count"] == len(tasks), imported
    assert imported["prediction_count"] == sum(len(t.get("predictions", [])) for t in tasks), imported
    return project


def annotation(task: dict[str, Any], action: tuple[Any, ...], controls: dict[str, Any], seconds: float
               ) -> dict[str, Any]:
    """What the labelling page submits for ``task`` after the person's ``action`` (result items built from
    the task's own predictions and the project's controls)."""
    submitted: dict[str, Any] = {"lead_time": seconds, "was_cancelled": False, "result": [],
                                 "started_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
    if action[0] == "skip-button":
        return {**submitted, "was_cancelled": True}
    if action[0] == "label":
        assert task["predictions"], f"task {task['id']} has no prediction to relabel"
        prediction = task["predictions"][0]
        for item in copy.deepcopy(prediction["result"]):
            assert action[1] in controls[item["from_name"]]["labels"], (action, item["from_name"])
            item["value"][item["type"]] = [action[1]]
            submitted["result"].append({**item, "origin": "prediction-changed"})
        return {**submitted, "parent_prediction": prediction["id"]}
    name, control = next((n, c) for n, c in controls.items() if c["type"] == "Choices")
    assert set(action[1]) <= set(control["labels"]), (action, control["labels"])
    submitted["result"].append({"id": uuid.uuid4().hex[:10], "from_name": name, "to_name": control["to_name"][0],
                                "type": "choices", "origin": "manual", "value": {"choices": list(action[1])}})
    return submitted


def label_all(browser: Browser, project: dict[str, Any], tasks_path: Path, unit: str) -> dict[str, float]:
    """Label the project's tasks in the order Label Studio hands them out; return each query's seconds."""
    actions = dict(zip((t["data"]["query_id"] for t in json.loads(tasks_path.read_text())), ROUNDS[unit][1]))
    seconds: dict[str, float] = {}
    for _ in range(len(actions) + 1):
        task = browser.next_task(project["id"])
        if task is None:
            break
        qid = task["data"]["query_id"]
        assert qid not in seconds, f"Label Studio handed out {qid} again"
        image = browser.get_raw(task["data"]["image"])  # as the page loads it
        name = task["data"]["image"].rsplit("/", 1)[-1]
        assert image == (tasks_path.with_name(tasks_path.stem + "_images") / name).read_bytes()
        seconds[qid] = 1.5 + len(seconds)
        browser.api("POST", f"/api/tasks/{task['id']}/annotations/?project={project['id']}",
                    annotation(task, actions[qid], project["parsed_label_config"], seconds[qid]))
    assert set(seconds) == set(actions)
    return seconds


def expected_answers(unit: str, classes: list[str]) -> list[str]:
    answers = []
    for action in ROUNDS[unit][1]:
        if action[0] == "skip-button" or action[1] in ("skip", ["skip"]):
            answers.append("skip")
        elif action[0] == "label":
            answers.append(str(classes.index(action[1])))
        elif unit == "tags" and action[1] != ["none"]:
            answers.append(";".join(str(i) for i in sorted(classes.index(name) for name in action[1])))
        else:
            answers.append(action[1][0])
    return answers


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("unit", list(ROUNDS))
def test_label_studio_round_trip(unit: str, browser: Browser, pool: tuple[Path, Path], tmp_path: Path) -> None:
    dataset, regions = pool
    classes = dataset_info(dataset).classes
    queries, tasks_path = export_round(unit, tmp_path, dataset, regions)
    project = create_project(browser, f"alseg {unit} round", tasks_path)
    seconds = label_all(browser, project, tasks_path, unit)
    for kind in ("JSON", "JSON_MIN"):
        exported = browser.get_raw(f"/api/projects/{project['id']}/export?exportType={kind}")
        (tmp_path / f"export_{kind}.json").write_bytes(exported)

    assert main(["import-labelstudio", str(tmp_path / "export_JSON.json"), str(queries),
                 "--out", str(tmp_path / "answers.csv")]) == 0
    rows = read_rows(tmp_path / "answers.csv")
    assert [r["answer"] for r in rows] == expected_answers(unit, classes)
    assert [float(r["seconds"]) for r in rows] == [seconds[r["query_id"]] for r in rows]
    assert {r["annotator"] for r in rows} == {f"labelstudio-user-{browser.user['id']}"}
    assert {r["source"] for r in rows} == {"human"}

    skipped = [r["query_id"] for r, a in zip(rows, ROUNDS[unit][1]) if a[0] == "skip-button"]
    if skipped:  # Label Studio leaves the tasks skipped with its Skip button out of JSON-MIN
        with pytest.raises(AnswerFileError) as info:
            import_answers(tmp_path / "export_JSON_MIN.json", queries, tmp_path / "answers_min.csv")
        assert f"queries have no answer: {', '.join(repr(q) for q in skipped)}" in str(info.value)
        assert "export with the 'JSON' format" in str(info.value)
        return
    assert main(["import-labelstudio", str(tmp_path / "export_JSON_MIN.json"), str(queries),
                 "--out", str(tmp_path / "answers_min.csv")]) == 0
    short = read_rows(tmp_path / "answers_min.csv")
    assert [(r["query_id"], r["answer"], r["seconds"]) for r in short] == \
        [(r["query_id"], r["answer"], r["seconds"]) for r in rows]
