"""One QEMU guest with one CXL type-3 device, and the agent that runs steps in it.

The guest boots once (6-36 s under TCG) and then answers requests over a
virtio-serial port: the agent (``guest/agent.c``) runs each step on the real
uAPI as the step's caller and sends back the syscall's result, the device's
return code and whatever the kernel logged meanwhile.  The serial console is
kept in a file too, because an oops that kills the agent's child may leave
the kernel's mailbox mutex held, and the next request then never answers:
the host times out, says so, and boots a new guest.

The QEMU command line is the one measured in ``shared/reference/live-kernel.md``:
``-accel tcg`` (``/dev/kvm`` exists here but guests die under it), q35 with
CXL, one host bridge, one root port, one ``cxl-type3`` device with 256 MiB of
persistent memory and a 1 MiB LSA, and one CFMWS window.  Two additions:

* ``-cpu qemu64,hypervisor=off``: 7.3.4 commits a region only if the CPU can flush its caches
  for it (``cxl_region_invalidate_memregion()``; ``cpu_cache_has_invalidate_memregion()`` is
  false whenever CPUID says "hypervisor"), and the kernel lacks the test-only bypass
  ``CONFIG_CXL_REGION_INVALIDATION_TEST``.  TCG's ``wbinvd`` has no cache to flush, so hiding
  the bit loses nothing; with it, commit fails with ENXIO and a WARN.
* a QMP socket (``Guest.qmp()``), for what only the hardware does on its own: QEMU's
  ``cxl-inject-*`` commands put an event record into the device's log and raise its interrupt.

A distribution's kernel (``kernels.KernelImage``) has the CXL drivers as
modules: its directory holds ``modules/order`` beside ``bzImage``, and the
initramfs then carries those modules in ``/lib/modules`` and ``/init`` loads
them in that order with busybox's ``insmod`` before it waits for the memdev.
A kernel without that file boots exactly as before.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

from ptfuzz_cxl.live import tools

#: KASAN's and the oops handler's first lines: each is a finding of its own
CRASH = re.compile(
    r"(BUG: KASAN: [^\n]*|BUG: kernel NULL pointer dereference[^\n]*|BUG: unable to handle[^\n]*"
    r"|Oops: [^\n]*|general protection fault[^\n]*|kernel BUG at [^\n]*"
    r"|BUG: sleeping function[^\n]*|INFO: task [^\n]* blocked[^\n]*)"
)

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
echo 8 > /proc/sys/kernel/printk
{load_modules}port=
for i in $(seq 1 300); do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat $p/name 2>/dev/null)" = org.ptfuzz.agent ] && port=/dev/${p##*/}
  done
  [ -n "$port" ] && [ -e /dev/cxl/mem0 ] && break
  sleep 0.1
done
echo "ptfuzz: agent on $port"
exec /agent "$port"
"""
#: /init's part for a kernel with modules: each in /lib/modules/order's order, then wait until cxl_mem
#: has bound mem0 and cxl_pmem its nvdimm (/dev/cxl/mem0 appears before either: cxl_pci makes it), so
#: that the kernel's exclusive commands are set before the first step, as on a kernel with them built in
LOAD_MODULES = r"""for m in $(cat /lib/modules/order); do
  insmod /lib/modules/$m.ko || echo "ptfuzz: insmod $m failed"
done
for i in $(seq 1 300); do
  [ -e /sys/bus/cxl/devices/mem0/driver ] && [ -e /sys/bus/cxl/devices/pmem0/driver ] && break
  sleep 0.1
done
"""


def init_script(modules: bool) -> str:
    return INIT.replace("{load_modules}", LOAD_MODULES if modules else "")


def modules_beside(kernel: Path) -> list[Path]:
    """The modules a kernel's directory holds for the guest, in load order (``modules/order``), or none."""
    order = kernel.parent / "modules" / "order"
    if not order.exists():
        return []
    return [order.parent / f"{name}.ko" for name in order.read_text().split()]


class GuestError(Exception):
    """The guest could not be booted or stopped answering."""


class QmpError(GuestError):
    """QEMU refused a QMP command (its ``error`` answer); the guest itself is fine."""


@attrs.frozen
class Reply:
    """What the agent answered for one request."""

    rc: int
    errno: int
    retval: int
    out: bytes
    kmsg: str

    @property
    def crashed(self) -> bool:
        """The step's process died before answering (an oops in the syscall)."""
        return self.rc == -4

    def reports(self) -> list[str]:
        """KASAN/oops/WARNING first lines the kernel logged during this step."""
        return CRASH.findall(self.kmsg)


def _cpio(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc cpio archive: (name, mode, data); directories have mode 0o40755."""
    out = io.BytesIO()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], 1):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
        out.write(hdr.encode() + name_b)
        out.write(b"\0" * (-(110 + len(name_b)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))
    return out.getvalue()


def initrd(cache: Path, modules: Sequence[Path] = ()) -> Path:
    """The guest's initramfs: static busybox, the agent, ``/init`` and the kernel's modules (if it has any);
    built once per agent source and module set."""
    agent = tools.agent(cache)
    busybox = tools.busybox(cache)
    init = init_script(bool(modules))
    objects = [(m.stem, m.read_bytes()) for m in modules]
    key = tools.digest(agent.read_bytes(), busybox.read_bytes(), init.encode(),
                       *(part for name, data in objects for part in (name.encode(), data)))
    path = cache / "initrd" / f"initrd-{key}.cpio.gz"
    if path.exists():
        return path
    d = 0o40755
    entries = [(n, d, b"") for n in ("bin", "dev", "proc", "sys", "tmp", "sys/kernel", "sys/kernel/debug")]
    entries += [("bin/busybox", 0o100755, busybox.read_bytes()), ("agent", 0o100755, agent.read_bytes()),
                ("init", 0o100755, init.encode())]
    if objects:
        entries += [("lib", d, b""), ("lib/modules", d, b"")]
        entries += [(f"lib/modules/{name}.ko", 0o100644, data) for name, data in objects]
        entries += [("lib/modules/order", 0o100644, "".join(f"{name}\n" for name, _ in objects).encode())]
    path.parent.mkdir(parents=True, exist_ok=True)
    tools.atomic_write(path, gzip.compress(_cpio(entries), 6))
    return path


class Guest:
    """A booted guest and its agent; use as a context manager (``with Guest(...) as g``)."""

    def __init__(self, kernel: Path, cache: Path, *, memory: str = "2G", timeout: float = 120.0,
                 boot_timeout: float = 240.0, cmdline: str = "", modules: Sequence[Path] | None = None) -> None:
        self.kernel = kernel
        #: loaded at boot; by default what the kernel's directory holds (``modules_beside``)
        self.modules = list(modules_beside(kernel) if modules is None else modules)
        self.cache = cache
        self.memory = memory
        self.timeout = timeout
        self.boot_timeout = boot_timeout
        self.cmdline = cmdline
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.buf = b""
        self.dir = Path(tempfile.mkdtemp(prefix="ptfuzz-guest-"))
        self.console = self.dir / "console.log"
        self.boot_seconds = 0.0
        self.requests = 0

    # ------------------------------------------------------------------ lifecycle

    def command(self) -> list[str]:
        qemu = tools.qemu(self.cache)
        append = ("console=ttyS0 loglevel=4 panic=-1 kasan_multi_shot rdinit=/init "
                  "printk.devkmsg=on " + self.cmdline).strip()
        return [
            str(qemu.binary), *qemu.data_args,
            "-accel", "tcg", "-M", "q35,cxl=on", "-cpu", "qemu64,hypervisor=off",
            "-m", f"{self.memory},maxmem=8G,slots=8", "-smp", "1",
            "-display", "none", "-monitor", "none", "-no-reboot", "-net", "none",
            "-qmp", f"unix:{self.dir / 'qmp.sock'},server=on,wait=off",
            "-serial", f"file:{self.console}",
            "-kernel", str(self.kernel), "-initrd", str(initrd(self.cache, self.modules)), "-append", append,
            "-object", "memory-backend-ram,id=cxl-mem1,size=256M",
            "-object", "memory-backend-ram,id=cxl-lsa1,size=1M",
            "-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1",
            "-device", "cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2",
            "-device", "cxl-type3,bus=root_port13,memdev=cxl-mem1,lsa=cxl-lsa1,id=cxl-pmem0",
            "-M", "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G",
            "-device", "virtio-serial-pci,id=vser0,bus=pcie.0",
            "-chardev", f"socket,id=agent,path={self.dir / 'agent.sock'},server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=org.ptfuzz.agent",
        ]

    def start(self) -> Guest:
        t0 = time.monotonic()
        qemu = tools.qemu(self.cache)
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "qemu.err", "wb"), env={**os.environ, **qemu.env})
        deadline = t0 + self.boot_timeout
        sock_path = str(self.dir / "agent.sock")
        while True:
            if self.proc.poll() is not None:
                raise GuestError(f"QEMU exited with {self.proc.returncode}: "
                                 f"{(self.dir / 'qemu.err').read_text(errors='replace')[-2000:]}")
            if os.path.exists(sock_path):
                try:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(sock_path)
                    self.sock = s
                    break
                except OSError:
                    s.close()
            if time.monotonic() > deadline:
                raise GuestError("QEMU did not open the agent socket")
            time.sleep(0.1)
        hello = self._line(deadline - time.monotonic())
        if not hello.startswith("hello ptfuzz-agent"):
            raise GuestError(f"unexpected greeting from the agent: {hello[:80]!r}")
        self.boot_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Guest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests

    def _line(self, timeout: float) -> str:
        assert self.sock is not None
        deadline = time.monotonic() + max(timeout, 0.1)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuestError(f"the agent did not answer within {timeout:.0f} s "
                                 f"(console: {self.console_tail()!r})")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                raise GuestError(f"the agent hung up ({self._qemu_state()}; console: {self.console_tail()!r})")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("ascii", errors="replace")

    def call(self, *fields: str | int | bytes) -> Reply:
        """Send one request; bytes go hex-encoded, so no field ever carries a space or newline."""
        if self.sock is None:
            raise GuestError("the guest is not running")
        words = [f.hex() or "-" if isinstance(f, bytes) else str(f) for f in fields]
        self.sock.sendall((" ".join(words) + "\n").encode())
        self.requests += 1
        line = self._line(self.timeout)
        parts = line.split(" ")
        if parts[0] != "ok" or len(parts) != 7:
            raise GuestError(f"the agent refused the request: {line[:120]!r}")
        rc, err, retval, _n = (int(p) for p in parts[1:5])
        out = b"" if parts[5] == "-" else bytes.fromhex(parts[5])
        kmsg = "" if parts[6] == "-" else bytes.fromhex(parts[6]).decode("utf-8", errors="replace")
        return Reply(rc, err, retval, out, _kmsg_text(kmsg))

    def sh(self, command: str) -> Reply:
        """Run a shell command as root in the guest (kernel actions: sysfs, debugfs)."""
        return self.call("sh", command.encode())

    def read(self, path: str) -> str:
        r = self.call("read", path.encode())
        return r.out.decode(errors="replace") if r.rc >= 0 else ""

    def qmp(self, command: str, **arguments: object) -> dict[str, object]:
        """One QMP command on a fresh connection: the greeting, ``qmp_capabilities``, the command.

        Answers the command's ``return`` value (a non-object one as ``{"return": value}``); an
        ``error`` answer raises ``QmpError`` with QEMU's description.  Asynchronous events on the
        way are skipped.  QEMU serves one QMP client at a time: a connection per command keeps
        no state between them.
        """
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(self.timeout)
            s.connect(str(self.dir / "qmp.sock"))
            stream = s.makefile("rwb")

            def answer() -> dict[str, object]:
                while True:
                    line = stream.readline()
                    if not line:
                        raise GuestError(f"QMP hung up during {command}")
                    msg = json.loads(line)
                    if "return" in msg or "error" in msg or "QMP" in msg:
                        return dict(msg)

            def send(execute: str, args: dict[str, object] | None = None) -> object:
                stream.write(json.dumps({"execute": execute, **({"arguments": args} if args else {})}).encode()
                             + b"\n")
                stream.flush()
                msg = answer()
                if "error" in msg:
                    raise QmpError(f"QMP {execute}: {msg['error']}")
                return msg["return"]

            answer()  # the greeting
            send("qmp_capabilities")
            out = send(command, dict(arguments))
            return out if isinstance(out, dict) else {"return": out}

    def _qemu_state(self) -> str:
        """Whether QEMU itself went away (an assertion in a device model ends it), and what it said."""
        if self.proc is None:
            return "QEMU not started"
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "QEMU still running"
        err = (self.dir / "qemu.err").read_text(errors="replace")[-400:]
        return f"QEMU exited with {code}: {err!r}"

    def console_tail(self, n: int = 400) -> str:
        try:
            return self.console.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _kmsg_text(raw: str) -> str:
    """/dev/kmsg records ("6,339,5123,-;text") as plain lines."""
    lines = []
    for rec in raw.split("\n"):
        if ";" in rec and not rec.startswith(" "):
            lines.append(rec.split(";", 1)[1])
        elif rec.strip():
            lines.append(rec.strip())
    return "\n".join(lines)


@contextmanager
def booted(kernel: Path, cache: Path, **kw: object) -> Iterator[Guest]:
    g = Guest(kernel, cache, **kw)  # type: ignore[arg-type]
    try:
        yield g.start()
    finally:
        g.close()
