"""``ptfuzz new-plugin``: write a small, working subsystem plugin to start from.

The template is a complete subsystem with every part a real one needs, each
marked "replace": fields with owners and effects, a channel, a command table
with parameters, kernel actions (one updates the shadow), a probe, a policy
with rules, a promise, a reaction, a trust and a knob, the blank cheque, an
invariant and an exporter.  It runs as written: the guarded policy finds
nothing, and without its ``no-config-writes`` rule (the planted hole) a run
finds the kernel-owned MTU changed in one step.
"""

from __future__ import annotations

import keyword
import re
import shlex

TEMPLATE = '''\"\"\"ptfuzz plugin for {name}: replace every part marked "replace" with your device and driver.

Try it:
    ptfuzz --plugin {file} list {name}
    ptfuzz --plugin {file} run {name} --policy guarded --max-examples 2000
    ptfuzz --plugin {file} run {name} --policy guarded --without no-config-writes --max-examples 300
    ptfuzz --plugin {file} export FINDING.json --format {name}-report

The second run finds nothing; the third, with one check removed (the planted hole), finds
userspace changing the MTU the kernel owns, and its follow-on: the MTU changed under a link
that is up.  README.md "Tutorial: a plugin from nothing" explains each part.
\"\"\"

from __future__ import annotations

import errno
import json

from fuzzer import (
    ALWAYS,
    CallerSpace,
    Channel,
    Command,
    Deny,
    DeviceVariant,
    Effect,
    Exporter,
    Field,
    Invariant,
    KernelAction,
    Knob,
    Param,
    Policy,
    Promise,
    Reaction,
    Reply,
    Request,
    Rule,
    Subsystem,
    Trust,
    hookimpl,
)

__version__ = "0.1.0"

# 1. State (replace): every field the device holds, the effect class that changing it represents,
#    and who owns it: None (the device's), ALWAYS (the kernel's from probe on), or a predicate
#    over the kernel's dict (owned while it holds).
FIELDS = (
    Field("link.mtu", Effect.CONFIG_IMMEDIATE, ALWAYS, "the netdev set it at probe (replace: cite the driver)"),
    Field("fw.log_level", Effect.LOG_IMMEDIATE, None, "userspace's to change"),
)


def initial_state() -> dict:
    return {{"link.mtu": 1500, "fw.log_level": 0}}


# 2. Device commands (replace): one handler per opcode; `effects` is what the device *declares*.
#    Reply.out holds named results for your own kernel code (world.mailbox(...).out); Reply.data
#    is the raw output payload, which matters only on a channel whose transport copies it.
def query(dev, args) -> Reply:
    return Reply(out={{"mtu": dev.state["link.mtu"], "log_level": dev.state["fw.log_level"]}})


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


# 3. The kernel (replace): its bookkeeping, its probe, and the actions it takes on its own.
def boot() -> dict:
    return {{"link_up": False, "log_level": None}}


def probe(world) -> None:
    \"\"\"The driver binds: it reads the device and from now on believes the MTU (replace: foo_probe()).\"\"\"
    world.kernel["log_level"] = world.mailbox("QUERY").out["log_level"]
    world.believe("link.mtu")


def kernel_set_mtu(world, args) -> Reply:
    \"\"\"`ip link set mtu`: the driver programs the device and remembers the value (replace).\"\"\"
    world.mailbox("SET_MTU", mtu=args["mtu"])
    world.believe("link.mtu")
    return Reply()


def link_up(world, args) -> Reply:
    \"\"\"`ip link set up`: from now on the MTU sizes live buffers (replace).\"\"\"
    world.kernel["link_up"] = True
    return Reply()


SUBSYSTEM = Subsystem(
    "{name}",
    fields=FIELDS,
    channels=(Channel(CHANNEL, "the passthrough RPC (replace: its ioctl)"),),
    commands=COMMANDS,
    devices=(DeviceVariant("spec", state=initial_state, doc="declares its effects truthfully"),),
    actions=(KernelAction("set_mtu", kernel_set_mtu, (Param("mtu", "choice", choices=(1500, 9000)),)),
             KernelAction("link_up", link_up)),
    kernel=boot,
    probe=probe,
    callers=CallerSpace(caps=(frozenset(), frozenset({{"CAP_NET_ADMIN"}}), frozenset({{"CAP_SYS_ADMIN"}}))),
    # the settings its policies choose (replace): a Kconfig option, a module parameter
    knobs=(Knob("log_writes", False, cite="replace: the Kconfig switch", doc="the driver lets log levels be set"),),
    doc="WIDGET: a template subsystem (replace)",
)


# 4. Policies (replace): ordered rules, each citing the kernel code it encodes; promises about
#    effects; reactions (what the driver does after a command went through); trusted callers;
#    knobs (the policy's values of the subsystem's declared Knobs, read by rules as request.knobs;
#    ptfuzz run --knob NAME=VALUE changes one for a run).
def admin_only(r: Request) -> Deny | None:
    return None if r.caller.caps & {{"CAP_NET_ADMIN", "CAP_SYS_ADMIN"}} else Deny(errno.EPERM, "needs CAP_NET_ADMIN")


def no_config_writes(r: Request) -> Deny | None:
    if r.command.declared(r.args, r.device) & Effect.CONFIG_IMMEDIATE:
        return Deny(errno.EPERM, "immediate config changes stay with the kernel")
    return None


def log_writes(r: Request) -> Deny | None:
    if r.command.op == "SET_LOG_LEVEL" and not r.knobs["log_writes"]:
        return Deny(errno.EOPNOTSUPP, "built without log writes")
    return None


def reread_log_level(world, request, reply) -> None:
    \"\"\"After a log change the driver re-reads the level it reports in sysfs (replace).\"\"\"
    world.kernel["log_level"] = world.mailbox("QUERY").out["log_level"]


GUARDED = Policy(
    "guarded", "{name}", channels=(CHANNEL,),
    rules=(
        Rule("admin-only", admin_only, "replace: drivers/.../main.c foo_validate_rpc()"),
        Rule("no-config-writes", no_config_writes, "replace: drivers/.../main.c foo_validate_rpc()"),
        Rule("log-writes", log_writes, "replace: the Kconfig switch that allows them"),
    ),
    promises=(Promise(CHANNEL, "replace: the documented rule", effects=int(Effect.LOG_IMMEDIATE),
                      caps=frozenset({{"CAP_NET_ADMIN"}})),),
    reactions=(Reaction("reread-log-level", reread_log_level, "replace: drivers/.../main.c foo_rpc_done()",
                        effects=int(Effect.LOG_IMMEDIATE)),),
    trusts=(Trust(frozenset({{"CAP_SYS_ADMIN"}}), cite="replace: where the driver says root may",
                  ops=("SET_LOG_LEVEL",), reason="root may change the log verbosity (replace)"),),
    knobs={{"log_writes": True}},
    doc="what the driver should do",
)
PERMISSIVE = Policy("permissive", "{name}", channels=(CHANNEL,), doc="the blank cheque")


# 5. An invariant of your own (replace): what must hold after a step, beyond the generic ones.
def mtu_fixed_while_up(ctx):
    if ctx.step.actor == "user" and "link.mtu" in ctx.changed and ctx.world.kernel["link_up"]:
        yield ctx.violation("mtu-fixed-while-up", "the MTU changed under a link that is up", field="link.mtu")


# 6. An exporter (replace): a finding in a format your bug tracker wants.  Corpus files are
#    hostile: put their text only in escaped literals (json.dumps escapes every control character).
def render_report(rep) -> str:
    lines = [f"# {{json.dumps(rep.entry.signature)}}", ""]
    for i, step in enumerate(rep.entry.steps, 1):
        who = "kernel" if step.actor == "kernel" else json.dumps(sorted(step.caller.caps)) if step.caller else "?"
        lines.append(f"{{i}}. {{json.dumps(step.op)}} {{json.dumps(dict(step.args), sort_keys=True)}} as {{who}}")
    return "\\n".join(lines) + "\\n"


@hookimpl
def ptfuzz_subsystems() -> list[Subsystem]:
    return [SUBSYSTEM]


@hookimpl
def ptfuzz_policies() -> list[Policy]:
    return [GUARDED, PERMISSIVE]


@hookimpl
def ptfuzz_invariants() -> list[Invariant]:
    return [Invariant("mtu-fixed-while-up", mtu_fixed_while_up, subsystem="{name}")]


@hookimpl
def ptfuzz_exporters() -> list[Exporter]:
    return [Exporter("{name}-report", ".md", render_report, doc="the steps as a bug report", subsystem="{name}")]
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
