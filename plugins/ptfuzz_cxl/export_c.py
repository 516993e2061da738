"""Export a CXL finding as a C program on the real UAPI.

User steps become ``CXL_MEM_SEND_COMMAND`` (ioctl or RAW id), ``FWCTL_RPC``
or sysfs writes, with payload bytes laid out as the kernel's structs
(``drivers/cxl/cxlmem.h``, ``include/cxl/features.h``).  Sizes are the
step's: a step at its natural sizes sends exactly the struct (the size
``cxl_mem_commands[]`` wants) and sizes a variable answer from the memdev's
``payload_max`` at run time; a step whose finding is about a size sends
that size.  Every step prints the ioctl's result and the device's return
code, and says ``ok`` only when both are success.  Kernel steps are
administrator actions (create a region, bind the nvdimm), so they are printed
as instructions and the program waits for Enter.  The UAPI structs are
declared inline, citing their headers, because distribution headers often
predate fwctl.
"""

from __future__ import annotations

import struct
import uuid as _uuid
from collections.abc import Callable
from typing import Any

from fuzzer import Exporter, Step, fwctl, safetext

from . import mailbox as mb
from .device import COMMANDS, VENDOR_COMMANDS

#: include/uapi/linux/cxl_mem.h CXL_CMDS ids of the non-RAW table
IOCTL_IDS = {
    "IDENTIFY": 1, "GET_SUPPORTED_LOGS": 3, "GET_FW_INFO": 4, "GET_PARTITION_INFO": 5, "GET_LSA": 6,
    "GET_HEALTH_INFO": 7, "GET_LOG": 8, "SET_PARTITION_INFO": 9, "SET_LSA": 10, "GET_ALERT_CONFIG": 11,
    "SET_ALERT_CONFIG": 12, "GET_SHUTDOWN_STATE": 13, "SET_SHUTDOWN_STATE": 14, "GET_SCAN_MEDIA_CAPS": 18,
    "GET_TIMESTAMP": 21, "GET_LOG_CAPS": 22, "CLEAR_LOG": 23, "GET_SUP_LOG_SUBLIST": 24,
    # ___DEPRECATED in 7.3.4 (-ENOTTY there); a 2022 kernel's table had them
    "GET_POISON": 15, "INJECT_POISON": 16, "CLEAR_POISON": 17,
}
ID_RAW = 2
OPCODES = {c.op: c.opcode for c in COMMANDS + VENDOR_COMMANDS}
PASSPHRASE_LEN = 32  # NVDIMM_PASSPHRASE_LEN
DPA_STRIDE = 64  # model DPAs are 64-byte aligned slots


def _uuid_bytes(u: str) -> bytes:
    return _uuid.UUID(u).bytes  # the kernel's uuid_t is the 16 bytes in RFC 4122 order


def _pass(p: str) -> bytes:
    return p.encode().ljust(PASSPHRASE_LEN, b"\0")


def _feature_data(u: str, value: int) -> bytes:
    if u == mb.PATROL_SCRUB_UUID:  # {u8 scrub_cycle_hours; u8 scrub_flags (bit0 enable)}
        return struct.pack("<BB", value, 1)
    if u == mb.ECS_UUID:  # {u8 log_cap; 3 x le16 config}
        return struct.pack("<BHHH", 0, value, value, value)
    return struct.pack("<I", value)


# op -> (struct name, encoder) ; payload layouts from drivers/cxl/cxlmem.h and include/cxl/features.h
ENCODERS: dict[str, tuple[str, Callable[[dict[str, Any]], bytes]]] = {
    "GET_EVENT_RECORD": ("u8 event_log", lambda a: struct.pack("<B", a["log"])),
    "CLEAR_EVENT_RECORD": ("struct cxl_mbox_clear_event_payload",
                           lambda a: struct.pack("<BBB3xH", a["log"], 0, 1, a["handle"])),
    "SET_EVT_INT_POLICY": ("struct cxl_event_interrupt_policy",
                           lambda a: bytes(a["setting"] if i == a["log"] else 1 for i in range(4))),
    "TRANSFER_FW": ("struct cxl_mbox_transfer_fw (FULL)",
                    lambda a: struct.pack("<BB2xI120x", 0, a["slot"], 0) + a["revision"].encode().ljust(128, b"\0")),
    "ACTIVATE_FW": ("struct cxl_mbox_activate_fw",
                    lambda a: struct.pack("<BB", 0 if a["online"] else 1, a["slot"])),
    "SET_TIMESTAMP": ("struct cxl_mbox_set_timestamp_in", lambda a: struct.pack("<Q", a["timestamp"])),
    "GET_LOG": ("struct cxl_mbox_get_log",
                lambda a: _uuid_bytes(a["log"]) + struct.pack("<II", a["offset"], a["length"])),
    "GET_LOG_CAPS": ("struct cxl_mbox_get_log_caps_in", lambda a: _uuid_bytes(a["log"])),
    "CLEAR_LOG": ("struct cxl_mbox_clear_log", lambda a: _uuid_bytes(a["log"])),
    "GET_SUP_LOG_SUBLIST": ("struct cxl_mbox_get_sup_log_sublist_in",
                            lambda a: struct.pack("<BB", a["max_entries"], a["start"])),
    "GET_SUPPORTED_FEATURES": ("struct cxl_mbox_get_sup_feats_in", lambda a: struct.pack("<IH2x", 2048, 0)),
    "GET_FEATURE": ("struct cxl_mbox_get_feat_in",
                    lambda a: _uuid_bytes(a["uuid"]) + struct.pack("<HHB", 0, a["count"], 0)),
    "SET_FEATURE": ("struct cxl_mbox_set_feat_in (FULL transfer)",
                    lambda a: _uuid_bytes(a["uuid"]) + struct.pack("<IHB9x", 0, 0, 1)
                    + _feature_data(a["uuid"], a["value"])),
    # volatile capacity in CXL_CAPACITY_MULTIPLIER (256 MiB) units; 10 bytes as cxl_mem_commands[] wants
    "SET_PARTITION_INFO": ("struct cxl_mbox_set_partition_info",
                           lambda a: struct.pack("<QBx", a["volatile"], 1 if a["immediate"] else 0)),
    "GET_LSA": ("struct cxl_mbox_get_lsa", lambda a: struct.pack("<II", a["offset"], a["length"])),
    "SET_LSA": ("struct cxl_mbox_set_lsa",
                lambda a: struct.pack("<II", a["offset"], 0) + bytes([a["byte"]]) * a["length"]),
    "SET_ALERT_CONFIG": ("struct cxl_mbox_set_alert_config",
                         lambda a: struct.pack("<BBBxHHHH", 0x3, 0x3, a["life_used_threshold"],
                                               a["temperature_threshold"], 0, 0, 0)),
    "SET_SHUTDOWN_STATE": ("struct cxl_mbox_set_shutdown_state_in", lambda a: struct.pack("<B", a["state"])),
    "GET_POISON": ("struct cxl_mbox_poison_in",
                   lambda a: struct.pack("<QQ", 0, mb.TOTAL_UNITS * mb.CAPACITY_MULTIPLIER // DPA_STRIDE)),
    "INJECT_POISON": ("struct cxl_mbox_inject_poison", lambda a: struct.pack("<Q", a["dpa"] * DPA_STRIDE)),
    "CLEAR_POISON": ("struct cxl_mbox_clear_poison",
                     lambda a: struct.pack("<Q", a["dpa"] * DPA_STRIDE) + bytes(DPA_STRIDE)),
    "GET_SCAN_MEDIA_CAPS": ("struct cxl_mbox_poison_in", lambda a: struct.pack("<QQ", 0, 1)),
    "SCAN_MEDIA": ("scan media input", lambda a: struct.pack("<QQB", 0, 1, 0)),
    "SET_PASSPHRASE": ("struct cxl_set_pass (user)",
                       lambda a: struct.pack("<B31x", 1) + _pass(a["old"]) + _pass(a["new"])),
    "DISABLE_PASSPHRASE": ("struct cxl_disable_pass (user)",
                           lambda a: struct.pack("<B31x", 1) + _pass(a["passphrase"])),
    "UNLOCK": ("u8 passphrase[32]", lambda a: _pass(a["passphrase"])),
    "PASSPHRASE_SECURE_ERASE": ("struct cxl_pass_erase (user)",
                                lambda a: struct.pack("<B31x", 1) + _pass(a["passphrase"])),
    "DO_MAINTENANCE": ("struct cxl_mbox_maintenance_hdr + PPR/sparing input",
                       lambda a: struct.pack("<BB10xBxxxQ", a["op_class"], a["op_subclass"], 0,
                                             a["dpa"] * DPA_STRIDE) + bytes(3)),
}

KERNEL_HOWTO = {
    "region_create": "create and commit a {mode} region of {size} x 256 MiB on this memdev "
                     "(e.g. cxl create-region -t {mode} -m <memdev>)",
    "region_destroy": "destroy region {region} (cxl destroy-region)",
    "nvdimm_bind": "bind the cxl_pmem nvdimm for this memdev (modprobe cxl_pmem)",
    # cxl_nvdimm_probe() registers clear_exclusive() as a devm action of the cxl_nvdimm device;
    # unbinding libnvdimm's nmemX does not run it, and cxl_nvdimm_driver has suppress_bind_attrs
    # (no sysfs unbind).  7.3.4: unloading cxl_pmem runs it, and so does unbinding memN from cxl_mem
    # (devm_cxl_add_nvdimm()'s cxlmd_release_nvdimm() unregisters the cxl_nvdimm device)
    "nvdimm_unbind": "unload cxl_pmem (modprobe -r cxl_pmem), or unbind the memdev from cxl_mem "
                     "(echo <memdev> > /sys/bus/cxl/drivers/cxl_mem/unbind), which unregisters its cxl_nvdimm",
    "edac_repair": "repair DPA {dpa} x 64 through EDAC (/sys/bus/edac/devices/cxl_<memdev>/mem_repair0/)",
    "nvdimm_write_label": "let libnvdimm write a label (e.g. ndctl create-namespace)",
    "edac_set_scrub": "set the patrol scrub cycle to {cycle_hours} h through EDAC "
                      "(/sys/bus/edac/devices/cxl_<memdev>/scrub0/current_cycle_duration)",
    "edac_set_ecs": "set the ECS threshold to {threshold} through EDAC (/sys/bus/edac/devices/cxl_<memdev>/ecs_fru*)",
    "fw_upload": "upload firmware {revision} (echo <file> > /sys/class/firmware/<memdev>/loading)",
    "background_complete": "wait for the running background operation to finish",
    "cold_reset": "cold-reset the device (power cycle) and let the driver re-probe",
    "debugfs_inject_poison": "inject poison at DPA {dpa} x 64 (/sys/kernel/debug/cxl/<memdev>/inject_poison)",
    "debugfs_clear_poison": "clear poison at DPA {dpa} x 64 (/sys/kernel/debug/cxl/<memdev>/clear_poison)",
    "media_error_event": "have the device log a General Media event in log {log} (hardware or an emulator)",
    "event_irq": "let the driver drain the event logs (event interrupt)",
}

PRELUDE = r"""#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* include/uapi/linux/cxl_mem.h */
struct cxl_send_command {
	uint32_t id;
	uint32_t flags;
	union {
		struct { uint16_t opcode; uint16_t rsvd; } raw;
		uint32_t rsvd;
	};
	uint32_t retval;
	struct { uint32_t size; uint32_t rsvd; uint64_t payload; } in;
	struct { uint32_t size; uint32_t rsvd; uint64_t payload; } out;
};
#define CXL_MEM_SEND_COMMAND _IOWR(0xCE, 2, struct cxl_send_command)

/* include/uapi/fwctl/fwctl.h */
struct fwctl_rpc {
	uint32_t size;
	uint32_t scope;
	uint32_t in_len;
	uint32_t out_len;
	uint64_t in;
	uint64_t out;
};
#define FWCTL_RPC _IO(0x9A, 1)
/* include/uapi/fwctl/cxl.h: struct fwctl_rpc_cxl header, then the command input */
struct fwctl_rpc_cxl_hdr { uint32_t opcode; uint32_t flags; uint32_t op_size; uint32_t reserved1; };

/* include/uapi/fwctl/cxl.h: struct fwctl_rpc_cxl_out */
struct fwctl_rpc_cxl_out { uint32_t size; uint32_t retval; };

/* The kernel's CMD_CMD_RC_TABLE (drivers/cxl/cxlmem.h), for printing the device's answer */
static const char *const mbox_rc[] = {
	"SUCCESS", "BACKGROUND", "INPUT", "UNSUPPORTED", "INTERNAL", "RETRY", "BUSY", "MEDIADISABLED",
	"FWINPROGRESS", "FWOOO", "FWAUTH", "FWSLOT", "FWROLLBACK", "FWRESET", "HANDLE", "PADDR",
	"POISONLMT", "MEDIAFAILURE", "ABORT", "SECURITY", "PASSPHRASE", "MBUNSUPPORTED", "PAYLOADLEN",
	"LOG", "INTERRUPTED", "FEATUREVERSION", "FEATURESELVALUE", "FEATURETRANSFERIP",
	"FEATURETRANSFEROOO", "RESOURCEEXHAUSTED", "EXTLIST",
};
static int failed;

/* /sys/bus/cxl/devices/memN/payload_max: the mailbox payload size (cxl_mbox->payload_size) */
static __attribute__((unused)) uint32_t payload_max(const char *sysfs)
{
	char path[512], buf[32] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/payload_max", sysfs);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 256; /* the smallest payload the spec allows */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? (uint32_t)strtoul(buf, NULL, 0) : 256;
}

/* A buffer of `size` bytes starting with `data` (zero-padded, or cut to `size`). */
static __attribute__((unused)) uint8_t *sized(const uint8_t *data, uint32_t len, uint64_t size)
{
	uint64_t room = size < (64u << 20) ? size : (64u << 20); /* the kernel refuses larger before copying */
	uint8_t *p = calloc(1, room + 1);

	if (p)
		memcpy(p, data, len < room ? len : room);
	return p;
}

static __attribute__((unused)) void report(int step, const char *what, int rc, int err, uint32_t retval)
{
	if (rc) {
		printf("step %d: %s -> -1 (%s)\n", step, what, strerror(err));
		failed = 1;
	} else if (retval) {
		printf("step %d: %s -> device error %u (%s)\n", step, what, retval,
			retval < sizeof(mbox_rc) / sizeof(mbox_rc[0]) ? mbox_rc[retval] : "?");
		failed = 1;
	} else {
		printf("step %d: %s -> ok\n", step, what);
	}
}

static __attribute__((unused)) void mem_cmd(const char *dev, int step, uint32_t id, uint16_t opcode, const uint8_t *in, uint32_t len,
			uint32_t in_size, uint32_t out_size, uint32_t flags, uint16_t rsvd)
{
	struct cxl_send_command c;
	uint8_t *inb = sized(in, len, in_size), *outb = calloc(1, (out_size < (64u << 20) ? out_size : 0) + 1);
	int fd = open(dev, O_RDWR), rc, err;
	char what[96];

	if (fd < 0) { printf("step %d: open %s: %s\n", step, dev, strerror(errno)); failed = 1; return; }
	memset(&c, 0, sizeof(c));
	c.id = id;
	c.flags = flags;
	c.raw.rsvd = rsvd; /* on a table id: the upper half of rsvd */
	if (id == 2)
		c.raw.opcode = opcode;
	c.in.size = in_size;
	c.in.payload = (uint64_t)(uintptr_t)inb;
	c.out.size = out_size;
	c.out.payload = (uint64_t)(uintptr_t)outb;
	rc = ioctl(fd, CXL_MEM_SEND_COMMAND, &c);
	err = errno;
	snprintf(what, sizeof(what), "CXL_MEM_SEND_COMMAND opcode %#06x in.size %u out.size %u", opcode,
			in_size, out_size);
	report(step, what, rc, err, c.retval);
	close(fd);
	free(inb);
	free(outb);
}

/* FWCTL_RPC with a struct fwctl_rpc that says it is `size` bytes: a larger one carries `tail` in every byte
 * past the kernel's struct (a newer userspace's extension), which copy_struct_from_user() wants zero. */
static __attribute__((unused)) void fwctl_cmd(const char *dev, int step, uint32_t size, uint8_t tail, uint32_t scope,
			uint16_t opcode, const uint8_t *in, uint32_t len, uint32_t in_len, uint32_t out_len, uint32_t op_size)
{
	uint8_t *buf = calloc(1, sizeof(struct fwctl_rpc_cxl_hdr) + len);
	struct fwctl_rpc_cxl_hdr *h = (struct fwctl_rpc_cxl_hdr *)buf;
	uint8_t *inb, *outb = calloc(1, (out_len < (64u << 20) ? out_len : 0) + sizeof(struct fwctl_rpc_cxl_out));
	struct fwctl_rpc r;
	uint8_t *arg = calloc(1, size > sizeof(r) ? size : sizeof(r));
	int fd = open(dev, O_RDWR), rc, err;
	char what[128];

	if (fd < 0) { printf("step %d: open %s: %s\n", step, dev, strerror(errno)); failed = 1; return; }
	h->opcode = opcode;
	h->op_size = op_size;
	memcpy(buf + sizeof(*h), in, len);
	inb = sized(buf, sizeof(*h) + len, in_len);
	memset(&r, 0, sizeof(r));
	r.size = size;
	r.scope = scope;
	r.in_len = in_len;
	r.out_len = out_len;
	r.in = (uint64_t)(uintptr_t)inb;
	r.out = (uint64_t)(uintptr_t)outb;
	memcpy(arg, &r, sizeof(r));
	if (size > sizeof(r))
		memset(arg + sizeof(r), tail, size - sizeof(r));
	rc = ioctl(fd, FWCTL_RPC, arg);
	err = errno;
	snprintf(what, sizeof(what), "FWCTL_RPC size %u scope %u opcode %#06x in_len %u out_len %u", size, scope,
			opcode, in_len, out_len);
	report(step, what, rc, err, rc || out_len < 8 ? 0 : ((struct fwctl_rpc_cxl_out *)outb)->retval);
	close(fd);
	free(arg);
	free(buf);
	free(inb);
	free(outb);
}

static __attribute__((unused)) void sysfs_write(int step, const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0) { printf("step %d: open %s: %s\n", step, path, strerror(errno)); return; }
	n = write(fd, val, strlen(val));
	printf("step %d: write %s -> %zd (%s)\n", step, path, n, n < 0 ? strerror(errno) : "ok");
	failed |= n < 0;
	close(fd);
}

static __attribute__((unused)) void kernel_step(int step, const char *what)
{
	int c;

	printf("step %d (kernel): %s\n  press Enter when done ", step, what);
	fflush(stdout);
	while ((c = getchar()) != '\n' && c != EOF)
		;
}
"""


def _bytes(name: str, data: bytes) -> str:
    if not data:
        return f"\tstatic const uint8_t {name}[1];"
    body = ", ".join(f"0x{b:02x}" for b in data)
    return f"\tstatic const uint8_t {name}[{len(data)}] = {{ {body} }};"


def _size(step: Step, name: str, natural: int | None, runtime: str) -> str:
    """A size as C: the step's own value, or (at its natural value) what a correct program sends."""
    value = int(step.args[name])
    if natural is None or value != natural:
        return str(value)
    return runtime


def _user_step(i: int, step: Step, rep: Any) -> list[str]:
    assert step.caller is not None
    c = step.caller
    lines = ["\t" + safetext.c_comment(f"step {i}", f"{step.channel} {step.op} as {c.describe()}")]
    if c.switches:
        lines.append(f"\tsysfs_write({i}, \"/sys/kernel/debug/cxl/mbox/raw_allow_all\", \"1\");")
    if step.channel == "cxl.sysfs":
        attr = "sanitize" if step.op == "SANITIZE" else "erase"
        lines.append(f"\tsnprintf(path, sizeof(path), \"%s/security/{attr}\", sysfs);")
        lines.append(f"\tsysfs_write({i}, path, \"1\");")
        return lines
    layout_name, encode = ENCODERS.get(step.op, ("no input payload", lambda a: b""))
    data = encode(dict(step.args))
    params = {p.name: p for p in rep.executor.params[(step.channel, step.op)]}

    def natural(name: str) -> int | None:
        p = params.get(name)
        return p.natural(step.args) if p is not None and callable(p.natural) else None

    cmd = rep.executor.user_index[(step.channel, step.op)]
    fixed_out = cmd.layout.out if cmd.layout is not None else None
    lines.append(f"\t{{ /* {layout_name} */")
    lines.append(_bytes("in", data).replace("\t", "\t\t", 1))
    opcode = OPCODES[step.op]
    if step.channel == "cxl.fwctl":
        in_len = _size(step, "in_len", natural("in_len"), f"16 + {len(data)}")
        op_size = _size(step, "op_size", natural("op_size"), str(len(data)))
        out_len = _size(step, "out_len", natural("out_len"),
                        f"8 + {fixed_out}" if fixed_out is not None else "8 + payload_max(sysfs)")
        size = int(step.args.get("fwctl_size", fwctl.RPC_SIZE))
        rpc_size = "sizeof(struct fwctl_rpc)" if size == fwctl.RPC_SIZE else str(size)
        tail = int(step.args.get("fwctl_tail", 0))
        lines.append(f"\t\tfwctl_cmd(fwctl, {i}, {rpc_size}, {tail:#04x}, {max(fwctl.rank(c.scope), 0)}, "
                     f"{opcode:#06x}, in, {len(data)}, {in_len}, {out_len}, {op_size});")
    else:
        cmd_id = IOCTL_IDS[step.op] if step.channel == "cxl.ioctl" else ID_RAW
        in_size = _size(step, "in_size", natural("in_size"), str(len(data)))
        out_size = _size(step, "out_size", natural("out_size"),
                         str(fixed_out) if fixed_out is not None else "payload_max(sysfs)")
        flags, rsvd = int(step.args.get("flags", 0)), int(step.args.get("rsvd", 0))
        lines.append(f"\t\tmem_cmd(memdev, {i}, {cmd_id}, {opcode:#06x}, in, {len(data)}, {in_size}, {out_size}, "
                     f"{flags:#x}, {rsvd:#x});")
    lines.append("\t}")
    return lines


def render_c(rep: Any) -> str:
    e = rep.entry
    if e.subsystem != "cxl":
        raise ValueError(f"the C exporter knows the CXL UAPI only, not {e.subsystem!r}")
    body: list[str] = []
    for i, step in enumerate(rep.entry.steps, 1):
        if step.actor == "kernel":
            template = KERNEL_HOWTO.get(step.op)
            howto = template.format(**step.args) if template else step.op
            body.append(f"\tkernel_step({i}, {safetext.c_string(howto)});")
        else:
            body.extend(_user_step(i, step, rep))
    needs: set[str] = {s.caller.describe() for s in e.steps if s.caller is not None}
    # Corpus text only in sanitised // comments: a /* */ block would end at a "*/" in any of it.
    head = [
        "// ptfuzz finding exported as C",
        safetext.c_comment("signature", e.signature),
        safetext.c_comment("message", str(e.violation.get("message", ""))),
        safetext.c_comment("source", f"{e.path} (policy {rep.policy.label}, device {e.device})"),
        safetext.c_comment("kernel", rep.policy.version or "none named by the policy"),
        safetext.c_comment("callers in this sequence", "; ".join(sorted(needs)) or "none"),
        "// Build: cc -o repro repro.c   Run: ./repro [/dev/cxl/memN] [/dev/fwctl/fwctlN] [/sys/bus/cxl/devices/memN]",
        "// On a test machine only: the steps change device state the kernel owns.",
    ]
    main = [
        "int main(int argc, char **argv)",
        "{",
        '\tconst char *memdev = argc > 1 ? argv[1] : "/dev/cxl/mem0";',
        '\tconst char *fwctl = argc > 2 ? argv[2] : "/dev/fwctl/fwctl0";',
        '\tconst char *sysfs = argc > 3 ? argv[3] : "/sys/bus/cxl/devices/mem0";',
        "\tchar path[512];",
        "",
        "\t(void)memdev; (void)fwctl; (void)sysfs; (void)path;",
        *body,
        '\tprintf(failed ? "some step failed: see above\\n" : "every step succeeded\\n");',
        "\treturn failed;",
        "}",
    ]
    return "\n".join(head) + "\n" + PRELUDE + "\n" + "\n".join(main) + "\n"


EXPORTERS = [Exporter("c", ".c", render_c, subsystem="cxl",
                      doc="a C program on the CXL UAPI (CXL_MEM_SEND_COMMAND, FWCTL_RPC, sysfs)")]
