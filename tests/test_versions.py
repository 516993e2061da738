"""Every Linux policy names the kernel it encodes, and every place a user sees a policy shows it.

The version is part of the policy record (``Policy.kernel``, or ``Policy.predates``
for a historical policy); a corpus file names a policy, never a version, so a file
from a bug report cannot claim one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from fuzzer import corpus, host
from fuzzer.errors import CorpusError
from fuzzer.replay import replay, trace

BUILTIN = ("cxl", "rdma", "netdev", "gpu")
ROOT = Path(__file__).resolve().parent.parent
#: a finding of features.c before its size checks, closed by 7.3.4
FILE = ROOT / "corpora/cxl/linux-fwctl-unchecked-sizes--spec--out-of-bounds--cxl_get_feature--rpc_out.json"
BEFORE = "before the in_len/out_len checks in features.c (in 7.2.6; commit not found)"


def test_every_builtin_linux_policy_names_its_kernel() -> None:
    reg = host.load()
    linux = [(sub, name, pol) for sub, pols in reg.policies.items() for name, pol in pols.items()
             if name.startswith("linux-") and reg.provider[("policy", sub, name)] in BUILTIN]
    assert {sub for sub, _, _ in linux} == set(BUILTIN)  # every builtin plugin has Linux policies
    unnamed = [f"{sub}:{name}" for sub, name, pol in linux if not (pol.kernel or pol.predates)]
    assert unnamed == [], "say kernel='7.3.4' (what it was read from), predates='COMMIT', or 'unversioned'"
    for _, name, pol in linux:
        assert pol.version == (f"before {pol.predates}" if pol.predates else pol.kernel), name


def test_the_cxl_policies_are_7_3_4_and_their_history() -> None:
    pols = host.load().policies["cxl"]
    assert {n: p.version for n, p in pols.items() if not p.predates and n.startswith("linux-")} == {
        "linux-ioctl": "7.3.4", "linux-raw": "7.3.4", "linux-fwctl": "7.3.4"}
    assert pols["linux-fwctl-unchecked-sizes"].version == BEFORE
    assert pols["linux-raw-unsized-payload"].version == "before 60b5d1f68338"
    assert pols["permissive"].version == ""  # a blank cheque encodes no kernel
    # each 7.3.4 check cites its file, function and the release it was read from
    rules = {r.name: r.cite for r in pols["linux-fwctl"].rules}
    for name, function in (("cxlctl-in-len", "cxlctl_fw_rpc()"), ("get-feature-out-len", "cxlctl_get_feature()"),
                           ("set-feature-out-len", "cxlctl_set_feature()")):
        assert rules[name].startswith(f"drivers/cxl/core/features.c {function}") and "7.3.4" in rules[name]


def test_list_shows_the_kernel_per_policy_and_per_subsystem(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["list"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("linux-fwctl "))
    assert "7.3.4" in line.split()
    assert ("policies read from: 7.3.4 (historical: before 13237183c735 as merged (a what-if of its review, "
            "declined); before 206f9fa9d555; before 60b5d1f68338; before 6179045ccc0c;") in out
    # netdev: bnxt (issue 17, N1), mlx5 (issue 17, #6) and pds (fidelity labels) re-read in 7.3.4
    assert "policies read from: 7.3.4 (historical: before e7537735028c)" in out
    # rdma: linux-devx re-read whole in 7.3.4 (it was "unversioned"); its history is v5.2's
    assert "policies read from: 7.3.4 (historical: before \"IB/mlx5: Verify DEVX general object type" in out
    pols = host.load().policies
    assert (pols["rdma"]["linux-devx"].kernel, pols["netdev"]["linux-fwctl-pds"].kernel) == ("7.3.4", "7.3.4")
    # gpu: debugfs (issue 17, N5) and the DRM/sysfs rules re-read in 7.3.4
    assert "policies read from: 7.3.4 (historical: before amdgpu's LOCKDOWN_PCI_ACCESS check" in out


def test_replay_and_exports_show_the_kernel_of_the_policy_not_of_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = host.load()
    header = trace(replay(reg, corpus.load(FILE)))[1]
    assert f"policy=linux-fwctl-unchecked-sizes (kernel {BEFORE})   recorded:" in header
    # replayed under another policy, the header names that policy's kernel
    assert "policy=linux-fwctl (kernel 7.3.4)" in trace(replay(reg, corpus.load(FILE), policy="linux-fwctl"))[1]
    # (format, a line of its header comment, where the header ends)
    for fmt, needle, end in (("text", f"# policy: linux-fwctl-unchecked-sizes (kernel {BEFORE})", "\n\n"),
                             ("pytest", f"# kernel: {BEFORE}", "\nfrom fuzzer"),
                             ("c", f'// kernel: "{BEFORE}"', "\n#include")):
        out = tmp_path / f"x.{fmt}"
        assert run_cli(["export", str(FILE), "--format", fmt, "-o", str(out)]) == 0
        head = out.read_text().split(end)[0]
        assert needle in head.splitlines(), (fmt, head)


def test_a_corpus_file_cannot_claim_a_kernel(tmp_path: Path) -> None:
    doc = json.loads(FILE.read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**doc, "kernel": "9.9.9"}))
    with pytest.raises(CorpusError, match="unknown"):
        corpus.load(bad)
    # naming another policy is all a file can do; the version is that policy's record
    good = tmp_path / "good.json"
    good.write_text(json.dumps({**doc, "policy": "linux-fwctl"}))
    rep = replay(host.load(), corpus.load(good))
    assert "(kernel 7.3.4)" in trace(rep)[1] and not rep.still_fails
