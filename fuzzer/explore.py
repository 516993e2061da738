"""The native search: draw steps from the declarations at executor speed.

Hypothesis's stateful engine costs about 0.5 ms a step and spreads its draws
the way unit tests want (small, first, argument-free choices, rules switched
off per test case).  This search draws each step straight from the
subsystem's declarations (``Move``):

* only moves whose handle arguments have live handles, so no draw is wasted
  on a command that cannot be built;
* every sequence opens the channels that declare an opener (DEVX's
  ALLOC_UCONTEXT), as the Hypothesis machine's ``initialize`` rule does;
* a drawn sequence ends as its process exits: each channel's closer
  (``Channel.closer``: DEVX's CLOSE, the uverbs file's release) runs on every
  handle still open, newest first, so a create that nothing destroys shows
  without waiting for a drawn CLOSE after it (``EXIT``);
* every sequence starts with the handles the probe published
  (``world.publish``), and a reaction's handles join the live ones after
  its step, as a command's or a kernel action's do;
* integers come from the parameter's boundaries (lo, lo+1, hi-1, hi, 0, 1)
  and small powers of two a quarter of the time, where off-by-one checks
  live, from its small values (0..31) another quarter, else uniformly;
* a quarter of the arguments and half of the callers are ones a step of the
  same move was carried out with before (chains are built from steps that
  work; more argument reuse made holes that need a new value slower).

It also counts *behaviours*: what a step did, abstracted from its arguments
(the move, the policy's verdict and rule, the device's and kernel's answer,
whether state changed).  The count is the campaign's coverage figure.  Its
coverage of the search space is the distinct abstract states
(``fuzzer.abstract``) and transitions (state, move, state) it saw, and when
it last saw a new state, followed through one sequence in ``FOLLOW_EVERY``.

State-guided (issue 20): half the sequences start from a kept world, restored
from its snapshot (``fuzzer.snapshot``) rather than replayed, and draw a
sequence's worth of steps from there.  A world is kept when it shows a fact
no kept world showed (``fuzzer.abstract.state_facts``); a sequence starts, three times in four
(``RARE``), at a world drawn with weight by how rare its facts are now (``Explorer.rarity``), else at
the least tried of ``TOURNAMENT`` kept worlds (the newest of equals).  Measured on the planted deep
holes (seeds 1-8, sequences to bug): "UNLOCK after cold reset" went from
never in 18,000 sequences to a median of about 1,500; branching from every
new *abstract state* instead drowned in noise (7,000 states in 8,000
sequences on cxl linux-raw, 1/3 found), as did keeping states made of "changed
or not" per field (thousands of combinations).  Weighting worlds by the new
worlds their branches kept, more guided sequences (0.75) or shorter ones
(half a sequence) were no better or worse, and so was starting a quarter of the guided
sequences from the 16 newest worlds (the 5-step UNLOCK, seeds 1-30: median 3,547 sequences and
a miss in 30,000, against 2,057).

Where the 5-step UNLOCK on all-ram spends its sequences (seeds 1-10, the kept worlds followed): the world with
the nvdimm bound over a locked device is kept after a median of about 300 sequences; in the three slowest seeds
most of the rest (6,718 of 8,704, 4,439 of 4,633, 1,629 of 1,819) is the wait for a guided sequence to start there
(one of about 140 kept worlds) and draw UNLOCK with the passphrase set (one of three).  Weighting the start by
the rarity of a world's facts (``RARE``) is what helped (its figures are there).  Measured against that and rejected (sequences to bug on it, the explorer's seeds;
without: seeds 1-30 median 2,057 with a miss in 20,000, seeds 31-90 median 2,414, mean 4,023): first replaying the
last one or two steps of another kept world (to join two one-fact worlds: seeds 1-30 median 2,468, seeds 31-90
2,120 with two misses); starting half or 0.8 of the guided sequences from worlds whose new fact was about the
kernel's side (1,997 with two misses, 3,201: most worlds qualify); one step of every move from each new world
(median 2,648 on seeds 1-10, against 1,242); not keeping worlds for device-only facts (seeds 31-90 median 2,207, mean
3,502, but cs-guilty and DEVX 2019 1.3-1.6x slower on average).  A fact for a bookkeeping table whose entries share
a value (a render file holding another client's buffer: the same object in two files' tables) helped the render-node
buffer (seeds 11-40 median 67 against 103) and cs-guilty (99 against 128), but the 5-step UNLOCK took 5,951 to
14,534 sequences on seeds 2-5 (317 to 7,191 without).  Drawing from a random half of the moves per
sequence (swarm testing) was slower on the shallow holes (DEVX general command, 200 seeds: mean 10.9 against 9.8;
render-node buffer: 135 against 111).

Measured and rejected before (see the note on issue 7): keeping sequences that
reached a new behaviour, or a new pair of consecutive behaviours, in a pool
and extending, mutating or splicing them, as syzkaller and AFL do.  On the
4-step DEVX confusion that needed 2-10x more steps than drawing afresh: the
new-behaviour signal is dominated by harmless variety (each refusal reason
is a behaviour), and replaying kept prefixes costs steps that explore
nothing.  Everything here is a function of the seed; the executor stays the
only judge.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import attrs

from fuzzer.abstract import abstract_state, state_facts
from fuzzer.cmplog import LOG, traced_args
from fuzzer.errors import ModelError
from fuzzer.executor import Executor, StepResult
from fuzzer.minimize import CHECK_EVERY
from fuzzer.snapshot import Snapshot
from fuzzer.spec import ABSENT, Caller, CallerSpace, Channel, Param, Violation
from fuzzer.world import Step, World

#: Share of int draws taken from the parameter's boundaries and small powers of two.
BOUNDARY = 0.25
#: Small powers of two among the boundaries (sizes, counts, flag bits).
POWERS = (2, 4, 8, 16, 32, 64)
#: Share of int draws taken uniformly from the small values (0..SMALL_TOP): ids, indexes,
#: counts and levels live there, and a parameter declared 0-255 often matters at 0-31 (issue 20).
SMALL = 0.25
SMALL_TOP = 31
#: Share of argument and caller draws taken from those that worked before.
REUSE = 0.5
#: Share of argument draws taken from those that worked before (``REUSE`` is the callers'):
#: measured on the planted holes (issue 20, seeds 1-10), 0.5 drew the same accepted values so often
#: that holes needing a new one took longer (DEVX uid 0: median 55 sequences, 23 at 0.25), and
#: learning only from steps with a new behaviour was no better (66).
REUSE_VALUE = 0.25
#: Values remembered per argument (and callers per move).
REMEMBER = 16
#: Share of drawn steps run with their integer arguments traced (``fuzzer.cmplog``): what the policy, transport,
#: driver, device or an invariant compared them with is learnt per parameter.
TRACE = 0.125
#: Share of int draws taken from the values the parameter was compared with (and their neighbours),
#: once there are any; operands among the parameter's boundaries are drawn anyway and not learnt.
#: Measured (median sequences to bug, seeds 41-140): a key of one in 2^32 (``tests/vault.py``) is found in
#: about ten sequences and never without; on the planted CXL holes, where the models compare few
#: arguments with anything, 0.1 is within noise (all-ram exclusive-cmds 95.5 against 85 without tracing,
#: UNLOCK after cold reset 55.5 against 62) and 0.2 was slightly worse (107, 67.5).
COMPARED = 0.1
#: Compared values remembered per parameter (a full list replaces one at random).
COMPARED_KEEP = 24
#: Coverage follows the abstract state through one sequence in this many: computing it costs
#: about a step (``fuzzer.abstract``), and following every sequence ran the search at 0.4-0.7 of
#: its speed; one in four keeps the count's growth and its plateau visible at 0.7 (rdma linux-devx)
#: to 0.98 (cxl linux-fwctl) of it.
FOLLOW_EVERY = 4
#: Share of sequences that start from a world in the archive (one that reached a new abstract state),
#: restored from its snapshot, instead of from the probed world.
GUIDED = 0.5
#: Worlds the archive keeps (a snapshot costs a few KB); a full archive replaces its most chosen.
ARCHIVE = 2048
#: Steps a guided sequence draws after its start, as a share of the subsystem's ``steps``; a world is kept only
#: while its path is shorter than ``DEEPEST`` times ``steps`` (findings through it are minimized anyway), and
#: never longer than ``DEEPEST_STEPS`` (``--steps 100000``: a kept path is copied, and a finding holds it whole).
CONTINUE = 1.0
DEEPEST = 3
DEEPEST_STEPS = 200
#: Whether a step that moved only device fields nobody in the kernel owns or believes is checked for new facts.
DEVICE_FACTS = True
#: Worlds compared when choosing where a guided sequence starts: the least chosen of them wins.
TOURNAMENT = 4
#: Share of guided starts drawn with weights by rarity (``Explorer.rarity``) instead of by the tournament: the world
#: a chain's next link needs is one of a hundred or more kept ones, and its fact is one few worlds show.
#: Measured (issue 20, sequences to bug, medians, campaign seeds 1-10 unless said; before -> after): the 5-step
#: UNLOCK on all-ram 1,714 -> 952 (slowest seed 29,001 -> 7,191; seeds 11-40: 3,789 -> 1,511), UNLOCK after cold
#: reset 1,514 -> 1,097 (seeds 11-40: 1,461 -> 1,260), cs-guilty 343 -> 89, DEVX 2019 136 -> 110, all-ram
#: disabled-raw SET_LSA 435 -> 338; worse on all-ram exclusive-cmds (66 -> 124) and the render-node buffer (92 ->
#: 118; seeds 11-40: 103, where the walk needs 122 over seeds 1-40).  0.5 and 1.0 were worse than 0.75 on the
#: 5-step UNLOCK (medians 1,602 and 1,874), and so were weighting a world by its rarest fact alone (3,184) and
#: dividing its weight by the square root of its starts so far (seeds 11-40: 2,512, though the render-node buffer
#: took 80).
RARE = 0.75
#: Whether a world is also kept right after a move on objects first succeeds (``Event``); its rarity is one over
#: the times that behaviour was seen since.  The abstract facts count a bundle's live handles but not what they
#: were made by or used on: a render file's buffer opened by another client's flink name is one more buffer, as a
#: GEM_CREATE's is.  Measured (median sequences to bug, campaign seeds 11-60, then 1-10; without -> with): the
#: render-node buffer 103 -> 53.5 (118 -> 60), DEVX 2019 84.5 -> 69, the 5-step UNLOCK 1,718 -> 1,778 (one miss in
#: 20,000 sequences, against none), UNLOCK after cold reset 1,331 -> 1,433, all-ram exclusive-cmds 84 -> 89.5,
#: cs-guilty 138 -> 190 (the walk needs 860).  Keeping a world at the first success of *every* move made the
#: 5-step UNLOCK slower (2,028; 952 -> 1,813 on seeds 1-10), and counting live handles by the move that made them
#: (a state fact) made the render-node buffer slower (154 on seeds 1-10).
EVENTS = True
#: Share of drawn sequences that end with each channel's closer on every handle still open (``Explorer.exit``).
#: Measured on the DEVX leaks (median sequences to bug over campaign seeds 1-200, without -> with; the walk's
#: medians are 8 and 5): devx-general-cmd 7 -> 4, devx-obj-create-cmd 3 -> 2; 0.5 was between (5, 2); DEVX 2019
#: (seeds 1-40) 154.5 -> 87.
EXIT = 1.0
#: Guided starts between two recomputations of the rarity weights (and at each newly kept world).
REWEIGHT = 64
#: Abstract states and transitions counted at most: about 60 bytes each, so the counts of an hours-long
#: campaign stay under 50 MB; past a cap the count says "at least".
STATES_CAP = 1 << 18
TRANSITIONS_CAP = 1 << 19
#: A growth sample is kept each time the number of abstract states has grown by this factor.
GROWTH_STEP = 1.25


def _targets(produces: str | tuple[str, ...]) -> tuple[str, ...]:
    """The bundles a command's handle goes to: ``""`` (produces nothing) is none, as in ``machine.make_rule``."""
    return tuple(b for b in ((produces,) if isinstance(produces, str) else produces) if b)


def callers_of(space: CallerSpace, channel: Channel) -> tuple[Caller, ...]:
    """Every caller the channel's caller space and scopes allow, least privileged first."""
    space = channel.callers or space
    scopes: tuple[str | None, ...] = channel.scopes or (None,)
    return tuple(
        Caller(caps, scope, lockdown, switches)
        for caps in space.caps
        for scope in scopes
        for lockdown in space.lockdown
        for switches in space.switches
    )


#: Share of size draws at the size's natural value: most steps must still work for
#: sequences to reach deep state; the rest go to the boundaries (and a few anywhere).
NATURAL = 0.9


def _edges(lo: int, hi: int) -> tuple[int, ...]:
    """An int parameter's boundaries, their neighbours, 0, 1 and small powers of two that lie in ``[lo, hi]``."""
    return tuple(sorted({v for v in (lo, lo + 1, hi - 1, hi, 0, 1, *POWERS) if lo <= v <= hi}))


def _drawer(p: Param) -> Callable[[random.Random, dict[str, Any]], Any]:
    """Draw a value of ``p``; sizes see the arguments drawn before them (their natural value may depend on them)."""
    if p.kind == "bool":
        return lambda rng, args: rng.random() < 0.5
    if p.kind == "choice":
        choices = p.choices
        return lambda rng, args: choices[int(rng.random() * len(choices))]
    if p.kind == "int":
        lo, hi = p.lo, p.hi
        edges = _edges(lo, hi)
        # small values: 0..SMALL_TOP where the range has them, else its first SMALL_TOP + 1
        small_lo = max(lo, 0) if lo <= SMALL_TOP and hi >= 0 else lo
        small_hi = min(hi, small_lo + SMALL_TOP)

        def draw_int(rng: random.Random, args: dict[str, Any]) -> int:
            r = rng.random()
            if r < BOUNDARY:
                return edges[int(rng.random() * len(edges))]
            if r < BOUNDARY + SMALL:
                return rng.randint(small_lo, small_hi)
            return rng.randint(lo, hi)

        return draw_int
    if p.kind == "size":
        lo, hi, marks = p.lo, p.hi, p.marks
        natural = p.natural if callable(p.natural) else (lambda args: lo)

        def draw_size(rng: random.Random, args: dict[str, Any]) -> int:
            r = rng.random()
            n = min(max(natural(args), lo), hi)
            if r < NATURAL:
                return n
            if r < NATURAL + 0.08:
                near = [v for v in (n - 1, n + 1) if lo <= v <= hi]
                pool = [int(m) for m in marks] + near
                return pool[int(rng.random() * len(pool))] if pool else n
            return rng.randint(lo, min(hi, max(2 * n, 64)))

        return draw_size
    raise ValueError(f"parameter {p.name!r} has unknown kind {p.kind!r}")


@attrs.frozen
class Move:
    """One thing a sequence can do: a kernel action, or a command on one channel."""

    index: int
    actor: str
    op: str
    channel: str
    params: tuple[Param, ...]
    produces: tuple[str, ...]
    callers: tuple[Caller, ...]
    #: (position in params, bundle, consumes) for each handle parameter
    handles: tuple[tuple[int, str, bool], ...]
    #: whether some handle parameter consumes its handle
    consumes: bool = attrs.field(init=False, eq=False, repr=False)
    drawers: tuple[Callable[[random.Random, dict[str, Any]], Any] | None, ...] = attrs.field(eq=False, repr=False)

    @consumes.default
    def _consumes(self) -> bool:
        return any(c for _, _, c in self.handles)


def closers_of(executor: Executor, moves: Sequence[Move]) -> list[Move]:
    """The moves that are a channel's ``closer``."""
    closers = {(c.name, c.closer) for c in executor.subsystem.channels if c.closer}
    return [m for m in moves if m.actor == "user" and (m.channel, m.op) in closers and m.consumes]


def moves_of(executor: Executor) -> tuple[list[Move], list[int]]:
    """The moves of an executor's subsystem under its policy, and the channel openers among them."""
    sub, policy = executor.subsystem, executor.policy
    channels = {c.name: c for c in sub.channels}
    moves: list[Move] = []

    def add(actor: str, op: str, channel: str, params: tuple[Param, ...], produces: Any,
            callers: tuple[Caller, ...]) -> int:
        handles = tuple((i, p.bundle, p.consumes) for i, p in enumerate(params) if p.kind == "handle")
        drawers = tuple(None if p.kind == "handle" else _drawer(p) for p in params)
        moves.append(Move(len(moves), actor, op, channel, params, _targets(produces), callers, handles, drawers))
        return len(moves) - 1

    for a in sub.actions:
        add("kernel", a.name, "", a.params, a.produces, ())
    openers: list[int] = []
    callers = {name: callers_of(sub.callers, c) for name, c in channels.items() if name in policy.channels}
    for (channel, op), cmd in sorted(executor.user_index.items()):
        if channel not in policy.channels:
            continue
        idx = add("user", op, channel, executor.params[(channel, op)], cmd.produces, callers[channel])
        if channels[channel].opener == op:
            openers.append(idx)
    return moves, openers


def kernel_mark(world: World) -> tuple[Any, ...]:
    """A cheap fingerprint of the kernel's side: what a step that adds a belief or replaces or grows
    a bookkeeping entry changes (values changed in place deep inside an entry are missed)."""
    return (len(world.shadow), world.tainted,
            *((id(v), len(v)) if isinstance(v, (dict, list, set)) else id(v) for v in world.kernel.values()))


def _report(steps: list[Step], result: StepResult, report: Callable[[list[Step], list[Violation]], None],
            ignored: Callable[[Violation], bool]) -> None:
    """Hand ``report`` the sequence so far and the step's violations that are not ``ignored``, if any."""
    new = [v for v in result.violations if not ignored(v)]
    if new:
        report(list(steps), new)


@attrs.frozen
class Event:
    """A fact about a step rather than a world (``EVENTS``): the first time a move on objects (one that takes or
    makes a handle) succeeded and changed something, as ``Explorer.behaviours`` keys it."""

    key: tuple[Any, ...]


@attrs.define(eq=False)
class Cell:
    """A world that reached an abstract state never seen before: a guided sequence can start there."""

    #: the steps from the probed world that reached it (a finding starting here reports them too)
    steps: list[Step]
    #: the live handles at its end
    live: dict[str, list[Any]]
    snapshot: Snapshot
    #: its abstract state's number
    state: int
    #: the facts it was kept for (no kept world showed them before): never empty
    facts: tuple[Hashable, ...]
    #: times a sequence started here
    chosen: int = 0


#: Kept worlds a search hands on (``Explorer.learnt``), and the steps of their paths in all: a cluster slice's
#: successor replays them (measured after 10 s of search: cxl linux-raw 139 worlds, 4,643 steps, 0.13 s CPU, 83 KB
#: pickled; rdma linux-devx 137 of 217 worlds within the steps cap, 0.33 s, 113 KB; 0.6 s with twice the cap).
CARRY_WORLDS = 256
CARRY_STEPS = 10_000


MoveKey = tuple[str, str, str]


@attrs.frozen
class Learnt:
    """What one search learnt that the next one on the same policy and device can start from (picklable data).

    A cluster campaign runs an entry as slices of ten seconds (``fuzzer.slices``); without this each slice
    started from nothing and the state-guided search never climbed further than one slice gets.  Worlds
    travel as the paths that reached them (steps are data; a snapshot holds a plugin's own objects) and are
    rebuilt by replaying them (the executor is deterministic).
    """

    #: the kept worlds' paths, the least tried first
    paths: tuple[tuple[Step, ...], ...] = ()
    #: per move (actor, channel, op): the values per parameter and the callers it was carried out with
    worked: tuple[tuple[MoveKey, tuple[tuple[Any, ...], ...], tuple[Caller, ...]], ...] = ()
    #: per move: the values each parameter was compared with (``fuzzer.cmplog``)
    compared: tuple[tuple[MoveKey, tuple[tuple[int, ...], ...]], ...] = ()
    #: per channel: the callers some command on it was carried out with
    channel_callers: tuple[tuple[str, tuple[Caller, ...]], ...] = ()


class Explorer:
    """Runs sequences on ``executor`` and reports violations; one instance per campaign."""

    def __init__(self, executor: Executor, *, seed: int, steps: int) -> None:
        self.executor = executor
        self.rng = random.Random(seed)
        self.steps = steps
        self.moves, self.openers = moves_of(executor)
        self._per_move()
        #: behaviour -> times seen (the coverage figure)
        self.behaviours: dict[tuple[Any, ...], int] = {}
        #: live handles per bundle in the sequence being run, oldest first
        self.live: dict[str, list[Any]] = {}
        #: per channel: callers some command on it was carried out with
        self.channel_callers: dict[str, list[Caller]] = {}
        #: called with the prefix that reached a behaviour never seen before (``--db`` keeps it)
        self.on_new_behaviour: Callable[[list[Step]], None] | None = None
        #: coverage of the search space: the hashes of the abstract states seen (``fuzzer.abstract``; a state
        #: itself is a few KB, and cxl linux-raw meets about a thousand new ones a second: only hashes are kept)
        self.states: set[int] = set()
        #: hashes of the (state, move, state) transitions seen
        self.transitions: set[int] = set()
        #: whether a count reached its cap (``STATES_CAP``, ``TRANSITIONS_CAP``) and stopped there
        self.capped = False
        self.started = time.monotonic()
        #: (seconds since the start, states) each time the count passed the next sample mark
        self.growth: list[tuple[float, int]] = []
        #: seconds since the start when the last new state was seen
        self.last_new = 0.0
        #: the state every sequence starts in (the probe is deterministic): computed once
        self._initial: int | None = None
        #: sequences run (the coverage follows one in ``FOLLOW_EVERY``)
        self._run = 0
        #: the longest path a kept world may have
        self.deepest = min(DEEPEST * steps, DEEPEST_STEPS)
        #: worlds that reached a new abstract state (``GUIDED``)
        self.archive: list[Cell] = []
        #: the facts (``fuzzer.abstract.state_facts``) some kept world showed
        self.facts: set[Hashable] = set()
        #: decides which steps are traced, apart from ``rng`` so that tracing alone does not change the draws
        self.trace_rng = random.Random(seed * 2 + 1)
        #: per fact: the worlds that showed it among those checked for new facts (``RARE``)
        self.fact_count: dict[Hashable, int] = {}
        #: each kept world's rarity, recomputed every ``REWEIGHT`` weighted starts (None: stale)
        self._weights: list[float] | None = None
        self._weighted = 0

    def _per_move(self) -> None:
        """The tables kept per move, numbered as ``moves`` (made afresh when the moves change: ``use_moves``)."""
        self.free = [m for m in self.moves if not m.handles]
        self.by_key = {(m.actor, m.channel, m.op): m for m in self.moves}
        #: per move: values per parameter, and callers, of steps the device or kernel carried out
        self.worked: list[tuple[list[list[Any]], list[Caller]]] = [
            ([[] for _ in m.params], []) for m in self.moves]
        #: per move, per parameter: values it was compared with (``TRACE``, ``COMPARED``)
        self.compared: list[list[list[int]]] = [[[] for _ in m.params] for m in self.moves]
        #: per move: its int parameters (traced).  Not sizes: their natural value, its neighbours and marks are
        #: what rules compare them with, and drawing the compared ones more often broke more steps (the deep CXL
        #: holes needed 1.5-2x the sequences: 2,612 against 1,144 for the 5-step UNLOCK, seeds 1-10)
        self.traceable = [frozenset(p.name for p in m.params if p.kind == "int") for m in self.moves]
        self.closers = closers_of(self.executor, self.moves)

    def sequence(self, report: Callable[[list[Step], list[Violation]], None],
                 ignored: Callable[[Violation], bool], expired: Callable[[], bool] | None = None,
                 given: Sequence[Step] | None = None) -> None:
        """Run one sequence; ``report(prefix, violations)`` for violations not ``ignored``.

        ``expired`` is asked every ``CHECK_EVERY`` steps and ends the sequence
        early: with ``--steps 100000`` one sequence takes seconds.
        ``given``: run these steps instead of drawing (a rerun's stored sequences,
        ``fuzzer.database``); they are learnt from as drawn ones are.
        """
        ex = self.executor
        self._run += 1
        cell = self.choose() if given is None and self.archive and self.rng.random() < GUIDED else None
        if self._initial is None:
            ex.reset()
            self.live = self.probed()
            self._initial = self.state_number()
        if cell is not None:
            # branch from a world that reached a new abstract state: its snapshot, not its path replayed
            cell.chosen += 1
            cell.snapshot.restore(ex)
            ex.index = len(cell.steps)
            self.live = {b: list(hs) for b, hs in cell.live.items()}
            steps = list(cell.steps)
            here = cell.state
        else:
            ex.reset()
            self.live = self.probed()
            steps = []
            here = self._initial
        behaviours = self.behaviours
        # the sequences coverage follows: every guided one (the archive grows from them) and one in FOLLOW_EVERY
        follow = cell is not None or self._run % FOLLOW_EVERY == 1 or FOLLOW_EVERY == 1
        transitions = self.transitions
        last = kernel_mark(ex.world)
        by_key = self.by_key if given is not None else None
        end = len(given) if given is not None else (
            len(steps) + max(1, int(self.steps * CONTINUE)) if cell is not None else self.steps)
        for i in range(len(steps), end):
            if expired is not None and i % CHECK_EVERY == CHECK_EVERY - 1 and expired():
                return
            if by_key is not None and given is not None:
                step = ex.complete(given[i])  # a size left out: natural
                found = by_key.get((step.actor, step.channel, step.op))
                if found is None:  # a command this policy's channels do not carry
                    return
                move = found
            else:
                move = self.moves[self.openers[i]] if i < len(self.openers) else self.pick()
                step = self.draw(move)
            if given is None and self.traceable[move.index] and self.trace_rng.random() < TRACE:
                result = self.traced(move, step)
            else:
                result = ex.apply(step)
            steps.append(step)
            self.track(move, result)
            d, rep = result.decision, result.reply
            # Computing the state costs as much as a step (measured: at every step the search runs at
            # half speed): only where the kernel's side moved (a reaction, taint, a change to a field the
            # kernel believes, a belief or a bookkeeping entry added or replaced); a sequence's end
            # catches what this cheap test misses (a value changed in place deep in the bookkeeping)
            if follow:
                mark = kernel_mark(ex.world)
                moved = (mark != last or result.reactions or (d is not None and d.taint)
                         or (result.changes and self._believed(result))
                         or result.published or move.consumes)  # live handle counts are in the state
                last = mark
                if moved:
                    known = len(self.states)
                    there = self.state_number()
                    # a new fact comes with a new abstract state (they differ only where a device-owned value
                    # changes class with nothing else moving): looking for facts only then costs a third
                    if given is None and len(steps) < self.deepest and (len(self.states) > known
                                                                                 or self.capped):
                        self.cell(steps, there)
                else:
                    there = here
                    if DEVICE_FACTS and result.changes and given is None and len(steps) < self.deepest:
                        # the device alone moved (a field the kernel neither owns nor believes): its facts only
                        self.cell(steps, None, tuple(k for k, _, _ in result.changes))
                if len(transitions) < TRANSITIONS_CAP:
                    transitions.add(hash((here, move.index, there)))
                else:
                    self.capped = True
                here = there
            key = (move.index, None if d is None else (d.allowed, d.rule),
                   None if rep is None else (rep.rc, rep.errno), bool(result.changes))
            seen = behaviours.get(key)
            behaviours[key] = 1 if seen is None else seen + 1
            if seen is None and self.on_new_behaviour is not None:
                self.on_new_behaviour(list(steps))
            if (EVENTS and seen is None and given is None and (move.handles or move.produces) and key[2] == (0, 0)
                    and (d is None or d.allowed) and (result.changes or result.published)
                    and len(steps) < self.deepest):
                self.cell(steps, None, event=Event(key))
            if (d is None or d.allowed) and rep is not None and not rep.rc and not rep.errno:
                self.learn(move, step)
            if result.violations:
                _report(steps, result, report, ignored)
        if steps and follow:
            self.state_number()  # what a driver kept in the kernel alone, unseen by the cheap test above
        if given is None and self.closers and self.rng.random() < EXIT:
            self.exit(steps, report, ignored)

    def exit(self, steps: list[Step], report: Callable[[list[Step], list[Violation]], None],
             ignored: Callable[[Violation], bool]) -> None:
        """End the sequence as a process's exit does: each channel's closer on each handle still open, newest first."""
        ex = self.executor
        for move in self.closers:
            i, bundle, _ = next(h for h in move.handles if h[2])
            name = move.params[i].name
            for handle in reversed(list(self.live.get(bundle, ()))):
                step = self.draw(move)
                step = attrs.evolve(step, args={**step.args, name: handle})
                result = ex.apply(step)
                steps.append(step)
                self.track(move, result)
                if result.violations:
                    _report(steps, result, report, ignored)

    def cell(self, steps: list[Step], state: int | None, keys: tuple[str, ...] | None = None,
             event: Event | None = None) -> None:
        """Keep the executor's world, which reached abstract state ``state`` (None: not computed) through
        ``steps``, if it shows a fact no kept world showed (``state_facts``; of the device ``keys`` only, when
        given; the ``event`` alone, when given); a full archive replaces the most chosen of ``TOURNAMENT`` of its
        worlds (one that many sequences have branched from already)."""
        facts, count = self.facts, self.fact_count
        if event is not None:
            shown: list[Hashable] = [event]
        else:
            shown = list(state_facts(self.executor, self.live, keys))
            for f in shown:
                count[f] = count.get(f, 0) + 1
        new_facts = [f for f in shown if f not in facts]
        if not new_facts:
            return
        facts.update(new_facts)
        if state is None:
            state = self.state_number()
        new = Cell(list(steps), {b: list(hs) for b, hs in self.live.items()}, Snapshot(self.executor.world), state,
                   tuple(new_facts))
        self._weights = None
        archive = self.archive
        if len(archive) < ARCHIVE:
            archive.append(new)
            return
        rng = self.rng
        picks = [int(rng.random() * len(archive)) for _ in range(TOURNAMENT)]
        archive[max(picks, key=lambda j: archive[j].chosen)] = new

    def choose(self) -> Cell:
        """Where a guided sequence starts: the least chosen of ``TOURNAMENT`` worlds drawn from the archive, so
        new worlds (the frontier) are tried soon and none much more often than the rest; of equally chosen ones,
        the newer (a chain's next link is kept after its last: measured, seeds 1-8, sequences to bug, medians:
        the 5-step all-ram UNLOCK 950 against 4,800 with 3 misses, DEVX 2019 76 against 121, cs-guilty 91
        against 183, the others alike).  A share ``RARE`` of the starts is drawn by ``rarity`` instead."""
        rng, archive = self.rng, self.archive
        n = len(archive)
        if RARE and rng.random() < RARE:
            self._weighted += 1
            if self._weights is None or self._weighted % REWEIGHT == 0:
                self._weights = [self.rarity(c) for c in archive]
            return rng.choices(archive, self._weights)[0]
        i = int(rng.random() * n)
        for _ in range(TOURNAMENT - 1):
            j = int(rng.random() * n)
            if (archive[j].chosen, -j) < (archive[i].chosen, -i):  # ties: the newer world
                i = j
        best = archive[i]
        return best

    def rarity(self, cell: Cell) -> float:
        """How rare the facts ``cell`` was kept for are now: the sum of one over the worlds that showed each.

        A fact every branch of the world shows again (a field's class that most steps reach) stops pulling
        sequences there; one that few worlds show keeps pulling them (AFL's rare-branch targeting, FairFuzz)."""
        count, behaviours = self.fact_count, self.behaviours
        return sum(1 / (behaviours[f.key] if isinstance(f, Event) else count[f]) for f in cell.facts)

    def use_moves(self, moves: Sequence[Move]) -> None:
        """Draw only ``moves`` (a subset of ``moves_of``'s, possibly with fewer callers), renumbered, with every
        per-move table this search keeps made afresh for them (the live conformance run leaves out kernel
        actions a guest cannot do)."""
        openers = [(self.moves[i].channel, self.moves[i].op) for i in self.openers]
        self.moves = [attrs.evolve(m, index=i) for i, m in enumerate(moves)]
        self._per_move()
        where = {(m.channel, m.op): m.index for m in self.moves if m.actor == "user"}
        self.openers = [where[k] for k in openers if k in where]

    def learnt(self) -> Learnt:
        """What this search learnt, as data another search can ``adopt`` (``CARRY_WORLDS``, ``CARRY_STEPS``)."""
        paths: list[tuple[Step, ...]] = []
        budget = CARRY_STEPS
        for cell in sorted(self.archive, key=lambda c: c.chosen):
            if len(paths) >= CARRY_WORLDS:
                break
            if len(cell.steps) <= budget:
                paths.append(tuple(cell.steps))
                budget -= len(cell.steps)
        worked, compared = self.worked, self.compared
        return Learnt(
            tuple(paths),
            tuple((k, tuple(tuple(v) for v in worked[m.index][0]), tuple(worked[m.index][1]))
                  for k, m in self.by_key.items() if worked[m.index][1] or any(worked[m.index][0])),
            tuple((k, tuple(tuple(v) for v in compared[m.index])) for k, m in self.by_key.items()
                  if any(compared[m.index])),
            tuple((ch, tuple(cs)) for ch, cs in sorted(self.channel_callers.items())),
        )

    def adopt(self, learnt: Learnt) -> int:
        """Start from what another search learnt: its argument values, callers and compared values for the
        moves this policy has, and its kept worlds, rebuilt by replaying their paths (a path this executor
        cannot run the same way -- another policy's command -- is skipped).  Returns the worlds kept."""
        for k, values, callers in learnt.worked:
            move = self.by_key.get(k)
            if move is not None and len(values) == len(move.params):
                mine, my_callers = self.worked[move.index]
                for seen, vs in zip(mine, values, strict=True):
                    seen.extend(v for v in vs if v not in seen and len(seen) < REMEMBER)
                my_callers.extend(c for c in callers if c not in my_callers and c in move.callers)
        for k, compared in learnt.compared:
            move = self.by_key.get(k)
            if move is not None and len(compared) == len(move.params):
                for known, vs in zip(self.compared[move.index], compared, strict=True):
                    known.extend(v for v in vs if v not in known and len(known) < COMPARED_KEEP)
        for channel, callers in learnt.channel_callers:
            if channel in self.executor.policy.channels:
                shared = self.channel_callers.setdefault(channel, [])
                shared.extend(c for c in callers if c not in shared and len(shared) < REMEMBER)
        ex = self.executor
        for path in learnt.paths:
            ex.reset()
            self.live = self.probed()
            for step in path:
                move = self.by_key.get((step.actor, step.channel, step.op))
                if move is None or ex.validate(step) is not None:
                    break
                self.track(move, ex.apply(step))
            else:
                if len(path) < self.deepest:
                    self.cell(list(path), None)
        ex.reset()
        self.live = self.probed()
        return len(self.archive)

    def traced(self, move: Move, step: Step) -> StepResult:
        """Run ``step`` with its int arguments traced (``fuzzer.cmplog``), and learn what they were compared with.

        The sequence keeps ``step`` itself (plain ints): findings and corpus files never hold a traced value."""
        token = LOG.begin()
        try:
            result = self.executor.apply(attrs.evolve(step, args=traced_args(step.args, self.traceable[move.index],
                                                                               token)))
        finally:
            seen = LOG.end()
        if seen:
            self.learn_compared(move, seen)
        return result

    def learn_compared(self, move: Move, seen: Sequence[tuple[str, int]]) -> None:
        """Keep each operand an argument of ``move`` was compared with, and its neighbours, for that parameter."""
        index = {p.name: i for i, p in enumerate(move.params)}
        rng = self.rng
        for name, value in seen:
            i = index.get(name)
            if i is None:
                continue
            p, known = move.params[i], self.compared[move.index][i]
            drawn = _edges(p.lo, p.hi)  # drawn anyway
            for v in (value, value - 1, value + 1):
                if not p.lo <= v <= p.hi or v in known or v in drawn or v in p.marks:
                    continue
                if len(known) < COMPARED_KEEP:
                    known.append(v)
                else:
                    known[int(rng.random() * len(known))] = v

    def _believed(self, result: StepResult) -> bool:
        """Whether the step changed a device key the kernel holds a belief about (or held one before)."""
        shadow = self.executor.world.shadow
        return any(k in shadow or (b is not ABSENT and a is ABSENT) for k, b, a in result.changes)

    def state_number(self) -> int:
        """The hash of the executor's abstract state now; a new one is counted and its time noted."""
        number = hash(abstract_state(self.executor, self.live))
        states = self.states
        if number not in states:
            if len(states) >= STATES_CAP:
                self.capped = True
                return number
            states.add(number)
            self.last_new = time.monotonic() - self.started
            n = len(states)
            if not self.growth or n >= self.growth[-1][1] * GROWTH_STEP:
                self.growth.append((round(self.last_new, 3), n))
        return number

    def probed(self) -> dict[str, list[Any]]:
        """The live handles a sequence starts with: what the probe published (``world.publish``)."""
        live: dict[str, list[Any]] = {}
        for bundle, handle in self.executor.probed:
            live.setdefault(bundle, []).append(handle)
        return live

    def pick(self) -> Move:
        """A move whose handle arguments all have a live handle, uniformly."""
        rng, moves, live = self.rng, self.moves, self.live
        for _ in range(8):
            move = moves[int(rng.random() * len(moves))]
            if not move.handles or all(live.get(b) for _, b, _ in move.handles):
                return move
        if self.free:
            return self.free[int(rng.random() * len(self.free))]
        ready = [m for m in moves if all(live.get(b) for _, b, _ in m.handles)]
        if not ready:
            raise ModelError(f"{self.executor.subsystem.name}: no action or command can run: each needs a "
                             f"handle that nothing has produced yet (give one a producer without handle arguments, or "
                             f"publish handles from the probe with world.publish)")
        return ready[int(rng.random() * len(ready))]

    def draw(self, move: Move) -> Step:
        """A step of ``move`` with drawn arguments, handles and caller.

        Half the time an argument (or the caller) is one that a step of this
        move was carried out with before: chains are built from steps that
        work (a value the device accepts, a caller the policy admits), and
        the device's accepted range is often a sliver of the declared one.
        """
        rng = self.rng
        values, callers = self.worked[move.index]
        args: dict[str, Any] = {}
        for p, d, seen, compared in zip(move.params, move.drawers, values, self.compared[move.index], strict=True):
            if d is None:
                pool = self.live[p.bundle]
                args[p.name] = pool[int(rng.random() * len(pool))]
            elif seen and rng.random() < REUSE_VALUE:
                args[p.name] = seen[int(rng.random() * len(seen))]
            elif compared and rng.random() < COMPARED:
                args[p.name] = compared[int(rng.random() * len(compared))]
            else:
                args[p.name] = d(rng, args)
        caller = None
        if move.callers:
            # a caller this move worked with, else one that worked with another command on its channel (the
            # channel's capability, lockdown and switch checks are the same for all of them)
            known = callers or self.channel_callers.get(move.channel)
            src = known if known and rng.random() < REUSE else move.callers
            caller = src[int(rng.random() * len(src))]
        return Step(move.actor, move.op, args, move.channel, caller)  # type: ignore[arg-type]

    def learn(self, move: Move, step: Step) -> None:
        values, callers = self.worked[move.index]
        for p, d, seen in zip(move.params, move.drawers, values, strict=True):
            if d is not None and len(seen) < REMEMBER:
                v = step.args[p.name]
                if v not in seen:
                    seen.append(v)
        if move.callers and step.caller not in callers:
            if len(callers) < REMEMBER:
                callers.append(step.caller)  # type: ignore[arg-type]
            shared = self.channel_callers.setdefault(move.channel, [])
            if len(shared) < REMEMBER and step.caller not in shared:
                shared.append(step.caller)  # type: ignore[arg-type]

    def track(self, move: Move, result: StepResult) -> None:
        """Consume and produce handles as the machine's bundles would."""
        live = self.live
        for i, bundle, consumes in move.handles:
            if consumes:
                pool = live.get(bundle)  # a replayed step may name a handle nothing produced
                name = result.step.args[move.params[i].name]
                if pool and name in pool:
                    pool.remove(name)
        reply = result.reply
        handles = () if reply is None else reply.published
        if handles:
            for bundle in move.produces:
                live.setdefault(bundle, []).extend(handles)
        for bundle, handle in result.publications:  # a reaction's, into the bundle it named
            live.setdefault(bundle, []).append(handle)


#: Sequences ``shorter_path`` tries per candidate length.
SHORTEN_TRIES = 1024


def shorter_path(executor: Executor, steps: Sequence[Step], signature: str, *, seed: int,
                 expired: Callable[[], bool] | None = None) -> list[Step] | None:
    """A sequence shorter than ``steps`` that also ends in ``signature``, or None.

    Minimizing removes steps one at a time; it cannot see a shorter path
    that needs two changes at once (drop the second object *and* name the
    first one's id).  So for each shorter length, candidates are tried: an
    ordered subset of the finding's steps, each kept step's arguments
    redrawn with probability one half (handles always re-chosen among the
    live ones).  Bounded and seeded: ``SHORTEN_TRIES`` sequences per length.
    Gives up (None) when ``expired`` says the budget is spent.
    """
    if len(steps) <= 1:
        return None
    ex = Explorer(executor, seed=seed, steps=len(steps))
    by_key = {(m.actor, m.channel, m.op): m for m in ex.moves}
    moves = [by_key.get((s.actor, s.channel, s.op)) for s in steps]
    if any(m is None for m in moves):
        return None
    rng = ex.rng
    last = len(steps) - 1
    for length in range(1, len(steps)):
        for _ in range(SHORTEN_TRIES):
            if expired is not None and expired():
                return None
            # the violating step stays last; the others are a random ordered subset
            keep = [*sorted(rng.sample(range(last), length - 1)), last]
            executor.reset()
            ex.live = ex.probed()
            out: list[Step] = []
            for i in keep:
                move = moves[i]
                assert move is not None
                if not all(ex.live.get(b) for _, b, _ in move.handles):
                    break
                step = ex.draw(move)
                if rng.random() < 0.5:  # keep the finding's own values where they still fit
                    handles = {move.params[j].name for j, _, _ in move.handles}
                    step = attrs.evolve(step, caller=steps[i].caller, args={
                        k: (v if k in handles else steps[i].args.get(k, v)) for k, v in step.args.items()})
                result = executor.apply(step)
                out.append(step)
                if any(v.signature == signature for v in result.violations):
                    return out
                ex.track(move, result)
    return None
