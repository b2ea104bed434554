"""Result tables shaped like the paper's, rendered from measured runs (Markdown, CSV, HTML).

A recipe's ``tables`` entry::

    - name: table1
      title: "Video-level mAP (%)"
      metric: mAP                 # dotted path inside each step's results JSON (or a mapping
                                  # row -> path, when the rows report different metrics)
      scale: 100                  # fractions in results -> percent in the table
      rows:                       # row -> column -> step id (before seed expansion)
        x3d-tiny: {Full: train-full, Weak-noisy: train-noisy, Weak-AdaptFocus: train-af}
      deltas: [[Weak-AdaptFocus, Weak-noisy]]   # extra "A - B" columns
      paper:                      # the paper's numbers, shown as extra rows "<row> (paper)"
        I3D: {Full: 39.8, Weak-noisy: 34.1, Weak-AdaptFocus: 39.6}

A cell averages every seed of its step: ``mean ± std (n)``; a missing run shows ``-``.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cell:
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        if len(self.values) < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (len(self.values) - 1))

    def text(self, digits: int = 1) -> str:
        if not self.values:
            return "-"
        if len(self.values) == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} ({len(self.values)})"


def metric_value(results: Mapping[str, Any], path: str) -> float | None:
    """``path`` is dotted; a number indexes a list (``mAP.4`` = mAP at the fifth threshold). A
    key that holds dots itself (``R@1,IoU=0.5``) is matched whole first."""
    node: Any = results
    rest = path
    while rest:
        if isinstance(node, Mapping) and rest in node:
            node, rest = node[rest], ""
            continue
        part, _, rest = rest.partition(".")
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return None
    return float(node) if isinstance(node, (int, float)) else None


def build_table(spec: Mapping[str, Any], results: Mapping[str, Any]) -> tuple[list[str], list[list]]:
    """Header and rows (first cell the row name, then Cells, then delta Cells, then paper)."""
    scale = float(spec.get("scale", 1.0))

    def values(step: str, row: str) -> tuple[float, ...]:
        metric = spec["metric"] if isinstance(spec["metric"], str) else spec["metric"][row]
        found = (metric_value(e["results"], metric) for e in results.values()
                 if e["step"] == step)
        return tuple(v * scale for v in found if v is not None)

    columns: list[str] = []
    for row in spec["rows"].values():
        columns += [c for c in row if c not in columns]
    deltas = [tuple(d) for d in spec.get("deltas", ())]
    header = ["", *columns, *[f"{a} - {b}" for a, b in deltas]]
    body: list[list] = []
    for name, row in spec["rows"].items():
        cells = {c: Cell(values(row[c], name)) if c in row else Cell(()) for c in columns}
        line: list = [name, *[cells[c] for c in columns]]
        for a, b in deltas:
            pairs = tuple(x - y for x, y in zip(cells[a].values, cells[b].values))
            line.append(Cell(pairs))
        body.append(line)
    for name, row in (spec.get("paper") or {}).items():
        values = [Cell((float(row[c]),)) if c in row else Cell(()) for c in columns]
        line = [f"{name} (paper)", *values]
        for a, b in deltas:
            line.append(Cell((float(row[a]) - float(row[b]),)) if a in row and b in row else Cell(()))
        body.append(line)
    return header, body


def table_text(spec: Mapping[str, Any], results: Mapping[str, Any]
               ) -> tuple[str, list[str], list[list[str]]]:
    """Title, header and rows as the text every rendering shows (``mean ± std (n)``, ``-``)."""
    header, body = build_table(spec, results)
    digits = int(spec.get("digits", 1))
    rows = [[row[0], *[c.text(digits) for c in row[1:]]] for row in body]
    return str(spec.get("title", spec["name"])), header, rows


def render_markdown(spec: Mapping[str, Any], results: Mapping[str, Any]) -> str:
    title, header, rows = table_text(spec, results)
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def render_html(spec: Mapping[str, Any], results: Mapping[str, Any]) -> str:
    """The title as a heading, then a ``<table>`` (the paper's rows with class ``paper``, missing
    cells with class ``missing``); all text escaped."""
    title, header, rows = table_text(spec, results)
    esc = html.escape
    measured = len(spec["rows"])
    lines = [f'<section class="table" id="table-{esc(str(spec["name"]))}">',
             f"<h3>{esc(title)}</h3>", '<table class="result">',
             "<thead><tr>" + "".join(f'<th scope="col">{esc(h)}</th>' for h in header)
             + "</tr></thead>", "<tbody>"]
    for index, row in enumerate(rows):
        kind = ' class="paper"' if index >= measured else ""
        cells = "".join(f'<td class="missing">{esc(c)}</td>' if c == "-" else f"<td>{esc(c)}</td>"
                        for c in row[1:])
        lines.append(f'<tr{kind}><th scope="row">{esc(row[0])}</th>{cells}</tr>')
    lines += ["</tbody>", "</table>", "</section>"]
    return "\n".join(lines) + "\n"


def render_csv(spec: Mapping[str, Any], results: Mapping[str, Any]) -> str:
    header, body = build_table(spec, results)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["table", "row", "column", "mean", "std", "n"])
    for row in body:
        for column, cell in zip(header[1:], row[1:]):
            writer.writerow([spec["name"], row[0], column,
                             "" if not cell.values else f"{cell.mean:.4f}",
                             "" if not cell.values else f"{cell.std:.4f}", len(cell.values)])
    return out.getvalue()
