"""The netdev plugin: NICs whose firmware fwctl reaches while a bound netdev owns the link.

Three fwctl drivers as device variants, each on its own channel (one fwctl
device type each): bnxt (``drivers/fwctl/bnxt/main.c``), pds
(``drivers/fwctl/pds/main.c``) and mlx5 (``drivers/fwctl/mlx5/main.c``, its
rules shared with the rdma plugin through ``plugins/ptfuzz_mlx5``).  The
netdev-owned state (MTU, link, speed, pause, MAC, VFs, rings, counters, reset
count, firmware version) is one field set for all three (``state.py``).

Loaded through the ``ptfuzz`` entry-point group like any third-party plugin,
and using only ptfuzz's public records.
"""

from __future__ import annotations

from ptfuzz_mlx5 import fwctl as mlx5_fwctl
from ptfuzz_mlx5 import ifc

from fuzzer import CallerSpace, Channel, Policy, Subsystem, fwctl, hookimpl

from . import bnxt, hwrm, kernel, mlx5, pds
from .devices import DEVICES
from .policies import POLICIES
from .state import BNXT, EFFECT_NAMES, FIELDS, MLX5, PDS

__version__ = "0.1.0"

_CALLERS = CallerSpace(caps=(frozenset(), frozenset({fwctl.CAP_SYS_RAWIO})))

CHANNELS = (
    Channel(BNXT, "FWCTL_RPC to a bnxt fwctl device (FWCTL_DEVICE_TYPE_BNXT): one HWRM message",
            scopes=fwctl.DRAWN_SCOPES, callers=_CALLERS, envelope=bnxt.ENVELOPE),
    Channel(PDS, "FWCTL_RPC to a pds fwctl device (FWCTL_DEVICE_TYPE_PDS): an endpoint and an operation",
            scopes=fwctl.DRAWN_SCOPES, callers=_CALLERS, envelope=pds.ENVELOPE),
    Channel(MLX5, "FWCTL_RPC to an mlx5 fwctl device (FWCTL_DEVICE_TYPE_MLX5): one mlx5 command",
            scopes=fwctl.DRAWN_SCOPES, callers=_CALLERS, envelope=mlx5_fwctl.ENVELOPE, transport=mlx5_fwctl.transport),
)

def _status_names(*tables: dict[int, str]) -> dict[int, str]:
    """One table for three firmwares whose status codes overlap: ``1`` prints ``HWRM_ERR_CODE_FAIL/PDS_RC_EINVAL``."""
    names: dict[int, list[str]] = {}
    for table in tables:
        for code, name in table.items():
            if name not in names.setdefault(code, []):
                names[code].append(name)
    return {code: "/".join(n) for code, n in sorted(names.items())}


#: success is 0 for all three; the rest name every firmware that uses the code
STATUS_NAMES = {**_status_names(hwrm.STATUS_NAMES, pds.STATUS_NAMES, ifc.STATUS_NAMES), 0: "SUCCESS"}

SUBSYSTEM = Subsystem(
    "netdev",
    fields=FIELDS,
    channels=CHANNELS,
    commands=(),
    firmware=(*bnxt.FIRMWARE, *pds.FIRMWARE, *mlx5.FIRMWARE),
    devices=DEVICES,
    actions=kernel.ACTIONS,
    kernel=kernel.boot,
    probe=kernel.probe,
    status_names=STATUS_NAMES,
    effects=EFFECT_NAMES,
    unsupported=hwrm.ERR_INVALID_PARAMS,
    knobs=(mlx5_fwctl.ERROR_FREE_KNOB,),
    doc="NICs (bnxt, pds, mlx5) under fwctl while the netdev, ethtool and devlink own the link",
)


@hookimpl
def ptfuzz_subsystems() -> list[Subsystem]:
    return [SUBSYSTEM]


@hookimpl
def ptfuzz_policies() -> list[Policy]:
    return list(POLICIES)
