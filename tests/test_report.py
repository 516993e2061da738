"""``--report DIR`` (issue 18): the HTML page and the Markdown summary, hostile text, a real browser."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from rich.console import Console

from fuzzer import baseline, campaignfile, report
from fuzzer.campaign import Finding
from fuzzer.host import Registry
from fuzzer.progress import PlainDisplay
from fuzzer.schedule import CampaignOutcome, run_plan
from fuzzer.spec import Caller, Violation
from fuzzer.world import Step

ROOT = Path(__file__).resolve().parent.parent
EVIL = "<script>alert(1)</script>|`**x**`\x1b[31m<img src=x onerror=alert(2)>"
EVIL_ARG = "</pre><iframe src=javascript:alert(3)>```\n# heading"


@pytest.fixture(scope="module")
def outcome(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> CampaignOutcome:
    """A short real campaign (two runs, the baseline of the committed corpus)."""
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "c.toml").write_text(
        f'budget = 3\nseed = 1\nbaseline = "{ROOT / "corpora" / "cxl"}"\ncorpus = "out"\nline_sample = 0.3\n'
        '[[entry]]\nsubsystem = "cxl"\npolicy = "linux-fwctl"\ndevice = "vendor"\n'
        '[[entry]]\nsubsystem = "cxl"\npolicy = "linux-ioctl"\nwithout = ["exclusive-cmds"]\n')
    plan = campaignfile.load(str(tmp / "c.toml"), registry)
    known = baseline.load(plan.baseline)
    con = Console(file=io.StringIO(), width=200)
    return run_plan(registry, plan, known, PlainDisplay(con, len(plan.runs)))


def test_report_shows_findings_time_and_coverage(outcome: CampaignOutcome, tmp_path: Path) -> None:
    page, summary = report.write(str(tmp_path), outcome, 1)
    text = page.read_text()
    assert "<script" not in text and "http" not in text.replace("http://www.w3.org/2000/svg", "")  # self-contained
    assert "access:cxl:SET_FEATURE:caps" in text and "b-known" in text   # known, from the baseline
    assert "kernel-owned-integrity:cxl:SET_LSA:lsa" in text and "b-new" in text  # the removed rule's finding
    assert "nvdimm_bind" in text  # its minimized trace
    assert text.count("<svg") == 3  # findings, behaviours, steps/s over time
    assert "never decided" in text and "fwctl-rawio-for-full" in text  # rule x verdict table
    assert "plugin lines run" in text and "cxl/kernel.py" in text  # coverage.py's sample
    md = summary.read_text()
    assert md.startswith("## ptfuzz campaign: new findings")
    assert "**1 new**" in md or "new**" in md


def test_each_run_reports_its_coverage_of_the_search_space(outcome: CampaignOutcome, tmp_path: Path) -> None:
    """Issue 20: the campaign's JSON, page and summary carry each run's abstract states, as ``run --json`` does."""
    from fuzzer.results import to_json

    doc = to_json(outcome, 1)
    for run, o in zip(doc["runs"], outcome.outcomes, strict=True):
        assert o.result is not None and run["abstract_states"] == o.result.abstract_states > 1
        assert run["transitions"] >= run["abstract_states"] - 1
        assert run["growth"][-1][1] == run["abstract_states"] and isinstance(run["stopped_learning"], bool)
    page, summary = report.write(str(tmp_path), outcome, 1)
    for o in outcome.outcomes:
        assert o.result is not None
        assert f"{o.result.abstract_states:,} ({o.result.transitions:,} transitions)" in page.read_text()
        assert f"| {o.result.abstract_states:,}" in summary.read_text()


def test_hostile_signature_and_step_argument_are_escaped(outcome: CampaignOutcome, tmp_path: Path) -> None:
    """A corpus file is hostile data: nothing from it becomes markup in the page or the summary."""
    o = next(o for o in outcome.outcomes if o.result is not None)
    assert o.result is not None
    v = Violation(invariant=EVIL, field=EVIL, message=EVIL, op=EVIL, subsystem="cxl")
    step = Step("user", EVIL, {"uuid": EVIL_ARG}, "cxl.fwctl", Caller(frozenset({EVIL})))
    o.result.findings[v.signature] = Finding(v, [step], path=Path(EVIL))
    o.found.append((0.5, v.signature, "new"))
    try:
        page, summary = report.write(str(tmp_path), outcome, 1)
    finally:
        del o.result.findings[v.signature]
        o.found.pop()
    text, md = page.read_text(), summary.read_text()
    # in Markdown a fenced block is literal text (so the trace reads as the terminal's); outside it, no markup
    fence = next(line for line in md.splitlines() if line.startswith("````"))
    before, inside, after = md.split(fence.removesuffix("text"))[:3]
    assert inside.startswith("text\n") and "\n# heading" not in inside  # one line per step: nothing escapes
    for doc in (text, before + after):
        assert "<script" not in doc and "<img" not in doc and "<iframe" not in doc and "\x1b" not in doc
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "\\x1b[31m" in text
    # Markdown: the signature cannot open a table cell, emphasis or code; the trace's fence stays closed
    assert "\\|\\`\\*\\*x\\*\\*\\`" in md


def _png_colours(data: bytes) -> tuple[int, int, int]:
    """Width, height and distinct colours of an 8-bit RGB(A) PNG (what Chromium writes), with zlib alone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 7 == 0:  # a sample of rows is plenty to tell a page from a blank
            colours.update(bytes(line[i:i + 3]) for i in range(0, stride, bpp * 3))
        prev = line
    return width, height, len(colours)


def test_the_page_renders_in_a_headless_browser(outcome: CampaignOutcome, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    page, _ = report.write(str(tmp_path / "r"), outcome, 1)
    shot = tmp_path / "page.png"
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert shot.exists(), proc.stderr[-2000:]
    data = shot.read_bytes()
    assert 20_000 < len(data) < 20_000_000
    width, height, colours = _png_colours(data)
    assert (width, height) == (1280, 2000)
    assert colours > 50  # text, badges, bars and plot lines; a blank or error page has a handful


@pytest.mark.parametrize("top", [9.0, 12_500.0, 3_400_000.0])
def test_a_charts_axis_title_clears_its_tick_labels_in_a_headless_browser(tmp_path: Path, top: float) -> None:
    """Measured by the browser's layout (getBoundingClientRect), not estimated: the rotated "steps/s" title
    overlapped the widest tick label ("12,500") when the margin was fixed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    from fuzzer.svgplot import Series, chart

    svg = chart("Steps per second", [Series("steps/s", ((0.0, 0.0), (5.0, top)), "#7b5ea7", "line")],
                x_max=10.0, y_label="steps/s")
    page = tmp_path / "chart.html"
    page.write_text(
        f"<!doctype html><html><head><style>{report.CSS}</style></head><body style='width:900px'>{svg}<script>"
        "const t = document.querySelector('.yl').getBoundingClientRect();"
        "const left = Math.min(...[...document.querySelectorAll('.yt')].map(e => e.getBoundingClientRect().left));"
        "document.body.setAttribute('data-gap', String(left - t.right));"
        "document.body.setAttribute('data-inside', String(t.left >= 0));"
        "</script></body></html>")
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    dom = proc.stdout
    assert 'data-gap="' in dom, proc.stderr[-2000:]
    gap = float(dom.split('data-gap="', 1)[1].split('"', 1)[0])
    assert gap >= 2.0, f"the axis title overlaps the tick labels by {-gap:.1f}px"
    assert 'data-inside="true"' in dom
