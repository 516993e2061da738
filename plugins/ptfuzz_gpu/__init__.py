"""The GPU plugin: amdgpu's render and primary nodes, its sysfs and debugfs files, and a hypothetical fwctl.

Loaded through the ``ptfuzz`` entry-point group like any third-party plugin,
and using only ptfuzz's public records.  One subsystem, ``gpu``, modelled on
amdgpu (the driver with the richest public passthrough surface):

* ``ioctls.py``, ``regs.py``: the DRM ioctls and flags, the debugfs
  registers and sysfs attributes, as tables;
* ``device.py``: the GPU's state and firmware; the ``spec`` and ``debug``
  firmware variants; the hypothetical fwctl RPCs;
* ``kernel.py``: amdgpu's bookkeeping, its ioctl/sysfs/debugfs paths and the
  kernel actions (another client, GPU recovery, suspend/resume, partition
  switch, RAS errors);
* ``commands.py``: the commands per channel;
* ``policies.py``: ``linux-drm``, ``linux-drm-norecovery``,
  ``linux-amdgpu-debugfs``, ``gpu-fwctl``, ``permissive``;
* ``invariants.py``: render-node isolation, DRM master, reset bookkeeping.
"""

from __future__ import annotations

from fuzzer import CallerSpace, Channel, Invariant, Knob, Policy, Subsystem, fwctl, hookimpl

from . import kernel, regs
from .commands import CARD, COMMANDS, DEBUGFS, FWCTL, PRIMARY, RENDER, SYSFS
from .device import DEVICES, FIELDS, FIRMWARE, STATUS_NAMES, UNSUPPORTED
from .invariants import INVARIANTS
from .policies import AUTHENTICATED, CAP_SYS_ADMIN, MASTER, POLICIES

__version__ = "0.1.0"

_USER: tuple[frozenset[str], ...] = (frozenset(), frozenset({CAP_SYS_ADMIN}))

CHANNELS = (
    Channel(RENDER, "DRM ioctls on the render node /dev/dri/renderD128 (drm_ioctl())",
            callers=CallerSpace(caps=_USER), opener="OPEN"),
    Channel(PRIMARY, "DRM ioctls on the primary node /dev/dri/card0; switches: authenticated, current master",
            callers=CallerSpace(caps=(frozenset(),), switches=(
                frozenset(), frozenset({AUTHENTICATED}), frozenset({AUTHENTICATED, MASTER}))),
            opener="OPEN" + CARD),
    Channel(SYSFS, "amdgpu power and partition attributes under /sys/class/drm/card0/device",
            callers=CallerSpace(caps=_USER)),
    Channel(DEBUGFS, "amdgpu register files under /sys/kernel/debug/dri/0",
            callers=CallerSpace(caps=_USER, lockdown=("none", "integrity"))),
    Channel(FWCTL, "FWCTL_RPC to a hypothetical GPU fwctl device (no such driver upstream)",
            scopes=fwctl.DRAWN_SCOPES, callers=CallerSpace(caps=(frozenset(), frozenset({fwctl.CAP_SYS_RAWIO})))),
)

SUBSYSTEM = Subsystem(
    "gpu",
    fields=FIELDS,
    channels=CHANNELS,
    commands=COMMANDS,
    firmware=FIRMWARE,
    unsupported=UNSUPPORTED,
    devices=DEVICES,
    actions=kernel.ACTIONS,
    kernel=kernel.boot,
    probe=kernel.probe,
    status_names=STATUS_NAMES,
    knobs=(
        Knob("gpu_recovery", -1, cite="drivers/gpu/drm/amd/amdgpu/amdgpu_drv.c amdgpu.gpu_recovery",
             doc="the module parameter: -1 auto, 0 a hang is not reset (amdgpu_device_should_recover_gpu())"),
        Knob("regs_mode", regs.MODE_AFTER_FIX, choices=(regs.MODE_AFTER_FIX, regs.MODE_BEFORE_FIX),
             cite="drivers/gpu/drm/amd/amdgpu/amdgpu_debugfs.c amdgpu_debugfs_regs_init()",
             doc="mode of the register files: 0o400 (256), 0o444 (292) before the fix"),
        Knob("regs2_restore", True, cite="drivers/gpu/drm/amd/amdgpu/amdgpu_debugfs.c amdgpu_debugfs_regs2_op()",
             doc="regs2 restores GRBM_GFX_INDEX and the SRBM select after the access"),
    ),
    doc="amdgpu: render/primary nodes, power and partition sysfs, debugfs registers, a hypothetical fwctl",
)


@hookimpl
def ptfuzz_subsystems() -> list[Subsystem]:
    return [SUBSYSTEM]


@hookimpl
def ptfuzz_policies() -> list[Policy]:
    return list(POLICIES)


@hookimpl
def ptfuzz_invariants() -> list[Invariant]:
    return list(INVARIANTS)
