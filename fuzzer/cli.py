"""The ``ptfuzz`` command line.

Exit codes: 0 nothing found (or a replay that no longer fails), 1 findings (or
a replay that still fails), 2 usage, corpus, plugin, worker or I/O errors
(a file that cannot be written), reported as one line naming the culprit, 3
an internal error (a bug in ptfuzz itself), also one line; 4 (``prove`` only)
incomplete: the time limit or the state cap ended a bounded proof before its
depth, so it proves nothing beyond the depth it reports;
``PTFUZZ_TRACEBACK=1`` prints the traceback too.  A campaign stopped by
Ctrl-C or SIGTERM exits as it would have at its deadline (0 or 1, with the
summary, ``--json`` and ``--junit`` written); 130 only when a second signal
stops it before any result exists.  A KeyboardInterrupt that no signal sent,
``sys.exit()`` or any other BaseException raised by plugin code is that
plugin's error (exit 2, naming it); a plugin calling ``os._exit()`` in a
single process cannot be caught, so the exit code is the plugin's (with
``--workers`` the parent reports the vanished worker, exit 2).  A closed
stdout (``| head -1``) ends the output quietly, not the work: the exit code
is still the verdict.

Everything printed from a corpus file or a plugin goes through ``_say`` or
``_plain`` (no rich markup, control characters escaped by ``fuzzer.safetext``); every file written goes
through ``fuzzer.files.write_output``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import math
import os
import random
import shlex
import signal
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, NoReturn, cast

import attrs
import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fuzzer import corpus, database, files, host, safetext
from fuzzer.bounded import DEFAULT_STATES, MAX_DEPTH, cpus
from fuzzer.bounded import prove as prove_bounded
from fuzzer.campaign import DEFAULT_EXAMPLES, MAX_STEPS, SEARCHES, Campaign, Finding, Progress, Result
from fuzzer.cluster import Engine, need_dask
from fuzzer.effects import describe
from fuzzer.errors import CorpusError, OutputError, PluginError, PtfuzzError, UsageError, raised
from fuzzer.hypothesis_search import open_database
from fuzzer.invariants import GENERIC
from fuzzer.minimize import as_plain
from fuzzer.replay import executor_for, trace
from fuzzer.replay import replay as do_replay
from fuzzer.shared import Shared, db_warnings_once, owner_id, scope_key
from fuzzer.slices import Entry
from fuzzer.spec import Knobs, Policy, Subsystem, knob_text
from fuzzer.version import __version__
from fuzzer.workers import check_workers

EXIT_CLEAN, EXIT_FOUND, EXIT_ERROR, EXIT_INTERNAL = 0, 1, 2, 3
#: ``prove``: the time limit or the state cap ended it before the depth asked for: not a proof
EXIT_INCOMPLETE = 4
#: Seconds between plain progress lines when stdout is not a terminal (CI logs).
PROGRESS_EVERY = 10.0


class _Stdout(io.TextIOBase):
    """stdout that a closed pipe silences instead of failing: ``ptfuzz replay -q DIR | head -1``.

    The first ``BrokenPipeError`` points file descriptor 1 at ``/dev/null``
    (so that the interpreter's last flush is quiet too) and every later write
    goes nowhere; the command runs on, and its exit code stays the verdict.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self._stream.write(text)
                self._stream.flush()  # one line at a time: a piped campaign's progress is read live
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._silence()

    def _silence(self) -> None:
        self.broken = True
        silence_stdout()

    def isatty(self) -> bool:
        return bool(self._stream.isatty())

    def fileno(self) -> int:
        return int(self._stream.fileno())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self._stream, "encoding", "utf-8"))

    def writable(self) -> bool:
        return True


def silence_stdout() -> None:
    """Point stdout (the descriptor) at /dev/null: its reader has gone."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _console() -> Console:
    """The console for everything ptfuzz prints.

    On a terminal, rich wraps at its width, so a narrow window (60 columns)
    folds long lines itself and the live status line is redrawn in place;
    elsewhere lines stay whole and wide, so CI logs keep signatures and paths.
    """
    tty = sys.stdout.isatty()
    out = cast(IO[str], _Stdout(sys.stdout))
    return Console(file=out, highlight=False, soft_wrap=not tty, width=None if tty else 200)


def _fit(con: Console, *parts: str, indent: str = "    ") -> None:
    """Print ``parts`` on one line if it fits the console, else wrapped between parts, indented.

    The signature leads: at 60 columns a FOUND line is the signature, then
    its details and its path indented below, not one line broken at any
    space; a part wider than the console (a long path) is folded.
    """
    parts = tuple(p for p in parts if p)
    if con.soft_wrap:  # not a terminal: whole lines
        _say(con, " ".join(parts))
        return
    line = parts[0]
    for part in parts[1:]:
        if len(line) + 1 + len(part) <= con.width:
            line += " " + part
        else:
            _say(con, line, fold=True)
            line = indent + part
    _say(con, line, fold=True)


class _FiniteSeconds(click.FloatRange):
    """A time budget: at least 0.1 s, and a number (``nan`` and ``inf`` would never end a campaign)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return seconds


FINITE_SECONDS = _FiniteSeconds(min=0.1)

KNOB_HELP = ("Set a policy knob the subsystem declares, as NAME=VALUE (repeatable; true/false, a number, "
             "a string, or a,b for a set); see `ptfuzz list`.")


def _knob_pairs(texts: tuple[str, ...]) -> list[tuple[str, str]]:
    """``--knob NAME=VALUE`` options as (name, text) pairs, in order (a later one wins)."""
    pairs = []
    for text in texts:
        name, eq, value = text.partition("=")
        if not eq or not name.strip():
            raise UsageError(f"--knob {safetext.shown(text)}: write NAME=VALUE, e.g. --knob write_mounted=false")
        pairs.append((name.strip(), value))
    return pairs


def _knobs(reg: host.Registry, subsystem: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The ``--knob`` values typed as ``subsystem`` declares them; a wrong name or value is exit 2."""
    out: dict[str, Any] = {}
    for name, text in pairs:
        try:
            knob = reg.knob(subsystem, name)
        except UsageError as exc:
            raise UsageError(f"--knob {safetext.shown(name + '=' + text)}: {exc}") from None
        try:
            out[name] = knob.parse(text)
        except ValueError as exc:
            raise UsageError(f"--knob {safetext.shown(name + '=' + text)}: knob {name!r} of {subsystem}: {exc}") from None
    return out


def _check_db(db: str | None) -> None:
    """Check ``--db`` before the campaign: an address it cannot serve is the user's configuration (exit 2)."""
    database.check(db)


def _say(con: Console, text: str, fold: bool = False) -> None:
    """Print one line that may contain corpus text: never markup, never a raw control character.

    ``fold``: cut at the console's width wherever it falls, not at spaces.
    """
    text = safetext.line(text)
    width = max(con.width, 20)
    for chunk in [text[i:i + width] for i in range(0, len(text), width)] if fold and text else [text]:
        con.print(chunk, markup=False, highlight=False, no_wrap=fold or None)


def _registry(ctx: click.Context) -> host.Registry:
    obj = ctx.find_root().obj
    if obj.get("registry") is None:
        obj["registry"] = host.load(obj.get("plugins", ()))
    return obj["registry"]


#: Entry-point group of subcommands a plugin adds (the CXL plugin's ``live``).
COMMANDS_GROUP = "ptfuzz.commands"


class _PluginCommands(click.Group):
    """ptfuzz's own commands, then the ones plugins add, each imported only when it is run.

    A plugin's subcommand is an entry point in ``ptfuzz.commands`` naming a click
    command; the engine never imports a plugin to build its help.  A subcommand
    whose plugin fails to import, or that is not a click command, is a plugin
    error naming the entry point (exit 2), like a plugin that fails to load.
    """

    def _added(self) -> dict[str, importlib.metadata.EntryPoint]:
        eps = importlib.metadata.entry_points(group=COMMANDS_GROUP)
        return {ep.name: ep for ep in eps if ep.name not in self.commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._added()])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        own = super().get_command(ctx, cmd_name)
        ep = self._added().get(cmd_name) if own is None else None
        if ep is None:
            return own
        try:
            command = ep.load()
        except Exception as exc:
            raise PluginError(f"ptfuzz {cmd_name}: the plugin command {ep.value} failed to load: "
                              f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(command, click.Command):
            raise PluginError(f"ptfuzz {cmd_name}: the plugin command {ep.value} is a "
                              f"{type(command).__name__}, not a click command")
        return command


@click.group(cls=_PluginCommands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--plugin", "plugins", multiple=True, metavar="PATH",
              help="Load a plugin module from a file (repeatable).")
@click.version_option(__version__, prog_name="ptfuzz")
@click.pass_context
def cli(ctx: click.Context, plugins: tuple[str, ...]) -> None:
    """Fuzz Linux device passthrough policies."""
    ctx.obj = {"plugins": plugins, "registry": None}


@cli.command("list")
@click.argument("subsystems", nargs=-1, metavar="[SUBSYSTEM]...")
@click.pass_context
def list_cmd(ctx: click.Context, subsystems: tuple[str, ...]) -> None:
    """Subsystems, device variants, policies and who provided them.

    With SUBSYSTEM, also each policy's reactions, trusts and knobs (too wide for the table).
    Every name and doc here is a plugin's text: each goes through ``_plain`` or
    ``_say`` (control characters escaped, rich markup shown as typed), so a
    policy named ``[/]`` or a doc holding an escape sequence prints as written."""
    reg = _registry(ctx)
    for wanted in subsystems:
        reg.subsystem(wanted)  # an unknown name is exit 2, listing the loaded ones
    con = _console()
    for name, sub in sorted(reg.subsystems.items()):
        if subsystems and name not in subsystems:
            continue
        plugin = reg.provider[("subsystem", name)]
        con.print(f"[bold]{_plain(name)}[/bold]  "
                  + _plain(f"(plugin {plugin} {reg.versions.get(plugin, '')}): {sub.doc}"))
        t = Table("device", "commands", "from", "about", box=None, pad_edge=False)
        any_policy = next(iter(reg.policies.get(name, {}).values()), None) or Policy("none", name, ())
        for d in sub.devices:
            ex = reg.executor(name, any_policy, d)
            t.add_row(*(_plain(text) for text in (
                d.name, str(len(ex.commands)), reg.provider[("device", name, d.name)], d.doc)))
        con.print(t)
        t = Table("policy", "kernel", "channels", "rules", "from", "about", box=None, pad_edge=False)
        policies = sorted(reg.policies.get(name, {}).items())
        if not policies:
            t.add_row("(none)", "", "", "", "", "no plugin registers a policy for this subsystem yet")
        for pname, pol in policies:
            t.add_row(*(_plain(text) for text in (
                pname, pol.version or "-", ",".join(pol.channels), str(len(pol.rules)),
                reg.provider[("policy", name, pname)], pol.doc)))
        con.print(t)
        con.print("  policies read from: " + _plain(_read_from([p for _, p in policies])))
        con.print("  kernel actions: " + _plain(", ".join(a.name for a in sub.actions)))
        if sub.knobs:  # what --knob NAME=VALUE may set
            con.print("  knobs: " + _plain(", ".join(
                f"{k.name}={_knob_default(k.default)} ({k.kind})" for k in sub.knobs)))
        invs = [i.name for i in reg.invariants if i.subsystem in (None, name)]
        con.print("  invariants: " + _plain(", ".join([i.name for i in GENERIC] + invs)))
        if subsystems:
            for _, pol in policies:
                _policy_details(con, sub, pol)
        elif any(p.reactions or p.trusts or _own_knobs(p) for _, p in policies):
            _say(con, f"  reactions, trusts and knobs: ptfuzz list {name}")
        con.print()


def _policy_details(con: Console, sub: Subsystem, pol: Policy) -> None:
    """A policy's reactions (name, effects they run on, cite), trusts (caps, scope, reason) and knobs.

    Every word comes from a plugin, so each line goes through ``_say`` (escaped, never markup).
    """
    _say(con, f"  policy {pol.name}:")
    knobs = _own_knobs(pol)
    if not (pol.reactions or pol.trusts or knobs):
        _say(con, "    no reactions, trusts or knobs")
    for r in pol.reactions:
        on = "any effect" if r.effects is None else describe(r.effects, sub.effects)
        _say(con, f"    reaction {r.name}: after {on}{_where(r.channels, r.ops)}  [{r.cite}]")
    for t in pol.trusts:
        caps = ",".join(sorted(t.caps)) or "any caller"
        _say(con, f"    trust {caps}{_where(t.channels, t.ops)}: {t.reason or 'no reason given'}  [{t.cite}]")
    if knobs:
        _say(con, "    knobs: " + ", ".join(f"{k}={safetext.shown(v)}" for k, v in knobs.items()))


def _where(channels: tuple[str, ...], ops: tuple[str, ...]) -> str:
    """`` on nvme.admin FORMAT_NVM,SANITIZE``, or nothing for a record that applies everywhere."""
    return "".join(f" {'on' if i == 0 else 'for'} {','.join(names)}"
                   for i, names in enumerate((channels, ops)) if names)


def _plain(text: str) -> str:
    """A plugin's text for a rich table or line: one line, control characters escaped, markup escaped."""
    return escape(safetext.line(text))


def _own_knobs(pol: Policy) -> Mapping[str, Any]:
    """The knobs a policy sets itself (a registered policy sees the declared defaults of the rest)."""
    return pol.knobs.own if isinstance(pol.knobs, Knobs) else pol.knobs


def _knob_default(value: Any) -> str:
    """A default as ``list`` shows it: a set by its size (cxl's exclusive Feature UUIDs fill a screen)."""
    return f"<{len(value)} names>" if isinstance(value, frozenset) and len(value) > 2 else knob_text(value)


def _read_from(policies: list[Policy]) -> str:
    """The kernels a subsystem's policies encode: "7.3.4 (historical: before 60b5d1f68338; ...)"."""
    current = sorted({p.kernel for p in policies if p.kernel and not p.predates})
    history = sorted({p.version for p in policies if p.predates})
    text = ", ".join(current) or "no kernel named"
    return text + (f" (historical: {'; '.join(history)})" if history else "")


def _print_finding(con: Console, f: Finding, first: bool, owner: str | None = None) -> None:
    """A FOUND line; ``owner``: the campaign sharing the ``--db`` Redis that holds its file (not written here)."""
    if first:
        _fit(con, *f.describe_parts(), *((f"(saved by {owner})",) if owner else ()))


def _progress_text(p: Progress, time_budget: float | None, max_examples: int | None) -> str:
    """One progress line, with the budget it counts towards (``12s / 20s``, ``800 / 2000 sequences``)."""
    sequences = f"{p.sequences} / {max_examples} sequences" if max_examples else f"{p.sequences} sequences"
    clock = f"{p.elapsed:.0f}s / {time_budget:g}s" if time_budget else f"{p.elapsed:.0f}s"
    return (f"{sequences}, {p.steps} steps, " + (f"{p.behaviours} behaviours, " if p.behaviours else "")
            + f"{p.findings} findings, {clock}")


@cli.command()
@click.argument("subsystem")
@click.option("--policy", "policy_name", help="Policy to fuzz (see `ptfuzz list`).")
@click.option("--device", "device_name", help="Device variant (default: the first).")
@click.option("--without", multiple=True, metavar="RULE",
              help="Remove one rule from the policy: what if this check were missing?")
@click.option("--knob", "knob_texts", multiple=True, metavar="NAME=VALUE", help=KNOB_HELP)
@click.option("--seed", type=int, help="Seed; printed when chosen at random.")
@click.option("--time", "time_budget", type=FINITE_SECONDS, help="Time budget in seconds.")
@click.option("--max-examples", type=click.IntRange(min=1), help="Number of sequences to try.")
@click.option("--steps", "step_count", type=click.IntRange(min=1, max=MAX_STEPS), default=None,
              help=f"Maximum steps per sequence, at most {MAX_STEPS}  [default: the subsystem's, 20 for cxl]")
@click.option("--corpus", "corpus_dir", default="corpora", show_default=True,
              help="Where findings are written (DIR/SUBSYSTEM/*.json).")
@click.option("--db", "db", help="What a rerun remembers (findings' sequences, behaviours' seeds; the "
              "Hypothesis search's examples): a directory, redis://host:port/n, rediss://... or unix:///path.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Parallel campaign processes, a local Dask cluster (seeds derived from --seed; --max-examples "
                   "is split); at most one per CPU (2 on a single CPU), as memory allows  [default: 1, in this "
                   "process].  With --cluster: slices at once  [default: one per worker thread].")
@click.option("--cluster", "cluster_addr", metavar="tcp://HOST:8786",
              help="Run on the workers of this Dask scheduler (each with ptfuzz and the plugins installed); "
                   "the corpus is written here.")
@click.option("--search", type=click.Choice(SEARCHES), default="native", show_default=True,
              help="native: steps drawn at executor speed, grown from what reached new behaviour; "
                   "hypothesis: the subsystem's Hypothesis state machine.")
@click.option("--accept-tainted", is_flag=True,
              help="Findings that need a tainted kernel do not fail the run.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write a JSON summary here.")
@click.option("--junit", "junit_out", type=click.Path(dir_okay=False),
              help="Write JUnit XML here: one test case per finding.")
@click.option("--baseline", "baselines", multiple=True, metavar="PATH",
              help="Known findings (corpus directory or file, or a signature list): only new ones exit 1.")
@click.option("--ignore", "ignored", multiple=True, metavar="INVARIANT",
              help="Do not check this invariant (repeatable): its follow-on findings show again.")
@click.pass_context
def run(ctx: click.Context, subsystem: str, policy_name: str | None, device_name: str | None,
        without: tuple[str, ...], seed: int | None, time_budget: float | None, max_examples: int | None,
        step_count: int | None, corpus_dir: str, db: str | None, workers: int | None, search: str,
        accept_tainted: bool,
        json_out: str | None, junit_out: str | None, baselines: tuple[str, ...] = (),
        ignored: tuple[str, ...] = (), knob_texts: tuple[str, ...] = (), cluster_addr: str | None = None) -> None:
    """Run a fuzz campaign on SUBSYSTEM and save minimized findings."""
    reg = _registry(ctx)
    known = _load_baseline(baselines)
    sub = reg.subsystem(subsystem)
    ignore = _ignored(reg, (subsystem,), ignored)
    step_count = step_count or sub.steps
    for option, target in (("--json", json_out), ("--junit", junit_out)):
        if target is not None:  # a typo must not cost the campaign's hour
            files.check_writable(target, option)
    if not corpus_dir:
        raise UsageError("--corpus '': an empty path names no directory")
    on_cluster = cluster_addr is not None or (workers or 1) > 1
    if cluster_addr is None:
        check_workers(workers or 1)
    if on_cluster:
        need_dask("--cluster" if cluster_addr is not None else "--workers")
    _check_db(db)
    policy = reg.policy(subsystem, policy_name, without, _knobs(reg, subsystem, _knob_pairs(knob_texts)))
    device = reg.device(subsystem, device_name)
    try:  # fail now, not when the first finding is saved
        Path(corpus_dir, subsystem).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--corpus {corpus_dir!r}: cannot create {subsystem!r} in it: {exc.strerror or exc}") from None
    if not os.access(Path(corpus_dir, subsystem), os.W_OK | os.X_OK):
        raise UsageError(f"--corpus {corpus_dir!r}: cannot write in {str(Path(corpus_dir, subsystem))!r}")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    con = _console()
    ci = bool(os.environ.get("CI")) or not sys.stdout.isatty()
    budget = f"{time_budget:g}s" if time_budget else f"{max_examples or DEFAULT_EXAMPLES[search]} sequences"
    _say(con, f"ptfuzz {__version__}: {sub.name} policy={policy.label} device={device.name} "
              f"seed={seed} budget={budget} search={search}")

    status = None if ci else con.status("starting", spinner="dots")
    last_line = [0.0]
    count = max_examples if time_budget is None else None
    count = count or (None if time_budget else DEFAULT_EXAMPLES[search])

    def progress(p: Progress) -> None:
        text = _progress_text(p, time_budget, count)
        if status is not None:
            status.update(text)  # one line, redrawn in place
        elif p.elapsed - last_line[0] >= PROGRESS_EVERY:  # CI logs and pipes: a plain line now and then
            last_line[0] = p.elapsed
            con.print(f"  ... {text}", highlight=False)

    db_warn = db_warnings_once(lambda text: _say(con, text))
    #: a Redis --db is shared with other campaigns: the signatures each has saved (claims), coverage counts
    shared = Shared(db, owner_id(corpus_dir), warn=db_warn)
    if on_cluster:
        deadline = time.time() + time_budget if time_budget is not None else None
        engine = Engine(cluster_addr, workers or 1)

        def found(entry: Entry, f: Finding, worker: str, owner: str | None) -> None:
            head, *rest = f.describe_parts()
            _fit(con, f"[w{worker}] {head}", *rest, *((f"(saved by {owner})",) if owner else ()))

        def on_cluster_run() -> Result:
            try:
                engine.start()
                streams = workers or engine.capacity
                count = max_examples if max_examples is not None or time_budget is not None \
                    else DEFAULT_EXAMPLES[search]
                entry = Entry(index=0, label=f"{subsystem} {policy.label} {device.name}",
                              plugin_files=tuple(ctx.find_root().obj.get("plugins", ())), subsystem=subsystem,
                              policy=policy.name, without=reg.without_of(policy), knobs=tuple(policy.tuned.items()),
                              device=device.name, seed=seed, step_count=step_count, accept_tainted=accept_tainted,
                              search=search, ignore=ignore, streams=streams, max_examples=count,
                              seconds=None if time_budget is None else time_budget * streams)
                got, _ = engine.run(reg, [entry], deadline=deadline, db=db, corpus_dir=corpus_dir,
                                    shared=shared, on_found=found, on_progress=progress,
                                    warn=db_warn)
            finally:
                engine.close()
            counts = shared.counts(scope_key(subsystem, policy.label, device.name))
            if counts:  # what every campaign sharing this Redis has run on this scope, this one included
                _say(con, f"shared --db: {counts.get('sequences', 0):,} sequences, {counts.get('steps', 0):,} steps "
                          f"in {counts.get('slices', 0):,} slices on this policy and device, all campaigns together")
            return got.get(0) or Result({}, 0, 0, 0.0, seed, 0, interrupted=True, search=search)

        runner: Any = on_cluster_run
        stop: Any = engine.request_stop
    else:
        scope = scope_key(subsystem, policy.label, device.name)
        campaign = Campaign(
            reg, subsystem, policy, device, seed=seed, max_examples=max_examples, time_budget=time_budget,
            step_count=step_count, corpus_dir=corpus_dir, accept_tainted=accept_tainted,
            database=open_database(db), search=search, ignore_invariants=ignore,
            on_finding=lambda f, first: _print_finding(con, f, first, campaign.claimed.get(f.signature)),
            on_progress=lambda c: progress(c.progress()),
            claim=(lambda sig, steps: shared.claim(scope, sig, steps)) if shared.active else None,
        )
        if campaign.store is not None:
            campaign.store.warn = db_warn
        runner = campaign.run

        def stop() -> None:
            campaign.stop_requested = True

    signals = _signals[0]
    if status is not None:
        with status:
            result = _run_interruptible(runner, stop)
    else:
        result = _run_interruptible(runner, stop)
    if result.interrupted and not on_cluster and _signals[0] == signals:
        # The campaign stops on KeyboardInterrupt as on Ctrl-C and keeps no traceback: raised
        # without a signal, it came from plugin code (workers name it themselves, fuzzer.workers).
        raise _unasked_interrupt(reg, [subsystem], "`ptfuzz replay` of a saved finding names the callable",
                                 None if on_cluster else campaign.interrupt)
    _summary(con, result, policy.label, device.name)
    judged = _judge_run(con, reg, known, result, subsystem, policy, device.name) if known is not None else None
    if json_out:
        _write_json(json_out, result, subsystem, policy.label, device.name)
        if judged is not None:
            _add_baseline_json(json_out, result, judged)
    if junit_out:
        known_sigs = frozenset() if judged is None else frozenset(
            sig for sig in result.findings if judged.of(0, sig) != "new")
        files.write_output(junit_out, "--junit", junit_xml(result, subsystem, policy.label, device.name, known_sigs))
    if result.interrupted:
        con.print("interrupted: every finding above is saved")
    if judged is not None:
        from fuzzer.baseline import new_failing

        ctx.exit(EXIT_FOUND if new_failing(result, judged) else EXIT_CLEAN)
    ctx.exit(EXIT_FOUND if result.failing() else EXIT_CLEAN)


def _ignored(reg: host.Registry, subsystems: tuple[str, ...], names: tuple[str, ...]) -> frozenset[str]:
    """``--ignore``: each name must be an invariant one of ``subsystems`` checks (a typo would ignore nothing)."""
    known = [i.name for i in GENERIC] + sorted({i.name for i in reg.invariants
                                                if i.subsystem is None or i.subsystem in subsystems})
    for name in names:
        if name not in known:
            raise UsageError(f"--ignore {safetext.shown(name)}: no such invariant for {', '.join(subsystems)}; "
                             f"the invariants are {', '.join(known)}")
    return frozenset(names)


def _load_baseline(paths: tuple[str, ...]) -> Any:
    """``--baseline``: read before the campaign, so a bad one costs nothing (exit 2)."""
    if not paths:
        return None
    from fuzzer import baseline

    return baseline.load(paths)


def _judge_run(con: Console, reg: host.Registry, known: Any, result: Result, subsystem: str, policy: Policy,
               device: str) -> Any:
    """``run --baseline``: after the campaign, each finding new or known, each baseline entry fixed or not."""
    from fuzzer import baseline

    judged = baseline.judge(reg, known, [(baseline.Scope(subsystem, policy.name, reg.without_of(policy), device,
                                                                         tuple(policy.tuned.items())),
                                          result)])
    new = [s for s in result.findings if judged.of(0, s) == "new"]
    con.print(f"baseline: {len(new)} new, {len(result.findings) - len(new)} known, "
              f"{judged.count(baseline.FIXED)} fixed")
    for sig in new:
        _say(con, f"  NEW   {sig}")
    for v in judged.verdicts:
        if v.state not in (baseline.FOUND, baseline.OUT_OF_SCOPE):
            _say(con, f"  {v.state.upper():<6}{v.known.describe()}: {v.why}")
    return judged


def _add_baseline_json(path: str, result: Result, judged: Any) -> None:
    """Add each finding's status and the baseline's verdicts to ``run``'s JSON summary."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    for f in doc["findings"]:
        f["status"] = judged.of(0, f["signature"])
    doc["baseline"] = judged.to_json()
    files.write_output(path, "--json", json.dumps(doc, indent=2) + "\n")


def _run_interruptible(run: Callable[[], Result], stop: Callable[[], None]) -> Result:
    """First Ctrl-C or SIGTERM: ``stop()``, which ends the campaign as its deadline would (within a
    fraction of a second: findings not yet minimized are kept as found); second: stop now.

    SIGTERM is what ``timeout`` and a CI cancellation send: it must keep the
    summary, ``--json`` and ``--junit`` as Ctrl-C does.
    """
    stopping = [False]

    def on_signal(signum: int, frame: Any) -> None:
        _signals[0] += 1
        if stopping[0]:
            raise KeyboardInterrupt
        stopping[0] = True
        stop()
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        with contextlib.suppress(OSError):
            sys.stderr.write(f"ptfuzz: {name}: stopping (again to stop now)\n")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _summary(con: Console, r: Result, policy: str, device: str) -> None:
    rate = r.steps / r.elapsed if r.elapsed else 0.0
    runs = f" ({r.runs} runs including shrinking)" if r.runs != r.sequences else ""
    seen = f", {r.behaviours} behaviours" if r.behaviours else ""
    if r.abstract_states:
        least = "at least " if r.coverage_capped else ""
        seen += f", {least}{r.abstract_states} abstract states, {least}{r.transitions} transitions"
    rounds = f", {r.rounds} round(s)" if r.search == "hypothesis" else ""
    con.print(f"{r.sequences} sequences generated{runs}, {r.steps} steps in {r.elapsed:.1f}s "
              f"({rate:,.0f} steps/s){seen}{rounds}, seed {r.seed}")
    if r.stopped_learning:
        con.print(f"stopped learning: no new abstract state after {r.last_new_state:.1f}s of {r.elapsed:.1f}s "
                  f"(a longer run of this search is unlikely to reach more)")
    if not r.findings:
        _say(con, f"no violations found for {policy} on {device}")
        return
    follow = {s: f for s, f in r.findings.items()  # listed under their root; trusted ones stay apart
              if f.follows in r.findings and "trusted" not in (f.violation.severity,
                                                              r.findings[f.follows].violation.severity)}
    con.print(f"{len(r.findings)} distinct violation(s)"
              + (f", {len(follow)} of them follow-ons of another (listed under it)" if follow else "") + ":")
    trusted = [(s, f) for s, f in sorted(r.findings.items()) if f.violation.severity == "trusted"]
    for sig, f in sorted(r.findings.items()):
        if f.violation.severity == "trusted" or sig in follow:
            continue
        sev = f.violation.severity + (" (accepted)" if sig in r.accepted else "")
        _fit(con, f"  {sev:<8} {sig}", _steps(f), str(f.path or ""), indent="      ")
        for fsig, ff in sorted(follow.items()):
            if ff.follows == sig:
                _fit(con, f"    follow-on {fsig}", _steps(ff), str(ff.path or ""), indent="        ")
    if trusted:
        con.print(f"{len(trusted)} by design (callers the policy trusts; they do not fail the run):")
        for sig, f in trusted:
            _fit(con, f"  trusted  {sig}", _steps(f), str(f.path or ""), indent="      ")
    raw = sum(not f.minimized for f in r.findings.values())
    if raw:
        con.print(f"{raw} not minimized: the {'stop' if r.interrupted else 'time budget'} came first; "
                  f"their files hold the steps as found")


def _steps(f: Finding) -> str:
    return f"[{len(f.steps)} steps{'' if f.minimized else ', not minimized'}]"


def _write_json(path: str, r: Result, subsystem: str, policy: str, device: str) -> None:
    doc: dict[str, Any] = {
        "ptfuzz": __version__, "subsystem": subsystem, "policy": policy, "device": device,
        "search": r.search, "seed": r.seed, "sequences": r.sequences, "steps": r.steps, "elapsed": round(r.elapsed, 3),
        "behaviours": r.behaviours,
        "abstract_states": r.abstract_states, "transitions": r.transitions,
        "growth": [[t, n] for t, n in r.growth], "last_new_state_s": round(r.last_new_state, 3),
        "stopped_learning": r.stopped_learning, "coverage_capped": r.coverage_capped,
        "interrupted": r.interrupted,
        "findings": [
            {"signature": s, "severity": f.violation.severity, "accepted": s in r.accepted,
             "steps": len(f.steps), "minimized": f.minimized, "file": str(f.path) if f.path else None,
             "message": f.violation.message, "found_after_s": round(f.found_at, 3),
             "follows": f.follows or None}
            for s, f in sorted(r.findings.items())
        ],
    }
    files.write_output(path, "--json", json.dumps(doc, indent=2) + "\n")


def junit_xml(r: Result, subsystem: str, policy: str, device: str, known: frozenset[str] = frozenset()) -> str:
    """One test case per finding (accepted tainted ones and, with ``--baseline``, known ones skipped), or one
    passing campaign case."""
    suite = ET.Element("testsuite", name=f"ptfuzz.{subsystem}.{policy}.{device}",
                       tests="0", failures="0", skipped="0", time=f"{r.elapsed:.3f}")
    failures = skipped = 0
    for sig, f in sorted(r.findings.items()):
        case = ET.SubElement(suite, "testcase", classname=f"ptfuzz.{subsystem}.{policy}.{device}", name=sig)
        body = "\n".join(s.describe() for s in f.steps) + (f"\ncorpus: {f.path}" if f.path else "")
        if not f.minimized:
            body = f"not minimized (the campaign ended first): {len(f.steps)} steps as found\n{body}"
        if f.violation.severity == "trusted":
            ET.SubElement(case, "skipped", message=f"trusted caller, by design: {f.violation.message}")
            skipped += 1
        elif sig in r.accepted:
            ET.SubElement(case, "skipped", message=f"accepted tainted finding: {f.violation.message}")
            skipped += 1
        elif sig in known:
            ET.SubElement(case, "skipped", message=f"known (in the baseline): {f.violation.message}")
            skipped += 1
        else:
            ET.SubElement(case, "failure", message=f.violation.message, type=f.violation.invariant).text = body
            failures += 1
    if not r.findings:
        ET.SubElement(suite, "testcase", classname=f"ptfuzz.{subsystem}.{policy}.{device}",
                      name=f"campaign: {r.sequences} sequences, seed {r.seed}")
    suite.set("tests", str(max(len(r.findings), 1)))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


@cli.command()
@click.argument("subsystem")
@click.option("--policy", "policy_name", help="Policy to prove (see `ptfuzz list`).")
@click.option("--device", "device_name", help="Device variant (default: the first).")
@click.option("--depth", type=click.IntRange(min=1, max=MAX_DEPTH), default=3, show_default=True,
              help="Steps: every sequence of at most this many is covered.")
@click.option("--without", multiple=True, metavar="RULE",
              help="Remove one rule from the policy: does the proof still hold?")
@click.option("--time", "time_budget", type=FINITE_SECONDS,
              help="Time limit in seconds; reaching it is 'incomplete' (exit 4), not a proof.")
@click.option("--max-states", type=click.IntRange(min=1), default=DEFAULT_STATES, show_default=True,
              help="State cap (states kept whole; the last depth's are only counted, up to 40 times as many); "
                   "reaching it is 'incomplete' (exit 4), not a proof.")
@click.option("--tainted", "count_tainted", is_flag=True,
              help="Violations on a tainted kernel disprove too (by default only holes do).")
@click.option("--corpus", "corpus_dir", default="corpora", show_default=True,
              help="Where a violation found is written (DIR/SUBSYSTEM/*.json).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write a JSON summary here.")
@click.option("--ignore", "ignored", multiple=True, metavar="INVARIANT",
              help="Do not check this invariant (repeatable).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Processes each depth's states are split over (default: the CPUs available); "
                   "the answer is the same for any number.")
@click.option("--knob", "knob_texts", multiple=True, metavar="NAME=VALUE", help=KNOB_HELP)
@click.pass_context
def prove(ctx: click.Context, subsystem: str, policy_name: str | None, device_name: str | None, depth: int,
          without: tuple[str, ...], time_budget: float | None, max_states: int, count_tainted: bool,
          corpus_dir: str, json_out: str | None, ignored: tuple[str, ...], jobs: int | None,
          knob_texts: tuple[str, ...] = ()) -> None:
    """Prove SUBSYSTEM's policy free of holes within --depth steps, over declared argument classes.

    Breadth first over every distinct abstract state (``fuzzer.bounded``): exit 0
    "no violation within N steps over these classes", 1 the shortest violation
    (printed as a FOUND line and saved in --corpus), 2 bad input, 4
    "incomplete": the time limit or the state cap ended it first, which proves
    nothing beyond the depth it names.
    """
    reg = _registry(ctx)
    reg.subsystem(subsystem)
    ignore = _ignored(reg, (subsystem,), ignored)
    if json_out is not None:
        files.check_writable(json_out, "--json")
    if not corpus_dir:
        raise UsageError("--corpus '': an empty path names no directory")
    policy = reg.policy(subsystem, policy_name, without, _knobs(reg, subsystem, _knob_pairs(knob_texts)))
    device = reg.device(subsystem, device_name)
    executor = reg.executor(subsystem, policy, device)
    severities = frozenset({"hole", "tainted"} if count_tainted else {"hole"})
    con = _console()
    limits = f"time {time_budget:g}s, " if time_budget else ""
    jobs = jobs or cpus()
    _say(con, f"ptfuzz {__version__}: prove {subsystem} policy={policy.label} device={device.name} depth={depth} "
              f"({limits}at most {max_states} states; counting {', '.join(sorted(severities))}; "
              f"{jobs} process{'es' if jobs > 1 else ''})")
    proof = prove_bounded(executor, depth, severities=severities, max_states=max_states, time_limit=time_budget,
                          ignored=ignore, jobs=jobs)
    path: Path | None = None
    if proof.outcome == "found":
        assert proof.violation is not None
        entry = corpus.Entry(subsystem=subsystem, device=device.name, policy=policy.name, without=policy.removed,
                             knobs=dict(policy.tuned), steps=proof.steps, violation=corpus.violation_to_json(proof.violation),
                             plugins=reg.plugin_versions(subsystem), ptfuzz=__version__)
        path = Path(corpus_dir, subsystem, corpus.file_name(entry))
        known = corpus.known(path, executor.complete)
        scopes = {c.name: c.scopes for c in reg.subsystem(subsystem).channels}
        kept = (known is not None and known.signature == entry.signature  # as a campaign: no churn
                and as_plain(executor, known.steps, list(proof.steps), entry.signature, scopes))
        if not kept:
            try:
                path = corpus.save(Path(corpus_dir, subsystem), entry, executor.payload_of)
            except OSError as exc:
                raise OutputError(f"--corpus: cannot write in {corpus_dir!r}: {exc.strerror or exc}") from None
        _fit(con, *proof.describe_parts(), f"-> {path}" + (" (kept: it holds a reproducer as plain)" if kept else ""))
        for step in proof.steps:
            _say(con, f"  {step.describe()}")
    else:
        _say(con, proof.describe())
    if proof.uncounted:
        shown = sorted(proof.uncounted)
        _say(con, f"  not counted ({', '.join(sorted(severities ^ {'hole', 'tainted', 'trusted'}))}): "
                  f"{len(shown)} signature(s): {', '.join(shown[:4])}{' ...' if len(shown) > 4 else ''}")
    _say(con, f"  states per depth: {', '.join(str(n) for n in proof.levels)}")
    if json_out:
        doc = {
            "ptfuzz": __version__, "subsystem": subsystem, "policy": policy.label, "device": device.name,
            "depth": depth, "jobs": jobs, "outcome": proof.outcome, "reason": proof.reason or None,
            "complete_depth": proof.complete_depth, "states": proof.states, "transitions": proof.transitions,
            "applied": proof.applied,
            "levels": list(proof.levels), "elapsed": round(proof.seconds, 3), "cpu": round(proof.cpu, 3), "counted": sorted(severities),
            "uncounted": dict(sorted(proof.uncounted.items())),
            "violation": None if proof.violation is None else {
                **corpus.violation_to_json(proof.violation), "steps": len(proof.steps),
                "file": str(path) if path else None},
        }
        files.write_output(json_out, "--json", json.dumps(doc, indent=2) + "\n")
    ctx.exit({"proved": EXIT_CLEAN, "found": EXIT_FOUND, "incomplete": EXIT_INCOMPLETE}[proof.outcome])


@cli.command("campaign")
@click.argument("file", default="pyproject.toml", type=click.Path())
@click.option("--baseline", "baselines", multiple=True, metavar="PATH",
              help="Known findings: a corpus directory or file, or a signature list (adds to the file's).")
@click.option("--report", "report_dir", metavar="DIR", help="Write index.html and summary.md here.")
@click.option("--corpus", "corpus_dir", metavar="DIR", help="Where findings are written (overrides the file).")
@click.option("--time", "time_budget", type=FINITE_SECONDS, help="Total budget in seconds (overrides the file).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write a JSON summary here.")
@click.option("--junit", "junit_out", type=click.Path(dir_okay=False),
              help="Write JUnit XML: new findings fail, known ones are skipped, fixed ones pass.")
@click.option("--ignore", "ignored", multiple=True, metavar="INVARIANT",
              help="Do not check this invariant (repeatable): its follow-on findings show again.")
@click.option("--knob", "knob_texts", multiple=True, metavar="NAME=VALUE",
              help="Set a policy knob in every run whose subsystem declares it (over the file's; repeatable).")
@click.option("--cluster", "cluster_addr", metavar="tcp://HOST:8786",
              help="Run every entry at once on the workers of this Dask scheduler, within the one budget; "
                   "the corpus and the report are written here.")
@click.option("--db", "db", help="What reruns remember and campaigns share (overrides the file's db): a "
              "directory, redis://host:port/n, rediss://... or unix:///path.")
@click.pass_context
def campaign_cmd(ctx: click.Context, file: str, baselines: tuple[str, ...], report_dir: str | None,
                 corpus_dir: str | None, time_budget: float | None, json_out: str | None,
                 junit_out: str | None, ignored: tuple[str, ...] = (), knob_texts: tuple[str, ...] = (),
                 cluster_addr: str | None = None, db: str | None = None) -> None:
    """Run the campaign FILE (TOML, or [tool.ptfuzz] in pyproject.toml) within its one budget.

    Exit 0 when nothing new was found, 1 for new findings, 2 for bad input, 130 when interrupted."""
    from fuzzer import baseline as baseline_mod
    from fuzzer import campaignfile, progress, report, results, schedule

    reg = _registry(ctx)
    plan = campaignfile.load(file, reg)
    plan = attrs.evolve(plan, budget=time_budget or plan.budget, corpus=corpus_dir or plan.corpus,
                        report=report_dir or plan.report, db=db or plan.db)
    if knob_texts:
        plan = campaignfile.with_knobs(plan, reg, _knob_pairs(knob_texts))
    ignore = _ignored(reg, tuple(sorted({r.subsystem for r in plan.runs})), ignored)
    for option, target in (("--json", json_out), ("--junit", junit_out)):
        if target:
            files.check_writable(target, option)
    if cluster_addr is not None:
        need_dask("--cluster")
    elif any(r.workers > 1 for r in plan.runs):
        need_dask("workers > 1")
        check_workers(max(r.workers for r in plan.runs))
    _check_db(plan.db)
    known = baseline_mod.load(plan.baseline + baselines)
    try:
        Path(plan.corpus).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"corpus {plan.corpus!r}: cannot create it: {exc.strerror or exc}") from None
    con = _console()
    _say(con, f"ptfuzz {__version__}: campaign {file}: {len(plan.runs)} runs in {plan.budget:g}s, "
              f"baseline {len(known.known)} known, corpus {plan.corpus}")
    plugin_files = tuple(ctx.find_root().obj.get("plugins", ()))
    signals = _signals[0]
    if sys.stdout.isatty() and not os.environ.get("CI"):
        budgets = [plan.shares(0.0, 0)] * len(plan.runs)
        with progress.LiveDisplay(con, len(plan.runs), [r.label for r in plan.runs], budgets) as live_view:
            outcome = schedule.run_plan(reg, plan, known, live_view, plugin_files=plugin_files, ignore=ignore,
                                        cluster=cluster_addr, warn=lambda text: _say(con, text))
    else:
        outcome = schedule.run_plan(reg, plan, known, progress.PlainDisplay(con, len(plan.runs)),
                                    plugin_files=plugin_files, ignore=ignore, cluster=cluster_addr,
                                    warn=lambda text: _say(con, text))
    if outcome.interrupted and _signals[0] == signals:  # as in `run`: no Ctrl-C or SIGTERM sent it
        raise _unasked_interrupt(reg, sorted({r.subsystem for r in plan.runs}),
                                 f"the findings found so far are saved in {plan.corpus}")
    new = outcome.new_failing()
    code = 130 if outcome.interrupted else EXIT_FOUND if new else EXIT_CLEAN
    totals = {s: 0 for s in ("new", "known", "accepted", "trusted")}
    for o in outcome.outcomes:
        for f in (o.result.findings.values() if o.result else ()):
            totals[results.status_of(outcome, o, f)] += 1
    con.print(f"{len(outcome.outcomes)} runs in {outcome.elapsed:.1f}s: {totals['new']} new, {totals['known']} known, "
              f"{outcome.judgement.count(baseline_mod.FIXED)} fixed"
              + (f", {totals['accepted']} accepted, {totals['trusted']} trusted" if totals['accepted'] + totals['trusted']
                 else ""))
    for o, f in new:
        after = f"  (follow-on of {f.follows})" if f.follows else ""
        _say(con, f"  NEW   [{f.violation.severity}] {f.signature}  [{len(f.steps)} steps]  {f.path or ''}  "
                  f"({o.run.label}){after}")
    for v in outcome.judgement.verdicts:
        if v.state not in (baseline_mod.FOUND, baseline_mod.OUT_OF_SCOPE):
            _say(con, f"  {v.state.upper():<6}{v.known.describe()}: {v.why}")
    if json_out:
        files.write_output(json_out, "--json", json.dumps(results.to_json(outcome, code), indent=2) + "\n")
    if junit_out:
        files.write_output(junit_out, "--junit", results.junit_xml(outcome))
    if plan.report:
        page, _ = report.write(plan.report, outcome, code)
        _say(con, f"report: {page}")
    if outcome.interrupted:
        con.print("interrupted: every finding above is saved, and the outputs are written")
    ctx.exit(code)


@cli.command()
@click.argument("paths", metavar="FILES", nargs=-1, required=True, type=click.Path())
@click.option("--policy", "policy_name", help="Replay under another policy of the same subsystem.")
@click.option("--without", multiple=True, metavar="RULE", help="Remove a rule from the replay policy.")
@click.option("--knob", "knob_texts", multiple=True, metavar="NAME=VALUE",
              help="Set a policy knob over the file's and the policy's (repeatable; see `ptfuzz list`).")
@click.option("-q", "--quiet", is_flag=True, help="One line per file.")
@click.pass_context
def replay(ctx: click.Context, paths: tuple[str, ...], policy_name: str | None,
           without: tuple[str, ...], quiet: bool, knob_texts: tuple[str, ...] = ()) -> None:
    """Replay corpus FILES deterministically, with the knobs each was found with; exit 1 if any still fails."""
    reg = _registry(ctx)
    con = _console()
    failing = 0
    pairs = _knob_pairs(knob_texts)
    for path in corpus.expand(paths):
        entry = corpus.load(path)
        rep = do_replay(reg, entry, policy_name, without or None,
                        _knobs(reg, entry.subsystem, pairs) if pairs else None)
        failing += rep.still_fails
        if quiet:
            state = "FAILS " if rep.still_fails else "passes"
            _say(con, f"{state} {path} ({entry.signature} under {rep.policy.label})")
        else:
            for line in trace(rep):
                _say(con, line)
    ctx.exit(EXIT_FOUND if failing else EXIT_CLEAN)


@cli.command()
@click.argument("file", type=click.Path())
@click.option("--format", "fmt", default="text", show_default=True, help="Exporter name.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.pass_context
def export(ctx: click.Context, file: str, fmt: str, output: str | None) -> None:
    """Export a finding as readable text (or another registered format)."""
    reg = _registry(ctx)
    if fmt not in reg.exporters:
        raise UsageError(f"unknown export format {safetext.shown(fmt)}; available: {', '.join(sorted(reg.exporters))}")
    if output:
        files.check_writable(output, "--output")
    entry = corpus.load(file)
    exporter = reg.exporter(fmt, entry.subsystem)
    # host keys a generic exporter by subsystem None
    who = reg.provider.get(cast(tuple[str, ...], ("exporter", exporter.name, exporter.subsystem)), "?")
    rep = do_replay(reg, entry)
    try:
        text = exporter.render(rep)
    except Exception as exc:  # an exporter's limits (e.g. C knows one subsystem's UAPI)
        raise UsageError(f"{file}: export --format {fmt} (plugin {who!r}) failed: {type(exc).__name__}: {exc}") from None
    except KeyboardInterrupt:
        if _signals[0]:  # Ctrl-C while it ran
            raise
        raise PluginError(f"plugin {who!r}: exporter {fmt!r} raised KeyboardInterrupt, which only Ctrl-C may "
                          f"raise; raise an Exception saying what it cannot export") from None
    except BaseException as exc:  # SystemExit or a BaseException of its own: a bug in the exporter
        raise PluginError(f"plugin {who!r}: exporter {fmt!r} raised {raised(exc)}; an exporter must return "
                          f"the text or raise an Exception") from None
    if not isinstance(text, str):
        raise PluginError(f"plugin {who!r}: exporter {fmt!r} returned {type(text).__name__}, not the text "
                          f"(str) of the export")
    if output:
        files.write_output(output, "--output", text)
    else:  # not click.echo: it re-encodes on its own terms; stdout here escapes what it cannot encode
        sys.stdout.write(text)
        sys.stdout.flush()


@cli.command()
@click.argument("paths", metavar="FILES", nargs=-1, required=True, type=click.Path())
@click.pass_context
def migrate(ctx: click.Context, paths: tuple[str, ...]) -> None:
    """Rewrite corpus FILES of an older format in the current one (replay reads both)."""
    reg = _registry(ctx)
    con = _console()
    for path in corpus.expand(paths):
        entry = corpus.load(path)
        if entry.format == corpus.FORMAT:
            _say(con, f"current  {path}")
            continue
        executor, _ = executor_for(reg, entry)
        new = corpus.migrate(entry, executor.complete)
        for i, step in enumerate(new.steps, 1):
            why = executor.validate(step)
            if why:
                raise CorpusError(f"{path}: step {i}: {why}")
        try:
            corpus.write(path, new, executor.payload_of)  # a symbolic link is written through (files.write_atomic)
        except OSError as exc:
            raise CorpusError(f"{safetext.line(path)}: cannot rewrite it: {exc.strerror or exc}") from None
        _say(con, f"migrated {path} ({entry.format} -> {corpus.FORMAT})")


@cli.command("new-plugin")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File to write (default: NAME.py).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def new_plugin(name: str, output: str | None, force: bool) -> None:
    """Write a small working plugin for a new subsystem NAME to start from."""
    from fuzzer.scaffold import render

    path = Path(output or f"{name}.py")
    if path.exists() and not force:
        raise UsageError(f"{str(path)!r} exists; use --force to overwrite")
    try:
        text = render(name, str(path))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    files.write_output(str(path), "--output", text)
    shown = safetext.line(shlex.quote(str(path)))
    click.echo(f"wrote {shown}; try: ptfuzz --plugin {shown} run {name} --policy permissive --max-examples 200")


#: Ctrl-C and SIGTERM this process received (``main`` and ``_run_interruptible`` count them): a
#: KeyboardInterrupt with none behind it was raised by code, a plugin's, and is its error (exit 2).
_signals = [0]


def _unasked_interrupt(reg: host.Registry, subsystems: list[str], hint: str,
                       raised: BaseException | None = None) -> PluginError:
    """A campaign stopped by a KeyboardInterrupt no signal sent: the code of a plugin of these raised it.

    ``raised``, the interrupt itself: its traceback's innermost plugin frame names the plugin (``host.blame``);
    without it, or when no plugin frame is on it, every plugin of the subsystems is named."""
    who = host.blame(raised) if raised is not None else None
    if who is not None:
        culprit = f"plugin {who!r}"
    else:
        plugins = sorted({p for s in subsystems for p in reg.plugin_versions(s) if p != "builtin"})
        culprit = f"a plugin of {', '.join(subsystems)} ({', '.join(repr(p) for p in plugins)})"
    return PluginError(f"the campaign stopped on a KeyboardInterrupt that no Ctrl-C or SIGTERM sent: code of "
                       f"{culprit} raised it; only Ctrl-C may raise KeyboardInterrupt, a plugin's failure must be "
                       f"an Exception ({hint})")


def main(argv: list[str] | None = None) -> None:
    """Run the command line; every way out is an exit code of its own (see the module docstring).

    Plugin code that raises what is not an ``Exception`` (a ``BaseException``
    of its own, ``SystemExit``, a ``KeyboardInterrupt`` no signal sent) is a
    plugin error naming the plugin (exit 2), found from the traceback where
    the load, the hook calls and the executor did not already wrap it.  A
    plugin that ends the process itself (``os._exit``) cannot be caught in
    one process: the exit code is whatever it chose (``--workers`` reports
    such a worker, ``fuzzer.workers``).
    """
    _tolerant_streams()
    _signals[0] = 0  # tests run main() many times in one process
    restore = _count_ctrl_c()
    try:
        code = cli.main(args=argv, prog_name="ptfuzz", standalone_mode=False)
    except PtfuzzError as exc:
        _error(str(exc))
    except click.exceptions.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt) and not _signals[0]:  # raised by code, not Ctrl-C
            _base_exception(exc.__context__)
        click.echo("ptfuzz: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:  # stdout written directly (export) and its reader gone: nothing to say
        silence_stdout()
        sys.exit(EXIT_CLEAN)
    except click.ClickException as exc:
        _error(exc.format_message())
    except SystemExit as exc:  # ptfuzz's own commands exit through ctx.exit, never sys.exit
        _base_exception(exc)
    except Exception as exc:
        if type(exc).__module__.partition(".")[0] == "redis":  # the --db server went away mid-run
            _error(f"--db: the Redis example database failed: {type(exc).__name__}: {exc}")
        _base_exception(exc)
    except BaseException as exc:  # a plugin's BaseException subclass: one line, not a traceback
        _base_exception(exc)
    finally:
        restore()
    sys.exit(code if isinstance(code, int) else EXIT_CLEAN)


def _count_ctrl_c() -> Callable[[], None]:
    """Count Ctrl-C while ``main`` runs (the handler raises KeyboardInterrupt as Python's own does);
    returns what puts Python's handler back.

    Installed only where Python's default handler is (the main thread, SIGINT not ignored).
    """
    def on_sigint(signum: int, frame: Any) -> None:
        _signals[0] += 1
        raise KeyboardInterrupt

    try:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return lambda: None
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        return lambda: None

    def restore() -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)

    return restore


def _base_exception(exc: BaseException) -> NoReturn:
    """What escaped every wrapper: a plugin's error if plugin code raised it (exit 2), else a ptfuzz bug (exit 3)."""
    who = host.blame(exc)
    what = f"raised SystemExit: sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else f"raised {raised(exc)}"
    if who is not None:
        if isinstance(exc, KeyboardInterrupt):
            hint = "; only Ctrl-C may raise KeyboardInterrupt"
        elif isinstance(exc, SystemExit):
            hint = "; a plugin must not exit, it raises an Exception saying what went wrong"
        elif not isinstance(exc, Exception):
            hint = "; a plugin's failure must be an Exception (not a BaseException), which ptfuzz reports"
        else:
            hint = ""
        _error(f"plugin {who!r} {what}{hint}")
    if isinstance(exc, SystemExit):
        _internal(f"something called sys.exit({exc.code!r}) inside ptfuzz", exc)
    _internal(f"{type(exc).__name__}: {exc}", exc)


def _tolerant_streams() -> None:
    """A character the output encoding cannot represent is printed as a backslash escape, not a crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a stream that cannot change (closed, detached)
                pass


def _one_line(message: str) -> str:
    """One safe line, whatever a plugin's, library's or corpus file's message contains."""
    joined = " ".join(part.strip() for part in message.splitlines() if part.strip())
    return safetext.line(joined, limit=2000)


def _error(message: str) -> NoReturn:
    """One line on stderr, then exit 2."""
    click.echo(f"ptfuzz: error: {_one_line(message)}", err=True)
    sys.exit(EXIT_ERROR)


def _internal(message: str, exc: BaseException) -> NoReturn:
    """A bug in ptfuzz: one line (the traceback with PTFUZZ_TRACEBACK=1), then exit 3."""
    if os.environ.get("PTFUZZ_TRACEBACK"):
        import traceback

        traceback.print_exception(exc)
    click.echo(f"ptfuzz: internal error: {_one_line(message)} (a bug in ptfuzz; "
               f"set PTFUZZ_TRACEBACK=1 to see where)", err=True)
    sys.exit(EXIT_INTERNAL)
