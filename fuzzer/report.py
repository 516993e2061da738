"""``--report DIR``: a static HTML page (``index.html``) and a Markdown summary (``summary.md``).

The page is one self-contained file (inline CSS, inline SVG, no script, no
network) so that a CI artifact opens anywhere.  The summary is written for
``$GITHUB_STEP_SUMMARY``.  Both show, first, what a maintainer acts on: new
findings with their minimized step traces; then known and fixed ones; then
findings and behaviours over time, steps per second, and coverage (rules x
verdicts, commands x callers x decisions, what was never reached, plugin lines run).

A corpus file is hostile data, and so is a plugin's text: in the HTML every
such string goes through ``_h`` (``html.escape`` after ``safetext``), in the
Markdown through ``md`` (escaped for HTML and for Markdown punctuation), and
traces sit in fenced blocks whose fence is longer than any backtick run they hold.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterable
from pathlib import Path

from fuzzer import files, safetext
from fuzzer.baseline import FIXED, FOUND, OUT_OF_SCOPE, Verdict
from fuzzer.campaign import Finding, Result
from fuzzer.results import status_of, trace
from fuzzer.schedule import CampaignOutcome, Outcome
from fuzzer.svgplot import Band, Series, chart
from fuzzer.version import __version__

#: Rows of the command x caller x decision table shown per run (the JSON has them all).
COMMAND_ROWS = 400
_ORDER = {"new": 0, "known": 1, "accepted": 2, "trusted": 3}


def _h(text: object) -> str:
    """Corpus or plugin text for HTML: control characters made visible, then escaped (quotes too)."""
    return html.escape(safetext.line(str(text)), quote=True)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def md(text: object) -> str:
    """Corpus or plugin text for Markdown (GitHub's): one line, HTML-escaped, punctuation backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(safetext.line(str(text)), quote=True))


def _fence(lines: Iterable[str]) -> str:
    body = "\n".join(lines)
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def _findings(c: CampaignOutcome) -> list[tuple[str, Outcome, Finding]]:
    rows = [(status_of(c, o, f), o, f) for o in c.outcomes if o.result is not None
            for f in o.result.findings.values()]
    return sorted(rows, key=lambda t: (_ORDER.get(t[0], 9), t[1].index, t[2].signature))


def _baseline_rows(c: CampaignOutcome) -> list[Verdict]:
    order = {FIXED: 0}
    return sorted((v for v in c.judgement.verdicts if v.state not in (FOUND, OUT_OF_SCOPE)),
                  key=lambda v: (order.get(v.state, 1), v.state, v.known.signature))


def _totals(c: CampaignOutcome) -> dict[str, int]:
    statuses = [s for s, _, _ in _findings(c)]
    return {"new": statuses.count("new"), "known": statuses.count("known"), "fixed": c.judgement.count(FIXED),
            "accepted": statuses.count("accepted"), "trusted": statuses.count("trusted")}


def _rate(o: Outcome) -> float:
    r = o.result
    return r.steps / r.elapsed if r is not None and r.elapsed else 0.0


def write(directory: str, c: CampaignOutcome, exit_code: int) -> tuple[Path, Path]:
    """Write ``index.html`` and ``summary.md`` into ``directory`` (created); return their paths."""
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from fuzzer.errors import UsageError

        raise UsageError(f"--report {safetext.shown(directory)}: cannot create it: {exc.strerror or exc}") from None
    page, summary = out / "index.html", out / "summary.md"
    files.write_output(str(page), "--report", html_page(c, exit_code))
    files.write_output(str(summary), "--report", markdown(c, exit_code))
    return page, summary


# ----------------------------------------------------------------------------- HTML

CSS = """
:root{--new:#c62828;--known:#6d7680;--fixed:#2e7d32;--ink:#1d2329;--mute:#5f6b76;--line:#dde3e8;--bg:#f6f8fa}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);
margin:0;background:#fff}main{max-width:1220px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:30px 0 10px;padding-bottom:4px;border-bottom:1px solid
var(--line)}h3{font-size:14px;margin:18px 0 6px}.sub{color:var(--mute);margin:0 0 14px}
.verdict{display:flex;gap:12px;flex-wrap:wrap;margin:14px 0}.tile{border:1px solid var(--line);border-radius:8px;
padding:10px 16px;min-width:120px;background:var(--bg)}.tile b{display:block;font-size:26px;line-height:1.1}
.tile.new b{color:var(--new)}.tile.known b{color:var(--known)}.tile.fixed b{color:var(--fixed)}
.tile.bad{border-color:var(--new);background:#fdecea}.tile.good{border-color:var(--fixed);background:#edf7ee}
table{border-collapse:collapse;width:100%;margin:6px 0 10px}th,td{text-align:left;padding:4px 8px;
border-bottom:1px solid var(--line);vertical-align:top}th{background:var(--bg);font-weight:600;font-size:12.5px}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}code,pre,.mono{font:12.5px/1.4 ui-monospace,
"SFMono-Regular",Menlo,Consolas,monospace}pre{background:var(--bg);border:1px solid var(--line);padding:8px 10px;
overflow-x:auto;margin:6px 0}.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;
font-weight:600;color:#fff}.b-new{background:var(--new)}.b-known,.b-accepted,.b-trusted,.b-unseen,.b-stale,
.b-not-seen{background:var(--known)}.b-fixed{background:var(--fixed)}.b-clean{background:var(--fixed)}
details{margin:2px 0}summary{cursor:pointer}.sev{color:var(--mute);font-size:12px}
.bar{background:#e8edf1;height:9px;border-radius:5px;min-width:80px;position:relative}.bar i{display:block;
height:9px;border-radius:5px;background:#4a78b5}.bar.cov i{background:#3f8f4a}.never{color:var(--new)}
.cells span{display:inline-block;margin:1px 6px 1px 0;white-space:nowrap}.muted{color:var(--mute)}
.chart{border:1px solid var(--line);border-radius:6px;margin:6px 0 14px;background:#fff}
.chart .ct{font:600 13px system-ui,sans-serif;fill:#1d2329}.chart .grid{stroke:#e6eaee}.chart .xt,.chart .yt,
.chart .lg,.chart .yl,.chart .bl{font:11px system-ui,sans-serif;fill:#5f6b76}.chart .yt{text-anchor:end}
.chart .xt{text-anchor:middle}.chart .band0{fill:#f3f6f9}.chart .band1{fill:#fff}
.cols{display:grid;grid-template-columns:minmax(520px,3fr) 2fr;gap:18px}td.rule{white-space:nowrap}@media(max-width:900px){.cols{grid-template-columns:1fr}}
"""


def html_page(c: CampaignOutcome, exit_code: int) -> str:
    t = _totals(c)
    rate = sum(o.result.steps for o in c.outcomes if o.result) / c.elapsed if c.elapsed else 0.0
    state = ("interrupted" if c.interrupted else "new findings" if t["new"] else "no new findings")
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>ptfuzz: {t['new']} new, {t['known']} known, {t['fixed']} fixed</title>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>ptfuzz campaign: {_h(state)}</h1>",
        f"<p class=sub>{_h(c.plan.source)} &middot; {len(c.outcomes)} of {len(c.plan.runs)} runs in "
        f"{c.elapsed:.1f}s of a {c.plan.budget:g}s budget &middot; {rate:,.0f} steps/s &middot; exit {exit_code}"
        f" &middot; ptfuzz {_h(__version__)} &middot; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</p>",
        "<div class=verdict>",
        f"<div class='tile new {'bad' if t['new'] else 'good'}'><b>{t['new']}</b>new findings</div>",
        f"<div class='tile known'><b>{t['known']}</b>known (baseline)</div>",
        f"<div class='tile fixed'><b>{t['fixed']}</b>fixed</div>",
        f"<div class=tile><b>{sum(1 for v in c.judgement.verdicts if v.state not in (FOUND, OUT_OF_SCOPE, FIXED))}"
        "</b>baseline not met</div>",
        "</div>",
    ]
    parts += _html_findings(c)
    parts += _html_time(c)
    parts += _html_runs(c)
    parts += _html_coverage(c)
    parts += _html_lines(c)
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def _badge(status: str) -> str:
    return f"<span class='badge b-{status.replace(' ', '-')}'>{_h(status)}</span>"


def _html_findings(c: CampaignOutcome) -> list[str]:
    rows = _findings(c)
    out = ["<h2>Findings</h2>"]
    if not rows:
        out.append("<p class=muted>No violation found.</p>")
    else:
        out.append("<table><tr><th>status</th><th>signature</th><th>run</th><th class=n>steps</th>"
                   "<th class=n>found after</th></tr>")
        for status, o, f in rows:
            where = f"<div class='muted mono'>{_h(f.path)}</div>" if f.path else ""
            out.append(
                f"<tr><td>{_badge(status)} <span class=sev>{_h(f.violation.severity)}</span></td>"
                f"<td><details{' open' if status == 'new' else ''}><summary class=mono>{_h(f.signature)}</summary>"
                f"<div>{_h(f.violation.message)}</div><pre>{_h_lines(trace(f))}</pre>{where}</details></td>"
                f"<td class=mono>{_h(o.run.label)}</td><td class=n>{len(f.steps)}</td>"
                f"<td class=n>{f.found_at:.1f}s</td></tr>")
        out.append("</table>")
    verdicts = _baseline_rows(c)
    if verdicts:
        out.append("<h3>Baseline entries not found this run</h3><table><tr><th>state</th><th>signature</th>"
                   "<th>where</th><th>why</th></tr>")
        for v in verdicts:
            k = v.known
            where = " ".join(x for x in (k.policy, ("@" + k.device) if k.device else None) if x)
            out.append(f"<tr><td>{_badge(v.state)}</td><td class=mono>{_h(k.signature)}"
                       f"{'<div class=muted>' + _h(k.file) + '</div>' if k.file else ''}</td>"
                       f"<td class=mono>{_h(where)}</td><td>{_h(safetext.cut(v.why, 300))}</td></tr>")
        out.append("</table>")
    return out


def _h_lines(lines: Iterable[str]) -> str:
    return "\n".join(f"{i:>3}. {_h(line)}" for i, line in enumerate(lines, 1))


def _html_time(c: CampaignOutcome) -> list[str]:
    end = max(c.elapsed, 1.0)
    bands = [Band(o.started, o.started + (o.result.elapsed if o.result else 0.0), o.run.label) for o in c.outcomes]
    events = sorted((at, status) for o in c.outcomes for at, _, status in o.found)
    series = []
    for status, colour in (("known", "#8a949e"), ("new", "#c62828")):
        total, pts = 0, [(0.0, 0.0)]
        for at, st in events:
            if st == status:
                total += 1
                pts.append((at, float(total)))
        series.append(Series(f"{status} findings", tuple(pts), colour, "step"))
    behaviours = Series("behaviours (per run)", tuple((p.at, float(p.behaviours)) for p in c.timeline),
                        "#4a78b5", "line", tuple(p.run for p in c.timeline))
    rate_pts: list[tuple[float, float]] = []
    groups: list[int] = []
    last: dict[int, tuple[float, int]] = {}
    for p in c.timeline:  # steps/s between consecutive samples of the same run
        if p.run in last and p.at > last[p.run][0] and p.steps >= last[p.run][1]:
            rate_pts.append((p.at, (p.steps - last[p.run][1]) / (p.at - last[p.run][0])))
            groups.append(p.run)
        last[p.run] = (p.at, p.steps)
    return [
        "<h2>Over time</h2>",
        "<p class=muted>Shaded bands are the runs of the matrix, in order; hover a band for its name.</p>",
        chart("Distinct findings (cumulative)", series, x_max=end, y_label="findings", bands=bands),
        chart("Behaviours reached", [behaviours], x_max=end, y_label="behaviours", bands=bands),
        chart("Steps per second", [Series("steps/s", tuple(rate_pts), "#7b5ea7", "line", tuple(groups))],
              x_max=end, y_label="steps/s", bands=bands, height=180),
    ]


def _html_runs(c: CampaignOutcome) -> list[str]:
    top = max((_rate(o) for o in c.outcomes), default=1.0) or 1.0
    out = ["<h2>Runs</h2><table><tr><th>run</th><th class=n>budget</th><th class=n>took</th>"
           "<th class=n>sequences</th><th class=n>steps</th><th>steps/s</th><th class=n>behaviours</th>"
           "<th class=n>abstract states</th><th class=n>new</th><th class=n>known</th></tr>"]
    for o in c.outcomes:
        r = o.result
        if r is None:
            out.append(f"<tr><td class=mono>{_h(o.run.label)}</td><td colspan=9 class=muted>not run</td></tr>")
            continue
        st = [status_of(c, o, f) for f in r.findings.values()]
        rate = _rate(o)
        out.append(
            f"<tr><td class=mono>{_h(o.run.label)}{' (interrupted)' if r.interrupted else ''}</td>"
            f"<td class=n>{o.budget:.1f}s</td><td class=n>{r.elapsed:.1f}s</td><td class=n>{r.sequences:,}</td>"
            f"<td class=n>{r.steps:,}</td><td><div class=bar title='{rate:,.0f}'><i style='width:"
            f"{100 * rate / top:.0f}%'></i></div><span class=muted>{rate:,.0f}</span></td>"
            f"<td class=n>{r.behaviours}</td><td class=n>{_states(r)}</td>"
            f"<td class=n>{st.count('new')}</td><td class=n>{st.count('known')}</td></tr>")
    out.append("</table>")
    return out


def _states(r: Result) -> str:
    """A run's abstract states, and when it saw the last new one if that was in its first half: a run that has
    stopped learning says so (``Result.stopped_learning``)."""
    if not r.abstract_states:
        return "-"
    text = f"{r.abstract_states:,} ({r.transitions:,} transitions)"
    if r.stopped_learning:
        text += f" <span class=muted title='no new abstract state in the second half of the run'>" \
                f"stopped learning at {r.last_new_state:.1f}s</span>"
    return text


def _html_coverage(c: CampaignOutcome) -> list[str]:
    out = ["<h2 id=coverage>Coverage: what the policy decided</h2>",
           "<p class=muted>Per run: every rule of the policy in the kernel's order with the verdicts it gave "
           "(a rule that tainted or rewrote and let the next rule decide is counted as \"went on\"), "
           "what was never reached, and every command &times; caller &times; decision.</p>"]
    for o in c.outcomes:
        reach = o.reach
        if reach is None:
            if o.result is not None:
                out.append(f"<h3 class=mono>{_h(o.run.label)}</h3><p class=muted>Not counted: run with "
                           f"{o.run.workers} worker processes.</p>")
            continue
        out.append(f"<details{' open' if o.index == 0 else ''}><summary><b class=mono>{_h(o.run.label)}</b> "
                   f"&middot; {len(reach.rule_order) - len(reach.never_decided)}/{len(reach.rule_order)} rules "
                   f"decided &middot; {len(reach.never_drawn)} commands never drawn</summary>")
        out.append("<div class=cols><div><table><tr><th>rule</th><th>verdicts (steps)</th></tr>")
        for name in reach.rule_order:
            cells = reach.rules.get(name, {})
            text = "".join(f"<span>{_h(v)} &times;{n:,}</span>" for v, n in sorted(cells.items())) or \
                "<span class=never>never decided</span>"
            out.append(f"<tr><td class='mono rule'>{_h(name)}</td><td class=cells>{text}</td></tr>")
        out.append("</table></div><div>")
        out.append("<h3>Never reached</h3><ul>")
        out.append(f"<li>rules that never decided: {_list(reach.never_decided)}</li>")
        out.append(f"<li>commands never drawn: {_list(reach.never_drawn)}</li>")
        out.append(f"<li>kernel actions never run: {_list(reach.never_run)}</li></ul>")
        if reach.actions or reach.reactions:
            out.append("<h3>Kernel actions and reactions run</h3><p class=cells>" + "".join(
                f"<span class=mono>{_h(k)} &times;{n:,}</span>"
                for k, n in list(reach.actions.items()) + list(reach.reactions.items())) + "</p>")
        out.append("</div></div>")
        rows = reach.commands
        out.append(f"<details><summary>{len(rows)} command &times; caller &times; decision rows</summary>"
                   "<table><tr><th>channel</th><th>command</th><th>caller</th><th>rule</th><th>verdict</th>"
                   "<th class=n>steps</th></tr>")
        for row in rows[:COMMAND_ROWS]:
            out.append(f"<tr><td class=mono>{_h(row.channel)}</td><td class=mono>{_h(row.op)}</td>"
                       f"<td class=mono>{_h(row.caller)}</td><td class=mono>{_h(row.rule)}</td>"
                       f"<td>{_h(row.verdict)}</td><td class=n>{row.count:,}</td></tr>")
        if len(rows) > COMMAND_ROWS:
            out.append(f"<tr><td colspan=6 class=muted>{len(rows) - COMMAND_ROWS} more in the JSON output</td></tr>")
        out.append("</table></details></details>")
    return out


def _list(items: Iterable[str]) -> str:
    items = list(items)
    if not items:
        return "<span class=muted>none</span>"
    return ", ".join(f"<code class=never>{_h(i)}</code>" for i in items)


def _html_lines(c: CampaignOutcome) -> list[str]:
    out = ["<h2 id=lines>Coverage: plugin lines run</h2>"]
    if not c.lines:
        return [*out, "<p class=muted>Not measured (line_sample = 0, or every run used workers).</p>"]
    slowdown = c.slowdown()
    cost = (f"while traced the search ran {slowdown:.1f}&times; slower" if slowdown
            else "its cost was not measured (runs too short)")
    out.append(f"<p class=muted>coverage.py traced the first {100 * c.plan.line_sample:.0f}% of each run "
               f"; {cost}. Lines in function bodies only: module-level "
               "tables ran at import, before tracing began.</p>")
    for root, lines in c.lines.items():
        pct = 100 * lines.run / lines.statements if lines.statements else 0
        out.append(f"<h3 class=mono>{_h(root)}: {lines.run}/{lines.statements} lines ({pct:.0f}%) in "
                   f"{lines.sampled_s:.1f}s traced</h3><table><tr><th>file</th><th class=n>lines</th>"
                   "<th>run</th><th>never run (line numbers)</th></tr>")
        for f in lines.files:
            out.append(f"<tr><td class=mono>{_h(f.path)}</td><td class=n>{f.run}/{f.statements}</td>"
                       f"<td><div class='bar cov'><i style='width:{f.percent:.0f}%'></i></div>"
                       f"<span class=muted>{f.percent:.0f}%</span></td>"
                       f"<td class='mono muted'>{_h(safetext.cut(f.missing, 400))}</td></tr>")
        out.append("</table>")
    return out


# ----------------------------------------------------------------------------- Markdown


def markdown(c: CampaignOutcome, exit_code: int) -> str:
    t = _totals(c)
    rate = sum(o.result.steps for o in c.outcomes if o.result) / c.elapsed if c.elapsed else 0.0
    head = "interrupted" if c.interrupted else ("new findings" if t["new"] else "no new findings")
    out = [f"## ptfuzz campaign: {head}", "",
           f"**{t['new']} new**, {t['known']} known, {t['fixed']} fixed &middot; {len(c.outcomes)} runs in "
           f"{c.elapsed:.1f}s of {c.plan.budget:g}s &middot; {rate:,.0f} steps/s &middot; exit {exit_code} "
           f"&middot; {md(c.plan.source)}", ""]
    rows = _findings(c)
    if rows:
        out += ["| status | signature | run | steps |", "|---|---|---|---|"]
        out += [f"| {status} | {md(f.signature)} | {md(o.run.label)} | {len(f.steps)} |" for status, o, f in rows]
        out.append("")
    for status, _, f in rows:
        if status != "new":
            continue
        out += [f"<details open><summary>new: {md(f.signature)}</summary>", "",
                md(f.violation.message), "", _fence(trace(f)), "",
                (f"corpus file: {md(f.path)}" if f.path else ""), "</details>", ""]
    verdicts = _baseline_rows(c)
    if verdicts:
        out += ["| baseline entry | state | why |", "|---|---|---|"]
        out += [f"| {md(v.known.signature)} | {v.state} | {md(safetext.cut(v.why, 200))} |" for v in verdicts]
        out.append("")
    out += ["| run | steps/s | behaviours | abstract states | rules never decided | commands never drawn |",
            "|---|---|---|---|---|---|"]
    for o in c.outcomes:
        never = (f"{len(o.reach.never_decided)}/{len(o.reach.rule_order)}", str(len(o.reach.never_drawn))) \
            if o.reach else ("-", "-")
        beh = o.result.behaviours if o.result else 0
        states = "-"
        if o.result is not None and o.result.abstract_states:
            states = f"{o.result.abstract_states:,}" + (
                f" (stopped learning at {o.result.last_new_state:.1f}s)" if o.result.stopped_learning else "")
        out.append(f"| {md(o.run.label)} | {_rate(o):,.0f} | {beh} | {states} | {never[0]} | {never[1]} |")
    out.append("")
    for root, lines in c.lines.items():
        out.append(f"Plugin lines run (sampled {lines.sampled_s:.1f}s): {md(root)} {lines.run}/{lines.statements}.")
    out.append("")
    out.append("The full report (plots, rule x verdict tables, lines never run) is index.html beside this file.")
    return "\n".join(out) + "\n"
