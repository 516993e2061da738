"""Replay a corpus entry with the executor alone and describe what happened.

No Hypothesis is involved, so a replay is deterministic and prints the same
trace every time: each step, the policy's decision, the device's answer, the
effects the kernel believed the command had and what each reaction changed in
the kernel model, the kernel-owned fields it moved (with what the kernel
believes) and the violations.
"""

from __future__ import annotations

import errno
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from fuzzer import safetext
from fuzzer.corpus import BYTES_SHOWN, FORMAT, Entry, migrate
from fuzzer.effects import describe
from fuzzer.errors import CorpusError, PluginError, PtfuzzError
from fuzzer.executor import Executor, Reacted, StepResult
from fuzzer.spec import ABSENT, Policy

if TYPE_CHECKING:  # pragma: no cover
    from fuzzer.registry import Registry


@attrs.frozen
class Replay:
    entry: Entry
    policy: Policy
    results: tuple[StepResult, ...]
    executor: Executor
    #: plugin files the registry loaded by path (an exported test loads the same ones)
    plugin_files: tuple[str, ...] = ()

    @property
    def still_fails(self) -> bool:
        return any(v.signature == self.entry.signature for r in self.results for v in r.violations)


def require_plugins(registry: Registry, entry: Entry, option: str = "ptfuzz --plugin PATH") -> None:
    """Refuse to replay a finding whose plugins are not loaded, saying how to load them.

    A corpus file's ``plugins`` names every plugin that contributed to its
    subsystem when it was found (``Registry.plugin_versions``).  Without one
    of them the replay is meaningless, not merely different: a command
    it added is unknown, and an invariant it added would silently not be
    checked, so a finding would "no longer fail".  A plugin's name is its
    entry-point name, or the file or package it was loaded from
    (``host.plugin_name``), so the name says where to look; the format needs
    no field of its own for it.
    """
    missing = sorted(name for name in entry.plugins if name not in registry.versions)
    if not missing:
        return
    name = missing[0]
    shown_name = safetext.shown(name)
    more = f" (and {', '.join(safetext.shown(m) for m in missing[1:])})" if len(missing) > 1 else ""
    raise PluginError(
        f"{safetext.line(entry.path)}: this finding needs plugin {shown_name} "
        f"(version {safetext.shown(entry.plugins[name])}){more}, which is not loaded: load it with {option} "
        f"(the file {safetext.line(name)}.py or the package directory {safetext.line(name)}/ it came from), "
        f"or install the distribution that provides entry point {shown_name} in group 'ptfuzz'")


def executor_for(registry: Registry, entry: Entry, policy: str | None = None,
                 without: Sequence[str] | None = None,
                 knobs: Mapping[str, Any] | None = None) -> tuple[Executor, Policy]:
    """Resolve the entry's subsystem, device and policy, naming the file on failure.

    The file's knobs are set again (the run that found it had them), then ``knobs`` over them
    (``replay --knob``), whichever policy replays it.
    """
    require_plugins(registry, entry)
    try:
        registry.subsystem(entry.subsystem)
        device = registry.device(entry.subsystem, entry.device)
        pol = registry.policy(
            entry.subsystem,
            policy or entry.policy,
            entry.without if policy is None and without is None else (without or ()),
            {**entry.knobs, **(knobs or {})},
        )
    except PtfuzzError as exc:
        raise CorpusError(f"{entry.path}: {exc}") from None
    return registry.executor(entry.subsystem, pol, device, trace=True), pol


def replay(registry: Registry, entry: Entry, policy: str | None = None,
           without: Sequence[str] | None = None, knobs: Mapping[str, Any] | None = None) -> Replay:
    executor, pol = executor_for(registry, entry, policy, without, knobs)
    current = entry.format == FORMAT  # /1 predates sizes: its bytes, if any, encoded other arguments
    entry = migrate(entry, executor.complete)
    for i, step in enumerate(entry.steps, 1):
        why = executor.validate(step)
        if why:
            raise CorpusError(f"{entry.path}: step {i}: {why}")
    if current:
        check_bytes(entry, executor)
    results = tuple(executor.run(entry.steps))
    return Replay(entry, pol, results, executor, registry.files)


def check_bytes(entry: Entry, executor: Executor) -> None:
    """Refuse a file whose recorded ``bytes`` differ from what replaying its step sends.

    ``bytes`` (format /2) is the encoded input of a user step, written for
    readers; replay re-derives it from the arguments.  A file that shows one
    payload and replays another (edited by hand, or crafted to mislead a
    reviewer) is wrong, not merely informative: a ``CorpusError`` naming the
    file and the step (exit 2).  A step that records no bytes is not checked.
    """
    for i, (step, shown) in enumerate(zip(entry.steps, entry.recorded, strict=False), 1):
        if shown is None:
            continue
        sent = executor.payload_of(step)
        derived = None if sent is None else sent[:BYTES_SHOWN].hex()
        if shown != derived:
            what = "sends no payload" if derived is None else f"sends {_hex(bytes.fromhex(derived))}"
            raise CorpusError(f"{safetext.line(entry.path)}: step {i}: 'bytes' records "
                              f"{_hex(bytes.fromhex(shown))} but replaying the step {what}; the file was "
                              f"edited: fix 'bytes' or the step's arguments, or delete 'bytes'")


def kernel_note(policy: Policy) -> str:
    """" (kernel 7.3.4)": the kernel the replaying policy encodes, from its record (never from the file)."""
    return f" (kernel {policy.version})" if policy.version else ""


def _rc(result: StepResult, names: dict[int, str]) -> str:
    reply = result.reply
    if reply is None:
        return "not sent"
    parts = []
    if reply.errno:
        parts.append("-" + errno.errorcode.get(reply.errno, str(reply.errno)))
    elif result.step.actor == "kernel":
        parts.append("ok")
    if result.step.actor == "user" or reply.rc:
        parts.append(f"rc={names.get(reply.rc, reply.rc)}")
    if reply.handle is not None:
        parts.append(f"-> {reply.handle}")
    if reply.why:
        parts.append(f"({reply.why})")
    return " ".join(parts)


def trace(rep: Replay) -> list[str]:
    """Readable lines, identical on every run of the same entry."""
    ex = rep.executor
    names = dict(ex.subsystem.status_names)
    e = rep.entry
    lines = [
        f"{e.path}",
        f"  {e.subsystem} device={e.device} policy={rep.policy.label}{kernel_note(rep.policy)}   "
        f"recorded: {e.signature}",
    ]
    for r in rep.results:
        lines.append(f"  {r.index:>2}. {r.step.describe()}")
        payload = ex.payload_of(r.step)
        if payload is not None:
            lines.append(f"      bytes   {_hex(payload)}")
        if r.decision is not None:
            lines.append(f"      policy  {r.decision.describe()}" + (f": {r.decision.reason}" if r.decision.reason else ""))
        lines.append(f"      result  {_rc(r, names)}")
        if r.reacted:
            lines.extend(_reactions(r, rep))
        elif r.reactions:
            lines.append(f"      kernel reacted  {', '.join(r.reactions)}")
        owned = [c for c in r.changes if c[0] in r.owned]
        other = [c for c in r.changes if c[0] not in r.owned]
        for name, old, new in owned:
            lines.append(f"      kernel-owned  {name}: {_short(old)} -> {_short(new)}")
        if other:
            lines.append("      also changed  " + ", ".join(f"{n}: {_short(o)} -> {_short(v)}" for n, o, v in other))
        for v in r.violations:
            mark = "VIOLATION" if v.signature != e.signature else "VIOLATION (recorded)"
            lines.append(f"      {mark} [{v.severity}] {v.signature}")
            lines.append(f"          {v.message}")
    verdict = "still fails" if rep.still_fails else "no longer fails"
    lines.append(f"  => {verdict}: {e.signature}")
    return lines


def _reactions(r: StepResult, rep: Replay) -> list[str]:
    """What the kernel computed (the effects it believed) and what each reaction changed in its model."""
    names = rep.executor.subsystem.effects
    lines = []
    if r.kernel_effects is not None:
        believed = describe(r.kernel_effects, names)
        said = "" if r.kernel_effects == r.declared else f" (the device declared {describe(r.declared, names)})"
        lines.append(f"      kernel effects  {believed}{said}")
    filters = {x.name: x.effects for x in rep.policy.reactions}
    for rc in r.reacted:
        if not rc.ran:
            needs = filters.get(rc.name)
            lines.append(f"      kernel skipped  {rc.name}" + (
                f" (reacts to {describe(needs, names)})" if needs is not None else ""))
            continue
        lines.append(f"      kernel reacted  {rc.name}" + ("" if rc.changed else ": changed nothing"))
        lines.extend(_reaction_changes(rc))
    return lines


def _reaction_changes(rc: Reacted) -> list[str]:
    out = [f"          kernel {safetext.shown(k) if not isinstance(k, str) else safetext.line(k, 40)}: "
           f"{_value(old)} -> {_value(new)}" for k, old, new in rc.kernel]
    out += [f"          believes {safetext.line(k, 40)}: {_value(old, '(nothing)')} -> {_value(new, '(nothing)')}"
            for k, old, new in rc.beliefs]
    if rc.taint:
        out.append(f"          tainted {', '.join(safetext.line(t, 40) for t in sorted(rc.taint))}")
    out += [f"          published {safetext.shown(h)} into {safetext.line(b, 40)}" for b, h in rc.published]
    return out


def _value(value: object, absent: str = "<absent>") -> str:
    """A kernel-model value in a trace line: cut, and escaped (a plugin's values may hold corpus text)."""
    if value is ABSENT:
        return absent
    if isinstance(value, bytes):
        return _short(value)
    return safetext.shown(value, 60)


def _hex(data: bytes, shown: int = 32) -> str:
    """Hex in 4-byte groups, as a hexdump shows a struct; a long tail is counted, not printed."""
    text = " ".join(data[i:i + 4].hex() for i in range(0, min(len(data), shown), 4)) or "(none)"
    return text + (f" ... (+{len(data) - shown} bytes)" if len(data) > shown else "")


def _short(value: object) -> str:
    if isinstance(value, bytes):
        nz = sum(1 for b in value if b)
        return f"<{len(value)} bytes, {nz} non-zero, crc {_crc(value):08x}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _crc(data: bytes) -> int:
    return zlib.crc32(data)
