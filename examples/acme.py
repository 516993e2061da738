"""A third-party plugin in a dozen lines: a vendor opcode on the CXL mailbox, a policy, an invariant.

    ptfuzz --plugin examples/acme.py run cxl --policy deny-vendor --seed 1 --max-examples 300 --corpus "$(mktemp -d)"
    ptfuzz --plugin examples/acme.py run cxl --policy linux-raw --seed 1 --max-examples 300 --corpus "$(mktemp -d)"
"""

from __future__ import annotations

import errno

from ptfuzz_cxl.policies import LINUX_RAW

from fuzzer import (
    Command,
    CommandSet,
    Deny,
    Effect,
    Invariant,
    Param,
    Policy,
    Promise,
    Reply,
    Request,
    Rule,
    hookimpl,
)

__version__ = "0.1.0"


def tune(dev, args) -> Reply:  # type: ignore[no-untyped-def]
    """ACME_TUNE: its CEL entry says "no effect"; it reprograms the patrol scrubber."""
    dev.state["scrub.cycle_hours"] = args["hours"]
    return Reply()


def no_vendor_opcodes(r: Request) -> Deny | None:
    return Deny(errno.EPERM, "vendor opcode") if r.command.opcode >= 0xC000 else None


@hookimpl
def ptfuzz_commands() -> list[CommandSet]:
    return [CommandSet("cxl", (Command("ACME_TUNE", 0xC100, ("cxl.raw",), tune, effects=Effect.NONE,
                                       params=(Param("hours", "int", 1, 24),)),))]


@hookimpl
def ptfuzz_policies() -> list[Policy]:
    # linux-raw plus the 2021 proposal's opposite: no vendor opcodes at all.
    return [Policy("deny-vendor", "cxl", channels=LINUX_RAW.channels,
                   rules=(Rule("no-vendor-opcodes", no_vendor_opcodes, "examples/acme.py"), *LINUX_RAW.rules),
                   promises=(*LINUX_RAW.promises,
                             Promise("cxl.raw", "examples/acme.py", effects=int(Effect.CONFIG_IMMEDIATE),
                                     caps=frozenset({"CAP_SYS_RAWIO"}))),
                   doc="linux-raw without vendor opcodes")]


def scrub_daily(ctx):  # type: ignore[no-untyped-def]
    """ACME's RAS guide: the patrol scrubber must cover the media at least once a day.

    Look only at what this step changed: a check on the state alone would fire
    again after every later step, each with a new signature.
    """
    if "scrub.cycle_hours" in ctx.changed and ctx.world.device.state["scrub.cycle_hours"] > 24:
        yield ctx.violation("scrub-daily", "patrol scrub cycle set above 24 h", "scrub.cycle_hours")


@hookimpl
def ptfuzz_invariants() -> list[Invariant]:
    return [Invariant("scrub-daily", scrub_daily, subsystem="cxl")]
