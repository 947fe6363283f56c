"""Learning curves and the comparison of experiments on one cost axis.

A learning curve is one row per round from that round's ``metrics.json``. Curves of experiments with
different query units are comparable against labelled pixels, clicks and annotation hours. The hours
are measured where people answered with the seconds they took, estimated from the configured cost per
query otherwise; ``cost_source`` says which (``measured``, ``estimated`` or ``mixed``), and so does the
hours axis of the comparison plot.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alseg.atomic import atomic_path

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


def cost_sources(curves: Mapping[str, Sequence[Mapping[str, Any]]]) -> set[str]:
    """Whether the hours of ``curves`` are ``measured``, ``estimated`` or both (a set of those).

    A ``mixed`` row counts as both; a row without ``cost_source`` (a curve from before it existed) as
    estimated.
    """
    found: set[str] = set()
    for curve in curves.values():
        for row in curve:
            source = row.get("cost_source") or "estimated"
            found.update(("measured", "estimated") if source == "mixed" else (source,))
    return found


def hours_label(curves: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The hours axis label: ``annotation hours (measured)``, ``(estimated)`` or ``(measured and estimated)``."""
    found = cost_sources(curves)
    which = "measured and estimated" if len(found) > 1 else (found.pop() if found else "estimated")
    return f"annotation hours ({which})"


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


def comparison_rows(curves: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The final round of each experiment with its mIoU, cost, and gain over the first round."""
    rows = []
    for name, curve in curves.items():
        first, last = curve[0], curve[-1]
        rows.append(
            {
                "experiment": name,
                "unit": last["unit"],
                "strategy": last["strategy"],
                "rounds": int(last["round"]) + 1,
                "labelled_pixels": last["labelled_pixels"],
                "clicks": last["clicks"],
                "hours": last["hours"],
                "cost_source": last.get("cost_source") or "estimated",
                "miou_round0": first["miou"],
                "miou_final": last["miou"],
            }
        )
    return sorted(rows, key=lambda r: -(r["miou_final"] or 0.0))


def plot_comparison(curves: Mapping[str, Sequence[Mapping[str, Any]]], out: str | os.PathLike[str]) -> None:
    """Test mIoU against labelled pixels, clicks and hours, one line per experiment (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(COST_AXES), figsize=(5 * len(COST_AXES), 4), sharey=True)
    for ax, (column, label) in zip(axes, COST_AXES):
        for name, curve in curves.items():
            xs = [r[column] for r in curve]
            ys = [100 * r["miou"] for r in curve]
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
        ax.set_xlabel(hours_label(curves) if column == "hours" else label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test mIoU (%)")
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(out)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
