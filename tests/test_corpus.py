"""Every file in corpora/ replays, deterministically, to the verdict it records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuzzer import corpus
from fuzzer.host import Registry
from fuzzer.minimize import is_one_minimal, simplify
from fuzzer.replay import replay, trace

ROOT = Path(__file__).resolve().parent.parent / "corpora"
FILES = sorted(ROOT.rglob("*.json"))


def test_corpus_is_not_empty() -> None:
    assert len([f for f in FILES if f.parent.name == "cxl"]) >= 10


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_corpus_file_replays_to_its_recorded_verdict(registry: Registry, path: Path) -> None:
    entry = corpus.load(path)
    rep = replay(registry, entry)
    assert rep.still_fails, f"{path.name} no longer reproduces {entry.signature}"
    recorded_step = entry.violation["step"]
    hits = [r.index for r in rep.results for v in r.violations if v.signature == entry.signature]
    assert hits[0] == recorded_step == len(entry.steps)
    assert is_one_minimal(rep.executor, entry.steps, entry.signature)
    assert simplify(rep.executor, list(entry.steps), entry.signature) == list(entry.steps)
    # deterministic: a second replay prints exactly the same trace
    assert trace(rep) == trace(replay(registry, entry))
    # and the file is exactly what ptfuzz would write for it today
    assert json.loads(path.read_text()) == corpus.to_json(entry)


def test_done_when_findings_are_in_the_corpus() -> None:
    names = {f.name for f in FILES}
    assert "linux-raw--spec--kernel-owned-integrity--SET_FEATURE--scrub.cycle_hours--tainted.json" in names
    assert "linux-fwctl--vendor--declared-effects--SET_FEATURE--scrub.cycle_hours.json" in names
    assert "linux-fwctl--vendor--kernel-owned-integrity--SET_FEATURE--scrub.cycle_hours--tainted.json" in names
    assert any(n.startswith("permissive--spec--kernel-owned-integrity--") for n in names)
