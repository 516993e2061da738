"""The netdev plugin's model facts, policies and Done-when findings.

Probe beliefs, every kernel action on every driver, each policy's rules and
their citations, the firmware-reliance findings (committed under
``corpora/netdev/``), and clean policies on honest firmware finding nothing.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from fuzzer import corpus, fwctl
from fuzzer.campaign import Campaign
from fuzzer.executor import Executor, StepResult
from fuzzer.host import Registry
from fuzzer.minimize import first_hit, is_one_minimal
from fuzzer.plugins.mlx5 import ifc
from fuzzer.plugins.netdev import hwrm
from fuzzer.plugins.netdev.policies import BNXT_SCOPE
from fuzzer.plugins.netdev.state import OWNED
from fuzzer.replay import replay
from fuzzer.spec import Caller
from fuzzer.world import Step

CORPUS = Path(__file__).resolve().parent.parent / "corpora" / "netdev"
DEVICES = ("bnxt", "bnxt-ring-drop", "pds", "pds-scope-update", "mlx5", "mlx5-tools-writes")
CHANNEL = {"bnxt": "netdev.bnxt", "pds": "netdev.pds", "mlx5": "netdev.mlx5"}
CONFIGURATION = Caller(scope=fwctl.CONFIGURATION)
WRITE = Caller(scope=fwctl.DEBUG_WRITE)


def executor(registry: Registry, device: str, policy: str = "permissive", without: tuple[str, ...] = ()) -> Executor:
    return registry.executor("netdev", registry.policy("netdev", policy, without=without),
                             registry.device("netdev", device))


def kernel(op: str, **args: Any) -> Step:
    return Step("kernel", op, args)


def rpc(device: str, op: str, caller: Caller = CONFIGURATION, **args: Any) -> Step:
    return Step("user", op, args, CHANNEL[device.partition("-")[0]], caller)


def signatures(result: StepResult) -> set[str]:
    return {v.signature for v in result.violations}


# ----------------------------------------------------------------------------- probe and kernel actions


@pytest.mark.parametrize("device", DEVICES)
def test_probe_programs_the_settings_and_believes_every_owned_field(registry: Registry, device: str) -> None:
    world = executor(registry, device).reset()
    state = world.device.state
    assert {k: world.shadow[k] for k in OWNED} == {k: state[k] for k in OWNED}
    assert (state["link.mtu"], state["link.admin"], state["link.oper"], state["rings"]) == (1500, 1, 1, 4)
    assert state["stats"] == 1000 and state["func.resets"] == 0 and state["fw.running"] == 1
    if device.startswith("mlx5"):  # mlx5ctl_open_uctx(): a uid with TOOLS_RESOURCES
        assert (world.kernel["fwctl_uid"], ifc.UCTX_CAP_TOOLS_RESOURCES) in state["fw.uctx"]
    if device.startswith("pds"):  # pdsfc_init_endpoints() at probe, operations on first use
        assert world.kernel["pds_endpoints"] == (1, 2) and world.kernel["pds_ops"] == {}


ACTIONS: list[tuple[Step, dict[str, Any]]] = [
    (kernel("ip_link_set_mtu", mtu=9000), {"link.mtu": 9000}),
    (kernel("ip_link_set", up=False), {"link.admin": 0, "link.oper": 0}),
    (kernel("ethtool_set_channels", count=2), {"rings": 2}),
    (kernel("ethtool_set_link", speed=3, pause=False), {"link.speed": 3, "link.pause": 0}),
    (kernel("sriov_numvfs", count=2), {"vf.count": 2}),
]


@pytest.mark.parametrize("device", ("bnxt", "pds", "mlx5"))
@pytest.mark.parametrize(("step", "expect"), ACTIONS, ids=[s.op for s, _ in ACTIONS])
def test_each_kernel_action_programs_the_firmware_and_is_believed(
        registry: Registry, device: str, step: Step, expect: dict[str, Any]) -> None:
    ex = executor(registry, device)
    ex.reset()
    result = ex.apply(step)
    assert result.reply is not None and result.reply.errno == 0
    assert {k: ex.world.device.state[k] for k in expect} == expect
    assert {k: ex.world.shadow[k] for k in expect} == expect
    assert not result.violations


@pytest.mark.parametrize("device", ("bnxt", "pds", "mlx5"))
def test_vf_configuration_needs_vfs(registry: Registry, device: str) -> None:
    ex = executor(registry, device)
    no_vf, _, vf = ex.run([kernel("ip_link_set_vf", state=2), kernel("sriov_numvfs", count=1),
                           kernel("ip_link_set_vf", state=2)])
    assert no_vf.reply is not None and no_vf.reply.errno == errno.EINVAL
    assert ex.world.device.state["vf.state"] == ex.world.shadow["vf.state"] == 2 and not vf.violations


@pytest.mark.parametrize(("device", "pending", "running"), [("bnxt", 2, 1), ("mlx5", 2, 1), ("pds", 0, 2)])
def test_devlink_flash_stages_or_installs(registry: Registry, device: str, pending: int, running: int) -> None:
    """bnxt and mlx5 stage the image; pds_core installs and activates it (and its driver recovers)."""
    ex = executor(registry, device)
    (result,) = ex.run([kernel("devlink_flash")])
    state = ex.world.device.state
    assert (state["fw.pending"], state["fw.running"], ex.world.shadow["fw.running"]) == (pending, running, running)
    assert not result.violations


@pytest.mark.parametrize("device", ("bnxt", "mlx5"))
def test_devlink_reload_fw_activate_runs_the_new_image_and_recovers(registry: Registry, device: str) -> None:
    ex = executor(registry, device)
    results = ex.run([kernel("devlink_flash"), kernel("devlink_reload", action="fw_activate")])
    state, world = ex.world.device.state, ex.world
    assert (state["fw.running"], state["func.resets"], state["rings"], state["link.oper"]) == (2, 1, 4, 1)
    assert world.kernel["recoveries"] == 1 and world.shadow["fw.running"] == 2
    assert not any(r.violations for r in results)


def test_pds_has_no_fw_activate_and_reinit_recovers(registry: Registry) -> None:
    ex = executor(registry, "pds")
    activate, reinit = ex.run([kernel("devlink_reload", action="fw_activate"),
                               kernel("devlink_reload", action="driver_reinit")])
    assert activate.reply is not None and activate.reply.errno == errno.EOPNOTSUPP
    assert reinit.reply is not None and reinit.reply.errno == 0 and ex.world.kernel["recoveries"] == 1


@pytest.mark.parametrize(("device", "policy", "op", "args"), [
    ("bnxt", "linux-fwctl-bnxt", "HWRM_VER_GET", {}),
    ("pds", "linux-fwctl-pds", "RPC$port.get", {"ep": 1}),
    ("mlx5", "linux-fwctl-mlx5", "QUERY_HCA_CAP", {"uid": 0}),
])
def test_unbind_unregisters_fwctl_and_ends_ownership_bind_restores(
        registry: Registry, device: str, policy: str, op: str, args: dict[str, Any]) -> None:
    ex = executor(registry, device, policy)
    caller = Caller(scope=fwctl.DEBUG_READ_ONLY)
    unbind, gone, bind, back = ex.run([kernel("driver_unbind"), rpc(device, op, caller, **args),
                                       kernel("driver_bind"), rpc(device, op, caller, **args)])
    assert gone.decision is not None and (gone.decision.allowed, gone.decision.errno) == (False, errno.ENODEV)
    assert back.decision is not None and back.decision.allowed
    assert ex.world.kernel["bound"] and set(OWNED) <= set(ex.world.shadow)
    assert not any(r.violations for r in (unbind, gone, bind, back))
    permissive = executor(registry, device)  # the driver itself answers -ENODEV without a policy
    _, raw = permissive.run([kernel("driver_unbind"), rpc(device, op, caller, **args)])
    assert raw.reply is not None and raw.reply.errno == errno.ENODEV


def test_bnxt_refuses_everything_while_the_ulp_is_stopped(registry: Registry) -> None:
    ex = executor(registry, "bnxt", "linux-fwctl-bnxt")
    query = rpc("bnxt", "HWRM_VER_GET", Caller(scope=fwctl.DEBUG_READ_ONLY))
    _, stopped, _, running = ex.run([kernel("pci_error_detected"), query, kernel("pci_resume"), query])
    assert stopped.decision is not None and stopped.decision.rule == "bnxtctl-ulp-stopped"
    assert stopped.decision.errno == errno.EPERM
    assert running.decision is not None and running.decision.allowed and ex.world.kernel["recoveries"] == 1


# ----------------------------------------------------------------------------- policies and their sources


def test_every_netdev_rule_cites_a_kernel_file_and_function(registry: Registry) -> None:
    for name in ("linux-fwctl-bnxt", "linux-fwctl-pds", "linux-fwctl-mlx5"):
        policy = registry.policy("netdev", name)
        assert policy.rules and policy.promises
        for rule in policy.rules:
            assert rule.cite.startswith("drivers/fwctl/") and "()" in rule.cite, (name, rule.name, rule.cite)


def test_the_mlx5_fwctl_rules_are_the_rdma_plugins(registry: Registry) -> None:
    """One scope table for the HCA and the NIC: same rule functions, names and citations."""
    rdma = registry.policy("rdma", "linux-fwctl-mlx5").rules
    netdev = registry.policy("netdev", "linux-fwctl-mlx5").rules
    assert netdev[0].name == "fwctl-registered"
    assert [(r.name, r.cite) for r in netdev[1:]] == [(r.name, r.cite) for r in rdma]
    assert [r.check for r in netdev[1:]] == [r.check for r in rdma]


def test_hwrm_values_and_bnxt_scopes_are_the_kernels() -> None:
    """include/linux/bnxt/hsi.h and drivers/fwctl/bnxt/main.c, as read."""
    assert (hwrm.REQ_TYPES["HWRM_FUNC_RESET"], hwrm.REQ_TYPES["HWRM_PORT_CLR_STATS"],
            hwrm.REQ_TYPES["HWRM_FW_RESET"], hwrm.REQ_TYPES["HWRM_NVM_FACTORY_DEFAULTS"]) == (0x11, 0x25, 0xC0, 0xFFEE)
    assert {op for op, s in BNXT_SCOPE.items() if s == fwctl.CONFIGURATION} >= {
        "HWRM_FUNC_RESET", "HWRM_PORT_CLR_STATS", "HWRM_FW_RESET", "HWRM_NVM_FACTORY_DEFAULTS"}
    assert hwrm.timeout_ms("HWRM_FUNC_RESET") == 2000 and hwrm.timeout_ms("HWRM_NVM_FLUSH") == 60000
    assert hwrm.timeout_ms("HWRM_VER_GET") == 500


@pytest.mark.parametrize("op", ["HWRM_FUNC_CFG", "HWRM_PORT_PHY_CFG", "HWRM_PORT_MAC_CFG", "HWRM_RING_FREE"])
def test_bnxt_refuses_the_kernels_own_configuration_commands(registry: Registry, op: str) -> None:
    (result,) = executor(registry, "bnxt", "linux-fwctl-bnxt").run(
        [rpc("bnxt", op, Caller(frozenset({fwctl.CAP_SYS_RAWIO}), fwctl.DEBUG_WRITE_FULL),
             **({"mtu": 9000} if op == "HWRM_FUNC_CFG" else {} if op == "HWRM_RING_FREE" else {"value": 3}))])
    assert result.decision is not None and result.decision.rule == "bnxtctl-default-deny"
    assert result.decision.errno == errno.EPERM and not result.changes


def test_bnxt_func_reset_at_configuration_scope(registry: Registry) -> None:
    """No taint, no capability.  Honest firmware posts RESET_NOTIFY and bnxt_en recovers; ring-drop does not."""
    (honest,) = (ex := executor(registry, "bnxt", "linux-fwctl-bnxt")).run([rpc("bnxt", "HWRM_FUNC_RESET")])
    assert honest.decision is not None and honest.decision.allowed and not ex.world.tainted
    assert honest.reply is not None and honest.reply.out["timeout_ms"] == 2000
    assert ex.world.kernel["recoveries"] == 1 and ex.world.device.state["rings"] == 4
    assert signatures(honest) == {"access:netdev:HWRM_FUNC_RESET:scope", "access:netdev:HWRM_FUNC_RESET:taint"}
    (dropped,) = executor(registry, "bnxt-ring-drop", "linux-fwctl-bnxt").run([rpc("bnxt", "HWRM_FUNC_RESET")])
    assert "kernel-owned-integrity:netdev:HWRM_FUNC_RESET:rings" in signatures(dropped)


def test_nvm_factory_defaults_waits_for_a_reset_and_the_driver_restores_its_settings(registry: Registry) -> None:
    ex = executor(registry, "bnxt", "linux-fwctl-bnxt")
    defaults, reset = ex.run([rpc("bnxt", "HWRM_NVM_FACTORY_DEFAULTS"), rpc("bnxt", "HWRM_FW_RESET")])
    assert [c[0] for c in defaults.changes] == ["nvm.config"] and not defaults.violations
    assert signatures(reset) == {"access:netdev:HWRM_FW_RESET:scope", "access:netdev:HWRM_FW_RESET:taint"}


def test_pds_caches_each_endpoint_on_first_use_even_when_it_refuses(registry: Registry) -> None:
    ex = executor(registry, "pds-scope-update", "linux-fwctl-pds")
    steps = [rpc("pds", "RPC$port.phy_write", ep=1, value=1), rpc("pds", "RPC$dbg.read", ep=7),
             kernel("devlink_flash"), rpc("pds", "RPC$port.stage", ep=1, value=1)]
    refused, bad_ep, _, stale = ex.run(steps)
    assert refused.decision is not None and (refused.decision.rule, refused.decision.errno) == ("pdsfc-scope",
                                                                                              errno.EPERM)
    assert bad_ep.decision is not None and (bad_ep.decision.rule, bad_ep.decision.errno) == ("pdsfc-endpoint",
                                                                                            errno.EINVAL)
    # the second image lists port.stage as DEBUG_WRITE, but the kernel asks only once
    assert ex.world.kernel["pds_ops"][1][0x2] == fwctl.CONFIGURATION
    assert stale.decision is not None and stale.decision.allowed
    assert "kernel-owned-integrity:netdev:RPC$port.stage:link.speed" in signatures(stale)
    # a rebind drops the cache: the fresh list refuses it
    rebound = ex.run([kernel("devlink_flash"), kernel("driver_unbind"), kernel("driver_bind"), steps[3]])[-1]
    assert rebound.decision is not None and (rebound.decision.rule, rebound.decision.errno) == ("pdsfc-scope",
                                                                                              errno.EPERM)


def test_mlx5_register_writes_pass_at_configuration_and_rest_on_the_firmware(registry: Registry) -> None:
    write = rpc("mlx5", "ACCESS_REG", uid=0, reg="PAOS", op_mod=0, value=0)
    (honest,) = (ex := executor(registry, "mlx5", "linux-fwctl-mlx5")).run([write])
    assert honest.decision is not None and honest.decision.allowed and not ex.world.tainted
    assert honest.decision.rewrite == {"uid": ex.world.kernel["fwctl_uid"]}
    assert honest.reply is not None and honest.reply.rc == ifc.BAD_PARAM and not honest.changes
    (relied,) = executor(registry, "mlx5-tools-writes", "linux-fwctl-mlx5").run([write])
    assert "kernel-owned-integrity:netdev:ACCESS_REG:link.admin" in signatures(relied)
    (read,) = executor(registry, "mlx5", "linux-fwctl-mlx5").run([rpc("mlx5", "ACCESS_REG", uid=0, reg="PAOS",
                                                                      op_mod=1, value=0)])
    assert read.decision is not None and (read.decision.rule, read.decision.errno) == ("mlx5ctl-read-scope",
                                                                                      errno.EBADMSG)


# ----------------------------------------------------------------------------- campaigns


def test_list_shows_the_netdev_variants_and_policies(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["list"]) == 0
    out = capsys.readouterr().out
    for name in (*DEVICES, "linux-fwctl-bnxt", "linux-fwctl-pds", "linux-fwctl-mlx5"):
        assert name in out, name


@pytest.mark.parametrize(("policy", "device"), [("linux-fwctl-pds", "pds"), ("linux-fwctl-mlx5", "mlx5")])
def test_clean_policies_on_honest_firmware_find_nothing(registry: Registry, tmp_path: Path, policy: str,
                                                        device: str) -> None:
    campaign = Campaign(registry, "netdev", registry.policy("netdev", policy), registry.device("netdev", device),
                        seed=1, max_examples=2000, corpus_dir=tmp_path)
    result = campaign.run()
    assert result.findings == {}, sorted(result.findings)
    assert campaign.sequences >= 2000


def test_bnxt_on_honest_firmware_finds_exactly_the_configuration_scope_answer(registry: Registry,
                                                                               tmp_path: Path) -> None:
    """The seed question: which CONFIGURATION-scope commands disturb netdev-owned state."""
    campaign = Campaign(registry, "netdev", registry.policy("netdev", "linux-fwctl-bnxt"),
                        registry.device("netdev", "bnxt"), seed=1, max_examples=2000, corpus_dir=tmp_path)
    result = campaign.run()
    holes = {s for s, f in result.findings.items() if f.violation.severity == "hole"}
    assert holes == {
        "access:netdev:HWRM_FUNC_RESET:scope", "access:netdev:HWRM_FUNC_RESET:taint",
        "access:netdev:HWRM_FW_RESET:scope", "access:netdev:HWRM_FW_RESET:taint",
        "kernel-owned-integrity:netdev:HWRM_PORT_CLR_STATS:stats",
    }
    for finding in result.findings.values():
        assert len(finding.steps) == 1 and is_one_minimal(campaign.executor, finding.steps,
                                                          finding.violation.signature)


def test_pds_scope_change_after_an_update_is_found_and_shrunk(registry: Registry, tmp_path: Path) -> None:
    sig = "kernel-owned-integrity:netdev:RPC$port.stage:link.speed"
    campaign = Campaign(registry, "netdev", registry.policy("netdev", "linux-fwctl-pds"),
                        registry.device("netdev", "pds-scope-update"), seed=1, max_examples=2000,
                        corpus_dir=tmp_path, targets=frozenset({sig}))
    finding = campaign.run().findings[sig]
    ops = [s.op for s in finding.steps]
    assert ops[0].startswith("RPC$port.") and ops[1:] == ["devlink_flash", "RPC$port.stage"]
    assert finding.steps[-1].caller is not None and finding.steps[-1].caller.scope == fwctl.CONFIGURATION
    assert is_one_minimal(campaign.executor, finding.steps, sig)
    honest = executor(registry, "pds", "linux-fwctl-pds")
    assert first_hit(honest, finding.steps, sig) is None


# ----------------------------------------------------------------------------- the committed findings

RELIANCE = {
    # firmware that lets the tools uid write port registers: mlx5ctl_validate_rpc() passes them at any scope
    "linux-fwctl-mlx5--mlx5-tools-writes--kernel-owned-integrity--ACCESS_REG--link.admin.json": "mlx5",
    "linux-fwctl-mlx5--mlx5-tools-writes--kernel-owned-integrity--ACCESS_REG--link.mtu.json": "mlx5",
    # a firmware update changes an operation's scope; the kernel keeps the cached list
    "linux-fwctl-pds--pds-scope-update--kernel-owned-integrity--RPC_port.stage--link.speed.json": "pds",
    # FUNC_RESET drops the netdev's rings and tells no one
    "linux-fwctl-bnxt--bnxt-ring-drop--kernel-owned-integrity--HWRM_FUNC_RESET--rings.json": "bnxt",
}
SEED_ANSWER = [
    "linux-fwctl-bnxt--bnxt--access--HWRM_FUNC_RESET--scope.json",
    "linux-fwctl-bnxt--bnxt--access--HWRM_FW_RESET--scope.json",
    "linux-fwctl-bnxt--bnxt--kernel-owned-integrity--HWRM_PORT_CLR_STATS--stats.json",
]


@pytest.mark.parametrize(("name", "honest"), sorted(RELIANCE.items()))
def test_firmware_reliance_findings_are_committed_and_honest_firmware_closes_them(
        registry: Registry, name: str, honest: str) -> None:
    entry = corpus.load(CORPUS / name)
    assert entry.violation["severity"] == "hole" and replay(registry, entry).still_fails
    assert entry.steps[-1].caller is not None and entry.steps[-1].caller.scope == fwctl.CONFIGURATION
    assert first_hit(executor(registry, honest, entry.policy), entry.steps, entry.signature) is None


@pytest.mark.parametrize("name", SEED_ANSWER)
def test_the_seed_answer_is_committed(registry: Registry, name: str) -> None:
    entry = corpus.load(CORPUS / name)
    assert len(entry.steps) == 1 and entry.steps[0].caller is not None
    assert entry.steps[0].caller.scope == fwctl.CONFIGURATION and not entry.steps[0].caller.caps
    assert replay(registry, entry).still_fails


def test_pds_before_the_input_size_fix_reads_past_a_short_request(registry: Registry, tmp_path: Path) -> None:
    """"fwctl: pds: Validate RPC input size before parsing" (e7537735028c): one short RPC is enough."""
    from fuzzer.replay import replay

    pol = registry.policy("netdev", "linux-fwctl-pds-unsized-input")
    assert pol.predates == "e7537735028c"
    result = Campaign(registry, "netdev", pol, registry.device("netdev", "pds"), seed=1, max_examples=1500,
                      corpus_dir=tmp_path).run()
    found = {s: f for s, f in result.findings.items() if s.startswith("out-of-bounds:netdev:")}
    assert found and all(len(f.steps) == 1 and f.steps[0].args["in_len"] < 48 for f in found.values())
    for f in found.values():
        assert f.path is not None
        assert not replay(registry, corpus.load(f.path), policy="linux-fwctl-pds").still_fails
