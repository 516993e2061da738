"""Broadcom bnxt: HWRM firmware, the bnxt_en driver's side of it, and bnxt fwctl's commands.

Firmware: one handler per HWRM request type (``hwrm.py``).  ``HWRM_FUNC_RESET``
and ``HWRM_FW_RESET`` reset the function: its rings are freed and its link
drops.  Honest firmware then posts ``RESET_NOTIFY`` on the driver's async
completion ring and the driver's recovery (``bnxt_async_event_process()`` ->
``bnxt_fw_reset()`` in ``drivers/net/ethernet/broadcom/bnxt/bnxt.c``)
reprograms everything; the ``bnxt-ring-drop`` firmware resets the function
on ``HWRM_FUNC_RESET`` and tells no one.  Which events bnxt firmware posts
for a FUNC_RESET sent through fwctl is not documented: both variants are
assumptions, and the difference between them is what the policy relies on.

fwctl: ``bnxtctl_fw_rpc()`` (``drivers/fwctl/bnxt/main.c``) hands the HWRM
message to ``bnxt_send_msg()`` as userspace built it, with the timeout of
``bnxtctl_get_timeout()``; a firmware error comes back in the response, not as
an errno.  bnxt_en's functions that program the link are cited by name
(``bnxt_change_mtu()``, ``bnxt_hwrm_set_link_setting()``,
``bnxt_hwrm_set_pause()``, ``bnxt_set_channels()``); their bodies were not read.

Simplified, once: what the firmware does for the debug commands 7.3.4's
``bnxtctl_validate_rpc()`` and ``bnxtctl_dma_cmds[]`` let through but no
source describes (``HWRM_DBG_COREDUMP_INITIATE``, ``HWRM_DBG_SIM_CABLE_STATE``,
``HWRM_DBG_USEQ_FLUSH``, ``HWRM_NVM_GET_DIR_ENTRIES``, ``HWRM_NVM_RAW_DUMP``,
``HWRM_FW_SET_STRUCTURED_DATA``, ``HWRM_SCH_GRP_CFG``, ``HWRM_DBG_PTRACE``,
``HWRM_FW_LIVEPATCH``, ``HWRM_DBG_TOKEN_CFG``) is unknown: here they change
nothing and declare nothing, so they are drawn and judged by the policy but
cannot disturb a field until a firmware variant says what they do.  DMA
buffers themselves are not modelled: a DMA command carries its length
field(s) (``hwrm.DMA``) for ``bnxtctl_check_dma_lens()``, not the data.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from typing import Any

from fuzzer import (
    Args,
    Caller,
    Command,
    Device,
    Effect,
    Firmware,
    Layout,
    Param,
    Reply,
    Slot,
    World,
    fwctl,
)

from . import hwrm
from .driver import NetDriver, recover
from .state import BNXT, FUNC_RESET

E = Effect
RESET_NOTIFY = "RESET_NOTIFY"  # ASYNC_EVENT_CMPL_EVENT_ID_RESET_NOTIFY


def _ok(**out: Any) -> Reply:
    return Reply(rc=hwrm.ERR_SUCCESS, out=out)


# ----------------------------------------------------------------------------- firmware

def _setter(**fields: str) -> Callable[[Device, Args], Reply]:
    """A handler that writes each present argument into its field (``mtu="link.mtu"``)."""
    def handler(dev: Device, args: Args) -> Reply:
        for arg, field in fields.items():
            if arg in args:
                dev.state[field] = args[arg]
                if field == "link.admin":  # the carrier follows the admin state
                    dev.state["link.oper"] = args[arg]
        return _ok()

    return handler


def _query(dev: Device, args: Args) -> Reply:
    return _ok()


def _ver_get(dev: Device, args: Args) -> Reply:
    return _ok(version=dev.state["fw.running"])


def _reset_function(dev: Device) -> None:
    st = dev.state
    st["rings"] = 0
    st["link.oper"] = 0
    st["func.resets"] = st["func.resets"] + 1


def _func_reset(dev: Device, args: Args) -> Reply:
    _reset_function(dev)
    if dev.info["func_reset_notifies"]:
        dev.state["fw.events"] = (*dev.state["fw.events"], RESET_NOTIFY)
    return _ok()


def _fw_reset(dev: Device, args: Args) -> Reply:
    """Activate a staged image (if any) and reset; every function's driver gets RESET_NOTIFY."""
    st = dev.state
    if st["fw.pending"]:
        st["fw.running"], st["fw.pending"] = st["fw.pending"], 0
    _reset_function(dev)
    st["fw.events"] = (*st["fw.events"], RESET_NOTIFY)
    return _ok()


def _clear(**values: Any) -> Callable[[Device, Args], Reply]:
    def handler(dev: Device, args: Args) -> Reply:
        dev.state.update(values)
        return _ok()

    return handler


def _stage_image(dev: Device, args: Args) -> Reply:
    """An NVM write of a firmware package: live after FW_RESET or devlink fw_activate."""
    dev.state["fw.pending"] = dev.state["fw.running"] + 1
    return _ok()


def _ring_free(dev: Device, args: Args) -> Reply:
    dev.state["rings"] = max(0, dev.state["rings"] - 1)
    return _ok()


VALUE = Param("value", "int", 0, 3)
MTU = Param("mtu", "choice", choices=(68, 1500, 9000))  # ascending: simplify() and the campaign agree

#: op -> (handler, declared effects, user parameters).  bnxt firmware has no effects
#: log: the declarations are the model's, honest for every variant.
FIRMWARE_TABLE: dict[str, tuple[Callable[[Device, Args], Reply], Effect, tuple[Param, ...]]] = {
    "HWRM_FUNC_CFG": (_setter(mtu="link.mtu", rings="rings", mac="vport.mac"), E.CONFIG_IMMEDIATE, (MTU,)),
    "HWRM_PORT_PHY_CFG": (_setter(admin="link.admin", speed="link.speed", value="link.speed"), E.CONFIG_IMMEDIATE,
                          (VALUE,)),
    "HWRM_PORT_MAC_CFG": (_setter(pause="link.pause", value="link.pause"), E.CONFIG_IMMEDIATE, (VALUE,)),
    "HWRM_FUNC_VF_CFG": (_setter(state="vf.state", value="vf.state"), E.CONFIG_IMMEDIATE, (VALUE,)),
    "HWRM_FUNC_VF_RESOURCE_CFG": (_setter(count="vf.count", value="vf.count"), E.CONFIG_IMMEDIATE, (VALUE,)),
    "HWRM_RING_FREE": (_ring_free, E.CONFIG_IMMEDIATE, ()),
    "HWRM_FUNC_RESET": (_func_reset, FUNC_RESET | E.CONFIG_IMMEDIATE, ()),
    "HWRM_PORT_CLR_STATS": (_clear(stats=0), E.LOG_IMMEDIATE, ()),
    "HWRM_FW_RESET": (_fw_reset, FUNC_RESET | E.CONFIG_IMMEDIATE | E.CONFIG_COLD_RESET, ()),
    "HWRM_FW_SYNC": (_query, E.NONE, ()),
    "HWRM_FW_SET_TIME": (_setter(value="fw.time"), E.NONE, (VALUE,)),
    "HWRM_DBG_LOG_BUFFER_FLUSH": (_query, E.NONE, ()),
    "HWRM_DBG_ERASE_NVM": (_clear(**{"fw.pending": 0, "nvm.config": 0}), E.CONFIG_COLD_RESET, ()),
    "HWRM_DBG_CFG": (_setter(value="dbg.config"), E.LOG_IMMEDIATE, (VALUE,)),
    "HWRM_NVM_DEFRAG": (_query, E.NONE, ()),
    "HWRM_NVM_FACTORY_DEFAULTS": (_clear(**{"nvm.config": 0}), E.CONFIG_COLD_RESET, ()),
    "HWRM_NVM_FLUSH": (_query, E.NONE, ()),
    "HWRM_NVM_GET_VARIABLE": (_query, E.NONE, ()),
    "HWRM_NVM_SET_VARIABLE": (_setter(value="nvm.config"), E.CONFIG_COLD_RESET, (VALUE,)),
    "HWRM_NVM_VERIFY_UPDATE": (_query, E.NONE, ()),
    "HWRM_NVM_ERASE_DIR_ENTRY": (_clear(**{"nvm.config": 0}), E.CONFIG_COLD_RESET, ()),
    "HWRM_NVM_MOD_DIR_ENTRY": (_setter(value="nvm.config"), E.CONFIG_COLD_RESET, (VALUE,)),
    "HWRM_NVM_FIND_DIR_ENTRY": (_query, E.NONE, ()),
    "HWRM_VER_GET": (_ver_get, E.NONE, ()),
    "HWRM_FUNC_QCFG": (_query, E.NONE, ()),
    "HWRM_FUNC_QSTATS": (_query, E.NONE, ()),
    "HWRM_PORT_QSTATS": (_query, E.NONE, ()),
    "HWRM_PORT_PHY_QCFG": (_query, E.NONE, ()),
    "HWRM_PORT_MAC_QCFG": (_query, E.NONE, ()),
    "HWRM_NVM_GET_DEV_INFO": (_query, E.NONE, ()),
    "HWRM_NVM_READ": (_query, E.NONE, ()),
    "HWRM_PORT_PHY_I2C_WRITE": (_setter(value="phy.regs"), E.CONFIG_IMMEDIATE, (VALUE,)),
    "HWRM_PORT_PHY_MDIO_WRITE": (_setter(value="phy.regs"), E.CONFIG_IMMEDIATE, (VALUE,)),
    "HWRM_NVM_MODIFY": (_stage_image, E.CONFIG_COLD_RESET, ()),
    "HWRM_NVM_WRITE": (_stage_image, E.CONFIG_COLD_RESET, ()),
    "HWRM_NVM_RAW_WRITE_BLK": (_stage_image, E.CONFIG_COLD_RESET, ()),
    # 7.3.4's further debug commands: unknown to the model, so inert (module docstring)
    **{op: (_query, E.NONE, ()) for op in (
        "HWRM_DBG_COREDUMP_INITIATE", "HWRM_DBG_USEQ_FLUSH", "HWRM_DBG_SIM_CABLE_STATE", "HWRM_NVM_GET_DIR_ENTRIES",
        "HWRM_NVM_RAW_DUMP", "HWRM_SCH_GRP_CFG", "HWRM_FW_SET_STRUCTURED_DATA", "HWRM_DBG_PTRACE",
        "HWRM_FW_LIVEPATCH", "HWRM_DBG_TOKEN_CFG")},
}
assert set(FIRMWARE_TABLE) == set(hwrm.REQ_TYPES)

FIRMWARE = tuple(Firmware(op, hwrm.REQ_TYPES[op], h, effects=eff) for op, (h, eff, _) in FIRMWARE_TABLE.items())


# ----------------------------------------------------------------------------- the driver


def handle_events(world: World) -> str:
    """bnxt_async_event_process(): RESET_NOTIFY schedules bnxt_fw_reset(), which recovers the function.

    Returns what the driver did, for the trace ("" when there was no event).
    """
    events = world.device.state["fw.events"]
    if not events:
        return ""
    world.device.state["fw.events"] = ()
    if RESET_NOTIFY in events:
        recover(world, DRIVER)
        return "bnxt_en: RESET_NOTIFY -> bnxt_fw_reset(): rings, MTU and link reprogrammed"
    return ""


def _send(world: World, op: str, **args: Any) -> None:
    reply = world.mailbox(op, **args)
    assert reply.rc == hwrm.ERR_SUCCESS, f"bnxt_en: {op} failed: {reply.why}"


#: field -> (HWRM request, argument) the driver programs it with
PROGRAM = {
    "link.mtu": ("HWRM_FUNC_CFG", "mtu"),  # bnxt_change_mtu()
    "rings": ("HWRM_FUNC_CFG", "rings"),  # bnxt_set_channels() -> bnxt_reserve_rings()
    "vport.mac": ("HWRM_FUNC_CFG", "mac"),  # bnxt_change_mac_addr()
    "link.admin": ("HWRM_PORT_PHY_CFG", "admin"),  # bnxt_open()/bnxt_close(): link up/down
    "link.speed": ("HWRM_PORT_PHY_CFG", "speed"),  # bnxt_hwrm_set_link_setting()
    "link.pause": ("HWRM_PORT_MAC_CFG", "pause"),  # bnxt_hwrm_set_pause()
    "vf.count": ("HWRM_FUNC_VF_RESOURCE_CFG", "count"),  # bnxt_sriov_enable()
    "vf.state": ("HWRM_FUNC_VF_CFG", "state"),  # bnxt_set_vf_mac()/vlan/trust
}


def program(world: World, settings: Mapping[str, Any]) -> None:
    for field, value in settings.items():
        op, arg = PROGRAM[field]
        _send(world, op, **{arg: value})


def flash(world: World) -> Reply:
    """bnxt_dl_flash_update(): the package is written to NVM and staged."""
    _send(world, "HWRM_NVM_WRITE")
    return Reply()


def fw_activate(world: World) -> Reply:
    """bnxt_dl_reload_down(DEVLINK_RELOAD_ACTION_FW_ACTIVATE): HWRM_FW_RESET, then the recovery."""
    _send(world, "HWRM_FW_RESET")
    handle_events(world)
    return Reply()


DRIVER = NetDriver("bnxt", "drivers/net/ethernet/broadcom/bnxt/bnxt.c", program, flash, fw_activate)


# ----------------------------------------------------------------------------- fwctl commands


def _rpc(op: str) -> Callable[[World, Args, Caller], Reply]:
    def bnxtctl_fw_rpc(world: World, args: Args, caller: Caller) -> Reply:
        """bnxtctl_fw_rpc(): bnxt_send_msg() with the request as built; then bnxt_en's async events."""
        if not world.kernel["bound"]:
            return Reply(errno=errno.ENODEV, why="fwctl_unregister(): the bnxt_en device is gone")
        reply = world.mailbox(op, **args)
        recovered = handle_events(world)
        return Reply(rc=reply.rc, out={**reply.out, "timeout_ms": hwrm.timeout_ms(op)},
                     why="; ".join(w for w in (reply.why, recovered) if w))

    bnxtctl_fw_rpc.__name__ = f"bnxtctl_fw_rpc_{op.lower()}"
    return bnxtctl_fw_rpc


def _dma_lens(op: str) -> tuple[Param, ...]:
    """A DMA command's length field(s), drawn at bnxtctl_check_dma_lens()'s boundaries (hwrm.dma_len_choices)."""
    fields = {f.field: f for f in hwrm.DMA[op].lens if f.field} if op in hwrm.DMA else {}
    return tuple(Param(name, "choice", choices=hwrm.dma_len_choices(f),
                       doc=f"{op}'s {name}: {f.width}-byte count of {f.unit}-byte units, 1..MAX_DMABUF bytes")
                 for name, f in fields.items())


def _layout(op: str) -> Layout | None:
    """A DMA command's body after struct input: sizeof(struct hwrm_xxx_input) and its length fields."""
    if op not in hwrm.DMA:
        return None
    dma = hwrm.DMA[op]
    slots = {f.field: Slot(f.field, f.offset - hwrm.INPUT_SIZE, f.width) for f in dma.lens if f.field}
    return Layout(tuple(slots.values()), size=dma.req_size - hwrm.INPUT_SIZE, out=0)


COMMANDS = tuple(Command(op, hwrm.REQ_TYPES[op], (BNXT,), driver=_rpc(op), effects=eff,
                         params=params + _dma_lens(op), layout=_layout(op))
                 for op, (_, eff, params) in FIRMWARE_TABLE.items())


#: FWCTL_RPC's lengths around one HWRM message: struct input (req_type le16 at 0) is the header.
#: A DMA command's natural in_len is its request struct (hwrm.DMA, which bnxtctl_fw_rpc() insists
#: on); simplified, once: other request bodies are not laid out, so their natural in_len is the
#: header (the kernel checks them only against sizeof(struct input)..HWRM_MAX_REQ_LEN).
ENVELOPE = fwctl.envelope(Layout(
    (Slot("opcode", 0, 2),), size=hwrm.INPUT_SIZE, out=hwrm.OUTPUT_SIZE,
), in_marks=(hwrm.MAX_REQ_LEN,))

