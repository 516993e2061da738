"""Issue 17 #20r: ``struct fwctl_rpc`` framing and scope, as drivers/fwctl/main.c (7.3.4) checks them.

``fwctl_fops_ioctl()``: ``if (ucmd.user_size < op->min_size) return -EINVAL;`` then
``copy_struct_from_user()`` (``-E2BIG`` on non-zero bytes past the kernel's struct), then the
device's registration (``-ENODEV``); ``fwctl_cmd_rpc()``: ``in_len``/``out_len`` above
``MAX_RPC_LEN`` (``-EMSGSIZE``), then ``switch (cmd->scope)`` (``default: -EOPNOTSUPP``,
DEBUG_WRITE_FULL without CAP_SYS_RAWIO ``-EPERM``).  Shared by every fwctl channel.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

import pytest

from fuzzer import fwctl
from fuzzer.campaign import Campaign
from fuzzer.corpus import Entry
from fuzzer.executor import Executor
from fuzzer.host import Registry
from fuzzer.replay import replay
from fuzzer.sizes import Layout
from fuzzer.spec import Caller
from fuzzer.world import Step

ADMIN = frozenset({"CAP_SYS_ADMIN", "CAP_SYS_RAWIO"})


def ex(registry: Registry, subsystem: str, policy: str, device: str, without: tuple[str, ...] = ()) -> Executor:
    return registry.executor(subsystem, registry.policy(subsystem, policy, without),
                             registry.device(subsystem, device))


def rpc(scope: str = fwctl.CONFIGURATION, **args: object) -> Step:
    return Step("user", "GET_SUPPORTED_FEATURES", args, "cxl.fwctl", Caller(ADMIN, scope))


@pytest.mark.parametrize(("args", "scope", "want"), [
    ({}, fwctl.CONFIGURATION, (0, "")),
    ({"fwctl_size": 32}, fwctl.CONFIGURATION, (0, "")),  # sizeof == min_size == offsetofend(.., out)
    ({"fwctl_size": 31}, fwctl.CONFIGURATION, (errno.EINVAL, "fwctl-rpc-min-size")),
    ({"fwctl_size": 0}, fwctl.CONFIGURATION, (errno.EINVAL, "fwctl-rpc-min-size")),
    ({"fwctl_size": 40, "fwctl_tail": 0}, fwctl.CONFIGURATION, (0, "")),  # a newer, zeroed extension
    ({"fwctl_size": 40, "fwctl_tail": 1}, fwctl.CONFIGURATION, (errno.E2BIG, "fwctl-rpc-tail")),
    ({"fwctl_size": 32, "fwctl_tail": 1}, fwctl.CONFIGURATION, (0, "")),  # no byte past the struct is read
    ({"fwctl_size": 31, "fwctl_tail": 1}, fwctl.CONFIGURATION, (errno.EINVAL, "fwctl-rpc-min-size")),  # min first
    # copy_struct_from_user() runs before fwctl_cmd_rpc(): E2BIG before EMSGSIZE and the scope
    ({"fwctl_size": 40, "fwctl_tail": 1, "in_len": (2 << 20) + 1}, fwctl.UNDEFINED, (errno.E2BIG, "fwctl-rpc-tail")),
    ({"in_len": (2 << 20) + 1}, fwctl.UNDEFINED, (errno.EMSGSIZE, "fwctl-max-rpc-len")),
    ({}, fwctl.UNDEFINED, (errno.EOPNOTSUPP, "fwctl-scope-known")),
])
def test_each_framing_case_has_the_kernels_errno(registry: Registry, args: dict[str, int], scope: str,
                                                  want: tuple[int, str]) -> None:
    """drivers/fwctl/main.c fwctl_fops_ioctl(), fwctl_cmd_rpc() (7.3.4), in that order."""
    d = ex(registry, "cxl", "linux-fwctl", "spec").apply(rpc(scope, **args)).decision
    assert d is not None and (d.errno, d.rule) == want, d


def test_a_step_without_the_fields_is_a_correct_callers() -> None:
    """Corpus steps written before the fields existed leave them out: sizeof(struct fwctl_rpc), a zero tail."""
    sizes = {p.name: p for p in fwctl.envelope(Layout((), size=16)).sizes}
    assert (sizes["fwctl_size"].natural, sizes["fwctl_tail"].natural) == (fwctl.RPC_SIZE, 0)
    assert fwctl.RPC_SIZE == fwctl.RPC_MIN_SIZE == 4 + 4 + 4 + 4 + 8 + 8


@pytest.mark.parametrize(("subsystem", "policy"), [
    ("netdev", "linux-fwctl-bnxt"), ("netdev", "linux-fwctl-pds"), ("netdev", "linux-fwctl-mlx5"),
])
def test_framing_comes_before_the_registration_check(registry: Registry, subsystem: str, policy: str) -> None:
    """fwctl_fops_ioctl() (7.3.4) copies the struct in before ``if (!uctx->fwctl->ops) return -ENODEV``."""
    names = [r.name for r in registry.policy(subsystem, policy).rules]
    assert names.index("fwctl-rpc-min-size") < names.index("fwctl-rpc-tail") < names.index("fwctl-registered") \
        < names.index("fwctl-max-rpc-len") < names.index("fwctl-scope-known")


@pytest.mark.parametrize(("subsystem", "channel"), [
    ("cxl", "cxl.fwctl"), ("rdma", "rdma.fwctl"), ("netdev", "netdev.bnxt"), ("netdev", "netdev.pds"),
    ("netdev", "netdev.mlx5"), ("gpu", "gpu.fwctl"),
])
def test_every_fwctl_channel_draws_the_undefined_scope(registry: Registry, subsystem: str, channel: str) -> None:
    (ch,) = [c for c in registry.subsystem(subsystem).channels if c.name == channel]
    assert ch.scopes == fwctl.DRAWN_SCOPES and fwctl.rank(fwctl.UNDEFINED) == 4


def test_undefined_scope_neither_taints_nor_needs_rawio_when_the_default_is_gone(registry: Registry) -> None:
    """fwctl_cmd_rpc() (7.3.4): only ``case FWCTL_RPC_DEBUG_WRITE_FULL`` checks CAP_SYS_RAWIO and only it
    and ``case FWCTL_RPC_DEBUG_WRITE`` taint; features.c cxlctl_validate_set_features() compares
    ``scope >= FWCTL_RPC_DEBUG_WRITE``, so scope 4 passes it."""
    step = Step("user", "SET_FEATURE", {"uuid": "ffffffff-ffff-ffff-ffff-ffffffffffff", "value": 1}, "cxl.fwctl",
                Caller(frozenset(), fwctl.UNDEFINED))
    holed = ex(registry, "cxl", "linux-fwctl", "spec", ("fwctl-scope-known",)).apply(step)
    assert holed.decision is not None and holed.decision.allowed and not holed.decision.taint
    assert "access:cxl:SET_FEATURE:taint" in {v.signature for v in holed.violations}
    intact = ex(registry, "cxl", "linux-fwctl", "spec").apply(step).decision
    assert intact is not None and (intact.errno, intact.rule) == (errno.EOPNOTSUPP, "fwctl-scope-known")


def test_removing_the_framing_rules_opens_nothing(registry: Registry, tmp_path: Path) -> None:
    """A short struct is zero-filled and an ignored tail changes no buffer the kernel sizes from it: the
    framing is ABI (the errno test above), not a check with a hole behind it, unlike the scope's."""
    def found(without: tuple[str, ...]) -> set[str]:
        pol = registry.policy("cxl", "linux-fwctl", without)
        return set(Campaign(registry, "cxl", pol, registry.device("cxl", "spec"), seed=5, max_examples=1500,
                            corpus_dir=tmp_path / "_".join(("x", *without))).run().findings)
    assert found(("fwctl-rpc-min-size", "fwctl-rpc-tail")) == found(()) == set()


def test_the_c_export_sends_the_declared_size_and_tail(registry: Registry, tmp_path: Path) -> None:
    """The exporter emits the step's ``size`` (and its tail bytes), not ``sizeof(r)`` whatever was drawn."""
    e = ex(registry, "cxl", "linux-fwctl", "spec")
    odd = e.complete(rpc(fwctl.UNDEFINED, fwctl_size=40, fwctl_tail=0x5A))
    plain = e.complete(rpc())
    entry = Entry("cxl", "spec", "linux-fwctl", (plain, odd), {"signature": "x:cxl:GET_SUPPORTED_FEATURES:y",
                                                                 "step": 2})
    src = registry.exporter("c", "cxl").render(replay(registry, entry))
    assert "fwctl_cmd(fwctl, 1, sizeof(struct fwctl_rpc), 0x00, 0, " in src
    assert "fwctl_cmd(fwctl, 2, 40, 0x5a, 4, " in src
    assert "memset(arg + sizeof(r), tail, size - sizeof(r));" in src
    if shutil.which("cc"):
        (tmp_path / "x.c").write_text(src)
        done = subprocess.run(["cc", "-c", "-o", str(tmp_path / "x.o"), "-Wall", "-Wextra", "-Werror",
                               str(tmp_path / "x.c")], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
