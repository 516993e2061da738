"""The live target: how steps become uAPI requests, how verdicts are compared, and (with a kernel
built or fetched by ``ptfuzz live build``) what a real 7.3 kernel, and Debian's own 6.12, under
QEMU answer.

The guest tests boot a kernel from the cache; ``.ci/run`` builds it first.  Where no kernel is
cached they skip and say which command builds one: a build takes minutes and needs Debian's
archive, which is no place for a unit test to start on its own.  One guest runs at a time: the
6.12 guest's tests come first and close it before the 7.3 guest boots.
"""

from __future__ import annotations

import errno
import json
import lzma
import socket
import struct
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest
from ptfuzz_cxl.live import guest as guest_mod
from ptfuzz_cxl.live import kernels, known, runner, target, tools
from ptfuzz_cxl.live.target import LiveStep, Verdict, compare

from fuzzer import host
from fuzzer.spec import Caller, Step

RAW_ADMIN = Caller(frozenset({"CAP_SYS_ADMIN"}))
NOBODY = Caller()


@pytest.fixture(scope="module")
def registry() -> host.Registry:
    return host.load()


def _executor(registry: host.Registry, policy: str = "linux-raw", device: str = "spec") -> Any:
    return registry.executor("cxl", registry.policy("cxl", policy), registry.device("cxl", device), trace=True)


# --------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(("model", "kernel", "outcome"), [
    (Verdict(0, 0), Verdict(0, 0), "agree"),
    (Verdict(0, 0), Verdict(0, 3), "partly"),  # same verdict, another device answer
    (Verdict(errno.EPERM), Verdict(errno.EPERM), "agree"),
    (Verdict(errno.EPERM), Verdict(0, 0), "disagree"),
    (Verdict(0, 0), Verdict(errno.EINVAL), "disagree"),
    (Verdict(errno.EINVAL, None, "out-of-bounds:cxl:f:b"), Verdict(errno.EINVAL), "disagree"),  # no KASAN
    (Verdict(0, 0), Verdict(0, 0, "BUG: KASAN: slab-out-of-bounds in f"), "disagree"),
    (Verdict(0, 0, "out-of-bounds:cxl:f:b"), Verdict(0, 0, "BUG: KASAN: slab-out-of-bounds in f"), "agree"),
    (Verdict(0, 0, "out-of-bounds:cxl:f:b"), Verdict(errno.EFAULT, None, "Oops: general protection fault"), "agree"),
])
def test_compare(model: Verdict, kernel: Verdict, outcome: str) -> None:
    step = Step("user", "IDENTIFY", {}, "cxl.raw", NOBODY)
    assert compare(step, model, kernel) == outcome


def test_kasan_and_oops_lines_are_reports_but_the_raw_warn_is_not() -> None:
    kmsg = ("cxl_pci 0000:0d:00.0: raw command path used\nWARNING: drivers/cxl/core/mbox.c:425 at cxl_send_cmd\n"
            "BUG: KASAN: slab-out-of-bounds in cxlctl_fw_rpc+0x1a/0x2b\n"
            "BUG: kernel NULL pointer dereference, address: 0000000000000018\n")
    r = guest_mod.Reply(0, 0, 0, b"", kmsg)
    assert r.reports() == ["BUG: KASAN: slab-out-of-bounds in cxlctl_fw_rpc+0x1a/0x2b",
                           "BUG: kernel NULL pointer dereference, address: 0000000000000018"]


# --------------------------------------------------------------------------- the wire


class FakeAgent:
    """The agent's side of the socket: records request lines, answers with a canned reply."""

    def __init__(self, answer: str = "ok 0 0 0 0 - -") -> None:
        self.host, self.peer = socket.socketpair()
        self.lines: list[str] = []
        self.answer = answer
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        buf = b""
        while True:
            chunk = self.peer.recv(1 << 16)
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                self.lines.append(line.decode())
                self.peer.sendall((self.answer + "\n").encode())

    def guest(self, tmp_path: Path) -> guest_mod.Guest:
        g = guest_mod.Guest(tmp_path / "bzImage", tmp_path, timeout=5)
        g.sock = self.host
        return g


def test_every_field_is_one_word_whatever_it_holds(tmp_path: Path) -> None:
    agent = FakeAgent("ok 0 0 0 2 beef " + b"hello\nBUG: KASAN: x".hex())
    g = agent.guest(tmp_path)
    r = g.call("write", 0, b"/sys/x y\nz", b"1 2\n")
    assert agent.lines == ["write 0 " + b"/sys/x y\nz".hex() + " " + b"1 2\n".hex()]
    assert r.out == b"\xbe\xef" and r.reports() == ["BUG: KASAN: x"]


def test_a_refused_request_is_an_error_not_a_verdict(tmp_path: Path) -> None:
    g = FakeAgent("err bad-request").guest(tmp_path)
    with pytest.raises(guest_mod.GuestError, match="refused"):
        g.call("mem", 0, b"", 1, 2, 3, 4, b"")


class Recorder:
    """A guest that records what the target asks of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def call(self, *fields: Any) -> guest_mod.Reply:
        self.calls.append(fields)
        return guest_mod.Reply(0, 0, 0, b"", "")

    def sh(self, command: str) -> guest_mod.Reply:
        self.calls.append(("sh", command))
        return guest_mod.Reply(0, 0, 0, b"", "")

    def qmp(self, command: str, **arguments: Any) -> dict[str, Any]:
        self.calls.append(("qmp", command, arguments))
        return {}


def test_raw_step_is_cxl_mem_send_command_with_the_raw_id_and_the_models_bytes(registry: host.Registry) -> None:
    ex = _executor(registry)
    step = ex.complete(Step("user", "SET_TIMESTAMP", {"timestamp": 0x1122}, "cxl.raw", RAW_ADMIN))
    rec = Recorder()
    target.CxlTarget(rec).user(ex, step)  # type: ignore[arg-type]
    (verb, caps, dev, cmd_id, opcode, in_size, out_size, flags, rsvd, data), = rec.calls
    assert (flags, rsvd) == (0, 0)
    assert (verb, caps, dev, cmd_id, opcode) == ("mem", 1 << 21, b"/dev/cxl/mem0", target.ID_RAW, 0x0301)
    assert (in_size, out_size) == (8, step.args["out_size"])
    assert data == (0x1122).to_bytes(8, "little")


def test_ioctl_step_uses_the_tables_id(registry: host.Registry) -> None:
    ex = _executor(registry, "linux-ioctl")
    step = ex.complete(Step("user", "GET_TIMESTAMP", {}, "cxl.ioctl", NOBODY))
    rec = Recorder()
    target.CxlTarget(rec).user(ex, step)  # type: ignore[arg-type]
    assert rec.calls[0][:4] == ("mem", 0, b"/dev/cxl/mem0", 21)


def test_raw_allow_all_is_switched_on_around_the_step_only(registry: host.Registry) -> None:
    ex = _executor(registry)
    caller = Caller(frozenset(), switches=frozenset({"raw_allow_all"}))
    step = ex.complete(Step("user", "GET_TIMESTAMP", {}, "cxl.raw", caller))
    rec = Recorder()
    target.CxlTarget(rec).user(ex, step)  # type: ignore[arg-type]
    assert [c[0] for c in rec.calls] == ["write", "mem", "write"]
    assert rec.calls[0][3] == b"1\n" and rec.calls[2][3] == b"0\n"


def test_lockdown_cannot_be_done_on_a_running_guest(registry: host.Registry) -> None:
    ex = _executor(registry)
    step = ex.complete(Step("user", "GET_TIMESTAMP", {}, "cxl.raw", Caller(lockdown="integrity")))
    with pytest.raises(target.NotPerformed, match="one-way"):
        target.CxlTarget(Recorder()).user(ex, step)  # type: ignore[arg-type]


def test_a_kernel_action_without_an_administrator_path_is_marked_not_performed(registry: host.Registry) -> None:
    ex = _executor(registry)
    rec = Recorder()
    out = target.CxlTarget(rec).run(ex, [Step("kernel", "cold_reset", {})])  # type: ignore[arg-type]
    assert out[0].outcome == "not performed" and "cold reset" in out[0].why and rec.calls == []


def test_destroying_a_region_the_guest_never_made_is_not_performed(registry: host.Registry) -> None:
    """The model's handle names no guest region (its region_create failed there, and said so)."""
    rec = Recorder()
    with pytest.raises(target.NotPerformed, match="region0"):
        target.CxlTarget(rec).kernel(Step("kernel", "region_destroy", {"region": "region0"}))  # type: ignore[arg-type]
    assert rec.calls == []


def test_a_media_event_goes_to_the_qmp_log_named_like_the_models(registry: host.Registry) -> None:
    """The model's log 3 is the fatal log (CXL_EVENT_TYPE_FATAL); QEMU names it "fatal"."""
    rec = Recorder()
    target.CxlTarget(rec).kernel(Step("kernel", "media_error_event", {"log": 3}))  # type: ignore[arg-type]
    (verb, command, args), _read = rec.calls
    assert (verb, command) == ("qmp", "cxl-inject-general-media-event")
    assert (args["path"], args["log"]) == ("/machine/peripheral/cxl-pmem0", "fatal")


class FakeQmp:
    """QEMU's side of a QMP socket: the greeting, then one answer per command; an event first."""

    def __init__(self, path: Path, answers: dict[str, dict[str, Any]]) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.answers = answers
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        f = conn.makefile("rwb")
        f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
        f.flush()
        for line in f:
            msg = json.loads(line)
            self.seen.append(msg)
            f.write(b'{"event": "SOMETHING", "data": {}}\n')
            f.write(json.dumps(self.answers.get(msg["execute"], {"return": {}})).encode() + b"\n")
            f.flush()


def test_qmp_negotiates_then_sends_the_command_and_skips_events(tmp_path: Path) -> None:
    g = guest_mod.Guest(tmp_path / "bzImage", tmp_path, timeout=5)
    qmp = FakeQmp(g.dir / "qmp.sock", {"query-status": {"return": {"running": True}}})
    assert g.qmp("query-status") == {"running": True}
    assert qmp.seen == [{"execute": "qmp_capabilities"}, {"execute": "query-status"}]


def test_a_qmp_error_is_a_qmp_error_not_a_dead_guest(tmp_path: Path) -> None:
    g = guest_mod.Guest(tmp_path / "bzImage", tmp_path, timeout=5)
    FakeQmp(g.dir / "qmp.sock", {"cxl-inject-general-media-event": {
        "error": {"class": "GenericError", "desc": "Unable to resolve path"}}})
    with pytest.raises(guest_mod.QmpError, match="Unable to resolve path"):
        g.qmp("cxl-inject-general-media-event", path="/nowhere", log="failure")


def test_fwctl_step_carries_scope_and_lengths(registry: host.Registry) -> None:
    ex = _executor(registry, "linux-fwctl")
    step = ex.complete(Step("user", "GET_SUPPORTED_FEATURES", {}, "cxl.fwctl", Caller(scope="debug_read_only")))
    rec = Recorder()
    target.CxlTarget(rec).user(ex, step)  # type: ignore[arg-type]
    verb, _caps, dev, size, tail, scope, in_len, out_len, data = rec.calls[0]
    assert (verb, dev, size, tail, scope, in_len, out_len) == (
        "fwctl", b"/dev/fwctl/fwctl0", 32, 0, 1, step.args["in_len"], step.args["out_len"])  # sizeof(struct fwctl_rpc)
    # the header; the agent zero-fills the rest up to in_len, as the model's buffer is
    assert int.from_bytes(data[:4], "little") == 0x0500 and len(data) <= in_len


def test_a_disagreement_file_name_is_safe_whatever_the_verdict_text() -> None:
    step = Step("user", "../../etc/passwd", {}, "cxl.raw", NOBODY)
    live = LiveStep(1, step, Verdict(0, 0), Verdict(errno.EPERM), "disagree")
    d = runner.Disagreement("7.3", "linux-raw", "qemu", (step,), live, None)
    name = runner.file_name(d)
    assert "/" not in name and name.endswith(".json")


def test_known_differences_carry_reasons() -> None:
    for k in known.KNOWN:
        assert k.reason and len(k.reason) > 30, k.name


# --------------------------------------------------------------------------- a ready kernel's modules


def _module(info: dict[str, str]) -> bytes:
    """A minimal ELF64 object with a .modinfo section, as a module carries one."""
    modinfo = b"".join(f"{k}={v}".encode() + b"\0" for k, v in info.items())
    shstrtab = b"\0.modinfo\0.shstrtab\0"
    body = modinfo + shstrtab
    shoff = 64 + len(body)
    header = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0,
                                                               64, 0, 0, 64, 3, 2)
    null = bytes(64)
    sec_modinfo = struct.pack("<IIQQQQIIQQ", 1, 1, 0, 0, 64, len(modinfo), 0, 0, 1, 0)
    sec_strtab = struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, 64 + len(modinfo), len(shstrtab), 0, 0, 1, 0)
    return header + body + null + sec_modinfo + sec_strtab


def test_modules_load_after_what_they_depend_on_and_builtins_are_skipped(tmp_path: Path) -> None:
    """What Debian's image lacks (modules.dep) comes from each module's own .modinfo."""
    moddir = tmp_path / "6.12.0-test"
    (moddir / "kernel/drivers/cxl").mkdir(parents=True)
    (moddir / "kernel/drivers/nvdimm").mkdir(parents=True)
    (moddir / "modules.builtin").write_text("kernel/drivers/cxl/core/cxl_core.ko\nkernel/drivers/cxl/cxl_port.ko\n")
    mods = {
        "cxl/cxl_pmem": {"depends": "libnvdimm,cxl_core", "name": "cxl_pmem"},
        "cxl/cxl_mem": {"softdep": "pre: cxl_port", "depends": "", "name": "cxl_mem"},
        "cxl/cxl_acpi": {"softdep": "pre: cxl_port cxl_pmem post: cxl_mem", "depends": "", "name": "cxl_acpi"},
        "nvdimm/libnvdimm": {"depends": "", "name": "libnvdimm"},
    }
    for path, info in mods.items():
        (moddir / f"kernel/drivers/{path}.ko.xz").write_bytes(lzma.compress(_module(info), format=lzma.FORMAT_XZ))
    order = kernels.load_order(moddir, ("cxl_acpi", "cxl_mem"))
    assert [n for n, _ in order] == ["libnvdimm", "cxl_pmem", "cxl_acpi", "cxl_mem"]
    assert kernels.modinfo(order[1][1])["depends"] == ["libnvdimm,cxl_core"]  # decompressed
    with pytest.raises(tools.ToolError, match="no module cxl_pci"):
        kernels.load_order(moddir, ("cxl_pci",))


def test_a_kernel_without_modules_keeps_its_init_and_one_with_them_loads_them(tmp_path: Path) -> None:
    assert guest_mod.init_script(False) == guest_mod.INIT.replace("{load_modules}", "")
    assert "insmod" not in guest_mod.init_script(False) and "insmod" in guest_mod.init_script(True)
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "order").write_text("libnvdimm\ncxl_pmem\n")
    assert guest_mod.modules_beside(tmp_path / "bzImage") == [tmp_path / "modules/libnvdimm.ko",
                                                              tmp_path / "modules/cxl_pmem.ko"]
    assert guest_mod.modules_beside(tmp_path / "elsewhere" / "bzImage") == []


def test_an_action_the_kernel_lacks_is_not_performed(registry: host.Registry) -> None:
    """Debian's 6.12 has no CXL EDAC: the scrub step is marked, never sent."""
    ex = _executor(registry, "linux-ioctl", "qemu")
    ex.reset()
    rec = Recorder()
    lacks = kernels.KERNELS["debian-6.12"].lacks
    out = target.CxlTarget(rec, lacks).run(ex, [Step("kernel", "edac_set_scrub", {"cycle_hours": 12})])  # type: ignore[arg-type]
    assert out[0].outcome == "not performed" and "EDAC" in out[0].why and rec.calls == []


# --------------------------------------------------------------------------- a real kernel


def _kernel(name: str) -> Path:
    k = kernels.KERNELS[name]
    image = kernels.cached(k)
    if image is None:
        if isinstance(k, kernels.KernelImage):
            pytest.skip(f"kernel {name} is not fetched: run `ptfuzz live build {name}` (a 110 MB download, "
                        "no build; .ci/run does)")
        pytest.skip(f"kernel {name} is not built: run `ptfuzz live build {name}` (5 to 25 min; .ci/run does)")
    return image


@pytest.fixture(scope="class")
def guest(request: pytest.FixtureRequest) -> Any:
    """A guest of the class's ``kernel``, closed when the class is done."""
    image = _kernel(request.cls.kernel)
    with guest_mod.booted(image, tools.cache_dir()) as g:
        yield g


class TestDebian612:
    """Debian trixie's own 6.12 image: the CXL drivers as modules, no RAW, no fwctl."""

    kernel = "debian-6.12"

    def test_it_is_6_12_with_its_modules_and_the_nvdimm_bound(self, guest: guest_mod.Guest) -> None:
        out = guest.sh("uname -r; cat /proc/modules; ls /sys/bus/cxl/devices/pmem0/driver/").out.decode()
        assert out.startswith("6.12.")
        for module in ("cxl_pci", "cxl_mem", "cxl_acpi", "cxl_pmem", "libnvdimm"):
            assert f"{module} " in out, module
        assert "pmem0" in out  # cxl_nvdimm bound: SET_LSA and SET_SHUTDOWN_STATE are the kernel's

    def test_identify_over_the_ioctl_path(self, guest: guest_mod.Guest) -> None:
        r = guest.call("mem", 0, b"/dev/cxl/mem0", target.IOCTL_IDS["IDENTIFY"], 0x4000, 0, 0x43, 0, 0, b"")
        assert (r.rc, r.errno, r.retval) == (0, 0, 0)
        assert len(r.out) == 0x43 and r.out[:16].rstrip(b"\0")  # struct cxl_mbox_identify: fw_revision first

    def test_raw_is_refused_with_eperm(self, guest: guest_mod.Guest) -> None:
        """CONFIG_CXL_MEM_RAW_COMMANDS unset: 6.12.117 cxl_mem_raw_command_allowed() is false."""
        config = (_kernel("debian-6.12").parent / "config").read_text()
        assert "# CONFIG_CXL_MEM_RAW_COMMANDS is not set" in config
        for caps in (0, 1 << 21 | 1 << 17):
            r = guest.call("mem", caps, b"/dev/cxl/mem0", target.ID_RAW, 0x0301, 8, 0, 0, 0, bytes(8))  # SET_TIMESTAMP
            assert (r.rc, r.errno) == (-1, errno.EPERM)

    def test_no_fwctl(self, guest: guest_mod.Guest) -> None:
        assert guest.sh("[ -e /dev/fwctl ] || [ -e /sys/class/fwctl ]").rc != 0
        r = guest.call("fwctl", 1 << 21 | 1 << 17, b"/dev/fwctl/fwctl0", 32, 0, 1, 16 + 8, 64, b"")
        assert r.rc == -3  # the node is missing


@pytest.fixture(scope="module")
def booted() -> Any:
    image = _kernel("7.3")
    with guest_mod.booted(image, tools.cache_dir()) as g:
        yield g


def test_guest_has_the_memdev_and_the_fwctl_node(booted: guest_mod.Guest) -> None:
    out = booted.sh("ls /dev/cxl /dev/fwctl; cat /sys/bus/cxl/devices/mem0/payload_max").out.decode()
    assert "mem0" in out and "fwctl0" in out and "2048" in out


def test_73_refuses_the_features_opcodes_over_raw(booted: guest_mod.Guest) -> None:
    """7.3.4 drivers/cxl/core/mbox.c cxl_disabled_raw_commands[] has the three Features opcodes."""
    for opcode in (0x0500, 0x0501, 0x0502):
        r = booted.call("mem", 1 << 21, b"/dev/cxl/mem0", target.ID_RAW, opcode, 0, 2048, 0, 0, b"")
        assert (r.rc, r.errno) == (-1, errno.EPERM), hex(opcode)
    r = booted.call("mem", 0, b"/dev/cxl/mem0", target.ID_RAW, 0x0301, 8, 0, 0, 0, bytes(8))  # SET_TIMESTAMP
    assert (r.rc, r.retval) == (0, 0)


def test_an_unprivileged_caller_cannot_write_the_sanitize_attribute(booted: guest_mod.Guest) -> None:
    r = booted.call("write", 0, b"/sys/bus/cxl/devices/mem0/security/state", b"x")
    assert (r.rc, r.errno) == (-1, errno.EACCES)


def _live(g: guest_mod.Guest, registry: host.Registry, policy: str = "linux-ioctl") -> tuple[target.CxlTarget, Any]:
    """A target on ``g`` and a qemu-device model brought to the guest's boot state, as a session does."""
    ex = _executor(registry, policy, "qemu")
    ex.reset()
    for step in runner.SETUP:
        ex.apply(step)
    return target.CxlTarget(g), ex


def _region_state(g: guest_mod.Guest) -> tuple[str, str, str]:
    """The CXL bus's regions, endpoint2's committed decoders, decoder2.0's DPA size."""
    out = g.sh(f"cd {target.CXL_BUS} && echo $(ls -d region* 2>/dev/null); cat endpoint2/decoders_committed "
               "decoder2.0/dpa_size").out.decode().splitlines()
    return out[0], out[1], out[2]


CREATE_PMEM = Step("kernel", "region_create", {"mode": "pmem", "size": 1})


def test_a_pmem_region_is_created_committed_bound_and_destroyed(booted: guest_mod.Guest,
                                                                registry: host.Registry) -> None:
    t, ex = _live(booted, registry)
    create, = t.run(ex, [CREATE_PMEM])
    assert (create.outcome, create.kernel) == ("agree", Verdict(0)), create
    (handle, (name, decoder)), = t.regions.items()
    bus = target.CXL_BUS
    assert booted.read(f"{bus}/{name}/commit").strip() == "1"
    assert booted.read(f"{bus}/{decoder}/region").strip() == name
    assert booted.sh(f"readlink {bus}/{name}/driver").out.decode().strip().endswith("/cxl_region")
    assert _region_state(booted) == (name, "1", "0x0000000010000000")
    destroy, = t.run(ex, [Step("kernel", "region_destroy", {"region": handle})])
    assert (destroy.outcome, destroy.kernel) == ("agree", Verdict(0)), destroy
    assert t.regions == {} and _region_state(booted) == ("", "0", "0x0000000000000000")


def test_a_ram_region_and_one_past_the_capacity_fail_as_the_model_says_and_leave_nothing(
        booted: guest_mod.Guest, registry: host.Registry) -> None:
    """No volatile capacity: 7.3.4 has no ram partition (add_part() skips an empty one), so the
    endpoint decoder's ``mode`` write fails in cxl_dpa_set_part() with EINVAL; 512 MiB of a 256 MiB
    pmem partition fails in __cxl_dpa_alloc() with ENOSPC."""
    t, ex = _live(booted, registry)
    out = t.run(ex, [Step("kernel", "region_create", {"mode": "ram", "size": 1}),
                     Step("kernel", "region_create", {"mode": "pmem", "size": 2})])
    assert [s.kernel for s in out] == [Verdict(errno.EINVAL), Verdict(errno.ENOSPC)]
    assert [s.outcome for s in out] == ["agree", "agree"]
    assert t.regions == {} and _region_state(booted) == ("", "0", "0x0000000000000000")


def test_73_refuses_sysfs_sanitize_while_a_region_is_committed(booted: guest_mod.Guest,
                                                              registry: host.Registry) -> None:
    """The model's ``sanitize-decoders`` rule: cxl_mem_sanitize() answers EBUSY while the endpoint
    has committed decoders."""
    t, ex = _live(booted, registry)
    sanitize = ex.complete(Step("user", "SANITIZE", {}, "cxl.sysfs", RAW_ADMIN))
    create, refused = t.run(ex, [CREATE_PMEM, sanitize])
    try:
        assert create.kernel == Verdict(0) and _region_state(booted)[1] == "1"
        assert refused.model is not None and refused.model.errno == errno.EBUSY
        assert (refused.outcome, refused.kernel) == ("agree", Verdict(errno.EBUSY)), refused
        assert booted.read(f"{target.SYSFS}/security/state").strip() != "sanitize"
    finally:
        for handle in list(t.regions):
            t.run(ex, [Step("kernel", "region_destroy", {"region": handle})])


def _fw_info(g: guest_mod.Guest) -> tuple[int, int, list[bytes]]:
    """GET_FW_INFO through the ioctl table: the active slot, the staged slot, each slot's revision."""
    r = g.call("mem", 0, target.MEMDEV.encode(), target.IOCTL_IDS["GET_FW_INFO"], 0, 0, 0x50, 0, 0, b"")
    assert (r.rc, r.retval) == (0, 0), r
    revs = [r.out[0x10 + 0x10 * i: 0x20 + 0x10 * i].rstrip(b"\0") for i in range(r.out[0])]
    return r.out[1] & 0x7, (r.out[1] >> 3) & 0x7, revs


def test_a_firmware_upload_lands_in_the_next_slot_staged_for_the_next_reset(booted: guest_mod.Guest,
                                                                           registry: host.Registry) -> None:
    """cxl_fw_write(): one FULL Transfer FW to (active % slots) + 1, then Activate FW offline;
    QEMU marks the slot when its 10 s of background time are over and stages it."""
    t, ex = _live(booted, registry)
    active, _, _ = _fw_info(booted)
    upload, = t.run(ex, [Step("kernel", "fw_upload", {"revision": "v2"})])
    assert (upload.outcome, upload.kernel) == ("agree", Verdict(0)), upload
    after_active, staged, revs = _fw_info(booted)
    assert (after_active, staged) == (active, active % 2 + 1)
    assert revs[staged - 1]  # QEMU names a filled slot "BWFW VERSION n"
    assert booted.read(f"{target.FW_UPLOAD}/status").strip() == "idle"


def test_a_firmware_upload_during_a_sanitize_fails_as_the_model_says(booted: guest_mod.Guest,
                                                                    registry: host.Registry) -> None:
    """While QEMU sanitizes, 7.3.4's mailbox refuses every command (sanitize_active), so
    cxl_fw_prepare()'s Get FW Info fails: ``preparing:hw-error``.  The model's device answers
    MEDIA_DISABLED to Transfer FW instead.  Both are EIO."""
    t, ex = _live(booted, registry)
    sanitize = ex.complete(Step("user", "SANITIZE", {}, "cxl.sysfs", RAW_ADMIN))
    out = t.run(ex, [sanitize, Step("kernel", "fw_upload", {"revision": "v3"}), Step("kernel", "background_complete", {})])
    assert [s.kernel for s in out] == [Verdict(0), Verdict(errno.EIO), Verdict(0)], out
    assert [s.outcome for s in out] == ["agree", "agree", "agree"]
    assert booted.read(f"{target.FW_UPLOAD}/error").strip() == "preparing:hw-error"


def _memdev_interrupts(g: guest_mod.Guest) -> int:
    """How often the memdev's MSI-X vectors fired (/proc/interrupts)."""
    out = g.sh("grep PCI-MSIX-$(basename $(readlink -f /sys/bus/cxl/devices/mem0/..)) /proc/interrupts").out.decode()
    return sum(int(line.split()[1]) for line in out.splitlines())


def test_a_media_event_raises_the_interrupt_and_the_driver_clears_the_record(booted: guest_mod.Guest,
                                                                              registry: host.Registry) -> None:
    """QMP puts a record into the failure log and QEMU signals it; cxl_event_thread() reads and
    clears it on its own (QEMU drops a record only on Clear Event Record), and logs nothing."""
    t, ex = _live(booted, registry)
    before = _memdev_interrupts(booted)
    out = t.run(ex, [Step("kernel", "media_error_event", {"log": 2}), Step("kernel", "event_irq", {})])
    assert [(s.outcome, s.kernel) for s in out] == [("agree", Verdict(0))] * 2, out
    assert _memdev_interrupts(booted) == before + 1
    caps = target.caps_mask({"CAP_SYS_ADMIN", "CAP_SYS_RAWIO"})
    r = booted.call("mem", caps, target.MEMDEV.encode(), target.ID_RAW, 0x0100, 1, 2048, 0, 0, bytes([2]))  # failure log
    assert (r.rc, r.retval) == (0, 0)
    assert int.from_bytes(r.out[0x14:0x16], "little") == 0  # Get Event Records: record count


def test_corpus_files_agree_with_the_kernel_where_the_model_says_they_do(registry: host.Registry) -> None:
    """A RAW finding of the model is what 7.3 does: allowed, tainting with the WARN."""
    _kernel("7.3")
    path = "corpora/cxl/linux-raw--spec--kernel-owned-integrity--SET_TIMESTAMP--timestamp--tainted.json"
    r = runner.run_file(registry, path, kernels.KERNELS["7.3"], "linux-raw", tools.cache_dir())
    assert not r.error
    user = [s for s in r.steps if s.step.actor == "user"]
    assert [s.outcome for s in user] == ["agree"] and user[-1].kernel == Verdict(0, 0)
    assert "raw command path used" in json.dumps([s.kmsg for s in r.steps])


def test_the_test_patch_is_in_the_model_that_judges_that_kernel(registry: host.Registry) -> None:
    """test-ecs-user-feature.patch makes ECS a user feature; the policy judging 7.3 says so.  Released 7.3.4
    on QEMU's device creates no fwctl node at all (both features exclusive: devm_cxl_setup_fwctl())."""
    from ptfuzz_cxl import mailbox as mb

    full = Caller(frozenset({"CAP_SYS_ADMIN", "CAP_SYS_RAWIO"}), scope="debug_write_full")
    step = Step("user", "SET_FEATURE", {"uuid": mb.ECS_UUID, "value": 3}, "cxl.fwctl", full)
    released = registry.policy("cxl", "linux-fwctl")
    judged = kernels.KERNELS["7.3"].judge(released)
    verdicts = []
    for pol in (released, judged):
        ex = registry.executor("cxl", pol, registry.device("cxl", "qemu"), trace=True)
        ex.reset()
        verdicts.append(ex.apply(ex.complete(step)).decision)
    assert verdicts[0] is not None and (verdicts[0].allowed, verdicts[0].errno) == (False, errno.ENODEV)
    assert verdicts[0].rule == "fwctl-device"
    assert verdicts[1] is not None and verdicts[1].allowed


# --------------------------------------------------------------------------- the fwctl size checks, both ways

UNCHECKED = sorted(str(p) for p in Path("corpora/cxl").glob("linux-fwctl-unchecked-sizes--*.json"))


def test_the_nine_fwctl_size_findings_are_refused_by_73_and_kasan_stays_silent(registry: host.Registry) -> None:
    """7.3.4 features.c has the three checks: every finding of the code before them is -EINVAL there."""
    _kernel("7.3")
    assert len(UNCHECKED) == 9
    for path in UNCHECKED:
        r = runner.run_file(registry, path, kernels.KERNELS["7.3"], "linux-fwctl", tools.cache_dir(), "qemu")
        assert not r.error, path
        (step,) = [s for s in r.steps if s.step.actor == "user"]
        assert step.kernel == Verdict(errno.EINVAL) and step.outcome == "agree", (path, step)


def test_the_fwctl_size_findings_are_kasan_reports_or_oopses_with_the_checks_reverted(
        registry: host.Registry) -> None:
    """The historical policy's findings, on 7.3 with revert-fwctl-size-checks.patch: the model's
    out-of-bounds access is where the kernel faults or KASAN reports (six of the nine files; the
    other three use a feature QEMU lacks, so both sides refuse them: the ECS tests below show theirs)."""
    build = kernels.KERNELS["7.3-fwctl-unchecked-sizes"]
    _kernel(build.name)
    crashes = 0
    for path in UNCHECKED:
        r = runner.run_file(registry, path, build, "auto", tools.cache_dir(), "qemu")
        (step,) = [s for s in r.steps if s.step.actor == "user"]
        assert step.outcome == "agree", (path, step)
        crashes += bool(step.kernel and step.kernel.crash)
    assert crashes == 6


def test_a_set_feature_past_its_request_is_a_kasan_read_on_ecs(registry: host.Registry) -> None:
    """SET_FEATURE of ECS (a user feature on this kernel, by the test patch) with op_size past in_len:
    cxl_set_feature()'s memcpy() reads off the request (test-kasan-mailbox-copies.patch makes it seen)."""
    from ptfuzz_cxl import mailbox as mb

    build = kernels.KERNELS["7.3-fwctl-unchecked-sizes"]
    image = _kernel(build.name)
    ex = registry.executor("cxl", build.judge(registry.policy("cxl", "linux-fwctl-unchecked-sizes")),
                           registry.device("cxl", "qemu"), trace=True)
    full = Caller(frozenset({"CAP_SYS_ADMIN", "CAP_SYS_RAWIO"}), scope="debug_write_full")
    natural = ex.complete(Step("user", "SET_FEATURE", {"uuid": mb.ECS_UUID, "value": 3}, "cxl.fwctl", full))
    # op_size 8 bytes past what in_len carries
    step = attrs.evolve(natural, args={**natural.args, "op_size": natural.args["op_size"] + 8})
    (live,) = runner.run_steps(image, ex, [step], tools.cache_dir())
    assert live.model is not None and "out-of-bounds:cxl:cxl_set_feature:payload_in" in live.model.crash
    assert live.kernel is not None and live.kernel.crash.startswith("BUG: KASAN: slab-out-of-bounds")
    assert "cxl_set_feature" in live.kernel.crash
    assert live.outcome == "agree"


def test_a_set_feature_holding_only_its_uuid_is_a_kasan_read_in_cxlctl_set_feature(registry: host.Registry) -> None:
    """The ninth finding on ECS: in_len covers the header and the UUID, op_size claims more, and
    cxlctl_set_feature() reads feat_in->offset and ->flags past the request (inlined in cxlctl_fw_rpc)."""
    from ptfuzz_cxl import mailbox as mb

    build = kernels.KERNELS["7.3-fwctl-unchecked-sizes"]
    image = _kernel(build.name)
    ex = registry.executor("cxl", build.judge(registry.policy("cxl", "linux-fwctl-unchecked-sizes")),
                           registry.device("cxl", "qemu"), trace=True)
    full = Caller(frozenset({"CAP_SYS_ADMIN", "CAP_SYS_RAWIO"}), scope="debug_write_full")
    step = ex.complete(Step("user", "SET_FEATURE", {"uuid": mb.ECS_UUID, "value": 0, "in_len": 32, "op_size": 36},
                            "cxl.fwctl", full))
    (live,) = runner.run_steps(image, ex, [step], tools.cache_dir())
    assert live.model is not None and live.model.crash == "out-of-bounds:cxl:cxlctl_set_feature:payload_in"
    assert live.kernel is not None and live.kernel.crash.startswith("BUG: KASAN: slab-out-of-bounds in cxlctl_fw_rpc")
    assert live.outcome == "agree"


def test_conformance_catches_a_model_that_is_wrong_about_the_kernel(registry: host.Registry, tmp_path: Path) -> None:
    """linux-raw-features-allowed is the RAW table before 7.3.4 added the Features opcodes: on 7.3 the
    campaign must find RAW Get/Set Feature refused where that model allows them, minimize each to one
    step on a fresh guest, and save it."""
    _kernel("7.3")
    c = runner.Conformance(registry, kernels.KERNELS["7.3"], "linux-raw-features-allowed", "qemu", seed=1,
                           steps=600, out=tmp_path, log=lambda m: None)
    found = {d.signature: d for d in c.run()}
    ops = {d.last.step.op for d in found.values() if d.last.kernel == Verdict(errno.EPERM)}
    assert ops & {"GET_SUPPORTED_FEATURES", "GET_FEATURE", "SET_FEATURE"}, sorted(found)
    assert all(len(d.steps) == 1 for d in found.values() if d.last.step.op in ops)
    assert c.summary()["unexplained"] == len(found) > 0
    saved = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert {s["signature"] for s in saved} == set(found)


def test_a_set_feature_of_ecs_at_full_scope_goes_through_and_reads_back(registry: host.Registry) -> None:
    """What conformance rarely draws (2,000 steps of linux-fwctl met no allowed Set Feature): ECS set
    through fwctl at FWCTL_RPC_DEBUG_WRITE_FULL with CAP_SYS_RAWIO (its effects say immediate config
    change, cxlctl_validate_set_features()), then read back with Get Feature; both sides agree."""
    from ptfuzz_cxl import mailbox as mb

    build = kernels.KERNELS["7.3"]
    image = _kernel(build.name)
    ex = registry.executor("cxl", build.judge(registry.policy("cxl", "linux-fwctl")),
                           registry.device("cxl", "qemu"), trace=True)
    full = Caller(frozenset({"CAP_SYS_ADMIN", "CAP_SYS_RAWIO"}), scope="debug_write_full")
    write = Caller(frozenset({"CAP_SYS_ADMIN"}), scope="debug_write")
    steps = [ex.complete(Step("user", "SET_FEATURE", {"uuid": mb.ECS_UUID, "value": 4}, "cxl.fwctl", c))
             for c in (write, full)]
    steps.append(ex.complete(Step("user", "GET_FEATURE", {"uuid": mb.ECS_UUID, "count": 4}, "cxl.fwctl",
                                  Caller(scope="configuration"))))
    out = runner.run_steps(image, ex, steps, tools.cache_dir())
    assert [s.outcome for s in out] == ["agree"] * 3, out
    assert out[0].kernel is not None and out[0].kernel.errno == errno.EINVAL  # immediate needs FULL
    assert out[1].kernel == Verdict(0, 0) and out[2].kernel == Verdict(0, 0)
