"""A campaign file: the matrix a CI job runs, read strictly.

TOML, read with ``tomllib``: a file of its own (keys at the top level, runs
under ``[[entry]]``) or the ``[tool.ptfuzz]`` table of a ``pyproject.toml``.
Each entry expands to one run per policy x device x removed-rule variant x
seed; the runs share one total ``budget``, split by ``weight`` (default 1)
after the runs that ask for a fixed ``time``.

A mistake costs a CI job its night, so everything is checked before anything
runs: unknown keys (with the nearest known one), wrong types, and every
subsystem, policy, device and rule name against the loaded plugins.  An
error names the file, the entry and the key (exit 2).  Relative paths are
resolved against the file's directory, as ruff and mypy do with theirs.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from fuzzer import files, safetext
from fuzzer.campaign import SEARCHES
from fuzzer.errors import PtfuzzError, UsageError
from fuzzer.host import Registry
from fuzzer.spec import knob_text, policy_label

#: Top-level keys: the campaign's own settings and the defaults of every entry.
TOP_KEYS = ("budget", "seed", "seeds", "workers", "search", "steps", "accept_tainted", "baseline", "report",
            "corpus", "db", "line_sample", "entry")
#: An entry's keys: the matrix, and the settings it may override.
ENTRY_KEYS = ("subsystem", "policy", "device", "without", "knobs", "seed", "seeds", "weight", "time", "workers",
              "search", "steps", "accept_tainted")
#: Seconds below which a run cannot even start its search sensibly.
MIN_RUN = 0.5
#: Share of each run traced by coverage.py for the report's line coverage (it slows the traced part ~2.7x).
LINE_SAMPLE = 0.1


@attrs.frozen(kw_only=True)
class Run:
    """One cell of the matrix: one campaign, as ``ptfuzz run`` would run it."""

    entry: int
    subsystem: str
    policy: str
    without: tuple[str, ...]
    device: str
    seed: int
    weight: float = 1.0
    time: float | None = None
    workers: int = 1
    search: str = "native"
    steps: int | None = None
    accept_tainted: bool = False
    #: knobs set over the policy's own (an entry's ``knobs`` table, ``ptfuzz campaign --knob``), typed
    knobs: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """``cxl linux-ioctl~exclusive-cmds@spec seed 1``: the run as progress and reports name it."""
        removed = "".join(f"~{r}" for r in self.without)
        tuned = "{" + ",".join(f"{k}={knob_text(v)}" for k, v in self.knobs) + "}" if self.knobs else ""
        return f"{self.subsystem} {self.policy}{removed}{tuned}@{self.device} seed {self.seed}"

    @property
    def policy_label(self) -> str:
        return policy_label(self.policy, self.without, dict(self.knobs))


@attrs.frozen(kw_only=True)
class Plan:
    """A checked campaign file."""

    source: str
    budget: float
    runs: tuple[Run, ...]
    baseline: tuple[str, ...] = ()
    report: str | None = None
    corpus: str = "corpora"
    db: str | None = None
    line_sample: float = LINE_SAMPLE

    def shares(self, elapsed: float, done: int) -> float:
        """Seconds for run ``done`` (0-based) when ``elapsed`` of the budget is spent.

        Recomputed before each run from what is left, so a run that ran over
        (minimizing its findings) is paid for by the runs after it, and the
        campaign as a whole keeps to its budget.
        """
        run = self.runs[done]
        rest = self.runs[done:]
        left = max(self.budget - elapsed, 0.0)
        fixed = sum(r.time for r in rest if r.time is not None)
        if run.time is not None:
            return max(min(run.time, left), 0.1) if fixed <= left else max(left * run.time / fixed, 0.1)
        weights = sum(r.weight for r in rest if r.time is None)
        return max((left - fixed) * run.weight / weights, 0.1)


class _Where:
    """The place an error points at: the file, the entry, the key."""

    def __init__(self, source: str, entry: int | None = None, about: str = "") -> None:
        self.source, self.entry, self.about = source, entry, about

    def at(self, key: str) -> str:
        head = safetext.line(self.source)
        if self.entry is not None:
            head += f": entry {self.entry}" + (f" ({safetext.line(self.about)})" if self.about else "")
        return f"{head}: {safetext.shown(key)}"

    def fail(self, key: str, message: str) -> UsageError:
        return UsageError(f"{self.at(key)}: {message}")


def _unknown_keys(table: Mapping[str, Any], known: Sequence[str], where: _Where) -> None:
    for key in table:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise where.fail(str(key), f"unknown key{hint} (known: {', '.join(known)})")


def _number(table: Mapping[str, Any], key: str, where: _Where, *, lo: float, integer: bool = False) -> Any:
    value = table[key]
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int))
            or not math.isfinite(value) or value < lo):
        what = "an integer" if integer else "a number"
        raise where.fail(key, f"must be {what} of at least {lo:g}, not {safetext.shown(value)}")
    return value


def _strings(value: Any, key: str, where: _Where) -> list[str]:
    """A string or a list of strings."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise where.fail(key, f"must be a name or a non-empty list of names, not {safetext.shown(value)}")
    return list(items)


def _seeds(table: Mapping[str, Any], where: _Where, default: list[int]) -> list[int]:
    if "seed" in table and "seeds" in table:
        raise where.fail("seeds", "give 'seed' or 'seeds', not both")
    if "seed" in table:
        return [_number(table, "seed", where, lo=0, integer=True)]
    if "seeds" in table:
        value = table["seeds"]
        if not isinstance(value, list) or not value:
            raise where.fail("seeds", f"must be a non-empty list of integers, not {safetext.shown(value)}")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise where.fail("seeds", f"must be a list of integers of at least 0, not {safetext.shown(value)}")
        return list(value)
    return default


def _flag(table: Mapping[str, Any], key: str, where: _Where, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise where.fail(key, f"must be true or false, not {safetext.shown(value)}")
    return value


def _search(table: Mapping[str, Any], where: _Where, default: str) -> str:
    value = table.get("search", default)
    if value not in SEARCHES:
        raise where.fail("search", f"must be one of {', '.join(SEARCHES)}, not {safetext.shown(value)}")
    return str(value)


def _path(table: Mapping[str, Any], key: str, where: _Where, base: Path) -> str:
    value = table[key]
    if not isinstance(value, str) or not value.strip():
        raise where.fail(key, f"must be a non-empty path, not {safetext.shown(value)}")
    return str(base / value)


def _without(value: Any, where: _Where) -> list[tuple[str, ...]]:
    """Every item is one variant: ``"rule"`` (that rule removed), ``["a", "b"]`` (both), ``[]`` (intact)."""
    if not isinstance(value, list) or not value:
        raise where.fail("without", "must be a non-empty list of variants: \"rule\", [\"rule\", ...] or [] "
                                    f"(intact), not {safetext.shown(value)}")
    out: list[tuple[str, ...]] = []
    for item in value:
        if isinstance(item, str) and item:
            out.append((item,))
        elif isinstance(item, list) and all(isinstance(r, str) and r for r in item):
            out.append(tuple(item))
        else:
            raise where.fail("without", f"a variant is a rule name or a list of rule names, not {safetext.shown(item)}")
    return out


def _table(doc: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    """The campaign's table: ``[tool.ptfuzz]`` in a pyproject.toml, else the whole file."""
    tool = doc.get("tool")
    if Path(source).name == "pyproject.toml" or (isinstance(tool, dict) and "ptfuzz" in tool):
        table = tool.get("ptfuzz") if isinstance(tool, dict) else None
        if not isinstance(table, dict):
            raise UsageError(f"{safetext.line(source)}: no [tool.ptfuzz] table (the campaign goes there)")
        return table
    return doc


def load(path: str, registry: Registry) -> Plan:
    """Read and check the campaign file at ``path`` against the plugins in ``registry``."""
    try:
        text = files.read_text(path)
    except PtfuzzError as exc:
        raise UsageError(str(exc)) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{safetext.line(path)}: not valid TOML: {exc}") from None
    return parse(_table(doc, path), path, registry)


def parse(table: Mapping[str, Any], source: str, registry: Registry) -> Plan:
    """Check a campaign table (a file's, or ``[tool.ptfuzz]``) and expand its matrix."""
    top = _Where(source)
    base = Path(source).parent
    _unknown_keys(table, TOP_KEYS, top)
    if "budget" not in table:
        raise top.fail("budget", "missing: the campaign's total time in seconds (all entries share it)")
    budget = float(_number(table, "budget", top, lo=1))
    seeds = _seeds(table, top, [1])
    workers = int(_number(table, "workers", top, lo=1, integer=True)) if "workers" in table else 1
    search = _search(table, top, "native")
    steps = int(_number(table, "steps", top, lo=1, integer=True)) if "steps" in table else None
    accept = _flag(table, "accept_tainted", top, False)
    baseline = [str(base / b) for b in _strings(table["baseline"], "baseline", top)] if "baseline" in table else []
    report = _path(table, "report", top, base) if "report" in table else None
    corpus = _path(table, "corpus", top, base) if "corpus" in table else str(base / "corpora")
    db = table.get("db")
    if db is not None:
        if not isinstance(db, str) or not db:
            raise top.fail("db", f"must be a directory or a redis:// address, not {safetext.shown(db)}")
        db = db if "://" in db else str(base / db)
    sample = float(_number(table, "line_sample", top, lo=0)) if "line_sample" in table else LINE_SAMPLE
    if sample > 1:
        raise top.fail("line_sample", f"is a share of each run, at most 1, not {sample:g}")
    entries = table.get("entry")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise top.fail("entry", "needs at least one [[entry]] table (subsystem, policy, device, ...)")
    runs: list[Run] = []
    for number, entry in enumerate(entries, 1):
        runs.extend(_entry(entry, number, source, registry, seeds=seeds, workers=workers, search=search,
                           steps=steps, accept=accept))
    fixed = sum(r.time for r in runs if r.time is not None)
    floating = sum(1 for r in runs if r.time is None)
    if fixed + MIN_RUN * floating > budget:
        raise top.fail("budget", f"{budget:g} s cannot hold {len(runs)} runs: the fixed times take {fixed:g} s "
                                 f"and every other run needs at least {MIN_RUN:g} s")
    return Plan(source=source, budget=budget, runs=tuple(runs), baseline=tuple(baseline), report=report,
                corpus=corpus, db=db, line_sample=sample)


def _entry(entry: Mapping[str, Any], number: int, source: str, registry: Registry, *, seeds: list[int],
           workers: int, search: str, steps: int | None, accept: bool) -> list[Run]:
    named = entry.get("subsystem")
    where = _Where(source, number, named if isinstance(named, str) else "")
    _unknown_keys(entry, ENTRY_KEYS, where)
    if "subsystem" not in entry:
        raise where.fail("subsystem", f"missing; one of {', '.join(sorted(registry.subsystems))}")
    subsystem = entry["subsystem"]
    if subsystem not in registry.subsystems:
        raise where.fail("subsystem", f"unknown subsystem {safetext.shown(subsystem)}; the plugins loaded have "
                                      f"{', '.join(sorted(registry.subsystems))}")
    where = _Where(source, number, subsystem)
    sub = registry.subsystems[subsystem]
    known_policies = sorted(registry.policies.get(subsystem, {}))
    if "policy" not in entry:
        raise where.fail("policy", f"missing; {subsystem} has {', '.join(known_policies)} (or \"*\": all)")
    policies = _strings(entry["policy"], "policy", where)
    policies = known_policies if policies == ["*"] else policies
    for p in policies:
        if p not in known_policies:
            raise where.fail("policy", f"unknown policy {safetext.shown(p)} for {subsystem}; it has "
                                       f"{', '.join(known_policies)}")
    device_names = [d.name for d in sub.devices]
    devices = _strings(entry["device"], "device", where) if "device" in entry else device_names[:1]
    devices = device_names if devices == ["*"] else devices
    for d in devices:
        if d not in device_names:
            raise where.fail("device", f"unknown device {safetext.shown(d)} for {subsystem}; it has "
                                       f"{', '.join(device_names)}")
    variants = _without(entry["without"], where) if "without" in entry else [()]
    for p in policies:
        for variant in variants:
            try:
                registry.policy(subsystem, p, variant)
            except PtfuzzError as exc:
                raise where.fail("without", str(exc)) from None
    knobs = entry.get("knobs", {})
    if not isinstance(knobs, dict):
        raise where.fail("knobs", f"must be a table of knob values (knobs = {{ name = value }}), "
                                  f"not {safetext.shown(knobs)}")
    for p in policies:
        try:
            registry.policy(subsystem, p, (), knobs)
        except PtfuzzError as exc:
            raise where.fail("knobs", str(exc)) from None
    typed = tuple(sorted((k, registry.knob(subsystem, k).coerce(v)) for k, v in knobs.items()))
    weight = float(_number(entry, "weight", where, lo=0.01)) if "weight" in entry else 1.0
    fixed = float(_number(entry, "time", where, lo=MIN_RUN)) if "time" in entry else None
    if fixed is not None and "weight" in entry:
        raise where.fail("weight", "give 'time' (fixed seconds) or 'weight' (a share of the rest), not both")
    return [
        Run(entry=number, subsystem=subsystem, policy=p, without=variant, device=d, seed=seed, weight=weight,
            time=fixed,
            workers=int(_number(entry, "workers", where, lo=1, integer=True)) if "workers" in entry else workers,
            search=_search(entry, where, search),
            steps=int(_number(entry, "steps", where, lo=1, integer=True)) if "steps" in entry else steps,
            accept_tainted=_flag(entry, "accept_tainted", where, accept), knobs=typed)
        for p in policies for d in devices for variant in variants for seed in _seeds(entry, where, seeds)
    ]


def with_knobs(plan: Plan, registry: Registry, pairs: Sequence[tuple[str, str]]) -> Plan:
    """``ptfuzz campaign --knob NAME=VALUE``: set the knob in every run whose subsystem declares it
    (over the file's); a knob no run's subsystem declares, or a value of the wrong type, is exit 2."""
    runs = list(plan.runs)
    for name, text in pairs:
        hit = False
        for i, run in enumerate(runs):
            declared = {k.name: k for k in registry.subsystem(run.subsystem).knobs}
            if name not in declared:
                continue
            try:
                value = declared[name].parse(text)
            except ValueError as exc:
                raise UsageError(f"--knob {safetext.shown(name + '=' + text)}: knob {name!r} of "
                                 f"{run.subsystem}: {exc}") from None
            runs[i] = attrs.evolve(run, knobs=tuple(sorted({**dict(run.knobs), name: value}.items())))
            hit = True
        if not hit:
            subs = sorted({r.subsystem for r in plan.runs})
            declared_names = sorted({k.name for s in subs for k in registry.subsystem(s).knobs})
            raise UsageError(f"--knob {safetext.shown(name + '=' + text)}: no run's subsystem ({', '.join(subs)}) "
                             f"declares knob {name!r}; they declare {', '.join(declared_names) or 'none'}")
    return attrs.evolve(plan, runs=tuple(runs))
