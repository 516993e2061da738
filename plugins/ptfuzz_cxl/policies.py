"""Linux's CXL passthrough policies as rule tables, each rule citing its source.

Read from Linux 7.3.4 (Debian's linux-source-7.3): ``drivers/cxl/core/mbox.c``
(``cxl_validate_cmd_from_user()``, ``cxl_mem_raw_command_allowed()``,
``cxl_payload_from_user_allowed()``, ``cxl_mem_sanitize()``),
``drivers/cxl/core/memdev.c`` (sysfs attributes), ``drivers/cxl/pmem.c``
(exclusive commands), ``drivers/cxl/core/features.c`` (``cxlctl_fw_rpc()``,
``cxlctl_validate_set_features()``, ``cxlctl_get_feature()``,
``cxlctl_set_feature()``) and ``drivers/fwctl/main.c``.  Size checks are
rules like any other: each reads the request's declared sizes, and every
rule that looks into a payload reads it through ``request.payload`` so that
a check placed after the read (or missing) shows up as an ``out-of-bounds``
finding.

Historical policies (``predates``) are the 7.3.4 ones with the fix a commit
brought taken out, named by what they let through.  Where the commit is not
known (the stored repository copies predate it), ``predates`` says what the
fix is and the first release seen with it.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from fuzzer import (
    IMMEDIATE,
    RESERVED_BITS,
    RESET_ONLY,
    Allow,
    Deny,
    Effect,
    Policy,
    Promise,
    Request,
    Rule,
    Taint,
    Verdict,
    fwctl,
)

from . import mailbox as mb
from .device import FWCTL, IOCTL, RAW, SYSFS
from .kernel import DEPRECATED_IOCTL_OPS, FEATURES_RW
from .transport import FWCTL_RPC_CXL_HDR, FWCTL_RPC_CXL_OUT

CAP_SYS_ADMIN = "CAP_SYS_ADMIN"
RAW_ALLOW_ALL = "raw_allow_all"
TAINT_WARN = "WARN"

MBOX = "drivers/cxl/core/mbox.c"
MEMDEV = "drivers/cxl/core/memdev.c"
FEATURES = "drivers/cxl/core/features.c"
#: the release every rule below was read from (or checked against)
KERNEL = "7.3.4"

# --------------------------------------------------------------------------- sizes (both mailbox paths)


def _payload_max(r: Request) -> Verdict:
    if r.size("in_size") > r.device.info.get("payload_size", mb.PAYLOAD_SIZE):
        return Deny(errno.EINVAL, "in.size above the mailbox payload size")
    return None


def _ioctl_size_in(r: Request) -> Verdict:
    layout = r.command.layout
    if layout is not None and layout.size is not None and r.size("in_size") != layout.size:
        return Deny(errno.ENOMEM, f"in.size is not the table's size_in {layout.size:#x}")
    return None


def _ioctl_size_out(r: Request) -> Verdict:
    layout = r.command.layout
    if layout is not None and layout.out is not None and r.size("out_size") < layout.out:
        return Deny(errno.ENOMEM, f"out.size below the table's size_out {layout.out:#x}")
    return None


def _raw_out_max(r: Request) -> Verdict:
    if r.size("out_size") > r.device.info.get("payload_size", mb.PAYLOAD_SIZE):
        return Deny(errno.EINVAL, "RAW out.size above the mailbox payload size")
    return None


SIZE_RULES = (
    Rule("payload-max", _payload_max, f"{MBOX} cxl_validate_cmd_from_user(): in.size > payload_size",
         channels=(IOCTL, RAW)),
)
IOCTL_SIZE_RULES = (
    Rule("ioctl-size-in", _ioctl_size_in, f"{MBOX} cxl_to_mem_cmd(): size_in != in.size -> -ENOMEM",
         channels=(IOCTL,)),
    Rule("ioctl-size-out", _ioctl_size_out, f"{MBOX} cxl_to_mem_cmd(): out.size < size_out -> -ENOMEM",
         channels=(IOCTL,)),
)

# --------------------------------------------------------------------------- ioctl path


def _ioctl_flags(r: Request) -> Verdict:
    if r.size("flags") & ~mb.COMMAND_FLAG_MASK:
        return Deny(errno.EINVAL, "flags outside CXL_MEM_COMMAND_FLAG_MASK")
    return None


def _reserved_zero(r: Request) -> Verdict:
    if r.size("rsvd"):
        return Deny(errno.EINVAL, "a reserved field is not zero")
    return None


def _enabled(r: Request) -> Verdict:
    if r.command.op in DEPRECATED_IOCTL_OPS:
        return Deny(errno.ENOTTY, "a deprecated id: its cxl_mem_commands[] entry is empty (info->id 0)")
    if r.command.op not in r.kernel["enabled"]:
        return Deny(errno.ENOTTY, "not in enabled_cmds (opcode absent from the CEL)")
    return None


def _exclusive(r: Request) -> Verdict:
    if r.command.op in r.kernel["exclusive"]:
        return Deny(errno.EBUSY, "exclusive to the kernel while the nvdimm is bound")
    return None


_ALLOWED = "cxl_payload_from_user_allowed()"
#: the structs cxl_payload_from_user_allowed() looks into, and their sizes: ``sizeof(*pi)`` of
#: drivers/cxl/cxlmem.h ``struct cxl_mbox_set_partition_info { __le64 volatile_capacity; u8 flags; }
#: __packed`` is 9 (7.3.4), not the ioctl table's size_in 0x0a (``ioctl-size-in`` checks that one),
#: and ``sizeof(uuid_t)`` is 16
PAYLOAD_STRUCTS = {"SET_PARTITION_INFO": 9, "CLEAR_LOG": 0x10}


def _payload_size(r: Request) -> Verdict:
    need = PAYLOAD_STRUCTS.get(r.command.op)
    if need is not None and 0 < r.size("in_size") < need:
        return Deny(errno.EBUSY, f"a {r.size('in_size')}-byte payload is shorter than the {need}-byte struct")
    return None


def _immediate_flag(r: Request) -> Verdict:
    if r.size("in_size") and r.field("immediate", by=_ALLOWED) & 1:
        return Deny(errno.EBUSY, "CXL_SET_PARTITION_IMMEDIATE_FLAG")
    return None


def _vendor_debug_only(r: Request) -> Verdict:
    if r.size("in_size") and r.field("log", by=_ALLOWED) != mb.VENDOR_DEBUG_LOG_UUID:
        return Deny(errno.EBUSY, "Clear Log only for the vendor debug log")
    return None


# cxl_validate_cmd_from_user()'s first check, id == 0 || id >= CXL_MEM_COMMAND_ID_MAX -> -ENOTTY, has
# no rule: a step names a command of the table (or RAW), never a number, so no drawn id is out of
# range (linux-raw-clear-any-log's "ioctl-id-max" stands for the ids a kernel did not have yet).
IOCTL_RULES = (
    Rule("ioctl-flags", _ioctl_flags,
         f"{MBOX} cxl_to_mem_cmd(): send_cmd->flags & ~CXL_MEM_COMMAND_FLAG_MASK -> -EINVAL ({KERNEL})",
         channels=(IOCTL,)),
    Rule("ioctl-rsvd", _reserved_zero,
         f"{MBOX} cxl_to_mem_cmd(): send_cmd->rsvd, in.rsvd || out.rsvd -> -EINVAL ({KERNEL})",
         channels=(IOCTL,)),
    Rule("enabled-cmds", _enabled, f"{MBOX} cxl_validate_cmd_from_user(): enabled_cmds", channels=(IOCTL,)),
    Rule("exclusive-cmds", _exclusive,
         f"{MBOX} cxl_validate_cmd_from_user(): exclusive_cmds; drivers/cxl/pmem.c cxl_nvdimm_probe()",
         channels=(IOCTL,)),
)
PAYLOAD_RULES = (
    Rule("payload-size", _payload_size, f"{MBOX} {_ALLOWED}: in_size < sizeof(*pi) (9 bytes), "
         f"in_size < sizeof(uuid_t) (60b5d1f68338; {KERNEL})",
         channels=(IOCTL, RAW), ops=tuple(PAYLOAD_STRUCTS)),
    Rule("immediate-flag", _immediate_flag, f"{MBOX} {_ALLOWED}: CXL_SET_PARTITION_IMMEDIATE_FLAG",
         channels=(IOCTL, RAW), ops=("SET_PARTITION_INFO",)),
    Rule("clear-log-vendor-debug", _vendor_debug_only, f"{MBOX} {_ALLOWED}: DEFINE_CXL_VENDOR_DEBUG_UUID "
         "(206f9fa9d555)", channels=(IOCTL, RAW), ops=("CLEAR_LOG",)),
)

# --------------------------------------------------------------------------- sysfs


def _root(r: Request) -> Verdict:
    # Simplification (fidelity #21): the attributes are mode 0200 and their handlers call no capable();
    # the VFS lets only their owner, root, open them for writing (or CAP_DAC_OVERRIDE, which no caller
    # here has without CAP_SYS_ADMIN). Root is modelled as CAP_SYS_ADMIN, as the live agent runs it.
    return None if CAP_SYS_ADMIN in r.caller.caps else Deny(errno.EACCES, "security/sanitize is mode 0200, owned by root")


def _no_committed_decoders(r: Request) -> Verdict:
    if r.kernel["regions"]:
        return Deny(errno.EBUSY, "endpoint has committed decoders")
    return None


def _no_user_passphrase(r: Request) -> Verdict:
    sec = r.device.state["security.state"]
    if sec & mb.SEC_USER_PASS_SET:
        return Deny(errno.EINVAL, "user passphrase set")
    if r.command.op == "SECURE_ERASE" and sec & mb.SEC_LOCKED:
        return Deny(errno.EINVAL, "device locked")
    return None


def _visible(r: Request) -> Verdict:
    if r.command.opcode not in r.kernel["cel"]:
        return Deny(errno.ENOENT, "no such attribute: the device's CEL lacks the command")
    return None


SYSFS_RULES = (
    Rule("sysfs-visible", _visible, f"{MEMDEV} cxl_security_visible() (7.3.4): CXL_SEC_ENABLED_* from the CEL",
         channels=(SYSFS,)),
    Rule("sysfs-root", _root, f"{MEMDEV} DEVICE_ATTR_WO(security_sanitize/erase) mode 0200",
         channels=(SYSFS,)),
    Rule("sanitize-decoders", _no_committed_decoders, f"{MBOX} cxl_mem_sanitize(): committed decoders",
         channels=(SYSFS,)),
    Rule("sanitize-passphrase", _no_user_passphrase, f"{MBOX} __cxl_mem_sanitize(): security state",
         channels=(SYSFS,)),
)
SYSFS_PROMISES = (
    Promise(SYSFS, f"{MEMDEV} security attributes are root-only", effects=int(Effect.DATA_IMMEDIATE),
            caps=frozenset({CAP_SYS_ADMIN})),
)

# --------------------------------------------------------------------------- RAW path

#: security_command_sets[]: Sanitize, Persistent Memory Data-at-rest Security,
#: Security Passthrough.
SECURITY_COMMAND_SETS = (0x44, 0x45, 0x46)
#: cxl_disabled_raw_commands[] before the Features opcodes joined it
DISABLED_RAW_BEFORE_FEATURES = frozenset({
    "ACTIVATE_FW", "SET_PARTITION_INFO", "SET_LSA", "SET_SHUTDOWN_STATE", "SCAN_MEDIA",
    "GET_SCAN_MEDIA", "GET_POISON", "INJECT_POISON", "CLEAR_POISON",
})
#: 7.3.4 refuses the Features opcodes on RAW: "Features are accessed through the fwctl ABI,
#: which applies scope-based access control.  The RAW path would bypass those checks"
FEATURE_OPS = frozenset({"GET_SUPPORTED_FEATURES", "GET_FEATURE", "SET_FEATURE"})
#: cxl_disabled_raw_commands[] (7.3.4)
DISABLED_RAW = DISABLED_RAW_BEFORE_FEATURES | FEATURE_OPS


def _lockdown(r: Request) -> Verdict:
    if r.caller.lockdown != "none":
        return Deny(errno.EPERM, "security_locked_down(LOCKDOWN_PCI_ACCESS)")
    return None


# The kernel tests cxl_raw_allow_all before either table; testing the table first gives the same
# verdicts, and a command no table names then never reads the switch (the bounded proof runs such
# a step once for both settings: fuzzer.watched).
def _security_sets(r: Request) -> Verdict:
    if r.command.opcode >> 8 in SECURITY_COMMAND_SETS and RAW_ALLOW_ALL not in r.caller.switches:
        return Deny(errno.EPERM, "security command set")
    return None


def _disabled_in(table: frozenset[str]) -> Callable[[Request], Verdict]:
    """cxl_mem_raw_command_allowed()'s loop over one version of cxl_disabled_raw_commands[]."""
    def disabled(r: Request) -> Verdict:
        if r.command.op in table and RAW_ALLOW_ALL not in r.caller.switches:
            return Deny(errno.EPERM, "in cxl_disabled_raw_commands[]")
        return None

    return disabled


def _warn(r: Request) -> Verdict:
    return Taint(TAINT_WARN, 'dev_WARN_ONCE(..., "raw command path used")')


RAW_RULES = (
    Rule("raw-rsvd", _reserved_zero, f"{MBOX} cxl_to_mem_cmd_raw(): send_cmd->raw.rsvd -> -EINVAL ({KERNEL}); "
         "the RAW path does not look at flags, in.rsvd or out.rsvd", channels=(RAW,)),
    Rule("raw-out-max", _raw_out_max, f"{MBOX} cxl_to_mem_cmd_raw(): out.size > payload_size -> -EINVAL",
         channels=(RAW,)),
    Rule("raw-lockdown", _lockdown, f"{MBOX} cxl_mem_raw_command_allowed(): lockdown", channels=(RAW,)),
    Rule("security-command-sets", _security_sets,
         f"{MBOX} cxl_mem_raw_command_allowed(): security_command_sets[]", channels=(RAW,)),
    Rule("disabled-raw-commands", _disabled_in(DISABLED_RAW),
         f"{MBOX} cxl_mem_raw_command_allowed(): cxl_disabled_raw_commands[], with "
         f"GET_SUPPORTED_FEATURES, GET_FEATURE, SET_FEATURE ({KERNEL})", channels=(RAW,)),
    Rule("raw-warn", _warn, f"{MBOX} cxl_to_mem_cmd_raw(): dev_WARN_ONCE", channels=(RAW,)),
)
RAW_PROMISES = (
    Promise(RAW, f"{MBOX} cxl_mem_raw_command_allowed(): raw commands taint and respect lockdown",
            lockdown=("none",), taint=frozenset({TAINT_WARN})),
)

# --------------------------------------------------------------------------- fwctl


_VALIDATE = "cxlctl_validate_set_features()"


def _cached(r: Request) -> tuple[bool, int] | None:
    """cxl_feature_info(): the cached entry for the UUID the request carries (read from its bytes)."""
    return r.kernel["features"].get(r.field("uuid", by=_VALIDATE))


def _in_len_covers(r: Request) -> Verdict:
    """cxlctl_fw_rpc(): the header, then op_size against what in_len really carries (op_size read only then)."""
    in_len = r.size("in_len")
    if in_len < FWCTL_RPC_CXL_HDR or _op_size(r, "cxlctl_fw_rpc()") > in_len - FWCTL_RPC_CXL_HDR:
        return Deny(errno.EINVAL, "in_len < sizeof(rpc_in->hdr) or op_size > in_len - sizeof(rpc_in->hdr)")
    return None


def _fwctl_device(r: Request) -> Verdict:
    if not r.kernel["fwctl"]:
        return Deny(errno.ENODEV, "no fwctl device: no Features capability or no user feature")
    return None


def _features_rw(r: Request) -> Verdict:
    if r.kernel["feat_cap"] < FEATURES_RW:
        return Deny(errno.EINVAL, "feat_cap < CXL_FEATURES_RW: the CEL lacks Set Feature")
    return None


def _opcode_known(r: Request) -> Verdict:
    assert r.payload is not None
    opcode = int.from_bytes(r.payload.read(0, 4, by="cxlctl_fw_rpc(): rpc_in->opcode"), "little") & 0xFFFF
    if opcode not in (mb.GET_SUPPORTED_FEATURES, mb.GET_FEATURE, mb.SET_FEATURE):
        return Deny(errno.EINVAL, "cxlctl_validate_hw_command(): not a Features opcode")
    return None


def _op_size(r: Request, by: str) -> int:
    assert r.payload is not None
    return int.from_bytes(r.payload.read(8, 4, by=f"{by}: rpc_in->op_size"), "little")


def _uuid_fits(r: Request) -> Verdict:
    return Deny(errno.EINVAL, "op_size < sizeof(uuid_t)") if _op_size(r, _VALIDATE) < 16 else None


def _get_op_size(r: Request) -> Verdict:
    want = {"GET_FEATURE": 0x15, "GET_SUPPORTED_FEATURES": 8}[r.command.op]
    where = "cxlctl_get_feature()" if r.command.op == "GET_FEATURE" else "cxlctl_get_supported_features()"
    return Deny(errno.EINVAL, f"op_size != {want:#x}") if _op_size(r, where) != want else None


def _get_count(r: Request) -> Verdict:
    return Deny(errno.EINVAL, "count == 0") if not r.field("count", by="cxlctl_get_feature()") else None


def _get_out_len(r: Request) -> Verdict:
    """cxlctl_get_feature(): out_len holds struct fwctl_rpc_cxl_out's header and count bytes of payload."""
    out_size = r.size("out_len")
    if out_size < FWCTL_RPC_CXL_OUT or r.field("count", by="cxlctl_get_feature()") > out_size - FWCTL_RPC_CXL_OUT:
        return Deny(errno.EINVAL, "out_len < offsetof(payload) or count > out_len - offsetof(payload)")
    return None


def _set_out_len(r: Request) -> Verdict:
    """cxlctl_set_feature(): out_len holds struct fwctl_rpc_cxl_out's header (size, retval)."""
    if r.size("out_len") < FWCTL_RPC_CXL_OUT:
        return Deny(errno.EINVAL, "out_len < offsetof(struct fwctl_rpc_cxl_out, payload)")
    return None


def _set_op_size(r: Request) -> Verdict:
    return Deny(errno.EINVAL, "op_size <= sizeof(feat_in->hdr)") if _op_size(r, "cxlctl_set_feature()") <= 32 else None


def _feature_known(r: Request) -> Verdict:
    return None if _cached(r) is not None else Deny(errno.EINVAL, "feature not in the cached table")


def _changeable(r: Request) -> Verdict:
    entry = _cached(r)
    return None if entry and entry[0] else Deny(errno.EINVAL, "feature not CHANGEABLE")


def _effects(r: Request) -> int:
    entry = _cached(r)
    return entry[1] if entry else 0


def _reserved(r: Request) -> Verdict:
    return Deny(errno.EINVAL, "reserved effect bits") if _effects(r) & RESERVED_BITS else None


def _background(r: Request) -> Verdict:
    return Deny(errno.EINVAL, "no user background command") if _effects(r) & Effect.BACKGROUND else None


def _has_effect(r: Request) -> Verdict:
    if not _effects(r) & (IMMEDIATE | RESET_ONLY):
        return Deny(errno.EINVAL, "no immediate or reset effect: hardware bug")
    return None


def _immediate_scope(r: Request) -> Verdict:
    if _effects(r) & IMMEDIATE and fwctl.rank(r.caller.scope) < fwctl.rank(fwctl.DEBUG_WRITE_FULL):
        return Deny(errno.EINVAL, "immediate effect needs FWCTL_RPC_DEBUG_WRITE_FULL")
    return None


def _reset_scope(r: Request) -> Verdict:
    if fwctl.rank(r.caller.scope) < fwctl.rank(fwctl.DEBUG_WRITE):
        return Deny(errno.EINVAL, "Set Feature needs at least FWCTL_RPC_DEBUG_WRITE")
    return None


def _exclusive_feature(r: Request) -> Verdict:
    # knob "exclusive_features": a kernel built with another cxl_exclusive_feats[] (the live target's
    # test-ecs-user-feature.patch)
    if r.args["uuid"] in r.knobs["exclusive_features"]:
        return Deny(errno.EPERM, "kernel-exclusive feature (cxl_exclusive_feats[])")
    return None


_SET = ("SET_FEATURE",)
_GET = ("GET_FEATURE",)
FWCTL_RULES = (
    # before any of fwctl's own checks: there is no /dev/fwctl/fwctlN to open
    Rule("fwctl-device", _fwctl_device, f"{FEATURES} devm_cxl_setup_fwctl(): no cxlfs (feat_cap < CXL_FEATURES_RO) "
         f"or !num_user_features -> -ENODEV, no fwctl device ({KERNEL})", channels=(FWCTL,)),
    *fwctl.core_rules(FWCTL),
    Rule("cxlctl-in-len", _in_len_covers, f"{FEATURES} cxlctl_fw_rpc(): in_len < sizeof(rpc_in->hdr) || "
         f"rpc_in->op_size > in_len - sizeof(rpc_in->hdr) -> -EINVAL, before rpc_in->opcode ({KERNEL})",
         channels=(FWCTL,)),
    Rule("cxlctl-opcode", _opcode_known, f"{FEATURES} cxlctl_fw_rpc(), cxlctl_validate_hw_command()",
         channels=(FWCTL,)),
    # The Get branch, feat_cap >= CXL_FEATURES_RO, always holds here: without it there is no fwctl device.
    Rule("set-feature-cap", _features_rw, f"{FEATURES} cxlctl_validate_hw_command(): SET_FEATURE with "
         f"feat_cap < CXL_FEATURES_RW -> false, -EINVAL (feat_cap from mbox.c set_features_cap(); {KERNEL})",
         channels=(FWCTL,), ops=_SET),
    Rule("set-feature-uuid-size", _uuid_fits, f"{FEATURES} {_VALIDATE}: op_size < sizeof(uuid_t)",
         channels=(FWCTL,), ops=_SET),
    Rule("set-feature-known", _feature_known, f"{FEATURES} cxlctl_validate_set_features()",
         channels=(FWCTL,), ops=_SET),
    Rule("set-feature-changeable", _changeable, f"{FEATURES} cxlctl_validate_set_features(): CHANGEABLE",
         channels=(FWCTL,), ops=_SET),
    Rule("set-feature-reserved", _reserved, f"{FEATURES} cxlctl_validate_set_features(): GENMASK(15, 12)",
         channels=(FWCTL,), ops=_SET),
    Rule("set-feature-background", _background, f"{FEATURES} cxlctl_validate_set_features(): BIT(6)",
         channels=(FWCTL,), ops=_SET),
    Rule("set-feature-has-effect", _has_effect, f"{FEATURES} cxlctl_validate_set_features()",
         channels=(FWCTL,), ops=_SET),
    Rule("set-feature-immediate-scope", _immediate_scope,
         f"{FEATURES} cxlctl_validate_set_features(): immediate -> DEBUG_WRITE_FULL",
         channels=(FWCTL,), ops=_SET),
    Rule("set-feature-reset-scope", _reset_scope,
         f"{FEATURES} cxlctl_validate_set_features(): reset-only -> DEBUG_WRITE",
         channels=(FWCTL,), ops=_SET),
    Rule("get-supported-features-op-size", _get_op_size, f"{FEATURES} cxlctl_get_supported_features(): op_size",
         channels=(FWCTL,), ops=("GET_SUPPORTED_FEATURES",)),
    Rule("get-feature-op-size", _get_op_size, f"{FEATURES} cxlctl_get_feature(): op_size != sizeof(*feat_in)",
         channels=(FWCTL,), ops=_GET),
    Rule("get-feature-count", _get_count, f"{FEATURES} cxlctl_get_feature(): !count", channels=(FWCTL,), ops=_GET),
    Rule("get-feature-out-len", _get_out_len, f"{FEATURES} cxlctl_get_feature(): out_size < offsetof(struct "
         f"fwctl_rpc_cxl_out, payload) || count > out_size - offsetof(...) -> -EINVAL, before kvzalloc() ({KERNEL})",
         channels=(FWCTL,), ops=_GET),
    Rule("set-feature-op-size", _set_op_size, f"{FEATURES} cxlctl_set_feature(): op_size <= sizeof(feat_in->hdr)",
         channels=(FWCTL,), ops=_SET),
    Rule("exclusive-features", _exclusive_feature, f"{FEATURES} cxlctl_set_feature(): is_cxl_feature_exclusive()",
         channels=(FWCTL,), ops=_SET),
    Rule("set-feature-out-len", _set_out_len, f"{FEATURES} cxlctl_set_feature(): out_size < offsetof(struct "
         f"fwctl_rpc_cxl_out, payload) -> -EINVAL, before kvzalloc() ({KERNEL})", channels=(FWCTL,), ops=_SET),
)
#: the three size checks 7.3.4 has (7.2.6 and 7.2.12 too) and the code before them lacks
FWCTL_SIZE_CHECKS = ("cxlctl-in-len", "get-feature-out-len", "set-feature-out-len")


FWCTL_PROMISES = (
    Promise(FWCTL, "Documentation/userspace-api/fwctl/fwctl.rst; " + FEATURES,
            effects=int(IMMEDIATE), caps=frozenset({fwctl.CAP_SYS_RAWIO}),
            min_scope=fwctl.DEBUG_WRITE_FULL, taint=frozenset({fwctl.TAINT_FWCTL})),
    Promise(FWCTL, "Documentation/userspace-api/fwctl/fwctl.rst; " + FEATURES,
            effects=int(RESET_ONLY), min_scope=fwctl.DEBUG_WRITE, taint=frozenset({fwctl.TAINT_FWCTL})),
)

# --------------------------------------------------------------------------- policies

LINUX_IOCTL = Policy(
    "linux-ioctl", "cxl", channels=(IOCTL, SYSFS),
    rules=SIZE_RULES + IOCTL_RULES + IOCTL_SIZE_RULES + PAYLOAD_RULES + SYSFS_RULES,
    promises=SYSFS_PROMISES,
    # CONFIG_CXL_MEM_RAW_COMMANDS=n: cxl_mem_raw_command_allowed() is false, so -EPERM
    refuses={RAW: errno.EPERM}, kernel=KERNEL,
    doc="default kernel: CXL_MEM_SEND_COMMAND command table and sysfs sanitize/erase",
)
LINUX_RAW = Policy(
    "linux-raw", "cxl", channels=(IOCTL, RAW, SYSFS),
    # In cxl_to_mem_cmd_raw() the WARN fires before the payload check, so the
    # payload rule follows the raw rules.
    rules=SIZE_RULES + IOCTL_RULES + IOCTL_SIZE_RULES + RAW_RULES + PAYLOAD_RULES + SYSFS_RULES,
    promises=SYSFS_PROMISES + RAW_PROMISES, kernel=KERNEL,
    doc="CONFIG_CXL_MEM_RAW_COMMANDS=y: the RAW command id on top of linux-ioctl; Features only over fwctl",
)
LINUX_FWCTL = Policy(
    "linux-fwctl", "cxl", channels=(IOCTL, SYSFS, FWCTL),
    rules=SIZE_RULES + IOCTL_RULES + IOCTL_SIZE_RULES + PAYLOAD_RULES + SYSFS_RULES + FWCTL_RULES,
    promises=SYSFS_PROMISES + FWCTL_PROMISES,
    refuses={RAW: errno.EPERM}, kernel=KERNEL,
    doc="CONFIG_CXL_FEATURES + fwctl: Features over fwctl, in_len and out_len checked, on top of linux-ioctl",
)


def _allow(r: Request) -> Verdict:
    return Allow("blank cheque")


PERMISSIVE = Policy(
    "permissive", "cxl", channels=(IOCTL, RAW, SYSFS, FWCTL),
    rules=(Rule("allow-everything", _allow, "none: the blank cheque"),),
    doc="everything passes, nothing taints: what a passthrough without policy does",
)

# --------------------------------------------------------------------------- history


def _replaced(rules: tuple[Rule, ...], rule: Rule) -> tuple[Rule, ...]:
    """``rules`` with the rule of the same name swapped for ``rule`` (an older version of one check)."""
    assert any(r.name == rule.name for r in rules), rule.name
    return tuple(rule if r.name == rule.name else r for r in rules)


#: the Features opcodes joined cxl_disabled_raw_commands[] after 60b5d1f68338 (the RAW table the
#: model was first read from had that fix and not them); the commit is not in the stored copies
RAW_FEATURES_FIX = "the Features opcodes in cxl_disabled_raw_commands[] (in 7.3.4; commit not found)"
#: features.c's in_len/out_len checks: byte-identical in 7.2.6 and 7.2.12; the commit is not in the
#: stored repository copies, which are older than 7.2
FWCTL_SIZES_FIX = "the in_len/out_len checks in features.c (in 7.2.6; commit not found)"

LINUX_RAW_FEATURES = Policy(
    "linux-raw-features-allowed", "cxl", channels=LINUX_RAW.channels,
    rules=_replaced(LINUX_RAW.rules, Rule(
        "disabled-raw-commands", _disabled_in(DISABLED_RAW_BEFORE_FEATURES),
        f"{MBOX} cxl_mem_raw_command_allowed(): cxl_disabled_raw_commands[] without the Features opcodes",
        channels=(RAW,))),
    promises=LINUX_RAW.promises, predates=RAW_FEATURES_FIX,
    doc="linux-raw whose RAW path lets Get/Set Feature through, around fwctl's scopes and EDAC's cache",
)

#: ioctl ids 22-24 (GET_LOG_CAPS, CLEAR_LOG, GET_SUP_LOG_SUBLIST) came with 206f9fa9d555's series
LOG_IDS = ("GET_LOG_CAPS", "CLEAR_LOG", "GET_SUP_LOG_SUBLIST")


def _no_such_id(r: Request) -> Verdict:
    return Deny(errno.ENOTTY, "id >= CXL_MEM_COMMAND_ID_MAX in this kernel")


LINUX_IOCTL_UNSIZED = Policy(
    "linux-ioctl-unsized-payload", "cxl", channels=LINUX_IOCTL.channels,
    rules=tuple(r for r in LINUX_IOCTL.rules if r.name != "payload-size"),
    promises=LINUX_IOCTL.promises, refuses=LINUX_IOCTL.refuses, predates="60b5d1f68338",
    doc="linux-ioctl whose cxl_payload_from_user_allowed() reads the payload without checking its size "
        "(safe only because cxl_to_mem_cmd() wants the exact size first)",
)
# Both RAW fixes below are older than the Features opcodes' refusal: they start from its history.
LINUX_RAW_UNSIZED = Policy(
    "linux-raw-unsized-payload", "cxl", channels=LINUX_RAW.channels,
    rules=tuple(r for r in LINUX_RAW_FEATURES.rules if r.name != "payload-size"),
    promises=LINUX_RAW.promises, predates="60b5d1f68338",
    doc="linux-raw whose cxl_payload_from_user_allowed() reads the payload without checking its size",
)
LINUX_RAW_ANY_LOG = Policy(
    "linux-raw-clear-any-log", "cxl", channels=LINUX_RAW.channels,
    rules=(Rule("ioctl-id-max", _no_such_id, f"{MBOX} cxl_validate_cmd_from_user(): id >= CXL_MEM_COMMAND_ID_MAX",
                channels=(IOCTL,), ops=LOG_IDS),
           *(r for r in LINUX_RAW_FEATURES.rules if r.name not in ("payload-size", "clear-log-vendor-debug"))),
    promises=LINUX_RAW.promises, predates="206f9fa9d555",
    doc="linux-raw without Clear Log in the ioctl table, and RAW Clear Log of any log",
)
LINUX_FWCTL_UNCHECKED = Policy(
    "linux-fwctl-unchecked-sizes", "cxl", channels=LINUX_FWCTL.channels,
    rules=tuple(r for r in LINUX_FWCTL.rules if r.name not in FWCTL_SIZE_CHECKS),
    promises=LINUX_FWCTL.promises, refuses=LINUX_FWCTL.refuses, predates=FWCTL_SIZES_FIX,
    doc="linux-fwctl before features.c compared op_size with in_len and count with out_len: nine "
        "1-step out-of-bounds accesses (corpora/cxl/linux-fwctl-unchecked-sizes--*)",
)


#: cxl_disabled_raw_commands[] before GET/INJECT/CLEAR_POISON joined it ("These commands require kernel
#: driver orchestration for safety"): the table of a stored mbox.c of the cxl_dev_state era (2022-2023,
#: before struct cxl_memdev_state), whose cxl_mem_commands[] still had ids for the three poison commands
DISABLED_RAW_BEFORE_POISON = DISABLED_RAW_BEFORE_FEATURES - {"GET_POISON", "INJECT_POISON", "CLEAR_POISON"}
POISON_FIX = ("GET/INJECT/CLEAR_POISON in cxl_disabled_raw_commands[] and their ioctl ids deprecated "
              "(2023; in 7.3.4; commit not found in the stored copies)")



def _enabled_with_poison_ids(r: Request) -> Verdict:
    """cxl_to_mem_cmd() ``test_bit(info->id, enabled_cmds)`` when cxl_mem_commands[] still had
    ``CXL_CMD(GET_POISON, 0x10, CXL_VARIABLE_PAYLOAD, 0)``, ``CXL_CMD(INJECT_POISON, 0x8, 0, 0)`` and
    ``CXL_CMD(CLEAR_POISON, 0x48, 0, 0)``: cxl_walk_cel() enabled them when the CEL listed the opcode."""
    if r.command.op in DEPRECATED_IOCTL_OPS and r.command.opcode in r.kernel["cel"]:
        return None
    return _enabled(r)


LINUX_RAW_POISON = Policy(
    "linux-raw-poison-allowed", "cxl", channels=LINUX_RAW.channels,
    rules=_replaced(_replaced(LINUX_RAW_FEATURES.rules, Rule(
        "disabled-raw-commands", _disabled_in(DISABLED_RAW_BEFORE_POISON),
        f"{MBOX} cxl_mem_raw_command_allowed(): cxl_disabled_raw_commands[] of ACTIVATE_FW, SET_PARTITION_INFO, "
        "SET_LSA, SET_SHUTDOWN_STATE, SCAN_MEDIA, GET_SCAN_MEDIA (stored mbox.c, before the poison opcodes)",
        channels=(RAW,))), Rule(
        "enabled-cmds", _enabled_with_poison_ids,
        f"{MBOX} cxl_validate_cmd_from_user(): enabled_cmds, with ioctl ids 15-17 (GET/INJECT/CLEAR_POISON) "
        "in cxl_mem_commands[] (stored mbox.c, before their deprecation)", channels=(IOCTL,))),
    promises=LINUX_RAW.promises, predates=POISON_FIX,
    # Like the other RAW histories it starts from linux-raw-features-allowed (the Features refusal is
    # younger) and keeps 7.3.4's other rules: one fix out at a time.  The same kernel's ioctl table also
    # had SCAN_MEDIA and GET_SCAN_MEDIA; the model keeps those RAW-only (their effect is a log).
    doc="the kernel before poison became the driver's: Get/Inject/Clear Poison by ioctl id (untainted) "
        "and over RAW",
)

#: mbox.c then: CXL_MEM_COMMAND_ID_MAX came after GET_SCAN_MEDIA, so the later ids were out of range
IDS_AFTER_2021 = ("GET_TIMESTAMP", *LOG_IDS)
#: drivers/cxl/pmem.c cxl_pmem_init() (2021): exclusive_cmds also had SET_PARTITION_INFO
EXCLUSIVE_2021 = frozenset({"SET_PARTITION_INFO"})


def _exclusive_2021(r: Request) -> Verdict:
    """cxl_validate_cmd_from_user() ``test_bit(info->id, cxlm->exclusive_cmds)``, with SET_PARTITION_INFO
    among the bits cxl_nvdimm_probe() set while the nvdimm is bound."""
    if r.command.op in EXCLUSIVE_2021 and r.kernel["nvdimm_bound"]:
        return Deny(errno.EBUSY, "exclusive to the kernel while the nvdimm is bound (2021 exclusive_cmds)")
    return _exclusive(r)


#: read from a stored drivers/cxl/core/mbox.c of 2021 (struct cxl_mem era: cxl_validate_cmd_from_user()
#: checks the table, no cxl_payload_from_user_allowed()) and drivers/cxl/pmem.c cxl_pmem_init()
MBOX_2021 = "drivers/cxl/core/mbox.c (2021, struct cxl_mem)"
LINUX_IOCTL_2021 = Policy(
    "linux-ioctl-immediate-partition", "cxl", channels=(IOCTL,),
    rules=(
        Rule("ioctl-id-max", _no_such_id, f"{MBOX_2021} cxl_validate_cmd_from_user(): id >= CXL_MEM_COMMAND_ID_MAX",
             channels=(IOCTL,), ops=IDS_AFTER_2021),
        *SIZE_RULES,
        *_replaced(_replaced(IOCTL_RULES, Rule(
            "enabled-cmds", _enabled_with_poison_ids,
            f"{MBOX_2021} cxl_validate_cmd_from_user(): enabled_cmds, poison ids 15-17 in the table",
            channels=(IOCTL,))), Rule(
            "exclusive-cmds", _exclusive_2021,
            f"{MBOX_2021} cxl_validate_cmd_from_user(): exclusive_cmds; drivers/cxl/pmem.c (2021) cxl_pmem_init(): "
            "SET_PARTITION_INFO, SET_SHUTDOWN_STATE, SET_LSA", channels=(IOCTL,))),
        *IOCTL_SIZE_RULES,
    ),
    refuses={RAW: errno.EPERM}, predates="6179045ccc0c",
    # No sysfs channel: security/sanitize and erase came in 2023.  The payload is never looked into
    # (cxl_payload_from_user_allowed() came with the fix), so the immediate flag goes to the device.
    doc="the 2021 ioctl path: SET_PARTITION_INFO exclusive only while the nvdimm is bound, its "
        "immediate flag unchecked; poison by ioctl id",
)

#: CEL effect bits [5:0] (CXL 2.0 Table 173, the kernel's CXL_CMD_*_CHANGE_* of uapi/cxl/features.h):
#: cold-reset config, immediate config, data, policy, log, security
CEL_EFFECTS_5_0 = 0x3F


def _vendor_declares_nothing(r: Request) -> Verdict:
    """The proposal: a vendor opcode (0xC000-0xFFFF) whose CEL entry has bits [5:0] clear is let through.

    Simplification: the effects are read from the device's CEL as the kernel read it at probe (the model's
    kernel keeps the opcodes only, as cxl_walk_cel() does)."""
    if r.command.opcode < mb.VENDOR_FIRST:
        return Deny(errno.EPERM, "not a vendor opcode: CONFIG_CXL_MEM_RAW_COMMANDS=n")
    effects = dict(r.device.info.get("cel", ())).get(r.command.opcode)
    if effects is None or effects & CEL_EFFECTS_5_0:
        return Deny(errno.EPERM, "the CEL declares an effect (bits [5:0])")
    return Allow("vendor opcode whose CEL entry declares no effect")


RAW_2021_REVIEW = ('linux-nvdimm "[PATCH v2 5/8] cxl/mem: Add a RAW send command" (2021-02-10, Ariel Sibley '
                   "<-> Ben Widawsky): allow vendor opcodes whose CEL effect bits [5:0] are 0; declined")
LINUX_RAW_VENDOR_PROPOSAL = Policy(
    "linux-raw-2021-vendor-proposal", "cxl", channels=LINUX_RAW.channels,
    rules=(*(r for r in LINUX_RAW.rules if r.channels != (RAW,) or r.name in ("raw-rsvd", "raw-out-max",
                                                                               "raw-lockdown")),
           Rule("vendor-no-effects", _vendor_declares_nothing, f"{RAW_2021_REVIEW} (what if)", channels=(RAW,))),
    promises=SYSFS_PROMISES, predates="13237183c735 as merged (a what-if of its review, declined)",
    doc="what if (declined in review): linux-ioctl plus RAW vendor opcodes whose CEL declares no effect, "
        "without CONFIG_CXL_MEM_RAW_COMMANDS and without the WARN",
)

POLICIES = (LINUX_IOCTL, LINUX_RAW, LINUX_FWCTL, PERMISSIVE, LINUX_IOCTL_UNSIZED, LINUX_RAW_UNSIZED,
            LINUX_RAW_ANY_LOG, LINUX_RAW_FEATURES, LINUX_FWCTL_UNCHECKED, LINUX_RAW_POISON,
            LINUX_RAW_VENDOR_PROPOSAL, LINUX_IOCTL_2021)
