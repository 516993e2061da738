"""Run steps on a real kernel and set the kernel's verdict beside the model's.

A user step goes through the real uAPI as its caller (``CXL_MEM_SEND_COMMAND``
with the table's id or RAW, ``FWCTL_RPC``, a sysfs write), with the kernel's structs as
the C exporter lays them out, cut or padded to the step's declared sizes.  A kernel step is the administrator action it
stands for (EDAC sysfs, debugfs poison, a region through the CXL bus's sysfs, a firmware upload
through the fw_upload class, waiting for a background operation or for the driver's own interrupt
handling); what only the device does on its own (log an event) goes through QEMU's QMP.  One
that cannot be done on this guest is marked *not performed* with the
reason, never skipped in silence.  An action made of several requests answers with the first
that failed (its errno is the kernel's verdict) and keeps what the kernel logged during all of them.

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
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from fuzzer import Step, fwctl
from fuzzer.harness import Executor, StepResult
from ptfuzz_cxl import mailbox as mb
from ptfuzz_cxl.export_c import ENCODERS, ID_RAW, IOCTL_IDS
from ptfuzz_cxl.live.guest import Guest, QmpError, Reply

Outcome = Literal["agree", "partly", "disagree", "not performed"]

MEMDEV = "/dev/cxl/mem0"
FWCTL = "/dev/fwctl/fwctl0"
SYSFS = "/sys/bus/cxl/devices/mem0"
EDAC = "/sys/bus/edac/devices/cxl_mem0"
DEBUGFS = "/sys/kernel/debug/cxl"
CXL_BUS = "/sys/bus/cxl/devices"
#: the guest's one root decoder (the CFMWS window, 4 GiB, pmem and ram)
ROOT_DECODER = f"{CXL_BUS}/decoder0.0"
REGION_DRIVER = "/sys/bus/cxl/drivers/cxl_region"
FW_UPLOAD = "/sys/class/firmware/mem0"
#: drivers/base/firmware_loader/sysfs_upload.c fw_upload_err_str[]: the class reports no errno, only
#: "PROGRESS:ERROR" in its error attribute; cxl_fw_write() gives read-write-error when Transfer FW
#: fails and hw-error when Activate FW does
FW_UPLOAD_ERRNO = {
    "hw-error": _errno.EIO, "timeout": _errno.ETIMEDOUT, "user-abort": _errno.ECANCELED,
    "device-busy": _errno.EBUSY, "invalid-file-size": _errno.EFBIG, "read-write-error": _errno.EIO,
    "flash-wearout": _errno.ENOSPC, "firmware-invalid": _errno.EINVAL,
}
#: at most payload_max - sizeof(struct cxl_mbox_transfer_fw) (2048 - 128), so that cxl_fw_prepare()
#: chooses one FULL transfer, as the model's fw_upload sends (QEMU then takes 10 s of background time)
FW_IMAGE_SIZE = 1024
FW_UPLOAD_TIMEOUT = 60.0
#: the cxl-type3 device's QOM path (guest.py: ``-device cxl-type3,...,id=cxl-pmem0``)
QOM_MEMDEV = "/machine/peripheral/cxl-pmem0"
#: the model's ``log`` is the CXL event log type (0 informational .. 3 fatal, what the kernel model
#: reads with GET_EVENT_RECORD); QEMU 10.0.2's qapi/cxl.json CxlEventLog names them in this order
#: and ct3d_qmp_cxl_event_log_enc() maps each name back to CXL_EVENT_TYPE_INFO .. _FATAL
EVENT_LOGS = ("informational", "warning", "failure", "fatal")

#: include/uapi/linux/capability.h
CAPS = {"CAP_SYS_RAWIO": 17, "CAP_SYS_ADMIN": 21}
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
        #: the model's region handle -> (the guest's region, its endpoint decoder); a region the
        #: guest made where the model failed is kept under "guest:NAME" (no model step names it)
        self.regions: dict[str, tuple[str, str]] = {}
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
            scope = fwctl.rank(caller.scope)
            return self.guest.call("fwctl", caps, FWCTL.encode(), int(step.args.get("fwctl_size", fwctl.RPC_SIZE)),
                                   int(step.args.get("fwctl_tail", 0)), max(scope, 0), int(step.args["in_len"]),
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
                                   int(step.args["in_size"]), int(step.args["out_size"]),
                                   int(step.args.get("flags", 0)), int(step.args.get("rsvd", 0)), data)
        finally:
            if allow_all:
                self.guest.call("write", caps_mask(CAPS), f"{DEBUGFS}/mbox/raw_allow_all".encode(), b"0\n")

    # ------------------------------------------------------------------ kernel steps

    def kernel(self, step: Step, handle: object = None, inflight: int = 0) -> Reply:
        """The administrator action ``step`` stands for; ``handle`` is what the model's action produced,
        ``inflight`` the background opcode the model had running before the step."""
        a = step.args
        sh = self.guest.sh
        if step.op in self.lacks:
            raise NotPerformed(self.lacks[step.op])
        if step.op == "region_create":
            return self._region_create(str(a["mode"]), int(a["size"]), handle)
        if step.op == "region_destroy":
            return self._region_destroy(str(a["region"]))
        if step.op == "fw_upload":
            return self._fw_upload(str(a["revision"]))
        if step.op == "media_error_event":
            return self._media_error_event(int(a["log"]))
        if step.op == "event_irq":
            return self._event_irq()
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

    # ------------------------------------------------------------------ regions

    def _region_create(self, mode: str, units: int, handle: object) -> Reply:
        """What ``cxl create-region`` does, in 7.3.4's order (drivers/cxl/core/region.c, port.c).

        The root decoder names the next region; ways and granularity (and, for pmem, a uuid)
        come before the size (``alloc_hpa()``); the endpoint decoder gets a partition
        (``mode``, ``cxl_dpa_set_part()``) and DPA (``dpa_size``, ``cxl_dpa_alloc()``) before it
        becomes target0; then commit, and bind to ``cxl_region``.  Sizes are the model's 256 MiB
        units.  On a failure the half-made region and its DPA are released, so the guest is left
        as the model is: without the region.
        """
        admin = _Admin(self.guest)
        size = hex(units * mb.CAPACITY_MULTIPLIER)
        decoder = _next_endpoint_decoder(admin)
        name = admin.read(f"{ROOT_DECODER}/create_{mode}_region")
        try:
            admin.write(f"{ROOT_DECODER}/create_{mode}_region", name)
        except _Failed as exc:
            return admin.reply(exc.reply)
        region = f"{CXL_BUS}/{name}"
        try:
            admin.write(f"{region}/interleave_granularity", "256")
            admin.write(f"{region}/interleave_ways", "1")
            if mode == "pmem":
                admin.write(f"{region}/uuid", f"{uuid.uuid4()}\n")  # uuid_store() wants the newline
            admin.write(f"{region}/size", size)
            admin.write(f"{CXL_BUS}/{decoder}/mode", mode)
            admin.write(f"{CXL_BUS}/{decoder}/dpa_size", size)
            admin.write(f"{region}/target0", decoder)
            admin.write(f"{region}/commit", "1")
            last = admin.write(f"{REGION_DRIVER}/bind", name)
        except _Failed as exc:
            admin.release(name, decoder)
            return admin.reply(exc.reply)
        self.regions[str(handle) if handle is not None else f"guest:{name}"] = (name, decoder)
        return admin.reply(last)

    def _region_destroy(self, handle: str) -> Reply:
        """What ``cxl destroy-region`` does: decommit (which unbinds), delete, free the decoder's DPA."""
        if handle not in self.regions:
            raise NotPerformed(f"the model's {handle} is not on the guest: its region_create failed there")
        name, decoder = self.regions[handle]
        admin = _Admin(self.guest)
        try:
            admin.write(f"{CXL_BUS}/{name}/commit", "0")
            admin.write(f"{ROOT_DECODER}/delete_region", name)
            del self.regions[handle]
            last = admin.write(f"{CXL_BUS}/{decoder}/dpa_size", "0")
        except _Failed as exc:
            return admin.reply(exc.reply)
        return admin.reply(last)

    # ------------------------------------------------------------------ firmware

    def _fw_upload(self, revision: str) -> Reply:
        """An upload through the fw_upload class, waited for: ``loading`` 1, the image into ``data``,
        ``loading`` 0; then ``status`` until ``idle`` and ``error`` for the outcome.

        The kernel's side (drivers/cxl/core/memdev.c): cxl_fw_prepare() reads the active slot
        (Get FW Info), cxl_fw_write() sends Transfer FW to the next slot and polls it to the end,
        then Activate FW offline (staged for the next reset).  The image's bytes mean nothing to
        QEMU; the revision goes into them only to tell uploads apart.
        """
        admin = _Admin(self.guest)
        image = f"ptfuzz firmware {revision}\n".encode().ljust(FW_IMAGE_SIZE, b"\xa5")
        try:
            admin.write(f"{FW_UPLOAD}/loading", "1")
            admin.write(f"{FW_UPLOAD}/data", image)
            last = admin.write(f"{FW_UPLOAD}/loading", "0")
        except _Failed as exc:
            return admin.reply(exc.reply)
        deadline = time.monotonic() + FW_UPLOAD_TIMEOUT
        while admin.read(f"{FW_UPLOAD}/status") != "idle":
            if time.monotonic() > deadline:
                try:
                    admin.write(f"{FW_UPLOAD}/cancel", "1")
                except _Failed:
                    pass
                return admin.reply(attrs.evolve(last, rc=-1, errno=_errno.ETIMEDOUT))
            time.sleep(0.25)
        error = admin.read(f"{FW_UPLOAD}/error")  # empty after a success
        if error:
            return admin.reply(attrs.evolve(last, rc=-1, errno=FW_UPLOAD_ERRNO.get(error.rpartition(":")[2], _errno.EIO),
                                            out=error.encode()))
        return admin.reply(last)

    # ------------------------------------------------------------------ events

    def _media_error_event(self, log: int) -> Reply:
        """The device logs a General Media event: QMP ``cxl-inject-general-media-event``.

        QEMU inserts the record (``cxl_event_insert()``) and, if the log was empty, raises the
        log's MSI-X vector.  The record says an uncorrectable media ECC error at DPA 0 with the
        log's severity; the model's event carries no such detail.  A refusal by QEMU is EIO.
        The kernel handles the interrupt before the agent's next request runs; that request
        (a read of ``/proc/interrupts``) brings back what the kernel logged meanwhile.
        """
        admin = _Admin(self.guest)
        try:
            self.guest.qmp("cxl-inject-general-media-event", path=QOM_MEMDEV, log=EVENT_LOGS[log], flags=log,
                           dpa=0, descriptor=1, type=0, **{"transaction-type": 0})
        except QmpError as exc:
            return admin.reply(Reply(-1, _errno.EIO, 0, str(exc).encode(), ""))
        return admin.reply(admin.call("read", b"/proc/interrupts"))

    def _event_irq(self) -> Reply:
        """Nothing for an administrator to do: 7.3.4 drains every log on the device's own interrupt
        (``cxl_event_thread()``: Get Event Records and Clear Event Records until the status is
        clear), and QEMU raised it when the record came.  So the step waits until the driver has
        done it: until every interrupt thread of the memdev's PCI function sleeps (5 s at most).
        """
        return self.guest.sh(
            f"d=$(readlink -f {SYSFS}/..)/msi_irqs; for i in $(seq 1 50); do busy=; "
            "for c in /proc/[0-9]*/comm; do read -r n < $c 2>/dev/null || continue; case $n in irq/*) "
            "q=${n#irq/}; [ -e $d/${q%%-*} ] && read -r _ _ st _ < ${c%comm}stat && [ $st != S ] && busy=1;; "
            "esac; done; [ -z \"$busy\" ] && exit 0; sleep 0.1; done; exit 1")

    # ------------------------------------------------------------------ one sequence

    def run(self, executor: Executor, steps: Sequence[Step]) -> list[LiveStep]:
        """Each step on the model (``executor``, continuing its world) and on the guest."""
        out: list[LiveStep] = []
        for n, step in enumerate(steps, 1):
            inflight = int(executor.world.device.state.get("bg.opcode", 0) or 0)
            result = executor.apply(step)
            model = model_verdict(result)
            try:
                reply = (self.user(executor, step) if step.actor == "user"
                         else self.kernel(step, result.reply_handle, inflight))
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
    "edac_repair": "QEMU 10.0.2 offers no soft-PPR or sparing feature, so 7.3.4's EDAC registers no mem_repair "
                   "on cxl_mem0 (only scrub0 and ecs_fru0..2)",
    "nvdimm_write_label": "needs ndctl in the guest",
}


def _next_endpoint_decoder(admin: _Admin) -> str:
    """The memdev's first endpoint decoder without DPA: 7.3.4 allocates them in order
    (``__cxl_dpa_reserve()``: ``port->hdm_end + 1``).  If none is free, the first: the kernel
    then answers for itself (EBUSY)."""
    out = admin.sh(f"cd {CXL_BUS} && for d in decoder*; do echo $d $(cat $d/devtype $d/dpa_size 2>/dev/null); done")
    ours = [line.split() for line in out.splitlines() if " cxl_decoder_endpoint " in line]
    free = [d for d, _, dpa in ours if int(dpa, 16) == 0]
    return (free or [d for d, _, _ in ours] or ["decoder2.0"])[0]


class _Failed(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.errno)
        self.reply = reply


class _Admin:
    """Root's requests for one kernel action: the first write that fails stops it (``_Failed``),
    and the kernel's log of every request is kept, so a report during any of them is the step's."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.kmsg: list[str] = []

    def call(self, *fields: str | int | bytes) -> Reply:
        r = self.guest.call(*fields)
        self.kmsg.append(r.kmsg)
        return r

    def read(self, path: str) -> str:
        r = self.call("read", path.encode())
        return r.out.decode(errors="replace").strip() if r.rc >= 0 else ""

    def sh(self, command: str) -> str:
        return self.call("sh", command.encode()).out.decode(errors="replace")

    def write(self, path: str, value: str | bytes) -> Reply:
        data = value.encode() if isinstance(value, str) else value
        r = self.call("write", caps_mask({"CAP_SYS_ADMIN"}), path.encode(), data)  # the agent writes as root
        if r.rc < 0:
            raise _Failed(r)
        return r

    def release(self, name: str, decoder: str) -> None:
        """Undo a half-made region: delete it (detaching its target), free the decoder's DPA."""
        for path, value in ((f"{ROOT_DECODER}/delete_region", name), (f"{CXL_BUS}/{decoder}/dpa_size", "0")):
            try:
                self.write(path, value)
            except _Failed:
                pass  # nothing to undo there

    def reply(self, last: Reply) -> Reply:
        """The action's answer: ``last`` (a failure, or the last request), rc 0 if it succeeded
        (a write's rc is its byte count), with every request's kernel log."""
        return attrs.evolve(last, rc=min(last.rc, 0), kmsg="\n".join(k for k in self.kmsg if k))


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
