"""The GPU plugin: model facts, citations, probe beliefs, each kernel action, clean policies, the corpus."""

from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
from committed import corpus_files
from ptfuzz_gpu import ioctls, policies, regs
from ptfuzz_gpu.commands import COMMANDS
from ptfuzz_gpu.device import DEFAULTS, FIELDS
from ptfuzz_gpu.kernel import GLOBAL

from fuzzer import corpus
from fuzzer.campaign import Campaign
from fuzzer.executor import Executor
from fuzzer.host import Registry
from fuzzer.replay import replay
from fuzzer.spec import Caller
from fuzzer.world import Step

CORPUS = Path(__file__).resolve().parent.parent / "corpora" / "gpu"
ROOT = frozenset({"CAP_SYS_ADMIN"})


def _ex(registry: Registry, policy: str = "permissive", device: str = "spec") -> Executor:
    ex = registry.executor("gpu", registry.policy("gpu", policy), registry.device("gpu", device))
    ex.reset()
    return ex


def _user(channel: str, op: str, caller: Caller | None = None, **args: Any) -> Step:
    return Step("user", op, args, channel, caller or Caller())


def _kernel(op: str, **args: Any) -> Step:
    return Step("kernel", op, args)


def _sigs(result: Any) -> set[str]:
    return {v.signature for v in result.violations}


# --------------------------------------------------------------------------- model facts


def test_ioctl_numbers_and_flags_are_the_uapi_ones() -> None:
    t, f = ioctls.IOCTLS, ioctls.DrmFlag
    assert ioctls.DRM_COMMAND_BASE == 0x40
    assert t["AMDGPU_GEM_CREATE"].nr == 0x40 and t["AMDGPU_CS"].nr == 0x44 and t["AMDGPU_SCHED"].nr == 0x55
    assert t["MODE_ATOMIC"].nr == 0xBC and t["GEM_OPEN"].nr == 0x0B and t["GEM_CLOSE"].nr == 0x09
    # amdgpu_ioctls_kms[]: DRM_AUTH|DRM_RENDER_ALLOW, but SCHED is DRM_MASTER only
    assert t["AMDGPU_CS"].flags == f.AUTH | f.RENDER_ALLOW and t["AMDGPU_SCHED"].flags == f.MASTER
    # drm_ioctls[]: GEM_OPEN is DRM_AUTH without DRM_RENDER_ALLOW; GEM_CLOSE is render-allowed
    assert t["GEM_OPEN"].flags == f.AUTH and t["GEM_CLOSE"].flags == f.RENDER_ALLOW
    assert (f.AUTH, f.MASTER, f.ROOT_ONLY, f.RENDER_ALLOW) == (1, 2, 4, 32)


def test_register_tables_name_declared_fields_and_the_real_modes() -> None:
    names = {f.name for f in FIELDS}
    assert set(regs.DEBUGFS_REGS) == {"amdgpu_regs", "amdgpu_regs_smc", "amdgpu_regs_pcie"}
    assert all(r.field in names for rs in regs.DEBUGFS_REGS.values() for r in rs)
    assert (regs.MODE_BEFORE_FIX, regs.MODE_AFTER_FIX, regs.SYSFS_MODE) == (0o444, 0o400, 0o644)
    assert regs.DPM_LEVELS == {"auto": 0x1, "manual": 0x2, "low": 0x4, "high": 0x8}


def test_debugfs_files_ioctls_and_structs_are_amdgpu_debugfs_c_and_amdgpu_umr_h_of_7_3_4() -> None:
    """debugfs_regs_names[] (amdgpu_debugfs.c 7.3.4), in order; amdgpu_umr.h's ioctl numbers and structs."""
    assert [f.name for f in regs.DEBUGFS_FILES] == [
        "amdgpu_regs", "amdgpu_regs2", "amdgpu_gprwave", "amdgpu_regs_didt", "amdgpu_regs_pcie",
        "amdgpu_regs_pcie64", "amdgpu_regs_smc", "amdgpu_gca_config", "amdgpu_sensors", "amdgpu_wave",
        "amdgpu_gpr", "amdgpu_gfxoff", "amdgpu_gfxoff_status", "amdgpu_gfxoff_count", "amdgpu_gfxoff_residency"]
    assert {f.name for f in regs.DEBUGFS_FILES if f.ioctl} == {"amdgpu_regs2", "amdgpu_gprwave"}
    # every file is a command of that name unless it says why not
    ops = {c.op for c in COMMANDS if c.channels == ("gpu.debugfs",)}
    assert all((f.name in ops) != bool(f.model) for f in regs.DEBUGFS_FILES)
    # _IOWR(0x20, 0, struct amdgpu_debugfs_regs2_iocdata) and _IOWR(0x20, 1, ..._v2)
    assert (regs.REGS2_IOC_SET_STATE, regs.REGS2_IOC_SET_STATE_V2) == (0xC0282000, 0xC02C2001)
    assert (regs.REGS2_IOCDATA.natural({}), regs.REGS2_IOCDATA_V2.natural({})) == (40, 44)
    assert regs.REGS2_IOCDATA_V2.slot("xcc_id").offset == 40 and regs.REGS2_IOCDATA.slot("vmid").offset == 36
    # gfx_v9_0_select_se_sh(adev, 0xffffffff x3): SE, SH and instance broadcast bits
    assert regs.GRBM_BROADCAST == 0xE0000000 and regs.grbm_gfx_index(1, 0, 2) == 0x00010002
    assert regs.grbm_gfx_cntl(me=1, pipe=2, queue=3, vmid=8) == 0x386


def test_every_rule_cites_a_kernel_file_and_function(registry: Registry) -> None:
    for policy in policies.POLICIES:
        for rule in policy.rules:
            assert re.search(r"(drivers|fs|Documentation)/[\w/.-]+", rule.cite), (policy.name, rule.name)
            # a function, a definition, or (the hypothetical fwctl's own rules) the document they follow
            assert re.search(r"\w\(\)|DEBUGFS_DEFAULT_MODE|fwctl\.rst", rule.cite), (policy.name, rule.name)
    fw = registry.policy("gpu", "gpu-fwctl")
    refusals = [r for r in fw.rules if r.name.startswith("refuse-")]
    assert len(refusals) == len(policies.REFUSALS) and all("hypothetical" in r.cite for r in refusals)


def test_probe_believes_every_global_field(registry: Registry) -> None:
    world = _ex(registry).world
    owned = {f.name for f in FIELDS if f.kernel_owned is not None and not f.family}
    assert set(GLOBAL) == owned
    assert {k: world.shadow[k] for k in owned} == {k: world.device.state[k] for k in owned}
    assert world.shadow["power.cap"] == DEFAULTS["power.cap"] and not world.kernel["clients"]


# --------------------------------------------------------------------------- the nodes


def test_drm_ioctl_permit_on_the_render_and_primary_nodes(registry: Registry) -> None:
    ex = _ex(registry, "linux-drm")
    f = ex.apply(_user("gpu.render", "OPEN")).reply.handle
    for op, args in (("MODE_ATOMIC", {"mode": 1}), ("GEM_OPEN", {"name": 1})):
        res = ex.apply(_user("gpu.render", op, file=f, **args))
        assert not res.decision.allowed and res.decision.errno == errno.EACCES, op
    p = ex.apply(_user("gpu.primary", "OPEN$card")).reply.handle
    res = ex.apply(_user("gpu.primary", "GEM_OPEN$card", file=p, name=1))
    assert res.decision.rule == "drm-auth"  # neither a render client nor authenticated
    res = ex.apply(_user("gpu.primary", "MODE_ATOMIC$card", Caller(switches=frozenset({"authenticated"})), file=p, mode=1))
    assert res.decision.rule == "drm-master"
    master = Caller(switches=frozenset({"authenticated", "master"}))
    res = ex.apply(_user("gpu.primary", "MODE_ATOMIC$card", master, file=p, mode=2))
    assert res.decision.allowed and not res.violations and ex.world.shadow["display.mode"] == 2


def test_a_gem_handle_is_only_good_in_its_own_file(registry: Registry) -> None:
    ex = _ex(registry, "linux-drm")
    a = ex.apply(_user("gpu.render", "OPEN")).reply.handle
    b = ex.apply(_user("gpu.render", "OPEN")).reply.handle
    bo = ex.apply(_user("gpu.render", "GEM_CREATE", file=a, domain="vram")).reply.handle
    res = ex.apply(_user("gpu.render", "CS", file=b, bo=bo, hang=False))
    assert res.reply.errno == errno.ENOENT and not res.changes
    res = ex.apply(_user("gpu.render", "CS", file=a, bo=bo, hang=False))
    assert res.reply.out["status"] == "signaled" and not res.violations


def test_render_node_isolation_catches_a_flink_name_opened_from_a_render_node(registry: Registry) -> None:
    ex = _ex(registry, "permissive")
    f = ex.apply(_user("gpu.render", "OPEN")).reply.handle
    ex.apply(_kernel("other_client"))
    bo = ex.apply(_user("gpu.render", "GEM_OPEN", file=f, name=1)).reply.handle
    res = ex.apply(_user("gpu.render", "CS", file=f, bo=bo, hang=False))
    assert "render-isolation:gpu:CS:bo" in _sigs(res)


# --------------------------------------------------------------------------- kernel actions


def test_other_client_opens_allocates_flinks_and_submits(registry: Registry) -> None:
    ex = _ex(registry)
    res = ex.apply(_kernel("other_client"))
    k = ex.world.kernel
    assert res.reply.handle in k["clients"] and k["names"] == {1: 1}
    assert ex.world.device.state["bo:1"] == (1, "gtt", 1) and list(k["fences"].values()) == [(1, "signaled", False)]
    assert not res.violations


def test_gpu_recover_errors_fences_marks_guilty_and_reprograms(registry: Registry) -> None:
    ex = _ex(registry, "linux-drm")
    assert ex.apply(_kernel("gpu_recover")).reply.why == "no hardware hang detected"
    f = ex.apply(_user("gpu.render", "OPEN")).reply.handle
    bo = ex.apply(_user("gpu.render", "GEM_CREATE", file=f, domain="vram")).reply.handle
    ex.apply(_user("gpu.sysfs", "power1_cap", Caller(ROOT), watts=150))
    hung = ex.apply(_user("gpu.render", "CS", file=f, bo=bo, hang=True))
    assert hung.reply.out["status"] == "pending" and ex.world.device.state["gpu.hung"]
    res = ex.apply(_kernel("gpu_recover"))
    k, st = ex.world.kernel, ex.world.device.state
    assert not res.violations and not st["gpu.hung"]
    assert [f[1] for f in k["fences"].values()] == ["error"] and k["guilty"] == {1} and k["vram_lost"] == 1
    assert st["power.cap"] == 150  # the kernel put its setting back after the reset
    again = ex.apply(_user("gpu.render", "CS", file=f, bo=bo, hang=False))
    # 7.3.4 amdgpu_ctx_get_entity(): drm_sched_entity_error() is the hung job's -ETIME
    assert again.decision.rule == "cs-guilty-ctx" and again.decision.errno == errno.ETIME


def test_gpu_recover_disabled_leaves_the_hang_and_no_taint(registry: Registry) -> None:
    ex = _ex(registry, "linux-drm-norecovery")
    f = ex.apply(_user("gpu.render", "OPEN")).reply.handle
    bo = ex.apply(_user("gpu.render", "GEM_CREATE", file=f, domain="vram")).reply.handle
    ex.apply(_user("gpu.render", "CS", file=f, bo=bo, hang=True))
    res = ex.apply(_kernel("gpu_recover"))
    assert res.reply.why == "GPU recovery disabled." and ex.world.device.state["gpu.hung"]
    assert "reset-bookkeeping:gpu:gpu_recover:gpu.hung" in _sigs(res)


def test_suspend_resume_reprograms_and_refuses_a_hung_gpu(registry: Registry) -> None:
    ex = _ex(registry, "permissive")
    ex.apply(_user("gpu.sysfs", "power_dpm_force_performance_level", Caller(ROOT), level="high"))
    res = ex.apply(_kernel("suspend_resume"))
    assert not res.violations and ex.world.device.state["clk.dpm_level"] == regs.DPM_LEVELS["high"]
    f = ex.apply(_user("gpu.render", "OPEN")).reply.handle
    bo = ex.apply(_user("gpu.render", "GEM_CREATE", file=f, domain="gtt")).reply.handle
    ex.apply(_user("gpu.render", "CS", file=f, bo=bo, hang=True))
    assert ex.apply(_kernel("suspend_resume")).reply.errno == errno.EBUSY


def test_partition_switch_only_while_idle(registry: Registry) -> None:
    ex = _ex(registry)
    res = ex.apply(_kernel("partition_switch", mode="CPX"))
    assert not res.violations and ex.world.shadow["partition.compute"] == "CPX"
    ex.apply(_user("gpu.render", "OPEN"))
    assert ex.apply(_kernel("partition_switch", mode="SPX")).reply.errno == errno.EBUSY


def test_ras_error_retires_a_page_the_kernel_believes(registry: Registry) -> None:
    ex = _ex(registry)
    res = ex.apply(_kernel("ras_error", page=0x30))
    assert not res.violations and ex.world.shadow["ras.bad_pages"] == (0x30,)


def test_the_gfxoff_file_goes_through_the_kernel_but_amdgpu_regs_does_not(registry: Registry) -> None:
    ex = _ex(registry, "linux-amdgpu-debugfs")
    res = ex.apply(_user("gpu.debugfs", "amdgpu_gfxoff", Caller(ROOT), value=0))
    assert res.decision.allowed and not res.violations and ex.world.shadow["gfxoff"] == 0
    res = ex.apply(_user("gpu.debugfs", "amdgpu_regs", Caller(ROOT), reg="mmRLC_PG_CNTL", write=True, value=3))
    assert _sigs(res) == {"kernel-owned-integrity:gpu:amdgpu_regs:gfxoff:trusted"}
    locked = Caller(ROOT, lockdown="integrity")
    res = ex.apply(_user("gpu.debugfs", "amdgpu_regs", locked, reg="mmRLC_PG_CNTL", write=True, value=2))
    # 7.3.4 amdgpu_debugfs_regs_init(): under LOCKDOWN_PCI_ACCESS the files are never created
    assert res.decision.errno == errno.ENOENT and res.decision.rule == "amdgpu-regs-lockdown"
    res = ex.apply(_user("gpu.debugfs", "amdgpu_regs", Caller(), reg="mmSCRATCH_REG0", write=False, value=0))
    assert res.decision.errno == errno.EACCES


# --------------------------------------------------------------------------- campaigns


@pytest.mark.parametrize("policy", ["linux-drm", "gpu-fwctl", "linux-amdgpu-debugfs"])
def test_clean_policies_on_honest_firmware_find_no_hole(registry: Registry, tmp_path: Path, policy: str) -> None:
    campaign = Campaign(registry, "gpu", registry.policy("gpu", policy), registry.device("gpu", "spec"),
                        seed=7, max_examples=2000, corpus_dir=tmp_path)
    result = campaign.run()
    holes = sorted(s for s, f in result.findings.items() if f.violation.severity != "trusted")
    assert holes == [] and result.sequences == 2000
    if policy == "linux-amdgpu-debugfs":  # root's raw writes are found, and trusted
        assert "kernel-owned-integrity:gpu:amdgpu_regs_smc:clk.sclk_max:trusted" in result.findings


def test_debug_firmware_applies_a_staged_clock_at_once_under_gpu_fwctl(registry: Registry, tmp_path: Path) -> None:
    campaign = Campaign(registry, "gpu", registry.policy("gpu", "gpu-fwctl"), registry.device("gpu", "debug"),
                        seed=1, max_examples=1000, corpus_dir=tmp_path)
    found = campaign.run().findings
    assert "declared-effects:gpu:SET_CLOCK_DEBUG:clk.sclk_max" in found
    assert "kernel-owned-integrity:gpu:SET_CLOCK_DEBUG:clk.sclk_max:tainted" in found
    assert [s.op for s in found["declared-effects:gpu:SET_CLOCK_DEBUG:clk.sclk_max"].steps] == ["SET_CLOCK_DEBUG"]


# --------------------------------------------------------------------------- corpus


def test_each_gpu_fwctl_refusal_is_required_by_a_committed_permissive_finding(registry: Registry) -> None:
    names = {p.name for p in corpus_files("gpu", "permissive--spec--*.json")}
    for op, finding in policies.REFUSALS:
        first = finding.split(",")[0]
        invariant, _, _, field = first.split(":")
        name = f"permissive--spec--{invariant}--{op}--{field}.json"
        assert name in names, name
        entry = corpus.load(CORPUS / name)
        assert replay(registry, entry).still_fails
        # ...and gpu-fwctl refuses it, at the scope and with the caps the file used
        assert not replay(registry, entry, policy="gpu-fwctl").still_fails


def test_gpu_corpus_has_each_kind_of_finding() -> None:
    names = {p.name for p in corpus_files("gpu")}
    assert any(n.startswith("permissive--spec--render-isolation--") for n in names)
    assert any(n.startswith("linux-amdgpu-debugfs--spec--") and n.endswith("--trusted.json") for n in names)
    assert "gpu-fwctl--debug--declared-effects--SET_CLOCK_DEBUG--clk.sclk_max.json" in names
    assert "linux-drm-norecovery--spec--reset-bookkeeping--gpu_recover--gpu.hung.json" in names
    # root's raw write of the selection itself through amdgpu_regs2 (no use_grbm, so nothing restores it)
    assert "linux-amdgpu-debugfs--spec--kernel-owned-integrity--amdgpu_regs2--grbm.gfx_index--trusted.json" in names


# --------------------------------------------------------------------------- the deep planted holes, without search

R = "gpu.render"
DEEP_SEQUENCES = {
    # a render client, another process's flinked buffer, GEM_OPEN by the guessable name, a job writing it
    "drm-render-allow": [_user(R, "OPEN"), _kernel("other_client"), _user(R, "GEM_OPEN", file="file0", name=1),
                         _user(R, "CS", file="file0", bo="bo3", hang=False)],
    # a hanging job, the timeout's reset marks the context guilty, and the next submission is accepted
    "cs-guilty-ctx": [_user(R, "OPEN"), _user(R, "GEM_CREATE", file="file0", domain="vram"),
                      _user(R, "CS", file="file0", bo="bo1", hang=True), _kernel("gpu_recover"),
                      _user(R, "CS", file="file0", bo="bo1", hang=False)],
}


@pytest.mark.parametrize("rule", sorted(DEEP_SEQUENCES))
def test_deep_gpu_holes_open_exactly_at_their_last_step(registry: Registry, rule: str) -> None:
    from planted import HOLES

    from fuzzer.minimize import first_hit, is_one_minimal

    (hole,) = [h for h in HOLES if h.subsystem == "gpu" and h.rule == rule]
    steps = DEEP_SEQUENCES[rule]
    assert hole.deep and [s.op for s in steps] == hole.ops
    holed = registry.executor("gpu", registry.policy("gpu", hole.policy, without=(rule,)),
                              registry.device("gpu", hole.device))
    assert first_hit(holed, steps, hole.signature) == len(steps)
    assert is_one_minimal(holed, steps, hole.signature)
    assert first_hit(_ex(registry, hole.policy, hole.device), steps, hole.signature) is None


# --------------------------------------------------------------------------- debugfs: lockdown, regs2, gfxoff files

LOCKED = Caller(ROOT, lockdown="integrity")
D = "gpu.debugfs"
REGS2_STATE = {"use_srbm": False, "use_grbm": True, "pg_lock": False, "se": 3, "sh": 0, "instance": 1,
               "me": 0, "pipe": 0, "queue": 0, "vmid": 0}


def _verdict(ex: Executor, op: str, caller: Caller, **args: Any) -> tuple[bool, int, str]:
    d = ex.apply(_user(D, op, caller, **args)).decision
    return d.allowed, d.errno, d.rule


@pytest.mark.parametrize("policy", ["linux-amdgpu-debugfs", "linux-amdgpu-debugfs-no-pci-lockdown", "permissive",
                                    "linux-drm", "gpu-fwctl"])
def test_each_new_debugfs_command_has_its_verdict_per_policy(registry: Registry, policy: str) -> None:
    """root / unprivileged / locked-down root, for each new file (fs/debugfs, amdgpu_debugfs.c 7.3.4)."""
    ex = _ex(registry, policy)
    opened = ex.apply(_user(D, "OPEN$regs2", Caller(ROOT)))
    f = opened.reply.handle if opened.reply is not None and opened.reply.handle else "regs20"
    cmds: list[tuple[str, dict[str, Any]]] = [
        ("OPEN$regs2", {}), ("REGS2_IOC_SET_STATE", {"file": f, **REGS2_STATE}),
        ("REGS2_IOC_SET_STATE_V2", {"file": f, **REGS2_STATE, "xcc_id": 0}),
        ("amdgpu_regs2", {"file": f, "reg": "mmSCRATCH_REG0", "write": False, "value": 0}),
        ("amdgpu_gfxoff_status", {}), ("amdgpu_gfxoff_count", {}),
        ("amdgpu_gfxoff_residency", {"write": True, "value": 1}),
        ("amdgpu_gfxoff_residency", {"write": False, "value": 0})]
    got = {(op, str(a.get("write", ""))): (_verdict(ex, op, Caller(ROOT), **a), _verdict(ex, op, Caller(), **a),
                                          _verdict(ex, op, LOCKED, **a)) for op, a in cmds}
    ok, root_only = (True, 0, ""), (False, errno.EACCES, "debugfs-root")
    if policy in ("linux-drm", "gpu-fwctl"):  # neither opens debugfs
        assert {v for vs in got.values() for v in vs} == {(False, errno.ENODEV, "channel-closed")}
    elif policy == "permissive":
        assert {v for vs in got.values() for v in vs} == {ok}
    elif policy == "linux-amdgpu-debugfs":  # 7.3.4: the files do not exist under lockdown
        assert set(got.values()) == {(ok, root_only, (False, errno.ENOENT, "amdgpu-regs-lockdown"))}
    else:  # before amdgpu's check, debugfs_locked_down() alone: read-only opens of ioctl-less files pass
        eperm = (False, errno.EPERM, "debugfs-lockdown")
        assert got == {
            ("OPEN$regs2", ""): (ok, root_only, eperm),  # the fops have an unlocked_ioctl
            ("REGS2_IOC_SET_STATE", ""): (ok, root_only, eperm),
            ("REGS2_IOC_SET_STATE_V2", ""): (ok, root_only, eperm),
            ("amdgpu_regs2", "False"): (ok, root_only, eperm),  # even a read
            ("amdgpu_gfxoff_status", ""): (ok, root_only, ok),
            ("amdgpu_gfxoff_count", ""): (ok, root_only, ok),
            ("amdgpu_gfxoff_residency", "True"): (ok, root_only, eperm),
            ("amdgpu_gfxoff_residency", "False"): (ok, root_only, ok),
        }


def test_regs2_selects_the_bank_and_restores_broadcast(registry: Registry) -> None:
    """amdgpu_debugfs_regs2_op() (7.3.4): select under grbm_idx_mutex/srbm_mutex, access, select back."""
    ex = _ex(registry, "linux-amdgpu-debugfs")
    st = ex.world.device.state
    f = ex.apply(_user(D, "OPEN$regs2", Caller(ROOT))).reply.handle
    assert ex.world.kernel["regs2"][f] == regs.Regs2Id()  # kzalloc: no selection
    both = {**REGS2_STATE, "use_srbm": True, "me": 1, "pipe": 1, "queue": 1, "vmid": 8}
    assert ex.apply(_user(D, "REGS2_IOC_SET_STATE_V2", Caller(ROOT), file=f, **both, xcc_id=0)).reply.errno == 0
    res = ex.apply(_user(D, "amdgpu_regs2", Caller(ROOT), file=f, reg="mmSCRATCH_REG0", write=True, value=3))
    assert not res.violations and st["scratch"] == 3
    assert (st["grbm.gfx_index"], st["grbm.gfx_cntl"]) == (regs.GRBM_BROADCAST, regs.GRBM_CNTL_IDLE)
    assert {c[0] for c in res.changes} == {"scratch"}
    # a raw write of GRBM_GFX_INDEX itself, with use_grbm, is undone by the restore...
    res = ex.apply(_user(D, "amdgpu_regs2", Caller(ROOT), file=f, reg="mmGRBM_GFX_INDEX", write=True, value=1))
    assert st["grbm.gfx_index"] == regs.GRBM_BROADCAST and not res.violations
    # ...without it, it stays: root asked for that, so it is trusted, and not a bank-select hole
    ex.apply(_user(D, "REGS2_IOC_SET_STATE", Caller(ROOT), file=f, **{**REGS2_STATE, "use_grbm": False}))
    res = ex.apply(_user(D, "amdgpu_regs2", Caller(ROOT), file=f, reg="mmGRBM_GFX_INDEX", write=True, value=1))
    assert _sigs(res) == {"kernel-owned-integrity:gpu:amdgpu_regs2:grbm.gfx_index:trusted"}


def test_regs2_rejects_an_se_past_the_asic_and_v1_keeps_the_vmid(registry: Registry) -> None:
    ex = _ex(registry, "linux-amdgpu-debugfs")
    f = ex.apply(_user(D, "OPEN$regs2", Caller(ROOT))).reply.handle
    ex.apply(_user(D, "REGS2_IOC_SET_STATE", Caller(ROOT), file=f, **{**REGS2_STATE, "se": 4}))
    res = ex.apply(_user(D, "amdgpu_regs2", Caller(ROOT), file=f, reg="mmSCRATCH_REG0", write=True, value=1))
    assert res.reply.errno == errno.EINVAL and not res.changes  # se >= max_shader_engines, nothing selected
    # amdgpu_debugfs_regs2_ioctl() v1_copy: every v1 field but srbm.vmid, and xcc_id = 0
    ex.apply(_user(D, "REGS2_IOC_SET_STATE_V2", Caller(ROOT), file=f, **{**REGS2_STATE, "vmid": 8}, xcc_id=1))
    ex.apply(_user(D, "REGS2_IOC_SET_STATE", Caller(ROOT), file=f, **{**REGS2_STATE, "vmid": 0, "me": 2}))
    rd = ex.world.kernel["regs2"][f]
    assert (rd.vmid, rd.me, rd.xcc_id) == (8, 2, 0)


def test_gfxoff_residency_starts_and_stops_the_smu_log_and_owns_nothing(registry: Registry) -> None:
    """amdgpu_debugfs_gfxoff_residency_write() -> amdgpu_set_gfx_off_residency() (7.3.4): no kernel books."""
    ex = _ex(registry, "linux-amdgpu-debugfs")
    res = ex.apply(_user(D, "amdgpu_gfxoff_residency", Caller(ROOT), write=True, value=1))
    assert ex.world.device.state["gfxoff.residency_log"] == 1 and not res.violations and res.declared
    res = ex.apply(_user(D, "amdgpu_gfxoff_residency", Caller(ROOT), write=False, value=0))
    assert res.reply.out == {"logging": 1} and not res.changes
    ex.apply(_user(D, "amdgpu_gfxoff_residency", Caller(ROOT), write=True, value=0))
    assert ex.world.device.state["gfxoff.residency_log"] == 0
    res = ex.apply(_user(D, "amdgpu_gfxoff_status", Caller(ROOT)))
    assert res.reply.out == {"status": 1} and not res.changes


REGS2_HOLE = "bank-select:gpu:amdgpu_regs2:grbm.gfx_index"


def test_a_regs2_that_does_not_restore_the_selection_is_found_at_three_steps(registry: Registry,
                                                                            tmp_path: Path) -> None:
    """Planted: amdgpu_debugfs_regs2_op() without its select-broadcast-then-unlock (knob regs2_restore).

    Root is trusted to write registers, so a raw write's corruption is ``trusted``; the kernel's own
    file leaving GRBM_GFX_INDEX on one SE is not root's request, and is a hole.  Shortest: open,
    SET_STATE with use_grbm, any read.
    """
    from fuzzer.minimize import first_hit, is_one_minimal, simplify

    intact = registry.policy("gpu", "linux-amdgpu-debugfs")
    holed = attrs.evolve(intact, knobs={**intact.knobs, "regs2_restore": False})
    campaign = Campaign(registry, "gpu", holed, registry.device("gpu", "spec"), seed=20261121,
                        max_examples=3000, corpus_dir=tmp_path, targets=frozenset({REGS2_HOLE}))
    found = campaign.run().findings
    assert REGS2_HOLE in found, sorted(found)
    steps = found[REGS2_HOLE].steps
    # either SET_STATE ioctl selects the bank: which one the search meets first is the seed's
    assert [s.op for s in steps] in (["OPEN$regs2", "REGS2_IOC_SET_STATE_V2", "amdgpu_regs2"],
                                     ["OPEN$regs2", "REGS2_IOC_SET_STATE", "amdgpu_regs2"])
    assert steps[1].args["use_grbm"] and not steps[2].args["write"]  # a read is enough
    assert is_one_minimal(campaign.executor, steps, REGS2_HOLE)
    assert simplify(campaign.executor, steps, REGS2_HOLE) == steps
    assert found[REGS2_HOLE].violation.severity == "hole"
    # 7.3.4's regs2 puts the selection back: the same steps pass
    assert first_hit(_ex(registry, "linux-amdgpu-debugfs"), steps, REGS2_HOLE) is None


@pytest.mark.parametrize("rule", ["amdgpu-regs-lockdown", "debugfs-lockdown"])
def test_either_lockdown_check_alone_keeps_root_out_under_lockdown(registry: Registry, tmp_path: Path,
                                                                   rule: str) -> None:
    """7.3.4 guards the register files twice; only with both gone (the historical policy without
    debugfs-lockdown, tests/planted.py) does a locked-down root write a register."""
    campaign = Campaign(registry, "gpu", registry.policy("gpu", "linux-amdgpu-debugfs", without=(rule,)),
                        registry.device("gpu", "spec"), seed=7, max_examples=1500, corpus_dir=tmp_path)
    result = campaign.run()
    assert not [s for s in result.findings if s.startswith(("lockdown:", "access:"))]
