"""Known findings, so that a nightly run fails on what is new, not on what everyone knows.

A baseline is any mix of:

* a **corpus directory** or **corpus file**: each file is one known finding of
  its policy (with its removed rules) on its device;
* a **baseline file** of signatures: JSON ``{"format": "ptfuzz.baseline/1",
  "known": [{"signature": ..., "policy": ..., "device": ...}, ...]}`` (policy
  and device optional; a policy label may carry removed rules,
  ``linux-ioctl~exclusive-cmds``), or text with one ``SIGNATURE`` or
  ``SIGNATURE POLICY@DEVICE`` a line (``#`` starts a comment).

Judged against a campaign, every finding is **new** or **known**, and every
baseline entry that applies to a run of the campaign but was not found is
**fixed** if its corpus file no longer reproduces under that run's policy
(replayed with the executor), **unseen** if it still does (the search did
not meet it this time), **stale** if it no longer replays at all (the model
changed under it), and **not seen** if it is a signature without a file,
which cannot be replayed.  Only new findings fail a run (exit 1).

The match is by signature within the same subsystem, policy label and
device: the same signature under another policy is another policy's bug.
The label carries the removed rules and the knobs the run set
(``linux-ioctl~exclusive-cmds``, ``toy-linux{reread=false}``,
``fuzzer.spec.policy_label``): a finding under other knob values is another
policy's too, and a corpus file is matched with the knobs it records.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from fuzzer import corpus, files, safetext
from fuzzer.errors import CorpusError, PtfuzzError, UsageError
from fuzzer.replay import replay
from fuzzer.spec import policy_label

if TYPE_CHECKING:  # pragma: no cover
    from fuzzer.campaign import Result
    from fuzzer.host import Registry

FORMAT = "ptfuzz.baseline/1"
#: What a baseline entry can end as, once judged.
FIXED, UNSEEN, STALE, NOT_SEEN, FOUND, OUT_OF_SCOPE = "fixed", "unseen", "stale", "not seen", "found", "out of scope"


@attrs.frozen
class Known:
    """One known finding: a signature, where it applies (None: anywhere), and its corpus file if any."""

    signature: str
    subsystem: str | None = None
    policy: str | None = None
    device: str | None = None
    file: str | None = None
    #: where it was read (``known.txt:2``, a corpus file), for messages; not part of what it says
    where: str = attrs.field(default="", eq=False)

    def applies(self, subsystem: str, policy: str, device: str) -> bool:
        """Whether this entry speaks about a run of ``policy`` (a label, with removed rules) on ``device``."""
        sub = self.subsystem or _subsystem_of(self.signature)
        return ((sub is None or sub == subsystem) and self.policy in (None, policy)
                and self.device in (None, device))

    def describe(self) -> str:
        where = "".join(x for x in (self.policy, "@" + self.device if self.device else None) if x)
        return safetext.line(f"{self.signature}" + (f" ({where})" if where else "")
                             + (f" {self.file}" if self.file else ""))


def _subsystem_of(signature: str) -> str | None:
    """A signature is ``invariant:subsystem:op:field[...]``."""
    parts = signature.split(":")
    return parts[1] if len(parts) > 2 else None


@attrs.frozen
class Baseline:
    known: tuple[Known, ...]
    sources: tuple[str, ...] = ()

    def match(self, signature: str, subsystem: str, policy: str, device: str) -> Known | None:
        return next((k for k in self.known if k.signature == signature and k.applies(subsystem, policy, device)),
                    None)


def load(paths: Iterable[str]) -> Baseline:
    """Read every baseline source; a bad one is an error naming it (exit 2), never a silent empty baseline."""
    known: list[Known] = []
    sources: list[str] = []
    for path in paths:
        sources.append(path)
        p = Path(path)
        if not p.exists():
            raise UsageError(f"baseline {safetext.line(path)}: no such file or directory")
        if p.is_dir():
            known.extend(_from_corpus(f) for f in corpus.expand([path]))
        elif p.suffix == ".json":
            known.extend(_from_json(path))
        else:
            known.extend(_from_text(path))
    return Baseline(tuple(known), tuple(sources))


def _from_corpus(path: str) -> Known:
    entry = corpus.load(path)
    return Known(entry.signature, entry.subsystem, policy_label(entry.policy, entry.without, entry.knobs),
                 entry.device, path, where=path)


def _from_json(path: str) -> list[Known]:
    where = safetext.line(path)
    doc = corpus.parse(files.read_text(path), where)
    if isinstance(doc, dict) and str(doc.get("format", "")).startswith("ptfuzz.sequence/"):
        return [_from_corpus(path)]
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CorpusError(f"{where}: not a baseline (format {FORMAT!r}) nor a corpus file")
    if set(doc) - {"format", "known"} or not isinstance(doc.get("known"), list):
        raise CorpusError(f"{where}: a baseline has exactly 'format' and 'known' (a list)")
    out = []
    for i, item in enumerate(doc["known"], 1):
        if not isinstance(item, dict) or not isinstance(item.get("signature"), str) or not item["signature"]:
            raise CorpusError(f"{where}: known {i}: needs a 'signature' string")
        extra = set(item) - {"signature", "subsystem", "policy", "device", "file"}
        if extra:
            raise CorpusError(f"{where}: known {i}: unknown key {safetext.shown(sorted(extra)[0])}")
        for key in ("subsystem", "policy", "device", "file"):
            if key in item and not isinstance(item[key], str):
                raise CorpusError(f"{where}: known {i}: {key!r} must be a string")
        file = item.get("file")
        if file is not None:  # relative to the baseline file, and it must be a corpus file of this finding
            file = str(Path(path).parent / file)
            entry = _from_corpus(file)
            if entry.signature != item["signature"]:
                raise CorpusError(f"{where}: known {i}: {safetext.line(file)} records "
                                  f"{safetext.shown(entry.signature)}, not this signature")
        out.append(Known(item["signature"], item.get("subsystem"), item.get("policy"), item.get("device"), file,
                         where=f"{path}:{i}"))
    return out


def _from_text(path: str) -> list[Known]:
    out = []
    for n, raw in enumerate(files.read_text(path).splitlines(), 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) > 2 or (len(parts) == 2 and "@" not in parts[1]):
            raise CorpusError(f"{safetext.line(path)}:{n}: expected 'SIGNATURE' or 'SIGNATURE POLICY@DEVICE', "
                              f"got {safetext.shown(text)}")
        policy = device = None
        if len(parts) == 2:
            policy, _, device = parts[1].partition("@")
        out.append(Known(parts[0], None, policy or None, device or None, None, where=f"{path}:{n}"))
    return out


# ----------------------------------------------------------------------------- judging


@attrs.frozen
class Scope:
    """What one run is, for matching: its subsystem, policy label, device, and the policy to replay under."""

    subsystem: str
    policy: str
    without: tuple[str, ...]
    device: str
    #: knobs the run set over the policy's own
    knobs: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        return policy_label(self.policy, self.without, dict(self.knobs))


@attrs.frozen
class Verdict:
    """A baseline entry, judged: one of FIXED, UNSEEN, STALE, NOT_SEEN, FOUND, OUT_OF_SCOPE."""

    known: Known
    state: str
    why: str = ""


@attrs.frozen
class Judgement:
    """The campaign's findings as new or known, and what became of every baseline entry."""

    #: (run index, signature) -> "new" or "known"
    status: dict[tuple[int, str], str]
    verdicts: tuple[Verdict, ...]

    def of(self, run: int, signature: str) -> str:
        return self.status.get((run, signature), "new")

    def count(self, state: str) -> int:
        return sum(1 for v in self.verdicts if v.state == state)

    def fixed(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.state == FIXED]

    def to_json(self) -> list[dict[str, Any]]:
        return [{"signature": v.known.signature, "policy": v.known.policy, "device": v.known.device,
                 "file": v.known.file, "state": v.state, "why": v.why} for v in self.verdicts]


def new_failing(result: Result, judgement: Judgement | None, run: int = 0) -> list[str]:
    """Signatures that fail the run: new, not accepted (tainted), not trusted by design."""
    return [f.signature for f in result.failing()
            if judgement is None or judgement.of(run, f.signature) == "new"]


def judge(registry: Registry, baseline: Baseline, runs: Sequence[tuple[Scope, Result]]) -> Judgement:
    """Mark each finding new or known, and decide what became of each baseline entry (see the module doc)."""
    status: dict[tuple[int, str], str] = {}
    for i, (scope, result) in enumerate(runs):
        for sig in result.findings:
            hit = baseline.match(sig, scope.subsystem, scope.label, scope.device)
            status[(i, sig)] = "known" if hit is not None else "new"
    verdicts = []
    for known in baseline.known:
        relevant = [(s, r) for s, r in runs if known.applies(s.subsystem, s.label, s.device)]
        if not relevant:
            verdicts.append(Verdict(known, OUT_OF_SCOPE))
        elif any(known.signature in r.findings for _, r in relevant):
            verdicts.append(Verdict(known, FOUND))
        elif known.file is None:
            verdicts.append(Verdict(known, NOT_SEEN, "a signature without a corpus file cannot be replayed"))
        else:
            verdicts.append(_replayed(registry, known, relevant[0][0]))
    return Judgement(status, tuple(verdicts))


def _replayed(registry: Registry, known: Known, scope: Scope) -> Verdict:
    """Replay ``known``'s file under the run's policy: still failing is UNSEEN, passing is FIXED."""
    assert known.file is not None
    try:
        rep = replay(registry, corpus.load(known.file), scope.policy, scope.without, dict(scope.knobs) or None)
    except PtfuzzError as exc:
        return Verdict(known, STALE, f"no longer replays: {exc}")
    if rep.still_fails:
        return Verdict(known, UNSEEN, f"not met this run; its file still fails under {scope.label}")
    return Verdict(known, FIXED, f"its file no longer fails under {scope.label}")


def write(path: str, entries: Iterable[Known]) -> None:
    """Write a signature baseline (``ptfuzz.baseline/1``) listing ``entries``."""
    doc = {"format": FORMAT, "known": [
        {k: v for k, v in attrs.asdict(known).items() if v is not None and k != "where"} for known in entries]}
    files.write_output(path, "--write-baseline", json.dumps(doc, indent=2) + "\n")
