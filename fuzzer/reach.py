"""What a campaign reached: rules x verdicts, commands x callers x decisions, and plugin lines run.

The executor counts every step it judges (``Executor.reached``, one Counter
update a step); this module turns those counts into the tables a report shows,
including what was *never* reached: rules that never decided or marked a
step, commands never drawn, kernel actions never run.  A rule that never
fires in a long campaign is either dead or guarded by state the search does
not reach, and either is worth a maintainer's look.

Line coverage of the plugin's model code comes from coverage.py, measured
over a sample of the campaign (``LineSample``): tracing every line costs
more than the counters (the report says how much, as measured in the run).
"""

from __future__ import annotations

import ast
import errno as errno_mod
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from fuzzer.executor import Executor


def verdict_text(allowed: bool, err: int, taint: Iterable[str]) -> str:
    """``allow``, ``deny -EPERM``, ``allow +taint RAW``: a verdict as traces show it."""
    head = "allow" if allowed else f"deny -{errno_mod.errorcode.get(err, str(err))}"
    flags = sorted(taint)
    return head + (" +taint " + ",".join(flags) if flags else "")


@attrs.frozen
class CommandRow:
    """One command x caller x decision, and how many steps had it."""

    channel: str
    op: str
    caller: str
    rule: str
    verdict: str
    count: int


@attrs.frozen
class Reach:
    """The coverage tables of one campaign entry (merged over its runs)."""

    #: rule name -> verdict text -> steps; "(marked) +taint X" for a rule that tainted or rewrote and went on
    rules: dict[str, dict[str, int]]
    commands: tuple[CommandRow, ...]
    actions: dict[str, int]
    reactions: dict[str, int]
    never_decided: tuple[str, ...]
    never_drawn: tuple[str, ...]
    never_run: tuple[str, ...]
    #: every rule of the policy, in the kernel's order (the table's rows)
    rule_order: tuple[str, ...] = ()

    @classmethod
    def of(cls, executor: Executor, counts: Mapping[tuple[Any, ...], int] | None = None) -> Reach:
        """The tables for ``executor``'s policy and commands from ``counts`` (default: its own)."""
        counts = executor.reached if counts is None else counts
        policy = executor.policy
        rules: dict[str, Counter[str]] = {r.name: Counter() for r in policy.rules}
        rows: Counter[tuple[str, str, str, str, str]] = Counter()
        actions: Counter[str] = Counter()
        reactions: Counter[str] = Counter()
        drawn: set[tuple[str, str]] = set()
        for key, n in counts.items():
            if key[0] == "reaction":
                reactions[key[1]] += n
                continue
            channel, op, caller, rule, allowed, err, taint, marked = key
            if not channel:
                actions[op] += n
                continue
            drawn.add((channel, op))
            verdict = verdict_text(allowed, err, taint)
            rows[(channel, op, caller.describe() if caller is not None else "?", rule or "(no rule objected)",
                  verdict)] += n
            if rule:
                rules.setdefault(rule, Counter())[verdict] += n
            for m in marked:
                rules.setdefault(m, Counter())["went on (" + verdict + ")"] += n
        never_decided = tuple(r.name for r in policy.rules if not rules.get(r.name))
        never_drawn = tuple(f"{ch} {op}" for ch, op in sorted(executor.user_index) if (ch, op) not in drawn
                            and ch in policy.channels)
        never_run = tuple(sorted(set(executor.actions) - set(actions)))
        return cls(
            rules={k: dict(v) for k, v in rules.items()},
            commands=tuple(CommandRow(*k, count=n) for k, n in sorted(rows.items())),
            actions=dict(sorted(actions.items())),
            reactions=dict(sorted(reactions.items())),
            never_decided=never_decided,
            never_drawn=never_drawn,
            never_run=never_run,
            rule_order=tuple(r.name for r in policy.rules),
        )


# ----------------------------------------------------------------------------- plugin lines


@attrs.frozen
class FileLines:
    """One plugin file: its statements, which ran, and the ranges that did not."""

    path: str
    statements: int
    run: int
    missing: str

    @property
    def percent(self) -> float:
        return 100.0 * self.run / self.statements if self.statements else 100.0


@attrs.frozen
class Lines:
    """Line coverage of a plugin's model code over a sample of a campaign, and what measuring cost."""

    root: str
    files: tuple[FileLines, ...]
    sampled_s: float
    #: the campaign's steps/s while traced, over its steps/s untraced (1.0: free)
    slowdown: float | None = None

    @property
    def statements(self) -> int:
        return sum(f.statements for f in self.files)

    @property
    def run(self) -> int:
        return sum(f.run for f in self.files)


def plugin_root(executor: Executor) -> str | None:
    """The plugin's code: its package directory (or its single file), found from the probe function.

    An installed plugin's (the builtin ones included) is its top package; a ``--plugin
    file.py`` is that file.
    """
    name = getattr(executor.subsystem.probe, "__module__", "") or ""
    top = name.split(".")[0]
    module = sys.modules.get(top)
    path = getattr(module, "__file__", None)
    if not path:
        return None
    return str(Path(path).parent) if hasattr(module, "__path__") else str(path)


def function_lines(source: str) -> set[int]:
    """Lines of statements inside function bodies.

    The sample starts after the plugin was imported, so module and class
    level statements (definitions, tables) ran but were not traced: only code
    in functions is measured, which is the model's behaviour anyway.  A
    lambda in a rule table shares its line with the table and is not told apart.
    """
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for stmt in node.body:
                lines.update(n.lineno for n in ast.walk(stmt) if isinstance(n, ast.stmt))
    return lines


def _ranges(lines: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``3-5, 9``."""
    out: list[str] = []
    start = prev = None
    for n in [*lines, -2]:
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            out.append(f"{start}-{prev}" if prev != start else str(start))
        start = prev = n
    return ", ".join(out)


class LineSample:
    """coverage.py over the plugin's files while a sample of the campaign runs.

    ``start()`` and ``stop()`` must be called on the thread that runs the
    campaign (coverage.py traces one thread).  Only the plugin's files are
    recorded, but the tracer still sees every call, which is what it costs.
    """

    def __init__(self, root: str) -> None:
        import coverage  # a core dependency; imported here so the engine does not pay for it unused

        self.root = root
        include = [os.path.join(root, "*")] if os.path.isdir(root) else [root]
        self._cov = coverage.Coverage(include=include, data_file=None, branch=False,
                                      config_file=False)
        self._started = 0.0
        self.sampled = 0.0
        self.running = False

    def start(self) -> None:
        if not self.running:
            self._cov.start()
            self._started = time.monotonic()
            self.running = True

    def stop(self) -> None:
        if self.running:
            self._cov.stop()
            self.sampled += time.monotonic() - self._started
            self.running = False

    def lines(self, slowdown: float | None = None) -> Lines:
        """The per-file table (files of the plugin that never ran at all are listed with 0 lines run)."""
        self.stop()
        root = Path(self.root)
        paths = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        out = []
        for path in paths:
            try:
                _, statements, _, missing, _ = self._cov.analysis2(str(path))
                bodies = function_lines(path.read_text(encoding="utf-8"))
            except (Exception, SyntaxError):
                continue
            body = sorted(set(statements) & bodies)
            lost = sorted(set(missing) & bodies)
            out.append(FileLines(str(path.relative_to(root.parent) if root.is_dir() else path.name),
                                 len(body), len(body) - len(lost), _ranges(lost)))
        return Lines(str(root), tuple(out), round(self.sampled, 3), slowdown)
