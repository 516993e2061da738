"""The GPU passthrough policies as rule tables, each rule citing its source.

* ``linux-drm``: ``drm_ioctl_permit()`` on the render and primary nodes, the
  amdgpu submission check after a reset, and the sysfs attributes' file mode
  and partition-switch check.  ``linux-drm-norecovery`` is the same with
  ``amdgpu.gpu_recovery=0``.
* ``linux-amdgpu-debugfs``: who reaches amdgpu's register files (debugfs's
  mode and lockdown, amdgpu's LOCKDOWN_PCI_ACCESS check, read from 7.3.4);
  root is trusted there by design.  ``linux-amdgpu-debugfs-no-pci-lockdown``
  is the same before amdgpu's check.
* ``gpu-fwctl``: a *hypothetical* GPU fwctl driver following
  ``Documentation/userspace-api/fwctl/fwctl.rst`` (scopes, taint,
  CAP_SYS_RAWIO for DEBUG_WRITE_FULL), plus what it must refuse for the
  fuzzer to find nothing on honest firmware; each refusal names the finding
  that requires it (``corpora/gpu/``).
* ``permissive``: every channel, no rule.

The DRM and sysfs rules were re-read in 7.3.4 (Debian's linux-source-7.3):
``drm_ioctl_permit()`` and the ioctl flags unchanged, the sysfs modes unchanged, a guilty
context refused with ``-ETIME`` from ``amdgpu_ctx_get_entity()`` (it was ``-ECANCELED``
from ``ctx->guilty``, which 7.3.4 no longer has).
"""

from __future__ import annotations

import errno

from fuzzer import RESET_ONLY, Deny, Effect, Policy, Promise, Request, Rule, Trust, Verdict, fwctl

from .commands import CARD, DEBUGFS, FWCTL, NODES, PRIMARY, RENDER, SYSFS
from .ioctls import BY_OP, DrmFlag, flags
from .regs import FILES, MODE_AFTER_FIX, DebugfsFile

#: amdgpu_debugfs_regs_init()'s LOCKDOWN_PCI_ACCESS check: in 7.3.4, its commit not looked up
PCI_LOCKDOWN_FIX = "amdgpu's LOCKDOWN_PCI_ACCESS check (2026-06; commit not looked up)"

CAP_SYS_ADMIN = "CAP_SYS_ADMIN"
#: caller switches on the primary node: the file is authenticated (drm_authmagic) / is the current master
AUTHENTICATED = "authenticated"
MASTER = "master"

DRM_IOCTL = "drivers/gpu/drm/drm_ioctl.c drm_ioctl_permit()"
IOCTL_OPS = (*BY_OP, *(op + CARD for op in BY_OP))

# --------------------------------------------------------------------------- drm_ioctl_permit()


def _root_only(r: Request) -> Verdict:
    if flags(r.command.op) & DrmFlag.ROOT_ONLY and CAP_SYS_ADMIN not in r.caller.caps:
        return Deny(errno.EACCES, "DRM_ROOT_ONLY needs CAP_SYS_ADMIN")
    return None


def _auth(r: Request) -> Verdict:
    render = r.channel == RENDER
    if flags(r.command.op) & DrmFlag.AUTH and not render and AUTHENTICATED not in r.caller.switches:
        return Deny(errno.EACCES, "DRM_AUTH: neither a render client nor authenticated")
    return None


def _master(r: Request) -> Verdict:
    # a render client is never the current master (drm_is_current_master() is false for it)
    if flags(r.command.op) & DrmFlag.MASTER and (r.channel == RENDER or MASTER not in r.caller.switches):
        return Deny(errno.EACCES, "DRM_MASTER: not the current master")
    return None


def _render_allow(r: Request) -> Verdict:
    if r.channel == RENDER and not flags(r.command.op) & DrmFlag.RENDER_ALLOW:
        return Deny(errno.EACCES, "render clients must be explicitly allowed (DRM_RENDER_ALLOW)")
    return None


PERMIT = (
    Rule("drm-root-only", _root_only, f"{DRM_IOCTL}: DRM_ROOT_ONLY && !capable(CAP_SYS_ADMIN)",
         channels=NODES, ops=IOCTL_OPS),
    Rule("drm-auth", _auth, f"{DRM_IOCTL}: DRM_AUTH && !drm_is_render_client() && !authenticated",
         channels=NODES, ops=IOCTL_OPS),
    Rule("drm-master", _master, f"{DRM_IOCTL}: DRM_MASTER && !drm_is_current_master()",
         channels=NODES, ops=IOCTL_OPS),
    Rule("drm-render-allow", _render_allow, f"{DRM_IOCTL}: !DRM_RENDER_ALLOW && drm_is_render_client()",
         channels=NODES, ops=IOCTL_OPS),
)

# --------------------------------------------------------------------------- amdgpu


def _guilty(r: Request) -> Verdict:
    cid = r.kernel["clients"].get(r.args["file"])
    if cid is not None and cid in r.kernel["guilty"]:
        return Deny(errno.ETIME, "the context's entity last scheduled the job that timed out (-ETIME)")
    return None


def _sysfs_owner(r: Request) -> Verdict:
    if CAP_SYS_ADMIN not in r.caller.caps:
        return Deny(errno.EACCES, "mode 0644, owned by root: only the owner (root) may write")
    return None


def _partition_busy(r: Request) -> Verdict:
    if r.kernel["clients"]:
        return Deny(errno.EBUSY, "amdgpu_amdkfd_check_and_lock_kfd(): the device is in use")
    return None


AMDGPU = (
    Rule("cs-guilty-ctx", _guilty,
         "drivers/gpu/drm/amd/amdgpu/amdgpu_cs.c amdgpu_cs_p1_ib() -> amdgpu_ctx.c amdgpu_ctx_get_entity(): "
         "drm_sched_entity_error() returns the -ETIME amdgpu_job_timedout() set on the hung job's fence "
         "(7.3.4; ctx->guilty is gone); Documentation/gpu/drm-uapi.rst \"Device reset\"", channels=NODES, ops=("CS", "CS" + CARD)),
    Rule("sysfs-owner-write", _sysfs_owner,
         "drivers/gpu/drm/amd/pm/amdgpu_pm.c AMDGPU_DEVICE_ATTR_RW (S_IRUGO | S_IWUSR), hwmon power1_cap 0644, "
         "amdgpu_gfx.c DEVICE_ATTR(current_compute_partition, 0644); fs/namei.c may_open() -> "
         "inode_permission(): only the owner, root, writes (root modelled as CAP_SYS_ADMIN)", channels=(SYSFS,)),
    # The model treats every open DRM client as a KFD process: amdgpu checks KFD processes,
    # and whether render-node clients alone block a switch is not verified [U].
    Rule("partition-kfd-busy", _partition_busy,
         "drivers/gpu/drm/amd/amdgpu/amdgpu_gfx.c amdgpu_gfx_set_compute_partition() -> "
         "amdgpu_xcp_switch_partition_mode() -> amdgpu_amdkfd_check_and_lock_kfd(): -EBUSY while in use",
         channels=(SYSFS,), ops=("current_compute_partition",)),
)

_PM = Effect.CONFIG_IMMEDIATE | Effect.CONFIG_COLD_RESET | Effect.DATA_IMMEDIATE
DRM_PROMISES = (
    Promise(SYSFS, "amdgpu_pm.c, amdgpu_gfx.c, amdgpu_gmc.c: the attributes are 0644, root writes",
            effects=int(_PM), caps=frozenset({CAP_SYS_ADMIN})),
)

LINUX_DRM = Policy(
    "linux-drm", "gpu", channels=(RENDER, PRIMARY, SYSFS), rules=(*PERMIT, *AMDGPU), promises=DRM_PROMISES,
    knobs={"gpu_recovery": -1}, kernel="7.3.4",
    doc="drm_ioctl_permit() + amdgpu_ioctls_kms[] flags, amdgpu's reset bookkeeping, the sysfs attributes",
)
LINUX_DRM_NORECOVERY = Policy(
    "linux-drm-norecovery", "gpu", channels=(RENDER, PRIMARY, SYSFS), rules=(*PERMIT, *AMDGPU),
    promises=DRM_PROMISES, knobs={"gpu_recovery": 0}, kernel="7.3.4",
    doc="linux-drm booted with amdgpu.gpu_recovery=0: hangs are not reset, and nothing taints",
)

# --------------------------------------------------------------------------- debugfs


def _debugfs_root(r: Request) -> Verdict:
    if CAP_SYS_ADMIN not in r.caller.caps:
        return Deny(errno.EACCES, "/sys/kernel/debug is 0700 root")
    return None


#: the debugfs file each command opens (the ops on an amdgpu_regs2 file open amdgpu_regs2)
REGS2_OPS = ("OPEN$regs2", "REGS2_IOC_SET_STATE", "REGS2_IOC_SET_STATE_V2", "amdgpu_regs2")
#: commands without a ``write`` argument that open their file for writing
WRITE_ONLY = frozenset({"amdgpu_gfxoff"})


def _file_of(op: str) -> DebugfsFile:
    return FILES["amdgpu_regs2" if op in REGS2_OPS else op]


def _pci_lockdown(r: Request) -> Verdict:
    # Lockdown is taken as set at boot (lockdown= or Secure Boot), before amdgpu loads: the
    # register files are then never created.  Lockdown raised later leaves them, and an fd
    # opened before it works on; only debugfs_locked_down() at the next open stands then.
    if r.caller.lockdown == "none":
        return None
    return Deny(errno.ENOENT, "security_locked_down(LOCKDOWN_PCI_ACCESS): \"amdgpu: HW debugfs nodes disabled "
                "(kernel lockdown)\", no register file was created")


def _debugfs_lockdown(r: Request) -> Verdict:
    if r.caller.lockdown == "none":
        return None
    mode = r.knobs["regs_mode"]
    file = _file_of(r.command.op)
    writes = bool(r.args["write"]) if "write" in r.args else r.command.op in WRITE_ONLY or r.command.op in REGS2_OPS
    if writes or file.ioctl or mode & 0o7777 & ~0o444:
        return Deny(errno.EPERM, "security_locked_down(LOCKDOWN_DEBUGFS): "
                    + ("its fops have an ioctl" if file.ioctl else "opened for writing" if writes else "mode"))
    return None  # a 0400/0444 file with no ioctl, opened read-only, passes lockdown


_ANY = int(Effect.CONFIG_IMMEDIATE | Effect.DATA_IMMEDIATE | Effect.POLICY_IMMEDIATE | Effect.LOG_IMMEDIATE
           | RESET_ONLY)
AMDGPU_DEBUGFS = "drivers/gpu/drm/amd/amdgpu/amdgpu_debugfs.c"
ROOT_RULE = Rule("debugfs-root", _debugfs_root,
                 "fs/debugfs/inode.c DEBUGFS_DEFAULT_MODE 0700 (7.3.4): only root reaches /sys/kernel/debug",
                 channels=(DEBUGFS,))
PCI_LOCKDOWN_RULE = Rule(
    "amdgpu-regs-lockdown", _pci_lockdown,
    f"{AMDGPU_DEBUGFS} amdgpu_debugfs_regs_init() (7.3.4): security_locked_down(LOCKDOWN_PCI_ACCESS) -> "
    "return 0 before debugfs_create_file() of every debugfs_regs_names[] file", channels=(DEBUGFS,))
DEBUGFS_LOCKDOWN_RULE = Rule(
    "debugfs-lockdown", _debugfs_lockdown,
    "fs/debugfs/file.c debugfs_locked_down() (7.3.4): a write, an ioctl or mmap in the fops, or a mode beyond "
    f"0444 -> security_locked_down(LOCKDOWN_DEBUGFS); {AMDGPU_DEBUGFS} amdgpu_debugfs_regs_init() mode 0400",
    channels=(DEBUGFS,))
DEBUGFS_RULES = (ROOT_RULE, PCI_LOCKDOWN_RULE, DEBUGFS_LOCKDOWN_RULE)
DEBUGFS_PROMISES = (Promise(DEBUGFS, "fs/debugfs: root only, never under lockdown", effects=_ANY,
                            caps=frozenset({CAP_SYS_ADMIN}), lockdown=("none",)),)
DEBUGFS_TRUSTS = (Trust(frozenset({CAP_SYS_ADMIN}), f"{AMDGPU_DEBUGFS} amdgpu_debugfs_process_reg_op(), "
                        "amdgpu_debugfs_regs2_op() (7.3.4): no check beyond alignment and the SE/SH range",
                        channels=(DEBUGFS,),
                        reason="raw register access is root's debug interface by design (debugfs is not uAPI)"),)
LINUX_AMDGPU_DEBUGFS = Policy(
    "linux-amdgpu-debugfs", "gpu", channels=(DEBUGFS,), rules=DEBUGFS_RULES, promises=DEBUGFS_PROMISES,
    trusts=DEBUGFS_TRUSTS, knobs={"regs_mode": MODE_AFTER_FIX, "regs2_restore": True}, kernel="7.3.4",
    doc="amdgpu's debugfs register files: root only, absent under lockdown; root's writes are trusted",
)
LINUX_AMDGPU_DEBUGFS_NO_PCI_LOCKDOWN = Policy(
    "linux-amdgpu-debugfs-no-pci-lockdown", "gpu", channels=(DEBUGFS,),
    rules=(ROOT_RULE, DEBUGFS_LOCKDOWN_RULE), promises=DEBUGFS_PROMISES, trusts=DEBUGFS_TRUSTS,
    knobs={"regs_mode": MODE_AFTER_FIX, "regs2_restore": True}, predates=PCI_LOCKDOWN_FIX,
    doc="linux-amdgpu-debugfs with the files created under lockdown too: debugfs_locked_down() alone "
        "guards them, and lets a read-only open of a 0400 file without an ioctl through",
)
# --------------------------------------------------------------------------- hypothetical GPU fwctl

HYPO = "hypothetical GPU fwctl driver; Documentation/userspace-api/fwctl/fwctl.rst"
_FULL = int(Effect.CONFIG_IMMEDIATE | Effect.DATA_IMMEDIATE | Effect.POLICY_IMMEDIATE | Effect.SECURITY)
_WRITE = int(Effect.LOG_IMMEDIATE | RESET_ONLY)


def _declared(r: Request) -> int:
    return r.command.declared(r.args, r.device)


def _needs(r: Request, scope: str) -> Verdict:
    if fwctl.rank(r.caller.scope) < fwctl.rank(scope):
        return Deny(errno.EPERM, f"{r.command.op} needs scope {scope}")
    return None


def _read_scope(r: Request) -> Verdict:
    return _needs(r, fwctl.DEBUG_READ_ONLY) if not _declared(r) else None


def _write_scope(r: Request) -> Verdict:
    eff = _declared(r)
    if eff & _FULL:
        return _needs(r, fwctl.DEBUG_WRITE_FULL)
    return _needs(r, fwctl.DEBUG_WRITE) if eff & _WRITE else None


def _refuse(op: str, finding: str) -> Rule:
    def check(r: Request) -> Verdict:
        return Deny(errno.EPERM, f"{op} changes state the kernel owns")

    return Rule(f"refuse-{op.lower().replace('_', '-')}", check,
                f"{HYPO}: no manipulation of kernel-owned state at any scope; finding {finding}",
                channels=(FWCTL,), ops=(op,))


#: Each refusal and the permissive finding that requires it (corpora/gpu/permissive--spec--*).
REFUSALS = (
    ("SET_POWER_LIMIT", "kernel-owned-integrity:gpu:SET_POWER_LIMIT:power.cap"),
    ("SET_GFXOFF", "kernel-owned-integrity:gpu:SET_GFXOFF:gfxoff"),
    ("RAS_CLEAR_BAD_PAGES", "kernel-owned-integrity:gpu:RAS_CLEAR_BAD_PAGES:ras.bad_pages"),
    ("RAS_INJECT", "kernel-owned-integrity:gpu:RAS_INJECT:ras.bad_pages"),
    ("GPU_RESET", "kernel-owned-integrity:gpu:GPU_RESET:job, reset-bookkeeping:gpu:GPU_RESET:job"),
    ("SET_COMPUTE_PARTITION", "kernel-owned-integrity:gpu:SET_COMPUTE_PARTITION:partition.compute"),
)

GPU_FWCTL = Policy(
    "gpu-fwctl", "gpu", channels=(FWCTL,),
    rules=(
        *fwctl.core_rules(FWCTL),
        Rule("gpufw-read-scope", _read_scope, f"{HYPO}: scope 2, read-only debug, for commands with no effect",
             channels=(FWCTL,)),
        Rule("gpufw-write-scope", _write_scope,
             f"{HYPO}: log or reset-only effects need DEBUG_WRITE, immediate ones DEBUG_WRITE_FULL "
             "(as drivers/cxl/core/features.c does with the declared effects)", channels=(FWCTL,)),
        *(_refuse(op, finding) for op, finding in REFUSALS),
    ),
    promises=(
        Promise(FWCTL, f"{HYPO}: debug writes taint", effects=_WRITE, min_scope=fwctl.DEBUG_WRITE,
                taint=frozenset({fwctl.TAINT_FWCTL})),
        Promise(FWCTL, f"{HYPO}: full debug needs CAP_SYS_RAWIO and taints", effects=_FULL,
                min_scope=fwctl.DEBUG_WRITE_FULL, caps=frozenset({fwctl.CAP_SYS_RAWIO}),
                taint=frozenset({fwctl.TAINT_FWCTL})),
    ),
    doc="a hypothetical GPU fwctl: fwctl.rst scopes over declared effects, kernel-owned state refused",
)

PERMISSIVE = Policy("permissive", "gpu", channels=(RENDER, PRIMARY, SYSFS, DEBUGFS, FWCTL),
                    doc="a blank cheque: every ioctl, attribute, register and RPC goes through")

POLICIES = (LINUX_DRM, LINUX_DRM_NORECOVERY, LINUX_AMDGPU_DEBUGFS, LINUX_AMDGPU_DEBUGFS_NO_PCI_LOCKDOWN, GPU_FWCTL,
            PERMISSIVE)
