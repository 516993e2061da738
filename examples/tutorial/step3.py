"""The plugin guide's tutorial, step 3: a kernel action, and the kernel's ownership of a field.

README.md "Tutorial: a plugin from nothing" walks through steps 1-4 (``step1.py`` ... ``step4.py``).
"""

from __future__ import annotations

from fuzzer import (
    CallerSpace,
    Channel,
    Command,
    DeviceVariant,
    Effect,
    Field,
    KernelAction,
    Param,
    Reply,
    Subsystem,
    hookimpl,
)

__version__ = "0.1.0"

RPC = "fan.rpc"  # the passthrough channel: think of an ioctl on /dev/fanctl


# -- step 1: the device's state ---------------------------------------------------------------
FIELDS = (
    # The kernel owns the speed while its governor runs (a predicate over the kernel's dict).
    Field("fan.speed", Effect.CONFIG_IMMEDIATE, lambda k: k["governor"], "PWM duty, percent"),
    Field("fan.log_level", Effect.LOG_IMMEDIATE, None, "firmware log verbosity: userspace's"),
)


def initial_state() -> dict:
    return {"fan.speed": 30, "fan.log_level": 0}


# -- step 2: a command and its handler ---------------------------------------------------------
def set_speed(dev, args) -> Reply:
    dev.state["fan.speed"] = args["speed"]
    return Reply()


def get_speed(dev, args) -> Reply:
    speed = dev.state["fan.speed"]
    return Reply(out={"speed": speed}, data=bytes([speed]))


COMMANDS = (
    Command("SET_SPEED", 0x01, (RPC,), set_speed, effects=Effect.CONFIG_IMMEDIATE,
            params=(Param("speed", "int", 0, 100),)),
    Command("GET_SPEED", 0x02, (RPC,), get_speed, effects=Effect.NONE),
)


# -- step 3: the kernel: its bookkeeping, its probe, an action that takes ownership -----------
def boot() -> dict:
    return {"governor": False}


def probe(world) -> None:
    world.mailbox("GET_SPEED")


def enable_governor(world, args) -> Reply:
    """The thermal governor starts: it sets the speed and from now on owns it."""
    world.mailbox("SET_SPEED", speed=args["speed"])
    world.kernel["governor"] = True
    world.believe("fan.speed")
    return Reply()


SUBSYSTEM = Subsystem(
    "fan",
    fields=FIELDS,
    channels=(Channel(RPC, "FAN_IOCTL_RPC on /dev/fanctl"),),
    commands=COMMANDS,
    devices=(DeviceVariant("basic", state=initial_state, doc="one fan"),),
    actions=(KernelAction("enable_governor", enable_governor, (Param("speed", "int", 20, 80),)),),
    kernel=boot,
    probe=probe,
    callers=CallerSpace(caps=(frozenset(), frozenset({"CAP_SYS_ADMIN"}))),
    doc="the tutorial's fan controller",
)


@hookimpl
def ptfuzz_subsystems() -> list[Subsystem]:
    return [SUBSYSTEM]
