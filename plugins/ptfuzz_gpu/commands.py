"""The user-facing commands, one row each, on the channels they arrive by.

``gpu.render`` (``/dev/dri/renderD128``) and ``gpu.primary`` (``/dev/dri/card0``)
carry the same DRM ioctls: the node decides what ``drm_ioctl_permit()`` lets
through, not the table.  ``gpu.sysfs`` holds the power and partition
attributes, ``gpu.debugfs`` amdgpu's register files, ``gpu.fwctl`` the
hypothetical GPU fwctl RPCs (``device.FWCTL_COMMANDS``).  Every command here
but the raw register writes runs through kernel code (``driver=``); a raw
register write reaches the hardware with no bookkeeping (``handler=``).
"""

from __future__ import annotations

from fuzzer import Args, Command, Device, Driver, Effect, Param

from . import kernel
from .device import FIELD_EFFECT, FWCTL, FWCTL_COMMANDS, reg_effects, reg_handler
from .ioctls import IOCTLS
from .regs import (
    ALL,
    COMPUTE_PARTITIONS,
    DEBUGFS_REGS,
    DPM_LEVELS,
    MEMORY_PARTITIONS,
    REGS2_IOC_SET_STATE,
    REGS2_IOC_SET_STATE_V2,
    REGS2_IOCDATA,
    REGS2_IOCDATA_V2,
)

RENDER = "gpu.render"
PRIMARY = "gpu.primary"
SYSFS = "gpu.sysfs"
DEBUGFS = "gpu.debugfs"
NODES = (RENDER, PRIMARY)

#: ops on the primary node carry this suffix (syzkaller style): one command per (node, ioctl),
#: because a file opened on one node is not a file of the other
CARD = "$card"
BO = Param("bo", "handle", bundle=kernel.BOS, doc="a GEM handle")
CI = Effect.CONFIG_IMMEDIATE


def _node_commands(channel: str, suffix: str, files: str) -> tuple[Command, ...]:
    """The DRM commands of one node: its own open, and the ioctls on files opened there."""
    file = Param("file", "handle", bundle=files, doc="the DRM file the ioctl is sent on")

    def ioctl(name: str, driver: Driver, effects: Effect, *params: Param, produces: str = "") -> Command:
        op = name.removeprefix("AMDGPU_") + suffix
        return Command(op, IOCTLS[name].nr, (channel,), driver=driver, effects=effects, params=(file, *params),
                       produces=produces, doc=f"DRM_IOCTL_{name}")

    return (
        Command("OPEN" + suffix, 0, (channel,), driver=kernel.open_file, effects=Effect.POLICY_IMMEDIATE,
                produces=files, doc="open the node: a drm_file and its context"),
        ioctl("AMDGPU_GEM_CREATE", kernel.gem_create, Effect.DATA_IMMEDIATE,
              Param("domain", "choice", choices=("vram", "gtt")), produces=kernel.BOS),
        ioctl("GEM_CLOSE", kernel.gem_close, Effect.DATA_IMMEDIATE, Param("bo", "handle", bundle=kernel.BOS,
                                                                           consumes=True)),
        ioctl("GEM_OPEN", kernel.gem_open, Effect.NONE,
              Param("name", "choice", choices=(1, 2), doc="a flink name: global and guessable"),
              produces=kernel.BOS),
        ioctl("AMDGPU_CS", kernel.cs, Effect.DATA_IMMEDIATE, BO,
              Param("hang", "bool", doc="the job never finishes (a shader loop): any client can hang the GPU")),
        ioctl("AMDGPU_INFO", kernel.info, Effect.NONE),
        ioctl("AMDGPU_SCHED", kernel.sched, Effect.POLICY_IMMEDIATE,
              Param("target", "handle", bundle=kernel.OTHERS,
                    doc="another process's DRM fd, whose contexts get the priority"),
              Param("priority", "choice", choices=(2, -2), doc="AMDGPU_CTX_PRIORITY_* (HIGH, LOW)")),
        ioctl("MODE_ATOMIC", kernel.mode_atomic, CI, Param("mode", "choice", choices=(1, 2))),
    )


def _sysfs(name: str, opcode: int, driver: Driver, effects: Effect, param: Param) -> Command:
    return Command(name, opcode, (SYSFS,), driver=driver, effects=effects, params=(param,),
                   doc=f"write /sys/class/drm/card0/device/{name}")


NODE_COMMANDS = (*_node_commands(RENDER, "", kernel.FILES), *_node_commands(PRIMARY, CARD, kernel.CARD_FILES))


def ioctl_of(op: str) -> str:
    """The command name without its node suffix: ``CS$card`` -> ``CS``."""
    return op.partition("$")[0]


SYSFS_COMMANDS = (
    _sysfs("power_dpm_force_performance_level", 1, kernel.dpm_level, CI,
           Param("level", "choice", choices=tuple(DPM_LEVELS))),
    _sysfs("pp_od_clk_voltage", 2, kernel.od_clk, CI, Param("sclk", "choice", choices=(1800, 2400, 2700))),
    _sysfs("power1_cap", 3, kernel.power_cap, CI, Param("watts", "choice", choices=(150, 300, 350))),
    _sysfs("current_compute_partition", 4, kernel.compute_partition, CI | Effect.DATA_IMMEDIATE,
           Param("mode", "choice", choices=COMPUTE_PARTITIONS)),
    _sysfs("current_memory_partition", 5, kernel.memory_partition, Effect.CONFIG_COLD_RESET,
           Param("mode", "choice", choices=MEMORY_PARTITIONS)),
)

WRITE = Param("write", "bool", doc="write (true) or read (false) the register")
VALUE = Param("value", "choice", choices=(0, 1, 2, 3), doc="the 32-bit value written")

DEBUGFS_COMMANDS = (
    *(Command(name, i, (DEBUGFS,), handler=reg_handler(name), effects=reg_effects(name),
              params=(Param("reg", "choice", choices=tuple(r.name for r in regs)), WRITE, VALUE),
              doc=f"pwrite to /sys/kernel/debug/dri/0/{name}")
      for i, (name, regs) in enumerate(DEBUGFS_REGS.items())),
    Command("amdgpu_gfxoff", len(DEBUGFS_REGS), (DEBUGFS,), driver=kernel.gfxoff_write, effects=CI,
            params=(Param("value", "choice", choices=(0, 1)),),
            doc="pwrite to /sys/kernel/debug/dri/0/amdgpu_gfxoff: 0 disallows GFXOFF, 1 allows it"),
)

# --------------------------------------------------------------------------- amdgpu_regs2 and the gfxoff files

REGS2_FILE = Param("file", "handle", bundle=kernel.REGS2, doc="an open amdgpu_regs2 file")
#: struct amdgpu_debugfs_regs2_iocdata's fields, drawn near the edges amdgpu_debugfs_regs2_op() checks:
#: the model's gfx9 part has SEs 0-3 and SH 0 (4 and 1 are one past), 0xffffffff is broadcast
REGS2_STATE = (
    Param("use_srbm", "bool", doc="select ME/pipe/queue/VMID (srbm_mutex) around the access"),
    Param("use_grbm", "bool", doc="select SE/SH/instance (grbm_idx_mutex) around the access"),
    Param("pg_lock", "bool", doc="hold adev->pm.mutex around the access (no state of its own)"),
    Param("se", "choice", choices=(0, 3, 4, ALL)),
    Param("sh", "choice", choices=(0, 1, ALL)),
    Param("instance", "choice", choices=(0, 1, ALL)),
    Param("me", "choice", choices=(0, 1, 2)),
    Param("pipe", "choice", choices=(0, 1)),
    Param("queue", "choice", choices=(0, 1)),
    Param("vmid", "choice", choices=(0, 8)),
)
XCC_ID = Param("xcc_id", "choice", choices=(0, 1), doc="the XCC (one on the model's gfx9 part: ignored)")


def _regs2_effects(args: Args, dev: Device) -> int:
    """It writes the selection registers whatever it does, and a write the register's own class."""
    reg = {r.name: r.field for r in DEBUGFS_REGS["amdgpu_regs"]}[args["reg"]]
    return int(CI | (FIELD_EFFECT[reg] if args["write"] else Effect.NONE))


REGS2_COMMANDS = (
    Command("OPEN$regs2", len(DEBUGFS_REGS) + 1, (DEBUGFS,), driver=kernel.regs2_open, produces=kernel.REGS2,
            doc="open /sys/kernel/debug/dri/0/amdgpu_regs2 O_RDWR (amdgpu_debugfs_regs2_open())"),
    Command("REGS2_IOC_SET_STATE", REGS2_IOC_SET_STATE, (DEBUGFS,), driver=kernel.regs2_set_state,
            params=(REGS2_FILE, *REGS2_STATE), layout=REGS2_IOCDATA,
            doc="ioctl(AMDGPU_DEBUGFS_REGS2_IOC_SET_STATE, struct amdgpu_debugfs_regs2_iocdata)"),
    Command("REGS2_IOC_SET_STATE_V2", REGS2_IOC_SET_STATE_V2, (DEBUGFS,), driver=kernel.regs2_set_state_v2,
            params=(REGS2_FILE, *REGS2_STATE, XCC_ID), layout=REGS2_IOCDATA_V2,
            doc="ioctl(AMDGPU_DEBUGFS_REGS2_IOC_SET_STATE_V2, struct amdgpu_debugfs_regs2_iocdata_v2)"),
    Command("amdgpu_regs2", len(DEBUGFS_REGS) + 2, (DEBUGFS,), driver=kernel.regs2_access, effects=_regs2_effects,
            params=(REGS2_FILE, Param("reg", "choice", choices=tuple(r.name for r in DEBUGFS_REGS["amdgpu_regs"])),
                    WRITE, VALUE),
            doc="pread/pwrite on amdgpu_regs2 at the register's offset, with the file's selection"),
)
GFXOFF_COMMANDS = (
    Command("amdgpu_gfxoff_status", len(DEBUGFS_REGS) + 3, (DEBUGFS,), driver=kernel.gfxoff_status,
            doc="read /sys/kernel/debug/dri/0/amdgpu_gfxoff_status"),
    Command("amdgpu_gfxoff_count", len(DEBUGFS_REGS) + 4, (DEBUGFS,), driver=kernel.gfxoff_count,
            doc="read /sys/kernel/debug/dri/0/amdgpu_gfxoff_count"),
    Command("amdgpu_gfxoff_residency", len(DEBUGFS_REGS) + 5, (DEBUGFS,), driver=kernel.gfxoff_residency,
            effects=lambda args, dev: int(Effect.LOG_IMMEDIATE) if args["write"] else 0,
            params=(WRITE, Param("value", "choice", choices=(0, 1), doc="non-zero starts logging, 0 stops it")),
            doc="pread/pwrite /sys/kernel/debug/dri/0/amdgpu_gfxoff_residency"),
)

COMMANDS = (*NODE_COMMANDS, *SYSFS_COMMANDS, *DEBUGFS_COMMANDS, *REGS2_COMMANDS, *GFXOFF_COMMANDS, *FWCTL_COMMANDS)
__all__ = ["CARD", "COMMANDS", "DEBUGFS", "FWCTL", "NODES", "PRIMARY", "RENDER", "SYSFS", "ioctl_of"]
