"""Linux's CXL passthrough policies as rule tables, each rule citing its source.

Sources (linux): ``drivers/cxl/core/mbox.c`` (``cxl_validate_cmd_from_user()``,
``cxl_mem_raw_command_allowed()``, ``cxl_payload_from_user_allowed()``),
``drivers/cxl/core/memdev.c`` (``cxl_mem_sanitize()``, sysfs attributes),
``drivers/cxl/pmem.c`` (exclusive commands), ``drivers/cxl/core/features.c``
(``cxlctl_validate_set_features()``, ``cxlctl_set_feature()``) and
``drivers/fwctl/main.c``.  Payload size checks are not modelled (payloads
are abstract here).
"""

from __future__ import annotations

import errno

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

CAP_SYS_ADMIN = "CAP_SYS_ADMIN"
RAW_ALLOW_ALL = "raw_allow_all"
TAINT_WARN = "WARN"

MBOX = "drivers/cxl/core/mbox.c"
MEMDEV = "drivers/cxl/core/memdev.c"
FEATURES = "drivers/cxl/core/features.c"

# --------------------------------------------------------------------------- ioctl path


def _enabled(r: Request) -> Verdict:
    if r.command.op not in r.kernel["enabled"]:
        return Deny(errno.ENOTTY, "not in enabled_cmds (opcode absent from the CEL)")
    return None


def _exclusive(r: Request) -> Verdict:
    if r.command.op in r.kernel["exclusive"]:
        return Deny(errno.EBUSY, "exclusive to the kernel while the nvdimm is bound")
    return None


def _immediate_flag(r: Request) -> Verdict:
    if r.args["immediate"]:
        return Deny(errno.EBUSY, "CXL_SET_PARTITION_IMMEDIATE_FLAG")
    return None


IOCTL_RULES = (
    Rule("enabled-cmds", _enabled, f"{MBOX} cxl_validate_cmd_from_user(): enabled_cmds", channels=(IOCTL,)),
    Rule("exclusive-cmds", _exclusive,
         f"{MBOX} cxl_validate_cmd_from_user(): exclusive_cmds; drivers/cxl/pmem.c cxl_nvdimm_probe()",
         channels=(IOCTL,)),
)
PAYLOAD_RULES = (
    Rule("immediate-flag", _immediate_flag, f"{MBOX} cxl_payload_from_user_allowed()",
         channels=(IOCTL, RAW), ops=("SET_PARTITION_INFO",)),
)

# --------------------------------------------------------------------------- sysfs


def _root(r: Request) -> Verdict:
    return None if CAP_SYS_ADMIN in r.caller.caps else Deny(errno.EACCES, "security/sanitize is mode 0200")


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


SYSFS_RULES = (
    Rule("sysfs-root", _root, f"{MEMDEV} DEVICE_ATTR_WO(security_sanitize/erase) mode 0200",
         channels=(SYSFS,)),
    Rule("sanitize-decoders", _no_committed_decoders, f"{MEMDEV} cxl_mem_sanitize(): committed decoders",
         channels=(SYSFS,)),
    Rule("sanitize-passphrase", _no_user_passphrase, f"{MEMDEV} __cxl_mem_sanitize(): security state",
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
#: cxl_disabled_raw_commands[]
DISABLED_RAW = frozenset({
    "ACTIVATE_FW", "SET_PARTITION_INFO", "SET_LSA", "SET_SHUTDOWN_STATE", "SCAN_MEDIA",
    "GET_SCAN_MEDIA", "GET_POISON", "INJECT_POISON", "CLEAR_POISON",
})


def _lockdown(r: Request) -> Verdict:
    if r.caller.lockdown != "none":
        return Deny(errno.EPERM, "security_locked_down(LOCKDOWN_PCI_ACCESS)")
    return None


def _security_sets(r: Request) -> Verdict:
    if RAW_ALLOW_ALL in r.caller.switches:
        return None
    if r.command.opcode >> 8 in SECURITY_COMMAND_SETS:
        return Deny(errno.EPERM, "security command set")
    return None


def _disabled(r: Request) -> Verdict:
    if RAW_ALLOW_ALL in r.caller.switches:
        return None
    if r.command.op in DISABLED_RAW:
        return Deny(errno.EPERM, "in cxl_disabled_raw_commands[]")
    return None


def _warn(r: Request) -> Verdict:
    return Taint(TAINT_WARN, 'dev_WARN_ONCE(..., "raw command path used")')


RAW_RULES = (
    Rule("raw-lockdown", _lockdown, f"{MBOX} cxl_mem_raw_command_allowed(): lockdown", channels=(RAW,)),
    Rule("security-command-sets", _security_sets,
         f"{MBOX} cxl_mem_raw_command_allowed(): security_command_sets[]", channels=(RAW,)),
    Rule("disabled-raw-commands", _disabled,
         f"{MBOX} cxl_mem_raw_command_allowed(): cxl_disabled_raw_commands[]", channels=(RAW,)),
    Rule("raw-warn", _warn, f"{MBOX} cxl_to_mem_cmd_raw(): dev_WARN_ONCE", channels=(RAW,)),
)
RAW_PROMISES = (
    Promise(RAW, f"{MBOX} cxl_mem_raw_command_allowed(): raw commands taint and respect lockdown",
            lockdown=("none",), taint=frozenset({TAINT_WARN})),
)

# --------------------------------------------------------------------------- fwctl


def _cached(r: Request) -> tuple[bool, int] | None:
    return r.kernel["features"].get(r.args["uuid"])


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
    if r.args["uuid"] in mb.EXCLUSIVE_FEATURES:
        return Deny(errno.EPERM, "kernel-exclusive feature (cxl_exclusive_feats[])")
    return None


_SET = ("SET_FEATURE",)
FWCTL_RULES = (
    *fwctl.core_rules(FWCTL),
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
    Rule("exclusive-features", _exclusive_feature, f"{FEATURES} cxlctl_set_feature(): is_cxl_feature_exclusive()",
         channels=(FWCTL,), ops=_SET),
)
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
    rules=IOCTL_RULES + PAYLOAD_RULES + SYSFS_RULES,
    promises=SYSFS_PROMISES,
    doc="default kernel: CXL_MEM_SEND_COMMAND command table and sysfs sanitize/erase",
)
LINUX_RAW = Policy(
    "linux-raw", "cxl", channels=(IOCTL, RAW, SYSFS),
    # In cxl_to_mem_cmd_raw() the WARN fires before the payload check, so the
    # payload rule follows the raw rules.
    rules=IOCTL_RULES + RAW_RULES + PAYLOAD_RULES + SYSFS_RULES,
    promises=SYSFS_PROMISES + RAW_PROMISES,
    doc="CONFIG_CXL_MEM_RAW_COMMANDS=y: the RAW command id on top of linux-ioctl",
)
LINUX_FWCTL = Policy(
    "linux-fwctl", "cxl", channels=(IOCTL, SYSFS, FWCTL),
    rules=IOCTL_RULES + PAYLOAD_RULES + SYSFS_RULES + FWCTL_RULES,
    promises=SYSFS_PROMISES + FWCTL_PROMISES,
    doc="CONFIG_CXL_FEATURES + fwctl (6.15+): Features over fwctl on top of linux-ioctl",
)


def _allow(r: Request) -> Verdict:
    return Allow("blank cheque")


PERMISSIVE = Policy(
    "permissive", "cxl", channels=(IOCTL, RAW, SYSFS, FWCTL),
    rules=(Rule("allow-everything", _allow, "none: the blank cheque"),),
    doc="everything passes, nothing taints: what a passthrough without policy does",
)

POLICIES = (LINUX_IOCTL, LINUX_RAW, LINUX_FWCTL, PERMISSIVE)
