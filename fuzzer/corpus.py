"""Corpus files: one JSON document per finding, data only.

Loading never executes anything (plain ``json``; no pickle, no eval); every
field is type-checked and every problem is reported with the file and, for
steps, the step number.  Writing is atomic (temporary file + ``os.replace``)
and the file name is derived from the signature, so a bug found twice is one
file.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from fuzzer import files, safetext
from fuzzer.errors import CorpusError, PtfuzzError
from fuzzer.spec import Caller, Violation, knob_text
from fuzzer.world import Step

FORMAT = "ptfuzz.sequence/2"
#: Older formats this ptfuzz still reads, migrating on load (``migrate``); files are never rewritten unless
#: asked (``ptfuzz migrate``).  /1 had no sizes: its user steps get the natural ones.
READS = ("ptfuzz.sequence/1", FORMAT)
#: Payload bytes written per step, at most (the rest is zeros, and the declared size says how many).
BYTES_SHOWN = 256


@attrs.frozen
class Entry:
    """A finding as stored: where it ran, what failed, and the steps."""

    subsystem: str
    device: str
    policy: str
    steps: tuple[Step, ...]
    violation: Mapping[str, Any]
    without: tuple[str, ...] = ()
    plugins: Mapping[str, str] = attrs.field(factory=dict)
    ptfuzz: str = ""
    seed: int | None = None
    path: str = ""
    format: str = FORMAT
    #: knobs the run set over the policy's own (``Policy.tuned``), as JSON values (a set is a sorted
    #: list); written only when there are some, so a file without them replays under the policy's values
    knobs: Mapping[str, Any] = attrs.field(factory=dict)
    #: False for a finding saved as found because the time budget (or Ctrl-C) ended the
    #: campaign before it was minimized; written only then, so minimized files do not change
    minimized: bool = True
    #: per step, the ``bytes`` the file recorded (hex; None where it records none): replay checks
    #: them against what it sends (``fuzzer.replay.check_bytes``), so a file cannot show one payload
    #: and replay another
    recorded: tuple[str | None, ...] = attrs.field(default=(), eq=False, repr=False)

    @property
    def signature(self) -> str:
        return str(self.violation["signature"])


def step_to_json(step: Step, payload: bytes | None = None) -> dict[str, Any]:
    """A step as JSON; ``payload``, if given, is written as ``bytes`` (hex, informative: replay re-derives it)."""
    if step.actor == "kernel":
        return {"actor": "kernel", "action": step.op, "args": dict(step.args)}
    assert step.caller is not None
    doc = {
        "actor": "user",
        "channel": step.channel,
        "op": step.op,
        "caller": step.caller.to_json(),
        "args": dict(step.args),
    }
    if payload is not None:
        doc["bytes"] = payload[:BYTES_SHOWN].hex()
    return doc


def violation_to_json(v: Violation) -> dict[str, Any]:
    return {
        "invariant": v.invariant,
        "step": v.step,
        "field": v.field,
        "severity": v.severity,
        "message": v.message,
        "signature": v.signature,
    }


def to_json(entry: Entry, payload_of: Callable[[Step], bytes | None] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": FORMAT,
        "subsystem": entry.subsystem,
        "device": entry.device,
        "policy": entry.policy,
    }
    if entry.without:
        doc["without"] = list(entry.without)
    if entry.knobs:
        doc["knobs"] = {k: sorted(v) if isinstance(v, (frozenset, set, list, tuple)) else v
                        for k, v in sorted(entry.knobs.items())}
    doc.update({
        "plugins": dict(entry.plugins),
        "ptfuzz": entry.ptfuzz,
        "seed": entry.seed,
        "violation": dict(entry.violation),
    })
    if not entry.minimized:
        doc["minimized"] = False
    doc.update({
        "steps": [step_to_json(s, payload_of(s) if payload_of else None) for s in entry.steps],
    })
    return doc


def file_name(entry: Entry) -> str:
    label = entry.policy + "".join(f"~{w}" for w in entry.without)
    if entry.knobs:  # a finding under other knob values is another file
        tuned = ",".join(f"{k}={knob_text(v)}" for k, v in sorted(entry.knobs.items()))
        if len(tuned) > 60:  # a set of UUIDs would pass the file system's 255 bytes: its checksum instead
            tuned = f"knobs-{zlib.crc32(tuned.encode()):08x}"
        label += "{" + tuned + "}"
    parts = [label, entry.device, *entry.signature.split(":")[0:1], *entry.signature.split(":")[2:]]
    return re.sub(r"[^A-Za-z0-9._~+-]", "_", "--".join(parts)) + ".json"


def save(directory: str | os.PathLike[str], entry: Entry,
         payload_of: Callable[[Step], bytes | None] | None = None) -> Path:
    """Write ``entry`` atomically into ``directory``; returns the path.

    Also removes temporary files a killed save left there (``files.clean_stale``).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    files.clean_stale(d)
    path = d / file_name(entry)
    write(path, entry, payload_of)
    return path


def write(path: str | os.PathLike[str], entry: Entry,
          payload_of: Callable[[Step], bytes | None] | None = None) -> None:
    """Write ``entry`` to ``path`` atomically, in the current format."""
    files.write_atomic(path, json.dumps(to_json(entry, payload_of), indent=2, sort_keys=False) + "\n")


def migrate(entry: Entry, complete: Callable[[Step], Step]) -> Entry:
    """An entry of an older format as the current one: /1 user steps get their natural sizes.

    ``complete`` is ``Executor.complete`` (a size left out is the natural one).
    Arguments the step has are kept; nothing else changes, so a /1 finding
    replays as it always did.
    """
    if entry.format == FORMAT:
        return entry
    return attrs.evolve(entry, steps=tuple(complete(s) for s in entry.steps), format=FORMAT)


def known(path: str | os.PathLike[str], complete: Callable[[Step], Step]) -> Entry | None:
    """The finding the corpus file at ``path`` holds, in the current format (``migrate``);
    None if there is none or it cannot be read, in which case it is simply written over.

    In memory only: a file of an older format is never rewritten for that.
    """
    if not Path(path).exists():
        return None
    try:
        return migrate(load(path), complete)
    except PtfuzzError:
        return None


def expand(paths: Iterable[str]) -> list[str]:
    """Corpus files named on the command line: files as given, directories searched for ``*.json``.

    Inside a directory only regular ``*.json`` files count; dot-files and
    dot-directories (temporary files, ``.git``) are skipped.  A directory
    without a corpus file is an error, not a silent success.
    """
    out: list[str] = []
    for arg in paths:
        p = Path(arg)
        try:
            is_dir = p.is_dir()
        except OSError as exc:  # a name too long for the file system, say
            raise CorpusError(f"{safetext.line(arg)}: cannot read: {exc.strerror or exc}") from None
        if not is_dir:
            out.append(arg)
            continue
        try:
            found = sorted(
                str(x) for x in p.rglob("*.json")
                if not any(part.startswith(".") for part in x.relative_to(p).parts) and x.is_file()
            )
        except OSError as exc:  # an unreadable corner of the tree (/proc under "/")
            raise CorpusError(f"{safetext.line(arg)}: cannot search: {exc.strerror or exc}") from None
        if not found:
            raise CorpusError(f"{safetext.line(arg)}: directory has no corpus files (*.json)")
        out.extend(found)
    return out


# ----------------------------------------------------------------------------- loading


TOP_KEYS = ("format", "subsystem", "device", "policy", "without", "knobs", "plugins", "ptfuzz", "seed", "violation",
            "minimized", "steps")
VIOLATION_KEYS = {"invariant": str, "step": int, "field": str, "severity": str, "message": str, "signature": str}
STEP_KEYS = {"kernel": ("actor", "action", "args"), "user": ("actor", "channel", "op", "caller", "args", "bytes")}
CALLER_KEYS = ("caps", "scope", "lockdown", "switches")


def _need(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in doc:
        raise CorpusError(f"{where}: missing {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise CorpusError(f"{where}: {key!r} must be {names}, got {type(value).__name__}")
    return value


def _only(doc: Mapping[str, Any], known: Sequence[str], where: str, what: str = "key") -> None:
    """Refuse keys this format does not have: a typo'd key must not be ignored silently."""
    unknown = [k for k in doc if k not in known]
    if unknown:
        names = ", ".join(safetext.shown(k) for k in unknown[:3]) + (" ..." if len(unknown) > 3 else "")
        raise CorpusError(f"{where}: unknown {what}(s) {names}; expected {', '.join(known)}")


def _strings(value: Any, what: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise CorpusError(f"{where}: {what} must be a list of strings")
    return value


def _caller(doc: Any, where: str) -> Caller:
    if not isinstance(doc, dict):
        raise CorpusError(f"{where}: 'caller' must be an object")
    _only(doc, CALLER_KEYS, where, "caller key")
    caps = _strings(doc.get("caps", []), "caller 'caps'", where)
    switches = _strings(doc.get("switches", []), "caller 'switches'", where)
    scope = doc.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise CorpusError(f"{where}: caller 'scope' must be a string")
    lockdown = doc.get("lockdown", "none")
    if not isinstance(lockdown, str):
        raise CorpusError(f"{where}: caller 'lockdown' must be a string")
    return Caller(frozenset(caps), scope, lockdown, frozenset(switches))


def _args(doc: Any, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise CorpusError(f"{where}: 'args' must be an object")
    for k, v in doc.items():
        if not isinstance(v, (int, str, bool)) and v is not None:
            raise CorpusError(f"{where}: argument {safetext.shown(k)} must be a number, string or boolean")
    return dict(doc)


def step_from_json(doc: Any, where: str) -> Step:
    if not isinstance(doc, dict):
        raise CorpusError(f"{where}: a step must be an object")
    actor = doc.get("actor")
    if actor == "kernel":
        _only(doc, STEP_KEYS["kernel"], where)
        return Step("kernel", _need(doc, "action", str, where), _args(doc.get("args", {}), where))
    if actor == "user":
        _only(doc, STEP_KEYS["user"], where)
        shown = doc.get("bytes", "")
        if not isinstance(shown, str) or len(shown) > 2 * BYTES_SHOWN or not _HEX.fullmatch(shown):
            raise CorpusError(f"{where}: 'bytes' must be a hex string of at most {BYTES_SHOWN} bytes")
        return Step(
            "user",
            _need(doc, "op", str, where),
            _args(doc.get("args", {}), where),
            _need(doc, "channel", str, where),
            _caller(doc.get("caller", {}), where),
        )
    raise CorpusError(f"{where}: 'actor' must be 'kernel' or 'user', got {safetext.shown(actor)}")


_HEX = re.compile(r"(?:[0-9a-f]{2})*")


class _Duplicates(dict[str, Any]):
    """A JSON object that had a key twice; ``key`` is the first repeated one."""

    key: str = ""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    repeated = None
    for k, v in pairs:
        if k in out and repeated is None:
            repeated = k
        out[k] = v
    if repeated is None:
        return out
    dup = _Duplicates(out)
    dup.key = repeated
    return dup


def _find_duplicate(doc: Any) -> tuple[str, str] | None:
    """(JSON path, key) of the first object with a repeated key (iterative: nesting may be deep)."""
    todo: list[tuple[str, Any]] = [("", doc)]
    while todo:
        where, node = todo.pop()
        if isinstance(node, _Duplicates):
            return where or "top level", node.key
        if isinstance(node, dict):
            todo.extend((f"{where}.{k}" if where else str(k), v) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            todo.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(node))))
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse(text: str, where: str) -> dict[str, Any]:
    """Strict JSON: no NaN/Infinity, no repeated keys, an object at the top."""
    try:
        doc = json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise CorpusError(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # NaN, or an integer beyond sys.get_int_max_str_digits()
        raise CorpusError(f"{where}: not valid JSON ({safetext.cut(str(exc))})") from None
    dup = _find_duplicate(doc)
    if dup is not None:
        raise CorpusError(f"{where}: {dup[0]}: key {safetext.shown(dup[1])} appears more than once")
    if not isinstance(doc, dict):
        raise CorpusError(f"{where}: top level must be a JSON object")
    return doc


def load(path: str | os.PathLike[str]) -> Entry:
    """Parse and structurally check one corpus file (ops, args and callers are checked on replay)."""
    where = safetext.line(str(path))
    doc = parse(files.read_text(path), where)
    fmt = doc.get("format")
    if fmt not in READS:
        raise CorpusError(f"{where}: unknown format {safetext.shown(fmt)}; this ptfuzz reads "
                          f"{', '.join(repr(f) for f in READS)}")
    _only(doc, TOP_KEYS, where)
    steps_doc = _need(doc, "steps", list, where)
    if not steps_doc:
        raise CorpusError(f"{where}: 'steps' is empty")
    steps = tuple(step_from_json(s, f"{where}: step {i}") for i, s in enumerate(steps_doc, 1))
    violation = _need(doc, "violation", dict, where)
    _only(violation, tuple(VIOLATION_KEYS), where, "violation key")
    _need(violation, "signature", str, f"{where}: violation")
    for key, kind in VIOLATION_KEYS.items():
        if key in violation:
            _need(violation, key, kind, f"{where}: violation")
    without = _strings(doc.get("without", []), "'without'", where)
    knobs = doc.get("knobs", {})
    if not isinstance(knobs, dict) or not all(
            isinstance(v, (bool, int, str)) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
            for v in knobs.values()):
        raise CorpusError(f"{where}: 'knobs' must be an object of knob values (true/false, numbers, strings, "
                          f"lists of strings)")
    plugins = doc.get("plugins", {})
    if not isinstance(plugins, dict) or not all(isinstance(v, str) for v in plugins.values()):
        raise CorpusError(f"{where}: 'plugins' must be an object of version strings")
    seed = doc.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise CorpusError(f"{where}: 'seed' must be an integer or null")
    ptfuzz = doc.get("ptfuzz", "")
    if not isinstance(ptfuzz, str):
        raise CorpusError(f"{where}: 'ptfuzz' must be a version string")
    minimized = doc.get("minimized", True)
    if not isinstance(minimized, bool):
        raise CorpusError(f"{where}: 'minimized' must be true or false")
    return Entry(
        subsystem=_need(doc, "subsystem", str, where),
        device=_need(doc, "device", str, where),
        policy=_need(doc, "policy", str, where),
        steps=steps,
        violation=dict(violation),
        without=tuple(without),
        knobs=dict(knobs),
        plugins=dict(plugins),
        ptfuzz=ptfuzz,
        seed=seed,
        path=str(path),
        format=str(fmt),
        minimized=minimized,
        recorded=tuple(s.get("bytes") if isinstance(s, dict) else None for s in steps_doc),
    )
