"""Corpus files and generated sequences on a real kernel, beside the model.

A *session* is one booted guest and one model world that follow each other
step by step: the guest's device keeps its state between sequences, so the
model does too (its executor is never reset inside a session).  Before the
first step the model is brought to the guest's boot state (``SETUP``: the
guest binds the nvdimm at boot, so the model does ``nvdimm_bind``).  After
a disagreement or a crash the two may have drifted apart, so the session
ends and the next one boots afresh.

The conformance campaign draws steps as the native search does (same moves,
same boundary-heavy sizes), leaving out what the guest cannot do (lockdown,
kernel actions without an administrator path), runs each step on both, and
minimizes every disagreement on fresh guests to the shortest sequence that
still shows it.  A disagreement listed in ``known.py`` is a documented
difference (QEMU's gaps, test-only kernel patches), not a model error.
"""

from __future__ import annotations

import copy
import errno
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from fuzzer import Step
from fuzzer.harness import (
    Entry,
    Executor,
    Explorer,
    Registry,
    executor_for,
    load_entry,
    migrate_entry,
    step_to_json,
)
from ptfuzz_cxl.live import kernels, known, tools
from ptfuzz_cxl.live.guest import Guest, GuestError
from ptfuzz_cxl.live.target import NOT_HERE, CxlTarget, LiveStep, Verdict, tally

#: model-only steps that bring a fresh model to the guest's boot state
SETUP = (Step("kernel", "nvdimm_bind", {}),)
#: kernel actions the campaign does not draw because each takes seconds on the guest; tests/test_live.py
#: checks each against the model (a firmware upload is a 10 s background transfer in QEMU)
SLOW = frozenset({"fw_upload"})
#: time passes: the background operation in flight finishes on both sides
FINISH = Step("kernel", "background_complete", {})
#: format of a saved disagreement
FORMAT = "ptfuzz.conformance/1"


@attrs.frozen
class Disagreement:
    kernel: str
    policy: str
    device: str
    steps: tuple[Step, ...]
    last: LiveStep
    known: known.Known | None

    @property
    def signature(self) -> str:
        """One disagreement per command and pair of verdicts; the device's return code is left out."""
        s = self.last
        return f"conformance:cxl:{s.step.channel or 'kernel'}:{s.step.op}:model {_gist(s.model)}:kernel {_gist(s.kernel)}"


def _gist(v: Verdict | None) -> str:
    if v is None:
        return "none"
    head = "allowed" if not v.errno else "-" + errno.errorcode.get(v.errno, str(v.errno))
    return head + (" crash" if v.crash else "")


#: errnos with which the kernel refuses a command before it reaches the device (ETIMEDOUT is not one:
#: a background command timed out after it started)
REFUSALS = frozenset({errno.EPERM, errno.EACCES, errno.EINVAL, errno.ENOTTY, errno.ENOMEM, errno.EBUSY,
                      errno.EOPNOTSUPP, errno.E2BIG, errno.EMSGSIZE, errno.ENXIO, errno.ENOENT})


def refused_before_device(live: LiveStep) -> bool:
    """The kernel refused the step and nothing crashed: the guest's device did not change."""
    k = live.kernel
    return k is not None and not k.crash and k.errno in REFUSALS


def snapshot(executor: Executor) -> tuple[Any, ...]:
    """The model's world, enough to undo one step (device values are immutable: shallow copies do)."""
    w = executor.world
    return (dict(w.device.state), copy.deepcopy(w.kernel), dict(w.shadow), w.handles, w.tainted)


def restore(executor: Executor, snap: tuple[Any, ...]) -> None:
    w = executor.world
    state, kernel, shadow, w.handles, w.tainted = snap
    w.device.state.clear()
    w.device.state.update(state)
    w.kernel.clear()
    w.kernel.update(kernel)
    w.shadow.clear()
    w.shadow.update(shadow)


@contextmanager
def session(image: Path, executor: Executor, cache: Path,
            lacks: Mapping[str, str] | None = None) -> Iterator[CxlTarget]:
    """A booted guest with the model brought to its boot state."""
    guest = Guest(image, cache)
    try:
        guest.start()
        executor.reset()
        for step in SETUP:
            executor.apply(step)
        yield CxlTarget(guest, lacks)
    finally:
        guest.close()


def run_steps(image: Path, executor: Executor, steps: Sequence[Step], cache: Path,
              lacks: Mapping[str, str] | None = None) -> list[LiveStep]:
    with session(image, executor, cache, lacks) as target:
        return target.run(executor, steps)


# --------------------------------------------------------------------------- corpus files


@attrs.frozen
class FileRun:
    path: str
    policy: str
    device: str
    steps: tuple[LiveStep, ...]
    error: str = ""

    @property
    def counts(self) -> dict[str, int]:
        return tally(s for s in self.steps if s.step.actor == "user")


def run_file(registry: Registry, path: str, build: kernels.Kernel, policy: str | None,
             cache: Path, device: str | None = None) -> FileRun:
    """One corpus file on a fresh guest, its steps judged by ``policy`` (default: the file's) on the model
    of ``device`` (default: the file's; ``qemu`` predicts what the emulated device answers, so that what
    remains is the kernel's and the policy's).  A step the device cannot take is not performed."""
    entry = load_entry(path)
    if policy == "auto":
        policy = judge_for(registry, entry, build)
    executor, pol = executor_for(registry, entry, policy)
    judged = build.judge(pol)
    device = device or entry.device
    if judged is not pol or device != entry.device:
        executor = registry.executor(entry.subsystem, judged, registry.device(entry.subsystem, device), trace=True)
    entry = migrate_entry(entry, executor.complete)
    unknown = [s for s in entry.steps if executor.validate(s)]
    if unknown:
        why = executor.validate(unknown[0])
        return FileRun(path, pol.label, device, tuple(
            LiveStep(i, s, None, None, "not performed", f"the {device} device model cannot take it: {why}")
            for i, s in enumerate(entry.steps, 1) if s.actor == "user"))
    image = kernels.ensure(build, cache)
    try:
        steps = run_steps(image, executor, entry.steps, cache, build.lacks)
    except GuestError as exc:
        return FileRun(path, pol.label, device, (), str(exc))
    return FileRun(path, pol.label, device, tuple(steps))


def judge_for(registry: Registry, entry: Entry, build: kernels.Kernel) -> str:
    """The policy describing ``build`` that covers every channel the entry's user steps use."""
    channels = {s.channel for s in entry.steps if s.actor == "user"}
    for name in build.judges:
        if channels <= set(registry.policy(entry.subsystem, name).channels):
            return name
    return build.judges[0]


# --------------------------------------------------------------------------- conformance


@attrs.define
class Conformance:
    """A conformance campaign of one policy on one kernel; see the module docstring."""

    registry: Registry
    build: kernels.Kernel
    policy: str
    device: str = "qemu"
    seed: int = 1
    steps: int = 2000
    session_steps: int = 400
    minimize_boots: int = 6
    cache: Path = attrs.field(factory=tools.cache_dir)
    out: Path | None = None
    log: Callable[[str], None] = print
    results: list[LiveStep] = attrs.field(factory=list)
    disagreements: list[Disagreement] = attrs.field(factory=list)
    boots: int = 0

    def executor(self) -> Executor:
        reg = self.registry
        policy = self.build.judge(reg.policy("cxl", self.policy))
        return reg.executor("cxl", policy, reg.device("cxl", self.device), trace=True)

    def run(self) -> list[Disagreement]:
        image = kernels.ensure(self.build, self.cache)
        executor = self.executor()
        explorer = Explorer(executor, seed=self.seed, steps=1)
        explorer.use_moves([attrs.evolve(m, callers=tuple(c for c in m.callers if c.lockdown == "none"))
                            for m in explorer.moves
                            if m.actor == "user" or (m.op not in NOT_HERE and m.op not in SLOW
                                                     and m.op not in self.build.lacks)])
        t0 = time.monotonic()
        done = 0
        seen: set[str] = set()
        while done < self.steps:
            self.boots += 1
            history: list[Step] = []
            with session(image, executor, self.cache, self.build.lacks) as target:
                explorer.live = {}
                for _ in range(min(self.session_steps, self.steps - done)):
                    move = explorer.pick()
                    step = explorer.draw(move)
                    before = snapshot(executor)
                    try:
                        live = target.run(executor, [step])[0]
                    except GuestError as exc:
                        self.log(f"guest stopped answering after {len(history)} steps: {exc}")
                        break
                    done += 1
                    self.results.append(live)
                    if live.outcome != "disagree":
                        history.append(step)
                        if live.result is not None:
                            explorer.track(move, live.result)
                        if executor.world.device.state.get("bg.opcode"):
                            # QEMU finishes it on its own clock: let both finish it now, or they drift
                            target.run(executor, [FINISH])
                            history.append(FINISH)
                        continue
                    d = self._disagreement([*history, step], live)
                    if d.signature not in seen:
                        seen.add(d.signature)
                        self.disagreements.append(self._minimized(image, d))
                    if not refused_before_device(live):
                        break  # the device saw a command the model did not: boot afresh
                    restore(executor, before)  # the kernel kept it from the device: undo it in the model
            elapsed = time.monotonic() - t0
            self.log(f"{done}/{self.steps} steps, {len(self.disagreements)} disagreements, "
                     f"{self.boots} boots, {elapsed:.0f} s")
        return self.disagreements

    def _disagreement(self, history: Sequence[Step], last: LiveStep) -> Disagreement:
        return Disagreement(self.build.name, self.policy, self.device, tuple(history), last,
                            known.match(self.build.name, self.policy, last))

    def _reproduces(self, image: Path, steps: Sequence[Step], like: LiveStep) -> LiveStep | None:
        self.boots += 1
        try:
            out = run_steps(image, self.executor(), steps, self.cache, self.build.lacks)
        except GuestError:
            return None
        last = out[-1]
        same = (last.outcome == "disagree" and last.model == like.model and last.kernel is not None
                and like.kernel is not None and last.kernel.errno == like.kernel.errno
                and bool(last.kernel.crash) == bool(like.kernel.crash))
        return last if same else None

    def _minimized(self, image: Path, d: Disagreement) -> Disagreement:
        """The shortest suffix that still disagrees the same way on a fresh guest (1, 2, 4 ... steps),
        then steps dropped from it one at a time; each try is a boot (budget: ``minimize_boots``)."""
        steps = list(d.steps)
        last = d.last
        budget = self.minimize_boots
        k = 1
        while k < len(steps) and budget:
            budget -= 1
            got = self._reproduces(image, steps[-k:], last)
            if got is not None:
                steps, last = steps[-k:], got
                break
            k *= 2
        i = 0
        while i < len(steps) - 1 and budget:
            budget -= 1
            candidate = steps[:i] + steps[i + 1:]
            got = self._reproduces(image, candidate, last)
            if got is not None:
                steps, last = candidate, got
            else:
                i += 1
        out = attrs.evolve(d, steps=tuple(steps), last=last)
        if self.out is not None:
            save(self.out, out, self.executor())
        return out

    def summary(self) -> dict[str, Any]:
        counts = tally(self.results)
        unknown = [d for d in self.disagreements if d.known is None]
        return {"kernel": self.build.name, "policy": self.policy, "device": self.device, "seed": self.seed,
                "steps": len(self.results), "boots": self.boots, **counts,
                "disagreements": len(self.disagreements), "unexplained": len(unknown),
                "known": sorted({d.known.name for d in self.disagreements if d.known}),
                "per_command": per_command(self.results)}


def per_command(results: Sequence[LiveStep]) -> dict[str, dict[str, int]]:
    """Outcome counts per channel and command (kernel actions under ``kernel``)."""
    table: dict[str, dict[str, int]] = {}
    for s in results:
        key = f"{s.step.channel or 'kernel'} {s.step.op}"
        row = table.setdefault(key, {"agree": 0, "partly": 0, "disagree": 0, "not performed": 0, "allowed": 0})
        row[s.outcome] += 1
        row["allowed"] += bool(s.kernel is not None and not s.kernel.errno)
    return dict(sorted(table.items()))


def markdown(runs: Sequence[Conformance]) -> str:
    """The model-vs-kernel table, one row per command, one column group per policy."""
    lines = ["| command | " + " | ".join(f"{c.policy}: agree / partly / disagree (kernel allowed)"
                                       for c in runs) + " |",
             "|---|" + "---|" * len(runs)]
    tables = [per_command(c.results) for c in runs]
    for key in sorted(set().union(*tables)):
        cells = []
        for t in tables:
            row = t.get(key)
            cells.append("" if row is None else
                         f"{row['agree']} / {row['partly']} / {row['disagree']} ({row['allowed']})")
        lines.append(f"| `{key}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_json(d: Disagreement, executor: Executor) -> dict[str, Any]:
    s = d.last
    return {
        "format": FORMAT,
        "subsystem": "cxl",
        "kernel": d.kernel,
        "policy": d.policy,
        "device": d.device,
        "signature": d.signature,
        "model": s.model.describe({}) if s.model else None,
        "kernel_said": s.kernel.describe({}) if s.kernel else None,
        "known": d.known.reason if d.known else None,
        "kmsg": s.kmsg[-4000:],
        "steps": [step_to_json(st, executor.payload_of(st)) for st in d.steps],
    }


def file_name(d: Disagreement) -> str:
    s = d.last.step
    raw = f"{d.kernel}--{d.policy}--{s.channel or 'kernel'}--{s.op}--model-{_gist(d.last.model)}--kernel-{_gist(d.last.kernel)}"
    return re.sub(r"[^A-Za-z0-9._~+=-]", "_", raw)[:180] + ".json"


def save(directory: Path, d: Disagreement, executor: Executor) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(d)
    tools.atomic_write(path, (json.dumps(to_json(d, executor), indent=1, sort_keys=True) + "\n").encode())
    return path

