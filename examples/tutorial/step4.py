"""The plugin guide's tutorial, step 4: a policy with one rule (the finished plugin).

A fan controller whose speed the kernel's thermal governor owns once it is enabled.
Steps 1-3 (``step1.py`` ...) build it up; README.md "Tutorial: a plugin from nothing" walks
through them.
"""

from __future__ import annotations

import errno

from fuzzer import (
    CallerSpace,
    Channel,
    Command,
    Deny,
    DeviceVariant,
    Effect,
    Field,
    KernelAction,
    Param,
    Policy,
    Reply,
    Request,
    Rule,
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


# -- step 4: a policy with one rule -------------------------------------------------------------
def governor_owns_speed(r: Request) -> Deny | None:
    if r.command.op == "SET_SPEED" and r.kernel["governor"]:
        return Deny(errno.EBUSY, "the thermal governor owns the fan")
    return None


GUARDED = Policy("guarded", "fan", channels=(RPC,), rules=(
    Rule("governor-owns-speed", governor_owns_speed, "drivers/hwmon/fanctl.c fanctl_rpc() (hypothetical)"),
), doc="what the driver should do")


@hookimpl
def ptfuzz_subsystems() -> list[Subsystem]:
    return [SUBSYSTEM]


@hookimpl
def ptfuzz_policies() -> list[Policy]:
    return [GUARDED]
