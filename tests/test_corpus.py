"""Every file in corpora/ replays, deterministically, to the verdict it records."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from committed import corpus_files

from fuzzer import corpus
from fuzzer.host import Registry
from fuzzer.minimize import is_one_minimal, simplify
from fuzzer.replay import replay, trace

FILES = corpus_files()  # what git tracks: a user's own run may have written into corpora/ too


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
    steps = rep.entry.steps  # an older format's steps, migrated
    assert is_one_minimal(rep.executor, steps, entry.signature)
    assert simplify(rep.executor, list(steps), entry.signature) == list(steps)
    # deterministic: a second replay prints exactly the same trace
    assert trace(rep) == trace(replay(registry, entry))
    # and the file is exactly what ptfuzz writes in its format: an older format is read
    # (migrated in memory), never rewritten
    doc = json.loads(path.read_text())
    if entry.format == corpus.FORMAT:
        assert doc == corpus.to_json(entry, rep.executor.payload_of)
    else:
        assert entry.format in corpus.READS and doc == {**corpus.to_json(entry), "format": entry.format}


def test_an_older_format_migrates_to_the_same_replay(registry: Registry, tmp_path: Path) -> None:
    """``ptfuzz migrate`` rewrites a /1 file as /2 (sizes made explicit); its replay is unchanged."""
    from fuzzer.cli import main

    olds = [f for f in FILES if corpus.load(f).format != corpus.FORMAT]
    assert olds, "the committed corpus keeps files of the older format, to prove they still load"
    for path in olds[:5]:
        copy = tmp_path / path.name
        copy.write_bytes(path.read_bytes())
        before = [line for line in trace(replay(registry, corpus.load(copy)))[1:]]
        with pytest.raises(SystemExit) as done:
            main(["migrate", str(copy)])
        assert done.value.code in (0, None)
        new = corpus.load(copy)
        assert new.format == corpus.FORMAT
        assert [line for line in trace(replay(registry, new))[1:]] == before
        assert path.read_bytes() != copy.read_bytes() or not any(s.actor == "user" for s in new.steps)


def test_done_when_findings_are_in_the_corpus() -> None:
    names = {f.name for f in FILES}
    # RAW Set Feature behind EDAC's back: 7.3.4 refuses it (Features are fwctl's), the code before did not
    assert "linux-raw-features-allowed--spec--kernel-owned-integrity--SET_FEATURE--scrub.cycle_hours--tainted.json" \
        in names
    assert "linux-fwctl--vendor--declared-effects--SET_FEATURE--scrub.cycle_hours.json" in names
    assert "linux-fwctl--vendor--kernel-owned-integrity--SET_FEATURE--scrub.cycle_hours--tainted.json" in names
    assert any(n.startswith("permissive--spec--kernel-owned-integrity--") for n in names)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_every_corpus_file_exports_to_c_that_compiles(registry: Registry, tmp_path: Path) -> None:
    exporter = registry.exporter("c", "cxl")
    for path in [f for f in FILES if f.parent.name == "cxl"]:
        src = tmp_path / (path.stem + ".c")
        src.write_text(exporter.render(replay(registry, corpus.load(path))))
        done = subprocess.run(["cc", "-c", "-o", str(tmp_path / "x.o"), "-Wall", "-Wextra", "-Werror", str(src)],
                              capture_output=True, text=True)
        assert done.returncode == 0, f"{path.name}: {done.stderr}"
    text = src.read_text()
    assert "CXL_MEM_SEND_COMMAND _IOWR(0xCE, 2" in text and "FWCTL_RPC _IO(0x9A, 1)" in text


def test_c_export_encodes_the_kernel_structs(registry: Registry) -> None:
    from ptfuzz_cxl.export_c import ENCODERS

    _, partition = ENCODERS["SET_PARTITION_INFO"]
    # in 256 MiB units (CXL_CAPACITY_MULTIPLIER), 10 bytes as cxl_mem_commands[] has it
    assert partition({"volatile": 4, "immediate": True}) == (4).to_bytes(8, "little") + b"\x01\x00"
    _, set_feat = ENCODERS["SET_FEATURE"]
    payload = set_feat({"uuid": "96dad7d6-fde8-482b-a733-75774e06db8a", "value": 24})
    assert len(payload) == 32 + 2 and payload[:4] == bytes.fromhex("96dad7d6") and payload[32:] == b"\x18\x01"
