"""Run steps on a real kernel and set the kernel's verdict beside the model's.

A user step goes through the real uAPI as its caller (``CXL_MEM_SEND_COMMAND``
with the table's id or RAW, ``FWCTL_RPC``, a sysfs write), with the kernel's structs as
the C exporter lays them out, cut or padded to the step's declared sizes.  A kernel step is the administrator action it
stands for (EDAC sysfs, debugfs poison, waiting for a background operation);
one that cannot be done on this guest is marked *not performed* with the
reason, never skipped in silence.

Per step the outcome is one of:

* ``agree``: the same verdict (allowed, or the same errno) and, when allowed,
  the same device return code;
* ``partly``: the same verdict, another device return code (the device
  models differ, not the policy);
* ``disagree``: another verdict;
* ``not performed``: the step cannot be done here (``why``).

A KASAN report or oops during a step is a finding of its own, whatever the
verdicts: ``crash`` holds its first line, and the step is ``agree`` only if
the model also predicted an out-of-bounds access there.
"""

from __future__ import annotations

import errno as _errno
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from fuzzer.executor import Executor, StepResult
from fuzzer.live.guest import Guest, Reply
from fuzzer.plugins.cxl import mailbox as mb
from fuzzer.plugins.cxl.export_c import ENCODERS
from fuzzer.spec import Step

Outcome = Literal["agree", "partly", "disagree", "not performed"]

MEMDEV = "/dev/cxl/mem0"
FWCTL = "/dev/fwctl/fwctl0"
SYSFS = "/sys/bus/cxl/devices/mem0"
EDAC = "/sys/bus/edac/devices/cxl_mem0"
DEBUGFS = "/sys/kernel/debug/cxl"

#: include/uapi/linux/capability.h
CAPS = {"CAP_SYS_RAWIO": 17, "CAP_SYS_ADMIN": 21}
#: include/uapi/linux/cxl_mem.h CXL_CMDS: the ioctl table's ids
IOCTL_IDS = {
    "IDENTIFY": 1, "GET_SUPPORTED_LOGS": 3, "GET_FW_INFO": 4, "GET_PARTITION_INFO": 5, "GET_LSA": 6,
    "GET_HEALTH_INFO": 7, "GET_LOG": 8, "SET_PARTITION_INFO": 9, "SET_LSA": 10, "GET_ALERT_CONFIG": 11,
    "SET_ALERT_CONFIG": 12, "GET_SHUTDOWN_STATE": 13, "SET_SHUTDOWN_STATE": 14, "GET_POISON": 15,
    "INJECT_POISON": 16, "CLEAR_POISON": 17, "GET_SCAN_MEDIA_CAPS": 18, "SCAN_MEDIA": 19,
    "GET_SCAN_MEDIA": 20, "GET_TIMESTAMP": 21, "GET_LOG_CAPS": 22, "CLEAR_LOG": 23,
    "GET_SUP_LOG_SUBLIST": 24,
}
ID_RAW = 2
#: the agent cannot send more than this (it refuses larger before copying, as the kernel would)
MAX_SENT = 4 << 20


@attrs.frozen
class Verdict:
    """What one side said of a step: errno 0 means allowed; rc is the device's return code."""

    errno: int
    rc: int | None = None
    #: the model's out-of-bounds finding, or the kernel's KASAN/oops line
    crash: str = ""

    def describe(self, names: dict[int, str]) -> str:
        head = "allowed" if not self.errno else "-" + _errno.errorcode.get(self.errno, str(self.errno))
        if not self.errno and self.rc is not None:
            head += f" rc={names.get(self.rc, self.rc)}"
        return head + (f" !! {self.crash}" if self.crash else "")


@attrs.frozen
class LiveStep:
    index: int
    step: Step
    model: Verdict | None
    kernel: Verdict | None
    outcome: Outcome
    why: str = ""
    kmsg: str = ""
    #: the model's own result (handles it published, what changed)
    result: StepResult | None = attrs.field(default=None, eq=False, repr=False)


class NotPerformed(Exception):
    """This step cannot be done on this guest; the message says why."""


def caps_mask(caps: Iterable[str]) -> int:
    return sum(1 << CAPS[c] for c in caps if c in CAPS)


def model_verdict(r: StepResult) -> Verdict:
    oob = next((v.signature for v in r.violations if v.invariant == "out-of-bounds"), "")
    if r.decision is not None and not r.decision.allowed:
        return Verdict(r.decision.errno, None, oob)
    reply = r.reply
    if reply is None:
        return Verdict(0, None, oob)
    if reply.errno:
        return Verdict(reply.errno, None, oob)
    return Verdict(0, reply.rc, oob)


def _wire(executor: Executor, step: Step) -> bytes:
    """The input buffer as the exported C program fills it (``export_c.ENCODERS``, the kernel's structs).

    The model's policy reads the same slots at the same offsets (opcode, op_size, UUIDs, counts,
    flags); the structs also carry what a real caller sets and the layout leaves zero (a Set
    Feature's version, Get Supported Features' count), which QEMU checks.  Cut to the declared
    size; the agent zero-fills the rest, as the model's buffer is.
    """
    encode = ENCODERS.get(step.op)
    data = encode[1](dict(step.args)) if encode is not None else b""
    if step.channel == "cxl.fwctl":
        command = executor.user_index[(step.channel, step.op)]
        data = struct.pack("<IIII", command.opcode, 0, int(step.args["op_size"]), 0) + data
        size = int(step.args["in_len"])
    else:
        size = int(step.args["in_size"])
    return data[:min(size, MAX_SENT)]


class CxlTarget:
    """Steps of the ``cxl`` subsystem on a guest with one memdev (``mem0``).

    ``lacks``: kernel actions this guest's kernel has no path for, and why (``KernelBuild.lacks``).
    """

    def __init__(self, guest: Guest, lacks: Mapping[str, str] | None = None) -> None:
        self.guest = guest
        self.lacks = dict(lacks or {})

    # ------------------------------------------------------------------ user steps

    def user(self, executor: Executor, step: Step) -> Reply:
        caller = step.caller
        assert caller is not None
        if caller.lockdown != "none":
            raise NotPerformed(f"lockdown={caller.lockdown} is one-way: it needs a guest booted locked down")
        caps = caps_mask(caller.caps)
        if step.channel == "cxl.sysfs":
            attr = {"SANITIZE": "sanitize", "SECURE_ERASE": "erase"}[step.op]
            return self.guest.call("write", caps, f"{SYSFS}/security/{attr}".encode(), b"1\n")
        command = executor.user_index[(step.channel, step.op)]
        data = _wire(executor, step)
        if step.channel == "cxl.fwctl":
            from fuzzer import fwctl

            scope = fwctl.rank(caller.scope)
            return self.guest.call("fwctl", caps, FWCTL.encode(), max(scope, 0), int(step.args["in_len"]),
                                   int(step.args["out_len"]), data)
        if step.channel == "cxl.ioctl":
            if step.op not in IOCTL_IDS:
                raise NotPerformed(f"{step.op} has no CXL_MEM_SEND_COMMAND id")
            cmd_id = IOCTL_IDS[step.op]
        else:
            cmd_id = ID_RAW
        allow_all = "raw_allow_all" in caller.switches
        if allow_all:
            self.guest.call("write", caps_mask(CAPS), f"{DEBUGFS}/mbox/raw_allow_all".encode(), b"1\n")
        try:
            return self.guest.call("mem", caps, MEMDEV.encode(), cmd_id, command.opcode,
                                   int(step.args["in_size"]), int(step.args["out_size"]), data)
        finally:
            if allow_all:
                self.guest.call("write", caps_mask(CAPS), f"{DEBUGFS}/mbox/raw_allow_all".encode(), b"0\n")

    # ------------------------------------------------------------------ kernel steps

    def kernel(self, step: Step, inflight: int = 0) -> Reply:
        """``inflight``: the background opcode the model had running before the step."""
        a = step.args
        sh = self.guest.sh
        if step.op in self.lacks:
            raise NotPerformed(self.lacks[step.op])
        if step.op == "edac_set_scrub":
            return sh(f"echo {int(a['cycle_hours']) * 3600} > {EDAC}/scrub0/current_cycle_duration")
        if step.op == "edac_set_ecs":
            return sh(f"echo {int(a['threshold'])} > {EDAC}/ecs_fru0/threshold")
        if step.op in ("debugfs_inject_poison", "debugfs_clear_poison"):
            attr = "inject_poison" if step.op == "debugfs_inject_poison" else "clear_poison"
            return sh(f"echo {int(a['dpa']) * 64:#x} > {DEBUGFS}/mem0/{attr}")
        if step.op == "background_complete":
            return self.wait_background(inflight)
        raise NotPerformed(NOT_HERE.get(step.op, f"no administrator action for {step.op} on this guest yet"))

    def wait_background(self, opcode: int) -> Reply:
        """Let the guest's background operation finish, as ``background_complete`` says time passes.

        The kernel shows only a sanitize (``security/state``, which its poller updates: up to 11 s
        after QEMU is done); for the rest, QEMU's own clock: its timer checks once a second, a
        Transfer FW runs 2 s (10 s for a full transfer), a Scan Media of this device a millisecond.
        """
        if opcode == mb.SANITIZE:
            return self.guest.sh(f"for i in $(seq 1 300); do s=$(cat {SYSFS}/security/state); "
                                 f"[ \"$s\" != sanitize ] && exit 0; sleep 0.1; done; exit 1")
        seconds = {mb.TRANSFER_FW: 11.5}.get(opcode, 1.5) if opcode else 0
        return self.guest.sh(f"sleep {seconds}")

    # ------------------------------------------------------------------ one sequence

    def run(self, executor: Executor, steps: Sequence[Step]) -> list[LiveStep]:
        """Each step on the model (``executor``, continuing its world) and on the guest."""
        out: list[LiveStep] = []
        for n, step in enumerate(steps, 1):
            inflight = int(executor.world.device.state.get("bg.opcode", 0) or 0)
            result = executor.apply(step)
            model = model_verdict(result)
            try:
                reply = self.user(executor, step) if step.actor == "user" else self.kernel(step, inflight)
            except NotPerformed as exc:
                out.append(LiveStep(n, step, model, None, "not performed", str(exc), result=result))
                continue
            kernel = kernel_verdict(step, reply)
            out.append(LiveStep(n, step, model, kernel, compare(step, model, kernel), kmsg=reply.kmsg,
                                result=result))
        return out


NOT_HERE = {
    "nvdimm_bind": "cxl_pmem is built in (no modules in this kernel): the nvdimm binds at boot or never",
    "nvdimm_unbind": "cxl_nvdimm_driver suppresses sysfs unbind and cxl_pmem is built in",
    "cold_reset": "a cold reset is a new guest; the model's staged changes cannot be carried over",
    "media_error_event": "needs QMP cxl-inject-general-media-event (not wired yet)",
    "event_irq": "the driver drains event logs on its own interrupt; not triggerable from the guest",
    "region_create": "region creation through sysfs is not wired yet",
    "region_destroy": "region creation through sysfs is not wired yet",
    "fw_upload": "firmware upload through /sys/class/firmware is not wired yet",
    "edac_repair": "EDAC memory repair is not wired yet",
    "nvdimm_write_label": "needs ndctl in the guest",
}


def kernel_verdict(step: Step, reply: Reply) -> Verdict:
    reports = reply.reports()
    crash = reports[0] if reports else ("the step's process died (oops)" if reply.crashed else "")
    if reply.rc == -3:
        return Verdict(_errno.ENODEV, None, crash)  # the node is missing
    if reply.rc < 0:
        return Verdict(reply.errno or _errno.EFAULT, None, crash)
    if step.actor == "kernel":
        return Verdict(0 if reply.rc == 0 else _errno.EIO, None, crash)
    if step.channel == "cxl.sysfs":
        return Verdict(0, None, crash)
    return Verdict(0, reply.retval, crash)


def compare(step: Step, model: Verdict, kernel: Verdict) -> Outcome:
    if bool(kernel.crash) != bool(model.crash):
        return "disagree"
    if kernel.crash:
        return "agree"  # both saw the bad access; after a fault the errno means nothing
    if model.errno != kernel.errno:
        return "disagree"
    if step.actor == "user" and not model.errno and model.rc is not None and kernel.rc is not None \
            and model.rc != kernel.rc:
        return "partly"
    return "agree"


def tally(steps: Iterable[LiveStep]) -> dict[str, int]:
    counts: dict[str, Any] = {"agree": 0, "partly": 0, "disagree": 0, "not performed": 0}
    for s in steps:
        counts[s.outcome] += 1
    return counts
