"""The hooks a ptfuzz plugin implements.

A plugin is a module (or any object) with functions named like the specs
below, decorated with ``fuzzer.hookimpl``.  Every hook takes no arguments and
returns a sequence of frozen records from ``fuzzer.spec``: the plugin says
*what* its subsystem is, and the host decides how to fuzz it.  Install a
plugin as a distribution with an entry point in the ``ptfuzz`` group::

    [project.entry-points.ptfuzz]
    mydev = "ptfuzz_mydev"

or load a file for quick work: ``ptfuzz --plugin ./mydev.py list``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pluggy

from fuzzer.spec import CommandSet, DeviceSet, Exporter, Invariant, Policy, Subsystem

hookspec = pluggy.HookspecMarker("ptfuzz")
hookimpl = pluggy.HookimplMarker("ptfuzz")


@hookspec
def ptfuzz_subsystems() -> Sequence[Subsystem]:
    """Register whole subsystems: fields, channels, commands, devices, kernel model.

    Example::

        @hookimpl
        def ptfuzz_subsystems():
            return [Subsystem("cxl", fields=FIELDS, channels=CHANNELS,
                              commands=COMMANDS, devices=(SPEC, VENDOR),
                              actions=KERNEL_ACTIONS, kernel=boot, probe=probe)]
    """


@hookspec
def ptfuzz_devices() -> Sequence[DeviceSet]:
    """Add device variants to a subsystem another plugin registered.

    Example::

        @hookimpl
        def ptfuzz_devices():
            return [DeviceSet("cxl", (DeviceVariant("acme-x1", state=acme_state),))]
    """


@hookspec
def ptfuzz_commands() -> Sequence[CommandSet]:
    """Add commands (a vendor's opcodes) to an existing subsystem, for one variant or all.

    Example::

        @hookimpl
        def ptfuzz_commands():
            return [CommandSet("cxl", device="acme-x1", commands=(
                Command("ACME_TUNE", 0xC100, channels=("cxl.raw",),
                        effects=Effect.NONE, handler=acme_tune),))]
    """


@hookspec
def ptfuzz_policies() -> Sequence[Policy]:
    """Add named policies to a subsystem.

    Example::

        @hookimpl
        def ptfuzz_policies():
            return [Policy("deny-vendor", "cxl", channels=("cxl.raw",), rules=(
                Rule("no-vendor", lambda r: Deny(EPERM) if r.command.opcode >= 0xC000 else None,
                     cite="proposal on linux-cxl"),))]
    """


@hookspec
def ptfuzz_invariants() -> Sequence[Invariant]:
    """Add invariants checked after every step (``subsystem=None``: all subsystems).

    Example::

        @hookimpl
        def ptfuzz_invariants():
            return [Invariant("fw-not-halted", subsystem="cxl",
                              check=lambda ctx: [ctx.violation("fw-not-halted", "FW halted")]
                              if ctx.world.device.state["fw.halted"] else [])]
    """


@hookspec
def ptfuzz_exporters() -> Sequence[Exporter]:
    """Add formats a finding can be exported as (``ptfuzz export --format NAME``).

    Example::

        @hookimpl
        def ptfuzz_exporters():
            return [Exporter("markdown", ".md", render=lambda finding: ...)]
    """
