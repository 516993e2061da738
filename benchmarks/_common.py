"""Shared by the benchmark scripts."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def hide_from_hypothesis() -> None:
    """Keep the benchmark scripts' own literals out of Hypothesis's local-constants pool.

    Hypothesis (6.131+) mixes the integer and string literals of every *local*
    module in ``sys.modules`` into what it generates.  Without this, editing a
    benchmark script, or running it through run_all.py rather than alone,
    changes which sequences ptfuzz draws for the same seed.  ptfuzz's own
    modules still count, as they do in a real run from an editable install.
    Must run before the first Hypothesis test of the process; a no-op if
    Hypothesis's internals move.
    """
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover
        return
    seen = getattr(providers, "_seen_modules", None)
    if not isinstance(seen, set):  # pragma: no cover
        return
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().parent == HERE:
            seen.add(id(module))
