"""Export a CXL finding as a C program on the real UAPI.

User steps become ``CXL_MEM_SEND_COMMAND`` (ioctl or RAW id), ``FWCTL_RPC``
or sysfs writes, with payload bytes laid out as the kernel's structs
(``drivers/cxl/cxlmem.h``, ``include/cxl/features.h``).  Kernel steps are
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
    "GET_TIMESTAMP": 21,
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
                lambda a: _uuid_bytes(mb.CEL_UUID) + struct.pack("<II", 0, 4096)),
    "GET_SUPPORTED_FEATURES": ("struct cxl_mbox_get_sup_feats_in", lambda a: struct.pack("<IH2x", 4096, 0)),
    "GET_FEATURE": ("struct cxl_mbox_get_feat_in",
                    lambda a: _uuid_bytes(a["uuid"]) + struct.pack("<HHB", 0, 32, 0)),
    "SET_FEATURE": ("struct cxl_mbox_set_feat_in (FULL transfer)",
                    lambda a: _uuid_bytes(a["uuid"]) + struct.pack("<IHB9x", 0, 0, 1)
                    + _feature_data(a["uuid"], a["value"])),
    "SET_PARTITION_INFO": ("struct cxl_mbox_set_partition_info",
                           lambda a: struct.pack("<QB", a["volatile"] * mb.CAPACITY_MULTIPLIER,
                                                 1 if a["immediate"] else 0)),
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
}

KERNEL_HOWTO = {
    "region_create": "create and commit a {mode} region of {size} x 256 MiB on this memdev "
                     "(e.g. cxl create-region -t {mode} -m <memdev>)",
    "region_destroy": "destroy region {region} (cxl destroy-region)",
    "nvdimm_bind": "bind the cxl_pmem nvdimm for this memdev (modprobe cxl_pmem)",
    "nvdimm_unbind": "unbind the nvdimm (echo <nmemX> > /sys/bus/nd/drivers/nvdimm/unbind)",
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

static uint8_t out_buf[4096];

static void mem_cmd(const char *dev, int step, uint32_t id, uint16_t opcode, const uint8_t *in, uint32_t len)
{
	struct cxl_send_command c;
	int fd = open(dev, O_RDWR), rc;

	if (fd < 0) { printf("step %d: open %s: %s\n", step, dev, strerror(errno)); return; }
	memset(&c, 0, sizeof(c));
	c.id = id;
	if (id == 2)
		c.raw.opcode = opcode;
	c.in.size = len;
	c.in.payload = (uint64_t)(uintptr_t)in;
	c.out.size = sizeof(out_buf);
	c.out.payload = (uint64_t)(uintptr_t)out_buf;
	rc = ioctl(fd, CXL_MEM_SEND_COMMAND, &c);
	printf("step %d: CXL_MEM_SEND_COMMAND opcode %#06x -> %d (%s), device retval %u\n",
		step, opcode, rc, rc ? strerror(errno) : "ok", c.retval);
	close(fd);
}

static void fwctl_cmd(const char *dev, int step, uint32_t scope, uint16_t opcode, const uint8_t *in, uint32_t len)
{
	uint8_t buf[sizeof(struct fwctl_rpc_cxl_hdr) + 512];
	struct fwctl_rpc_cxl_hdr *h = (struct fwctl_rpc_cxl_hdr *)buf;
	struct fwctl_rpc r;
	int fd = open(dev, O_RDWR), rc;

	if (fd < 0) { printf("step %d: open %s: %s\n", step, dev, strerror(errno)); return; }
	memset(buf, 0, sizeof(buf));
	h->opcode = opcode;
	h->op_size = len;
	memcpy(buf + sizeof(*h), in, len);
	memset(&r, 0, sizeof(r));
	r.size = sizeof(r);
	r.scope = scope;
	r.in_len = sizeof(*h) + len;
	r.out_len = sizeof(out_buf);
	r.in = (uint64_t)(uintptr_t)buf;
	r.out = (uint64_t)(uintptr_t)out_buf;
	rc = ioctl(fd, FWCTL_RPC, &r);
	printf("step %d: FWCTL_RPC scope %u opcode %#06x -> %d (%s)\n", step, scope, opcode, rc,
		rc ? strerror(errno) : "ok");
	close(fd);
}

static void sysfs_write(int step, const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0) { printf("step %d: open %s: %s\n", step, path, strerror(errno)); return; }
	n = write(fd, val, strlen(val));
	printf("step %d: write %s -> %zd (%s)\n", step, path, n, n < 0 ? strerror(errno) : "ok");
	close(fd);
}

static void kernel_step(int step, const char *what)
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


def _user_step(i: int, step: Step) -> list[str]:
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
    layout, encode = ENCODERS.get(step.op, ("no input payload", lambda a: b""))
    data = encode(dict(step.args))
    lines.append(f"\t{{ /* {layout} */")
    lines.append(_bytes("in", data).replace("\t", "\t\t", 1))
    opcode = OPCODES[step.op]
    if step.channel == "cxl.fwctl":
        lines.append(f"\t\tfwctl_cmd(fwctl, {i}, {max(fwctl.rank(c.scope), 0)}, {opcode:#06x}, in, {len(data)});")
    else:
        cmd_id = IOCTL_IDS[step.op] if step.channel == "cxl.ioctl" else ID_RAW
        lines.append(f"\t\tmem_cmd(memdev, {i}, {cmd_id}, {opcode:#06x}, in, {len(data)});")
    lines.append("\t}")
    return lines


def render_c(rep: Any) -> str:
    e = rep.entry
    if e.subsystem != "cxl":
        raise ValueError(f"the C exporter knows the CXL UAPI only, not {e.subsystem!r}")
    body: list[str] = []
    for i, step in enumerate(e.steps, 1):
        if step.actor == "kernel":
            template = KERNEL_HOWTO.get(step.op)
            howto = template.format(**step.args) if template else step.op
            body.append(f"\tkernel_step({i}, {safetext.c_string(howto)});")
        else:
            body.extend(_user_step(i, step))
    needs: set[str] = {s.caller.describe() for s in e.steps if s.caller is not None}
    # Corpus text only in sanitised // comments: a /* */ block would end at a "*/" in any of it.
    head = [
        "// ptfuzz finding exported as C",
        safetext.c_comment("signature", e.signature),
        safetext.c_comment("message", str(e.violation.get("message", ""))),
        safetext.c_comment("source", f"{e.path} (policy {rep.policy.label}, device {e.device})"),
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
        "\treturn 0;",
        "}",
    ]
    return "\n".join(head) + "\n" + PRELUDE + "\n" + "\n".join(main) + "\n"


EXPORTERS = [Exporter("c", ".c", render_c, subsystem="cxl",
                      doc="a C program on the CXL UAPI (CXL_MEM_SEND_COMMAND, FWCTL_RPC, sysfs)")]
