"""The debugfs register files and sysfs attributes the model drives, as tables.

debugfs (linux 7.3.4 ``drivers/gpu/drm/amd/amdgpu/amdgpu_debugfs.c``):
``amdgpu_debugfs_regs_init()`` creates the fifteen files of
``debugfs_regs_names[]`` (``DEBUGFS_FILES``) under the DRM minor's debugfs
root, each ``S_IFREG | 0400`` (it was ``0444`` until "drm/amdgpu: fix the mode
of amdgpu debugfs regs files"), and none at all when the kernel is locked
down for ``LOCKDOWN_PCI_ACCESS`` ("amdgpu: HW debugfs nodes disabled (kernel
lockdown)", posted 2026-06 by Asad Kamal; in 7.3.4, commit not looked up).
``/sys/kernel/debug`` itself is 0700 (``DEBUGFS_DEFAULT_MODE``).  The write
handlers (``amdgpu_debugfs_regs_write()`` -> ``amdgpu_debugfs_process_reg_op()``,
``amdgpu_debugfs_regs_smc_write()``, ``amdgpu_debugfs_regs_pcie_write()``)
check only the 4-byte alignment of size and offset and then write the
register (``WREG32``, ``WREG32_SMC``, ``WREG32_PCIE``): no capability check
of their own, no bookkeeping.  ``amdgpu_debugfs_gfxoff_write()`` is
different: it calls ``amdgpu_gfx_off_ctrl()``, the kernel's own GFXOFF
request count.

``amdgpu_regs2`` (``amdgpu_debugfs_regs2_fops``) is the banked register
path: ``AMDGPU_DEBUGFS_REGS2_IOC_SET_STATE{,_V2}`` stores a per-file
``struct amdgpu_debugfs_regs2_iocdata{,_v2}`` (``amdgpu_umr.h``); a read or
write at an offset then takes ``grbm_idx_mutex`` and points GRBM_GFX_INDEX
at the chosen SE/SH/instance (``amdgpu_gfx_select_se_sh()``), and/or takes
``srbm_mutex`` and points the queue selection at ME/pipe/queue/VMID
(``amdgpu_gfx_select_me_pipe_q()``), accesses the register, and puts both
back to broadcast / 0 before unlocking (``amdgpu_debugfs_regs2_op()``).  The
kernel relies on that everywhere: its own code writes "broadcast" registers
without selecting first, so a selection left behind sends its writes to one
SE or one queue only.  The model's ASIC is gfx9 (``gfx_v9_0_select_se_sh()``,
``soc15_grbm_select()``, which programs GRBM_GFX_CNTL) with 4 SEs of 1 SH.

Simplification, once: each register stands for the kernel-owned state it
controls (one field per register, not one per SE or queue: a banked write
lands on the field whatever the selection), values are small integers, and a
command's opcode is its index in this table, not an MMIO offset (offsets
differ per ASIC).  Register names follow the amdgpu headers of the ASIC
generation where the name exists (``ixCG_SPLL_FUNC_CNTL``: SI/CIK SMC;
``mmMP1_SMN_C2PMSG_66``: the SMU message register of SMU v11+, where a write
sends a message such as SetPptLimit behind the driver's back).
"""

from __future__ import annotations

from typing import NamedTuple

from fuzzer import Layout, Slot


class Reg(NamedTuple):
    name: str
    #: the state field the register controls
    field: str
    doc: str = ""


#: debugfs file -> its registers
DEBUGFS_REGS: dict[str, tuple[Reg, ...]] = {
    "amdgpu_regs": (
        Reg("mmSCRATCH_REG0", "scratch", "a scratch register nothing depends on"),
        Reg("mmCP_ME_CNTL", "cp.running", "ME/PFP/CE halt bits: halting them stops the GFX ring"),
        Reg("mmVM_CONTEXT0_PAGE_TABLE_BASE_ADDR_LO32", "gart.base", "VMID0 (GART) page table base"),
        Reg("mmRLC_PG_CNTL", "gfxoff", "RLC power gating control (GFXOFF)"),
        Reg("mmMP1_SMN_C2PMSG_66", "power.cap", "SMU message register: a SetPptLimit sent behind the driver"),
        Reg("mmCRTC_CONTROL", "display.mode", "display controller (DCE) CRTC enable/timing"),
        Reg("mmGRBM_GFX_INDEX", "grbm.gfx_index", "the SE/SH/instance register accesses reach (gc_9_0_offset.h)"),
        Reg("mmGRBM_GFX_CNTL", "grbm.gfx_cntl", "the ME/pipe/queue/VMID queue registers reach (soc15_grbm_select())"),
    ),
    "amdgpu_regs_smc": (
        Reg("ixCG_SPLL_FUNC_CNTL", "clk.sclk_max", "engine PLL: the shader clock"),
        Reg("ixGENERAL_PWRMGT", "clk.dpm_level", "global power management: DPM on/off, forced levels"),
    ),
    "amdgpu_regs_pcie": (
        Reg("ixPCIE_LC_SPEED_CNTL", "pcie.link_speed", "PCIe link speed control (the DPM link level)"),
    ),
}

#: debugfs files whose write goes through kernel code that keeps its own books
KERNEL_MEDIATED = frozenset({"amdgpu_gfxoff"})

#: mode of the register files: 0444 before the fix, 0400 after (fs/debugfs/file.c
#: debugfs_locked_down() lets a 0444 file be opened read-only under lockdown)
MODE_BEFORE_FIX = 0o444
MODE_AFTER_FIX = 0o400

#: sysfs attributes the model writes: all S_IRUGO | S_IWUSR (0644), owned by root
#: (amdgpu_pm.c AMDGPU_DEVICE_ATTR_RW, hwmon power1_cap, amdgpu_gfx.c
#: DEVICE_ATTR(current_compute_partition), amdgpu_gmc.c current_memory_partition)
SYSFS_MODE = 0o644

#: AMD_DPM_FORCED_LEVEL_* (drivers/gpu/drm/amd/include/amd_shared.h)
DPM_LEVELS = {"auto": 0x1, "manual": 0x2, "low": 0x4, "high": 0x8}
#: compute partition modes (AMDGPU_SPX_PARTITION_MODE ...) and memory (NPS) modes
COMPUTE_PARTITIONS = ("SPX", "DPX", "QPX", "CPX")
MEMORY_PARTITIONS = ("NPS1", "NPS2", "NPS4")


class DebugfsFile(NamedTuple):
    """One of ``debugfs_regs_names[]`` and what its ``file_operations`` have.

    fs/debugfs/file.c ``debugfs_locked_down()`` (7.3.4) lets a file be opened
    under ``LOCKDOWN_DEBUGFS`` only if its mode has nothing beyond 0444, the
    open is not for writing, and its fops have no ioctl and no mmap.
    """

    name: str
    write: bool
    ioctl: bool = False
    #: how the model covers it ("": a command of that name)
    model: str = ""


#: amdgpu_debugfs.c debugfs_regs[] / debugfs_regs_names[] (7.3.4), in its order
DEBUGFS_FILES = (
    DebugfsFile("amdgpu_regs", True),
    DebugfsFile("amdgpu_regs2", True, ioctl=True),
    DebugfsFile("amdgpu_gprwave", False, ioctl=True, model="not modelled: reads wave state and GPRs; "
                "selects SE/SH/CU under grbm_idx_mutex and restores broadcast as amdgpu_regs2 does"),
    DebugfsFile("amdgpu_regs_didt", True, model="not modelled: raw DIDT writes, as amdgpu_regs_smc"),
    DebugfsFile("amdgpu_regs_pcie", True),
    DebugfsFile("amdgpu_regs_pcie64", True, model="not modelled: 64-bit amdgpu_regs_pcie"),
    DebugfsFile("amdgpu_regs_smc", True),
    DebugfsFile("amdgpu_gca_config", False, model="not modelled: reads adev->gfx.config"),
    DebugfsFile("amdgpu_sensors", False, model="not modelled: reads amdgpu_dpm_read_sensor()"),
    DebugfsFile("amdgpu_wave", False, model="not modelled: read-only; selects SE/SH/CU and restores broadcast"),
    DebugfsFile("amdgpu_gpr", False, model="not modelled: read-only; selects SE/SH/CU and restores broadcast"),
    DebugfsFile("amdgpu_gfxoff", True),
    DebugfsFile("amdgpu_gfxoff_status", False),
    DebugfsFile("amdgpu_gfxoff_count", False),
    DebugfsFile("amdgpu_gfxoff_residency", True),
)
FILES = {f.name: f for f in DEBUGFS_FILES}

# --------------------------------------------------------------------------- amdgpu_regs2

#: broadcast, for an SE, SH or instance (the 0xffffffff amdgpu_gfx_select_se_sh() is given)
ALL = 0xFFFFFFFF
#: adev->gfx.config of the model's gfx9 part: what amdgpu_debugfs_regs2_op() checks se/sh against
MAX_SHADER_ENGINES = 4
MAX_SH_PER_SE = 1


def grbm_gfx_index(se: int, sh: int, instance: int) -> int:
    """GRBM_GFX_INDEX as gfx_v9_0_select_se_sh() (7.3.4) writes it (gc_9_0_sh_mask.h fields)."""
    data = (1 << 30) if instance == ALL else instance & 0xFF  # INSTANCE_BROADCAST_WRITES / INSTANCE_INDEX
    data |= (1 << 31) if se == ALL else (se & 0xFF) << 16  # SE_BROADCAST_WRITES / SE_INDEX
    data |= (1 << 29) if sh == ALL else (sh & 0xFF) << 8  # SH_BROADCAST_WRITES / SH_INDEX
    return data


def grbm_gfx_cntl(me: int, pipe: int, queue: int, vmid: int) -> int:
    """GRBM_GFX_CNTL as soc15_grbm_select() (7.3.4) writes it: PIPEID, MEID, VMID, QUEUEID."""
    return (pipe & 0x3) | (me & 0x3) << 2 | (vmid & 0xF) << 4 | (queue & 0x7) << 8


#: where the kernel keeps the selection whenever it does not hold grbm_idx_mutex / srbm_mutex
GRBM_BROADCAST = grbm_gfx_index(ALL, ALL, ALL)
GRBM_CNTL_IDLE = grbm_gfx_cntl(0, 0, 0, 0)


class Regs2Id(NamedTuple):
    """``struct amdgpu_debugfs_regs2_iocdata_v2`` (amdgpu_umr.h, 7.3.4): a regs2 file's state."""

    use_srbm: int = 0
    use_grbm: int = 0
    pg_lock: int = 0
    se: int = 0
    sh: int = 0
    instance: int = 0
    me: int = 0
    pipe: int = 0
    queue: int = 0
    vmid: int = 0
    xcc_id: int = 0


_V1_SLOTS = tuple(Slot(name, 4 * i, 4) for i, name in enumerate(Regs2Id._fields[:-1]))
#: struct amdgpu_debugfs_regs2_iocdata: three __u32 flags, grbm {se, sh, instance}, srbm {me, pipe, queue, vmid}
REGS2_IOCDATA = Layout(_V1_SLOTS, size=40, out=0)
#: ..._v2: the same and a u32 xcc_id
REGS2_IOCDATA_V2 = Layout((*_V1_SLOTS, Slot("xcc_id", 40, 4)), size=44, out=0)


def _iowr(kind: int, nr: int, size: int) -> int:
    """_IOWR() of include/uapi/asm-generic/ioctl.h: direction read|write, then size, type and number."""
    return 3 << 30 | size << 16 | kind << 8 | nr


#: amdgpu_umr.h: _IOWR(0x20, AMDGPU_DEBUGFS_REGS2_CMD_SET_STATE{,_V2}, struct ...)
REGS2_IOC_SET_STATE = _iowr(0x20, 0, 40)
REGS2_IOC_SET_STATE_V2 = _iowr(0x20, 1, 44)
