"""The GPU invariants beyond the generic three.

* ``render-isolation``: a command on a render node changes neither global
  state the kernel owns nor another client's objects
  (``Documentation/gpu/drm-uapi.rst``, "Render nodes": no modesetting or
  privileged ioctls, nothing that affects other clients).
* ``drm-master``: on the primary node, only the current DRM master changes
  the display or another client's scheduling (``DRM_MASTER`` ioctls).
* ``lockdown``: under kernel lockdown no debugfs write changes the device.
  Lockdown exists to restrict root, so a policy's trust in root does not
  soften this one: its violations are always holes.
* ``bank-select``: a step leaves GRBM_GFX_INDEX at broadcast and the queue
  selection at 0, unless the caller wrote that very register: every
  ``amdgpu_gfx_select_se_sh()`` / ``amdgpu_gfx_select_me_pipe_q()`` user puts
  them back before it drops ``grbm_idx_mutex`` / ``srbm_mutex``
  (``amdgpu_debugfs_regs2_op()``, ``amdgpu_debugfs_process_reg_op()``, 7.3.4),
  and the kernel's own code writes "broadcast" registers without selecting.
  Root is trusted to write registers, not to have the kernel leave its own
  selection behind, so its violations are always holes.
* ``reset-bookkeeping``: after a reset the kernel rejects submissions for
  the contexts it affected, and no fence stays pending for a job the GPU no
  longer has (``drm-uapi.rst``, "Device reset": ``dma_fence_set_error()``);
  a hang the kernel does not reset must leave it tainted ("Device resets can
  not be disabled without tainting the kernel").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fuzzer import ABSENT, Invariant, StepContext, Violation

from .commands import DEBUGFS, PRIMARY, RENDER, ioctl_of
from .device import owner
from .kernel import client_of
from .policies import MASTER
from .regs import DEBUGFS_REGS

#: the selection fields, and the register a caller writes to set each one on purpose
SELECTION = {r.field: r.name for r in DEBUGFS_REGS["amdgpu_regs"] if r.field.startswith("grbm.")}


def _caller_client(ctx: StepContext) -> int | None:
    """The client the step was sent by: its file's, or the one an open just made."""
    if "file" in ctx.step.args:
        return client_of(ctx.world.kernel, ctx.step.args["file"])
    made = ctx.reply.out.get("client") if ctx.reply is not None else None
    return None if made is None else int(made)


def _foreign(ctx: StepContext, key: str, me: int | None) -> Any:
    """The other client whose object ``key`` is (before or after the step), or None."""
    for value in (ctx.before.get(key, ABSENT), ctx.world.device.state.get(key, ABSENT)):
        who = owner(value)
        if who is not None and who != me:
            return who
    return None


def _kernel_owned_changes(ctx: StepContext, me: int | None) -> Iterator[tuple[str, str]]:
    """(field, what) for each kernel-owned global field, or other client's object, the step changed."""
    world = ctx.world
    for key in ctx.changed:
        f = world.field(key)
        if f.kernel_owned is None:
            continue
        if f.family:
            who = _foreign(ctx, key, me)
            if who is not None:
                yield f.name, f"client {who}'s {key}"
        else:
            yield f.name, f"global {key}"


def render_isolation(ctx: StepContext) -> Iterator[Violation]:
    if ctx.step.channel != RENDER or not ctx.allowed:
        return
    me = _caller_client(ctx)
    for field, what in _kernel_owned_changes(ctx, me):
        yield ctx.violation("render-isolation", f"{ctx.step.op} on a render node changed {what}", field=field)


def drm_master(ctx: StepContext) -> Iterator[Violation]:
    caller = ctx.step.caller
    if ctx.step.channel != PRIMARY or not ctx.allowed or caller is None or MASTER in caller.switches:
        return
    me = _caller_client(ctx)
    for field, what in _kernel_owned_changes(ctx, me):
        if field in ("display.mode", "ctx"):
            yield ctx.violation("drm-master", f"{ctx.step.op} from a client that is not the DRM master "
                                f"changed {what}", field=field)


def lockdown(ctx: StepContext) -> Iterator[Violation]:
    caller = ctx.step.caller
    if ctx.step.channel != DEBUGFS or caller is None or caller.lockdown == "none" or not ctx.allowed:
        return
    for key in ctx.changed:
        f = ctx.world.field(key)
        if f.effect:
            # built directly: ctx.violation() would mark root's step "trusted"
            yield Violation("lockdown", f.name, f"{ctx.step.op} changed {key} under lockdown={caller.lockdown} "
                            "(fs/debugfs/file.c debugfs_locked_down())", "hole", ctx.step.op, ctx.index,
                            ctx.world.subsystem.name)


def bank_select(ctx: StepContext) -> Iterator[Violation]:
    if ctx.step.actor != "user" or not ctx.allowed:
        return
    args = ctx.step.args
    for field, reg in SELECTION.items():
        now = ctx.world.device.state[field]
        if field not in ctx.changed or now == ctx.world.shadow.get(field) or (
                args.get("reg") == reg and args.get("write")):
            continue  # untouched, put back where the kernel keeps it, or the caller's own write
        # built directly: ctx.violation() would mark root's step "trusted"
        yield Violation("bank-select", field, f"{ctx.step.op} left {field} at "
                        f"{now:#010x}: the kernel's next broadcast register write "
                        "reaches one bank only (amdgpu_debugfs_regs2_op() restores it before unlocking)",
                        "hole", ctx.step.op, ctx.index, ctx.world.subsystem.name)


def reset_bookkeeping(ctx: StepContext) -> Iterator[Violation]:
    k = ctx.world.kernel
    reply = ctx.reply
    if ctx.step.actor == "user" and ioctl_of(ctx.step.op) == "CS" and ctx.allowed and reply is not None and not reply.errno:
        me = _caller_client(ctx)
        if me in k["guilty"]:
            yield ctx.violation("reset-bookkeeping", f"the kernel accepted a submission (fence "
                                f"{reply.out.get('fence')}) on client {me}'s context, which a reset made guilty",
                                field="ctx")
    state = ctx.world.device.state
    for key in ctx.changed:
        if not key.startswith("job:") or key in state:
            continue
        fence = k["fences"].get(int(key.partition(":")[2]))
        if fence is not None and fence[1] == "pending":
            yield ctx.violation("reset-bookkeeping", f"{key} is gone from the GPU but its fence is still "
                                "pending, with no error set", field="job")
    if ctx.step.op == "gpu_recover" and k["unrecovered"] and not ctx.world.tainted:
        yield ctx.violation("reset-bookkeeping", "a hung GPU was left unrecovered (amdgpu_gpu_recovery=0) "
                            "and the kernel is not tainted", field="gpu.hung")


INVARIANTS = (
    Invariant("render-isolation", render_isolation, subsystem="gpu",
              doc="render-node commands change no global state and no other client's objects"),
    Invariant("drm-master", drm_master, subsystem="gpu",
              doc="on the primary node only the master changes the display or others' scheduling"),
    Invariant("lockdown", lockdown, subsystem="gpu",
              doc="under lockdown no debugfs write changes the device, whoever sends it"),
    Invariant("bank-select", bank_select, subsystem="gpu",
              doc="no step leaves the GRBM SE/SH or queue selection away from broadcast, unless it wrote it"),
    Invariant("reset-bookkeeping", reset_bookkeeping, subsystem="gpu",
              doc="after a reset: guilty contexts rejected, no fence pending for a lost job; "
                  "no reset without taint"),
)
