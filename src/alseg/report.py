"""Learning curves and the comparison of experiments on one cost axis.

A learning curve is one row per round from that round's ``metrics.json``. Curves of experiments with
different query units are comparable against labelled pixels, clicks and annotation hours. The hours
are measured where people answered with the seconds they took, estimated from the configured cost per
query otherwise; ``cost_source`` says which (``measured``, ``estimated`` or ``mixed``), and so does the
hours axis of the comparison plot.

Experiments of one *group* (the seed copies of a config entry with ``seeds``) are summarised together:
the per-round table and the per-axis figures give their mean and spread. A group's *reference* (by
default the fully supervised ``unit: full`` experiment of the same model and schedule,
:func:`alseg.config.references_of`) is its 100% in the per-round table; references are dashed lines in
the figures, not curves (their one round costs the whole pool and would squeeze every other curve).

Experiments on different datasets are not comparable class by class, nor curve against curve: the
per-round and per-class tables are made per dataset (:func:`by_dataset`), each figure has one panel (row)
per dataset, and the cross-dataset tables (``comparison.csv``, ``comparison_rounds.csv``) have a
``dataset`` column and only the columns every dataset has (README, "Your data").
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from alseg.atomic import atomic_path, write_text_atomic
from alseg.report_markdown import markdown_by_dataset

CURVE_COLUMNS = [
    "experiment", "round", "unit", "strategy", "labelled_pixels", "clicks", "seconds", "hours",
    "cost_source", "miou", "pixel_accuracy", "best_val_miou", "model",
]
#: (column, axis label) of the comparison plot's panels; the hours label gets its cost source
#: (:func:`hours_label`)
COST_AXES = [("labelled_pixels", "labelled pixels"), ("clicks", "clicks"), ("hours", "annotation hours")]


def read_metrics(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Read ``metrics.json`` files, sorted by round; a malformed file raises an error naming it."""
    rows = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                rows.append(json.load(f))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read metrics ({exc})") from exc
    return sorted(rows, key=lambda m: m["round"])


def curve_rows(metrics: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One learning-curve row per round: cost so far, test scores and per-class IoU (``iou_<class>``)."""
    rows = []
    for m in metrics:
        row = {c: m.get(c) for c in CURVE_COLUMNS}
        row.update({f"iou_{name}": v for name, v in m.get("per_class_iou", {}).items()})
        rows.append(row)
    return rows


def cost_source(rows: Iterable[Mapping[str, Any]]) -> str:
    """Where the hours of curve ``rows`` come from: ``measured``, ``estimated`` or ``mixed`` (both).

    A ``mixed`` row counts as both; a row without ``cost_source`` (a curve from before it existed) as
    estimated.
    """
    found: set[str] = set()
    for row in rows:
        source = row.get("cost_source") or "estimated"
        found.update(("measured", "estimated") if source == "mixed" else (source,))
    return "mixed" if len(found) > 1 else (found.pop() if found else "estimated")


def hours_label(curves: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The hours axis label: ``annotation hours (measured)``, ``(estimated)`` or ``(measured and estimated)``."""
    source = cost_source(row for curve in curves.values() for row in curve)
    return f"annotation hours ({'measured and estimated' if source == 'mixed' else source})"


def write_rows(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``rows`` (dicts with the same keys) as CSV, atomically; None becomes an empty cell."""
    columns = list(rows[0]) if rows else CURVE_COLUMNS
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a learning-curve CSV; numeric cells become floats."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, value in row.items():
            try:
                row[key] = float(value) if value != "" else None
            except ValueError:
                pass
    return rows


def by_dataset(
    curves: Mapping[str, Sequence[Mapping[str, Any]]], datasets: Mapping[str, str] | None = None
) -> dict[str, dict[str, Sequence[Mapping[str, Any]]]]:
    """The curves of each dataset (``datasets``: experiment -> its dataset), in the order the datasets first
    appear; without ``datasets``, every curve under the dataset ``""``."""
    split: dict[str, dict[str, Sequence[Mapping[str, Any]]]] = {}
    for name, curve in curves.items():
        split.setdefault((datasets or {}).get(name, ""), {})[name] = curve
    return split


def compared_datasets(experiments: Sequence[str], datasets: Mapping[str, str]) -> list[str]:
    """The datasets of the compared ``experiments``, in the order they first appear."""
    return list(dict.fromkeys(datasets[name] for name in experiments))


def per_class_paths(results: str, datasets: Sequence[str]) -> list[str]:
    """The per-class tables of the comparison: ``per_class_iou.csv`` for one dataset, else one
    ``per_class_iou_<dataset>.csv`` per dataset (their classes differ)."""
    if len(datasets) <= 1:
        return [f"{results}/per_class_iou.csv"]
    return [f"{results}/per_class_iou_{name}.csv" for name in datasets]


def comparison_rows(
    curves: Mapping[str, Sequence[Mapping[str, Any]]], datasets: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The final round of each experiment with its dataset (``datasets``: experiment -> dataset), mIoU, cost,
    and gain over the first round; by dataset (in order of appearance), then best final mIoU first."""
    order = {name: i for i, name in enumerate(by_dataset(curves, datasets))}
    rows = []
    for name, curve in curves.items():
        first, last = curve[0], curve[-1]
        rows.append(
            {
                "experiment": name,
                "dataset": (datasets or {}).get(name, ""),
                "unit": last["unit"],
                "strategy": last["strategy"],
                "rounds": int(last["round"]) + 1,
                "labelled_pixels": last["labelled_pixels"],
                "clicks": last["clicks"],
                "hours": last["hours"],
                "cost_source": cost_source([last]),
                "miou_round0": first["miou"],
                "miou_final": last["miou"],
            }
        )
    return sorted(rows, key=lambda r: (order[r["dataset"]], -(r["miou_final"] or 0.0)))


def group_curves(
    curves: Mapping[str, Sequence[Mapping[str, Any]]], groups: Mapping[str, str] | None = None
) -> dict[str, list[Sequence[Mapping[str, Any]]]]:
    """The curves of each group, in the order the groups first appear (an experiment without a group is
    its own)."""
    grouped: dict[str, list[Sequence[Mapping[str, Any]]]] = {}
    for name, curve in curves.items():
        grouped.setdefault((groups or {}).get(name, name), []).append(curve)
    return grouped


def _spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def mean_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95% Student-t interval of the mean of ``values`` (seeds); None for fewer than two.

    With n seeds it is mean ± t(n - 1) * std / sqrt(n): t is 12.7 for two seeds and 4.3 for three, so
    few seeds give wide intervals, as they should."""
    if len(values) < 2:
        return None
    from scipy.stats import t

    mean, std = _spread(values)
    half = float(t.ppf(0.975, len(values) - 1)) * std / math.sqrt(len(values))
    return mean - half, mean + half


def final_miou(members: Sequence[Sequence[Mapping[str, Any]]]) -> float | None:
    """Mean final-round test mIoU of a group's curves (None for no curves)."""
    finals = [float(curve[-1]["miou"]) for curve in members]
    return _spread(finals)[0] if finals else None


def round_table(
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    groups: Mapping[str, str] | None = None,
    references: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """One row per group and round: mean cost, mean and spread of test mIoU over the group's seeds, and
    the mean as a percentage of the final mIoU of the group's reference (``references``: group ->
    reference group).

    A round is summarised over the experiments that reached it (``seeds`` says how many). Columns:
    ``group, round, seeds, labelled_pixels, clicks, hours, cost_source`` (:func:`cost_source` of the
    seeds' rows), ``miou_mean, miou_std, miou_min, miou_max, miou_ci95_low, miou_ci95_high``
    (:func:`mean_interval`; empty for one seed), ``reference, percent_of_reference`` (both empty where
    the group has no reference among ``curves``).
    """
    grouped = group_curves(curves, groups)
    rows = []
    for group, members in grouped.items():
        reference = (references or {}).get(group)
        ref = final_miou(grouped.get(reference, [])) if reference else None
        for r in range(max(len(curve) for curve in members)):
            at = [curve[r] for curve in members if len(curve) > r]
            miou = [float(row["miou"]) for row in at]
            mean, std = _spread(miou)
            interval = mean_interval(miou)
            rows.append({
                "group": group,
                "round": r,
                "seeds": len(at),
                **{key: _spread([float(row[key]) for row in at])[0] for key in ("labelled_pixels", "clicks", "hours")},
                "cost_source": cost_source(at),
                "miou_mean": mean,
                "miou_std": std,
                "miou_min": min(miou),
                "miou_max": max(miou),
                "miou_ci95_low": None if interval is None else interval[0],
                "miou_ci95_high": None if interval is None else interval[1],
                "reference": reference if ref else None,
                "percent_of_reference": None if not ref else 100 * mean / ref,
            })
    return rows


def dataset_tables(
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    groups: Mapping[str, str] | None = None,
    references: Mapping[str, str | None] | None = None,
    datasets: Mapping[str, str] | None = None,
) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Each dataset's per-round (:func:`round_table`) and per-class (:func:`per_class_table`) tables."""
    return {dataset: (round_table(mine, groups, references), per_class_table(mine, groups))
            for dataset, mine in by_dataset(curves, datasets).items()}


def comparison_round_rows(tables: Mapping[str, tuple[Sequence[Mapping[str, Any]], Any]]) -> list[dict[str, Any]]:
    """``comparison_rounds.csv``: every dataset's per-round rows (:func:`dataset_tables`), with its ``dataset``."""
    return [{"dataset": dataset, **row} for dataset, (rounds, _) in tables.items() for row in rounds]


def per_class_table(
    curves: Mapping[str, Sequence[Mapping[str, Any]]], groups: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Per-class test IoU at each group's final round, the mean over its seeds: ``group, round, seeds,
    miou`` then one ``iou_<class>`` column per class of the learning curves."""
    rows = []
    for group, members in group_curves(curves, groups).items():
        last = max(len(curve) for curve in members) - 1
        finals = [curve[last] for curve in members if len(curve) > last]
        classes = [key for key in finals[0] if key.startswith("iou_")]
        rows.append({
            "group": group,
            "round": last,
            "seeds": len(finals),
            "miou": _spread([float(row["miou"]) for row in finals])[0],
            **{key: _spread([float(row[key]) for row in finals if row.get(key) is not None] or [math.nan])[0]
               for key in classes},
        })
    return rows


def comparison_files(results: str, datasets: Sequence[str]) -> dict[str, Any]:
    """The comparison's files in ``results`` (the ``compare`` rule's outputs): the per-experiment table, the
    figure, the per-round table, one per-class table per dataset (:func:`per_class_paths`), the Markdown
    summary and one figure per cost axis."""
    return {"table": f"{results}/comparison.csv", "plot": f"{results}/comparison.png",
            "rounds": f"{results}/comparison_rounds.csv", "classes": per_class_paths(results, datasets),
            "summary": f"{results}/comparison.md",
            "axes": [f"{results}/comparison_{column}.png" for column, _ in COST_AXES]}


def write_comparison(
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    files: Mapping[str, Any],
    groups: Mapping[str, str] | None = None,
    references: Mapping[str, str | None] | None = None,
    datasets: Mapping[str, str] | None = None,
) -> None:
    """Write every file of :func:`comparison_files` from the learning curves (by experiment)."""
    write_rows(files["table"], comparison_rows(curves, datasets))
    plot_comparison(curves, files["plot"], groups, references, datasets)
    tables = dataset_tables(curves, groups, references, datasets)
    write_rows(files["rounds"], comparison_round_rows(tables))
    for (_, classes), out in zip(tables.values(), files["classes"]):
        write_rows(out, classes)
    write_text_atomic(files["summary"], markdown_by_dataset(tables))
    for (column, _), out in zip(COST_AXES, files["axes"]):
        plot_axis(curves, column, out, groups, references, datasets)


CURVE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def curve_styles(groups: Sequence[str]) -> dict[str, tuple[tuple[float, float, float, float], str]]:
    """Colour (RGBA) and marker of each group's curve: 20 distinct colours and 10 markers.

    matplotlib's default cycle repeats after 10 colours, and a benchmark draws more curves than that;
    the markers keep curves apart in greyscale and for colour-blind readers.
    """
    import matplotlib

    tab20 = matplotlib.colormaps["tab20"]
    # the dark shades first: each light one pairs with a dark one, so they come only after the 10th curve
    colours = [tab20(i) for i in (*range(0, 20, 2), *range(1, 20, 2))]
    return {group: (colours[i % 20], CURVE_MARKERS[i % len(CURVE_MARKERS)]) for i, group in enumerate(groups)}


def _draw_axis(ax: Any, rows: Sequence[Mapping[str, Any]], column: str) -> None:
    """Draw :func:`round_table` ``rows`` against cost ``column`` on ``ax``: one line per group (mean, with a
    lowest-to-highest band over seeds), each reference as a dashed horizontal line."""
    references = {row["reference"] for row in rows if row.get("reference")}
    styles = iter(["--", ":", "-."] * len(rows))
    groups = list(dict.fromkeys(row["group"] for row in rows))
    look = curve_styles([group for group in groups if group not in references])
    for group in groups:
        mine = [row for row in rows if row["group"] == group]
        if group in references:
            ax.axhline(100 * mine[-1]["miou_mean"], color="black", linestyle=next(styles), linewidth=1,
                       label=f"{group} (100%)")
            continue
        xs = [row[column] for row in mine]
        seeds = max(row["seeds"] for row in mine)
        colour, marker = look[group]
        ax.plot(xs, [100 * row["miou_mean"] for row in mine], color=colour, marker=marker, markersize=4,
                label=group + (f" ({seeds} seeds)" if seeds > 1 else ""))
        if seeds > 1:
            ax.fill_between(xs, [100 * row["miou_min"] for row in mine], [100 * row["miou_max"] for row in mine],
                            color=colour, alpha=0.15, linewidth=0)
    spread = [row[column] for row in rows if row[column] > 0 and row["group"] not in references]
    if column == "labelled_pixels" and spread and max(spread) > 100 * min(spread):
        ax.set_xscale("log")  # regions label ~100x more pixels than clicks: a linear axis squashes the pixel curves
    ax.grid(alpha=0.3)


def _save(fig: Any, out: str | os.PathLike[str]) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(Path(out)) as tmp:
        fig.savefig(tmp, dpi=120, format="png", bbox_inches="tight")  # keeps a legend outside the axes
    plt.close(fig)


def _figure(panels: int, rows: int = 1) -> tuple[Any, list[list[Any]]]:
    """A figure of ``rows`` x ``panels`` axes (a row per dataset), the y axis shared along each row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = (7, 4.5) if panels == 1 else (5 * panels, 4)
    fig, axes = plt.subplots(rows, panels, figsize=(size[0], size[1] * rows), sharey="row", squeeze=False)
    return fig, [list(row) for row in axes]


def _dataset_title(ax: Any, dataset: str, datasets: int) -> None:
    """Name the dataset of a row of panels when the figure has several."""
    if datasets > 1:
        ax.set_title(f"dataset {dataset}", loc="left", fontsize=10)


def plot_axis(
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    column: str,
    out: str | os.PathLike[str],
    groups: Mapping[str, str] | None = None,
    references: Mapping[str, str | None] | None = None,
    datasets: Mapping[str, str] | None = None,
) -> None:
    """Test mIoU against one cost ``column`` (a column of :data:`COST_AXES`), one line per group (PNG);
    one panel per dataset (``datasets``: experiment -> dataset), one above the other.

    A group of several seeds is drawn as its mean with a band from its lowest to its highest seed; each
    reference group (``references``: group -> reference) as a dashed horizontal line at its final mIoU.
    """
    parts = by_dataset(curves, datasets)
    fig, axes = _figure(1, len(parts))
    for (ax,), (dataset, mine) in zip(axes, parts.items()):
        _draw_axis(ax, round_table(mine, groups, references), column)
        ax.set_xlabel(hours_label(mine) if column == "hours" else dict(COST_AXES)[column])
        ax.set_ylabel("test mIoU (%)")
        _dataset_title(ax, dataset, len(parts))
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # inside, a dozen entries hide curves
    _save(fig, out)


def plot_comparison(
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    out: str | os.PathLike[str],
    groups: Mapping[str, str] | None = None,
    references: Mapping[str, str | None] | None = None,
    datasets: Mapping[str, str] | None = None,
) -> None:
    """Test mIoU against labelled pixels, clicks and hours side by side, one line per group (PNG); a row of
    panels per dataset (``datasets``: experiment -> dataset)."""
    parts = by_dataset(curves, datasets)
    fig, axes = _figure(len(COST_AXES), len(parts))
    for row, (dataset, mine) in zip(axes, parts.items()):
        rows = round_table(mine, groups, references)
        for ax, (column, label) in zip(row, COST_AXES):
            _draw_axis(ax, rows, column)
            ax.set_xlabel(hours_label(mine) if column == "hours" else label)
        row[0].set_ylabel("test mIoU (%)")
        _dataset_title(row[0], dataset, len(parts))
        row[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, out)
