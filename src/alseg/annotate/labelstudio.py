"""Interchange with Label Studio: export a round's queries as tasks, import its export as ``answers.csv``.

Export (:func:`export_tasks`) writes, for ``--out tasks.json``:

- ``tasks.json``: Label Studio's JSON import format, one task per query. ``data`` holds ``image`` (the
  URL Label Studio loads), ``query_id``, ``unit``, ``question`` (shown by a ``Header``) and
  ``alseg_classes`` (the class names, so that the import needs nothing else). ``predictions`` place the
  query on the image: a ``keypointlabels`` point at the pixel (x, y in percent of the image size), or
  ``polygonlabels`` outlines of the superpixel region; both carry the label ``?`` ("not answered
  yet"), which the annotator changes to a class or to ``skip``. Binary queries get no prediction (a
  preselected yes or no would bias the answer): the annotator picks yes, no or skip under ``Choices``.
- ``tasks_config.xml``: the labelling config these tasks need (paste it into the project settings).
- ``tasks_images/``: the pool images the tasks show, as PNG.

Import (:func:`import_answers`) reads Label Studio's JSON export (``Export`` -> ``JSON``): for each
task, its latest annotation that is not cancelled gives the answer (the label of its keypoint or
polygon, or its choice), ``lead_time`` the seconds and ``completed_by`` the annotator; a task whose
only annotations are cancelled (Label Studio's *Skip*) is answered ``skip``. The ``JSON-MIN`` export
(one flat record per annotation, :func:`tasks_from_json_min`) is read too, except that it leaves out
skipped tasks: those queries are reported as unanswered. The answers are validated against the
queries like any ``answers.csv`` before anything is written.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image

from alseg.annotate.pool import PoolImages
from alseg.annotate.progress import write_answers_csv
from alseg.answers import answer_problems, format_problems
from alseg.atomic import atomic_path, write_json_atomic, write_text_atomic
from alseg.queries import SKIP, AnswerFileError, read_queries
from alseg.regions import RegionSource, region_mask
from alseg.units import ROW_UNITS, QueryUnit, unit_of_row

#: The label of a point or region that is not answered yet.
UNANSWERED = "?"
IMAGE_NAME = "image"
RESULT_TYPES = ("keypointlabels", "polygonlabels", "choices")


@dataclass(frozen=True)
class Export:
    """What :func:`export_tasks` wrote."""

    tasks: Path
    config: Path
    image_dir: Path
    task_count: int
    image_count: int


def label_lines(classes: Sequence[str]) -> list[str]:
    """The ``<Label>`` lines of a labels control: the unanswered mark, ``skip``, then the classes."""
    reserved = {UNANSWERED, SKIP}
    clash = reserved.intersection(classes)
    if clash:
        raise ValueError(f"class names {sorted(clash)} clash with the labels Label Studio tasks reserve")
    return [f'    <Label value="{UNANSWERED}" background="#ff2d2d"/>', '    <Label value="skip" background="#888888"/>',
            *(f"    <Label value={quoteattr(name)}/>" for name in classes)]


def prediction_items(unit: QueryUnit, query: Mapping[str, Any], k: int, shape: tuple[int, int],
                     regions: RegionSource | None) -> list[dict[str, Any]]:
    """The items of a task's ``predictions[].result`` that place query ``k`` on its image, each labelled
    unanswered (:meth:`~alseg.units.base.QueryUnit.labelstudio_prediction`)."""
    height, width = shape
    region = region_mask(regions, int(query["image_index"]), int(query["superpixel"]), shape) \
        if unit.region_resource else None
    items = unit.labelstudio_prediction(query, shape, region)
    return [{"id": f"q{k}" if len(items) == 1 and region is None else f"q{k}-{part}",
             "from_name": unit.labelstudio_name, "type": kind, "to_name": IMAGE_NAME, "original_width": width,
             "original_height": height, "image_rotation": 0, "value": {**value, kind: [UNANSWERED]}}
            for part, (kind, value) in enumerate(items)]


def labelling_config(classes: Sequence[str], units: set[str]) -> str:
    """The Label Studio labelling config (XML) for tasks of the row ``units`` over ``classes``."""
    lines = [
        "<View>",
        '  <Header value="$question"/>',
        f'  <Image name="{IMAGE_NAME}" value="$image" zoom="true" zoomControl="true"/>',
    ]
    for name in ROW_UNITS:
        if name in units:
            lines += ROW_UNITS[name].labelstudio_control(classes, IMAGE_NAME, label_lines(classes))
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def export_tasks(
    queries_path: str | os.PathLike[str],
    dataset_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    image_root: str | None = None,
    regions: RegionSource | None = None,
) -> Export:
    """Write a round's queries as Label Studio tasks, their labelling config and their images.

    Parameters
    ----------
    queries_path : str or PathLike
        The round's ``queries.csv``.
    dataset_path : str or PathLike
        The prepared dataset (its ``train`` split is the pool).
    out_path : str or PathLike
        The tasks file (``tasks.json``); the config goes to ``<stem>_config.xml`` and the images to
        ``<stem>_images/`` beside it.
    image_root : str, optional
        URL prefix under which Label Studio reaches the images folder (``data.image`` is
        ``<image_root>/<file>``). Default: Label Studio's local-files URL of the folder's absolute
        path, ``/data/local-files/?d=<path without the leading />`` (serve it with
        ``LOCAL_FILES_SERVING_ENABLED=true`` and ``LOCAL_FILES_DOCUMENT_ROOT=/``).
    regions : RegionSource, optional
        Region masks of the queries whose unit names a region (superpixel queries: required if there
        are any).
    """
    out_path = Path(out_path)
    queries = read_queries(queries_path)
    pool = PoolImages(dataset_path)
    classes = list(pool.info.classes)
    height, width = pool.shape
    units = {name: unit_of_row(name) for name in dict.fromkeys(queries["unit"].tolist())}
    if regions is None and any(unit.region_resource for unit in units.values()):
        region_mask(None, 0, 0, (height, width))  # raises: region queries need their regions
    image_dir = out_path.with_name(out_path.stem + "_images")
    image_dir.mkdir(parents=True, exist_ok=True)

    urls: dict[int, str] = {}
    for image_index in sorted({int(i) for i in queries["image_index"]}):
        stem = str(queries["image"][np.flatnonzero(queries["image_index"] == image_index)[0]])
        name = f"{image_index:05d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', stem)}.png"
        with atomic_path(image_dir / name) as tmp:
            Image.fromarray(pool.array(image_index)).save(tmp, format="PNG")
        urls[image_index] = _image_url(image_dir, name, image_root)

    tasks = []
    for k in range(len(queries["query_id"])):
        unit = units[str(queries["unit"][k])]
        query = {name: column[k] for name, column in queries.items()}
        data = {
            "image": urls[int(queries["image_index"][k])],
            "query_id": str(queries["query_id"][k]),
            "unit": unit.row_unit,
            "question": unit.labelstudio_question(query, classes),
            "image_name": str(queries["image"][k]),
            "alseg_classes": classes,
        }
        task: dict[str, Any] = {"data": data}
        result = prediction_items(unit, query, k, (height, width), regions)
        if result:
            score = float(queries["score"][k])
            prediction: dict[str, Any] = {"model_version": f"alseg {queries['strategy'][k]}", "result": result}
            if math.isfinite(score):
                prediction["score"] = score
            task["predictions"] = [prediction]
        tasks.append(task)

    write_json_atomic(out_path, tasks)
    config = out_path.with_name(out_path.stem + "_config.xml")
    write_text_atomic(config, labelling_config(classes, {str(u) for u in queries["unit"]}))
    return Export(out_path, config, image_dir, len(tasks), len(urls))


def _image_url(image_dir: Path, name: str, image_root: str | None) -> str:
    if image_root:
        return f"{image_root.rstrip('/')}/{name}"
    return "/data/local-files/?d=" + quote(f"{str(image_dir.resolve()).lstrip('/')}/{name}", safe="/")


def import_answers(
    export_path: str | os.PathLike[str],
    queries_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    annotator: str | None = None,
) -> int:
    """Turn a Label Studio JSON export into ``answers.csv`` (validated; never overwrites).

    Parameters
    ----------
    export_path : str or PathLike
        Label Studio's export in its JSON format (a list of tasks with ``annotations``).
    queries_path : str or PathLike
        The round's ``queries.csv`` (the tasks carry its query ids).
    out_path : str or PathLike
        The answers file to create.
    classes : sequence of str, optional
        Class names (index = id); default: the ``alseg_classes`` the exported tasks carry.
    annotator : str, optional
        Name to record instead of Label Studio's ``completed_by``.

    Returns
    -------
    int
        The number of answers written.

    Raises
    ------
    AnswerFileError
        Naming the export and every problem (by task): not a task list, tasks without a query id or
        annotation, labels that are not a class, duplicates, missing or unknown queries, ...
    FileExistsError
        If ``out_path`` exists.
    """
    export_path, out_path = Path(export_path), Path(out_path)
    if out_path.exists():
        raise FileExistsError(f"{out_path} exists; answers are never overwritten (move it away first)")
    try:
        tasks = json.loads(export_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AnswerFileError(f"{export_path}: cannot read the Label Studio export ({err})") from err
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise AnswerFileError(
            f"{export_path}: not a Label Studio JSON export (a list of tasks); export with the 'JSON' format"
        )
    json_min = bool(tasks) and not any("data" in t or "annotations" in t for t in tasks)
    if json_min:
        tasks = tasks_from_json_min(tasks)
    queries = read_queries(queries_path)
    unit_of = {qid: unit_of_row(unit) for qid, unit in zip(queries["query_id"], queries["unit"])}
    names = list(classes) if classes is not None else _exported_classes(tasks, export_path)
    rows, where, problems = [], [], []
    for position, task in enumerate(tasks, start=1):
        at = f"task {position} (id {task.get('id', '?')})"
        data = task.get("data") or {}
        qid = str(data.get("query_id", "")).strip()
        if not qid:
            problems.append(f"{at}: no query_id in its data (not a task exported by alseg export-labelstudio)")
            continue
        row = _answer_row(task, qid, unit_of.get(qid), names, annotator)
        if row is None:
            continue  # not annotated: reported as a query without answer
        rows.append(row)
        where.append(at)
    problems += answer_problems(rows, queries, names, where=where)
    if json_min and any("have no answer" in p for p in problems):
        problems.append("a JSON-MIN export leaves out the tasks skipped in Label Studio: export with the 'JSON' "
                        "format to import them as skip")
    if problems:
        raise AnswerFileError(format_problems(export_path, problems))
    order = {qid: i for i, qid in enumerate(queries["query_id"])}
    write_answers_csv(out_path, sorted(rows, key=lambda row: order[row["query_id"]]))
    return len(rows)


#: What Label Studio's JSON-MIN export adds to a task's data fields in each record
_JSON_MIN_FIELDS = ("id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement")


def tasks_from_json_min(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Label Studio's JSON-MIN export as the tasks of its JSON export.

    JSON-MIN writes one flat record per annotation: the task's data fields, its ``id``, each control's
    answer under the control's name (a choice as a string; points and polygons as lists of their
    values) and the annotation's ``annotator``, ``lead_time``, ``created_at`` and ``updated_at``; a task
    without annotations is one record without answers. Records of one task become one task with one
    annotation per record, in the order of the records.
    """
    controls = {unit.labelstudio_name for unit in ROW_UNITS.values() if unit.labelstudio_name}
    tasks: dict[str, dict[str, Any]] = {}
    for number, record in enumerate(records):
        data = {k: v for k, v in record.items() if k not in _JSON_MIN_FIELDS and k not in controls}
        key = repr(record.get("id", f"record {number}"))
        task = tasks.setdefault(key, {"id": record.get("id"), "data": data, "annotations": []})
        result = [item for name in sorted(controls) if name in record for item in _json_min_result(record[name])]
        if result or record.get("annotation_id") is not None:
            task["annotations"].append({
                "result": result,
                "completed_by": record.get("annotator"),
                **{k: record.get(k) for k in ("lead_time", "created_at", "updated_at")},
            })
    return list(tasks.values())


def _json_min_result(value: Any) -> list[dict[str, Any]]:
    """One control's JSON-MIN answer as result items of the JSON export."""
    items = value if isinstance(value, list) else [value]
    result = []
    for item in items:
        if isinstance(item, str):
            result.append({"type": "choices", "value": {"choices": [item]}})
        elif isinstance(item, dict):
            kind = next((k for k in RESULT_TYPES if k in item), None)
            if kind is not None:
                result.append({"type": kind, "value": {kind: item[kind]}})
    return result


def _exported_classes(tasks: Sequence[Mapping[str, Any]], origin: Path) -> list[str]:
    found = {tuple(t.get("data", {}).get("alseg_classes") or ()) for t in tasks} - {()}
    if len(found) != 1:
        raise AnswerFileError(
            f"{origin}: the tasks do not carry one list of class names (alseg_classes); pass the dataset "
            "(--dataset) to name the classes"
        )
    return list(found.pop())


def _answer_row(
    task: Mapping[str, Any], qid: str, unit: QueryUnit | None, classes: Sequence[str], annotator: str | None
) -> dict[str, str] | None:
    """The answer row of one task, or None if no annotation answers it (``unit``: its query's; None for
    a query id not in the round, reported by the checks)."""
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
    if not annotations:
        return None
    done = [a for a in annotations if not a.get("was_cancelled")]
    chosen = max(done or annotations, key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))
    if done:
        labels = _labels(chosen.get("result") or [])
        answer = unit.labelstudio_answer(labels, classes) if unit is not None else " + ".join(sorted(labels))
    else:
        answer = SKIP  # Label Studio's Skip button cancels the annotation
    seconds = chosen.get("lead_time")
    clicks = unit.answered_clicks(answer) if unit is not None and answer != SKIP else 1
    return {
        "query_id": qid,
        "answer": answer,
        "source": "human",
        "annotator": annotator or _annotator(chosen),
        "seconds": "" if seconds is None else str(round(float(seconds), 3)),
        "clicks": str(clicks),
    }


def _labels(result: Sequence[Mapping[str, Any]]) -> set[str]:
    """The distinct labels or choices of an annotation's result, without the unanswered mark."""
    labels: set[str] = set()
    for item in result:
        kind = item.get("type")
        if kind in RESULT_TYPES:
            labels.update(str(v) for v in (item.get("value") or {}).get(kind, []))
    labels.discard(UNANSWERED)
    return labels


def _annotator(annotation: Mapping[str, Any]) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, str) and who:  # JSON-MIN of older Label Studio versions: the email
        return who
    if isinstance(who, dict):
        return str(who.get("email") or who.get("username") or who.get("id") or "labelstudio")
    if annotation.get("created_username"):
        return str(annotation["created_username"]).split(",")[0].strip()
    return f"labelstudio-user-{who}" if who is not None else "labelstudio"
