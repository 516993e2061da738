"""Everything ptfuzz does with Hypothesis's engine, in one place, applied around a run.

The ``hypothesis`` search runs the subsystem's state machine (``machine.py``)
in rounds (``Campaign``); this module runs one round, opens the example
database, and holds the one workaround for Hypothesis internals, which is
applied only while a round runs, so importing ptfuzz never changes how a
user's own Hypothesis tests generate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis.database import ExampleDatabase
from hypothesis.stateful import run_state_machine_as_test

from fuzzer.errors import ModelError
from fuzzer.machine import OutOfBudget, Session, ShrinkBudget, ViolationFound, build_machine


def run_round(session: Session, examples: int, *, steps: int, database: ExampleDatabase | None, seed: int) -> str:
    """One Hypothesis run of at most ``examples`` test cases of ``steps`` steps, seeded with ``seed``:
    ``failed`` (a violation, or shrinking cut short: another round may find more), ``spent`` (the
    session's budget is) or ``ran`` (all ``examples`` ran; the campaign decides what that means)."""
    machine = build_machine(session)
    phases = [Phase.generate, Phase.shrink]
    if database is not None:
        phases.insert(0, Phase.reuse)
    conf = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=database,
        verbosity=Verbosity.quiet,
        # Off: with it on, Hypothesis stops generating 10 s after the first
        # bug, which makes results depend on machine speed.  Rounds give
        # us every distinct bug instead, deterministically.
        report_multiple_bugs=False,
        phases=phases,
        derandomize=False,
        print_blob=False,
    )
    seeded: Any = hypothesis.seed(seed)(machine)
    try:
        with seed_only_generation():
            run_state_machine_as_test(seeded, settings=conf)
    except OutOfBudget:
        return "spent"
    except ShrinkBudget:
        return "failed"
    except ModelError:
        raise
    except BaseException as exc:
        errors = leaves(exc)
        others = [e for e in errors if not isinstance(e, ViolationFound)]
        if others:
            if isinstance(others[0], (KeyboardInterrupt, ModelError)):
                raise others[0] from None
            raise
        return "failed"
    return "ran"




@contextlib.contextmanager
def seed_only_generation() -> Iterator[None]:
    """Make a seeded campaign explore the same sequences wherever it runs, for the length of a round.

    Hypothesis (>= 6.131) mixes literals found in *local* source modules into
    what it draws, and the pool grows as modules are imported.  For ptfuzz
    that made a seed's exploration depend on the install mode (editable or
    not), the working directory and even test order.  Parameters here are
    small declared ranges, so the pool buys nothing; it is emptied while the
    round runs and restored after.  Hypothesis also caches the constants it
    picked per kind of draw (``CONSTANTS_CACHE``), filled by whatever ran
    before in the process (a user's own Hypothesis test); the round gets an
    empty cache of its own, or an earlier test's pool would leak in.  Uses
    private Hypothesis hooks and does nothing if they disappear.
    """
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover
        yield
        return
    empty = getattr(providers, "_local_constants", None)
    original = getattr(providers, "_get_local_constants", None)
    cache = getattr(providers, "CONSTANTS_CACHE", None)
    if empty is None or original is None or cache is None:
        yield
        return
    blank = type(empty)(**{f: type(getattr(empty, f))() for f in ("integers", "bytes", "strings")},
                        floats=type(empty.floats)(key=empty.floats.key))
    providers._get_local_constants = lambda: blank
    providers.CONSTANTS_CACHE = type(cache)(getattr(cache, "max_size", 1024))
    try:
        yield
    finally:
        providers._get_local_constants = original
        providers.CONSTANTS_CACHE = cache


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for e in exc.exceptions:
            out.extend(leaves(e))
        return out
    return [exc]


def open_database(spec: str | None) -> ExampleDatabase | None:
    """``--db``: a directory or a Redis address (``fuzzer.database.open_database``, which both searches use)."""
    from fuzzer.database import open_database as open_db

    return open_db(spec)
