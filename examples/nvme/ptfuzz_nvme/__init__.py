"""ptfuzz-nvme: NVMe admin and I/O passthrough on Linux, as a third-party ptfuzz plugin.

Installed as its own distribution; ptfuzz finds it through the ``ptfuzz``
entry-point group.  It uses only what ``fuzzer`` exports.

    pip install ./examples/nvme
    ptfuzz run nvme --policy linux-nvme --device understating --seed 1
"""

from __future__ import annotations

from collections.abc import Iterator

from fuzzer import CallerSpace, Channel, Invariant, Knob, Policy, StepContext, Subsystem, Violation, hookimpl

from . import kernel, opcodes
from .commands import ADMIN, COMMANDS, IO
from .device import DEVICES, FIELDS, FIRMWARE
from .policies import CAP_SYS_ADMIN, OPEN_WRITE, POLICIES, kernel_effects

__version__ = "0.1.0"

_CAPS: tuple[frozenset[str], ...] = (frozenset(), frozenset({CAP_SYS_ADMIN}))

CHANNELS = (
    Channel(ADMIN, "NVME_IOCTL_ADMIN_CMD / NVME_IOCTL_ADMIN64_CMD on /dev/nvme0 (the admin queue)",
            callers=CallerSpace(caps=_CAPS)),
    Channel(IO, "NVME_IOCTL_IO_CMD on a namespace block device /dev/nvme0nN (its I/O queues)",
            # switches: how the caller opened the block device (nvme_cmd_allowed()'s open_for_write)
            callers=CallerSpace(caps=_CAPS, switches=(frozenset(), frozenset({OPEN_WRITE})))),
)

SUBSYSTEM = Subsystem(
    "nvme",
    fields=FIELDS,
    channels=CHANNELS,
    commands=COMMANDS,
    devices=DEVICES,
    actions=kernel.ACTIONS,
    kernel=kernel.boot,
    probe=kernel.probe,
    status_names=opcodes.STATUS_NAMES,
    firmware=FIRMWARE,
    effects=opcodes.EFFECT_NAMES,
    unsupported=opcodes.SC_INVALID_OPCODE,
    kernel_effects=kernel_effects,
    knobs=(
        Knob("write_mounted", True, cite="drivers/nvme/host/ioctl.c nvme_cmd_allowed()",
             doc="a writer may send I/O write commands to a namespace a file system has mounted"),
        Knob("known_effects", True, cite="drivers/nvme/host/core.c nvme_init_known_nvm_effects()",
             doc="the kernel adds the effects it knows to what the controller's effects log declares"),
    ),
    doc="NVMe controller and namespaces: admin and I/O passthrough ioctls",
)


def _write_needs_write_open(ctx: StepContext) -> Iterator[Violation]:
    """Data changed through an I/O passthrough came from a writer (nvme_cmd_allowed())."""
    if ctx.step.actor != "user" or ctx.step.channel != IO or ctx.step.caller is None:
        return
    caller = ctx.step.caller
    if CAP_SYS_ADMIN in caller.caps or OPEN_WRITE in caller.switches:
        return
    for key in ctx.changed:
        if key.startswith("ns.data:"):
            yield ctx.violation("write-open", f"{ctx.step.op} changed {key} through a block device "
                                f"opened read-only by {caller.describe()}", field="ns.data")


@hookimpl
def ptfuzz_subsystems() -> list[Subsystem]:
    return [SUBSYSTEM]


@hookimpl
def ptfuzz_policies() -> list[Policy]:
    return list(POLICIES)


@hookimpl
def ptfuzz_invariants() -> list[Invariant]:
    return [Invariant("write-open", _write_needs_write_open, subsystem="nvme",
                      doc="an I/O command that changes data needs a writable descriptor or CAP_SYS_ADMIN")]
