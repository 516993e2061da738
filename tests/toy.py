"""A small test subsystem for engine tests: a NIC-like toy whose rules are known exactly.

Engine tests run against it, not against CXL, so that a fidelity fix in a real
plugin cannot break an engine test.  It uses every v2 feature: a firmware op
only the kernel sends, its own effect name, a field that needs no declared
effect, ports owned per instance and published by a kernel scan, a reaction
after a command, policy knobs, and a trusted caller.  Loadable with
``--plugin tests/toy.py``.
"""

from __future__ import annotations

import errno

from fuzzer import (
    ALWAYS,
    BELIEVED,
    Args,
    Caller,
    CallerSpace,
    Channel,
    Command,
    Deny,
    Device,
    DeviceVariant,
    Effect,
    Field,
    Firmware,
    KernelAction,
    Knob,
    Param,
    Policy,
    Reaction,
    Reply,
    Request,
    Rule,
    Subsystem,
    Trust,
    Verdict,
    World,
    hookimpl,
)

__version__ = "0.1.0"

#: The toy's own effect bit: a command that bounces a port's link.
LINK_FLAP = 1 << 16
TOY = "toy.ctl"
ROOT = "CAP_SYS_ADMIN"
PORTS = 3


def initial_state() -> dict[str, object]:
    return {"link.mtu": 1500, "counter": 0, **{f"port:{i}": "up" for i in range(PORTS)}}


def set_mtu(dev: Device, args: Args) -> Reply:
    dev.state["link.mtu"] = args["mtu"]
    dev.state["counter"] = dev.state["counter"] + 1  # type: ignore[operator]
    return Reply()


def flap(dev: Device, args: Args) -> Reply:
    key = f"port:{args['port']}"
    if key not in dev.state:
        return Reply(rc=2, why="no such port")
    dev.state[key] = "down" if dev.state[key] == "up" else "up"
    return Reply()


def list_ports(dev: Device, args: Args) -> Reply:
    return Reply(out={"ports": tuple(sorted(int(k.split(":")[1]) for k in dev.state if k.startswith("port:")))})


def boot() -> dict[str, object]:
    return {"ports": ()}


def probe(world: World) -> None:
    world.believe("link.mtu")
    scan(world, {})


def scan(world: World, args: Args) -> Reply:
    """The kernel enumerates ports, believes each one and publishes a handle per port."""
    ports = world.mailbox("LIST_PORTS").out["ports"]
    world.kernel["ports"] = ports
    world.believe(*(f"port:{p}" for p in ports))
    return Reply(handles=tuple(f"port{p}" for p in ports))


def release_port(world: World, args: Args) -> Reply:
    """The kernel hands a port to userspace: it stops owning it."""
    world.forget(f"port:{str(args['port'])[4:]}")
    return Reply()


def remtu(world: World, request: Request, reply: Reply) -> None:
    """After a command that may change the MTU, the driver re-reads it (the reaction the hole removes)."""
    if world.policy is not None and world.policy.knobs["reread"]:
        world.believe("link.mtu")


def root_only(r: Request) -> Verdict:
    return None if ROOT in r.caller.caps else Deny(errno.EPERM, "needs CAP_SYS_ADMIN")


def flap_driver(world: World, args: Args, caller: Caller) -> Reply:
    """A handle may dangle (the minimizer removed its producer): answer as the kernel does for a stale fd."""
    port = str(args["port"])[4:]
    if not port.isdigit():
        return Reply(errno=errno.EBADF, why="stale port handle")
    return world.mailbox("FLAP", port=int(port))


SUBSYSTEM = Subsystem(
    "toy",
    fields=(
        Field("link.mtu", Effect.CONFIG_IMMEDIATE, ALWAYS, doc="the netdev caches the MTU"),
        Field("counter", Effect.NONE, doc="a counter the device keeps; no effect to declare"),
        Field("port", LINK_FLAP, BELIEVED, family=True, doc="ports the kernel owns until it releases them"),
    ),
    channels=(Channel(TOY, "the toy's control device", callers=CallerSpace(caps=(frozenset(), frozenset({ROOT})))),),
    commands=(
        Command("SET_MTU", 0x01, (TOY,), set_mtu, effects=Effect.CONFIG_IMMEDIATE,
                params=(Param("mtu", "choice", choices=(1500, 9000)),)),
        Command("FLAP_PORT", 0x02, (TOY,), driver=flap_driver, effects=LINK_FLAP,
                params=(Param("port", "handle", bundle="ports"),)),
    ),
    firmware=(Firmware("LIST_PORTS", 0x10, list_ports), Firmware("FLAP", 0x11, flap, effects=LINK_FLAP)),
    devices=(DeviceVariant("toy", initial_state),),
    actions=(
        KernelAction("scan", scan, produces="ports", doc="rescan the ports"),
        KernelAction("release_port", release_port, (Param("port", "handle", bundle="ports"),)),
    ),
    kernel=boot,
    probe=probe,
    effects={LINK_FLAP: "link-flap"},
    unsupported=0xFF,
    steps=6,
    knobs=(Knob("reread", True, cite="toy.c toy_after_cmd()", doc="the driver re-reads the MTU after a command"),),
)

LINUX = Policy(
    "toy-linux", "toy", channels=(TOY,),
    rules=(Rule("root-only", root_only, "toy.c toy_ioctl()", ops=("SET_MTU",)),
           Rule("flap-root", root_only, "toy.c toy_flap()", ops=("FLAP_PORT",))),
    reactions=(Reaction("remtu", remtu, "toy.c toy_after_cmd()", effects=int(Effect.CONFIG_IMMEDIATE)),),
    trusts=(Trust(frozenset({ROOT}), "toy.c: ports are root's to bounce", ops=("FLAP_PORT",)),),
    knobs={"reread": True},
    doc="root only for SET_MTU, re-read after; root may bounce ports",
)


@hookimpl
def ptfuzz_subsystems() -> list[Subsystem]:
    return [SUBSYSTEM]


@hookimpl
def ptfuzz_policies() -> list[Policy]:
    return [LINUX]
