"""``report --format html``: one self-contained page whose numbers are the markdown report's."""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
from html.parser import HTMLParser

import pytest

from qzhou_eval.cli.main import main
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.report.html import render_html, run_manifests
from qzhou_eval.report.tables import build_report, render

ENG = "MTEB(eng, v2)"
MODELS = ["sentence-transformers/all-MiniLM-L6-v2", "BAAI/bge-small-en-v1.5", "Kingsoft-LLM/QZhou-Embedding"]


class Tables(HTMLParser):
    """Every table's cell texts, row by row; and whether anything is fetched from the network."""

    def __init__(self) -> None:
        super().__init__()
        self.tables, self.external = [], []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key) and not attrs[key].startswith("data:"):
                self.external.append(attrs[key])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _markdown_rows(text: str) -> list[list[str]]:
    """The rows of the first table in ``text`` (header included, separator left out)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    return [[c.strip() for c in line.strip("|").split("|")] for line in block if not re.match(r"^\|[-| ]+\|$", line)]


@pytest.fixture
def report(shared_dir):
    return build_report([], ENG, baselines=shared_dir / "leaderboard-results", models=MODELS, reference=MODELS[0])


def test_page_tables_equal_the_markdown_report(report):
    page = render_html(report)
    parsed = Tables()
    parsed.feed(page)
    assert parsed.external == [], "the page must open without network"
    assert 'src="data:image/png;base64,' in page
    for table, which in zip(parsed.tables, ("task-types", "tasks")):
        assert table == _markdown_rows(render(report, "markdown", which)), which
    deltas = [c for c in re.findall(r'<td class="(drop|gain)">', page)]
    assert "drop" in deltas and "gain" in deltas, "bge-small and QZhou differ from MiniLM both ways"


def test_manifests_shown_and_other_benchmarks_refused(shared_dir, finished_run, tmp_path, capsys):
    out, _, _ = finished_run
    page = tmp_path / "r.html"
    assert main(["report", str(out), "--benchmark", ENG, "--format", "html", "--out", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert "qzhou-run-MTEB-eng-v2.json" in text and "&quot;transformers&quot;" in text, "the run's manifest"
    other = tmp_path / "cmn"
    shutil.copytree(out, other)
    for manifest in other.glob("qzhou-run-*.json"):
        record = json.loads(manifest.read_text(encoding="utf-8"))
        manifest.unlink()
        (other / "qzhou-run-MTEB-cmn-v1.json").write_text(json.dumps({**record, "benchmark": "MTEB(cmn, v1)"}))
    with pytest.raises(
        InvalidOptionError, match=r"one benchmark, MTEB\(eng, v2\), but the run .* is of \['MTEB\(cmn, v1\)'\]"
    ):
        run_manifests([other], ENG)
    assert main(["report", str(other), "--benchmark", ENG, "--format", "html", "--out", str(tmp_path / "x.html")]) == 2
    assert not (tmp_path / "x.html").exists()


def test_a_real_headless_browser_shows_the_same_numbers(report, tmp_path):
    """Chromium (Debian's package; .ci/run installs it) renders the page; its DOM tables equal the markdown."""
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on PATH (apt-get install chromium); the page was checked by the HTML parser above")
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"]
    run = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    if run.returncode != 0 or "<table" not in run.stdout:
        pytest.skip(f"chromium is installed but could not render here: {run.stderr.strip()[-300:]}")
    dom = run.stdout
    parsed = Tables()
    parsed.feed(dom)
    for table, which in zip(parsed.tables, ("task-types", "tasks")):
        assert table == _markdown_rows(render(report, "markdown", which)), which
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    # layout at a laptop's width: nothing pushes the page sideways, every element that reaches past the window
    # sits in a scroll box, and the chart image is drawn whole, at most as wide as its column
    probe = """<script>
    const wide = [...document.body.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right >
        window.innerWidth && !e.closest('.scroll'));
    const chart = document.querySelector('img');
    document.body.dataset.overflow = String(document.documentElement.scrollWidth > window.innerWidth);
    document.body.dataset.unboxed = wide.map(e => e.tagName).join(',') || 'none';
    document.body.dataset.chart = String(chart.complete && chart.naturalWidth > 0 &&
        chart.getBoundingClientRect().right <= window.innerWidth);
    </script></body>"""
    page.write_text(render_html(report).replace("</body>", probe), encoding="utf-8")
    narrow = [*flags[:-1], "--window-size=1000,800"]
    run = subprocess.run([browser, *narrow, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert 'data-overflow="false"' in run.stdout, "the page is wider than the window"
    assert 'data-unboxed="none"' in run.stdout, re.search(r'data-unboxed="[^"]*"', run.stdout).group(0)
    assert 'data-chart="true"' in run.stdout, "the chart is missing or wider than the window"
    # the screenshot at that width: the band left of the vertical scrollbar (the last 16 px) is the page's
    # margin from top to bottom, so nothing runs into the edge and gets cut
    subprocess.run(
        [browser, *narrow, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True
    )
    pixels = _png(shot.read_bytes())
    margin = pixels[:, -36:-16, :3]
    assert pixels.shape[1] == 1000 and (margin == margin[0, 0]).all(), "content reaches the window's edge"
    # the chart's title is drawn whole inside the figure: its outermost pixel columns are background
    chart = _png(base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', render_html(report)).group(1)))
    for edge in (chart[:, :2, :3], chart[:, -2:, :3], chart[:2, :, :3]):
        assert (edge > 0.95).all(), "the chart's drawing reaches its edge (a title or label is cut off)"


def _png(data: bytes):
    import io

    from matplotlib.image import imread

    return imread(io.BytesIO(data), format="png")


def test_a_named_baseline_gets_its_deltas_when_a_run_shares_its_name(finished_run, shared_dir):
    """--reference names MiniLM, which is both the run and a baseline: the baseline is the reference, so the
    other baselines' task-type deltas are filled (the partial run's row would leave them all blank)."""
    report = build_report(
        [finished_run[0]], ENG, baselines=shared_dir / "leaderboard-results", models=MODELS, reference=MODELS[0]
    )
    assert report.reference == f"{MODELS[0]} (leaderboard)"
    row = report.task_types.loc["BAAI/bge-small-en-v1.5"]
    assert all(row[c] == row[c] for c in report.task_types.columns if c.startswith("Δ ")), "a blank delta"
    tasks = report.tasks.loc[MODELS[0]]  # the run's own row: STSBenchmark equals the published score
    assert abs(tasks["Δ STSBenchmark"]) < 0.005


def test_delta_colour_follows_the_printed_number():
    """A Δ that prints as 0.00 is neither a gain nor a drop; -1.00 (the compare gate's default) is a drop."""
    import pandas as pd

    from qzhou_eval.report.html import _table

    frame = pd.DataFrame({"Δ STS": [0.004, -0.004, 0.006, -1.0]}, index=["a", "b", "c", "d"])
    cells = re.findall(r"<td( class=\"\w+\")?>([-0-9.]+)</td>", _table(frame, set(), "t"))
    assert cells == [("", "0.00"), ("", "-0.00"), (' class="gain"', "0.01"), (' class="drop"', "-1.00")]
