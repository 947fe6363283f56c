"""Label Studio interchange: export queries as tasks, import an export back, every answer preserved."""

from __future__ import annotations

import copy
import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest
from annotate_fixtures import block_regions, make_dataset

from alseg.annotate.labelstudio import UNANSWERED, export_tasks, import_answers
from alseg.answers import read_answers
from alseg.cli import main
from alseg.data import dataset_info
from alseg.queries import QUERY_COLUMNS, AnswerFileError, query_ids, read_queries, write_table
from alseg.regions import (
    outline_polygons,
    regions_from_file,
    regions_from_label_maps,
    regions_from_superpixel_file,
)

H, W = 24, 32


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "ds.h5", n_train=3, height=H, width=W)


@pytest.fixture(scope="module")
def classes(dataset: Path) -> list[str]:
    return dataset_info(dataset).classes


@pytest.fixture
def round_dir(tmp_path: Path) -> Path:
    """A round with 3 pixel, 2 superpixel and 2 binary queries, and its region file."""
    units = ["pixel", "pixel", "pixel", "superpixel", "superpixel", "binary", "binary"]
    q = len(units)
    table = {c: np.full(q, -1, dtype=np.int64) for c in QUERY_COLUMNS}
    table.update(
        query_id=query_ids(4, q),
        round=np.full(q, 4),
        image=np.array([f"img{i % 3}" for i in range(q)], dtype=object),
        unit=np.array(units, dtype=object),
        strategy=np.full(q, "margin", dtype=object),
        model=np.full(q, "", dtype=object),
        score=np.array([0.1, np.nan, 0.3, 0.4, 0.5, 0.6, 0.7]),
        image_index=np.array([i % 3 for i in range(q)]),
        y=np.array([0, 23, 5, -1, -1, -1, -1]),
        x=np.array([0, 31, 9, -1, -1, -1, -1]),
        superpixel=np.array([-1, -1, -1, 5, 0, -1, -1]),
        **{"class": np.array([-1, -1, -1, -1, -1, 2, 6])},
    )
    write_table(tmp_path / "queries.csv", table, QUERY_COLUMNS)
    with h5py.File(tmp_path / "superpixels.h5", "w") as h5:
        h5["superpixels"] = block_regions(3, H, W, block=8)
    return tmp_path


def export(round_dir: Path, dataset: Path, **kwargs) -> list[dict]:
    result = export_tasks(
        round_dir / "queries.csv", dataset, round_dir / "ls" / "tasks.json",
        regions=regions_from_file(round_dir / "superpixels.h5"), **kwargs,
    )
    assert result.task_count == 7 and result.image_count == 3
    return json.loads(result.tasks.read_text())


def labelled(tasks: list[dict], answers: dict[str, str], cancelled: tuple[str, ...] = ()) -> list[dict]:
    """What Label Studio exports after annotators changed each '?' to ``answers[query_id]``."""
    out = []
    for number, task in enumerate(copy.deepcopy(tasks), start=1):
        qid = task["data"]["query_id"]
        task["id"] = 100 + number
        annotation = {"id": number, "completed_by": {"id": 3, "email": "ana@example.org"}, "lead_time": 1.25 * number,
                      "was_cancelled": qid in cancelled, "created_at": "2025-01-02T10:00:00Z",
                      "updated_at": f"2025-01-02T10:00:{number:02d}Z", "result": []}
        if qid not in cancelled:
            if task["data"]["unit"] == "binary":
                annotation["result"] = [{"from_name": "answer", "to_name": "image", "type": "choices",
                                         "value": {"choices": [answers[qid]]}}]
            else:
                annotation["result"] = copy.deepcopy(task["predictions"][0]["result"])
                for item in annotation["result"]:
                    item["value"][item["type"]] = [answers[qid]]
        stale = {**annotation, "id": 1000 + number, "updated_at": "2025-01-01T09:00:00Z", "result": []}
        task["annotations"] = [stale, annotation] if number % 2 else [annotation]
        out.append(task)
    return out


def test_export_writes_tasks_config_and_images(round_dir: Path, dataset: Path, classes: list[str]) -> None:
    tasks = export(round_dir, dataset)
    first = tasks[0]
    assert first["data"]["query_id"] == "r4-000000" and first["data"]["alseg_classes"] == classes
    assert first["data"]["image"].startswith("/data/local-files/?d=")
    assert first["data"]["image"].endswith("ls/tasks_images/00000_img0.png")
    point = first["predictions"][0]["result"][0]
    assert point["type"] == "keypointlabels" and point["value"]["keypointlabels"] == [UNANSWERED]
    assert point["value"]["x"] == pytest.approx(100 * 0.5 / W) and point["value"]["y"] == pytest.approx(100 * 0.5 / H)
    corner = tasks[1]["predictions"][0]["result"][0]["value"]
    assert corner["x"] == pytest.approx(100 * 31.5 / W) and corner["y"] == pytest.approx(100 * 23.5 / H)
    assert first["predictions"][0]["score"] == 0.1 and "score" not in tasks[1]["predictions"][0]

    polygon = tasks[3]["predictions"][0]["result"]
    assert [p["type"] for p in polygon] == ["polygonlabels"]
    points = np.array(polygon[0]["value"]["points"]) * [W / 100, H / 100]  # back to pixels
    assert points.min(axis=0) == pytest.approx([8.25, 8.25]) and points.max(axis=0) == pytest.approx([15.75, 15.75])
    assert "predictions" not in tasks[5] and "Is there any diagonal_stripes" in tasks[5]["data"]["question"]

    images = sorted(p.name for p in (round_dir / "ls" / "tasks_images").iterdir())
    assert images == ["00000_img0.png", "00001_img1.png", "00002_img2.png"]
    config = ET.fromstring((round_dir / "ls" / "tasks_config.xml").read_text())
    controls = {child.tag: child for child in config}
    assert set(controls) == {"Header", "Image", "KeyPointLabels", "PolygonLabels", "Choices"}
    labels = [label.get("value") for label in controls["KeyPointLabels"]]
    assert labels == [UNANSWERED, "skip", *classes]
    assert [c.get("value") for c in controls["Choices"]] == ["yes", "no", "skip"]


def test_image_root_prefixes_the_image_urls(round_dir: Path, dataset: Path) -> None:
    tasks = export(round_dir, dataset, image_root="http://files.local/round4/")
    assert tasks[2]["data"]["image"] == "http://files.local/round4/00002_img2.png"


def test_round_trip_preserves_every_answer(round_dir: Path, dataset: Path, classes: list[str]) -> None:
    tasks = export(round_dir, dataset)
    names = {"r4-000000": classes[1], "r4-000001": "skip", "r4-000002": classes[7], "r4-000003": classes[4],
             "r4-000004": classes[0], "r4-000005": "yes", "r4-000006": "no"}
    exported = labelled(tasks, names)
    (round_dir / "export.json").write_text(json.dumps(exported))
    count = import_answers(round_dir / "export.json", round_dir / "queries.csv", round_dir / "answers.csv")
    assert count == 7
    answers = read_answers(round_dir / "answers.csv", read_queries(round_dir / "queries.csv"), classes)
    assert list(answers["answer"]) == ["1", "skip", "7", "4", "0", "yes", "no"]
    assert list(answers["annotator"]) == ["ana@example.org"] * 7
    assert answers["seconds"].tolist() == [1.25 * n for n in range(1, 8)]
    assert set(answers["source"]) == {"human"}


def test_cancelled_tasks_are_skips_and_cli_round_trip(round_dir: Path, dataset: Path, classes: list[str]) -> None:
    out = round_dir / "ls" / "tasks.json"
    assert main(["export-labelstudio", str(round_dir / "queries.csv"), "--dataset", str(dataset), "--out", str(out),
                 "--regions", str(round_dir / "superpixels.h5")]) == 0
    answers = {"r4-000000": classes[2], "r4-000001": classes[2], "r4-000002": classes[3],
               "r4-000003": classes[5], "r4-000004": "skip", "r4-000005": "no", "r4-000006": "yes"}
    exported = labelled(json.loads(out.read_text()), answers, cancelled=("r4-000002",))
    (round_dir / "export.json").write_text(json.dumps(exported))
    assert main(["import-labelstudio", str(round_dir / "export.json"), str(round_dir / "queries.csv"),
                 "--annotator", "team-a"]) == 0
    with open(round_dir / "answers.csv", newline="") as f:
        rows = {r["query_id"]: r for r in csv.DictReader(f)}
    assert [r["answer"] for r in rows.values()] == ["2", "2", "skip", "5", "skip", "no", "yes"]
    assert {r["annotator"] for r in rows.values()} == {"team-a"}
    # a second import never overwrites the answers
    assert main(["import-labelstudio", str(round_dir / "export.json"), str(round_dir / "queries.csv")]) == 1


@pytest.mark.parametrize(
    "edit, expected",
    [
        pytest.param(lambda t: t[0]["annotations"][-1]["result"][0]["value"].update(keypointlabels=["?"]),
                     "task 1 (id 101): query 'r4-000000' (pixel): empty answer", id="still unanswered"),
        pytest.param(lambda t: t[3]["annotations"][-1]["result"][0]["value"].update(polygonlabels=["Car"]),
                     "task 4 (id 104): query 'r4-000003' (superpixel): answer 'Car' is not a class id",
                     id="label not a class"),
        pytest.param(lambda t: t.pop(6), "1 queries have no answer: 'r4-000006'", id="task missing"),
        pytest.param(lambda t: t[2].update(annotations=[]), "1 queries have no answer: 'r4-000002'",
                     id="not annotated"),
        pytest.param(lambda t: t.append(copy.deepcopy(t[0])), "task 8 (id 101): duplicate answer for query 'r4-000000'",
                     id="duplicate"),
        pytest.param(lambda t: t[1]["data"].pop("query_id"), "task 2 (id 102): no query_id in its data", id="no id"),
        pytest.param(lambda t: t[5]["annotations"][-1]["result"][0]["value"].update(choices=["maybe"]),
                     "answer 'maybe' is not yes, no or skip", id="bad choice"),
    ],
)
def test_bad_exports_are_rejected_by_task(round_dir: Path, dataset: Path, classes: list[str], edit, expected) -> None:
    answers = {"r4-000000": classes[1], "r4-000001": classes[1], "r4-000002": classes[1], "r4-000003": classes[1],
               "r4-000004": classes[1], "r4-000005": "yes", "r4-000006": "no"}
    exported = labelled(export(round_dir, dataset), answers)
    edit(exported)
    (round_dir / "export.json").write_text(json.dumps(exported))
    with pytest.raises(AnswerFileError) as info:
        import_answers(round_dir / "export.json", round_dir / "queries.csv", round_dir / "answers.csv")
    assert str(info.value).startswith(f"{round_dir / 'export.json'}: invalid answers")
    assert expected in str(info.value)
    assert not (round_dir / "answers.csv").exists()


def json_min(tasks: list[dict]) -> list[dict]:
    """What Label Studio's JSON-MIN export makes of the JSON export ``tasks`` (its converter's rules)."""
    records = []
    for task in tasks:
        annotations = task.get("annotations") or []
        done = sorted((a for a in annotations if not a.get("was_cancelled")), key=lambda a: a["created_at"],
                      reverse=True)
        if annotations and not done:
            continue  # only cancelled (skipped) annotations: the task is left out
        for annotation in done or [{}]:
            record = {**copy.deepcopy(task["data"]), "id": task["id"]}
            outputs: dict[str, list] = {}
            for item in annotation.get("result", []):
                outputs.setdefault(item["from_name"], []).append(item["value"])
            for name, values in outputs.items():
                single = len(values) == 1 and list(values[0]) == ["choices"] and len(values[0]["choices"]) == 1
                record[name] = values[0]["choices"][0] if single else values
            record.update(annotator=(annotation.get("completed_by") or {}).get("id"),
                          annotation_id=annotation.get("id"), created_at=annotation.get("created_at"),
                          updated_at=annotation.get("updated_at"), lead_time=annotation.get("lead_time"))
            records.append(record)
    return records


def test_json_min_export_gives_the_same_answers(round_dir: Path, dataset: Path, classes: list[str]) -> None:
    names = {"r4-000000": classes[1], "r4-000001": "skip", "r4-000002": classes[7], "r4-000003": classes[4],
             "r4-000004": classes[0], "r4-000005": "yes", "r4-000006": "no"}
    exported = labelled(export(round_dir, dataset), names)
    records = json_min(exported)
    assert len(records) == 11 and all("data" not in r and "annotations" not in r for r in records)
    assert records[8]["answer"] == "yes" and records[1]["pixel"][0]["keypointlabels"] == [classes[1]]
    assert "pixel" not in records[0]  # an older annotation without a result
    (round_dir / "export.json").write_text(json.dumps(exported))
    (round_dir / "min.json").write_text(json.dumps(records))
    import_answers(round_dir / "export.json", round_dir / "queries.csv", round_dir / "answers.csv")
    import_answers(round_dir / "min.json", round_dir / "queries.csv", round_dir / "answers_min.csv")
    full, short = (read_answers(round_dir / n, read_queries(round_dir / "queries.csv"), classes)
                   for n in ("answers.csv", "answers_min.csv"))
    assert list(short["answer"]) == ["1", "skip", "7", "4", "0", "yes", "no"]
    assert list(short["answer"]) == list(full["answer"]) and short["seconds"].tolist() == full["seconds"].tolist()
    assert set(short["annotator"]) == {"labelstudio-user-3"}  # JSON-MIN names annotators by id


def test_json_min_leaves_out_skipped_tasks_and_says_so(round_dir: Path, dataset: Path, classes: list[str]) -> None:
    names = dict.fromkeys(["r4-000000", "r4-000001", "r4-000002", "r4-000003", "r4-000004"], classes[2])
    exported = labelled(export(round_dir, dataset), {**names, "r4-000005": "yes", "r4-000006": "no"},
                        cancelled=("r4-000002",))
    (round_dir / "min.json").write_text(json.dumps(json_min(exported)))
    with pytest.raises(AnswerFileError) as info:
        import_answers(round_dir / "min.json", round_dir / "queries.csv", round_dir / "answers.csv")
    assert "1 queries have no answer: 'r4-000002'" in str(info.value)
    assert "a JSON-MIN export leaves out the tasks skipped in Label Studio" in str(info.value)
    assert not (round_dir / "answers.csv").exists()


def test_not_a_task_list_is_named(tmp_path: Path, round_dir: Path) -> None:
    (tmp_path / "export.json").write_text(json.dumps({"tasks": []}))
    with pytest.raises(AnswerFileError, match="not a Label Studio JSON export"):
        import_answers(tmp_path / "export.json", round_dir / "queries.csv", tmp_path / "answers.csv")


def test_outline_polygons_trace_each_part_of_a_region() -> None:
    mask = np.zeros((6, 8), dtype=bool)
    mask[1:3, 1:4] = True  # a 2x3 block
    mask[5, 7] = True  # and a single pixel apart
    polygons = sorted(outline_polygons(mask), key=lambda p: p[:, 0].min())
    assert len(polygons) == 2
    assert polygons[0].min(axis=0).tolist() == [1.25, 1.25] and polygons[0].max(axis=0).tolist() == [3.75, 2.75]
    assert len(polygons[1]) >= 4 and polygons[1].min(axis=0).tolist() == [7.25, 5.25]
    source = regions_from_label_maps(block_regions(1, 16, 24, block=8))
    assert source(0, 4).sum() == 64 and source(0, 4)[8:16, 8:16].all()


def test_region_sources_read_base_superpixel_files(tmp_path: Path) -> None:
    local = np.zeros((2, 4, 6), dtype=np.uint16)
    local[:, :, 3:] = 1  # every image: superpixel 0 left, 1 right
    local[1, 2:, :] = 2  # image 1 has a third one at the bottom
    with h5py.File(tmp_path / "superpixels.h5", "w") as h5:
        h5["labels"] = local
        h5["offsets"] = np.array([0, 2, 5])
    plain = regions_from_file(tmp_path / "superpixels.h5")  # detected: global base ids
    assert plain(1, 4).sum() == 12 and plain(1, 4)[2:].all()
    assert plain(0, 1).sum() == 12 and not plain(0, 3).any()
    merged = regions_from_superpixel_file(tmp_path / "superpixels.h5", members={2: [2, 3]})
    assert merged(1, 2).sum() == 12 and merged(1, 2)[:2].all()
    npy = tmp_path / "maps.npy"
    np.save(npy, local)
    assert regions_from_file(npy)(1, 2).sum() == 12
