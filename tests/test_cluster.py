"""Campaigns on a real Dask cluster, findings shared through a real Redis (issue 21).

A ``LocalCluster`` of two worker processes stands for two machines, a
redis-server on a loopback port for the shared store.  The planted hole
(``linux-ioctl`` without ``immediate-flag``: ``SET_PARTITION_INFO`` moves the
active partition under the kernel) is found in the first sequences of every
seed, so assertions are on sets of signatures and files, not on timing.
Killing a worker and stopping Redis happen at the first finding, so they are
mid-run by construction.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import RedisServer

from fuzzer import corpus
from fuzzer.campaign import Finding
from fuzzer.cluster import Engine, WorkerError
from fuzzer.host import Registry
from fuzzer.replay import replay
from fuzzer.shared import Shared, owner_id, scope_key
from fuzzer.slices import Entry

distributed = pytest.importorskip("distributed", reason="Dask is not installed: pip install 'ptfuzz[cluster]'")

SIG = "kernel-owned-integrity:cxl:SET_PARTITION_INFO:partition.active_volatile"
ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"}


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A LocalCluster of two worker processes (one thread each): the address of its scheduler."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 2}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=":0", silence_logs=logging.CRITICAL)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def entry(*, seconds: float | None = None, max_examples: int | None = None, streams: int = 2,
          seed: int = 1) -> Entry:
    return Entry(index=0, label="cxl linux-ioctl~immediate-flag spec", plugin_files=(), subsystem="cxl",
                 policy="linux-ioctl", without=("immediate-flag",), knobs=(), device="spec", seed=seed,
                 step_count=None, accept_tainted=False, search="native", seconds=seconds,
                 max_examples=max_examples, streams=streams)


class Seen:
    """What the engine announced: each (signature, owner) in order; ``hooks`` run on each, given the worker."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str | None]] = []
        self.hooks: list[Any] = []

    def __call__(self, e: Entry, f: Finding, worker: str, owner: str | None) -> None:
        self.found.append((f.signature, owner))
        for hook in self.hooks:
            hook(worker)


def files_of(corpus_dir: Path) -> list[Path]:
    return sorted((corpus_dir / "cxl").glob("*.json"))


def assert_saved_once_and_replayable(registry: Registry, corpus_dir: Path, findings: dict[str, Finding]) -> None:
    """Every finding has exactly one file, it holds that signature, and it still fails when replayed."""
    paths = files_of(corpus_dir)
    by_sig = Counter(corpus.load(p).signature for p in paths)
    assert set(by_sig) == set(findings), (sorted(by_sig), sorted(findings))
    assert all(n == 1 for n in by_sig.values()), by_sig
    assert not list((corpus_dir / "cxl").glob(".ptfuzz-tmp-*"))
    for p in paths:
        assert replay(registry, corpus.load(p)).still_fails, p


def run_engine(registry: Registry, address: str, corpus_dir: Path, e: Entry, seen: Seen, *,
               db: str | None = None, seconds: float | None = None,
               warnings: list[str] | None = None) -> tuple[Engine, dict[int, Any]]:
    shared = Shared(db, owner_id(corpus_dir))
    engine = Engine(address)
    with engine:
        got, _ = engine.run(registry, [e], deadline=None if seconds is None else time.time() + seconds, db=db,
                            corpus_dir=str(corpus_dir), shared=shared, on_found=seen,
                            warn=(warnings if warnings is not None else []).append)
    return engine, got


# ----------------------------------------------------------------------------- the engine


def test_slices_on_two_workers_save_each_finding_once_and_every_file_replays(
        registry: Registry, scheduler: str, tmp_path: Path) -> None:
    seen = Seen()
    engine, got = run_engine(registry, scheduler, tmp_path, entry(max_examples=2500), seen)
    result = got[0]
    assert SIG in result.findings
    assert result.sequences >= 2500
    # 1000 + 1000 on the two workers (SLICE_EXAMPLES), then 500 on the first free (250 + 250 if both are)
    assert len(engine.submitted) in (3, 4), engine.submitted
    assert sorted(engine.submitted) == sorted((r.entry, r.number) for r in engine.returned)
    assert len({r.worker for r in engine.returned}) == 2  # both workers ran slices
    # the first two slices start from nothing; a later one from what the first to finish learnt
    assert [r.adopted for r in engine.returned if r.number < 2] == [0, 0]
    assert all(r.adopted > 0 for r in engine.returned if r.number >= 2), [(r.number, r.adopted)
                                                                        for r in engine.returned]
    assert Counter(s for s, _ in seen.found) == Counter(set(result.findings))  # each announced once
    assert_saved_once_and_replayable(registry, tmp_path, result.findings)


def test_a_worker_killed_mid_slice_loses_nothing(registry: Registry, scheduler: str, tmp_path: Path) -> None:
    """SIGKILL to the worker process that reported the first finding: its slice is retried elsewhere."""
    client = distributed.Client(scheduler)
    pids = client.run(os.getpid)  # address -> pid
    names = {str(w["name"]): addr for addr, w in client.scheduler_info()["workers"].items()}
    client.close()
    seen = Seen()
    killed: list[int] = []

    def kill(worker: str) -> None:  # at the first finding: its worker is mid-slice
        if not killed:
            killed.append(pids[names[worker]])
            os.kill(killed[0], signal.SIGKILL)

    seen.hooks.append(kill)
    shared = Shared(None, owner_id(tmp_path))
    with Engine(scheduler) as engine:
        got, interrupted = engine.run(registry, [entry(seconds=8.0, streams=2)], deadline=time.time() + 6,
                                      db=None, corpus_dir=str(tmp_path), shared=shared, on_found=seen)
    assert killed, "no finding was reported, so no worker was killed"
    result = got[0]
    assert not interrupted
    announced = [s for s, _ in seen.found]
    assert len(announced) == len(set(announced))  # a retried slice re-finds, nothing is announced twice
    assert set(announced) <= set(result.findings) and SIG in result.findings
    # every slice submitted came back: the killed one through its retry on another worker
    assert sorted(engine.submitted) == sorted((r.entry, r.number) for r in engine.returned)
    assert all(r.error is None for r in engine.returned)
    assert_saved_once_and_replayable(registry, tmp_path, result.findings)


def test_redis_stopped_mid_run_is_one_warning_and_loses_nothing(registry: Registry, scheduler: str,
                                                                 redis: RedisServer, tmp_path: Path) -> None:
    seen = Seen()
    seen.hooks.append(lambda worker: redis.stop())
    warnings: list[str] = []
    _, got = run_engine(registry, scheduler, tmp_path, entry(seconds=6.0), seen, db=redis.url, seconds=3.0,
                        warnings=warnings)
    result = got[0]
    assert redis.proc.poll() is not None
    assert len(warnings) == 1 and "--db" in warnings[0] and "goes on" in warnings[0], warnings
    assert SIG in result.findings
    assert_saved_once_and_replayable(registry, tmp_path, result.findings)


def test_the_shared_redis_holds_claims_and_coverage(registry: Registry, scheduler: str, redis: RedisServer,
                                                    tmp_path: Path) -> None:
    """After a run the Redis holds the native search's memory, every claim, and the slices' counts."""
    seen = Seen()
    _, got = run_engine(registry, scheduler, tmp_path, entry(max_examples=600), seen, db=redis.url)
    result = got[0]
    label = registry.policy("cxl", "linux-ioctl", ["immediate-flag"]).label
    scope = scope_key("cxl", label, "spec")
    shared = Shared(redis.url, owner_id(tmp_path))
    claims = shared.known(scope)
    assert set(claims) == set(result.findings)
    assert all(claims[s] == len(f.steps) for s, f in result.findings.items())
    counts = shared.counts(scope)
    assert counts["sequences"] == result.sequences and counts["slices"] >= 2
    keys = {k.decode() for k in redis.keys()}
    assert any(k.endswith(":findings") for k in keys) and any(k.endswith(":seeds") for k in keys), keys


def test_a_claim_belongs_to_one_owner(redis: RedisServer) -> None:
    a, b = Shared(redis.url, "host-a:/corpus"), Shared(redis.url, "host-b:/corpus")
    assert a.claim("s", "sig", 3) is None  # first: ours
    assert b.claim("s", "sig", 1) == "host-a:/corpus"  # taken, even with a shorter sequence
    assert a.claim("s", "sig", 2) is None and a.known("s") == {"sig": 2}  # the owner may improve it
    import redis as redis_py

    redis_py.Redis.from_url(redis.url).hset("ptfuzz:known:s", "junk", b"\xff{")
    assert a.known("s") == {"sig": 2}  # what does not parse is not a claim


# ----------------------------------------------------------------------------- the command line


def ptfuzz(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "fuzzer", *(str(a) for a in args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)


def test_two_campaigns_sharing_one_redis_never_save_a_signature_twice(
        registry: Registry, scheduler: str, redis: RedisServer, tmp_path: Path) -> None:
    """Two clients (two machines' campaigns), each one slice at a time on the cluster, one Redis."""
    procs = [ptfuzz("run", "cxl", "--policy", "linux-ioctl", "--without", "immediate-flag", "--seed", seed,
                    "--max-examples", "800", "--cluster", scheduler, "--workers", "1", "--db", redis.url,
                    "--corpus", tmp_path / name)
             for seed, name in ((1, "a"), (2, "b"))]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 1, (out, err)
        assert "Traceback" not in err and "FOUND" in out
    a = {corpus.load(p).signature: p for p in files_of(tmp_path / "a")}
    b = {corpus.load(p).signature: p for p in files_of(tmp_path / "b")}
    assert SIG in a.keys() | b.keys()
    assert not a.keys() & b.keys(), sorted(a.keys() & b.keys())
    both = "".join(out for out, _ in outs)
    assert "(saved by " in both  # the later campaign names who holds what it found again
    # the coverage counters are the two campaigns' together: the later one to finish saw both
    assert max(int(out.split("shared --db: ")[1].split(" sequences")[0].replace(",", "")) for out, _ in outs) >= 1600
    for p in [*a.values(), *b.values()]:
        assert replay(registry, corpus.load(p)).still_fails


def test_in_process_runs_claim_too(registry: Registry, redis: RedisServer, tmp_path: Path) -> None:
    """``--workers 1`` without ``--cluster`` runs in one process, and still claims before it writes."""
    runs = []
    for name in ("a", "b"):
        p = ptfuzz("run", "cxl", "--policy", "linux-ioctl", "--without", "immediate-flag", "--seed", "1",
                   "--max-examples", "300", "--db", redis.url, "--corpus", tmp_path / name)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 1 and "Traceback" not in err, (out, err)
        runs.append(out)
    a = {corpus.load(p).signature for p in files_of(tmp_path / "a")}
    assert SIG in a
    assert files_of(tmp_path / "b") == []  # the same seed finds the same bugs: all of them a's
    assert f"{SIG} " in runs[1] and "(saved by " in runs[1]
    assert all(corpus.load(p).signature in runs[1] for p in files_of(tmp_path / "a"))


def test_campaign_file_on_the_cluster(registry: Registry, scheduler: str, redis: RedisServer,
                                      tmp_path: Path) -> None:
    plan = tmp_path / "c.toml"
    plan.write_text('budget = 6\nseed = 1\n\n'
                    '[[entry]]\nsubsystem = "cxl"\npolicy = "linux-ioctl"\nwithout = ["immediate-flag"]\n'
                    'device = "spec"\n\n'
                    '[[entry]]\nsubsystem = "cxl"\npolicy = "permissive"\ndevice = "spec"\n')
    start = time.monotonic()
    p = ptfuzz("campaign", plan, "--cluster", scheduler, "--corpus", tmp_path / "c", "--json", tmp_path / "s.json",
               "--db", redis.url)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1, (out, err)
    assert time.monotonic() - start < 6 + 15  # the budget is one deadline for the whole cluster
    import json

    doc = json.loads((tmp_path / "s.json").read_text())
    sigs = [f["signature"] for r in doc["runs"] for f in r["findings"]]
    assert SIG in sigs
    names = [p.name for p in files_of(tmp_path / "c")]
    assert len(names) == len(set(names)) == len(sigs)
    label = registry.policy("cxl", "linux-ioctl", ["immediate-flag"]).label
    assert SIG in Shared(redis.url).known(scope_key("cxl", label, "spec"))  # claimed through --db


def test_an_unreachable_scheduler_is_exit_2_naming_it(tmp_path: Path) -> None:
    p = ptfuzz("run", "cxl", "--policy", "permissive", "--max-examples", "10", "--cluster", "tcp://127.0.0.1:9",
               "--corpus", tmp_path)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2, (out, err)
    assert err.startswith("ptfuzz: error: --cluster tcp://127.0.0.1:9: cannot reach the Dask scheduler"), err
    assert "Traceback" not in err


def test_a_failing_slice_is_one_line_naming_the_worker(registry: Registry, scheduler: str, tmp_path: Path) -> None:
    """A plugin file the workers cannot load (here: missing there) fails the slice, and the run, in one line."""
    bad = attrs_evolve(entry(max_examples=50), plugin_files=(str(tmp_path / "only-on-the-client.py"),))
    with pytest.raises(WorkerError, match=r"^worker w\d \(plugins: .*only-on-the-client.py\): .*only-on-the-client"):
        run_engine(registry, scheduler, tmp_path, bad, Seen())


def attrs_evolve(e: Entry, **changes: Any) -> Entry:
    import attrs

    return attrs.evolve(e, **changes)


def test_a_hostile_claim_in_redis_is_data_not_terminal_control() -> None:
    """A shared Redis is as hostile as a corpus file: a claim's owner is printed escaped, a claim that is not
    one is ignored."""
    import io

    from rich.console import Console

    from fuzzer import cli, shared
    from fuzzer.spec import Violation
    from fuzzer.world import Step

    evil = "host\x1b[2J\x1b]0;pwned\x07[bold]x[/bold]"
    import json

    assert shared._claim(json.dumps({"owner": evil, "steps": 2}).encode()) == (evil, 2)
    for junk in (b"\xff", b"[]", b'{"owner": 1, "steps": 2}', b'{"owner": "a", "steps": true}',
                 b'{"owner": "a", "steps": -1}'):
        assert shared._claim(junk) is None
    f = Finding(Violation("access", "caps", "m", op="SET_FEATURE", step=1, subsystem="cxl"),
                [Step("kernel", "cold_reset")], found_at=0.1, sequences=1)
    for width, terminal in ((200, False), (40, True)):
        out = io.StringIO()
        con = Console(file=out, width=width, force_terminal=terminal, soft_wrap=not terminal, color_system=None)
        cli._print_finding(con, f, True, owner=evil)
        text = out.getvalue()
        assert "\x1b" not in text and "\x07" not in text and "saved by" in text and "[bold]" in text
