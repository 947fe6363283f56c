"""The comparison of experiments as Markdown (``comparison.md``, and the benchmarks' reports): per round
the test mIoU over seeds with its 95% interval, each group's cost at its final round with where its hours
come from, and the per-class IoU. The rows are :func:`alseg.report.round_table`'s and
:func:`alseg.report.per_class_table`'s."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def markdown_summary(round_rows: Sequence[Mapping[str, Any]], class_rows: Sequence[Mapping[str, Any]]) -> str:
    """The per-round and per-class tables as Markdown (mIoU in %, mean ± std where seeds > 1)."""

    def miou(row: Mapping[str, Any]) -> str:
        text = f"{100 * row['miou_mean']:.1f}"
        return text + (f" ± {100 * row['miou_std']:.1f}" if row["seeds"] > 1 else "")

    rounds = sorted({int(row["round"]) for row in round_rows})
    has_reference = any(row.get("reference") for row in round_rows)
    lines = ["Test mIoU (%) per round" + ("; in brackets, % of the final mIoU of the group's fully supervised "
                                          "reference (column reference)" if has_reference else "")
             + "; mean ± std over seeds where more than one ran:", "",
             "| group | seeds | reference | " + " | ".join(f"round {r}" for r in rounds) + " |",
             "|---|---:|---|" + "---:|" * len(rounds)]
    for group in dict.fromkeys(row["group"] for row in round_rows):
        by_round = {int(row["round"]): row for row in round_rows if row["group"] == group}
        cells = []
        for r in rounds:
            row = by_round.get(r)
            if row is None:
                cells.append("")
                continue
            percent = row.get("percent_of_reference")
            cells.append(miou(row) + (f" ({percent:.0f}%)" if percent is not None else ""))
        seeds = max(row["seeds"] for row in by_round.values())
        reference = by_round[min(by_round)].get("reference") or ""
        lines.append(f"| {group} | {seeds} | {reference} | " + " | ".join(cells) + " |")
    lines += _interval_lines(round_rows, rounds)
    lines += _cost_lines(round_rows)
    if class_rows:
        classes = [key for key in class_rows[0] if key.startswith("iou_")]
        lines += ["", "Per-class test IoU (%) at the final round (mean over seeds):", "",
                  "| group | round | mIoU | " + " | ".join(c[4:] for c in classes) + " |",
                  "|---|---:|---:|" + "---:|" * len(classes)]
        for row in class_rows:
            lines.append(f"| {row['group']} | {row['round']} | {100 * row['miou']:.1f} | "
                         + " | ".join(f"{100 * row[c]:.1f}" for c in classes) + " |")
    return "\n".join(lines) + "\n"


def _cost_lines(round_rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each group's cost at its final round as a Markdown table, its hours flagged as estimated (from the
    configured seconds per query, ``costs``), measured (people's own seconds) or mixed."""
    lines = ["", "Cost at the final round (mean over seeds; hours estimated from the configured seconds per "
                 "query, `costs`, unless people's answers measured them: column hours from):", "",
             "| group | round | labelled pixels | clicks | hours | hours from |", "|---|---:|---:|---:|---:|---|"]
    for group in dict.fromkeys(row["group"] for row in round_rows):
        last = [row for row in round_rows if row["group"] == group][-1]
        lines.append(f"| {group} | {last['round']} | {last['labelled_pixels']:.0f} | {last['clicks']:.0f} | "
                     f"{last['hours']:.2f} | {last['cost_source']} |")
    return lines


def _interval_lines(round_rows: Sequence[Mapping[str, Any]], rounds: Sequence[int]) -> list[str]:
    """The 95% intervals of the mean test mIoU of the groups with several seeds, as a Markdown table."""
    groups = [g for g in dict.fromkeys(row["group"] for row in round_rows)
              if any(row["seeds"] > 1 for row in round_rows if row["group"] == g)]
    if not groups:
        return []
    lines = ["", "95% interval of the mean test mIoU (%) over seeds (Student t with seeds - 1 degrees of freedom: "
                 "t = 12.7 for 2 seeds, 4.3 for 3):", "",
             "| group | seeds | " + " | ".join(f"round {r}" for r in rounds) + " |",
             "|---|---:|" + "---:|" * len(rounds)]
    for group in groups:
        by_round = {int(row["round"]): row for row in round_rows if row["group"] == group}
        cells = [f"[{100 * row['miou_ci95_low']:.1f}, {100 * row['miou_ci95_high']:.1f}]"
                 if row is not None and row.get("miou_ci95_low") is not None else ""
                 for row in (by_round.get(r) for r in rounds)]
        lines.append(f"| {group} | {max(row['seeds'] for row in by_round.values())} | " + " | ".join(cells) + " |")
    return lines


def markdown_by_dataset(tables: Mapping[str, tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]]]
                        ) -> str:
    """:func:`markdown_summary` of each dataset (``tables``: dataset -> its round rows and class rows), each
    under a ``## Dataset <name>`` heading when there are several."""
    if len(tables) == 1:
        return markdown_summary(*next(iter(tables.values())))
    return "\n".join(f"## Dataset {name}\n\n" + markdown_summary(*both) for name, both in tables.items())
