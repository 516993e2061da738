"""Builtin exporters, registered through the same ``ptfuzz_exporters`` hook a plugin uses."""

from __future__ import annotations

import re

from fuzzer import safetext
from fuzzer.hookspecs import hookimpl
from fuzzer.replay import Replay, kernel_note, trace
from fuzzer.spec import Exporter
from fuzzer.world import Step


def render_text(rep: Replay) -> str:
    """The replay trace preceded by how to reproduce it; corpus text shown with visible escapes."""
    e = rep.entry
    head = [
        f"# ptfuzz finding: {e.signature}",
        f"# {e.violation.get('message', '')}",
        f"# policy: {rep.policy.label}{kernel_note(rep.policy)}",
        f"# reproduce: ptfuzz replay {e.path}",
        "",
    ]
    return "\n".join(safetext.line(text) for text in head + trace(rep)) + "\n"


def _step_code(step: Step) -> str:
    """The step as a Python expression; every corpus value is an ``ascii()`` literal."""
    args = "{" + ", ".join(f"{k!a}: {v!a}" for k, v in step.args.items()) + "}"
    if step.actor == "kernel":
        return f"Step('kernel', {step.op!a}, {args})"
    c = step.caller
    assert c is not None
    caller = (f"Caller(frozenset({sorted(c.caps)!a}), {c.scope!a}, {c.lockdown!a}, "
              f"frozenset({sorted(c.switches)!a}))")
    return f"Step('user', {step.op!a}, {args}, {step.channel!a}, {caller})"


def render_pytest(rep: Replay) -> str:
    """A standalone regression test: it fails while the policy still lets the violation through.

    Corpus text appears only in ``ascii()`` literals and in ``#`` comments made
    by ``safetext.py_comment`` (no newline survives), never in a docstring or
    in code: a message containing a triple quote must not become statements
    that run when pytest collects the file.
    """
    e = rep.entry

    def bytes_note(step: Step) -> str:  # hex only: derived from the step, never corpus text
        data = rep.executor.payload_of(step)
        return "" if data is None else f"    # in: {data[:64].hex(' ', 4) or '(empty)'}\n"

    name = re.sub(r"[^a-z0-9_]+", "_", e.signature.lower()).strip("_")[:60] or "finding"
    steps = "\n".join(f"{bytes_note(s)}    {_step_code(s)}," for s in e.steps)
    plugins = sorted(p for p in e.plugins if p != "builtin")
    # knobs the finding's run set (a file without them: the policy's own values, and no line for them)
    knobs_line = f"KNOBS = {dict(sorted(e.knobs.items()))!a}\n" if e.knobs else ""
    knobs_arg = ", KNOBS" if e.knobs else ""
    notes = "\n".join([
        safetext.py_comment("signature", e.signature),
        safetext.py_comment("message", str(e.violation.get("message", ""))),
        safetext.py_comment("source", f"{e.path} (policy {rep.policy.label}, device {e.device}, plugins {plugins})"),
        safetext.py_comment("kernel", rep.policy.version or "none named by the policy"),
    ])
    return f'''"""ptfuzz finding exported as a regression test.

Fails while the violation still happens; passes once the policy (or model) closes it.
"""

{notes}

from fuzzer import host
from fuzzer.spec import Caller
from fuzzer.world import Step

SIGNATURE = {e.signature!a}
SUBSYSTEM = {e.subsystem!a}
POLICY = {e.policy!a}
WITHOUT = {tuple(e.without)!a}
{knobs_line}DEVICE = {e.device!a}
#: plugin files the exporting session loaded with --plugin (installed plugins load by entry point)
PLUGIN_FILES = {tuple(rep.plugin_files)!a}
STEPS = [
{steps}
]


def test_{name}() -> None:
    registry = host.load(PLUGIN_FILES)
    policy = registry.policy(SUBSYSTEM, POLICY, WITHOUT{knobs_arg})
    executor = registry.executor(SUBSYSTEM, policy, registry.device(SUBSYSTEM, DEVICE))
    found = [v for result in executor.run(STEPS) for v in result.violations]
    assert SIGNATURE not in [v.signature for v in found], next(
        v.message for v in found if v.signature == SIGNATURE
    )
'''


@hookimpl
def ptfuzz_exporters() -> list[Exporter]:
    return [
        Exporter("text", ".txt", render_text, doc="readable steps with decisions and diffs"),
        Exporter("pytest", ".py", render_pytest, doc="a regression test that fails while the hole is open"),
    ]
