"""The executor's verdicts on hand-written steps: no Hypothesis involved."""

from __future__ import annotations

import errno

from ptfuzz_cxl import mailbox as mb

from fuzzer.executor import Executor
from fuzzer.host import Registry
from fuzzer.spec import Caller
from fuzzer.world import Step

ADMIN = Caller(frozenset({"CAP_SYS_ADMIN"}))
RAWIO = frozenset({"CAP_SYS_ADMIN", "CAP_SYS_RAWIO"})


def ex(registry: Registry, policy: str, device: str = "spec", without: tuple[str, ...] = ()) -> Executor:
    return registry.executor("cxl", registry.policy("cxl", policy, without), registry.device("cxl", device))


def user(op: str, channel: str, caller: Caller = ADMIN, **args: object) -> Step:
    return Step("user", op, args, channel, caller)


def kernel(action: str, **args: object) -> Step:
    return Step("kernel", action, args)


def sigs(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {v.signature for v in result.violations}


def test_probe_leaves_shadow_consistent(registry: Registry) -> None:
    e = ex(registry, "permissive")
    w = e.world
    for name, value in w.shadow.items():
        assert w.device.state[name] == value, name
    assert w.kernel["enabled"] >= {"SET_PARTITION_INFO", "SET_LSA", "IDENTIFY"}


def test_ioctl_denies_immediate_partition_change(registry: Registry) -> None:
    e = ex(registry, "linux-ioctl")
    r = e.apply(user("SET_PARTITION_INFO", "cxl.ioctl", volatile=4, immediate=True))
    assert not r.decision.allowed and r.decision.rule == "immediate-flag"
    assert r.changes == () and r.violations == ()
    r = e.apply(user("SET_PARTITION_INFO", "cxl.ioctl", volatile=4, immediate=False))
    assert r.decision.allowed and r.violations == ()
    assert [c[0] for c in r.changes] == ["partition.next_volatile"]


def test_cold_reset_applies_next_partition_and_reprobes(registry: Registry) -> None:
    e = ex(registry, "linux-ioctl")
    e.apply(user("SET_PARTITION_INFO", "cxl.ioctl", volatile=4, immediate=False))
    e.apply(kernel("region_create", mode="ram", size=1))
    r = e.apply(kernel("cold_reset"))
    assert r.violations == ()
    assert e.world.device.state["partition.active_volatile"] == 4 == e.world.shadow["partition.active_volatile"]
    assert e.world.kernel["regions"] == {}


def test_exclusive_commands_only_while_nvdimm_bound(registry: Registry) -> None:
    e = ex(registry, "linux-ioctl")
    assert e.apply(user("SET_LSA", "cxl.ioctl", offset=0, length=1, byte=7)).decision.allowed
    e.apply(kernel("nvdimm_bind"))
    r = e.apply(user("SET_LSA", "cxl.ioctl", offset=0, length=1, byte=9))
    assert not r.decision.allowed and r.decision.rule == "exclusive-cmds"
    e.apply(kernel("nvdimm_unbind"))
    assert e.apply(user("SET_LSA", "cxl.ioctl", offset=0, length=1, byte=9)).decision.allowed


def test_raw_set_feature_on_scrub_is_a_tainted_corruption(registry: Registry) -> None:
    # before 7.3.4 put the Features opcodes in cxl_disabled_raw_commands[]
    e = ex(registry, "linux-raw-features-allowed")
    assert e.apply(kernel("edac_set_scrub", cycle_hours=24)).violations == ()
    step = user("SET_FEATURE", "cxl.raw", uuid=mb.PATROL_SCRUB_UUID, value=6)
    r = e.apply(step)
    assert r.decision.allowed and "WARN" in r.decision.taint
    assert sigs(r) == {"kernel-owned-integrity:cxl:SET_FEATURE:scrub.cycle_hours:tainted"}
    # 7.3.4 refuses it, untainted: Features go through fwctl's scopes
    e = ex(registry, "linux-raw")
    e.apply(kernel("edac_set_scrub", cycle_hours=24))
    r = e.apply(step)
    assert r.decision.rule == "disabled-raw-commands" and r.changes == () and e.world.tainted == frozenset()


def test_raw_warn_only_for_allowed_commands(registry: Registry) -> None:
    e = ex(registry, "linux-raw")
    r = e.apply(user("SET_LSA", "cxl.raw", offset=0, length=1, byte=1))
    assert not r.decision.allowed and r.decision.rule == "disabled-raw-commands"
    assert e.world.tainted == frozenset()
    r = e.apply(user("IDENTIFY", "cxl.raw", Caller(lockdown="integrity")))
    assert not r.decision.allowed and e.world.tainted == frozenset()


def test_fwctl_taints_before_validation(registry: Registry) -> None:
    e = ex(registry, "linux-fwctl")
    r = e.apply(user("SET_FEATURE", "cxl.fwctl", Caller(RAWIO, scope="debug_write_full"),
                     uuid=mb.PATROL_SCRUB_UUID, value=6))
    assert not r.decision.allowed and r.decision.rule == "exclusive-features"
    assert e.world.tainted == frozenset({"FWCTL"})
    assert r.violations == ()


def test_fwctl_reset_only_feature_needs_debug_write(registry: Registry) -> None:
    e = ex(registry, "linux-fwctl")
    ro = e.apply(user("SET_FEATURE", "cxl.fwctl", Caller(scope="configuration"),
                      uuid=mb.TEST_FEATURE_UUID, value=1))
    assert not ro.decision.allowed and ro.decision.rule == "set-feature-reset-scope"
    ok = e.apply(user("SET_FEATURE", "cxl.fwctl", Caller(scope="debug_write"), uuid=mb.TEST_FEATURE_UUID, value=1))
    assert ok.decision.allowed and ok.violations == ()


def test_vendor_lie_is_an_undeclared_effect(registry: Registry) -> None:
    e = ex(registry, "permissive", "vendor")
    r = e.apply(user("ACME_RAS_RESTORE", "cxl.raw"))
    assert "declared-effects:cxl:ACME_RAS_RESTORE:scrub.cycle_hours" in sigs(r)
    assert "kernel-owned-integrity:cxl:ACME_RAS_RESTORE:scrub.cycle_hours" in sigs(r)


def test_spec_device_has_no_vendor_opcodes(registry: Registry) -> None:
    assert "ACME_RAS_RESTORE" not in ex(registry, "permissive").commands


def test_one_background_operation_at_a_time_and_media_disabled(registry: Registry) -> None:
    e = ex(registry, "permissive")
    assert e.apply(user("SANITIZE", "cxl.raw")).reply.rc == mb.RC_BACKGROUND
    dev = e.world.device  # the device itself: the kernel keeps these from it (below)
    assert dev.execute("SCAN_MEDIA", {}).rc == mb.RC_BUSY
    assert dev.execute("GET_LSA", {"offset": 0, "length": 1}).rc == mb.RC_MEDIADISABLED
    # 7.3.4 pci.c __cxl_pci_mbox_send_cmd(): while the sanitize poller runs, -EBUSY before the device
    r = e.apply(user("GET_LSA", "cxl.raw", offset=0, length=1))
    assert r.reply.errno == errno.EBUSY and r.reply.rc == 0
    assert e.apply(kernel("region_create", mode="ram", size=1)).reply.errno != 0
    e.apply(kernel("background_complete"))
    assert e.apply(user("GET_LSA", "cxl.raw", offset=0, length=1)).reply.rc == mb.RC_SUCCESS


def test_sanitize_guard_and_subsystem_invariant(registry: Registry) -> None:
    guarded = ex(registry, "linux-ioctl")
    guarded.apply(kernel("region_create", mode="ram", size=1))
    r = guarded.apply(user("SANITIZE", "cxl.sysfs"))
    assert not r.decision.allowed and r.decision.rule == "sanitize-decoders"
    holed = ex(registry, "linux-ioctl", without=("sanitize-decoders",))
    holed.apply(kernel("region_create", mode="ram", size=1))
    r = holed.apply(user("SANITIZE", "cxl.sysfs"))
    assert "sanitize-under-region:cxl:SANITIZE:media" in sigs(r)
    assert "kernel-owned-integrity:cxl:SANITIZE:media.generation" in sigs(r)


def test_closed_channel_denies_and_changes_nothing(registry: Registry) -> None:
    e = ex(registry, "linux-ioctl")
    r = e.apply(user("SET_TIMESTAMP", "cxl.raw", timestamp=5))
    assert not r.decision.allowed and r.decision.rule == "channel-closed" and r.changes == ()
    # without CONFIG_CXL_MEM_RAW_COMMANDS the RAW id is refused as the kernel does: -EPERM
    assert r.decision.errno == errno.EPERM
    closed = ex(registry, "linux-raw").apply(user("GET_FEATURE", "cxl.fwctl", uuid=mb.PATROL_SCRUB_UUID))
    assert closed.decision.errno == errno.ENODEV  # no fwctl driver: no such device


def test_corruption_reported_once_at_its_cause(registry: Registry) -> None:
    e = ex(registry, "permissive")
    assert sigs(e.apply(user("SET_TIMESTAMP", "cxl.raw", timestamp=5)))
    assert e.apply(user("IDENTIFY", "cxl.raw")).violations == ()
