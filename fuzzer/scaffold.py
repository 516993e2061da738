"""``ptfuzz new-plugin``: write a small, working subsystem plugin to start from.

The template is a complete subsystem with every part a real one needs, each
marked with what to replace: fields with owners and effects, a channel, a
command table, a kernel action that updates the shadow, a probe, and two
policies (one with a check, and the blank cheque).  It runs as written, and
the permissive policy finds a corruption in one step.
"""

from __future__ import annotations

import keyword
import re
import shlex

TEMPLATE = '''"""ptfuzz plugin for {name}: replace the WIDGET parts with your device.

Try it:
    ptfuzz --plugin {file} list
    ptfuzz --plugin {file} run {name} --policy permissive --max-examples 200
    ptfuzz --plugin {file} run {name} --policy guarded --max-examples 2000
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
    Promise,
    Reply,
    Request,
    Rule,
    Subsystem,
    hookimpl,
)
from fuzzer.spec import ALWAYS

__version__ = "0.1.0"

# 1. State: every field the device holds, what changing it means, and when the kernel owns it.
FIELDS = (
    Field("link.mtu", Effect.CONFIG_IMMEDIATE, ALWAYS, "the netdev set it at probe (replace: cite the driver)"),
    Field("fw.log_level", Effect.LOG_IMMEDIATE, None, "userspace's to change"),
)


def initial_state() -> dict:
    return {{"link.mtu": 1500, "fw.log_level": 0}}


# 2. Device commands: one handler per opcode; `effects` is what the device *declares*.
def query(dev, args) -> Reply:
    return Reply(out={{"mtu": dev.state["link.mtu"]}})


def set_mtu(dev, args) -> Reply:
    dev.state["link.mtu"] = args["mtu"]
    return Reply()


def set_log_level(dev, args) -> Reply:
    dev.state["fw.log_level"] = args["level"]
    return Reply()


CHANNEL = "{name}.rpc"
COMMANDS = (
    Command("QUERY", 0x0001, (CHANNEL,), query, effects=Effect.NONE),
    Command("SET_MTU", 0x0002, (CHANNEL,), set_mtu, effects=Effect.CONFIG_IMMEDIATE,
            params=(Param("mtu", "choice", choices=(1500, 4096, 9000)),)),
    Command("SET_LOG_LEVEL", 0x0003, (CHANNEL,), set_log_level, effects=Effect.LOG_IMMEDIATE,
            params=(Param("level", "int", 0, 7),)),
)


# 3. The kernel: its bookkeeping, its probe, and the actions it takes on its own.
def boot() -> dict:
    return {{"link_up": False}}


def probe(world) -> None:
    world.mailbox("QUERY")
    world.believe("link.mtu")


def kernel_set_mtu(world, args) -> Reply:
    """`ip link set mtu`: the driver programs the device and remembers the value."""
    world.mailbox("SET_MTU", mtu=args["mtu"])
    world.believe("link.mtu")
    return Reply()


SUBSYSTEM = Subsystem(
    "{name}",
    fields=FIELDS,
    channels=(Channel(CHANNEL, "the passthrough RPC (replace: its ioctl)"),),
    commands=COMMANDS,
    devices=(DeviceVariant("spec", state=initial_state, doc="declares its effects truthfully"),),
    actions=(KernelAction("set_mtu", kernel_set_mtu, (Param("mtu", "choice", choices=(1500, 9000)),)),),
    kernel=boot,
    probe=probe,
    callers=CallerSpace(caps=(frozenset(), frozenset({{"CAP_NET_ADMIN"}}))),
    doc="WIDGET: a template subsystem",
)


# 4. Policies: ordered rules, each citing the kernel code it encodes; promises about effects.
def no_config_writes(r: Request) -> Deny | None:
    if r.command.declared(r.args, r.device) & Effect.CONFIG_IMMEDIATE:
        return Deny(errno.EPERM, "immediate config changes stay with the kernel")
    return None


def admin_only(r: Request) -> Deny | None:
    return None if "CAP_NET_ADMIN" in r.caller.caps else Deny(errno.EPERM, "needs CAP_NET_ADMIN")


GUARDED = Policy(
    "guarded", "{name}", channels=(CHANNEL,),
    rules=(
        Rule("admin-only", admin_only, "replace: drivers/.../main.c foo_validate_rpc()"),
        Rule("no-config-writes", no_config_writes, "replace: drivers/.../main.c foo_validate_rpc()"),
    ),
    promises=(Promise(CHANNEL, "replace: the documented rule", effects=int(Effect.LOG_IMMEDIATE),
                      caps=frozenset({{"CAP_NET_ADMIN"}})),),
    doc="what the driver should do",
)
PERMISSIVE = Policy("permissive", "{name}", channels=(CHANNEL,), doc="the blank cheque")


@hookimpl
def ptfuzz_subsystems() -> list[Subsystem]:
    return [SUBSYSTEM]


@hookimpl
def ptfuzz_policies() -> list[Policy]:
    return [GUARDED, PERMISSIVE]

'''


def render(name: str, file: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise ValueError(f"subsystem name {name!r} must be lower-case letters, digits and _")
    return TEMPLATE.format(name=name, file=docstring_path(file))


def docstring_path(file: str) -> str:
    """``file`` as the generated docstring shows it: shell-quoted, then escaped for a ``\"\"\"`` string.

    The path is the user's (``-o PATH``), so it may hold quotes, backslashes,
    newlines or escape sequences; unescaped, ``x\"\"\"`` would end the docstring
    and the rest of the path would run as code when the plugin is imported.
    Backslashes, quotes and every non-printable or non-ASCII character become
    escapes, so the docstring's value is exactly the command to type.
    """
    return shlex.quote(file).encode("unicode_escape").decode("ascii").replace('"', '\\"')
