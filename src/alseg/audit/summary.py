"""The audit's readable output: the per-round table, the Markdown report, and where two experiments part."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alseg.audit.rounds import RoundSummary

SUMMARY_COLUMNS = ("experiment", "round", "asked", "answered", "skipped", "clicks", "hours", "cost", "answered by",
                   "scored by", "model", "test mIoU")


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def summary_rows(summaries: Sequence[RoundSummary]) -> list[list[str]]:
    """One row of strings per round, in :data:`SUMMARY_COLUMNS` order (the round's own cost, not the
    cumulative one; mIoU in %)."""
    return [[s.experiment, str(s.round), str(s.asked), str(s.answered), str(s.skipped), _number(s.clicks, 0),
             _number(None if s.seconds is None else s.seconds / 3600, 3), s.cost_source, s.answered_by,
             s.scored_by or "-", s.model, _number(None if s.miou is None else 100 * s.miou, 1)] for s in summaries]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``rows`` under ``header`` in aligned columns (numbers right-aligned)."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    align = ["---:" if rows and all(_numeric(row[i]) for row in rows if row[i]) else "---" for i in range(len(header))]
    return "\n".join(["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |",
                      *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows)])


def _numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def markdown_report(results: str, findings: Sequence[Any], notes: Sequence[str], summaries: Sequence[RoundSummary],
                    comparison: str | None = None) -> str:
    """The audit as Markdown: the verdict, every finding and note, the per-round table."""
    verdict = (f"**{len(findings)} finding{'s' if len(findings) != 1 else ''}**" if findings
               else "**No findings**: every round's files agree.")
    parts = [f"# Audit of `{results}`", "", verdict, ""]
    if findings:
        parts += [*(f"- {finding}" for finding in findings), ""]
    if notes:
        parts += ["Not checked:", "", *(f"- {note}" for note in notes), ""]
    parts += ["## Rounds", "", "Cost is the round's own (clicks, hours and where they come from); *scored by* is "
              "the model whose scores chose the round's queries.", "",
              markdown_table(SUMMARY_COLUMNS, summary_rows(summaries)), ""]
    if comparison:
        parts += ["## Where the experiments part", "", comparison, ""]
    return "\n".join(parts)


def compare_items(a: str, b: str, items: Mapping[str, Mapping[int, np.ndarray]]) -> tuple[str | None, list[list[str]]]:
    """Where experiments ``a`` and ``b`` part: the first round whose queries ask about different items
    (None: none differs), and per round the items each asked, those both asked and their overlap
    (intersection over union, %). ``items``: experiment -> round -> its distinct items
    (:func:`alseg.audit.rounds.item_rows`)."""
    first = None
    rows = []
    empty = np.zeros(0, dtype=next((v.dtype for e in (a, b) for v in items[e].values()), np.void))
    for r in sorted(set(items[a]) | set(items[b])):
        x, y = items[a].get(r, empty), items[b].get(r, empty)
        both = np.intersect1d(x, y).size
        union = x.size + y.size - both
        if (both != x.size or both != y.size) and first is None:
            first = f"round {r}"
        rows.append([str(r), str(x.size), str(y.size), str(both), f"{100 * both / union:.1f}" if union else ""])
    return first, rows


COMPARE_COLUMNS = ("round", "asked by A", "asked by B", "asked by both", "overlap %")
