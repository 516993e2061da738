"""The GPU as the model sees it: its state, its firmware, and the device variants.

Modelled on amdgpu.  State, one key per field:

* global state the kernel owns from probe on: clocks and the DPM level the
  SMU runs (``clk.*``), the power limit, GFXOFF, the PCIe link speed, the
  compute and memory partition modes, the RAS bad-page table, the GART page
  table base, the command processor (``cp.running``) and the display mode
  the DRM master set, and the GRBM selection (``grbm.*``: which SE/SH/instance
  and which ME/pipe/queue register accesses reach) it keeps at broadcast;
* per-object state (families): ``bo:<id>`` = (client, domain, generation)
  for VRAM/GTT buffers, ``job:<seq>`` = (client, status) for jobs the
  hardware holds, ``ctx:<client>`` = (client, priority) for each client's
  scheduler context (its hardware queue priority);
* the device's own: ``gpu.hung``, a scratch register, the firmware trace
  level, a debug clock staged for the next reset, a memory partition mode
  requested for the next reset, the SMU's GFXOFF residency logging.

Simplifications, once: one XCP, one context per client (``AMDGPU_CTX`` is
folded into open), a job either runs at once or, on a hung GPU, stays
queued; VRAM contents are a generation count per buffer; a reset is mode-1
(VRAM lost) and restores boot defaults, which the kernel then re-programs.

The firmware ops here are what the driver sends (``world.mailbox``); the
``gpu.fwctl`` commands at the bottom are RPCs of a *hypothetical* GPU fwctl
driver (see ``FWCTL``), forwarded to firmware as they are.
"""

from __future__ import annotations

from typing import Any

from fuzzer import (
    ALWAYS,
    BELIEVED,
    RESET_ONLY,
    Args,
    Command,
    Device,
    DeviceVariant,
    Effect,
    Field,
    Firmware,
    Param,
    Reply,
)

from .regs import DEBUGFS_REGS, DPM_LEVELS, GRBM_BROADCAST, GRBM_CNTL_IDLE

FWCTL = "gpu.fwctl"

# Firmware status codes (Reply.rc): the model's own, named for traces.
OK = 0
BAD_ARG = 1
NO_OBJECT = 2
BUSY = 3
STATUS_NAMES = {OK: "OK", BAD_ARG: "BAD_ARG", NO_OBJECT: "NO_OBJECT", BUSY: "BUSY", 0xFF: "UNSUPPORTED"}
UNSUPPORTED = 0xFF

CI = Effect.CONFIG_IMMEDIATE

FIELDS = (
    Field("clk.dpm_level", CI, ALWAYS,
          doc="the forced DPM level the kernel set (adev->pm.dpm.forced_level, amdgpu_pm.c)"),
    Field("clk.sclk_max", CI, ALWAYS, doc="the shader clock ceiling the kernel's OD table holds (pp_od_clk_voltage)"),
    Field("power.cap", CI, ALWAYS, doc="the power limit the kernel set and reports (smu->current_power_limit)"),
    Field("gfxoff", CI, ALWAYS, doc="GFXOFF as the kernel requested it (adev->gfx.gfx_off_req_count)"),
    Field("pcie.link_speed", CI, ALWAYS, doc="the link level the kernel's DPM chose (pcie_gen_mask, smu dpm)"),
    Field("partition.compute", CI, ALWAYS, doc="compute partition mode (xcp_mgr->mode), KFD nodes are built on it"),
    Field("partition.memory", CI, ALWAYS, doc="memory partition (NPS) mode; TTM's VRAM managers are built on it"),
    Field("ras.bad_pages", Effect.LOG_IMMEDIATE, ALWAYS,
          doc="the RAS EEPROM bad-page table; the kernel keeps these pages retired (amdgpu_ras.c)"),
    Field("gart.base", CI, ALWAYS, doc="the GART (VMID0) page table base amdgpu_gart set"),
    Field("cp.running", CI, ALWAYS, doc="the command processor runs: the GPU scheduler assumes it"),
    Field("display.mode", CI, ALWAYS, doc="the mode the DRM master committed (KMS state)"),
    Field("grbm.gfx_index", CI, ALWAYS,
          doc="GRBM_GFX_INDEX: broadcast outside grbm_idx_mutex, every amdgpu_gfx_select_se_sh() user restores it"),
    Field("grbm.gfx_cntl", CI, ALWAYS,
          doc="GRBM_GFX_CNTL (soc15 queue selection): 0 outside srbm_mutex, as amdgpu_gfx_select_me_pipe_q() users leave it"),
    Field("bo", Effect.DATA_IMMEDIATE, BELIEVED, family=True,
          doc="a buffer in VRAM or GTT (TTM): the kernel placed it and owns it for its client"),
    Field("job", Effect.DATA_IMMEDIATE, BELIEVED, family=True,
          doc="a job on a hardware ring; the scheduler holds its fence"),
    Field("ctx", Effect.POLICY_IMMEDIATE, BELIEVED, family=True,
          doc="a client's scheduler context and its hardware queue priority"),
    Field("gpu.hung", Effect.NONE, None, doc="the GPU is hung (any client can do that; resets exist for it)"),
    Field("scratch", Effect.NONE, None, doc="a scratch register"),
    Field("fw.trace_level", Effect.LOG_IMMEDIATE, None, doc="firmware debug trace verbosity"),
    Field("clk.debug_pending", Effect.CONFIG_COLD_RESET, None, doc="a debug clock staged for the next reset"),
    Field("partition.memory_pending", Effect.CONFIG_COLD_RESET, None,
          doc="the memory partition requested for the next reset"),
    Field("fw.next_id", Effect.NONE, None, doc="the firmware's buffer id counter"),
    Field("gfxoff.residency_log", Effect.LOG_IMMEDIATE, None,
          doc="the SMU logs GFXOFF residency (amdgpu_set_gfx_off_residency(); the kernel keeps no books of it)"),
)

#: where a register-backed or SMU-set field starts after power-on or a reset
DEFAULTS: dict[str, Any] = {
    "clk.dpm_level": DPM_LEVELS["auto"],
    "clk.sclk_max": 2100,
    "power.cap": 250,
    "gfxoff": 1,
    "pcie.link_speed": 4,
    "gart.base": 0x8000,
    "cp.running": 1,
    "display.mode": 0,
    "scratch": 0,
    "grbm.gfx_index": GRBM_BROADCAST,
    "grbm.gfx_cntl": GRBM_CNTL_IDLE,
}
#: limits the SMU enforces (smu_set_power_limit(), the OD range)
POWER_MAX = 300
SCLK_MAX = 2500
SMU_FIELDS = frozenset({"clk.dpm_level", "clk.sclk_max", "power.cap", "gfxoff", "pcie.link_speed"})
#: what survives a reset: VRAM contents are lost, the rest is re-programmed by the kernel
RESET_KEEPS = ("partition.compute", "ras.bad_pages", "fw.trace_level")


def initial_state() -> dict[str, Any]:
    return {
        **DEFAULTS,
        "partition.compute": "SPX",
        "partition.memory": "NPS1",
        "partition.memory_pending": "",
        "ras.bad_pages": (),
        "gpu.hung": False,
        "fw.trace_level": 0,
        "clk.debug_pending": 0,
        "fw.next_id": 0,
        # what a reset does to the SMU's residency log is not modelled: it survives
        "gfxoff.residency_log": 0,
    }


def objects(state: dict[str, Any], family: str) -> list[str]:
    """The keys of one family, in creation order."""
    prefix = family + ":"
    return sorted((k for k in state if k.startswith(prefix)), key=lambda k: int(k.partition(":")[2]))


def owner(value: Any) -> Any:
    """The client an object belongs to (every family value starts with it)."""
    return value[0] if isinstance(value, tuple) and value else None


# --------------------------------------------------------------------------- firmware the driver sends


def _ok(**out: Any) -> Reply:
    return Reply(rc=OK, out=out)


def bo_alloc(dev: Device, args: Args) -> Reply:
    ident = int(dev.state["fw.next_id"]) + 1
    dev.state["fw.next_id"] = ident
    dev.state[f"bo:{ident}"] = (args["client"], args["domain"], 0)
    return _ok(id=ident)


def bo_free(dev: Device, args: Args) -> Reply:
    return _ok() if dev.state.pop(f"bo:{args['id']}", None) is not None else Reply(rc=NO_OBJECT)


def ctx_set(dev: Device, args: Args) -> Reply:
    dev.state[f"ctx:{args['client']}"] = (args["client"], args["priority"])
    return _ok()


def ctx_del(dev: Device, args: Args) -> Reply:
    dev.state.pop(f"ctx:{args['client']}", None)
    return _ok()


def run_job(dev: Device, args: Args) -> Reply:
    """Run a job at once, or queue it behind a hang; a hanging job hangs the GPU."""
    st = dev.state
    key = f"bo:{args['bo']}"
    if key not in st:
        return Reply(rc=NO_OBJECT, why=f"no buffer {args['bo']}")
    if st["gpu.hung"] or not st["cp.running"] or args["hang"]:
        st[f"job:{args['seq']}"] = (args["client"], "queued")
        if args["hang"]:
            st["gpu.hung"] = True
        return _ok(queued=True)
    client, domain, gen = st[key]
    st[key] = (client, domain, gen + 1)
    return _ok(queued=False)


def _restore_defaults(st: dict[str, Any]) -> None:
    for k in [k for k in st if k.startswith("job:")]:
        del st[k]
    st.update(DEFAULTS)
    st["gpu.hung"] = False


def reset(dev: Device, args: Args) -> Reply:
    """Mode-1 reset: jobs dropped, VRAM lost, registers and SMU at boot defaults, staged changes live."""
    st = dev.state
    _restore_defaults(st)
    for k in objects(st, "bo"):
        client, domain, _ = st[k]
        st[k] = (client, domain, -1)  # contents lost
    if st["clk.debug_pending"]:
        st["clk.sclk_max"] = st["clk.debug_pending"]
        st["clk.debug_pending"] = 0
    if st["partition.memory_pending"]:
        st["partition.memory"] = st["partition.memory_pending"]
        st["partition.memory_pending"] = ""
    return _ok()


def power_cycle(dev: Device, args: Args) -> Reply:
    """S3: the device loses its registers; the kernel saved VRAM and drained the rings before."""
    _restore_defaults(dev.state)
    return _ok()


def smu_set(dev: Device, args: Args) -> Reply:
    field, value = args["field"], args["value"]
    if field not in SMU_FIELDS:
        return Reply(rc=BAD_ARG, why=f"the SMU does not set {field}")
    if (field == "power.cap" and value > POWER_MAX) or (field == "clk.sclk_max" and value > SCLK_MAX):
        return Reply(rc=BAD_ARG, why=f"{value} is above the limit")
    dev.state[field] = value
    return _ok()


def set_partition(dev: Device, args: Args) -> Reply:
    """A compute partition switch re-carves the XCPs: queued jobs and VRAM placements are gone (GTT stays)."""
    st = dev.state
    for k in objects(st, "job") + [k for k in objects(st, "bo") if st[k][1] == "vram"]:
        del st[k]
    st["partition.compute"] = args["mode"]
    return _ok()


def request_memory_partition(dev: Device, args: Args) -> Reply:
    dev.state["partition.memory_pending"] = args["mode"]
    return _ok()


def dc_commit(dev: Device, args: Args) -> Reply:
    dev.state["display.mode"] = args["mode"]
    return _ok()


def ras_retire(dev: Device, args: Args) -> Reply:
    pages = dev.state["ras.bad_pages"]
    if args["page"] not in pages:
        dev.state["ras.bad_pages"] = (*pages, args["page"])
    return _ok()


def gfxoff_residency(dev: Device, args: Args) -> Reply:
    """The SMU starts (or stops) logging GFXOFF residency (vangogh's set_gfx_off_residency)."""
    dev.state["gfxoff.residency_log"] = 1 if args["start"] else 0
    return _ok()


def reg_write(dev: Device, args: Args) -> Reply:
    """WREG32 and friends: the register (and what it controls) takes the value."""
    dev.state[args["field"]] = args["value"]
    return _ok()


FIRMWARE = (
    Firmware("BO_ALLOC", 0x01, bo_alloc, Effect.DATA_IMMEDIATE),
    Firmware("BO_FREE", 0x02, bo_free, Effect.DATA_IMMEDIATE),
    Firmware("CTX_SET", 0x03, ctx_set, Effect.POLICY_IMMEDIATE),
    Firmware("CTX_DEL", 0x04, ctx_del, Effect.POLICY_IMMEDIATE),
    Firmware("RUN_JOB", 0x05, run_job, Effect.DATA_IMMEDIATE),
    Firmware("RESET", 0x06, reset, CI | Effect.DATA_IMMEDIATE),
    Firmware("POWER_CYCLE", 0x07, power_cycle, CI),
    Firmware("SMU_SET", 0x08, smu_set, CI),
    Firmware("SET_PARTITION", 0x09, set_partition, CI | Effect.DATA_IMMEDIATE),
    Firmware("REQUEST_MEMORY_PARTITION", 0x0A, request_memory_partition, Effect.CONFIG_COLD_RESET),
    Firmware("DC_COMMIT", 0x0B, dc_commit, CI),
    Firmware("RAS_RETIRE", 0x0C, ras_retire, Effect.LOG_IMMEDIATE),
    Firmware("REG_WRITE", 0x0D, reg_write, CI),
    Firmware("GFXOFF_RESIDENCY", 0x0E, gfxoff_residency, Effect.LOG_IMMEDIATE),
)

# --------------------------------------------------------------------------- debugfs register writes

FIELD_EFFECT = {f.name: f.effect for f in FIELDS}


def _reg_field(file: str, reg: str) -> str:
    for r in DEBUGFS_REGS[file]:
        if r.name == reg:
            return r.field
    raise KeyError(f"{file} has no register {reg}")


def reg_effects(file: str) -> Any:
    """A raw write declares what the register controls: the honest answer, a register has no CEL."""

    def effects(args: Args, dev: Device) -> int:
        return int(FIELD_EFFECT[_reg_field(file, args["reg"])]) if args["write"] else 0

    return effects


def reg_handler(file: str) -> Any:
    """The debugfs write handler: the register gets the value, nothing else happens (no bookkeeping)."""

    def handler(dev: Device, args: Args) -> Reply:
        field = _reg_field(file, args["reg"])
        if not args["write"]:
            return _ok(value=dev.state[field])
        return reg_write(dev, {"field": field, "value": args["value"]})

    return handler


# --------------------------------------------------------------------------- hypothetical GPU fwctl


def _fw_query(dev: Device, args: Args) -> Reply:
    return _ok(sclk=dev.state["clk.sclk_max"], power=dev.state["power.cap"])


def _fw_read_trace(dev: Device, args: Args) -> Reply:
    return _ok(level=dev.state["fw.trace_level"])


def _fw_trace_level(dev: Device, args: Args) -> Reply:
    dev.state["fw.trace_level"] = args["level"]
    return _ok()


def _fw_clock_debug(dev: Device, args: Args) -> Reply:
    """Stage a debug shader clock for the next reset (as declared)."""
    dev.state["clk.debug_pending"] = args["sclk"]
    return _ok()


def _fw_clock_debug_now(dev: Device, args: Args) -> Reply:
    """The debug firmware: stages it *and* applies it to the running clock at once."""
    dev.state["clk.debug_pending"] = args["sclk"]
    dev.state["clk.sclk_max"] = args["sclk"]
    return _ok()


def _fw_power_limit(dev: Device, args: Args) -> Reply:
    return smu_set(dev, {"field": "power.cap", "value": args["watts"]})


def _fw_gfxoff(dev: Device, args: Args) -> Reply:
    dev.state["gfxoff"] = 1 if args["enable"] else 0
    return _ok()


def _fw_clear_bad_pages(dev: Device, args: Args) -> Reply:
    dev.state["ras.bad_pages"] = ()
    return _ok()


def _fw_ras_inject(dev: Device, args: Args) -> Reply:
    return ras_retire(dev, {"page": args["page"]})


def _fw_partition(dev: Device, args: Args) -> Reply:
    return set_partition(dev, {"mode": args["mode"]})


SCLK = Param("sclk", "choice", choices=(1800, 2400), doc="MHz")
WATTS = Param("watts", "choice", choices=(200, 300), doc="W")
PAGE = Param("page", "choice", choices=(0x10, 0x20), doc="a VRAM page frame")
MODE = Param("mode", "choice", choices=("DPX", "SPX", "CPX"))


def _fw(op: str, opcode: int, handler: Any, effects: Effect, *params: Param, doc: str = "") -> Command:
    return Command(op, opcode, (FWCTL,), handler=handler, effects=effects, params=params, doc=doc)


#: The hypothetical GPU fwctl RPCs, with the effects the firmware declares for each
#: (a command-effects report, as CXL's CEL and Get Supported Features give).
FWCTL_COMMANDS = (
    _fw("QUERY_INFO", 0x100, _fw_query, Effect.NONE, doc="clocks and limits, read only"),
    _fw("READ_TRACE", 0x101, _fw_read_trace, Effect.NONE, doc="read the firmware debug trace"),
    _fw("SET_TRACE_LEVEL", 0x102, _fw_trace_level, Effect.LOG_IMMEDIATE,
        Param("level", "choice", choices=(1, 3)), doc="firmware trace verbosity"),
    _fw("SET_CLOCK_DEBUG", 0x103, _fw_clock_debug, Effect.CONFIG_COLD_RESET, SCLK,
        doc="stage a debug shader clock for the next reset"),
    _fw("SET_POWER_LIMIT", 0x104, _fw_power_limit, CI, WATTS, doc="SMU power limit"),
    _fw("SET_GFXOFF", 0x105, _fw_gfxoff, CI, Param("enable", "bool"), doc="GFXOFF on or off"),
    _fw("RAS_CLEAR_BAD_PAGES", 0x106, _fw_clear_bad_pages, Effect.LOG_IMMEDIATE,
        doc="erase the RAS EEPROM bad-page table"),
    _fw("RAS_INJECT", 0x107, _fw_ras_inject, Effect.LOG_IMMEDIATE, PAGE,
        doc="inject an uncorrectable error: firmware retires the page"),
    # a reset also makes live what waited for one: it declares the reset-only bits too
    _fw("GPU_RESET", 0x108, reset, CI | Effect.DATA_IMMEDIATE | RESET_ONLY, doc="firmware-initiated mode-1 reset"),
    _fw("SET_COMPUTE_PARTITION", 0x109, _fw_partition, CI | Effect.DATA_IMMEDIATE, MODE,
        doc="switch the compute partition in firmware"),
)

SPEC = DeviceVariant("spec", state=initial_state, info={"power_max": POWER_MAX, "sclk_max": SCLK_MAX},
                     doc="honest firmware: every fwctl RPC does what its declared effects say")
DEBUG = DeviceVariant(
    "debug", state=initial_state, info={"power_max": POWER_MAX, "sclk_max": SCLK_MAX},
    commands=(_fw("SET_CLOCK_DEBUG", 0x103, _fw_clock_debug_now, Effect.CONFIG_COLD_RESET, SCLK,
                  doc="declared: staged for the next reset; the debug firmware applies it at once"),),
    doc="debug firmware: SET_CLOCK_DEBUG declares config-after-reset but reprograms the running clock",
)
DEVICES = (SPEC, DEBUG)
