"""A campaign's results as machines read them: JSON, and JUnit XML for CI test views.

JUnit mapping (one ``<testsuite>`` per run, plus one for the baseline):

* a **new** finding is a ``<failure>`` whose text is the minimized step trace;
* a **known** finding is ``<skipped>`` ("known (baseline)"): CI test views
  show skipped cases, so known bugs stay visible without failing the build;
  accepted tainted findings and trusted callers are skipped too, as in ``ptfuzz run``;
* a baseline entry that is **fixed** is a passing case (property
  ``ptfuzz.status=fixed``), so a fix shows up as a test that started to pass;
  **unseen**, **stale** and **not seen** entries are skipped with the reason.

Every case carries a ``ptfuzz.status`` property.  XML escaping is
ElementTree's; text from corpus files is also made one-line-safe.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from fuzzer import safetext
from fuzzer.baseline import FIXED, FOUND, OUT_OF_SCOPE
from fuzzer.campaign import Finding
from fuzzer.schedule import CampaignOutcome, Outcome
from fuzzer.version import __version__


def status_of(c: CampaignOutcome, o: Outcome, f: Finding) -> str:
    """``new``, ``known``, ``accepted`` (tainted, with accept_tainted) or ``trusted`` (by design)."""
    assert o.result is not None
    if f.violation.severity == "trusted":
        return "trusted"
    if f.signature in o.result.accepted:
        return "accepted"
    return c.judgement.of(o.index, f.signature)


def trace(f: Finding) -> list[str]:
    return [safetext.line(s.describe()) for s in f.steps]


def to_json(c: CampaignOutcome, exit_code: int) -> dict[str, Any]:
    runs = []
    for o in c.outcomes:
        r = o.result
        doc: dict[str, Any] = {
            "label": o.run.label, "subsystem": o.run.subsystem, "policy": o.run.policy,
            "without": list(o.run.without), "device": o.run.device, "seed": o.run.seed,
            "budget": round(o.budget, 3), "workers": o.run.workers, "search": o.run.search,
        }
        if r is not None:
            doc.update({
                "sequences": r.sequences, "steps": r.steps, "elapsed": round(r.elapsed, 3),
                "steps_per_s": round(r.steps / r.elapsed, 1) if r.elapsed else 0.0,
                "behaviours": r.behaviours, "interrupted": r.interrupted,
                # coverage of the search space (``ptfuzz run --json`` has the same fields at its top level)
                "abstract_states": r.abstract_states, "transitions": r.transitions,
                "growth": [[t, n] for t, n in r.growth], "last_new_state_s": round(r.last_new_state, 3),
                "stopped_learning": r.stopped_learning, "coverage_capped": r.coverage_capped,
                "findings": [
                    {"signature": f.signature, "status": status_of(c, o, f), "severity": f.violation.severity,
                     "steps": len(f.steps), "file": str(f.path) if f.path else None,
                     "message": f.violation.message, "found_after_s": round(f.found_at, 3), "trace": trace(f)}
                    for _, f in sorted(r.findings.items())
                ],
            })
        if o.reach is not None:
            doc["coverage"] = {
                "rules": {name: o.reach.rules.get(name, {}) for name in o.reach.rule_order},
                "commands": [[row.channel, row.op, row.caller, row.rule, row.verdict, row.count]
                             for row in o.reach.commands],
                "actions": o.reach.actions, "reactions": o.reach.reactions,
                "never_decided": list(o.reach.never_decided), "never_drawn": list(o.reach.never_drawn),
                "never_run": list(o.reach.never_run),
            }
        runs.append(doc)
    statuses = [status_of(c, o, f) for o in c.outcomes if o.result is not None for f in o.result.findings.values()]
    slowdown = c.slowdown()
    return {
        "ptfuzz": __version__, "campaign": c.plan.source, "budget": c.plan.budget, "elapsed": round(c.elapsed, 3),
        "interrupted": c.interrupted, "exit": exit_code,
        "new": statuses.count("new"), "known": statuses.count("known"), "fixed": c.judgement.count(FIXED),
        "runs": runs,
        "baseline": c.judgement.to_json(),
        "lines": {root: {"statements": L.statements, "run": L.run, "sampled_s": L.sampled_s,
                         "files": [[f.path, f.statements, f.run, f.missing] for f in L.files]}
                  for root, L in c.lines.items()},
        "line_coverage_slowdown": round(slowdown, 2) if slowdown else None,
    }


def _case(suite: ET.Element, classname: str, name: str, status: str, elapsed: float = 0.0) -> ET.Element:
    case = ET.SubElement(suite, "testcase", classname=classname, name=safetext.line(name), time=f"{elapsed:.3f}")
    props = ET.SubElement(case, "properties")
    ET.SubElement(props, "property", name="ptfuzz.status", value=status)
    return case


def junit_xml(c: CampaignOutcome) -> str:
    top = ET.Element("testsuites", name="ptfuzz campaign", time=f"{c.elapsed:.3f}")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for o in c.outcomes:
        r = o.result
        cls = "ptfuzz." + safetext.line(f"{o.run.subsystem}.{o.run.policy_label}.{o.run.device}.seed{o.run.seed}")
        suite = ET.SubElement(top, "testsuite", name=cls, time=f"{r.elapsed if r else 0:.3f}")
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        for sig, f in sorted((r.findings if r else {}).items()):
            status = status_of(c, o, f)
            case = _case(suite, cls, sig, status)
            counts["tests"] += 1
            body = "\n".join(trace(f)) + (f"\ncorpus: {safetext.line(str(f.path))}" if f.path else "")
            message = safetext.line(f.violation.message, 500)
            if status == "new":
                failure = ET.SubElement(case, "failure", message=f"new: {message}", type=f.violation.invariant)
                failure.text = body
                counts["failures"] += 1
            else:
                why = {"known": "known (baseline)", "accepted": "accepted tainted finding",
                       "trusted": "trusted caller, by design"}[status]
                ET.SubElement(case, "skipped", message=f"{why}: {message}")
                counts["skipped"] += 1
        if r is None or not r.findings:
            _case(suite, cls, f"campaign: {r.sequences if r else 0} sequences, seed {o.run.seed}",
                  "clean" if r is not None else "not run")
            counts["tests"] += 1
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
    shown = [v for v in c.judgement.verdicts if v.state not in (FOUND, OUT_OF_SCOPE)]
    if shown:
        suite = ET.SubElement(top, "testsuite", name="ptfuzz.baseline")
        skipped = 0
        for verdict in shown:
            case = _case(suite, "ptfuzz.baseline", verdict.known.describe(), verdict.state)
            if verdict.state != FIXED:
                ET.SubElement(case, "skipped", message=safetext.line(f"{verdict.state}: {verdict.why}", 500))
                skipped += 1
        suite.set("tests", str(len(shown)))
        suite.set("failures", "0")
        suite.set("skipped", str(skipped))
        totals["tests"] += len(shown)
        totals["skipped"] += skipped
    for k, v in totals.items():
        top.set(k, str(v))
    return ET.tostring(top, encoding="unicode", xml_declaration=True) + "\n"
