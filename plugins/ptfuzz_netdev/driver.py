"""What every netdev driver model does the same way: keep the administrator's settings and program them.

A driver (``bnxt.py``, ``pds.py``, ``mlx5.py``) is a ``NetDriver``: how it
writes a setting into its firmware, how it flashes and activates firmware,
and what its probe and remove add.  The kernel keeps the settings an
administrator chose (``kernel["config"]``, by field name) and, after every
kernel action, believes what the firmware then holds: the driver programmed
it, or read it back (carrier, counters, firmware version, reset count).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from fuzzer import Reply, World

from .state import OWNED

#: The administrator's settings at boot: MTU, link up, speed, pause on, MAC, 4 channels, no VFs.
CONFIG: dict[str, Any] = {
    "link.mtu": 1500, "link.admin": 1, "link.speed": 2, "link.pause": 1, "vport.mac": 2,
    "rings": 4, "vf.count": 0, "vf.state": 0,
}


@attrs.frozen
class NetDriver:
    """One NIC driver: its firmware calls for the kernel's settings and its devlink operations."""

    name: str
    #: the driver's source, cited in traces
    source: str
    #: write ``settings`` (field name -> value) into the firmware, as the driver's ndo/ethtool ops do
    program: Callable[[World, Mapping[str, Any]], None]
    #: devlink dev flash: stage (or install) a new image
    flash: Callable[[World], Reply]
    #: devlink dev reload action fw_activate
    fw_activate: Callable[[World], Reply]
    #: driver-specific probe work before the settings are programmed (fwctl uid, endpoint list)
    probe: Callable[[World], None] = lambda world: None
    #: driver-specific remove work (destroy the fwctl uid)
    remove: Callable[[World], None] = lambda world: None


def boot() -> dict[str, Any]:
    return {
        "bound": True,
        "config": dict(CONFIG),
        "ulp_stopped": False,
        "recoveries": 0,
        "fwctl_uid": 0,
        #: pds: the firmware's ident (max_req_sz, max_resp_sz) and the endpoints found at probe,
        #: and each endpoint's operations once first used
        "pds_ident": {},
        "pds_endpoints": (),
        "pds_ops": {},
    }


def settle(world: World, drv: NetDriver, settings: Mapping[str, Any] | None = None) -> None:
    """Program ``settings`` (default: all of the kernel's), then believe every netdev-owned field."""
    drv.program(world, world.kernel["config"] if settings is None else settings)
    world.believe(*OWNED)


def recover(world: World, drv: NetDriver) -> None:
    """The driver's reset recovery: reprogram everything, re-read the firmware; devlink health counts it."""
    world.kernel["recoveries"] += 1
    settle(world, drv)
