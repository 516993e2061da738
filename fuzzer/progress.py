"""What ``ptfuzz campaign`` shows while it runs: a live table on a terminal, plain lines in CI.

Corpus and plugin text (signatures, paths) goes through ``fuzzer.safetext``
and is printed with markup off, as everywhere else.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from fuzzer import safetext
from fuzzer.campaign import Campaign, Finding
from fuzzer.schedule import Outcome

#: Seconds between plain progress lines in a CI log.
PLAIN_EVERY = 10.0


def _say(con: Console, text: str) -> None:
    con.print(safetext.line(text), markup=False, highlight=False)


def found_line(outcome: Outcome, f: Finding, status: str) -> str:
    where = f" -> {f.path}" if f.path else ""
    return (f"FOUND {status:<5} [{f.violation.severity}] {f.signature} ({len(f.steps)} steps, after "
            f"{f.found_at:.1f}s){where}")


def done_line(o: Outcome) -> str:
    r = o.result
    if r is None:
        return "not run (interrupted)"
    rate = r.steps / r.elapsed if r.elapsed else 0.0
    return (f"{r.sequences:,} sequences, {r.steps:,} steps ({rate:,.0f} steps/s), "
            + (f"{r.behaviours} behaviours, " if r.behaviours else "")
            + f"{len(r.findings)} findings in {r.elapsed:.1f}s" + (" (interrupted)" if r.interrupted else ""))


class PlainDisplay:
    """One line per run, per finding, and every ``PLAIN_EVERY`` seconds: for logs."""

    def __init__(self, con: Console, total: int) -> None:
        self.con, self.total = con, total
        self._last = 0.0

    def start(self, o: Outcome) -> None:
        self._last = 0.0
        _say(self.con, f"[{o.index + 1}/{self.total}] {o.run.label}: {o.budget:.1f}s")

    def progress(self, o: Outcome, c: Campaign, elapsed: float) -> None:
        if elapsed - self._last >= PLAIN_EVERY:
            self._last = elapsed
            _say(self.con, f"  ... {c.sequences:,} sequences, {c.executor.total_steps:,} steps, "
                           f"{len(c.signatures)} findings, {elapsed:.0f}s of {o.budget:.0f}s")

    def finding(self, o: Outcome, f: Finding, status: str) -> None:
        _say(self.con, "  " + found_line(o, f, status))

    def done(self, o: Outcome) -> None:
        _say(self.con, "  " + done_line(o))


class LiveDisplay:
    """A rich progress bar per run (time spent of its share), findings printed above it."""

    def __init__(self, con: Console, outcomes_total: int, labels: list[str], budgets: list[float]) -> None:
        self.con = con
        self.progress_bar = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(bar_width=24),
            TextColumn("{task.fields[stats]}", markup=False), console=con, transient=False,
        )
        self.tasks: list[TaskID] = [
            self.progress_bar.add_task(safetext.line(label), total=budget, stats="waiting", start=False)
            for label, budget in zip(labels, budgets, strict=True)
        ]
        self._new = self._known = 0
        self._t0 = time.monotonic()

    def __enter__(self) -> LiveDisplay:
        self.progress_bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress_bar.stop()

    def start(self, o: Outcome) -> None:
        self._new = self._known = 0
        task = self.tasks[o.index]
        self.progress_bar.reset(task, total=o.budget, stats="starting")
        self.progress_bar.start_task(task)

    def progress(self, o: Outcome, c: Campaign, elapsed: float) -> None:
        rate = c.executor.total_steps / elapsed if elapsed else 0.0
        self.progress_bar.update(self.tasks[o.index], completed=min(elapsed, o.budget),
                                 stats=f"{elapsed:4.0f}/{o.budget:.0f}s {rate:7,.0f} steps/s "
                                       f"{c.behaviours:4} behaviours  {self._new} new {self._known} known")

    def finding(self, o: Outcome, f: Finding, status: str) -> None:
        if status == "new":
            self._new += 1
        else:
            self._known += 1
        self.progress_bar.console.print(safetext.line(found_line(o, f, status)), markup=False, highlight=False,
                                        style="bold red" if status == "new" else None)

    def done(self, o: Outcome) -> None:
        self.progress_bar.update(self.tasks[o.index], completed=o.budget,
                                 stats=done_line(o) + f"  {self._new} new {self._known} known")
