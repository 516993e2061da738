"""A test subsystem whose device opens only for one key of 2^32: a hole no drawn value reaches by chance.

The device refuses SET_CONFIG until UNLOCK was sent with ``KEY``; the
``vault-open`` policy lets anyone send both, so the shortest violating
sequence is UNLOCK(key=KEY), SET_CONFIG: the kernel believes the
configuration it set at probe time, and the device changes it under it.  The
key sits in the middle of the declared range, far from every boundary, small
value and power of two the search draws: only a search that learns what the
device compared the key with (``fuzzer.cmplog``) finds it.
"""

from __future__ import annotations

from fuzzer import (
    ALWAYS,
    Args,
    Channel,
    Command,
    Device,
    DeviceVariant,
    Effect,
    Field,
    Param,
    Policy,
    Reply,
    Subsystem,
    World,
    hookimpl,
)

KEY = 0x5A17C0DE
VAULT = "vault.ctl"
SIGNATURE = "kernel-owned-integrity:vault:SET_CONFIG:config"


def initial_state() -> dict[str, object]:
    return {"locked": True, "config": 1}


def unlock(dev: Device, args: Args) -> Reply:
    if args["key"] != KEY:
        return Reply(rc=1, why="wrong key")
    dev.state["locked"] = False
    return Reply()


def set_config(dev: Device, args: Args) -> Reply:
    if dev.state["locked"]:
        return Reply(rc=1, why="locked")
    dev.state["config"] = args["value"]
    return Reply()


def probe(world: World) -> None:
    world.believe("config")


SUBSYSTEM = Subsystem(
    "vault",
    fields=(
        Field("locked", Effect.NONE, doc="the device's own lock"),
        Field("config", Effect.CONFIG_IMMEDIATE, ALWAYS, doc="the driver set it at probe and caches it"),
    ),
    channels=(Channel(VAULT, "the vault's control device"),),
    commands=(
        Command("UNLOCK", 0x01, (VAULT,), unlock, params=(Param("key", "int", 0, 0xFFFFFFFF),)),
        Command("SET_CONFIG", 0x02, (VAULT,), set_config, effects=Effect.CONFIG_IMMEDIATE,
                params=(Param("value", "choice", choices=(2, 3)),)),
    ),
    devices=(DeviceVariant("vault", initial_state),),
    actions=(),
    kernel=dict,
    probe=probe,
    unsupported=0xFF,
    steps=6,
)

OPEN = Policy("vault-open", "vault", channels=(VAULT,), doc="no rule: anyone may unlock and configure")


@hookimpl
def ptfuzz_subsystems() -> list[Subsystem]:
    return [SUBSYSTEM]


@hookimpl
def ptfuzz_policies() -> list[Policy]:
    return [OPEN]
