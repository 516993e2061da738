"""Issue 20: the native search learns which values a step's arguments were compared with (``fuzzer.cmplog``)."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest
import vault

from fuzzer import corpus, explore, host
from fuzzer.campaign import Campaign
from fuzzer.cmplog import LOG, Traced, traced_args
from fuzzer.explore import Explorer


@pytest.fixture(scope="module")
def reg() -> host.Registry:
    return host.load(extra=[vault])


def test_a_traced_int_records_what_it_is_compared_with_in_either_order() -> None:
    token = LOG.begin()
    args = traced_args({"key": 5, "flag": True, "name": "x"}, frozenset({"key", "flag"}), token)
    key = args["key"]
    assert (key == 7, 3 < key, key in (1, 9), 0 <= key <= 100) == (False, True, False, True)
    assert LOG.end() == [("key", 7), ("key", 3), ("key", 1), ("key", 9), ("key", 0), ("key", 100)]
    assert args["flag"] is True and type(args["flag"]) is bool  # a bool is not an int argument
    assert args["name"] == "x"


def test_a_traced_int_of_an_ended_step_records_nothing_and_copies_are_plain_ints() -> None:
    key = traced_args({"key": 5}, frozenset({"key"}), LOG.begin())["key"]
    LOG.end()
    LOG.begin()
    _ = (key == 6, key < 3, key in (1, 2))
    assert LOG.end() == []  # stored in a device's state, it is inert
    for copied in (copy.copy(key), copy.deepcopy(key), pickle.loads(pickle.dumps(key))):
        assert type(copied) is int and copied == 5
    assert json.dumps({"key": key}) == '{"key": 5}' and repr(key) == "5" and hash(key) == hash(5)
    assert isinstance(key, Traced)


def _sequences_to_hole(reg: host.Registry, seed: int, limit: int) -> int | None:
    ex = reg.executor("vault", reg.policy("vault", "vault-open"), reg.device("vault", None))
    x = Explorer(ex, seed=seed, steps=ex.subsystem.steps)
    hit: list[int] = []

    def report(steps: list[object], violations: list[object]) -> None:
        if not hit and any(getattr(v, "signature", None) == vault.SIGNATURE for v in violations):
            hit.append(x._run)
            assert all(type(v) is int for s in steps for v in s.args.values() if isinstance(v, int)), steps  # type: ignore[attr-defined]

    while not hit and x._run < limit:
        x.sequence(report, lambda v: False)
    return hit[0] if hit else None


def test_a_key_out_of_2_to_the_32_is_learnt_from_the_comparison(reg: host.Registry,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    found = [_sequences_to_hole(reg, seed, 300) for seed in range(1, 6)]
    assert all(n is not None for n in found), found
    monkeypatch.setattr(explore, "TRACE", 0.0)  # the same search without the comparison log: no draw reaches it
    assert [_sequences_to_hole(reg, seed, 300) for seed in range(1, 3)] == [None, None]


def test_the_finding_is_minimized_to_the_key_and_the_change_and_saved_as_plain_data(reg: host.Registry,
                                                                                      tmp_path: Path) -> None:
    c = Campaign(reg, "vault", reg.policy("vault", "vault-open"), reg.device("vault", None), seed=2,
                 max_examples=400, corpus_dir=tmp_path)
    result = c.run()
    finding = result.findings[vault.SIGNATURE]
    assert [(s.op, dict(s.args)) for s in finding.steps] == [("UNLOCK", {"key": vault.KEY}),
                                                             ("SET_CONFIG", {"value": finding.steps[1].args["value"]})]
    (saved,) = (tmp_path / "vault").glob("*.json")
    entry = corpus.load(saved)
    assert type(entry.steps[0].args["key"]) is int and entry.steps[0].args["key"] == vault.KEY


def test_a_search_restricted_to_some_moves_draws_and_traces_them(registry: host.Registry) -> None:
    """The live conformance run keeps only some moves (``Explorer.use_moves``): every per-move table follows."""
    ex = registry.executor("rdma", registry.policy("rdma", "linux-devx"), registry.device("rdma", "spec"))
    x = Explorer(ex, seed=1, steps=ex.subsystem.steps)
    opener = x.moves[x.openers[0]]
    kept = [m for m in x.moves if m.actor == "user"][::-1]  # another order and no kernel actions
    x.use_moves(kept)
    assert [m.index for m in x.moves] == list(range(len(kept)))
    assert [x.moves[i].op for i in x.openers] == [opener.op]
    assert len(x.compared) == len(x.worked) == len(x.traceable) == len(x.moves)
    for _ in range(50):
        x.sequence(lambda steps, vs: None, lambda v: True)  # draws, traces and learns on the new numbering
    assert all(s.actor == "user" for c in x.archive for s in c.steps)
