"""Builtin exporters, registered through the same ``ptfuzz_exporters`` hook a plugin uses."""

from __future__ import annotations

from fuzzer.hookspecs import hookimpl
from fuzzer.replay import Replay, trace
from fuzzer.spec import Exporter


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


@hookimpl
def ptfuzz_exporters() -> list[Exporter]:
    return [Exporter("text", ".txt", render_text, doc="readable steps with decisions and diffs")]
