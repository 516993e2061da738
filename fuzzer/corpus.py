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
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from fuzzer.errors import CorpusError
from fuzzer.spec import Caller, Violation
from fuzzer.world import Step

FORMAT = "ptfuzz.sequence/1"


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

    @property
    def signature(self) -> str:
        return str(self.violation["signature"])


def step_to_json(step: Step) -> dict[str, Any]:
    if step.actor == "kernel":
        return {"actor": "kernel", "action": step.op, "args": dict(step.args)}
    assert step.caller is not None
    return {
        "actor": "user",
        "channel": step.channel,
        "op": step.op,
        "caller": step.caller.to_json(),
        "args": dict(step.args),
    }


def violation_to_json(v: Violation) -> dict[str, Any]:
    return {
        "invariant": v.invariant,
        "step": v.step,
        "field": v.field,
        "severity": v.severity,
        "message": v.message,
        "signature": v.signature,
    }


def to_json(entry: Entry) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": FORMAT,
        "subsystem": entry.subsystem,
        "device": entry.device,
        "policy": entry.policy,
    }
    if entry.without:
        doc["without"] = list(entry.without)
    doc.update({
        "plugins": dict(entry.plugins),
        "ptfuzz": entry.ptfuzz,
        "seed": entry.seed,
        "violation": dict(entry.violation),
        "steps": [step_to_json(s) for s in entry.steps],
    })
    return doc


def file_name(entry: Entry) -> str:
    label = entry.policy + "".join(f"~{w}" for w in entry.without)
    parts = [label, entry.device, *entry.signature.split(":")[0:1], *entry.signature.split(":")[2:]]
    return re.sub(r"[^A-Za-z0-9._~+-]", "_", "--".join(parts)) + ".json"


def save(directory: str | os.PathLike[str], entry: Entry) -> Path:
    """Write ``entry`` atomically into ``directory``; returns the path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / file_name(entry)
    text = json.dumps(to_json(entry), indent=2, sort_keys=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# ----------------------------------------------------------------------------- loading


def _need(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in doc:
        raise CorpusError(f"{where}: missing {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise CorpusError(f"{where}: {key!r} must be {names}, got {type(value).__name__}")
    return value


def _caller(doc: Any, where: str) -> Caller:
    if not isinstance(doc, dict):
        raise CorpusError(f"{where}: 'caller' must be an object")
    unknown = set(doc) - {"caps", "scope", "lockdown", "switches"}
    if unknown:
        raise CorpusError(f"{where}: unknown caller key(s) {sorted(unknown)}")
    caps = doc.get("caps", [])
    switches = doc.get("switches", [])
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise CorpusError(f"{where}: caller 'caps' must be a list of strings")
    if not isinstance(switches, list) or not all(isinstance(c, str) for c in switches):
        raise CorpusError(f"{where}: caller 'switches' must be a list of strings")
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
            raise CorpusError(f"{where}: argument {k!r} must be a number, string or boolean")
    return dict(doc)


def step_from_json(doc: Any, where: str) -> Step:
    if not isinstance(doc, dict):
        raise CorpusError(f"{where}: a step must be an object")
    actor = doc.get("actor")
    if actor == "kernel":
        return Step("kernel", _need(doc, "action", str, where), _args(doc.get("args", {}), where))
    if actor == "user":
        return Step(
            "user",
            _need(doc, "op", str, where),
            _args(doc.get("args", {}), where),
            _need(doc, "channel", str, where),
            _caller(doc.get("caller", {}), where),
        )
    raise CorpusError(f"{where}: 'actor' must be 'kernel' or 'user', got {actor!r}")


def load(path: str | os.PathLike[str]) -> Entry:
    """Parse and structurally check one corpus file (ops and args are checked on replay)."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CorpusError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CorpusError(f"{where}: not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise CorpusError(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer beyond sys.get_int_max_str_digits()
        raise CorpusError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CorpusError(f"{where}: top level must be a JSON object")
    fmt = doc.get("format")
    if fmt != FORMAT:
        raise CorpusError(f"{where}: unknown format {fmt!r}; this ptfuzz reads {FORMAT!r}")
    steps_doc = _need(doc, "steps", list, where)
    if not steps_doc:
        raise CorpusError(f"{where}: 'steps' is empty")
    steps = tuple(step_from_json(s, f"{where}: step {i}") for i, s in enumerate(steps_doc, 1))
    violation = _need(doc, "violation", dict, where)
    _need(violation, "signature", str, f"{where}: violation")
    without = doc.get("without", [])
    if not isinstance(without, list) or not all(isinstance(w, str) for w in without):
        raise CorpusError(f"{where}: 'without' must be a list of rule names")
    plugins = doc.get("plugins", {})
    if not isinstance(plugins, dict):
        raise CorpusError(f"{where}: 'plugins' must be an object")
    seed = doc.get("seed")
    if seed is not None and not isinstance(seed, int):
        raise CorpusError(f"{where}: 'seed' must be an integer or null")
    return Entry(
        subsystem=_need(doc, "subsystem", str, where),
        device=_need(doc, "device", str, where),
        policy=_need(doc, "policy", str, where),
        steps=steps,
        violation=violation,
        without=tuple(without),
        plugins=plugins,
        ptfuzz=str(doc.get("ptfuzz", "")),
        seed=seed,
        path=where,
    )
