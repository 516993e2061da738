"""NVIDIA mlx5 as a NIC: port registers and vport contexts, mlx5_core/mlx5e's side, mlx5 fwctl's commands.

The netdev programs the port through ACCESS_REG (linux
``drivers/net/ethernet/mellanox/mlx5/core/port.c``: ``mlx5_set_port_mtu()``
PMTU, ``mlx5_set_port_admin_status()`` PAOS, ``mlx5_set_port_pause()`` PFCC;
``core/en/port.c`` ``mlx5_port_set_eth_ptys()`` PTYS; ethtool -S reads PPCNT)
and the NIC vport context (``core/vport.c``
``mlx5_modify_nic_vport_mac_address()``).  The fwctl FD's commands carry the
uid of a uctx created with TOOLS_RESOURCES (``mlx5ctl_open_uctx()``); which
commands pass is ``plugins/ptfuzz_mlx5/fwctl.py``, shared with the rdma plugin.

Firmware variants: ``mlx5`` refuses port-register writes from any uid but the
kernel's (what mlx5ctl_validate_rpc() relies on when it lets ACCESS_REG writes
through at every scope); ``mlx5-tools-writes`` lets the tools uid write them.
Simplifications: channels are one ``CREATE_RQ`` with a count, SR-IOV one
``ENABLE_HCA`` with a count, flashing one MCC register write, and a firmware
reset one MFRL register write.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from typing import Any

from ptfuzz_mlx5 import ifc

from fuzzer import Args, Caller, Command, Device, Effect, Firmware, Param, Reply, World

from .driver import NetDriver, recover
from .state import MLX5

E = Effect

#: port register -> the netdev field it holds
REGISTER_FIELD = {"PMTU": "link.mtu", "PTYS": "link.speed", "PAOS": "link.admin", "PFCC": "link.pause",
                  "PPCNT": "stats"}
assert set(REGISTER_FIELD) == set(ifc.PORT_REGISTERS)
#: device-management registers only the kernel uses here (MLX5_REG_MFRL 0x9028; MCC is mlxfw's)
KERNEL_REGISTERS = ("MFRL", "MCC")


def _ok(**out: Any) -> Reply:
    return Reply(rc=ifc.STAT_OK, out=out)


def _fail(why: str) -> Reply:
    return Reply(rc=ifc.BAD_PARAM, why=why)


def _caps(dev: Device, uid: int) -> int | None:
    return next((caps for u, caps in dev.state["fw.uctx"] if u == uid), None)


def _tools(dev: Device, uid: int) -> bool:
    return bool((_caps(dev, uid) or 0) & ifc.UCTX_CAP_TOOLS_RESOURCES)


# ----------------------------------------------------------------------------- firmware


def _create_uctx(dev: Device, args: Args) -> Reply:
    uid = max((u for u, _ in dev.state["fw.uctx"]), default=0) + 1
    dev.state["fw.uctx"] = (*dev.state["fw.uctx"], (uid, args.get("value", 0)))
    return _ok(id=uid)


def _destroy_uctx(dev: Device, args: Args) -> Reply:
    dev.state["fw.uctx"] = tuple(u for u in dev.state["fw.uctx"] if u[0] != args["id"])
    return _ok()


def _reset(dev: Device) -> None:
    st = dev.state
    if st["fw.pending"]:
        st["fw.running"], st["fw.pending"] = st["fw.pending"], 0
    st["rings"], st["link.oper"] = 0, 0
    st["func.resets"] = st["func.resets"] + 1


def _access_reg(dev: Device, args: Args) -> Reply:
    """op_mod 1 reads, 0 writes (mlx5_access_reg(): op_mod = !write)."""
    uid, reg = args.get("uid", 0), args.get("reg", "PMTU")
    if uid and _caps(dev, uid) is None:
        return _fail(f"uid {uid} does not exist")
    if args.get("op_mod", 1) != 0:
        return _ok()
    if reg in KERNEL_REGISTERS:
        if uid:
            return _fail(f"{reg} is the device owner's")
        if reg == "MFRL":
            _reset(dev)
        else:
            dev.state["fw.pending"] = dev.state["fw.running"] + 1
        return _ok()
    if uid and not (dev.info["tools_port_writes"] and _tools(dev, uid)):
        return _fail(f"{reg} is a port-control register; uid {uid} may not write it")
    field = REGISTER_FIELD[reg]
    dev.state[field] = 0 if reg == "PPCNT" else args.get("value", 0)  # a PPCNT write clears the counters
    if field == "link.admin":
        dev.state["link.oper"] = dev.state[field]
    return _ok()


def _tools_or_kernel(field: str) -> Callable[[Device, Args], Reply]:
    """Vport contexts and diagnostics: uid 0, or a uid with TOOLS_RESOURCES ("global device state")."""
    def handler(dev: Device, args: Args) -> Reply:
        uid = args.get("uid", 0)
        if uid and not _tools(dev, uid):
            return _fail(f"{field} needs uid 0 or TOOLS_RESOURCES")
        dev.state[field] = args.get("value", 0)
        if field == "link.admin":
            dev.state["link.oper"] = dev.state[field]
        return _ok()

    return handler


def _set_hca_cap(dev: Device, args: Args) -> Reply:
    """FW "limits SET_HCA_CAP on the tools UID to only the other function mode" (fwctl/mlx5/main.c)."""
    uid = args.get("uid", 0)
    if args.get("other_function", False):
        return _tools_or_kernel("vf.caps")(dev, args)
    return _ok() if uid == 0 else _fail("only uid 0 sets this function's caps")


def _kernel_only(field: str) -> Callable[[Device, Args], Reply]:
    def handler(dev: Device, args: Args) -> Reply:
        if args.get("uid", 0):
            return _fail(f"{field} is the kernel's")
        dev.state[field] = args["value"]
        return _ok()

    return handler


def _query(dev: Device, args: Args) -> Reply:
    uid = args.get("uid", 0)
    return _ok() if not uid or _caps(dev, uid) is not None else _fail(f"uid {uid} does not exist")


def _reg_effects(args: Args, dev: Device) -> int:
    if args.get("op_mod", 1) != 0:
        return E.NONE
    return E.LOG_IMMEDIATE if args.get("reg") == "PPCNT" else E.CONFIG_IMMEDIATE


def _cap_effects(args: Args, dev: Device) -> int:
    return E.CONFIG_COLD_RESET if args.get("other_function") else E.CONFIG_IMMEDIATE


UID = Param("uid", "int", 0, 3, doc="the uid in the command header (mlx5ctl_fw_rpc() overwrites it)")
VALUE = Param("value", "int", 0, 3)
REG = Param("reg", "choice", choices=tuple(ifc.PORT_REGISTERS))
OP_MOD = Param("op_mod", "choice", choices=(1, 0), doc="ACCESS_REG: 1 reads, 0 writes")
OTHER_FUNCTION = Param("other_function", "bool")

#: op -> (handler, declared effects, the parameters an fwctl user sends); None: kernel-only firmware
TABLE: dict[str, tuple[Callable[[Device, Args], Reply], Any, tuple[Param, ...] | None]] = {
    "CREATE_UCTX": (_create_uctx, E.NONE, None),
    "DESTROY_UCTX": (_destroy_uctx, E.NONE, None),
    "ENABLE_HCA": (_kernel_only("vf.count"), E.CONFIG_IMMEDIATE, None),
    "CREATE_RQ": (_kernel_only("rings"), E.CONFIG_IMMEDIATE, None),
    "ACCESS_REG": (_access_reg, _reg_effects, (UID, REG, OP_MOD, VALUE)),
    "ACCESS_REGISTER_USER": (_access_reg, _reg_effects, (UID, REG, OP_MOD, VALUE)),
    "SET_HCA_CAP": (_set_hca_cap, _cap_effects, (UID, OTHER_FUNCTION, VALUE)),
    "SET_DIAGNOSTIC_PARAMS": (_tools_or_kernel("dbg.config"), E.LOG_IMMEDIATE, (UID, VALUE)),
    "MODIFY_NIC_VPORT_CONTEXT": (_tools_or_kernel("vport.mac"), E.CONFIG_IMMEDIATE, (UID, VALUE)),
    "MODIFY_VPORT_STATE": (_tools_or_kernel("link.admin"), E.CONFIG_IMMEDIATE, (UID, VALUE)),
    "MODIFY_ESW_VPORT_CONTEXT": (_tools_or_kernel("vf.state"), E.CONFIG_IMMEDIATE, (UID, VALUE)),
    **{op: (_query, E.NONE, (UID,)) for op in ("QUERY_HCA_CAP", "QUERY_ADAPTER", "QUERY_NIC_VPORT_CONTEXT",
                                               "QUERY_VPORT_STATE", "QUERY_DIAGNOSTIC_PARAMS", "NOP")},
}

FIRMWARE = tuple(Firmware(op, ifc.OPCODES[op], h, effects=eff) for op, (h, eff, _) in TABLE.items())


# ----------------------------------------------------------------------------- the driver


def _send(world: World, op: str, **args: Any) -> None:
    reply = world.mailbox(op, uid=0, **args)
    assert reply.rc == ifc.STAT_OK, f"mlx5_core: {op} failed: {reply.why}"


#: field -> how mlx5_core / mlx5e program it
PROGRAM: dict[str, tuple[str, dict[str, Any]]] = {
    "link.mtu": ("ACCESS_REG", {"reg": "PMTU", "op_mod": 0}),  # mlx5_set_port_mtu()
    "link.admin": ("ACCESS_REG", {"reg": "PAOS", "op_mod": 0}),  # mlx5_set_port_admin_status()
    "link.speed": ("ACCESS_REG", {"reg": "PTYS", "op_mod": 0}),  # mlx5_port_set_eth_ptys()
    "link.pause": ("ACCESS_REG", {"reg": "PFCC", "op_mod": 0}),  # mlx5_set_port_pause()
    "vport.mac": ("MODIFY_NIC_VPORT_CONTEXT", {}),  # mlx5_modify_nic_vport_mac_address()
    "rings": ("CREATE_RQ", {}),  # mlx5e_open_channels()
    "vf.count": ("ENABLE_HCA", {}),  # mlx5_sriov_enable() -> mlx5_core_enable_hca() per VF
    "vf.state": ("MODIFY_ESW_VPORT_CONTEXT", {}),  # mlx5_eswitch_set_vport_*()
}


def program(world: World, settings: Mapping[str, Any]) -> None:
    for field, value in settings.items():
        op, args = PROGRAM[field]
        _send(world, op, value=value, **args)


def probe(world: World) -> None:
    """mlx5ctl_open_uctx(): the fwctl FD's uid, with TOOLS_RESOURCES when the firmware has it."""
    reply = world.mailbox("CREATE_UCTX", uid=0, value=ifc.UCTX_CAP_TOOLS_RESOURCES)
    world.kernel["fwctl_uid"] = int(reply.out["id"])


def remove(world: World) -> None:
    world.mailbox("DESTROY_UCTX", uid=0, id=world.kernel["fwctl_uid"])
    world.kernel["fwctl_uid"] = 0


def flash(world: World) -> Reply:
    """mlx5_firmware_flash() through mlxfw: the image is staged (MCC)."""
    _send(world, "ACCESS_REG", reg="MCC", op_mod=0)
    return Reply()


def fw_activate(world: World) -> Reply:
    """devlink reload fw_activate: mlx5_fw_reset_set_reset_sync() (MFRL), then the reload brings mlx5e back."""
    _send(world, "ACCESS_REG", reg="MFRL", op_mod=0)
    recover(world, DRIVER)
    return Reply()


DRIVER = NetDriver("mlx5", "drivers/net/ethernet/mellanox/mlx5/core", program, flash, fw_activate,
                   probe=probe, remove=remove)


# ----------------------------------------------------------------------------- fwctl commands


def _rpc(op: str) -> Callable[[World, Args, Caller], Reply]:
    def mlx5ctl_fw_rpc(world: World, args: Args, caller: Caller) -> Reply:
        """mlx5ctl_fw_rpc(): mlx5_cmd_do(); a firmware status comes back as success (-EREMOTEIO)."""
        if not world.kernel["bound"]:
            return Reply(errno=errno.ENODEV, why="fwctl_unregister(): the mlx5 device is gone")
        reply = world.mailbox(op, **args)
        return Reply(rc=reply.rc, out=dict(reply.out), why=reply.why)

    mlx5ctl_fw_rpc.__name__ = f"mlx5ctl_fw_rpc_{op.lower()}"
    return mlx5ctl_fw_rpc


COMMANDS = tuple(Command(op, ifc.OPCODES[op], (MLX5,), driver=_rpc(op), effects=eff, params=params)
                 for op, (_, eff, params) in TABLE.items() if params is not None)
