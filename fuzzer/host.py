"""The thin plugin manager: load plugins, collect their records, check them once.

Builtin plugins are found through the ``ptfuzz`` entry-point group exactly as a
third-party distribution's are; a file can be added with ``--plugin PATH``.
Each hook is called plugin by plugin so that an exception or a malformed
record is reported with the name of the plugin at fault.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pluggy

from fuzzer import hookspecs
from fuzzer.errors import PluginError
from fuzzer.registry import Registry
from fuzzer.safetext import shown
from fuzzer.spec import (
    Channel,
    Command,
    CommandSet,
    DeviceSet,
    DeviceVariant,
    Exporter,
    Field,
    Firmware,
    Invariant,
    KernelAction,
    Knob,
    Knobs,
    Param,
    Policy,
    Promise,
    Reaction,
    Rule,
    Subsystem,
    Trust,
    undeclared,
)
from fuzzer.version import __version__

GROUP = "ptfuzz"
#: Module names of plugins loaded by path (``load_file``): the prefix, then the plugin's name.
FILE_PLUGIN_PREFIX = "ptfuzz_file_plugin_"
#: ``Subsystem.effects`` may name bits 16 and up only: bits 0-15 are the generic classes
#: (``fuzzer.Effect``, the CXL CEL's effect field, whose bits 12-15 are reserved).
OWN_EFFECTS_BELOW = 0xFFFF


def _version_of(module: Any, dist_version: str | None) -> str:
    return dist_version or str(getattr(module, "__version__", "0"))


def plugin_name(path: str) -> str:
    """A plugin loaded by path is named after its module: ``mydev.py`` or package ``mydev/``."""
    p = Path(path)
    if p.is_dir():
        return p.resolve().name
    return p.resolve().parent.name if p.name == "__init__.py" else p.stem


def load_file(path: str) -> ModuleType:
    """Import a plugin from a file or a package directory (``--plugin ./mydev.py``, ``--plugin ./mydev/``)."""
    p = Path(path)
    if p.is_dir():
        init = p / "__init__.py"
        if not init.is_file():
            raise PluginError(f"plugin directory {path!r} is not a Python package (it has no __init__.py)")
        p = init
    elif not p.exists():
        raise PluginError(f"plugin file {path!r} does not exist")
    elif not p.is_file():
        raise PluginError(f"plugin {path!r} is neither a file nor a package directory")
    package = p.name == "__init__.py"
    stem = p.parent.name if package else p.stem
    name = f"{FILE_PLUGIN_PREFIX}{stem}"
    spec = importlib.util.spec_from_file_location(
        name, p, submodule_search_locations=[str(p.parent)] if package else None)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin file {path!r} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:  # Ctrl-C, or the plugin's own: cli.main tells them apart
        raise
    except BaseException as exc:  # sys.exit() or a BaseException of its own is its bug, not our exit code
        raise PluginError(f"plugin file {path!r} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def _plugin_of(module: str, packages: dict[str, str]) -> str | None:
    """The plugin a module belongs to: a ``--plugin`` file's (by its module name) or an entry point's package."""
    if module.startswith(FILE_PLUGIN_PREFIX):
        return module[len(FILE_PLUGIN_PREFIX):].partition(".")[0]
    return packages.get(module.partition(".")[0])


def blame(exc: BaseException) -> str | None:
    """The plugin whose code raised ``exc``: the innermost frame of its traceback, or the module of its class.

    For what escaped the wrappers (a ``BaseException`` of a plugin's own, a
    KeyboardInterrupt no signal sent).  None when ptfuzz's own or a library's
    code raised it last: then it is not a plugin's mistake, however a plugin
    got there.
    """
    packages: dict[str, str] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        top = ep.module.partition(".")[0]
        if top != "fuzzer":
            packages.setdefault(top, ep.name)
    tb = exc.__traceback__
    innermost = ""
    while tb is not None:
        innermost = str(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return _plugin_of(innermost, packages) or _plugin_of(type(exc).__module__, packages)


def load(plugin_files: Iterable[str] = (), *, entry_points: bool = True, extra: Iterable[Any] = ()) -> Registry:
    """Load plugins and return their checked registry.

    ``extra`` registers already-imported plugin objects (tests use it to add a
    plugin without installing it).
    """
    plugin_files = tuple(plugin_files)
    from fuzzer import export

    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    pm.register(export, name="builtin")
    versions: dict[str, str] = {"builtin": __version__}
    if entry_points:
        for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.name):
            if pm.get_plugin(ep.name) is not None:
                continue
            try:
                module = ep.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                raise PluginError(
                    f"plugin {ep.name!r} (entry point {ep.value}) failed to load: {type(exc).__name__}: {exc}"
                ) from exc
            _register(pm, module, ep.name)
            versions[ep.name] = _version_of(module, ep.dist.version if ep.dist else None)
    for path in plugin_files:
        module = load_file(path)
        name = plugin_name(path)
        _register(pm, module, name)
        versions[name] = _version_of(module, None)
    for i, obj in enumerate(extra):
        name = getattr(obj, "__name__", f"extra{i}").rsplit(".", 1)[-1]
        _register(pm, obj, name)
        versions[name] = _version_of(obj, None)
    _check_hook_names(pm)
    reg = Registry(versions=versions, files=tuple(str(Path(p).resolve()) for p in plugin_files))
    _collect(pm, reg)
    return reg


def _register(pm: pluggy.PluginManager, obj: Any, name: str) -> None:
    if pm.get_plugin(name) is not None:
        raise PluginError(f"plugin {name!r} could not be registered: another plugin is already named {name!r}")
    try:
        pm.register(obj, name=name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise PluginError(f"plugin {name!r} could not be registered: {exc}") from exc


def _check_hook_names(pm: pluggy.PluginManager) -> None:
    """A misspelt hook would otherwise be ignored silently (pluggy's check_pending, naming the plugin)."""
    for hook in sorted(n for n in vars(pm.hook) if not n.startswith("_")):
        caller = getattr(pm.hook, hook)
        if caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                known = sorted(n for n in dir(hookspecs) if n.startswith("ptfuzz_"))
                raise PluginError(f"plugin {impl.plugin_name!r} implements unknown hook {hook!r}; hooks are {known}")


def _call(pm: pluggy.PluginManager, hook: str, kind: type) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    caller = getattr(pm.hook, hook)
    for impl in caller.get_hookimpls():  # registration order (pluggy calls them in reverse)
        try:
            records = impl.function()
        except KeyboardInterrupt:  # Ctrl-C, or the plugin's own: cli.main tells them apart and names it
            raise
        except BaseException as exc:
            raise PluginError(
                f"plugin {impl.plugin_name!r} raised {type(exc).__name__}: {exc} in {hook}()"
            ) from exc
        if records is None:
            continue
        if not isinstance(records, (list, tuple)):
            raise PluginError(f"plugin {impl.plugin_name!r}: {hook}() must return a list, got {type(records).__name__}")
        for rec in records:
            if not isinstance(rec, kind):
                raise PluginError(
                    f"plugin {impl.plugin_name!r}: {hook}() returned {type(rec).__name__}, expected {kind.__name__}"
                )
            out.append((impl.plugin_name, rec))
    return out


def _collect(pm: pluggy.PluginManager, reg: Registry) -> None:
    for plugin, sub in _call(pm, "ptfuzz_subsystems", Subsystem):
        if sub.name in reg.subsystems:
            raise PluginError(
                f"plugin {plugin!r} registers subsystem {sub.name!r}, already registered by "
                f"{reg.provider[('subsystem', sub.name)]!r}"
            )
        _check_subsystem_records(plugin, sub)
        reg.subsystems[sub.name] = sub
        reg.provider[("subsystem", sub.name)] = plugin
        for d in sub.devices:
            reg.provider[("device", sub.name, d.name)] = plugin
    for plugin, dset in _call(pm, "ptfuzz_devices", DeviceSet):
        sub = _existing(reg, plugin, dset.subsystem, "devices")
        for d in _records(plugin, f"DeviceSet for {sub.name}", "devices", dset.devices, DeviceVariant):
            _check_device(plugin, d)
        reg.subsystems[sub.name] = attrs.evolve(sub, devices=sub.devices + dset.devices)
        for d in dset.devices:
            reg.provider[("device", sub.name, d.name)] = plugin
    for plugin, cset in _call(pm, "ptfuzz_commands", CommandSet):
        sub = _existing(reg, plugin, cset.subsystem, "commands")
        for c in _records(plugin, f"CommandSet for {sub.name}", "commands", cset.commands, Command):
            _check_command(plugin, f"command {c.op}", c)
        reg.commands.setdefault(sub.name, []).extend((cset.device, c) for c in cset.commands)
        for c in cset.commands:
            reg.provider[("command", sub.name, c.op)] = plugin
    for plugin, pol in _call(pm, "ptfuzz_policies", Policy):
        sub = _existing(reg, plugin, pol.subsystem, f"policy {pol.name!r}")
        _check_policy(plugin, pol)
        table = reg.policies.setdefault(sub.name, {})
        if pol.name in table:
            raise PluginError(f"plugin {plugin!r} registers policy {pol.name!r} for {sub.name} twice")
        channels = {c.name for c in sub.channels}
        bad = [c for c in pol.channels if c not in channels]
        if bad:
            raise PluginError(f"plugin {plugin!r}: policy {pol.name!r} names unknown channel(s) {bad}")
        names = [r.name for r in pol.rules] + [r.name for r in pol.reactions]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise PluginError(f"plugin {plugin!r}: policy {pol.name!r} names {dup} twice among its rules and "
                              f"reactions; --without needs each name once")
        for what, recs in (("reaction", pol.reactions), ("trust", pol.trusts)):
            for rec in recs:
                unknown = [c for c in rec.channels if c not in channels]
                if unknown:
                    label = getattr(rec, "name", rec.cite)
                    raise PluginError(f"plugin {plugin!r}: policy {pol.name!r} {what} {label!r} names unknown "
                                      f"channel(s) {unknown}")
        table[pol.name] = attrs.evolve(pol, knobs=_policy_knobs(plugin, pol, sub))
        reg.provider[("policy", sub.name, pol.name)] = plugin
    for plugin, inv in _call(pm, "ptfuzz_invariants", Invariant):
        _check_call(plugin, f"invariant {inv.name!r}", "check", inv.check, 1, "the StepContext")
        reg.invariants.append(inv)
        reg.provider[("invariant", inv.subsystem or "*", inv.name)] = plugin
    for plugin, exp in _call(pm, "ptfuzz_exporters", Exporter):
        _check_call(plugin, f"exporter {exp.name!r}", "render", exp.render, 1, "the finding")
        reg.exporters.setdefault(exp.name, {})[exp.subsystem] = exp
        reg.provider[("exporter", exp.name, exp.subsystem)] = plugin
    for name, sub in reg.subsystems.items():
        _check_subsystem(reg, name, sub)


def _existing(reg: Registry, plugin: str, name: str, what: str) -> Subsystem:
    if name not in reg.subsystems:
        raise PluginError(f"plugin {plugin!r} adds {what} to unknown subsystem {name!r}")
    return reg.subsystems[name]


def _check_subsystem(reg: Registry, name: str, sub: Subsystem) -> None:
    """Catch inconsistent tables at load time, naming the plugin, not mid-campaign."""
    plugin = reg.provider[("subsystem", name)]
    fields = {f.name for f in sub.fields if not f.family}
    families = {f.name for f in sub.fields if f.family}
    channels = {c.name for c in sub.channels}
    extra = [c for _, c in reg.commands.get(name, [])]
    for dev in sub.devices:
        who = reg.provider.get(("device", name, dev.name), plugin)
        try:
            keys = set(dev.state())
        except (Exception, SystemExit) as exc:
            raise PluginError(f"plugin {who!r}: device {dev.name!r} state() raised {type(exc).__name__}: {exc}") from exc
        members = {k for k in keys if k not in fields and k.partition(":")[0] in families}
        if keys - members != fields:
            raise PluginError(
                f"plugin {who!r}: device {dev.name!r} state has fields {sorted((keys - members) ^ fields)} "
                f"that do not match the declared fields of {name}"
            )
    engine_bits = [bit for bit in sub.effects if not isinstance(bit, int) or bit <= 0 or bit & OWN_EFFECTS_BELOW]
    if engine_bits:  # a bit below 16 would print under the plugin's name but be judged as a CXL class
        raise PluginError(f"plugin {plugin!r}: subsystem {name} names effect bit(s) "
                          f"{', '.join(shown(b) for b in engine_bits[:3])} in Subsystem.effects, which overlap "
                          f"the generic effect classes (bits 0-15, fuzzer.Effect); use bits 16 and up (1 << 16)")
    firmware_ops = {f.op for f in sub.firmware}
    clash = sorted(firmware_ops & {c.op for c in (*sub.commands, *extra) if c.handler is not None})
    if clash:
        raise PluginError(f"plugin {plugin!r}: {clash} declared both as Firmware and as a forwarded Command "
                          f"of {name}; a forwarded Command already is the firmware op")
    for dev in sub.devices:
        forwarded = {c.op for c in (*sub.commands, *extra, *dev.commands) if c.handler is not None}
        clash = sorted(forwarded & {f.op for f in dev.firmware})
        if clash:
            who = reg.provider.get(("device", name, dev.name), plugin)
            raise PluginError(f"plugin {who!r}: device {dev.name!r} declares {clash} both as Firmware and as a "
                              f"forwarded Command; a forwarded Command already is the firmware op")
    on_channel = {(ch, c.op): c for c in (*sub.commands, *extra) for ch in c.channels}
    for ch in sub.channels:
        for role, op in (("opener", ch.opener), ("closer", ch.closer)):
            cmd = on_channel.get((ch.name, op)) if op else None
            if op and cmd is None:
                raise PluginError(f"plugin {plugin!r}: channel {ch.name!r} names {role} {op!r}, which is no command "
                                  f"on that channel; name one of its commands or leave {role} empty")
            if role == "closer" and cmd is not None and not any(p.kind == "handle" and p.consumes for p in cmd.params):
                raise PluginError(f"plugin {plugin!r}: channel {ch.name!r}'s closer {op!r} consumes no handle; a "
                                  f"closer takes the handle it releases (Param(kind='handle', consumes=True))")
    for cmd in (*sub.commands, *extra, *(c for d in sub.devices for c in d.commands)):
        bad = [c for c in cmd.channels if c not in channels]
        if bad:
            who = reg.provider.get(("command", name, cmd.op), plugin)
            raise PluginError(f"plugin {who!r}: command {cmd.op} names unknown channel(s) {bad}")
        if (cmd.handler is None) == (cmd.driver is None):
            who = reg.provider.get(("command", name, cmd.op), plugin)
            raise PluginError(
                f"plugin {who!r}: command {cmd.op} needs exactly one of handler= (the firmware "
                f"runs it as sent) or driver= (kernel code runs it)"
            )


# ----------------------------------------------------------------------------- record checks
#
# A record is checked when its plugin loads: a wrong type or a function of the wrong arity would
# otherwise fail mid-run (minutes into a campaign), blamed on whatever step happened to call it.


def _records(plugin: str, owner: str, field: str, value: Any, kind: type | tuple[type, ...]) -> tuple[Any, ...]:
    """``value`` as a tuple of ``kind`` records, else a PluginError naming the plugin, owner and field."""
    names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
    if not isinstance(value, (tuple, list)):
        raise PluginError(f"plugin {plugin!r}: {owner}: {field} must be a tuple of {names}, "
                          f"got {type(value).__name__} {shown(value)}")
    for rec in value:
        if not isinstance(rec, kind):
            hint = ""
            if isinstance(rec, Firmware) and kind is Command:
                hint = ("; a firmware op kernel code reaches goes in DeviceVariant(firmware=...) "
                        "(or Subsystem(firmware=...)), a Command is what userspace sends")
            raise PluginError(f"plugin {plugin!r}: {owner}: {field} holds a {type(rec).__name__} "
                              f"{shown(getattr(rec, 'op', getattr(rec, 'name', rec)))}, expected {names}{hint}")
    return tuple(value)


def _check_call(plugin: str, owner: str, field: str, fn: Any, arity: int, args: str) -> None:
    """``fn`` must be callable with ``arity`` positional arguments, as the engine calls it."""
    if not callable(fn):
        raise PluginError(f"plugin {plugin!r}: {owner}: {field} must be a function taking {args}, "
                          f"got {type(fn).__name__} {shown(fn)}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    try:
        sig.bind(*range(arity))
    except TypeError:
        name = getattr(fn, "__name__", type(fn).__name__)
        raise PluginError(f"plugin {plugin!r}: {owner}: {field} {name}{sig} cannot be called as ptfuzz "
                          f"calls it, with {arity} argument{'s' if arity != 1 else ''} ({args})") from None


def _check_names(plugin: str, owner: str, field: str, value: Any) -> None:
    """A tuple of strings: a bare string ("cxl.raw" for ("cxl.raw",)) is the usual mistake."""
    if isinstance(value, str):
        raise PluginError(f"plugin {plugin!r}: {owner}: {field} must be a tuple of names, got the string "
                          f"{shown(value)}; write ({value!r},)")
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
        raise PluginError(f"plugin {plugin!r}: {owner}: {field} must be a tuple of names, got {shown(value)}")


def _check_set(plugin: str, owner: str, field: str, value: Any) -> None:
    """A frozenset of strings (capabilities, taint flags): a bare string would be a set of letters."""
    if isinstance(value, str):
        raise PluginError(f"plugin {plugin!r}: {owner}: {field} must be a frozenset of names, got the string "
                          f"{shown(value)}; write frozenset({{{value!r}}})")
    if not isinstance(value, frozenset) or not all(isinstance(v, str) for v in value):
        raise PluginError(f"plugin {plugin!r}: {owner}: {field} must be a frozenset of names, got "
                          f"{type(value).__name__} {shown(value)}")


def _check_effects(plugin: str, owner: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, int) and not isinstance(value, bool):
        return
    if callable(value) and not optional:
        _check_call(plugin, owner, "effects", value, 2, "the arguments and the Device")
        return
    raise PluginError(f"plugin {plugin!r}: {owner}: effects must be an Effect mask (an int)"
                      f"{' or None' if optional else ' or a function (args, device)'}, got {shown(value)}")


def _check_command(plugin: str, owner: str, cmd: Command) -> None:
    _check_names(plugin, owner, "channels", cmd.channels)
    _records(plugin, owner, "params", cmd.params, Param)
    if cmd.handler is not None:
        _check_call(plugin, owner, "handler", cmd.handler, 2, "the Device and the arguments")
    if cmd.driver is not None:
        _check_call(plugin, owner, "driver", cmd.driver, 3, "the World, the arguments and the Caller")
    _check_effects(plugin, owner, cmd.effects)


def _check_firmware(plugin: str, owner: str, fw: Firmware) -> None:
    _records(plugin, owner, "params", fw.params, Param)
    _check_call(plugin, owner, "handler", fw.handler, 2, "the Device and the arguments")
    _check_effects(plugin, owner, fw.effects)


def _check_device(plugin: str, dev: DeviceVariant) -> None:
    owner = f"device {dev.name!r}"
    _check_call(plugin, owner, "state", dev.state, 0, "no arguments")
    for c in _records(plugin, owner, "commands", dev.commands, Command):
        _check_command(plugin, f"{owner} command {c.op}", c)
    for f in _records(plugin, owner, "firmware", dev.firmware, Firmware):
        _check_firmware(plugin, f"{owner} firmware {f.op}", f)


#: A subsystem's name is a directory of the corpus (``corpora/NAME/``) and a word on the command line.
SUBSYSTEM_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def _check_subsystem_records(plugin: str, sub: Subsystem) -> None:
    owner = f"subsystem {sub.name!r}"
    if not isinstance(sub.name, str) or not SUBSYSTEM_NAME.fullmatch(sub.name):
        raise PluginError(f"plugin {plugin!r}: subsystem name {shown(sub.name)} is not a lower-case word "
                          f"(letters, digits, '_' or '-', starting with a letter, at most 32): it names the "
                          f"corpus directory corpora/NAME/ and is typed on the command line")
    _check_call(plugin, owner, "kernel", sub.kernel, 0, "no arguments")
    _check_call(plugin, owner, "probe", sub.probe, 1, "the World")
    if sub.kernel_effects is not None:
        _check_call(plugin, owner, "kernel_effects", sub.kernel_effects, 1, "the Request")
    for f in _records(plugin, owner, "fields", sub.fields, Field):
        if f.kernel_owned is not None:
            _check_call(plugin, f"{owner} field {f.name!r}", "kernel_owned", f.kernel_owned, 1, "the kernel model")
        if not isinstance(f.effect, int) or isinstance(f.effect, bool):
            raise PluginError(f"plugin {plugin!r}: {owner} field {f.name!r}: effect must be an Effect mask "
                              f"(an int), got {shown(f.effect)}")
    for ch in _records(plugin, owner, "channels", sub.channels, Channel):
        if ch.transport is not None:
            _check_call(plugin, f"{owner} channel {ch.name!r}", "transport", ch.transport, 3,
                        "the World, the Request and forward")
    for c in _records(plugin, owner, "commands", sub.commands, Command):
        _check_command(plugin, f"{owner} command {c.op}", c)
    for f in _records(plugin, owner, "firmware", sub.firmware, Firmware):
        _check_firmware(plugin, f"{owner} firmware {f.op}", f)
    for a in _records(plugin, owner, "actions", sub.actions, KernelAction):
        _records(plugin, f"{owner} action {a.name!r}", "params", a.params, Param)
        _check_call(plugin, f"{owner} action {a.name!r}", "run", a.run, 2, "the World and the arguments")
    for d in _records(plugin, owner, "devices", sub.devices, DeviceVariant):
        _check_device(plugin, d)
    knobs = [k.name for k in _records(plugin, owner, "knobs", sub.knobs, Knob)]
    dup = sorted({k for k in knobs if knobs.count(k) > 1})
    if dup:
        raise PluginError(f"plugin {plugin!r}: {owner} declares knob(s) {dup} twice")


def _check_policy(plugin: str, pol: Policy) -> None:
    owner = f"policy {pol.name!r}"
    _check_names(plugin, owner, "channels", pol.channels)
    for r in _records(plugin, owner, "rules", pol.rules, Rule):
        _check_call(plugin, f"{owner} rule {r.name!r}", "check", r.check, 1, "the Request")
        _check_names(plugin, f"{owner} rule {r.name!r}", "channels", r.channels)
        _check_names(plugin, f"{owner} rule {r.name!r}", "ops", r.ops)
    for x in _records(plugin, owner, "reactions", pol.reactions, Reaction):
        where = f"{owner} reaction {x.name!r}"
        _check_call(plugin, where, "run", x.run, 3, "the World, the Request and the Reply")
        _check_names(plugin, where, "channels", x.channels)
        _check_names(plugin, where, "ops", x.ops)
        _check_effects(plugin, where, x.effects, optional=True)
    for i, t in enumerate(_records(plugin, owner, "trusts", pol.trusts, Trust), 1):
        where = f"{owner} trust {i} ({t.cite!r})" if isinstance(t.cite, str) else f"{owner} trust {i}"
        _check_set(plugin, where, "caps", t.caps)
        _check_names(plugin, where, "channels", t.channels)
        _check_names(plugin, where, "ops", t.ops)
        _check_names(plugin, where, "invariants", t.invariants)
        _check_names(plugin, where, "fields", t.fields)
    for i, pr in enumerate(_records(plugin, owner, "promises", pol.promises, Promise), 1):
        where = f"{owner} promise {i} ({pr.channel!r})"
        _check_set(plugin, where, "caps", pr.caps)
        _check_set(plugin, where, "taint", pr.taint)
        _check_effects(plugin, where, pr.effects, optional=True)
    if not isinstance(pol.knobs, Mapping):
        raise PluginError(f"plugin {plugin!r}: {owner}: knobs must be a dict of knob values, got {shown(pol.knobs)}")


def _policy_knobs(plugin: str, pol: Policy, sub: Subsystem) -> Knobs:
    """The policy's knob values over the subsystem's declared defaults; a name not declared, or a
    value of the wrong type, is the policy's mistake (a misspelt knob would silently close a hole)."""
    declared = {k.name: k for k in sub.knobs}
    values: dict[str, Any] = {}
    for name, value in pol.knobs.items():
        knob = declared.get(name)
        if knob is None:
            raise PluginError(f"plugin {plugin!r}: policy {pol.name!r}: "
                              f"{undeclared(name, declared, sub.name)}")
        try:
            values[name] = knob.coerce(value)
        except ValueError as exc:
            raise PluginError(f"plugin {plugin!r}: policy {pol.name!r}: knob {name!r}: {exc}") from None
    return Knobs(sub.knobs, values, sub.name)
