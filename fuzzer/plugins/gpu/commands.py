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

from fuzzer import Command, Driver, Effect, Param

from . import kernel
from .device import FWCTL, FWCTL_COMMANDS, reg_effects, reg_handler
from .ioctls import IOCTLS
from .regs import COMPUTE_PARTITIONS, DEBUGFS_REGS, DPM_LEVELS, MEMORY_PARTITIONS

RENDER = "gpu.render"
PRIMARY = "gpu.primary"
SYSFS = "gpu.sysfs"
DEBUGFS = "gpu.debugfs"
NODES = (RENDER, PRIMARY)

FILE = Param("file", "handle", bundle=kernel.FILES, doc="the DRM file the ioctl is sent on")
BO = Param("bo", "handle", bundle=kernel.BOS, doc="a GEM handle")
CI = Effect.CONFIG_IMMEDIATE


def _ioctl(name: str, driver: Driver, effects: Effect, *params: Param, produces: str = "", doc: str = "") -> Command:
    op = name.removeprefix("AMDGPU_")
    return Command(op, IOCTLS[name].nr, NODES, driver=driver, effects=effects, params=params,
                   produces=produces, doc=doc or f"DRM_IOCTL_{name}")


def _sysfs(name: str, opcode: int, driver: Driver, effects: Effect, param: Param) -> Command:
    return Command(name, opcode, (SYSFS,), driver=driver, effects=effects, params=(param,),
                   doc=f"write /sys/class/drm/card0/device/{name}")


NODE_COMMANDS = (
    Command("OPEN", 0, NODES, driver=kernel.open_file, effects=Effect.POLICY_IMMEDIATE, produces=kernel.FILES,
            doc="open the node: a drm_file and its context"),
    _ioctl("AMDGPU_GEM_CREATE", kernel.gem_create, Effect.DATA_IMMEDIATE, FILE,
           Param("domain", "choice", choices=("vram", "gtt")), produces=kernel.BOS),
    _ioctl("GEM_CLOSE", kernel.gem_close, Effect.DATA_IMMEDIATE, FILE,
           Param("bo", "handle", bundle=kernel.BOS, consumes=True)),
    _ioctl("GEM_OPEN", kernel.gem_open, Effect.NONE, FILE,
           Param("name", "choice", choices=(1, 2), doc="a flink name: global and guessable"), produces=kernel.BOS),
    _ioctl("AMDGPU_CS", kernel.cs, Effect.DATA_IMMEDIATE, FILE, BO,
           Param("hang", "bool", doc="the job never finishes (a shader loop): any client can hang the GPU")),
    _ioctl("AMDGPU_INFO", kernel.info, Effect.NONE, FILE),
    _ioctl("AMDGPU_SCHED", kernel.sched, Effect.POLICY_IMMEDIATE, FILE,
           Param("target", "handle", bundle=kernel.OTHERS,
                 doc="another process's DRM fd, whose contexts get the priority"),
           Param("priority", "choice", choices=(2, -2), doc="AMDGPU_CTX_PRIORITY_* (HIGH, LOW)")),
    _ioctl("MODE_ATOMIC", kernel.mode_atomic, CI, FILE, Param("mode", "choice", choices=(1, 2))),
)

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

COMMANDS = (*NODE_COMMANDS, *SYSFS_COMMANDS, *DEBUGFS_COMMANDS, *FWCTL_COMMANDS)
__all__ = ["COMMANDS", "DEBUGFS", "FWCTL", "NODES", "PRIMARY", "RENDER", "SYSFS"]
