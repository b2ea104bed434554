"""`OUT/report.html`: the tables, figures and per-step commands and numbers of a pipeline run on
one static page, written by `pipelines run` (a fully cached run included), all text escaped;
then opened in a real headless browser (Debian's `chromium`) to see it render and paint."""

from __future__ import annotations

import html
import json
import shutil
import struct
import subprocess
import sys
import textwrap
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines import runner
from pipelines.cli import pipelines
from pipelines.figures import gather_figures
from pipelines.recipe import load_recipe
from pipelines.report import REPORT, render_report
from pipelines.tables import table_text

# Stands in for `weakfeat ARGS`: "emit OUT VALUE [NOTE]" writes results (nested keys, a list, a
# string), "plots OUT PNG" copies PNG to the two kinds of stage-1 plots, "touch OUT" only makes
# the folder.
FAKE = textwrap.dedent("""
    import json, pathlib, shutil, sys
    cmd, out, *rest = sys.argv[1:]
    out = pathlib.Path(out); out.mkdir(parents=True, exist_ok=True)
    if cmd == "emit":
        value = float(rest[0])
        (out / "results.json").write_text(json.dumps({
            "mAP": value, "nested": {"R@1,IoU=0.5": value / 2}, "ap_per_class": [value] * 20,
            "note": rest[1] if len(rest) > 1 else "ok"}))
    if cmd == "plots":
        shutil.copyfile(rest[0], out / "plot_training.png")
        shutil.copyfile(rest[0], out / "plot_test_v1.png")
""")

EVIL_ID = "evil<script>"
EVIL_ARG = '</pre><script>alert("x")</script>'
RECIPE = """
    name: toy<i>
    description: a toy recipe <u>& co</u>
    steps:
      - id: data
        command: [touch, "{out}"]
      - id: train
        needs: [data]
        seeds: [0, 1]
        commands: [[emit, "{out}", "0.{seed}5"], [plots, "{out}", "PNG"]]
        results: results.json
      - id: "EVIL_ID"
        needs: [data]
        command: [emit, "{out}", "0.9", 'EVIL_ARG']
        results: results.json
    tables:
      - name: t
        title: "Video-level mAP (%) <b>&</b>"
        metric: mAP
        scale: 100
        rows: {tiny: {A: train, B: "EVIL_ID"}, "row <em>": {A: data}}
        deltas: [[B, A]]
        paper: {big: {A: 10.0, B: 12.5}}
      - name: u
        title: Grounding R@1
        metric: nested.R@1,IoU=0.5
        scale: 100
        rows: {tiny: {A: train}}
"""
COLOUR = (214, 0, 147)  # the figures' solid colour, looked for in the screenshot
PNG_SIZE = (320, 120)


def solid_png(path: Path, size: tuple[int, int], rgb: tuple[int, int, int]) -> Path:
    width, height = size
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def toy_output(tmp_path, monkeypatch):
    """A finished toy pipeline output, made by `weakfeat pipelines run` with fake steps
    (`data` has no results: its table cell shows "-"). Returns (recipe, root, console)."""
    monkeypatch.setattr(runner, "weakfeat_command",
                        lambda args: [sys.executable, "-c", FAKE, *args])
    png = solid_png(tmp_path / "solid.png", PNG_SIZE, COLOUR)
    text = (textwrap.dedent(RECIPE).replace("EVIL_ID", EVIL_ID).replace("EVIL_ARG", EVIL_ARG)
            .replace('"PNG"', json.dumps(str(png))))
    path = tmp_path / "toy.yaml"
    path.write_text(text)
    root = tmp_path / "out"
    recipe = load_recipe(path, root)
    result = CliRunner().invoke(pipelines, ["run", str(path), "--out", str(root)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return recipe, root, result.output


class _Page(HTMLParser):
    """Tags (checked for balance), attributes and text of a page."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.unbalanced: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.unbalanced.append(tag)


def parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    assert not page.unbalanced and not page.stack, (page.unbalanced, page.stack)
    return page


def test_report_shows_every_table_figure_step_and_escapes_all_text(toy_output):
    recipe, root, console = toy_output
    report = root / REPORT
    assert f"report (tables, figures, commands): {report}" in console
    text = report.read_text()
    page = parse(text)
    esc = html.escape
    results = json.loads((root / "results.json").read_text())

    # Title with the recipe's name and the date.
    assert text.count("<title>toy&lt;i&gt;: weakfeat pipeline report (") == 1
    # Every table: its title and every cell, as the Markdown tables show them.
    for spec in recipe.tables:
        title, header, rows = table_text(spec, results)
        assert f"<h3>{esc(title)}</h3>" in text
        for cell in header[1:]:
            assert f'<th scope="col">{esc(cell)}</th>' in text
        for row in rows:
            assert f'<th scope="row">{esc(row[0])}</th>' in text
            for cell in row[1:]:
                assert f">{esc(cell)}</td>" in text
    assert "<td>10.0 ± 7.1 (2)</td><td>90.0</td><td>85.0</td>" in text  # measured row
    assert '<tr class="paper"><th scope="row">big (paper)</th>' in text
    assert '<td class="missing">-</td>' in text  # `data` has no results
    assert "<td>5.0 ± 3.5 (2)</td>" in text  # table u: a nested metric path
    # Every gathered figure, lazily loaded from figures/ with its size.
    pngs = sorted((root / "figures").glob("*.png"))
    assert len(pngs) == 4
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert sorted(a["src"] for a in images) == sorted(f"figures/{p.name}" for p in pngs)
    assert all(a["loading"] == "lazy" and (a["width"], a["height"]) == tuple(map(str, PNG_SIZE))
               for a in images)
    assert "Training curves" in text and "Figure 4: per-class prediction" in text
    # One collapsed <details> per step, with its commands and its results' numbers.
    details = [attrs for tag, attrs in page.tags if tag == "details"]
    assert len(details) == len(recipe.steps) and not any("open" in a for a in details)
    for step in recipe.steps:
        done = json.loads((step.folder(root) / runner.DONE).read_text())
        for argv in done["argvs"]:
            assert esc("$ " + runner.shown(argv)) in text
    assert "<tr><th>nested.R@1,IoU=0.5</th><td>0.025</td></tr>" in text
    assert "<tr><th>mAP</th><td>0.9</td></tr>" in text
    assert "[0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, … (20 " \
           "values)]" in text
    # Escaped everywhere: the step id, its command, the titles, the row names.
    assert "<script" not in text.lower() and "<b>" not in text and "<em>" not in text
    assert "<u>" not in text and "<i>" not in text
    assert f"<code>{esc(EVIL_ID)}</code>" in text and esc(EVIL_ARG) in text
    assert f"<h3>{esc('Video-level mAP (%) <b>&</b>')}</h3>" in text
    # Self-contained: no script, no stylesheet link, no external or absolute address.
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe")]
    addresses = [a.get("src") or a.get("href") for t, a in page.tags if t in ("img", "a")]
    assert addresses and not [a for a in addresses if "://" in a or a.startswith(("/", "//"))]
    assert text.count('<span class="status done">done</span>') == len(recipe.steps)


def test_a_step_not_done_is_marked_and_shows_the_commands_it_would_run(toy_output):
    recipe, root, _ = toy_output
    step = recipe.step(EVIL_ID)
    (step.folder(root) / runner.DONE).unlink()
    results = runner.gather_results(recipe, root)
    text = render_report(recipe, root, results, gather_figures(recipe, root))
    parse(text)
    assert text.count('<span class="status pending">not done</span>') == 1
    assert html.escape("$ " + runner.shown(runner.step_argvs(step, root, resuming=False)[0])) \
        in text
    assert "No results.json yet." in text and "<td>90.0</td>" not in text


def test_a_fully_cached_run_rewrites_the_report(toy_output):
    recipe, root, _ = toy_output
    report = root / REPORT
    first = report.read_text()
    report.unlink()
    result = CliRunner().invoke(pipelines, ["run", str(recipe.path), "--out", str(root)])
    assert "cached" in result.output and "running" not in result.output
    assert result.output.rstrip().splitlines()[-2] == \
        f"report (tables, figures, commands): {report}"
    again = report.read_text()
    strip = [line for line in first.splitlines() if "written" not in line and "<title>" not in line]
    assert strip == [line for line in again.splitlines()
                     if "written" not in line and "<title>" not in line]


# ------------------------------------------------------------------- a real headless browser
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="the headless browser `chromium` is not on PATH (Debian: "
                             "`make browser` or `apt-get install chromium`)")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--hide-scrollbars", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@needs_chromium
def test_the_report_renders_in_a_headless_browser(toy_output, tmp_path):
    from PIL import Image

    recipe, root, _ = toy_output
    url = (root / REPORT).resolve().as_uri()

    dom = chromium(tmp_path, "--dump-dom", url).stdout
    page = _Page()
    page.feed(dom)
    tags = [tag for tag, _ in page.tags]
    assert tags.count("table") == 2 + 3  # the result tables + the numbers of 3 results files
    assert "script" not in tags  # the escaped <script>s stayed text
    assert "evil&lt;script&gt;" in dom and "10.0 ± 7.1 (2)" in dom and "big (paper)" in dom
    assert tags.count("img") == 4 and tags.count("details") == len(recipe.steps)

    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", url)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1600)
    pixels = image.load()

    def count(box, test):
        left, top, right, bottom = box
        return sum(test(pixels[x, y]) for x in range(left, right, 2) for y in range(top, bottom, 2))

    # The page painted: dark text in its top part, where the title and the tables are.
    assert count((0, 0, 1200, 700), lambda p: max(p) < 110) > 300
    # The figures loaded: their solid colour fills at least one image's area.
    def near(p):
        return all(abs(a - b) <= 8 for a, b in zip(p, COLOUR))

    painted = count((0, 0, 1200, 1600), near) * 4  # every other pixel in x and y
    assert painted >= 0.9 * PNG_SIZE[0] * PNG_SIZE[1], painted
