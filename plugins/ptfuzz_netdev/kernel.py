"""The kernel side every driver shares: probe, and the administrator's actions.

Each action is what a person would type (``ip link set dev eth0 mtu 9000``,
``ethtool -L eth0 combined 2``, ``devlink dev reload``); the driver of the
device variant (``device.info["driver"]``) turns it into firmware commands,
and afterwards the kernel believes what it programmed and what it read back.
``pci_error_detected`` and ``pci_resume`` hold bnxt_en's ULP-stopped window
open (``bnxt_io_error_detected()`` -> ``bnxt_ulp_stop()``) so that the fwctl
refusal inside it can be seen.
"""

from __future__ import annotations

import errno
from typing import Any

from fuzzer import Args, KernelAction, Param, Reply, World

from . import bnxt, mlx5, pds
from .driver import CONFIG, NetDriver, boot, recover, settle
from .state import OWNED

DRIVERS: dict[str, NetDriver] = {d.name: d for d in (bnxt.DRIVER, pds.DRIVER, mlx5.DRIVER)}

__all__ = ["ACTIONS", "DRIVERS", "boot", "probe"]


def driver_of(world: World) -> NetDriver:
    return DRIVERS[world.device.info["driver"]]


def probe(world: World) -> None:
    """The driver binds: its own probe work, then the settings programmed and everything believed."""
    drv = driver_of(world)
    drv.probe(world)
    settle(world, drv)


def _unbound(world: World) -> Reply | None:
    return None if world.kernel["bound"] else Reply(errno=errno.ENODEV, why="no driver is bound")


def _set(world: World, **settings: Any) -> Reply:
    """Record the administrator's settings and have the driver program them."""
    refused = _unbound(world)
    if refused is not None:
        return refused
    world.kernel["config"] = {**world.kernel["config"], **settings}
    settle(world, driver_of(world), settings)
    return Reply()


def ip_link_set_mtu(world: World, args: Args) -> Reply:
    """ip link set dev eth0 mtu N."""
    return _set(world, **{"link.mtu": args["mtu"]})


def ip_link_set(world: World, args: Args) -> Reply:
    """ip link set dev eth0 up|down."""
    return _set(world, **{"link.admin": 1 if args["up"] else 0})


def ethtool_set_channels(world: World, args: Args) -> Reply:
    """ethtool -L eth0 combined N."""
    return _set(world, rings=args["count"])


def ethtool_set_link(world: World, args: Args) -> Reply:
    """ethtool -s eth0 speed S; ethtool -A eth0 rx/tx on|off."""
    return _set(world, **{"link.speed": args["speed"], "link.pause": 1 if args["pause"] else 0})


def sriov_numvfs(world: World, args: Args) -> Reply:
    """echo N > /sys/class/net/eth0/device/sriov_numvfs."""
    return _set(world, **{"vf.count": args["count"]})


def ip_link_set_vf(world: World, args: Args) -> Reply:
    """ip link set dev eth0 vf 0 mac/vlan/trust ...: needs a VF."""
    if world.kernel["bound"] and not world.kernel["config"]["vf.count"]:
        return Reply(errno=errno.EINVAL, why="no VFs")
    return _set(world, **{"vf.state": args["state"]})


def devlink_reload(world: World, args: Args) -> Reply:
    """devlink dev reload [action fw_activate]: the driver goes down and comes back up."""
    refused = _unbound(world)
    if refused is not None:
        return refused
    drv = driver_of(world)
    if args["action"] == "fw_activate":
        return drv.fw_activate(world)
    recover(world, drv)
    return Reply()


def devlink_flash(world: World, args: Args) -> Reply:
    """devlink dev flash file <image>."""
    return _unbound(world) or driver_of(world).flash(world)


def driver_unbind(world: World, args: Args) -> Reply:
    """echo BDF > /sys/bus/pci/drivers/<driver>/unbind: fwctl unregisters, the netdev goes."""
    refused = _unbound(world)
    if refused is not None:
        return refused
    driver_of(world).remove(world)
    world.forget(*OWNED)
    world.kernel["bound"] = False
    return Reply()


def driver_bind(world: World, args: Args) -> Reply:
    """echo BDF > .../bind: a fresh probe with the driver's default settings."""
    if world.kernel["bound"]:
        return Reply(errno=errno.EBUSY, why="already bound")
    world.kernel.update(boot())
    world.kernel["config"] = dict(CONFIG)
    probe(world)
    return Reply()


def pci_error_detected(world: World, args: Args) -> Reply:
    """AER: the driver's .error_detected stops its ULPs (bnxt: BNXT_EN_FLAG_ULP_STOPPED)."""
    refused = _unbound(world)
    if refused is not None:
        return refused
    world.kernel["ulp_stopped"] = True
    return Reply()


def pci_resume(world: World, args: Args) -> Reply:
    """AER: .resume reinitialises the function and restarts the ULPs."""
    if not world.kernel["bound"] or not world.kernel["ulp_stopped"]:
        return Reply(errno=errno.EINVAL, why="no error recovery in progress")
    world.kernel["ulp_stopped"] = False
    recover(world, driver_of(world))
    return Reply()


ACTIONS = (
    KernelAction("ip_link_set_mtu", ip_link_set_mtu, (Param("mtu", "choice", choices=(1500, 9000)),),
                 doc="ip link set dev eth0 mtu N"),
    KernelAction("ip_link_set", ip_link_set, (Param("up", "bool"),), doc="ip link set dev eth0 up|down"),
    KernelAction("ethtool_set_channels", ethtool_set_channels, (Param("count", "int", 1, 8),),
                 doc="ethtool -L eth0 combined N"),
    KernelAction("ethtool_set_link", ethtool_set_link, (Param("speed", "int", 1, 3), Param("pause", "bool")),
                 doc="ethtool -s speed / -A pause"),
    KernelAction("sriov_numvfs", sriov_numvfs, (Param("count", "int", 0, 4),), doc="create or remove VFs"),
    KernelAction("ip_link_set_vf", ip_link_set_vf, (Param("state", "int", 0, 3),), doc="configure VF 0"),
    KernelAction("devlink_reload", devlink_reload,
                 (Param("action", "choice", choices=("driver_reinit", "fw_activate")),),
                 doc="devlink dev reload [action fw_activate]"),
    KernelAction("devlink_flash", devlink_flash, doc="devlink dev flash: stage (bnxt, mlx5) or install (pds)"),
    KernelAction("driver_unbind", driver_unbind, doc="unbind the NIC driver (fwctl unregisters too)"),
    KernelAction("driver_bind", driver_bind, doc="bind it again: a fresh probe"),
    KernelAction("pci_error_detected", pci_error_detected, doc="AER error: the driver stops its ULPs"),
    KernelAction("pci_resume", pci_resume, doc="AER resume: reinit and restart the ULPs"),
)
