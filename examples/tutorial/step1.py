"""The plugin guide's tutorial, step 1: a subsystem and a device with two fields.

README.md "Tutorial: a plugin from nothing" walks through steps 1-4 (``step1.py`` ... ``step4.py``).
"""

from __future__ import annotations

from fuzzer import (
    Channel,
    DeviceVariant,
    Effect,
    Field,
    Subsystem,
    hookimpl,
)

__version__ = "0.1.0"

RPC = "fan.rpc"  # the passthrough channel: think of an ioctl on /dev/fanctl


# -- step 1: the device's state ------------------------------------------------------------------
FIELDS = (
    # Who owns each field: None, the device (userspace may change it). Step 3 hands the speed to the kernel.
    Field("fan.speed", Effect.CONFIG_IMMEDIATE, None, "PWM duty, percent"),
    Field("fan.log_level", Effect.LOG_IMMEDIATE, None, "firmware log verbosity: userspace's"),
)


def initial_state() -> dict:
    return {"fan.speed": 30, "fan.log_level": 0}


SUBSYSTEM = Subsystem(
    "fan",
    fields=FIELDS,
    channels=(Channel(RPC, "FAN_IOCTL_RPC on /dev/fanctl"),),
    commands=(),
    devices=(DeviceVariant("basic", state=initial_state, doc="one fan"),),
    actions=(),
    kernel=dict,  # step 3 gives the kernel bookkeeping
    probe=lambda world: None,  # and a probe
    doc="the tutorial's fan controller",
)


@hookimpl
def ptfuzz_subsystems() -> list[Subsystem]:
    return [SUBSYSTEM]
