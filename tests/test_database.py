"""``--db``: a rerun re-finds known bugs in its first sequences, from a directory or a real Redis.

The planted hole is a deep one (``tests/planted.py``): ``linux-ioctl`` without
``exclusive-cmds`` on the all-ram device opens ``SET_LSA`` only after a
partition change, a cold reset and an nvdimm bind.  A fresh search needs
hundreds of sequences to meet it; with the database of an earlier run the
stored sequence is replayed before anything is drawn, so it is the first.
Counted in sequences, never seconds, so the test does not depend on the
machine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli
from hypothesis.database import ExampleDatabase, InMemoryExampleDatabase
from servers import RedisServer

from fuzzer import database
from fuzzer.campaign import Campaign
from fuzzer.host import Registry

SIG = "kernel-owned-integrity:cxl:SET_LSA:lsa"
OPS = ["SET_PARTITION_INFO", "cold_reset", "nvdimm_bind", "SET_LSA"]
RUN = ["run", "cxl", "--policy", "linux-ioctl", "--without", "exclusive-cmds", "--device", "all-ram",
       "--max-examples", "5000"]


def campaign(registry: Registry, db: ExampleDatabase | None, seed: int) -> Campaign:
    return Campaign(registry, "cxl", registry.policy("cxl", "linux-ioctl", ["exclusive-cmds"]),
                    registry.device("cxl", "all-ram"), seed=seed, max_examples=5000, database=db,
                    targets=frozenset({SIG}))


def found_at(c: Campaign) -> int:
    """The sequence in which the campaign first saw the planted hole."""
    result = c.run()
    assert SIG in result.findings, f"not found in {result.sequences} sequences"
    finding = result.findings[SIG]
    assert [s.op for s in finding.steps] == OPS
    return finding.sequences


def rerun_is_first(registry: Registry, address: str) -> None:
    first = found_at(campaign(registry, database.open_database(address), seed=1))
    assert first > 5, "the planted hole is too shallow to show what the database buys"
    # another seed, so nothing but the database can make it quick
    again = campaign(registry, database.open_database(address), seed=2)
    assert found_at(again) == 1
    assert again.behaviours > 0


def test_a_rerun_with_the_same_directory_finds_the_known_bug_first(registry: Registry, tmp_path: Path) -> None:
    rerun_is_first(registry, str(tmp_path / "db"))
    # without the database the same seed needs many sequences: the database is what made it quick
    # (seed 2: 15 sequences with the comparison log, fuzzer.cmplog; 122 without)
    assert found_at(campaign(registry, None, seed=2)) > 5


def test_the_database_keeps_seeds_of_new_behaviours(registry: Registry) -> None:
    db = InMemoryExampleDatabase()
    c = campaign(registry, db, seed=1)
    c.run()
    assert c.store is not None
    seeds = c.store.seeds(c._checker)
    assert len(seeds) == c.behaviours  # one sequence per behaviour reached for the first time
    # and one finding per signature seen (removing exclusive-cmds on all-ram opens SET_SHUTDOWN_STATE's too,
    # which a seed may meet before the target)
    assert {sig for sig, _ in c.store.known(c._checker)} == set(c.findings) and SIG in c.findings


def test_only_one_sequence_per_signature_is_kept(registry: Registry) -> None:
    db = InMemoryExampleDatabase()
    c = campaign(registry, db, seed=1)
    c.run()
    assert c.store is not None
    # per signature, the raw prefix was replaced by the minimal one
    assert len(list(db.fetch(c.store.findings_key))) == len(c.findings)
    known = dict(c.store.known(c._checker))
    assert known.keys() == c.findings.keys() and [s.op for s in known[SIG]] == OPS
    assert all(steps == c.findings[sig].steps for sig, steps in known.items())


def test_hostile_values_in_the_database_are_skipped(registry: Registry) -> None:
    """A shared database is as hostile as a corpus file: what does not parse or validate is ignored."""
    db = InMemoryExampleDatabase()
    store = database.Store(db, "cxl", "linux-ioctl~exclusive-cmds", "all-ram")
    for junk in (b"\xff\xfe", b"[]", b'{"steps": [{"actor": "user", "op": "NOPE"}]}', b"{" * 100000,
                 b'{"signature": "x", "steps": [{"actor": "kernel", "action": "no_such_action", "args": {}}]}',
                 b'{"signature": 1, "steps": []}', b"x" * (database.MAX_VALUE + 1)):
        db.save(store.findings_key, junk)
        db.save(store.seeds_key, junk)
    c = campaign(registry, db, seed=1)
    assert found_at(c) > 20  # nothing usable was stored: a normal search, not a crash


class _Failing(InMemoryExampleDatabase):
    """A database whose server goes away mid-run."""

    def save(self, key: bytes, value: bytes) -> None:
        raise ConnectionError("Connection refused")  # an OSError, as a dropped socket is


def test_a_database_that_fails_mid_run_is_a_warning(registry: Registry) -> None:
    warnings: list[str] = []
    c = campaign(registry, _Failing(), seed=1)
    assert c.store is not None
    c.store.warn = warnings.append
    found_at(c)  # the run goes on
    assert len(warnings) == 1 and "--db failed" in warnings[0] and "goes on without it" in warnings[0]


def test_the_command_line_rerun_prints_the_known_bug_at_sequence_1(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "db")
    assert run_cli([*RUN, "--seed", "1", "--corpus", str(tmp_path / "c1"), "--db", db]) == 1
    first = capsys.readouterr().out
    assert run_cli([*RUN, "--seed", "2", "--corpus", str(tmp_path / "c2"), "--db", db]) == 1
    again = capsys.readouterr().out
    pattern = re.compile(rf"FOUND \[hole\] {re.escape(SIG)} \(4 steps, after [0-9.]+s, sequence (\d+)\)")
    m1, m2 = pattern.search(first), pattern.search(again)
    assert m1 and m2, (first, again)
    assert int(m1.group(1)) > 20 and int(m2.group(1)) == 1


@pytest.mark.parametrize("address, words", [
    ("http://example.invalid/db", ["unknown scheme 'http'", "redis://"]),
    ("s3://bucket/db", ["unknown scheme 's3'"]),
    ("redis://127.0.0.1:1/0", ["cannot use this Redis"]),
    ("rediss://127.0.0.1:1/0", ["cannot use this Redis"]),
    ("unix:///nonexistent/ptfuzz-redis.sock", ["cannot use this Redis"]),
    ("redis://[not-a-host/0", ["Redis"]),
])
def test_an_address_it_cannot_serve_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch, address: str,
                                                      words: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_cli(["run", "cxl", "--policy", "permissive", "--max-examples", "5", "--corpus", "c",
                    "--db", address]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ptfuzz: error: --db ") and address[:12] in err, err
    for word in words:
        assert word in err, err
    assert sorted(os.listdir(tmp_path)) == ["c"] or sorted(os.listdir(tmp_path)) == []  # no directory named 'redis:'


# ----------------------------------------------------------------------------- a real Redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A throw-away redis-server on a random loopback port and a unix socket: (redis://..., unix://...)."""
    server = RedisServer(tmp_path)
    try:
        yield server.url, server.unix_url
    finally:
        server.stop()


def test_a_rerun_with_the_same_redis_finds_the_known_bug_first(registry: Registry,
                                                                 redis_server: tuple[str, str]) -> None:
    rerun_is_first(registry, redis_server[0])


def test_a_redis_unix_socket_serves_too(registry: Registry, redis_server: tuple[str, str]) -> None:
    database.check(redis_server[1])
    rerun_is_first(registry, redis_server[1])


def test_tls_to_a_plain_redis_is_an_error(redis_server: tuple[str, str], capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    address = redis_server[0].replace("redis://", "rediss://")
    assert run_cli(["run", "cxl", "--policy", "permissive", "--max-examples", "5", "--corpus", str(tmp_path),
                    "--db", address]) == 2
    assert "cannot use this Redis" in capsys.readouterr().err


def test_a_redis_that_goes_away_mid_run_is_a_warning(registry: Registry, redis_server: tuple[str, str],
                                                     tmp_path: Path) -> None:
    warnings: list[str] = []
    c = campaign(registry, database.open_database(redis_server[0]), seed=1)
    assert c.store is not None
    c.store.warn = warnings.append
    c.store.db.redis.shutdown(nosave=True)  # type: ignore[union-attr]
    found_at(c)
    assert len(warnings) == 1 and "--db failed" in warnings[0]
