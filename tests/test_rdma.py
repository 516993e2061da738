"""The RDMA plugin's Done-when: the 2019 DEVX type confusion, clean mainline policies, a fast permissive."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from fuzzer import corpus
from fuzzer.campaign import Campaign
from fuzzer.host import Registry
from fuzzer.minimize import first_hit, is_one_minimal, one_minimal
from fuzzer.plugins.rdma.policies import DEVX_C
from fuzzer.replay import replay
from fuzzer.spec import ABSENT, Caller
from fuzzer.world import Step

CONFUSION = "kernel-owned-integrity:rdma:OBJ_MODIFY$general:general"
CORPUS = Path(__file__).resolve().parent.parent / "corpora" / "rdma"


def _devx(op: str, **args: object) -> Step:
    return Step("user", op, args, "rdma.devx", Caller())


def test_2019_general_object_type_confusion_is_found_and_shrunk(registry: Registry, tmp_path: Path) -> None:
    campaign = Campaign(registry, "rdma", registry.policy("rdma", "linux-devx-2019"),
                        registry.device("rdma", "lax"), seed=0, max_examples=1000, corpus_dir=tmp_path)
    result = campaign.run()
    assert CONFUSION in result.findings, sorted(result.findings)
    finding = result.findings[CONFUSION]
    # the kernel's IPsec objects, a DEVX context, an object of another general type
    # with the same id, and a MODIFY naming the kernel's type: four steps (the kernel's
    # offload may come before or after the user's create; both give id 1 to each)
    ops = [s.op for s in finding.steps]
    assert ops[0] == "ALLOC_UCONTEXT" and ops[-1] == "OBJ_MODIFY$general"
    assert sorted(ops[1:3]) == ["OBJ_CREATE$general", "ipsec_offload"]
    modify = finding.steps[-1].args
    create = next(s for s in finding.steps if s.op == "OBJ_CREATE$general").args
    assert modify["type"] != create["type"] and modify["type"] in ("ENCRYPTION_KEY", "IPSEC")
    assert is_one_minimal(campaign.executor, finding.steps, CONFUSION)
    assert finding.path is not None
    entry = corpus.load(finding.path)
    assert replay(registry, entry).still_fails
    # "IB/mlx5: Verify DEVX general object type correctly" closes it, and the spec firmware never had it
    assert not replay(registry, entry, policy="linux-devx").still_fails
    spec = registry.executor("rdma", registry.policy("rdma", "linux-devx-2019"), registry.device("rdma", "spec"))
    assert first_hit(spec, entry.steps, CONFUSION) is None


def test_the_2019_finding_is_in_the_corpus_and_the_fix_closes_it(registry: Registry) -> None:
    path = CORPUS / "linux-devx-2019--lax--kernel-owned-integrity--OBJ_MODIFY_general--general.json"
    entry = corpus.load(path)
    assert entry.signature == CONFUSION and len(entry.steps) == 4
    assert replay(registry, entry).still_fails
    assert not replay(registry, entry, policy="linux-devx").still_fails


def test_linux_devx_is_clean_on_both_devices(registry: Registry, tmp_path: Path) -> None:
    for device in ("spec", "lax"):
        campaign = Campaign(registry, "rdma", registry.policy("rdma", "linux-devx"),
                            registry.device("rdma", device), seed=1, max_examples=2000, corpus_dir=tmp_path)
        result = campaign.run()
        assert result.findings == {}, (device, sorted(result.findings))
        assert campaign.sequences >= 2000


def test_permissive_finds_kernel_object_corruption_fast(registry: Registry, tmp_path: Path) -> None:
    campaign = Campaign(registry, "rdma", registry.policy("rdma", "permissive"), registry.device("rdma", "spec"),
                        seed=1, max_examples=100, corpus_dir=tmp_path)
    result = campaign.run()
    holes = [s for s, f in result.findings.items() if s.startswith("kernel-owned-integrity:") and
             f.violation.severity == "hole"]
    assert holes, sorted(result.findings)


def test_uid_is_rewritten_and_objects_come_and_go(registry: Registry) -> None:
    """Engine pieces RDMA needs: Rewrite verdicts, driver commands, state keys that appear and vanish."""
    ex = registry.executor("rdma", registry.policy("rdma", "linux-devx"), registry.device("rdma", "spec"))
    results = ex.run([
        _devx("ALLOC_UCONTEXT", devx=True, cap=1),
        _devx("OBJ_CREATE$pd", ucontext="ucontext0", opcode="ALLOC_PD", uid=0),
        _devx("OBJ_DESTROY", obj="devx_obj1"),
        _devx("CLOSE", ucontext="ucontext0"),
    ])
    alloc, create, destroy, close = results
    assert alloc.decision is not None and alloc.decision.rewrite == {"cap": 0}  # unprivileged: no RAW_TX
    uid = alloc.reply.out["uid"] if alloc.reply else None
    assert create.decision is not None and create.decision.rewrite == {"uid": uid}
    (key, before, after), = create.changes
    assert key.startswith("pd:") and before is ABSENT and after.uid == uid
    assert destroy.changes == ((key, after, ABSENT),)
    assert [c[0] for c in close.changes] == [f"uctx:{uid}"]
    assert not any(r.violations for r in results)


def test_minimizer_relinks_handles_when_it_drops_a_producer(registry: Registry) -> None:
    """Dropping an unrelated earlier create renames later handles; references must follow."""
    ex = registry.executor("rdma", registry.policy("rdma", "linux-devx", without=("devx-obj-id-valid",)),
                           registry.device("rdma", "lax"))
    steps = [
        _devx("ALLOC_UCONTEXT", devx=True, cap=0),
        _devx("OBJ_CREATE$pd", ucontext="ucontext0", opcode="ALLOC_PD", uid=0),
        _devx("OBJ_CREATE$cq", ucontext="ucontext0", opcode="CREATE_CQ", uid=0),
        _devx("OBJ_MODIFY$cq", obj="devx_obj2", opcode="MODIFY_CQ", obj_id=1, value=0, uid=0),
    ]
    sig = "kernel-owned-integrity:rdma:OBJ_MODIFY$cq:cq"
    minimal = one_minimal(ex, steps, sig)
    assert [s.op for s in minimal] == ["ALLOC_UCONTEXT", "OBJ_CREATE$cq", "OBJ_MODIFY$cq"]
    assert minimal[-1].args["obj"] == "devx_obj1"


def test_c_export_is_refused_for_rdma_findings_with_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / "linux-devx-2019--lax--kernel-owned-integrity--OBJ_MODIFY_general--general.json"
    assert run_cli(["export", str(path), "--format", "c"]) == 2
    assert "export format 'c' exists only for cxl, not for 'rdma' findings" in capsys.readouterr().err


def _fwctl(op: str, scope: str = "configuration", **args: object) -> Step:
    return Step("user", op, args, "rdma.fwctl", Caller(scope=scope))


def test_fwctl_any_scope_opcodes_are_generated_and_reach_firmware(registry: Registry) -> None:
    """drivers/fwctl/mlx5/main.c mlx5ctl_validate_rpc() (7.3.4) returns true at any scope for
    MODIFY_CONG_STATUS (0x823, mlx5_ifc.h) and DELEGATE_VHCA_MANAGEMENT (0x731, main.c's own enum):
    both must be commands the fuzzer draws, with those opcodes, and pass at CONFIGURATION."""
    sub = registry.subsystems["rdma"]
    drawn = {c.op: c.opcode for c in sub.commands if "rdma.fwctl" in c.channels}
    assert drawn.get("MODIFY_CONG_STATUS") == 0x823 and drawn.get("DELEGATE_VHCA_MANAGEMENT") == 0x731
    ex = registry.executor("rdma", registry.policy("rdma", "linux-fwctl-mlx5"), registry.device("rdma", "spec"))
    cong, delegate = ex.run([_fwctl("MODIFY_CONG_STATUS", uid=0, value=1),
                             _fwctl("DELEGATE_VHCA_MANAGEMENT", uid=0, value=2)])
    for result, field, value in ((cong, "cong.status", 1), (delegate, "vhca.delegated", 2)):
        assert result.decision is not None and result.decision.allowed, result.decision
        assert result.reply is not None and result.reply.rc == 0, result.reply
        assert result.changes == ((field, 0, value),) and not result.violations


def _fd(op: str) -> Step:
    return Step("user", op, {}, "rdma.fwctl.fd", Caller())


def test_each_fwctl_open_has_its_own_uid_and_close_releases_it(registry: Registry) -> None:
    """drivers/fwctl/mlx5/main.c mlx5ctl_open_uctx() (7.3.4) allocates a uid per open file and
    mlx5ctl_close_uctx() destroys it; mlx5ctl_fw_rpc() writes *that FD's* uid into the header."""
    ex = registry.executor("rdma", registry.policy("rdma", "linux-fwctl-mlx5"), registry.device("rdma", "spec"))
    first = ex.world.kernel["fwctl_uid"]
    results = ex.run([
        _fwctl("QUERY_HCA_CAP", scope="configuration", uid=0),
        _fd("FWCTL_OPEN"),
        _fwctl("QUERY_HCA_CAP", scope="configuration", uid=0),
        _fd("FWCTL_CLOSE"),
        _fwctl("QUERY_HCA_CAP", scope="configuration", uid=0),
        _fd("FWCTL_CLOSE"),
        _fwctl("QUERY_HCA_CAP", scope="configuration", uid=0),
    ])
    rpc1, opened, rpc2, closed, rpc3, closed_first, rpc4 = results
    assert opened.reply is not None
    second = opened.reply.out["uid"]
    assert second != first and [c[0] for c in opened.changes] == [f"uctx:{second}"]
    rewrites = [r.decision.rewrite if r.decision else None for r in (rpc1, rpc2, rpc3)]
    assert rewrites == [{"uid": first}, {"uid": second}, {"uid": first}]
    assert [c[0] for c in closed.changes] == [f"uctx:{second}"]
    assert [c[0] for c in closed_first.changes] == [f"uctx:{first}"]
    assert rpc4.decision is not None and not rpc4.decision.allowed  # every FD closed: -EBADF
    assert not any(r.violations for r in results)


def test_a_fwctl_fd_that_created_an_object_leaks_it_on_close(registry: Registry) -> None:
    """Why mlx5ctl_validate_rpc() (7.3.4) refuses creates: "nothing will free the memory when the FD
    is closed". Without its default deny, an FD's uid creates an MKEY and close leaves it behind."""
    ex = registry.executor("rdma", registry.policy("rdma", "linux-fwctl-mlx5", without=("mlx5ctl-default-deny",)),
                           registry.device("rdma", "spec"))
    results = ex.run([_fd("FWCTL_OPEN"), _fwctl("CREATE_MKEY", uid=0), _fd("FWCTL_CLOSE")])
    # the firmware refuses DESTROY_UCTX while the uid owns the MKEY (RES_BUSY), which close ignores
    assert sorted(v.signature for v in results[-1].violations) == [
        "ucontext-leak:rdma:FWCTL_CLOSE:mkey", "ucontext-leak:rdma:FWCTL_CLOSE:uctx"]


def test_devx_object_handlers_refuse_a_vhca_tunnel_id_and_a_missing_one_is_0(registry: Registry) -> None:
    """drivers/infiniband/hw/mlx5/devx.c (7.3.4): MLX5_IB_METHOD_DEVX_OBJ_CREATE, _OBJ_MODIFY and
    _OBJ_QUERY (lines 1546, 1660, 1707; OBJ_ASYNC_QUERY at 1848 is not modelled) return -EINVAL on a
    non-zero general_obj_in_cmd_hdr vhca_tunnel_id before devx_get_uid(), whatever the firmware's caps.
    A step that leaves vhca_tunnel_id out (every stored corpus file) means 0."""
    for device in ("spec", "lax", "tunnel"):
        ex = registry.executor("rdma", registry.policy("rdma", "linux-devx"), registry.device("rdma", device))
        steps = [
            _devx("ALLOC_UCONTEXT", devx=True, cap=0),
            _devx("OBJ_CREATE$cq", ucontext="ucontext0", opcode="CREATE_CQ", uid=0),
            _devx("OBJ_CREATE$cq", ucontext="ucontext0", opcode="CREATE_CQ", uid=0, vhca_tunnel_id=1),
            _devx("OBJ_MODIFY$cq", obj="devx_obj1", opcode="MODIFY_CQ", obj_id=1, value=0, uid=0,
                  vhca_tunnel_id=0xFFFF),
            _devx("OBJ_QUERY$cq", obj="devx_obj1", opcode="QUERY_CQ", obj_id=1, uid=0, vhca_tunnel_id=1),
            _devx("OBJ_QUERY$cq", obj="devx_obj1", opcode="QUERY_CQ", obj_id=1, uid=0),
        ]
        assert ex.complete(steps[1]).args["vhca_tunnel_id"] == 0
        results = ex.run(steps)
        create = results[1]
        assert create.decision is not None and create.decision.allowed, (device, create.decision)
        for r in results[2:5]:
            assert r.decision is not None and not r.decision.allowed, (device, r.decision)
            assert r.decision.errno == errno.EINVAL and r.decision.rule == "devx-obj-vhca-tunnel", r.decision
        # the same query without a tunnel id gets past it, to the id check (the kernel's CQs took id 1)
        last = results[5]
        assert last.decision is not None and last.decision.rule == "devx-obj-id-valid", last.decision
    policy = registry.policy("rdma", "linux-devx")
    names = [r.name for r in policy.rules]
    assert names.index("devx-obj-vhca-tunnel") < names.index("devx-uid")  # the kernel's order
    cite = policy.rules[names.index("devx-obj-vhca-tunnel")].cite
    assert DEVX_C in cite and "(7.3.4)" in cite and "vhca_tunnel_id" in cite


def test_a_vhca_tunnel_id_passes_any_opcode_as_general_only_with_the_capability(registry: Registry) -> None:
    """devx.c devx_is_general_cmd() (7.3.4, line 1000): "Pass all cmds for vhca_tunnel as general,
    tracking is done in FW": MLX5_CAP_GEN_64(mdev, vhca_tunnel_commands) and a non-zero vhca_tunnel_id
    let DEVX_OTHER carry any opcode.  The spec firmware lacks the capability; ``tunnel`` has it.
    The modelled firmware does nothing with the tunnel id (the stated simplification): the opened
    door shows as the finding the planted hole without devx-general-cmd shows on spec, an MKEY
    created through DEVX_OTHER that close does not destroy, there for the firmware to track."""
    def run(device: str, tunnel: int) -> list[Any]:
        ex = registry.executor("rdma", registry.policy("rdma", "linux-devx"), registry.device("rdma", device))
        return ex.run([
            _devx("ALLOC_UCONTEXT", devx=True, cap=0),
            _devx("OTHER$object", ucontext="ucontext0", opcode="CREATE_MKEY", type="IPSEC", obj_id=1, uid=0,
                  vhca_tunnel_id=tunnel),
            _devx("OTHER$object", ucontext="ucontext0", opcode="DESTROY_QP", type="IPSEC", obj_id=1, uid=0,
                  vhca_tunnel_id=tunnel),
            _devx("CLOSE", ucontext="ucontext0"),
        ])

    for device, tunnel in (("spec", 0), ("spec", 1), ("tunnel", 0)):
        results = run(device, tunnel)
        for r in results[1:3]:
            assert r.decision is not None and not r.decision.allowed, (device, tunnel, r.decision)
            assert r.decision.rule == "devx-general-cmd" and r.decision.errno == errno.EINVAL
        assert not any(r.violations for r in results)
    create, destroy, close = run("tunnel", 1)[1:]
    assert create.decision is not None and create.decision.allowed and create.reply is not None
    assert create.reply.rc == 0
    # the firmware's uid isolation still refuses the kernel's QP to the DEVX uid
    assert destroy.decision is not None and destroy.decision.allowed
    assert destroy.reply is not None and destroy.reply.errno == errno.EINVAL and not destroy.violations
    assert "ucontext-leak:rdma:CLOSE:mkey" in [v.signature for v in close.violations]
    cite = next(r.cite for r in registry.policy("rdma", "linux-devx").rules if r.name == "devx-general-cmd")
    assert "(7.3.4)" in cite and "vhca_tunnel_commands" in cite and "trusted to track" in cite
