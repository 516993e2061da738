"""Sessions: tests, lint, typecheck, a short fuzz run, benchmarks.  `nox -l` lists them.

`nox -s hard_bugs -- --seeds 1-3 --budget 10` runs the search-power benchmark
(ptfuzz against a random walk on every planted hole; see benchmarks/hard_bugs.py).
"""

from __future__ import annotations

from pathlib import Path

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
    session.run("ruff", "check", "fuzzer", "plugins", "tests", "benchmarks", "examples", "noxfile.py")


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


@nox.session(name="bench-cluster")
def bench_cluster(session: nox.Session) -> None:
    """Sequences/s in one process and on a local Dask cluster of 1 and 2 workers, and the per-task overhead.

    Arguments go to the script (``--seconds 10 --slice 5 --json OUT``).
    """
    session.install("-e", ".[cluster]")
    session.run("python", "benchmarks/bench_cluster.py", *session.posargs)


@nox.session
def hard_bugs(session: nox.Session) -> None:
    """Search power: time to bug on every planted hole, ptfuzz's search modes against a random walk.

    Arguments go to the script (``--seeds 1-10 --budget 30 --holes SUBSTR --modes ... --json OUT``,
    ``--rss MINUTES``, ``--workers-check SECONDS``).  pytest is installed too: the planted holes on
    the test-only ``honest-immediate`` device come from tests/conftest.py.
    """
    session.install("-e", ".", "pytest")
    session.run("python", "benchmarks/hard_bugs.py", *session.posargs)


@nox.session(name="bench-prove")
def bench_prove(session: nox.Session) -> None:
    """The bounded proof's cost: linux-ioctl, linux-fwctl and linux-raw to depth 3, and every planted hole of
    at most 4 steps at its known minimum (benchmarks/bench_prove.py; ``-- --reference`` adds the CPU ratio
    against running every step, ``-- --jobs N`` sets the processes per proof (default: the CPUs available),
    ``-- --json OUT`` the figures).  pytest: the holes' test-only devices."""
    session.install("-e", ".", "pytest")
    session.run("python", "benchmarks/bench_prove.py", *session.posargs)


@nox.session
def conformance(session: nox.Session) -> None:
    """The real kernel as the judge: build or reuse the kernels, boot them under QEMU, run conformance.

    Needs root for the build dependencies (``apt-get``; skipped when they are there) and nothing else:
    QEMU, busybox, the kernel source and Debian's 6.12 image come from Debian's archive into
    ``~/.cache/ptfuzz``.  Runs 2,000 steps per Linux policy on the ``qemu`` device against 7.3, 600 of
    linux-ioctl against Debian's own 6.12 (no build: fetched and booted in 40 s from a cold cache, the
    600 steps take 100 s), and the historical fwctl size findings on the kernel with their fix reverted.
    Arguments go to ``ptfuzz live conformance`` (``--steps 500``).
    """
    session.run("bash", "plugins/ptfuzz_cxl/live/deps.sh", external=True)
    session.install("-e", ".")
    session.run("ptfuzz", "live", "build")
    session.run("ptfuzz", "live", "conformance", "--policy", "linux-ioctl", "--policy", "linux-raw",
                "--policy", "linux-fwctl", "--json", ".nox/conformance.json",
                "--markdown", ".nox/conformance.md", *session.posargs)
    session.run("ptfuzz", "live", "conformance", "--kernel", "debian-6.12", "--policy", "linux-ioctl",
                "--steps", "600", "--json", ".nox/conformance-debian-6.12.json", *session.posargs)
    session.run("ptfuzz", "live", "run", "--kernel", "7.3-fwctl-unchecked-sizes", "--policy", "auto",
                "--device", "qemu", "-q",
                *sorted(str(p) for p in Path("corpora/cxl").glob("linux-fwctl-unchecked-sizes--*.json")))
