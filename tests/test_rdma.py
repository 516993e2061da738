"""The RDMA plugin's Done-when: the 2019 DEVX type confusion, clean mainline policies, a fast permissive."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from ptfuzz_rdma.policies import DEVX_C

from fuzzer import corpus
from fuzzer.campaign import Campaign
from fuzzer.host import Registry
from fuzzer.minimize import first_hit, is_one_minimal, one_minimal
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
    # offload may come anywhere before the MODIFY: before the context, or before or after
    # the user's create; each gives id 1 to each)
    ops = [s.op for s in finding.steps]
    assert ops[-1] == "OBJ_MODIFY$general"
    assert sorted(ops[:3]) == ["ALLOC_UCONTEXT", "OBJ_CREATE$general", "ipsec_offload"]
    assert ops.index("ALLOC_UCONTEXT") < ops.index("OBJ_CREATE$general")
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


SHARED_EQ = "shared-eq:rdma:OBJ_CREATE$cq:eq"
SHARED_EQ_FILE = CORPUS / "linux-devx-2019--spec--shared-eq--OBJ_CREATE_cq--eq.json"


def test_the_2019_policy_has_v5_2_whitelist_and_general_list(registry: Registry) -> None:
    """devx.c of v5.2 (WindRiver-Labs/linux-yocto-5.2 @256e39bf, the 2019 state): devx_is_whitelist_cmd()
    is QUERY_HCA_CAP, QUERY_HCA_VPORT_CONTEXT and QUERY_ESW_VPORT_CONTEXT; devx_is_general_cmd(in) has
    neither QUERY_ESW_FUNCTIONS nor QUERY_LAG, nor a vhca_tunnel_id case, and the object handlers do not
    read vhca_tunnel_id.  7.3.4 whitelists QUERY_ESW_FUNCTIONS (a context without DEVX runs it under
    the whitelist uid) and refuses a tunnel id on OBJ_CREATE."""
    whitelist_uid: list[int] = []

    def run(policy: str) -> list[Any]:
        ex = registry.executor("rdma", registry.policy("rdma", policy), registry.device("rdma", "spec"))
        whitelist_uid.append(ex.world.kernel["whitelist_uid"])
        return ex.run([
            _devx("ALLOC_UCONTEXT", devx=False, cap=0),
            _devx("OTHER$query", ucontext="ucontext0", opcode="QUERY_ESW_FUNCTIONS", uid=0),
            _devx("ALLOC_UCONTEXT", devx=True, cap=0),
            _devx("OTHER$query", ucontext="ucontext1", opcode="QUERY_ESW_FUNCTIONS", uid=0),
            _devx("OBJ_CREATE$pd", ucontext="ucontext1", opcode="ALLOC_PD", uid=0, vhca_tunnel_id=1),
        ])

    now = run("linux-devx")
    assert all(r.decision is not None for r in now)
    assert now[1].decision.allowed and now[1].decision.rewrite == {"uid": whitelist_uid[0]}
    assert now[3].decision.allowed
    assert not now[4].decision.allowed and now[4].decision.rule == "devx-obj-vhca-tunnel"
    then = run("linux-devx-2019")
    assert all(r.decision is not None for r in then)
    assert not then[1].decision.allowed and then[1].decision.rule == "devx-uid"
    assert then[1].decision.errno == errno.EINVAL
    assert not then[3].decision.allowed and then[3].decision.rule == "devx-general-cmd"
    assert then[4].decision.allowed and then[4].reply is not None and then[4].reply.rc == 0
    names = [r.name for r in registry.policy("rdma", "linux-devx-2019").rules]
    assert "devx-obj-vhca-tunnel" not in names
    cite = next(r.cite for r in registry.policy("rdma", "linux-devx-2019").rules if r.name == "devx-general-cmd")
    assert "v5.2" in cite


def test_query_eqn_answers_the_vector_eq_and_creates_it_on_first_use(registry: Registry) -> None:
    """drivers/net/ethernet/mellanox/mlx5/core/eq.c (7.3.4) mlx5_comp_eqn_get(): -EINVAL past
    max_comp_eqs, the vector's EQ if it exists, else create_comp_eq(), whose create_map_eq() gives
    a completion EQ (no event mask) MLX5_SHARED_RESOURCE_UID.  The async EQ (eq 1) has uid 0.
    A kernel EQ made on a user's request is the kernel's: believed, no violation."""
    ex = registry.executor("rdma", registry.policy("rdma", "linux-devx"), registry.device("rdma", "spec"))
    assert ex.world.device.state["eq:1"].uid == 0 and ex.world.device.state["eq:2"].uid == 0xFFFF
    r0, r1, r2 = ex.run([
        _devx("ALLOC_UCONTEXT", devx=False, cap=0),  # QUERY_EQN needs no DEVX uid
        _devx("QUERY_EQN", ucontext="ucontext0", vector=0),
        _devx("QUERY_EQN", ucontext="ucontext0", vector=1),
        _devx("QUERY_EQN", ucontext="ucontext0", vector=2),
    ])[1:]
    assert r0.reply is not None and r0.reply.out == {"eqn": 2} and r0.changes == ()
    assert r1.reply is not None and r1.reply.out == {"eqn": 3} and [c[0] for c in r1.changes] == ["eq:3"]
    state = ex.world.device.state
    assert state["eq:3"].uid == 0xFFFF and ex.world.shadow["eq:3"] == state["eq:3"]
    assert r2.reply is not None and r2.reply.errno == errno.EINVAL and r2.changes == ()
    assert not any(r.violations for r in (r0, r1, r2))


def test_2019_private_completion_eqs_are_found_shrunk_and_the_fix_closes_them(registry: Registry,
                                                                             tmp_path: Path) -> None:
    """"net/mlx5: Set completion EQs as shared resources" (c191f93454bc, 2019-05, Fixes: 7efce3691d33):
    eq.c create_map_eq() gave completion EQs uid 0 before it, so the firmware refused a DEVX CQ
    (uid != 0) on the EQ DEVX QUERY_EQN named.  A functional bug: the shortest sequence is the
    context, QUERY_EQN(0), and the CQ on eqn 2; nothing the kernel owns changed.  7.3.4's eq.c
    (linux-devx) closes it; so does the lax firmware, which checks no owner."""
    campaign = Campaign(registry, "rdma", registry.policy("rdma", "linux-devx-2019"),
                        registry.device("rdma", "spec"), seed=1, max_examples=300, corpus_dir=tmp_path)
    result = campaign.run()
    assert SHARED_EQ in result.findings, sorted(result.findings)
    finding = result.findings[SHARED_EQ]
    assert [s.op for s in finding.steps] == ["ALLOC_UCONTEXT", "QUERY_EQN", "OBJ_CREATE$cq"]
    # the CQ names the EQ QUERY_EQN answered (vector 0's eqn 2, or vector 1's eqn 3: as short, and which one the
    # search met first is the seed's; the plainer-arguments pass changes one argument at a time)
    replayed = registry.executor("rdma", registry.policy("rdma", "linux-devx-2019"), registry.device("rdma", "spec"))
    replayed.reset()
    answers = [replayed.apply(s).reply for s in finding.steps]
    assert answers[1] is not None and finding.steps[2].args["eqn"] == answers[1].out["eqn"]
    assert is_one_minimal(campaign.executor, finding.steps, SHARED_EQ)
    assert not [s for s in result.findings if s.startswith("kernel-owned-integrity:")]
    entry = corpus.load(SHARED_EQ_FILE)
    assert entry.signature == SHARED_EQ and [s.op for s in entry.steps] == [s.op for s in finding.steps]
    assert replay(registry, entry).still_fails
    assert not replay(registry, entry, policy="linux-devx").still_fails
    lax = registry.executor("rdma", registry.policy("rdma", "linux-devx-2019"), registry.device("rdma", "lax"))
    assert first_hit(lax, entry.steps, SHARED_EQ) is None
    # without QUERY_EQN the kernel promised nothing: the refused CQ alone is no violation
    ex = registry.executor("rdma", registry.policy("rdma", "linux-devx-2019"), registry.device("rdma", "spec"))
    assert first_hit(ex, [entry.steps[0], entry.steps[2]], SHARED_EQ) is None
    assert registry.policy("rdma", "linux-devx-2019").predates.count("c191f93454bc") == 1
    assert run_cli(["replay", str(SHARED_EQ_FILE), "--policy", "linux-devx", "-q"]) == 0


def test_devx_methods_accept_verbs_cq_and_qp_handles(registry: Registry) -> None:
    """devx.c devx_is_valid_obj_id() (7.3.4) takes UVERBS_OBJECT_CQ (the cqn) and UVERBS_OBJECT_QP
    (an RC QP's qpn) handles as well as DEVX ones (MLX5_IB_ATTR_DEVX_OBJ_MODIFY_HANDLE is
    UVERBS_IDR_ANY_OBJECT); cq.c create_cq_user() gives a verbs CQ the context's devx_uid.  A verbs
    handle naming its own object reaches firmware; naming the kernel's CQ it is refused, and with
    the check planted away the lax firmware lets the kernel's CQ be modified through it."""
    steps = [
        _devx("ALLOC_UCONTEXT", devx=True, cap=0),
        _devx("VERBS_CREATE$cq", ucontext="ucontext0", vector=0),
        _devx("VERBS_CREATE$qp", ucontext="ucontext0"),
        _devx("OBJ_MODIFY$cq", obj="devx_obj1", opcode="MODIFY_CQ", obj_id=3, value=2, uid=0),
        _devx("OBJ_QUERY$qp", obj="devx_obj2", opcode="QUERY_QP", obj_id=2, uid=0),
        _devx("OBJ_MODIFY$cq", obj="devx_obj1", opcode="MODIFY_CQ", obj_id=1, value=2, uid=0),
    ]
    ex = registry.executor("rdma", registry.policy("rdma", "linux-devx"), registry.device("rdma", "lax"))
    alloc, cq, qp, modify, query, kernels = ex.run(steps)
    assert alloc.reply is not None and cq.reply is not None and qp.reply is not None
    uid = alloc.reply.out["uid"]
    assert cq.reply.out == {"id": 3} and cq.changes[0][2].uid == uid  # the kernel's CQs are 1 and 2
    assert qp.reply.out == {"id": 2} and qp.changes[0][2].uid == uid  # the kernel's QP (GSI) is 1
    for r in (modify, query):
        assert r.decision is not None and r.decision.allowed and r.reply is not None and r.reply.rc == 0
    assert kernels.decision is not None and kernels.decision.rule == "devx-obj-id-valid"
    assert not any(r.violations for r in (alloc, cq, qp, modify, query, kernels))
    holed = registry.executor("rdma", registry.policy("rdma", "linux-devx", without=("devx-obj-id-valid",)),
                              registry.device("rdma", "lax"))
    sig = "kernel-owned-integrity:rdma:OBJ_MODIFY$cq:cq"
    minimal = one_minimal(holed, [steps[0], steps[1], steps[5]], sig)
    assert [s.op for s in minimal] == ["ALLOC_UCONTEXT", "VERBS_CREATE$cq", "OBJ_MODIFY$cq"]


@pytest.mark.parametrize(("info", "caps", "want"), [
    ({}, {"CAP_NET_RAW", "CAP_SYS_RAWIO"}, None),  # both bits, both capabilities
    ({"uctx_cap": 0}, {"CAP_NET_RAW", "CAP_SYS_RAWIO"}, {"cap": 0}),
    ({"log_max_uctx": 0}, {"CAP_NET_RAW", "CAP_SYS_RAWIO"}, errno.EINVAL),
])
def test_uctx_caps_need_the_firmware_bit_too(registry: Registry, info: dict[str, int], caps: set[str],
                                             want: object) -> None:
    """devx.c mlx5_ib_devx_create() (7.3.4, fidelity #25): no log_max_uctx is -EINVAL; a cap needs the
    firmware's uctx_cap bit as well as the capability."""
    import attrs
    from ptfuzz_rdma import ifc
    spec = registry.device("rdma", "spec")
    variant = attrs.evolve(spec, info={**spec.info, **info})
    ex = registry.executor("rdma", registry.policy("rdma", "linux-devx"), variant)
    step = Step("user", "ALLOC_UCONTEXT", {"devx": True, "cap": 0}, "rdma.devx", Caller(frozenset(caps)))
    d = ex.apply(step).decision
    assert d is not None
    if want is None:
        assert d.rewrite == {"cap": ifc.UCTX_CAP_RAW_TX | ifc.UCTX_CAP_INTERNAL_DEV_RES}
    elif isinstance(want, int):
        assert not d.allowed and d.errno == want
    else:
        assert d.rewrite == want


def _on(registry: Registry, device: str, **info: object) -> Any:
    import attrs
    dev = registry.device("rdma", device)
    return registry.executor("rdma", registry.policy("rdma", "linux-devx"),
                             attrs.evolve(dev, info={**dev.info, **info}) if info else dev)


def test_devx_without_log_max_uctx_has_no_methods_but_a_plain_ucontext_opens(registry: Registry) -> None:
    """7.3.4: mlx5_ib_alloc_ucontext() (main.c) calls mlx5_ib_devx_create() only with
    MLX5_IB_ALLOC_UCTX_DEVX, so its "0 means not supported" -EINVAL is for DEVX contexts alone;
    devx.c devx_is_supported() leaves every DEVX method out of the uapi without log_max_uctx
    (ib_uverbs_cmd_verbs(): -EPROTONOSUPPORT), and mlx5_ib_devx_init() gets no whitelist uid."""
    ex = _on(registry, "spec", log_max_uctx=0)
    plain, devx, query, eqn, cq = ex.run([
        _devx("ALLOC_UCONTEXT", devx=False, cap=0),
        _devx("ALLOC_UCONTEXT", devx=True, cap=0),
        _devx("OTHER$query", ucontext="ucontext0", opcode="QUERY_HCA_CAP", uid=0),
        _devx("QUERY_EQN", ucontext="ucontext0", vector=0),
        _devx("VERBS_CREATE$cq", ucontext="ucontext0", vector=0),
    ])
    assert plain.decision is not None and plain.decision.allowed and plain.reply is not None
    assert plain.reply.out == {"uid": 0}
    assert devx.decision is not None and (devx.decision.rule, devx.decision.errno) == ("uctx-caps", errno.EINVAL)
    for r in (query, eqn):
        assert r.decision is not None and (r.decision.rule, r.decision.errno) == (
            "devx-supported", errno.EPROTONOSUPPORT), r.decision
    assert cq.decision is not None and cq.decision.allowed  # verbs are not DEVX
    assert ex.world.kernel["whitelist_uid"] == 0
    assert not any(r.violations for r in (plain, devx, query, eqn, cq))
    # with log_max_uctx the same whitelisted query runs under the whitelist uid
    (_, ok) = _on(registry, "spec").run([_devx("ALLOC_UCONTEXT", devx=False, cap=0),
                                         _devx("OTHER$query", ucontext="ucontext0", opcode="QUERY_HCA_CAP", uid=0)])
    assert ok.decision is not None and ok.decision.allowed and ok.reply is not None and ok.reply.rc == 0


def test_devx_get_uid_refuses_a_whitelisted_command_without_a_whitelist_uid(registry: Registry) -> None:
    """devx.c devx_get_uid() (7.3.4): a whitelisted command from a context without a DEVX uid runs under
    dev->devx_whitelist_uid, and is -EOPNOTSUPP when mlx5_ib_devx_init() got none (its
    mlx5_ib_devx_create() failed); a context with a uid uses its own."""
    ex = _on(registry, "spec")
    ex.reset()
    ex.world.kernel["whitelist_uid"] = 0  # the probe's CREATE_UCTX failed
    plain = ex.apply(_devx("ALLOC_UCONTEXT", devx=False, cap=0))
    own = ex.apply(_devx("ALLOC_UCONTEXT", devx=True, cap=0))
    assert plain.reply is not None and own.reply is not None
    refused = ex.apply(_devx("OTHER$query", ucontext="ucontext0", opcode="QUERY_HCA_CAP", uid=0))
    assert refused.decision is not None and (refused.decision.rule, refused.decision.errno) == (
        "devx-uid", errno.EOPNOTSUPP), refused.decision
    mine = ex.apply(_devx("OTHER$query", ucontext="ucontext1", opcode="QUERY_HCA_CAP", uid=0))
    assert mine.decision is not None and mine.decision.allowed and mine.decision.rewrite == {"uid": own.reply.out["uid"]}


def test_devx_object_command_tables_are_7_3_4s(registry: Registry) -> None:
    """devx.c (7.3.4): devx_is_obj_create_cmd() passes SET_FLOW_TABLE_ENTRY only with op_mod 0,
    devx_is_obj_modify_cmd() only with op_mod 1, and devx_is_obj_query_cmd() has
    QUERY_SCHEDULING_ELEMENT, QUERY_L2_TABLE_ENTRY, QUERY_XRQ_*, QUERY_PACKET_REFORMAT_CONTEXT: such a
    command gets past the table to devx_is_valid_obj_id() (which refuses a CQ handle for it)."""
    from ptfuzz_rdma import policies

    ex = _on(registry, "spec")
    results = ex.run([
        _devx("ALLOC_UCONTEXT", devx=True, cap=0),
        _devx("OBJ_CREATE$cq", ucontext="ucontext0", opcode="CREATE_CQ", uid=0),
        _devx("OBJ_CREATE$pd", ucontext="ucontext0", opcode="SET_FLOW_TABLE_ENTRY", op_mod=1, uid=0),
        _devx("OBJ_MODIFY$cq", obj="devx_obj1", opcode="SET_FLOW_TABLE_ENTRY", op_mod=0, obj_id=1, value=0, uid=0),
        _devx("OBJ_MODIFY$cq", obj="devx_obj1", opcode="SET_FLOW_TABLE_ENTRY", op_mod=1, obj_id=1, value=0, uid=0),
        *(_devx("OBJ_QUERY$cq", obj="devx_obj1", opcode=op, obj_id=1, uid=0)
          for op in ("QUERY_SCHEDULING_ELEMENT", "QUERY_L2_TABLE_ENTRY", "QUERY_PACKET_REFORMAT_CONTEXT")),
    ])
    rules = [(r.decision.rule, r.decision.errno) for r in results[2:] if r.decision is not None]
    assert rules == [("devx-obj-create-cmd", errno.EINVAL), ("devx-obj-modify-cmd", errno.EINVAL),
                     *[("devx-obj-id-valid", errno.EINVAL)] * 4], rules
    assert len(policies.OBJ_CREATE) == 27 and len(policies.OBJ_MODIFY) == 27 and len(policies.OBJ_QUERY) == 25
