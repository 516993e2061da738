"""Sessions: tests, lint, typecheck, a short fuzz run, benchmarks.  `nox -l` lists them."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "fuzz"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (deterministic: fixed seeds, no example database)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "fuzzer", "tests", "benchmarks", "examples", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".", "mypy")
    session.run("mypy")


@nox.session
def fuzz(session: nox.Session) -> None:
    """A short, time-boxed campaign per builtin policy; findings go to .nox/corpus-out."""
    session.install("-e", ".")
    out = ".nox/corpus-out"
    session.run("ptfuzz", "run", "cxl", "--policy", "linux-fwctl", "--device", "spec",
                "--time", "20", "--seed", "1", "--corpus", out)
    # The blank cheque must find something: exit 1 is the expected outcome here.
    session.run("ptfuzz", "run", "cxl", "--policy", "permissive", "--time", "10", "--seed", "1",
                "--corpus", out, success_codes=[1])


@nox.session(name="fuzz-corpus")
def fuzz_corpus(session: nox.Session) -> None:
    """100,000 hostile corpus files through replay and every exporter (tests/hostile_corpus.py)."""
    session.install("-e", ".[test]")
    session.run("python", "tests/hostile_corpus.py", "--examples", "100000", "--shards", "2", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: executor throughput, overhead against bare Hypothesis, time to finding."""
    session.install("-e", ".")
    session.run("python", "benchmarks/run_all.py", *session.posargs)
