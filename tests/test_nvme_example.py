"""The NVMe example (examples/nvme) as a third party ships it: its own distribution, found by entry point.

pip installs a copy of ``examples/nvme`` into a temporary directory, which
the in-process tests put on ``sys.path`` (and take off again) and the CLI
test puts on ``PYTHONPATH``.  Nothing here imports the example by path.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from fuzzer import Caller, Step, corpus, host
from fuzzer.campaign import Campaign
from fuzzer.minimize import is_one_minimal, simplify
from fuzzer.replay import replay

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nvme"
ROOT = Caller(frozenset({"CAP_SYS_ADMIN"}))
USER = Caller()
WRITER = Caller(switches=frozenset({"BLK_OPEN_WRITE"}))
ADMIN, IO = "nvme.admin", "nvme.io"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install --target``: a copy of the example built and installed as the wheel it would be."""
    work = tmp_path_factory.mktemp("nvme")
    src = work / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "--target", str(target), str(src)], check=True, capture_output=True)
    return target


@pytest.fixture(scope="module")
def reg(installed: Path) -> Iterator[host.Registry]:
    sys.path.insert(0, str(installed))
    importlib.invalidate_caches()
    try:
        yield host.load()
    finally:
        sys.path.remove(str(installed))
        importlib.invalidate_caches()


def executor(reg: host.Registry, policy: str = "linux-nvme", device: str = "honest", without: tuple[str, ...] = (),
             **knobs: object):  # type: ignore[no-untyped-def]
    pol = reg.policy("nvme", policy, without=without)
    if knobs:
        pol = attrs.evolve(pol, knobs={**pol.knobs, **knobs})
    return reg.executor("nvme", pol, reg.device("nvme", device))


def user(op: str, caller: Caller = ROOT, channel: str = ADMIN, **args: object) -> Step:
    return Step("user", op, args, channel, caller)


def kernel(op: str, **args: object) -> Step:
    return Step("kernel", op, args)


def sigs(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {v.signature for v in result.violations}


# --------------------------------------------------------------------------- distribution


def test_it_is_installed_as_its_own_distribution_and_loads_by_entry_point(reg: host.Registry,
                                                                         installed: Path) -> None:
    dist = importlib.metadata.distribution("ptfuzz-nvme")
    assert Path(str(dist.locate_file(""))).resolve() == installed.resolve()
    assert [(ep.name, ep.value) for ep in dist.entry_points if ep.group == "ptfuzz"] == [("nvme", "ptfuzz_nvme")]
    module = sys.modules["ptfuzz_nvme"]
    assert Path(module.__file__ or "").resolve().is_relative_to(installed.resolve())  # not examples/
    assert reg.provider[("subsystem", "nvme")] == "nvme"
    assert reg.plugin_versions("nvme") == {"nvme": "0.1.0"}
    assert {"linux-nvme", "permissive"} <= set(reg.policies["nvme"])


# --------------------------------------------------------------------------- reactions


def test_rescan_reaction_keeps_the_namespace_list_right_and_its_removal_opens_the_hole(reg: host.Registry) -> None:
    ex = executor(reg)
    r = ex.apply(user("NS_ATTACH$detach", nsid=1))
    assert r.decision.allowed and r.violations == ()
    assert ex.world.kernel["namespaces"] == {} and "ns.attached:1" not in ex.world.shadow  # nvme_ns_remove()
    holed = executor(reg, without=("passthru-scan",))
    assert sigs(holed.apply(user("NS_ATTACH$detach", nsid=1))) == {
        "kernel-owned-integrity:nvme:NS_ATTACH$detach:ns.attached"}


def test_ccc_marks_the_identify_cache_dirty_until_a_reset(reg: host.Registry) -> None:
    ex = executor(reg)
    assert ex.apply(user("FW_COMMIT", slot=2, action=3)).violations == ()
    assert ex.world.kernel["dirty_capability"] and "ctrl.identify" not in ex.world.shadow
    assert ex.apply(kernel("reset_controller")).violations == ()
    assert not ex.world.kernel["dirty_capability"] and ex.world.shadow["ctrl.identify"] == ("2.0", 3)


def test_keep_alive_reaction_takes_the_timeout_from_the_command(reg: host.Registry) -> None:
    ex = executor(reg)
    r = ex.apply(user("SET_FEATURES", fid=0x0F, value=500))  # the device rounds up to 1 s, and so does the kernel
    assert r.changes == (("feature.kato", 0, 1000),) and r.violations == ()
    assert ex.world.kernel["kato"] == 1
    # a Set Features the device fails leaves ctrl->kato alone (nvme_passthru_end(): if (!status))
    assert ex.apply(user("SET_FEATURES", fid=0x07, value=2)).reply.rc and ex.world.kernel["kato"] == 1


def test_scan_publishes_a_handle_per_namespace_and_stale_handles_fail(reg: host.Registry) -> None:
    ex = executor(reg)
    assert ex.probed == (("namespaces", "nvme0n1"),)  # the block devices the probe's scan created
    assert ex.apply(kernel("rescan")).reply.handles == ("nvme0n1",)
    attach = ex.apply(user("NS_ATTACH$attach", nsid=2))  # NIC: the reaction rescans, and nvme0n2 appears
    assert attach.publications == (("namespaces", "nvme0n2"),) and attach.published == ("nvme0n2",)
    assert ex.apply(user("NS_ATTACH$attach", nsid=3)).publications == ()  # no such namespace: nothing new
    assert ex.apply(kernel("rescan")).reply.handles == ("nvme0n1", "nvme0n2")
    ex.apply(user("NS_ATTACH$detach", nsid=1))
    gone = ex.apply(user("WRITE", ROOT, IO, ns="nvme0n1"))
    assert gone.reply.errno == 19 and gone.changes == ()  # ENODEV: the queue of a removed namespace


def test_reactions_filter_on_the_kernels_cached_effects_not_on_what_the_device_declares(reg: host.Registry) -> None:
    # Format NVM on the understating controller declares CSUPP alone, no NIC or NCC; the kernel's
    # copy was patched at probe (nvme_init_known_nvm_effects()): the rescan fires on it
    E = sys.modules["ptfuzz_nvme.opcodes"].NvmeEffect  # the installed copy's (loaded by the fixture)
    ex = executor(reg, device="understating")
    r = ex.apply(user("FORMAT_NVM", ns="nvme0n1", lbaf=1))
    assert r.declared == E.CSUPP
    assert r.kernel_effects == E.CSUPP | E.LBCC | E.NCC | E.CSE
    assert r.reactions == ("passthru-scan",) and ex.world.shadow["ns.lbaf:1"] == 1
    # Namespace Attachment: both say CSUPP alone, and the kernel does not react
    r = ex.apply(user("NS_ATTACH$detach", nsid=1))
    assert r.kernel_effects == r.declared == E.CSUPP and r.reactions == ()
    # without the patch the kernel's copy is the device's: no rescan after Format NVM either
    unpatched = executor(reg, device="understating", known_effects=False)
    assert unpatched.apply(user("FORMAT_NVM", ns="nvme0n1", lbaf=1)).reactions == ()


def test_root_is_trusted_with_the_data_not_with_the_rescan(reg: host.Registry) -> None:
    """Issue 19: a Trust of the whole step hid a planted kernel bug behind root's Format NVM."""
    steps = [kernel("mount", ns="nvme0n1"), user("FORMAT_NVM", ns="nvme0n1", lbaf=1)]
    intact = executor(reg).run(steps)[-1]
    assert [(v.signature, v.severity) for v in intact.violations] == [
        ("kernel-owned-integrity:nvme:FORMAT_NVM:ns.data:trusted", "trusted")]
    # the planted hole: one step, a trusted violation (the data) and holes (the stale block size)
    holed = executor(reg, without=("passthru-scan",)).run(steps)[-1]
    assert {(v.field, v.severity) for v in holed.violations} == {
        ("ns.data", "trusted"), ("ns.size", "hole"), ("ns.lbaf", "hole")}
    # the old whole-step Trust masked it: every violation trusted, a run that exits 0
    pol = reg.policy("nvme", "linux-nvme", without=("passthru-scan",))
    whole = attrs.evolve(pol, trusts=tuple(attrs.evolve(t, invariants=(), fields=()) for t in pol.trusts))
    masked = reg.executor("nvme", whole, reg.device("nvme", "honest")).run(steps)[-1]
    assert {v.severity for v in masked.violations} == {"trusted"}


# --------------------------------------------------------------------------- the understating device


def test_understated_effects_skip_the_reaction_unless_the_kernel_knows_better(reg: host.Registry) -> None:
    ex = executor(reg, device="understating")
    # Namespace Attachment declares no NIC: no rescan, the kernel still exposes nvme0n1
    assert sigs(ex.apply(user("NS_ATTACH$detach", nsid=1))) == {
        "kernel-owned-integrity:nvme:NS_ATTACH$detach:ns.attached",
        "declared-effects:nvme:NS_ATTACH$detach:ns.attached"}
    # Format NVM declares no NCC either, but nvme_init_known_nvm_effects() patched its entry:
    # the device's lie is recorded (a hole: root is trusted with the data, not the device with
    # its log), the kernel's view stays right
    ex = executor(reg, device="understating")
    r = ex.apply(user("FORMAT_NVM", ns="nvme0n1", lbaf=1))
    assert {v.invariant for v in r.violations} == {"declared-effects"}
    assert all(v.severity == "hole" for v in r.violations)
    assert "declared CSUPP but changed" in r.violations[0].message  # the subsystem's own effect names
    # Write Zeroes declares no LBCC; the kernel adds it, so a read-only descriptor may not zero blocks
    assert not ex.apply(user("WRITE_ZEROES", USER, IO, ns="nvme0n1")).decision.allowed
    # without the patch the kernel believes the device on both counts
    trusting = executor(reg, device="understating", known_effects=False)
    assert "kernel-owned-integrity:nvme:FORMAT_NVM:ns.lbaf" in sigs(
        trusting.apply(user("FORMAT_NVM", ns="nvme0n1", lbaf=1)))
    assert "write-open:nvme:WRITE_ZEROES:ns.data" in sigs(trusting.apply(user("WRITE_ZEROES", USER, IO, ns="nvme0n1")))


def test_write_mounted_knob(reg: host.Registry) -> None:
    steps = [kernel("rescan"), kernel("mount", ns="nvme0n1"), user("WRITE", WRITER, IO, ns="nvme0n1")]
    closed = executor(reg).run(steps)[-1]
    assert closed.decision.rule == "bdev-write-mounted" and closed.decision.errno == 16  # EBUSY
    assert sigs(executor(reg, "linux-nvme-write-mounted").run(steps)[-1]) == {
        "kernel-owned-integrity:nvme:WRITE:ns.data"}


# --------------------------------------------------------------------------- planted holes

# (policy, device, removed rule or reaction, signature it opens, shortest ops)
HOLES = [
    ("linux-nvme", "honest", "passthru-scan",
     "kernel-owned-integrity:nvme:NS_ATTACH$detach:ns.attached", ["NS_ATTACH$detach"]),
    ("linux-nvme", "honest", "keep-alive-update",
     "kernel-owned-integrity:nvme:SET_FEATURES:feature.kato", ["SET_FEATURES"]),
    ("linux-nvme", "honest", "ccc-dirty", "kernel-owned-integrity:nvme:FW_COMMIT:ctrl.identify", ["FW_COMMIT"]),
    ("linux-nvme", "honest", "admin-identify-only", "access:nvme:NS_ATTACH$detach:caps", ["NS_ATTACH$detach"]),
    ("linux-nvme", "honest", "write-open", "write-open:nvme:WRITE:ns.data", ["WRITE"]),
    ("linux-nvme", "honest", "bdev-write-mounted", "kernel-owned-integrity:nvme:WRITE:ns.data", ["mount", "WRITE"]),
    # root's Format NVM is trusted with the data, not with a stale block size: found although root sent it
    ("linux-nvme", "honest", "passthru-scan", "kernel-owned-integrity:nvme:FORMAT_NVM:ns.lbaf", ["FORMAT_NVM"]),
]


@pytest.mark.parametrize(("policy", "device", "removed", "signature", "ops"), HOLES,
                         ids=[f"{p}~{r}:{s.split(':')[2]}" for p, _, r, s, _ in HOLES])
def test_planted_hole_is_found_shrunk_and_closed(reg: host.Registry, tmp_path: Path, policy: str, device: str,
                                                  removed: str, signature: str, ops: list[str]) -> None:
    holed = reg.policy("nvme", policy, without=(removed,))
    campaign = Campaign(reg, "nvme", holed, reg.device("nvme", device), seed=20261121, max_examples=1500,
                        corpus_dir=tmp_path, targets=frozenset({signature}))
    finding = campaign.run().findings[signature]
    assert [s.op for s in finding.steps] == ops
    assert is_one_minimal(campaign.executor, finding.steps, signature)
    assert simplify(campaign.executor, finding.steps, signature) == finding.steps
    assert finding.path is not None
    entry = corpus.load(finding.path)
    assert entry.without == (removed,) and entry.plugins == {"nvme": "0.1.0"}
    assert replay(reg, entry).still_fails
    assert not replay(reg, entry, policy=policy, without=()).still_fails


# --------------------------------------------------------------------------- the command line


def test_trusted_findings_are_reported_apart_and_do_not_fail_the_run(installed: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")])}

    def ptfuzz(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fuzzer", *args], env=env, capture_output=True, text=True,
                              cwd=tmp_path, timeout=120)

    ok = ptfuzz("run", "nvme", "--policy", "linux-nvme", "--seed", "1", "--max-examples", "600",
                "--corpus", "out", "--json", "ok.json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "by design" in ok.stdout
    found = json.loads((tmp_path / "ok.json").read_text())
    text = json.dumps(found)
    assert "kernel-owned-integrity:nvme:FORMAT_NVM:ns.data:trusted" in text and '"hole"' not in text
    assert list((tmp_path / "out" / "nvme").glob("*FORMAT_NVM--ns.data--trusted.json"))
    # the same policy on the lying controller has holes, and they fail the run
    bad = ptfuzz("run", "nvme", "--policy", "linux-nvme", "--device", "understating", "--seed", "1",
                 "--max-examples", "300", "--corpus", "out")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "[hole] kernel-owned-integrity:nvme:NS_ATTACH$detach:ns.attached" in bad.stdout
