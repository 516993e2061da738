"""The debugfs register files and sysfs attributes the model drives, as tables.

debugfs (linux ``drivers/gpu/drm/amd/amdgpu/amdgpu_debugfs.c``):
``amdgpu_debugfs_regs_init()`` creates ``amdgpu_regs``, ``amdgpu_regs_smc``,
``amdgpu_regs_pcie``, ``amdgpu_gfxoff`` (and others the model leaves out)
under the DRM minor's debugfs root.  Their mode was ``S_IFREG | 0444`` until
"drm/amdgpu: fix the mode of amdgpu debugfs regs files" made it ``0400``
(backported to stable); ``/sys/kernel/debug`` itself is 0700
(``DEBUGFS_DEFAULT_MODE``).  The write handlers (``amdgpu_debugfs_regs_write()``
-> ``amdgpu_debugfs_process_reg_op()``, ``amdgpu_debugfs_regs_smc_write()``,
``amdgpu_debugfs_regs_pcie_write()``) check only the 4-byte alignment of size
and offset and then write the register (``WREG32``, ``WREG32_SMC``,
``WREG32_PCIE``): no capability check of their own, no bookkeeping.
``amdgpu_debugfs_gfxoff_write()`` is different: it calls
``amdgpu_gfx_off_ctrl()``, the kernel's own GFXOFF request count.

Simplification, once: each register stands for the kernel-owned state it
controls (one field per register), values are small integers, and a
command's opcode is its index in this table, not an MMIO offset (offsets
differ per ASIC).  Register names follow the amdgpu headers of the ASIC
generation where the name exists (``ixCG_SPLL_FUNC_CNTL``: SI/CIK SMC;
``mmMP1_SMN_C2PMSG_66``: the SMU message register of SMU v11+, where a write
sends a message such as SetPptLimit behind the driver's back).
"""

from __future__ import annotations

from typing import NamedTuple


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
