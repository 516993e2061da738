"""The CXL plugin: a type-3 memory device, the Linux CXL driver, and its passthrough policies.

Loaded through the ``ptfuzz`` entry-point group like any third-party plugin.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from fuzzer import (
    CallerSpace,
    Channel,
    Exporter,
    Invariant,
    Knob,
    Policy,
    StepContext,
    Subsystem,
    Violation,
    fwctl,
    hookimpl,
)

from . import export_c, kernel, mailbox, transport
from .device import ALL_RAM, COMMANDS, FIELDS, FWCTL, IOCTL, RAW, SPEC, SYSFS, VENDOR
from .policies import CAP_SYS_ADMIN, POLICIES, RAW_ALLOW_ALL
from .qemu import QEMU

__version__ = "0.1.0"

CAPS: tuple[frozenset[str], ...] = (frozenset(), frozenset({CAP_SYS_ADMIN}), frozenset({CAP_SYS_ADMIN, fwctl.CAP_SYS_RAWIO}))
CALLERS = CallerSpace(caps=CAPS)
RAW_CALLERS = CallerSpace(
    caps=CAPS,
    lockdown=("none", "integrity", "confidentiality"),  # LOCKDOWN_PCI_ACCESS is checked on RAW only
    switches=(frozenset(), frozenset({RAW_ALLOW_ALL})),  # debugfs cxl/mbox/raw_allow_all
)

CHANNELS = (
    Channel(IOCTL, "CXL_MEM_SEND_COMMAND with a command id from the kernel's table",
            envelope=transport.MAILBOX_ENVELOPE, transport=transport.mailbox),
    Channel(RAW, "CXL_MEM_SEND_COMMAND with CXL_MEM_COMMAND_ID_RAW and any opcode", callers=RAW_CALLERS,
            envelope=transport.RAW_ENVELOPE, transport=transport.mailbox),
    Channel(FWCTL, "FWCTL_RPC to the CXL fwctl device (Features commands)", scopes=fwctl.DRAWN_SCOPES,
            envelope=transport.FWCTL_ENVELOPE, transport=transport.features_rpc),
    Channel(SYSFS, "/sys/bus/cxl/devices/memN/security/{sanitize,erase}", transport=transport.security_sysfs),
)

SUBSYSTEM = Subsystem(
    "cxl",
    fields=FIELDS,
    channels=CHANNELS,
    commands=COMMANDS,
    devices=(SPEC, VENDOR, ALL_RAM, QEMU),
    actions=kernel.ACTIONS,
    kernel=kernel.boot,
    probe=kernel.probe,
    callers=CALLERS,
    status_names=mailbox.RC_NAMES,
    unsupported=mailbox.RC_UNSUPPORTED,
    knobs=(
        Knob("exclusive_features", mailbox.EXCLUSIVE_FEATURES,
             cite="drivers/cxl/core/features.c cxl_exclusive_feats[]",
             doc="Feature UUIDs the kernel keeps from fwctl (the live target's test patch removes ECS)"),
        Knob("region_no_capacity_errno", errno.EINVAL,
             cite="drivers/cxl/core/hdm.c cxl_dpa_set_part() (7.3.4); cxl_dpa_set_mode() in 6.12",
             doc="what creating a region in a partition with no capacity answers: -EINVAL, -ENXIO in 6.12"),
    ),
    doc="CXL type-3 memory device: mailbox ioctl, RAW, fwctl Features, sysfs sanitize",
)


def _sanitize_under_region(ctx: StepContext) -> Iterator[Violation]:
    """design.md's example subsystem invariant: no sanitize while a region is active."""
    if "bg.opcode" in ctx.changed and ctx.world.kernel["regions"]:
        op = ctx.world.device.state["bg.opcode"]
        if op in (mailbox.SANITIZE, mailbox.SECURE_ERASE):
            yield ctx.violation(
                "sanitize-under-region",
                f"{ctx.step.op} started with committed decoders {sorted(ctx.world.kernel['regions'])}",
                field="media",
            )


@hookimpl
def ptfuzz_subsystems() -> list[Subsystem]:
    return [SUBSYSTEM]


@hookimpl
def ptfuzz_policies() -> list[Policy]:
    return list(POLICIES)


@hookimpl
def ptfuzz_exporters() -> list[Exporter]:
    return list(export_c.EXPORTERS)


@hookimpl
def ptfuzz_invariants() -> list[Invariant]:
    return [Invariant("sanitize-under-region", _sanitize_under_region, subsystem="cxl",
                      doc="no sanitize or secure erase while decoders are committed")]
