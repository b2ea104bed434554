"""``<root>/report.html``: a pipeline's results on one static page, for a person to look at.

One self-contained file (inline CSS, no JavaScript, no external URL) beside ``results.json``,
``tables/`` and ``figures/``: the recipe's name and the date, every result table (as in
``tables/*.md``, :func:`pipelines.tables.render_html`), the gathered figures under their step
with captions (``figures/*.png`` by relative links, so the folder can be moved or copied whole)
and, collapsed, each step's command(s) and the numbers of its results file. Rewritten (atomically)
with the tables and figures on every ``weakfeat pipelines run``, a fully cached one included.
"""

from __future__ import annotations

import datetime
import html
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from data_manifests.run_folder import atomic_write_text
from pipelines.figures import FIGURES, _caption
from pipelines.recipe import Recipe, Step
from pipelines.runner import DONE, is_done, shown, step_argvs
from pipelines.tables import render_html

REPORT = "report.html"
LIST_SHOWN = 12  # a longer list of numbers (per-class APs) shows its first values and its length

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1d1d1f; background: #fff; max-width: 1100px; margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 .2rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .6rem; padding-bottom: .2rem;
     border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
p.meta, p.note, p.from { color: #555; margin: .2rem 0 .6rem; }
nav a { margin-right: 1rem; }
code, pre { font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
pre { background: #f5f5f7; padding: .6rem .8rem; white-space: pre-wrap; overflow-wrap: anywhere;
      border-radius: 4px; }
table { border-collapse: collapse; margin: .4rem 0 1rem; }
table.numbers caption { caption-side: top; text-align: left; font-weight: 600; padding: .3rem 0; }
section.table h3 { margin: 1.2rem 0 .3rem; font-size: 1rem; }
th, td { border: 1px solid #ccc; padding: .3rem .6rem; }
thead th { background: #eef1f6; }
table.result td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.result tbody th { text-align: left; font-weight: 500; }
tr.paper th, tr.paper td { color: #666; font-style: italic; background: #fafafa; }
td.missing { color: #999; text-align: center; }
table.numbers td, table.numbers th { font-size: 13px; text-align: left; }
table.numbers td { font-variant-numeric: tabular-nums; }
.figures { display: flex; flex-wrap: wrap; gap: 1.2rem 2rem; align-items: flex-start; }
figure { margin: 0; flex: 0 1 auto; min-width: 240px; max-width: 100%; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid #e3e3e3; }
figcaption { color: #444; font-size: 13px; margin-top: .3rem; }
details { border: 1px solid #ddd; border-radius: 4px; padding: .4rem .8rem; margin: .4rem 0; }
details[open] { padding-bottom: .8rem; }
summary { cursor: pointer; }
.status { font-size: 12px; padding: 0 .4rem; border-radius: 3px; margin-left: .4rem; }
.done { background: #e3f4e6; color: #1f6b2d; }
.pending { background: #f6eadb; color: #8a5300; }
"""


def write_report(recipe: Recipe, root: Path, results: Mapping[str, Any],
                 figures: Mapping[str, list[Path]], *,
                 now: datetime.datetime | None = None) -> Path:
    """Write ``root/report.html`` from what :func:`pipelines.runner.gather_results` and
    :func:`pipelines.figures.gather_figures` returned; returns its path."""
    path = root / REPORT
    atomic_write_text(path, render_report(recipe, root, results, figures, now=now))
    return path


def render_report(recipe: Recipe, root: Path, results: Mapping[str, Any],
                  figures: Mapping[str, list[Path]], *,
                  now: datetime.datetime | None = None) -> str:
    esc = html.escape
    when = (now or datetime.datetime.now()).strftime("%Y-%m-%d %H:%M")
    done = sum(is_done(step, root) for step in recipe.steps)
    count = sum(len(paths) for paths in figures.values())
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(recipe.name)}: weakfeat pipeline report ({when})</title>",
        f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<h1>Recipe {esc(recipe.name)}</h1>",
        f'<p class="meta">{esc(recipe.description)}</p>' if recipe.description else "",
        (f'<p class="meta">Report of {esc(str(root))}, written {when}: {done} of '
         f"{len(recipe.steps)} step(s) done, {len(results)} result file(s), "
         f"{count} figure(s).</p>"),
        ('<nav><a href="#tables">Tables</a><a href="#figures">Figures</a>'
         '<a href="#steps">Steps</a><a href="results.json">results.json</a></nav>'),
        '<h2 id="tables">Tables</h2>',
    ]
    if recipe.tables:
        parts.append('<p class="note">Each cell: mean ± std (n) over the seeds of its step; '
                     "“-” where no run has finished. Rows marked (paper) hold the paper's "
                     'numbers. The same tables as Markdown and CSV: <a href="tables/">tables/</a>.'
                     "</p>")
        parts += [render_html(spec, results) for spec in recipe.tables]
    else:
        parts.append('<p class="note">This recipe defines no tables.</p>')
    parts.append('<h2 id="figures">Figures</h2>')
    if not figures:
        parts.append('<p class="note">No finished step has written a plot yet.</p>')
    for step_id, paths in figures.items():
        parts += [f'<h3 id="figures-{esc(step_id)}">{esc(step_id)}</h3>',
                  (f'<p class="from">From <code>{esc(recipe.step(step_id).folder(root).name)}/'
                   "</code></p>"), '<div class="figures">']
        # The training curves (one wide plot) first, then the Figure-4 plots of each video.
        paths = sorted(paths, key=lambda p: not p.stem.endswith("_plot_training"))
        parts += [_figure(step_id, path) for path in paths]
        parts.append("</div>")
    parts += ['<h2 id="steps">Steps</h2>',
              ('<p class="note">Each step\'s command(s) and the numbers of its results file, '
               "as in results.json (click to open).</p>")]
    parts += [_step(step, root, results.get(step.id), len(figures.get(step.id, ())))
              for step in recipe.steps]
    parts += ["</body>", "</html>"]
    return "\n".join(part for part in parts if part) + "\n"


def _figure(step_id: str, path: Path) -> str:
    esc = html.escape
    caption = _caption(path.stem[len(step_id) + 1:])
    src = esc(f"{FIGURES}/{path.name}")
    size = _png_size(path)
    # Known size: the caption wraps at the image's width, and the page does not jump as the
    # (lazily loaded) images arrive.
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    width = f' style="width: {size[0]}px"' if size else ""
    return (f'<figure{width}><a href="{src}"><img src="{src}" alt="{esc(caption)}" '
            f'loading="lazy"{dims}></a><figcaption>{esc(caption)}</figcaption></figure>')


def _png_size(path: Path) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk (so the page does not jump as images load)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def _step(step: Step, root: Path, entry: Mapping[str, Any] | None, figures: int) -> str:
    esc = html.escape
    done = is_done(step, root)
    status = ('<span class="status done">done</span>' if done
              else '<span class="status pending">not done</span>')
    facts = []
    if entry is not None:
        facts.append(f"{len(_numbers(entry['results']))} value(s)")
    if figures:
        facts.append(f"{figures} figure(s)")
    summary = f"<code>{esc(step.id)}</code>{status}" + (
        f" <small>{esc(', '.join(facts))}</small>" if facts else "")
    parts = [f'<details id="step-{esc(step.id)}"><summary>{summary}</summary>',
             f'<p class="from">Folder <code>{esc(step.folder(root).name)}/</code></p>',
             f"<pre>{esc(chr(10).join('$ ' + c for c in _commands(step, root)))}</pre>"]
    if entry is not None:
        rows = "".join(f"<tr><th>{esc(key)}</th><td>{esc(value)}</td></tr>"
                       for key, value in _numbers(entry["results"]))
        parts.append(f'<table class="numbers"><caption>{esc(step.results or "results")}'
                     f"</caption><tbody>{rows}</tbody></table>")
    elif step.results:
        parts.append(f'<p class="note">No {esc(step.results)} yet.</p>')
    parts.append("</details>")
    return "\n".join(parts)


def _commands(step: Step, root: Path) -> list[str]:
    """The commands as run (from the step's done record), else as they would run."""
    try:
        argvs = json.loads((step.folder(root) / DONE).read_text())["argvs"]
    except (OSError, ValueError, KeyError, TypeError):
        argvs = None
    if not argvs:
        argvs = step_argvs(step, root, resuming=False)
    return [shown(argv) for argv in argvs]


def _numbers(results: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, text) for every value of a results file, nested mappings flattened (the
    dotted keys are the tables' metric paths)."""
    if isinstance(results, Mapping):
        out: list[tuple[str, str]] = []
        for key, value in results.items():
            out += _numbers(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return [(prefix or "value", _value_text(results))]


def _value_text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        shown_values = ", ".join(_value_text(v) for v in value[:LIST_SHOWN])
        more = f", … ({len(value)} values)" if len(value) > LIST_SHOWN else ""
        return f"[{shown_values}{more}]"
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    return str(value)
