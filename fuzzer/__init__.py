"""ptfuzz: a property-based fuzzer for Linux device passthrough policies."""

from fuzzer.effects import Effect
from fuzzer.hookspecs import hookimpl
from fuzzer.spec import (
    Allow,
    Caller,
    CallerSpace,
    Channel,
    Command,
    CommandSet,
    Decision,
    Deny,
    DeviceSet,
    DeviceVariant,
    Exporter,
    Field,
    Invariant,
    KernelAction,
    Param,
    Policy,
    Promise,
    Reply,
    Request,
    Rule,
    Subsystem,
    Taint,
    Violation,
)

__version__ = "0.1.0"

__all__ = [
    "Allow", "Caller", "CallerSpace", "Channel", "Command", "CommandSet", "Decision", "Deny",
    "DeviceSet", "DeviceVariant", "Effect", "Exporter", "Field", "Invariant", "KernelAction",
    "Param", "Policy", "Promise", "Reply", "Request", "Rule", "Subsystem", "Taint", "Violation",
    "hookimpl", "__version__",
]
