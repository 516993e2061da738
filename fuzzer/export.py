"""Builtin exporters, registered through the same ``ptfuzz_exporters`` hook a plugin uses."""

from __future__ import annotations

import re

from fuzzer.hookspecs import hookimpl
from fuzzer.replay import Replay, trace
from fuzzer.spec import Exporter
from fuzzer.world import Step


def render_text(rep: Replay) -> str:
    """The replay trace preceded by how to reproduce it."""
    e = rep.entry
    head = [
        f"# ptfuzz finding: {e.signature}",
        f"# {e.violation.get('message', '')}",
        f"# reproduce: ptfuzz replay {e.path}",
        "",
    ]
    return "\n".join(head + trace(rep)) + "\n"


def _step_code(step: Step) -> str:
    args = "{" + ", ".join(f"{k!r}: {v!r}" for k, v in step.args.items()) + "}"
    if step.actor == "kernel":
        return f"Step('kernel', {step.op!r}, {args})"
    c = step.caller
    assert c is not None
    caller = (f"Caller(frozenset({sorted(c.caps)!r}), {c.scope!r}, {c.lockdown!r}, "
              f"frozenset({sorted(c.switches)!r}))")
    return f"Step('user', {step.op!r}, {args}, {step.channel!r}, {caller})"


def render_pytest(rep: Replay) -> str:
    """A standalone regression test: it fails while the policy still lets the violation through."""
    e = rep.entry
    name = re.sub(r"\W+", "_", e.signature).strip("_").lower()
    steps = "\n".join(f"    {_step_code(s)}," for s in e.steps)
    plugins = sorted(p for p in e.plugins if p != "builtin")
    return f'''"""ptfuzz finding exported as a regression test.

{e.signature}
{e.violation.get("message", "")}

Source: {e.path} (policy {rep.policy.label}, device {e.device}, plugins {plugins}).
Fails while the violation still happens; passes once the policy (or model) closes it.
"""

from fuzzer import host
from fuzzer.spec import Caller
from fuzzer.world import Step

SIGNATURE = {e.signature!r}
STEPS = [
{steps}
]


def test_{name}() -> None:
    registry = host.load()
    policy = registry.policy({e.subsystem!r}, {e.policy!r}, {tuple(e.without)!r})
    executor = registry.executor({e.subsystem!r}, policy, registry.device({e.subsystem!r}, {e.device!r}))
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
