"""The bounded proof: every distinct abstract state within N steps, over declared argument classes.

A campaign that finds nothing says nothing about what it did not find.  This
mode enumerates, breadth first, every abstract state (``fuzzer.abstract``)
reachable from the probed world in at most N steps, trying from each state
every move (each kernel action, each command on each channel the policy
opens) with every combination of its arguments' *classes* and every caller
of the channel's ``CallerSpace``.  Each step is judged by the executor, as
in every other mode.  The answer is either the shortest violating sequence
(breadth first: no shorter one exists over these classes) or "no violation
within N steps over these classes: S states, T transitions".

The argument classes (``values_of``, ``arguments``), from the declarations:

* an ``int``: its bounds and their neighbours, and 0 and 1 where they are in
  range (``lo, lo+1, hi-1, hi, 0, 1``), where off-by-one checks live; and an
  interior pair, the midpoint and its successor: a device's accepted range is
  often a sliver inside the declared one (CXL's volatile capacity is 2..14 of a
  declared 0..16, so no boundary changes a partition), and two adjacent values
  differ from whatever the state holds;
* a ``bool``: both; a ``choice``: each choice; a ``handle``: each live one;
* a ``size``: its natural value (what a correct caller declares); and, one
  size at a time with every other size natural and the other arguments at
  their first class -- except each ``choice``, which takes each of its values
  (a choice picks the structure or feature whose length is checked: fwctl's
  Set Feature overruns only for one feature's UUID) -- natural-1 and
  natural+1, its bounds, 0 and 1, and its marks (``Param.marks``: header
  sizes, the mailbox size).  Sizes enter one at a time because the product of
  seven sizes' classes is 10^5-10^7 steps a state; a length bug is one length
  wrong, not two.

What the classes leave out, so what the proof does not cover:

* values *between* the classes (an LSA offset of 37, a volatile capacity
  of 5): a check that treats 37 differently from 0, 1, 63, 64, 126 and 127 is
  not tested.  A model whose behaviour depends on such a value needs a class for it;
* two sizes wrong at once, and a wrong size together with non-first values of
  the other arguments that are not choices (an int, a bool, a second handle);
* futures that depend on a device-owned value the abstraction merges
  (``fuzzer.abstract``: "the LSA was written", not which bytes): the first world
  reached in a class stands for all of it;
* concurrency: steps are atomic and one at a time, as everywhere in ptfuzz;
* everything the models leave out (``README.md``, "Fidelity").

Severity: by default only ``hole`` violations disprove.  ``tainted`` ones
(the policy tainted the kernel first: the administrator was warned) count
when asked (``severities``); ``trusted`` ones are by design (a ``Trust``) and
counted only when asked too.  Violations not counted are tallied by
signature in the result, so a proof says what it stepped over.

Each state's world is rebuilt once by replaying its path from
``Executor.reset``; after each step that changed it, it is restored from a
snapshot (``fuzzer.snapshot.Snapshot``: the world's mutable parts, copied structurally, a
plugin's own objects deep-copied), and a step that changed nothing (no device
change; kernel, shadow, taint, handles and their counter as they were: a
refusal, a read) needs neither a restore nor a new state, which is most of
them.  ``restore="always"`` replays instead, the reference the tests hold
the snapshots to.

Steps that would run identically are run once (``fuzzer.watched``): each
step's run records which caller fields and argument keys it read, and a later
step of the same move from the same world that agrees on those runs the same
way (same decision, reply, changes, violations, successor), so it is counted
as judged without running.  Exact, not an approximation: the states,
transitions, tallies and the violation found are those of running every step
(``callers="each"``, which the tests hold the classes to); ``Proof.applied``
says how many steps ran.  A look at some bytes of a request reads only the
arguments encoded there (``executor.inbound``, ``Layout.sources``), so a
fwctl rule reading the 4-byte ``op_size`` does not make the step's class its
whole argument set.

Each level's nodes may be split over forked processes (``jobs``; the CLI's
``--jobs``, default the CPUs available).  A node's expansion
(``_Expander.expand``) depends only on the node and the states known when
its level began, so each process expands contiguous ranges of the frontier,
and the merge reads the expansions back in the frontier's order, counting
each successor, transition and tally as one process would: the states, the
transitions, a state cap's stopping point and the first violation with its
path do not depend on ``jobs`` (``tests/test_bounded.py``); the seconds do,
and the CPU seconds include the workers'.

Cross-state reuse: a step from a child world whose run from the parent's
world touched nothing the child's last step changed runs there as it ran in
the parent, so it need not run again.  While a node whose children will be
expanded is expanded (every level but the last), its world is watched
(``fuzzer.touched``: the device state, kernel bookkeeping and shadow as
``WatchedMap`` s, the taint by flag and the handle counter through
``WatchedWorld``), so each run records every key it read or wrote -- the
rules', handlers', transports', reactions' and invariants' alike -- apart
from the executor's own diff of the state, which reads with ``dict``'s own
methods (the keys it reports are the writes, which are recorded).  A class
(``Classes``) whose run changed nothing, or changed only the device and the
taint (its ``effect``: the executor's changes and the flags it added), is
kept with what it touched; a child (``_Node.memo``, ``_Node.delta``: the
keys its world differs in from the parent's, ``Snapshot.changed``) takes
every class that touched none of them (``Classes.inherit``).  An inherited
class that changed nothing is judged like a class of the child's own; one
that changed the world is *due* at the first step of its class met in the
child (``Classes.judged``), whose successor's state is the child's with the
same changes (``Base.after``), counted there, in the order running would
count it, without running.  A run that replaced a map, or that changed the
kernel's side, hands nothing on; a child whose taint lost a flag or whose
device state is another object inherits nothing.  Exact, as the step
classes are: ``tests/test_bounded.py`` holds it to the proof that inherits
nothing, and a planted model where each way of reading matters catches a
shortcut that ignores one (``prove(inherit=False)`` is the reference).
Live handles are the proof's own bookkeeping, not the world's, so a class is
handed on whatever they are.  A move whose every class the child takes, with
the same argument sets, is not judged again step by step: the parent's run of
it is a ``_Transcript`` (its tally, and where each class that changed the
world was first met), which the child replays.  Only the last level's steps
are not watched (nothing inherits from them), which is where about 90 % of
the runs were; on ``linux-raw`` at depth 3, 8.68 million steps ran before and
295,672 now (README, "Bounded proof": figures).  What is left there is
bookkeeping: judging the moves a child cannot replay, taking the parent's
classes, and each new successor's abstract state.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import resource
import time
from collections import Counter
from collections.abc import Container, Generator, Hashable, Iterator, Mapping, Sequence
from typing import Any, Literal

import attrs

from fuzzer.abstract import Base, abstract_state
from fuzzer.executor import Executor, StepResult
from fuzzer.explore import Move, moves_of
from fuzzer.snapshot import Snapshot
from fuzzer.spec import Caller, Param, Violation
from fuzzer.touched import Touched, WatchedMap, WatchedWorld, taint_keys, world_read
from fuzzer.watched import Classes, Effect, Entry, Uncounted, WatchedArgs, read, watched
from fuzzer.world import Step, World

__all__ = ["DEFAULT_STATES", "MAX_DEPTH", "Proof", "arguments", "cpus", "prove", "values_of"]

#: States a proof keeps whole at most unless told otherwise: a state with its key and its path costs about
#: 8 KB (gpu linux-drm to depth 5: 28,902 states, 228 MB), so the cap holds memory under 1 GB.  The last
#: depth's states are not expanded, so only their hashes are kept (``fresh``), ``HASHED`` times as many.
DEFAULT_STATES = 100_000
#: States of the last depth counted at most, per state the cap keeps whole: a hash is about 60 bytes.
HASHED = 40
#: Deepest proof asked for: the states grow as the depth's power of the moves that change something.
MAX_DEPTH = 12
#: Transitions between two looks at the clock.
CHECK_EVERY = 256

Live = dict[str, tuple[Any, ...]]


def values_of(p: Param, args: Mapping[str, Any] | None = None) -> list[Any]:
    """The classes of one non-handle parameter, simplest first (a size: its natural value first)."""
    if p.kind == "bool":
        return [False, True]
    if p.kind == "choice":
        return list(p.choices)
    if p.kind == "int":
        mid = (p.lo + p.hi) // 2
        return sorted({v for v in (0, 1, p.lo, p.lo + 1, mid, mid + 1, p.hi - 1, p.hi) if p.lo <= v <= p.hi},
                      key=lambda v: (abs(v), v))
    if p.kind == "size":
        n = _natural(p, args or {})
        around = [n - 1, n + 1, p.lo, p.hi, 0, 1, *(m for m in p.marks if isinstance(m, int))]
        return [n, *dict.fromkeys(v for v in around if p.lo <= v <= p.hi and v != n)]
    raise ValueError(f"parameter {p.name!r}: a {p.kind} has no value classes")


def _natural(p: Param, args: Mapping[str, Any]) -> int:
    n = p.natural(args) if callable(p.natural) else p.lo
    return int(min(max(n, p.lo), p.hi))


def arguments(params: Sequence[Param], live: Mapping[str, Sequence[Any]]) -> Iterator[dict[str, Any]]:
    """Every argument set of the classes (see the module docstring), simplest first.

    The non-size parameters take every combination of their classes (handles:
    every live handle of the bundle), each with every size at its natural
    value; then, from the first combination and from each choice's own first
    combination, each size alone at each of its other classes.
    """
    plain = [p for p in params if p.kind != "size"]
    sizes = [p for p in params if p.kind == "size"]
    pools = [list(live.get(p.bundle, ())) if p.kind == "handle" else values_of(p) for p in plain]
    if any(not pool for pool in pools):
        return
    #: where sizes vary from: every choice at each of its values, the other plain parameters at their first
    anchors = set(itertools.product(*(pool if p.kind == "choice" else pool[:1] for p, pool in zip(plain, pools,
                                                                                                   strict=True))))
    starts: list[dict[str, Any]] = []
    for combo in itertools.product(*pools):
        args = dict(zip((p.name for p in plain), combo, strict=True))
        for s in sizes:
            args[s.name] = _natural(s, args)
        if combo in anchors:
            starts.append(args)
        yield args
    for start in starts:
        for s in sizes:
            for v in values_of(s, start)[1:]:
                yield {**start, s.name: v}


@attrs.frozen
class Proof:
    """What a bounded proof established."""

    #: proved: no counted violation within ``depth``; found: ``steps`` end in ``violation``;
    #: incomplete: the state cap or the time limit ended it first (``reason``): not a proof
    outcome: Literal["proved", "found", "incomplete"]
    depth: int
    #: distinct abstract states reached (the probed one included)
    states: int
    #: steps applied (each from an explored state)
    transitions: int
    seconds: float
    #: CPU seconds of this process (on a shared machine, the figure that does not depend on the load)
    cpu: float = 0.0
    #: distinct states first reached at each depth, 0 first, for each depth whose states were all reached
    #: (a proof: depth + 1 entries; a violation or an incomplete proof: up to the depth it covers in full)
    levels: tuple[int, ...] = ()
    steps: tuple[Step, ...] = ()
    violation: Violation | None = None
    reason: str = ""
    #: violations seen but not counted (their severity is not asked for), by signature
    uncounted: Mapping[str, int] = attrs.field(factory=dict)
    #: every sequence of at most this many steps was judged (``depth`` for a proof; less when found or incomplete)
    complete_depth: int = 0
    #: transitions the executor ran; each of the others was judged by the run of its step class (``fuzzer.watched``)
    applied: int = 0

    def describe(self) -> str:
        """One line: the verdict, with the figures it rests on."""
        return " ".join(self.describe_parts())

    def describe_parts(self) -> tuple[str, ...]:
        """The verdict in parts a narrow terminal prints on lines of their own (a FOUND line's shape)."""
        ran = f" ({self.applied} run)" if self.applied != self.transitions else ""
        figures = (f"{self.states} states, {self.transitions} transitions{ran}, {self.seconds:.1f}s "
                   f"({self.cpu:.1f}s CPU)")
        if self.outcome == "found":
            assert self.violation is not None
            return (f"FOUND [{self.violation.severity}] {self.violation.signature}",
                    f"({len(self.steps)} steps, the shortest over these classes; {figures})")
        if self.outcome == "proved":
            return (f"no violation within {self.depth} steps over these classes:", figures)
        return (f"incomplete, not a proof: {self.reason};",
                f"every sequence of at most {self.complete_depth} steps was checked ({figures})")


@attrs.define
class _Node:
    path: tuple[Step, ...]
    live: Live
    key: Hashable
    #: per move, what the parent's world hands on (filled while the parent expands; shared by its children);
    #: None: nothing to inherit
    memo: dict[int, _Memo] | None = None
    #: the keys of the device state, kernel bookkeeping and shadow in which this world differs from the parent's
    delta: tuple[frozenset[Any], frozenset[Any], frozenset[Any]] | None = None


@attrs.frozen
class _Transcript:
    """A move's whole run from a world, every class of it one a child may take: a child that takes them all
    (none touched what its last step changed) and has the same argument sets runs the move the same way,
    so it replays this instead of judging each step again."""

    #: everything the move's classes touched
    touched: Touched
    transitions: int
    tally: Counter[str]
    #: each class that changed the world where it was first met: (transitions into the move, the argument set,
    #: the caller, its effect, the tally into the move)
    dues: tuple[tuple[int, dict[str, Any], Caller | None, Effect, Counter[str]], ...]


@attrs.define
class _Memo:
    """What a node's expansion hands its children for one move (the module docstring, "Cross-state reuse")."""

    #: the classes a child may take
    entries: list[Entry]
    #: the move's handles as the node had them, which make its argument sets
    handles: tuple[Any, ...]
    transcript: _Transcript | None = None


@attrs.define
class _New:
    """A successor state one node's expansion reached first (of the states known when it started), with the
    node's counts at that transition: where the merge reports a state cap reached on it."""

    key: Hashable
    #: the successor's node (None on the last level: nothing expands it)
    node: _Node | None
    transitions: int
    applied: int
    uncounted: dict[str, int]


@attrs.define
class _Expansion:
    """What expanding one node gave, in the order the steps were tried: what the merge needs to count as
    one process would (``prove``)."""

    transitions: int = 0
    applied: int = 0
    uncounted: Counter[str] = attrs.field(factory=Counter)
    new: list[_New] = attrs.field(factory=list)
    #: the path to the first counted violation and the violation, which ended the expansion
    found: tuple[tuple[Step, ...], Violation] | None = None
    #: the time limit ended it (``transitions`` counts the steps tried)
    late: bool = False


def _track(move: Move, live: Live, result: StepResult) -> Live:
    """The live handles after ``result``: consumed ones gone, produced ones added (as ``Explorer.track``)."""
    out = live
    for i, bundle, consumes in move.handles:
        if consumes:
            name = result.step.args[move.params[i].name]
            out = {**out, bundle: tuple(h for h in out.get(bundle, ()) if h != name)}
    reply = result.reply
    made = () if reply is None else reply.published
    if made:
        for bundle in move.produces:
            out = {**out, bundle: out.get(bundle, ()) + tuple(made)}
    for bundle, handle in result.publications:
        out = {**out, bundle: (*out.get(bundle, ()), handle)}
    return out


def fresh(key: Hashable, seen: Container[Hashable], mine: set[Hashable], last: bool) -> Hashable | None:
    """What to record of a successor state ``key`` not in ``seen`` nor in ``mine`` (then added to ``mine``), or None.

    On the last depth that is the key's hash: nothing expands those states, they
    are only counted, and a whole key costs kilobytes (cxl linux-raw on all-ram to
    depth 4: 631,562 states at the last depth, 3.2 GB as keys).  Two distinct states
    whose 64-bit hashes collide would be counted as one (about one chance in 10^7
    at a million states); what is checked, each transition's violations, does not
    depend on it.  An earlier depth's state is looked up whole first.
    """
    if key in seen:
        return None
    if last:
        key = hash(key)
        if key in seen:
            return None
    if key in mine:
        return None
    mine.add(key)
    return key


def cap(max_states: int, last: bool) -> str:
    """The state cap as an incomplete proof names it."""
    return f"{max_states}" + (f" kept whole, {HASHED * max_states} at the last depth" if last else "")


def cpus() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``): ``--jobs``'s default."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _Expander:
    """Expands nodes: every move, argument class and caller from a node's world (the module docstring)."""

    def __init__(self, executor: Executor, moves: Sequence[Move], *, severities: frozenset[str],
                 ignored: frozenset[str], targets: frozenset[str] | None, shortcut: bool, grouped: bool,
                 deadline: float | None, inherit: bool = True) -> None:
        self.executor, self.moves = executor, moves
        self.severities, self.ignored, self.targets = severities, ignored, targets
        self.shortcut, self.grouped, self.deadline = shortcut, grouped, deadline
        #: children take their parent's classes (cross-state reuse: needs the snapshots and the step classes)
        self.inherit = inherit and shortcut and grouped
        #: per move, its callers as ``Watched`` ones (immutable, so made once)
        self.watching = [tuple(None if c is None else watched(c) for c in m.callers or (None,)) for m in moves]
        #: (move, the live handles of its bundles) -> its argument sets: the same from every node with those
        #: handles (a step never changes its arguments: ``Executor.complete`` copies before adding sizes)
        self.argsets: dict[tuple[int, tuple[Any, ...]], list[dict[str, Any]]] = {}

    def arguments(self, move: Move, live: Live) -> list[dict[str, Any]]:
        """``arguments(move.params, live)``, made once per move and handles."""
        key = (move.index, tuple(live.get(b, ()) for _, b, _ in move.handles))
        sets = self.argsets.get(key)
        if sets is None:
            sets = self.argsets[key] = list(arguments(move.params, live))
        return sets

    def counts(self, v: Violation, tallied: list[str]) -> bool:
        """Whether ``v`` disproves; one that is not asked for is noted in ``tallied``."""
        if v.invariant in self.ignored:
            return False
        if self.targets is not None:
            return v.signature in self.targets
        if v.severity not in self.severities:
            tallied.append(v.signature)
            return False
        return True

    def expand(self, node: _Node, level: int, seen: Container[Hashable], last: bool) -> _Expansion:
        """Every step from ``node`` (at depth ``level``), until the first counted violation; the successors
        not in ``seen`` nor met before in this expansion are ``new``, in the order met."""
        executor, grouped, deadline = self.executor, self.grouped, self.deadline
        out = _Expansion()
        uncounted = out.uncounted
        mine: set[Hashable] = set()
        transitions = applied = 0
        _restore(executor, node.path)
        #: record what each step touches of the world, for the children to inherit (none on the last level)
        watch = self.inherit and not last
        memo: dict[int, _Memo] | None = {} if watch else None
        inherited = node.memo if grouped and node.delta is not None else None
        snap = Snapshot(executor.world, wrap=_watch if watch else None) if self.shortcut else None
        base = Base(executor) if self.shortcut else None
        try:
            for move in self.moves:
                if not all(node.live.get(b) for _, b, _ in move.handles):
                    continue
                each: tuple[Caller | None, ...] = move.callers or (None,)
                as_watched = self.watching[move.index]
                handles = tuple(node.live.get(b, ()) for _, b, _ in move.handles)
                parent = inherited.get(move.index) if inherited is not None else None
                script = parent.transcript if parent is not None and parent.handles == handles else None
                if script is not None and node.delta is not None and script.touched.misses(*node.delta):
                    # the parent's run of the move, every class of it taken: only its successors are new here
                    if deadline is not None and time.monotonic() > deadline:
                        out.late = True
                        return out
                    assert base is not None
                    for offset, args, caller, (changes, added), tally in script.dues:
                        tainted = None if added is None else executor.world.tainted | added
                        key: Hashable = base.after(changes, node.live, tainted)
                        if (noted := fresh(key, seen, mine, last)) is not None:
                            out.new.append(_New(noted, None if last else _Node(
                                (*node.path, Step(move.actor, move.op, args, move.channel,  # type: ignore[arg-type]
                                                  caller)),
                                node.live, key, memo, _delta(changes, tainted, executor.world)),
                                transitions + offset, applied, dict(uncounted + tally)))
                    transitions += script.transitions
                    uncounted.update(script.tally)
                    if memo is not None:
                        memo[move.index] = parent  # type: ignore[assignment]
                    continue
                #: the step classes of this move from this world (``fuzzer.watched``)
                classes = Classes(each)
                if parent is not None:
                    assert node.delta is not None
                    classes.inherit(parent.entries, *node.delta)
                #: this move's run, for a transcript: where it started, its successors' classes, whether every
                #: class of it may be handed on
                start, before = transitions, Counter(uncounted)
                met: list[tuple[int, dict[str, Any], Caller | None, Effect, Counter[str]]] = []
                clean = memo is not None
                for args in self.arguments(move, node.live):
                    judged = classes.judged(args) if grouped else None
                    #: inherited classes that changed the world, met here first: their successors are new here
                    dues = classes.due
                    if judged is not None and None not in judged and not dues:  # every caller judged: at once
                        if deadline is not None and (transitions % CHECK_EVERY) + len(each) >= CHECK_EVERY \
                                and time.monotonic() > deadline:
                            out.late = True
                            return out
                        transitions += len(each)
                        for same in judged:
                            if same:
                                uncounted.update(same)
                        continue
                    for i, caller in enumerate(each):
                        transitions += 1
                        if deadline is not None and transitions % CHECK_EVERY == 0 and time.monotonic() > deadline:
                            out.late = True
                            return out
                        if judged is not None:
                            same = judged[i]
                            if same is not None:  # runs as its class's step ran: nothing new, nothing counted
                                if same:
                                    uncounted.update(same)
                                if dues and i in dues:  # ... but where it ran, in the parent's world
                                    changes, added = dues[i]
                                    if clean:
                                        met.append((transitions - start, args, caller, dues[i], uncounted - before))
                                    assert base is not None
                                    tainted = None if added is None else executor.world.tainted | added
                                    key = base.after(changes, node.live, tainted)
                                    if (noted := fresh(key, seen, mine, last)) is not None:
                                        out.new.append(_New(noted, None if last else _Node(
                                            (*node.path, Step(move.actor, move.op, args, move.channel,  # type: ignore[arg-type]
                                                               caller)),
                                            node.live, key, memo, _delta(changes, tainted, executor.world)),
                                            transitions, applied, dict(uncounted)))
                                continue
                            read.clear()
                            step = Step(move.actor, move.op, WatchedArgs(args),  # type: ignore[arg-type]
                                        move.channel, as_watched[i])
                        else:
                            step = Step(move.actor, move.op, args, move.channel, caller)  # type: ignore[arg-type]
                        executor.index = level
                        applied += 1
                        if watch:
                            world_read.begin()
                            try:
                                res = executor.apply(step)
                            finally:
                                touched = world_read.taken()
                        else:
                            res = executor.apply(step)
                            touched = None
                        tallied: list[str] = []
                        hit = next((v for v in res.violations if self.counts(v, tallied)), None)
                        if tallied:
                            uncounted.update(tallied)
                        if hit is not None:
                            out.found = ((*node.path, _plain(res.step, args, caller)), hit)
                            return out
                        after = _track(move, node.live, res)
                        moved = not (snap is not None and after is node.live and not res.changes
                                     and snap.unchanged(executor))
                        effect: Effect | None = None
                        if not moved:
                            key = None
                        elif base is not None and snap is not None and snap.kernel_unchanged(executor):
                            key = base.after(res.changes, after)  # only the device moved: O(changed)
                            if after is node.live:  # a child world may take it (``Classes.inherit``)
                                added = executor.world.tainted - snap.tainted
                                effect = (res.changes, added or None)
                        else:
                            key = abstract_state(executor, after)
                        if moved and effect is None:  # more than the device and the taint moved: not handed on
                            touched = None
                        if watch and not _watched(executor.world):  # a map was replaced: not a class to hand on
                            assert snap is not None
                            touched = None
                            if not moved:  # (a moved world is restored, watched again)
                                _watch(executor.world)
                                snap.mark(executor.world)
                        if judged is not None:
                            mark = tuple(tallied)
                            kept = len(classes.entries)
                            for j in classes.add(args, i, mark, touched, effect):
                                judged[j] = mark
                            if len(classes.entries) == kept:  # not a class to hand on: no transcript
                                clean = False
                            elif clean and effect is not None:
                                met.append((transitions - start, args, caller, effect, uncounted - before))
                        if not moved:
                            continue  # the node's own world (a refusal, a read): nothing new, nothing to restore
                        if (noted := fresh(key, seen, mine, last)) is not None:
                            child = None
                            if not last:
                                delta = None
                                if memo is not None and snap is not None:  # (live handles are no world)
                                    delta = snap.changed(executor, res.changes)
                                child = _Node((*node.path, _plain(res.step, args, caller)), after, key,
                                              memo if delta is not None else None, delta)
                            out.new.append(_New(noted, child, transitions, applied, dict(uncounted)))
                        if snap is None:
                            _restore(executor, node.path)
                        else:
                            snap.restore(executor)
                if memo is not None:
                    memo[move.index] = _Memo(classes.entries, handles, _Transcript(
                        _union(classes.entries), transitions - start, uncounted - before, tuple(met))
                        if clean else None)
            return out
        finally:
            out.transitions, out.applied = transitions, applied


#: the forked workers' share: the expander, the level's frontier and depth, the states known before it, whether
#: it is the last level, and the flag that tells them the merge stopped (set before the fork, inherited: nothing
#: of it is pickled)
_SHARE: tuple[_Expander, list[_Node], int, set[Hashable], bool, Any] | None = None


def _expand_range(bounds: tuple[int, int]) -> list[_Expansion]:
    """In a worker: the frontier's nodes ``[lo, hi)``, in order, as one process expands them (a successor met
    earlier in the range is not new again: the merge has counted it by then)."""
    assert _SHARE is not None
    expander, frontier, level, seen, last, stop = _SHARE
    lo, hi = bounds
    met: set[Hashable] = set()
    both = _Either(seen, met)
    out = []
    for node in frontier[lo:hi]:
        if stop.value:  # the merge stopped: nobody reads this range's answer
            return []
        e = expander.expand(node, level, both, last)
        met.update(n.key for n in e.new)
        out.append(e)
        if e.found is not None or e.late:
            break
    return out


class _Either(Container[Hashable]):
    """In either of two sets."""

    def __init__(self, a: set[Hashable], b: set[Hashable]) -> None:
        self.a, self.b = a, b

    def __contains__(self, key: object) -> bool:
        return key in self.a or key in self.b


def _expansions(expander: _Expander, frontier: list[_Node], level: int, seen: set[Hashable], last: bool,
                jobs: int) -> Generator[_Expansion, None, None]:
    """Each node's expansion, in the frontier's order: here, or split over ``jobs`` forked processes.

    The processes are forked once the level's frontier and states are known,
    so they share them (and the executor) without pickling; each takes
    contiguous ranges of nodes, and the answers come back in the frontier's
    order, which the merge (``prove``) counts exactly as one process would.
    The iterator's ``close`` (the merge stopped: found, cap, time) tells them to
    stop at their next node, and waits for them.
    """
    if jobs <= 1 or len(frontier) < 2:
        for node in frontier:
            yield expander.expand(node, level, seen, last)
        return
    global _SHARE
    n = len(frontier)
    chunks = min(n, jobs * 8)  # several per process: node costs differ, so the ranges are taken as freed
    bounds = [(n * i // chunks, n * (i + 1) // chunks) for i in range(chunks)]
    context = multiprocessing.get_context("fork")
    stop = context.RawValue("b", 0)
    _SHARE = (expander, frontier, level, seen, last, stop)
    try:
        with context.Pool(min(jobs, chunks)) as pool:
            try:
                for part in pool.imap(_expand_range, bounds):
                    yield from part
            finally:
                # Stopped early or done: the workers end their ranges at the next node and the pool is joined,
                # not terminated. A worker killed while writing a large answer (a level's expansions with the
                # classes its children inherit) would leave half a message in the pipe, and the pool's result
                # thread would wait for the rest of it for ever.
                stop.value = 1
                pool.close()
                pool.join()
    finally:
        _SHARE = None


def prove(executor: Executor, depth: int, *, severities: frozenset[str] = frozenset({"hole"}),
          max_states: int = DEFAULT_STATES, time_limit: float | None = None,
          ignored: frozenset[str] = frozenset(), targets: frozenset[str] | None = None,
          restore: Literal["changed", "always"] = "changed",
          callers: Literal["grouped", "each"] = "grouped", jobs: int = 1, inherit: bool = True) -> Proof:
    """Explore every abstract state within ``depth`` steps of the probed world (see the module docstring).

    ``severities``: the violations that disprove (default ``hole``).
    ``ignored``: invariants not checked; ``targets``: if given, only these
    signatures disprove (a planted hole's test).  ``max_states`` (the states kept whole: every depth's
    but the last, whose states are counted by hash, ``HASHED`` times as many) and
    ``time_limit`` (seconds) end it early, as ``incomplete``.  ``restore="always"``
    replays the state's path after every step and computes every successor's
    state, refusals included: slower, and the reference the default's
    shortcuts (a snapshot instead of a replay; a step that moved nothing needs no
    restore and has no new state) are tested against.  ``callers="each"`` runs every
    step instead of one per step class (``fuzzer.watched``), the reference for those.
    ``jobs``: processes a level's nodes are split over (forked; ``cpus()`` uses them all); the
    answer is the one process's, to the state, transition and path (not the seconds).
    ``inherit=False``: no node takes its parent's classes (the module docstring, "Cross-state reuse"),
    the reference for those.
    """
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: at least one process expands the states")
    started, cpu = time.monotonic(), _cpu()
    deadline = None if time_limit is None else started + time_limit
    moves, _ = moves_of(executor)
    executor.reset()
    live: Live = {}
    for bundle, handle in executor.probed:
        live[bundle] = (*live.get(bundle, ()), handle)
    root = _Node((), live, abstract_state(executor, live))
    seen: set[Hashable] = {root.key}
    levels = [1]
    frontier = [root]
    transitions = applied = 0
    kept = 1  # states kept whole: all but the last depth's
    uncounted: Counter[str] = Counter()
    expander = _Expander(executor, moves, severities=severities, ignored=ignored, targets=targets,
                         shortcut=restore == "changed", grouped=callers == "grouped", deadline=deadline,
                         inherit=inherit)

    def result(outcome: Literal["proved", "found", "incomplete"], done: int, **kw: Any) -> Proof:
        return Proof(outcome, depth, len(seen), transitions, time.monotonic() - started,
                     _cpu() - cpu, tuple(levels),
                     uncounted=dict(uncounted), complete_depth=done, applied=applied, **kw)

    saved, executor.reached = executor.reached, Uncounted()  # no coverage: see fuzzer.watched
    try:
        for level in range(depth):
            following: list[_Node] = []
            reached = 0
            last = level == depth - 1
            each = _expansions(expander, frontier, level, seen, last, jobs)
            try:
                for e in each:
                    for new in e.new:
                        if new.key in seen:
                            continue
                        if len(seen) >= (kept + HASHED * max_states if last else max_states):
                            transitions, applied = transitions + new.transitions, applied + new.applied
                            uncounted.update(new.uncounted)
                            each.close()  # the workers end, so their CPU seconds count, before the figures
                            return result("incomplete", level, reason=f"the state cap ({cap(max_states, last)}) was "
                                          f"reached at depth {level + 1}")
                        seen.add(new.key)
                        reached += 1
                        if new.node is not None:
                            following.append(new.node)
                    transitions, applied = transitions + e.transitions, applied + e.applied
                    uncounted.update(e.uncounted)
                    if e.found is not None:
                        path, hit = e.found
                        each.close()
                        return result("found", level, steps=path, violation=_violation(executor, path, hit))
                    if e.late:
                        each.close()
                        return result("incomplete", level, reason=f"the time limit ({time_limit:g}s) ran "
                                      f"out at depth {level + 1}")
            finally:
                each.close()
            levels.append(reached)
            frontier = following
            kept = len(seen)
    finally:
        executor.reached = saved
    return result("proved", depth)


def _cpu() -> float:
    """CPU seconds of this process and of its children that ended (a proof's forked workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _union(entries: Sequence[Entry]) -> Touched:
    """Everything the classes touched (a record shared by many is looked at once)."""
    state: set[Any] = set()
    kernel: set[Any] = set()
    shadow: set[Any] = set()
    looked: set[int] = set()
    for entry in entries:
        touched = entry[4]
        if id(touched) not in looked:
            looked.add(id(touched))
            state.update(touched.state)
            kernel.update(touched.kernel)
            shadow.update(touched.shadow)
    return Touched(frozenset(state), frozenset(kernel), frozenset(shadow))


def _delta(changes: Sequence[tuple[str, Any, Any]], tainted: frozenset[str] | None, world: World,
           ) -> tuple[frozenset[Any], frozenset[Any], frozenset[Any]]:
    """The keys a step that changed only the device (``changes``) and perhaps the taint (``tainted``, the taint
    after it) changed of ``world``: the child's ``_Node.delta``."""
    return frozenset(k for k, _, _ in changes), taint_keys(world.tainted, tainted or world.tainted), frozenset()


def _watch(world: World) -> None:
    """The world's device state, kernel bookkeeping and shadow as ``WatchedMap`` s noting into ``world_read``."""
    world.device.state = WatchedMap(world.device.state, world_read.state)
    world.kernel = WatchedMap(world.kernel, world_read.kernel)
    world.shadow = WatchedMap(world.shadow, world_read.shadow)
    world.__class__ = WatchedWorld


def _watched(world: World) -> bool:
    """The world's maps are still the watched ones (a step may have replaced one with a plain ``dict``)."""
    return type(world.device.state) is WatchedMap and type(world.kernel) is WatchedMap \
        and type(world.shadow) is WatchedMap


def _plain(step: Step, args: dict[str, Any], caller: Caller | None) -> Step:
    """``step`` as a path holds it: with the plain arguments and caller it was made of, not the watched ones."""
    return attrs.evolve(step, args=args, caller=caller)


def _restore(executor: Executor, path: Sequence[Step]) -> None:
    """The world at the end of ``path``: reset, then the path replayed."""
    executor.reset()
    for step in path:
        executor.apply(step)


def _violation(executor: Executor, path: Sequence[Step], hit: Violation) -> Violation:
    """``hit`` as the whole path shows it, replayed from reset (its step number is the path's)."""
    executor.reset()
    for step in path:
        for v in executor.apply(step).violations:
            if v.signature == hit.signature and v.step == len(path):
                return v
    return hit  # pragma: no cover - the executor is deterministic
