"""amdgpu as a model: probe, the client-facing ioctls, sysfs and debugfs paths, and kernel actions.

The kernel's bookkeeping (``world.kernel``):

* ``clients``: open DRM file -> client id (``drm_file``; one context each);
* ``bos``: GEM handle -> (file, buffer id); a handle is valid only in the
  file that created it (``drm_gem_object_lookup()`` on the file's idr);
* ``fences``: job sequence -> (client, status, hang) with status
  ``signaled``, ``pending`` or ``error`` (``dma_fence_set_error()``);
* ``names``: flink name -> buffer id (``dev->object_name_idr``: global, guessable integers);
* ``guilty``: clients whose context a reset marked guilty (``ctx->guilty``);
* ``vram_lost``: ``adev->vram_lost_counter``;
* ``unrecovered``: a hang the kernel saw and did not reset (recovery off);
* ``regs2``: open ``amdgpu_regs2`` file -> its ``Regs2Id`` (``rd->id``).

Sources (linux): ``drivers/gpu/drm/amd/amdgpu/amdgpu_kms.c``
(``amdgpu_driver_open_kms()``), ``amdgpu_gem.c``, ``amdgpu_cs.c``,
``amdgpu_sched.c`` (``amdgpu_sched_ioctl()``), ``amdgpu_device.c``
(``amdgpu_device_gpu_recover()``, ``amdgpu_device_should_recover_gpu()``,
``amdgpu_device_suspend()/resume()``), ``amdgpu_job.c``
(``amdgpu_job_timedout()``), ``amdgpu_gfx.c`` (``amdgpu_gfx_off_ctrl()``,
``amdgpu_gfx_set_compute_partition()``), ``amdgpu_gmc.c``
(``current_memory_partition``), ``amdgpu_ras.c`` (``amdgpu_ras_add_bad_pages()``),
``drivers/gpu/drm/amd/pm/amdgpu_pm.c``.

Simplifications, once: a reset and a suspend/resume cycle are single steps,
so ``amdgpu_in_reset()`` and ``adev->in_suspend`` are never true when a
command arrives and the sysfs handlers' checks of them are not modelled;
the re-programming after a reset or resume stands for
``smu_restore_dpm_user_profile()``, GART and CP re-init and the DC resume.
The kernel holds at most ``MAX_FILES`` open files (render, primary and
``amdgpu_regs2``), ``MAX_BOS`` GEM handles and ``MAX_FENCES`` fences, and
refuses more as a kernel out of memory would (``-EMFILE``, ``-ENOMEM``,
``-EBUSY``): a fuzzed sequence never comes near, and a step's work depends on
what the model holds, so the limits keep a 20,000-step replay linear
(``benchmarks/bench_gpu_replay.py``).
"""

from __future__ import annotations

import errno
from typing import Any

from fuzzer import Args, Caller, KernelAction, Param, Reply, World

from .device import DEFAULTS, FIELDS, SMU_FIELDS, objects
from .regs import (
    ALL,
    DEBUGFS_REGS,
    DPM_LEVELS,
    GRBM_BROADCAST,
    GRBM_CNTL_IDLE,
    MAX_SH_PER_SE,
    MAX_SHADER_ENGINES,
    Regs2Id,
    grbm_gfx_cntl,
    grbm_gfx_index,
)

FILES = "files"  # DRM files opened on the render node
CARD_FILES = "card_files"  # ... on the primary node
#: other processes' DRM fds: what AMDGPU_SCHED names as its target (passed over a socket)
OTHERS = "other_files"
BOS = "bos"
REGS2 = "regs2_files"  # open amdgpu_regs2 files
#: The model's limits (see the module docstring): far above what a finding needs.
MAX_FILES = 64
MAX_BOS = 256
MAX_FENCES = 256
#: kernel-owned global fields, re-programmed by the kernel after a reset or resume
GLOBAL = tuple(f.name for f in FIELDS if f.kernel_owned is not None and not f.family)
#: registers the kernel re-initialises (the rest of DEFAULTS is the SMU's)
REINIT_REGS = tuple(k for k in ("gart.base", "cp.running", "display.mode", "grbm.gfx_index", "grbm.gfx_cntl")
                    if k in DEFAULTS)


def boot() -> dict[str, Any]:
    return {"clients": {}, "next_client": 0, "bos": {}, "fences": {}, "next_seq": 0,
            "names": {}, "guilty": frozenset(), "vram_lost": 0, "unrecovered": False, "regs2": {}}


def knob(world: World, name: str, default: Any) -> Any:
    """A setting of the policy under test (None outside a run: the default)."""
    return world.policy.knobs.get(name, default) if world.policy is not None else default


def probe(world: World) -> None:
    """amdgpu_device_init(): the SMU at its defaults, GART and CP up, no display yet; all believed."""
    world.believe(*GLOBAL)


def _no(code: int, why: str) -> Reply:
    return Reply(errno=code, why=why)


def _fw(reply: Reply) -> Reply:
    return _no(errno.EINVAL, f"firmware: {reply.why or reply.rc}") if reply.rc else reply


def client_of(kernel: dict[str, Any], file: Any) -> int | None:
    """The client id behind an open DRM file, if it is open."""
    cid = kernel["clients"].get(file)
    return None if cid is None else int(cid)


def _full(world: World, table: str) -> Reply | None:
    """The refusal when the kernel's ``table`` is at the model's limit (``MAX_*``), else None."""
    k = world.kernel
    if table == "clients" and len(k["clients"]) + len(k["regs2"]) >= MAX_FILES:
        return _no(errno.EMFILE, f"the model's limit of {MAX_FILES} open files")
    if table == "bos" and len(k["bos"]) >= MAX_BOS:
        return _no(errno.ENOMEM, f"the model's limit of {MAX_BOS} GEM handles")
    if table == "fences" and len(k["fences"]) >= MAX_FENCES:
        return _no(errno.EBUSY, f"the model's limit of {MAX_FENCES} fences")
    return None


def _open(world: World) -> tuple[str, int]:
    k = world.kernel
    cid = k["next_client"] + 1
    k["next_client"] = cid
    world.mailbox("CTX_SET", client=cid, priority=0)
    world.believe(f"ctx:{cid}")
    handle = world.new_handle("file")
    k["clients"] = {**k["clients"], handle: cid}
    return handle, cid


def _gem_create(world: World, file: str, cid: int, domain: str) -> tuple[str, int]:
    reply = world.mailbox("BO_ALLOC", client=cid, domain=domain)
    ident = int(reply.out["id"])
    world.believe(f"bo:{ident}")
    handle = world.new_handle("bo")
    world.kernel["bos"] = {**world.kernel["bos"], handle: (file, ident)}
    return handle, ident


def _submit(world: World, cid: int, bo: int, hang: bool) -> Reply:
    full = _full(world, "fences")
    if full is not None:
        return full
    k = world.kernel
    seq = k["next_seq"] + 1
    k["next_seq"] = seq
    reply = world.mailbox("RUN_JOB", client=cid, bo=bo, seq=seq, hang=hang)
    if reply.rc:
        return _fw(reply)
    status = "pending" if reply.out["queued"] else "signaled"
    k["fences"] = {**k["fences"], seq: (cid, status, hang)}
    world.believe(f"job:{seq}", f"bo:{bo}")
    return Reply(out={"fence": seq, "status": status})


# --------------------------------------------------------------------------- render and primary nodes


def open_file(world: World, args: Args, caller: Caller) -> Reply:
    """open(/dev/dri/renderD128 or card0): drm_file_alloc(), amdgpu_driver_open_kms() (its VM and context)."""
    full = _full(world, "clients")
    if full is not None:
        return full
    handle, cid = _open(world)
    return Reply(handle=handle, out={"client": cid})


def _file(world: World, args: Args) -> int | Reply:
    cid = client_of(world.kernel, args["file"])
    return _no(errno.EBADF, "not an open DRM file") if cid is None else cid


def gem_create(world: World, args: Args, caller: Caller) -> Reply:
    """DRM_IOCTL_AMDGPU_GEM_CREATE: amdgpu_gem_create_ioctl() places a buffer for this file."""
    cid = _file(world, args)
    if isinstance(cid, Reply):
        return cid
    full = _full(world, "bos")
    if full is not None:
        return full
    handle, ident = _gem_create(world, args["file"], cid, args["domain"])
    return Reply(handle=handle, out={"id": ident})


def _own_bo(world: World, file: str, bo: str) -> int | Reply:
    """drm_gem_object_lookup(): the handle must be in this file's table."""
    entry = world.kernel["bos"].get(bo)
    if entry is None or entry[0] != file:
        return _no(errno.ENOENT, "no such GEM handle in this file")
    return int(entry[1])


def gem_close(world: World, args: Args, caller: Caller) -> Reply:
    """DRM_IOCTL_GEM_CLOSE: drop the handle; the last reference frees the buffer."""
    cid = _file(world, args)
    if isinstance(cid, Reply):
        return cid
    ident = _own_bo(world, args["file"], args["bo"])
    if isinstance(ident, Reply):
        return ident
    world.mailbox("BO_FREE", id=ident)
    world.believe(f"bo:{ident}")
    world.kernel["bos"] = {h: e for h, e in world.kernel["bos"].items() if h != args["bo"]}
    return Reply()


def _flink(world: World, ident: int) -> int:
    names = world.kernel["names"]
    for name, bo in names.items():
        if bo == ident:
            return int(name)
    name = len(names) + 1
    world.kernel["names"] = {**names, name: ident}
    return name


def gem_open(world: World, args: Args, caller: Caller) -> Reply:
    """DRM_IOCTL_GEM_OPEN: drm_gem_open_ioctl() opens a buffer by global name into this file."""
    cid = _file(world, args)
    if isinstance(cid, Reply):
        return cid
    ident = world.kernel["names"].get(args["name"])
    if ident is None or f"bo:{ident}" not in world.device.state:
        return _no(errno.ENOENT, "no buffer has that name")
    full = _full(world, "bos")
    if full is not None:
        return full
    handle = world.new_handle("bo")
    world.kernel["bos"] = {**world.kernel["bos"], handle: (args["file"], ident)}
    return Reply(handle=handle, out={"id": ident})


def cs(world: World, args: Args, caller: Caller) -> Reply:
    """DRM_IOCTL_AMDGPU_CS: amdgpu_cs_ioctl() looks the buffers up in the file, then the scheduler runs it."""
    cid = _file(world, args)
    if isinstance(cid, Reply):
        return cid
    ident = _own_bo(world, args["file"], args["bo"])
    if isinstance(ident, Reply):
        return ident
    return _submit(world, cid, ident, args["hang"])


def info(world: World, args: Args, caller: Caller) -> Reply:
    """DRM_IOCTL_AMDGPU_INFO: queries; changes nothing."""
    cid = _file(world, args)
    if isinstance(cid, Reply):
        return cid
    st = world.device.state
    return Reply(out={"sclk": st["clk.sclk_max"], "vram_lost": world.kernel["vram_lost"]})


def sched(world: World, args: Args, caller: Caller) -> Reply:
    """DRM_IOCTL_AMDGPU_SCHED: amdgpu_sched_process_priority_override() on another file's contexts."""
    cid = _file(world, args)
    if isinstance(cid, Reply):
        return cid
    target = client_of(world.kernel, args["target"])
    if target is None:
        return _no(errno.EINVAL, "the target fd is not a DRM file of this device")
    world.mailbox("CTX_SET", client=target, priority=args["priority"])
    world.believe(f"ctx:{target}")
    return Reply()


def mode_atomic(world: World, args: Args, caller: Caller) -> Reply:
    """DRM_IOCTL_MODE_ATOMIC: drm_mode_atomic_ioctl() commits through DC; the kernel owns the result."""
    cid = _file(world, args)
    if isinstance(cid, Reply):
        return cid
    world.mailbox("DC_COMMIT", mode=args["mode"])
    world.believe("display.mode")
    return Reply()


# --------------------------------------------------------------------------- sysfs


def _smu(world: World, field: str, value: Any) -> Reply:
    reply = world.mailbox("SMU_SET", field=field, value=value)
    if reply.rc:
        return _fw(reply)
    world.believe(field)
    return Reply()


def dpm_level(world: World, args: Args, caller: Caller) -> Reply:
    """power_dpm_force_performance_level: amdgpu_set_power_dpm_force_performance_level()."""
    return _smu(world, "clk.dpm_level", DPM_LEVELS[args["level"]])


def od_clk(world: World, args: Args, caller: Caller) -> Reply:
    """pp_od_clk_voltage: amdgpu_set_pp_od_clk_voltage(), the OD sclk ceiling (committed)."""
    return _smu(world, "clk.sclk_max", args["sclk"])


def power_cap(world: World, args: Args, caller: Caller) -> Reply:
    """hwmon power1_cap: amdgpu_hwmon_set_power_cap() -> amdgpu_dpm_set_power_limit()."""
    return _smu(world, "power.cap", args["watts"])


def switch_partition(world: World, mode: str) -> Reply:
    """amdgpu_xcp_switch_partition_mode(): the XCPs are re-carved; the kernel believes the new mode."""
    world.mailbox("SET_PARTITION", mode=mode)
    world.believe("partition.compute")
    return Reply()


def compute_partition(world: World, args: Args, caller: Caller) -> Reply:
    """current_compute_partition: amdgpu_gfx_set_compute_partition()."""
    return switch_partition(world, args["mode"])


def memory_partition(world: World, args: Args, caller: Caller) -> Reply:
    """current_memory_partition: the NPS mode is requested and takes effect at the next reset [U]."""
    world.mailbox("REQUEST_MEMORY_PARTITION", mode=args["mode"])
    return Reply()


# --------------------------------------------------------------------------- debugfs, kernel-mediated


def gfxoff_write(world: World, args: Args, caller: Caller) -> Reply:
    """amdgpu_gfxoff: amdgpu_debugfs_gfxoff_write() -> amdgpu_gfx_off_ctrl(), the kernel's request count."""
    return _smu(world, "gfxoff", 1 if args["value"] else 0)


def gfxoff_residency(world: World, args: Args, caller: Caller) -> Reply:
    """amdgpu_gfxoff_residency: a write starts (non-zero) or stops (zero) the SMU's residency log.

    amdgpu_debugfs_gfxoff_residency_write() -> amdgpu_set_gfx_off_residency() ->
    amdgpu_dpm_set_residency_gfxoff() (7.3.4) under gfx_off_mutex; the handler
    ignores what that returns (an SMU without the message answers -EINVAL, and
    the write still succeeds).  A read returns the SMU's live sample.
    """
    if args["write"]:
        world.mailbox("GFXOFF_RESIDENCY", start=bool(args["value"]))
        return Reply()
    return Reply(out={"logging": world.device.state["gfxoff.residency_log"]})


def gfxoff_status(world: World, args: Args, caller: Caller) -> Reply:
    """amdgpu_gfxoff_status: amdgpu_debugfs_gfxoff_status_read() -> amdgpu_get_gfx_off_status() (7.3.4)."""
    return Reply(out={"status": world.device.state["gfxoff"]})


def gfxoff_count(world: World, args: Args, caller: Caller) -> Reply:
    """amdgpu_gfxoff_count: amdgpu_debugfs_gfxoff_count_read() -> amdgpu_get_gfx_off_entrycount() (7.3.4).

    The SMU's entry count is not modelled (it reads 0); the file is here for its access checks.
    """
    return Reply(out={"count": 0})


# --------------------------------------------------------------------------- debugfs: amdgpu_regs2


def regs2_open(world: World, args: Args, caller: Caller) -> Reply:
    """open(amdgpu_regs2): amdgpu_debugfs_regs2_open() (7.3.4) kzalloc()s the file's state: no selection."""
    full = _full(world, "clients")
    if full is not None:
        return full
    handle = world.new_handle("regs2")
    world.kernel["regs2"] = {**world.kernel["regs2"], handle: Regs2Id()}
    return Reply(handle=handle)


def _regs2_set(world: World, args: Args, v2: bool) -> Reply:
    """amdgpu_debugfs_regs2_ioctl() (7.3.4): V2 copies the whole struct; V1 copies the v1 fields and
    sets xcc_id to 0, but never copies ``srbm.vmid`` (the v1_copy block omits it): the file keeps
    the VMID a V2 call (or the open's kzalloc) left there."""
    rd = world.kernel["regs2"].get(args["file"])
    if rd is None:
        return _no(errno.EBADF, "not an open amdgpu_regs2 file")
    given = {k: int(args[k]) for k in Regs2Id._fields if k in args}
    if not v2:
        given["vmid"], given["xcc_id"] = rd.vmid, 0
    world.kernel["regs2"] = {**world.kernel["regs2"], args["file"]: rd._replace(**given)}
    return Reply()


def regs2_set_state(world: World, args: Args, caller: Caller) -> Reply:
    """ioctl(AMDGPU_DEBUGFS_REGS2_IOC_SET_STATE): the v1 struct (40 bytes)."""
    return _regs2_set(world, args, v2=False)


def regs2_set_state_v2(world: World, args: Args, caller: Caller) -> Reply:
    """ioctl(AMDGPU_DEBUGFS_REGS2_IOC_SET_STATE_V2): the v2 struct (44 bytes, with xcc_id)."""
    return _regs2_set(world, args, v2=True)


def _mmio_field(reg: str) -> str:
    for r in DEBUGFS_REGS["amdgpu_regs"]:
        if r.name == reg:
            return r.field
    raise KeyError(f"amdgpu_regs has no register {reg}")


def regs2_access(world: World, args: Args, caller: Caller) -> Reply:
    """pread/pwrite on amdgpu_regs2: amdgpu_debugfs_regs2_op() (7.3.4).

    Under ``rd->lock``: with ``use_grbm``, reject an SE or SH past the ASIC's
    (-EINVAL), take ``grbm_idx_mutex`` and select it; with ``use_srbm``, take
    ``srbm_mutex`` and select the queue; read (``RREG32``) or write
    (``amdgpu_mm_wreg_mmio_rlc()``) the register; then select broadcast and
    queue 0 again and unlock.  The policy knob ``regs2_restore`` (default
    true) exists only to plant the hole where that last step is missing.
    The instance and xcc_id are not range-checked; on the model's one-XCC
    gfx9 part xcc_id selects nothing (``gfx_v9_0_select_se_sh()`` ignores it).
    """
    rd = world.kernel["regs2"].get(args["file"])
    if rd is None:
        return _no(errno.EBADF, "not an open amdgpu_regs2 file")
    if rd.use_grbm:
        if (rd.sh != ALL and rd.sh >= MAX_SH_PER_SE) or (rd.se != ALL and rd.se >= MAX_SHADER_ENGINES):
            return _no(errno.EINVAL, f"se {rd.se} / sh {rd.sh} past the ASIC's {MAX_SHADER_ENGINES} SEs of "
                       f"{MAX_SH_PER_SE} SH")
        world.mailbox("REG_WRITE", field="grbm.gfx_index", value=grbm_gfx_index(rd.se, rd.sh, rd.instance))
    if rd.use_srbm:
        world.mailbox("REG_WRITE", field="grbm.gfx_cntl", value=grbm_gfx_cntl(rd.me, rd.pipe, rd.queue, rd.vmid))
    field = _mmio_field(args["reg"])
    out: dict[str, Any] = {}
    if args["write"]:
        world.mailbox("REG_WRITE", field=field, value=args["value"])
    else:
        out["value"] = world.device.state[field]
    if knob(world, "regs2_restore", True):
        if rd.use_grbm:
            world.mailbox("REG_WRITE", field="grbm.gfx_index", value=GRBM_BROADCAST)
        if rd.use_srbm:
            world.mailbox("REG_WRITE", field="grbm.gfx_cntl", value=GRBM_CNTL_IDLE)
    return Reply(out=out)


# --------------------------------------------------------------------------- kernel actions


def _reprogram(world: World) -> None:
    """After a reset or resume the kernel puts back what it believes (and then believes it again)."""
    for name in GLOBAL:
        if name not in world.shadow:
            continue
        want = world.shadow[name]
        if name in SMU_FIELDS:
            world.mailbox("SMU_SET", field=name, value=want)
        elif name in REINIT_REGS:
            world.mailbox("REG_WRITE", field=name, value=want)
    world.believe(*GLOBAL)


def other_client(world: World, args: Args) -> Reply:
    """Another process (a DRI2 X client) opens the device, allocates a GTT buffer, flinks it, submits a job.

    Only this legacy client flinks (DRM_IOCTL_GEM_FLINK is left out of the
    fuzzed commands): flink names are what a render node must not reach.
    """
    full = _full(world, "clients") or _full(world, "bos") or _full(world, "fences")
    if full is not None:
        return full
    handle, cid = _open(world)
    _, ident = _gem_create(world, handle, cid, "gtt")
    _flink(world, ident)
    _submit(world, cid, ident, False)
    return Reply(handle=handle, out={"client": cid})


def gpu_recover(world: World, args: Args) -> Reply:
    """A job timed out: amdgpu_job_timedout() -> amdgpu_device_gpu_recover(), unless recovery is off.

    amdgpu_gpu_recovery=0: amdgpu_device_should_recover_gpu() logs "GPU recovery
    disabled." and returns; nothing taints the kernel.  Otherwise: mode-1 reset,
    the timed-out job's context is guilty, every pending fence gets an error,
    VRAM is lost and counted, and the kernel re-programs its settings.
    """
    k = world.kernel
    if not world.device.state["gpu.hung"]:
        return Reply(why="no hardware hang detected")
    if knob(world, "gpu_recovery", -1) == 0:
        k["unrecovered"] = True
        return Reply(why="GPU recovery disabled.")
    pending = sorted(seq for seq, f in k["fences"].items() if f[1] == "pending")
    world.mailbox("RESET")
    guilty = {k["fences"][seq][0] for seq in pending if k["fences"][seq][2]}
    k["fences"] = {seq: (f[0], "error", f[2]) if f[1] == "pending" else f for seq, f in k["fences"].items()}
    k["guilty"] = k["guilty"] | guilty
    k["vram_lost"] += 1
    k["unrecovered"] = False
    world.believe(*(f"job:{seq}" for seq in pending))  # gone from the rings: forgotten
    world.believe(*objects(world.device.state, "bo"))  # amdgpu_device_check_vram_lost()
    _reprogram(world)
    return Reply(out={"guilty": sorted(guilty), "errored": pending})


def suspend_resume(world: World, args: Args) -> Reply:
    """An S3 cycle: amdgpu_device_suspend() drains the rings and evicts VRAM; resume re-programs."""
    if world.device.state["gpu.hung"] or objects(world.device.state, "job"):
        return _no(errno.EBUSY, "the rings do not drain (a hang, or a halted CP)")
    world.mailbox("POWER_CYCLE")
    _reprogram(world)
    return Reply()


def partition_switch(world: World, args: Args) -> Reply:
    """The kernel switches the compute partition itself (amdgpu.user_partt_mode at reload): only idle."""
    if world.kernel["clients"]:
        return _no(errno.EBUSY, "amdgpu_amdkfd_check_and_lock_kfd(): the device is in use")
    return switch_partition(world, args["mode"])


def ras_error(world: World, args: Args) -> Reply:
    """An uncorrectable ECC error: amdgpu_ras_add_bad_pages() and amdgpu_ras_save_bad_pages()."""
    world.mailbox("RAS_RETIRE", page=args["page"])
    world.believe("ras.bad_pages")
    return Reply()


ACTIONS = (
    KernelAction("other_client", other_client, produces=OTHERS,
                 doc="a second process opens the device, allocates VRAM, flinks it and submits a job"),
    KernelAction("gpu_recover", gpu_recover, doc="a job timed out: GPU recovery (reset), or not"),
    KernelAction("suspend_resume", suspend_resume, doc="system suspend and resume (S3)"),
    KernelAction("partition_switch", partition_switch,
                 (Param("mode", "choice", choices=("DPX", "SPX", "CPX")),),
                 doc="the driver switches the compute partition while idle"),
    KernelAction("ras_error", ras_error, (Param("page", "choice", choices=(0x30, 0x40)),),
                 doc="an uncorrectable ECC error retires a page"),
)
