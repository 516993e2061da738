"""What a step reads of its caller and arguments (``fuzzer.watched``) and touches of the world
(``fuzzer.touched``): the bounded proof's step classes, and their reuse across states, rest on it.

A read that goes unrecorded would merge steps that run differently, so each
way in is pinned here: a field or key read is noted, anything that sees the
whole (hash, equality, iteration, a copy, ``**args``) notes everything.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import toy

from fuzzer.executor import Executor, encode_request, inbound
from fuzzer.sizes import Buffer, Envelope, Layout, Slot
from fuzzer.spec import Caller, Command
from fuzzer.touched import ALL, HANDLES, TAINT, Touched, WatchedMap, WatchedWorld, world_read
from fuzzer.watched import FIELDS, Classes, Watched, WatchedArgs, read, watched

ROOT = Caller(frozenset({"CAP_SYS_ADMIN"}), "configuration", "integrity", frozenset({"raw_allow_all"}))


def _reads(f: Callable[[], Any]) -> tuple[set[str], set[str], bool]:
    read.clear()
    f()
    return set(read.fields), set(read.keys), read.all_keys


def test_a_watched_caller_is_the_plain_one_and_notes_each_field_read() -> None:
    w = watched(ROOT)
    assert isinstance(w, Watched) and w.plain() == ROOT and type(w.plain()) is Caller
    assert _reads(lambda: w.lockdown) == ({"lockdown"}, set(), False)
    assert _reads(lambda: "CAP_SYS_ADMIN" in w.caps and w.scope) == ({"caps", "scope"}, set(), False)
    assert _reads(lambda: w.plain())[0] == set()
    for whole in (lambda: w == ROOT, lambda: ROOT == w, lambda: w != Caller(), lambda: hash(w),
                  lambda: {ROOT: 1}.get(w), lambda: repr(w), lambda: w.describe(), lambda: w.to_json()):
        assert _reads(whole)[0] == set(FIELDS)
    assert w == ROOT and ROOT == w and hash(w) == hash(ROOT) and repr(w) == repr(ROOT) and w != Caller()
    assert {ROOT: 1}[w] == 1


@pytest.mark.parametrize(("use", "keys"), [
    (lambda a: a["offset"], {"offset"}), (lambda a: a.get("byte"), {"byte"}), (lambda a: "offset" in a, set()),
    (lambda a: a.get("missing", 0), {"missing"}), (lambda a: a.setdefault("byte", 0), {"byte"}),
    (lambda a: "{offset}".format_map(a), {"offset"}), (lambda a: "%(byte)s" % a, {"byte"}),  # noqa: UP031 - the % operator's own lookup
])
def test_watched_arguments_note_each_key_read(use: Callable[[dict[str, Any]], Any], keys: set[str]) -> None:
    args = WatchedArgs({"offset": 0, "byte": 7})
    assert _reads(lambda: use(args)) == (set(), keys, False)


@pytest.mark.parametrize("use", [
    dict, lambda a: {**a}, lambda a: (lambda **k: k)(**a), json.dumps, copy.copy, copy.deepcopy, list, sorted,
    bool, len, lambda a: a == {"offset": 0}, repr, lambda a: a.items(), lambda a: a.values(), lambda a: a.keys(),
    lambda a: {} | a, lambda a: a | {}, lambda a: {}.update(a), lambda a: a.copy(),
], ids=lambda f: getattr(f, "__name__", "f"))
def test_whatever_sees_the_whole_mapping_reads_every_key(use: Callable[[dict[str, Any]], Any]) -> None:
    args = WatchedArgs({"offset": 0, "byte": 7})
    assert _reads(lambda: use(args))[2]


def test_classes_merge_only_steps_that_agree_on_what_was_read() -> None:
    low, high, scoped = Caller(), Caller(frozenset({"CAP_SYS_ADMIN"})), Caller(frozenset(), "full")
    classes = Classes((low, high, scoped))
    assert classes.judged({"offset": 0, "byte": 7}) == [None, None, None]  # nothing ran yet
    read.clear()
    watched(low).caps  # noqa: B018 - the run read the caps and one argument
    WatchedArgs({"offset": 0, "byte": 7})["offset"]
    assert classes.add({"offset": 0, "byte": 7}, 0, ("sig",)) == [2]  # the scope was not read: same class
    assert classes.judged({"offset": 0, "byte": 9}) == [("sig",), None, ("sig",)]  # nor the byte
    assert classes.judged({"offset": 1, "byte": 7}) == [None, None, None]
    read.clear()
    len(WatchedArgs({"offset": 1, "byte": 7}))  # this run saw the whole mapping, and nothing of its caller
    assert classes.add({"offset": 1, "byte": 7}, 1, ()) == [2]
    assert classes.judged({"offset": 1, "byte": 7}) == [(), (), ()]
    assert classes.judged({"offset": 1, "byte": 8}) == [None, None, None]


def test_kernel_actions_have_one_class_per_argument_values() -> None:
    classes = Classes((None,))
    read.clear()
    WatchedArgs({"slot": 1})["slot"]
    assert classes.add({"slot": 1}, 0, ()) == []
    assert classes.judged({"slot": 1}) == [()] and classes.judged({"slot": 2}) == [None]


class _World:
    """Just enough of a ``World`` for ``executor.inbound``: buffers."""

    def __init__(self) -> None:
        self.accesses: list[Any] = []

    def buffer(self, name: str, size: int, *, fill: Callable[[], bytes]) -> Buffer:
        return Buffer(name, size, log=self.accesses, fill=fill)


def test_a_look_at_request_bytes_reads_only_the_arguments_encoded_there() -> None:
    """``inbound``'s buffer encodes every argument, but a read of some bytes reads (for the step classes)
    only the keys whose slots overlap them, and the widths placing them: the reads ``fuzzer.bounded``
    merges steps on.  The bytes are the full encoding's, whatever was looked at first."""
    header = Layout((Slot("opcode", 0, 2), Slot("op_size", 8, 4)), size=16)
    env = Envelope("in_len", header=header)
    layout = Layout((Slot("uuid", 0, 16, "uuid"), Slot("data", 16, "n", "fill", source="byte"),
                     Slot("tail", 40, 2)), size=None)
    command = Command("SET", 0x0205, ("fwctl",), layout=layout)
    plain = {"in_len": 64, "op_size": 48, "uuid": "01234567-89ab-cdef-0123-456789abcdef", "n": 4,
             "byte": 0xAA, "tail": 7}
    full = encode_request(env, command, plain)
    args = WatchedArgs(plain)
    read.clear()
    buf, base = inbound(_World(), env, command, args)  # type: ignore[arg-type]
    assert (base, set(read.keys), read.all_keys) == (16, {"in_len"}, False)
    read.clear()
    assert buf.read(8, 4, by="op_size") == full[8:12]
    assert (set(read.keys), read.all_keys) == ({"op_size"}, False)  # not the uuid, the data, nor their widths
    read.clear()
    assert buf.read(0, 2, by="opcode") == full[0:2]
    assert (set(read.keys), read.all_keys) == (set(), False)  # the command's opcode, no argument's
    read.clear()
    assert buf.field(layout, "tail", by="tail", base=base, args=args) == 7
    assert (set(read.keys), read.all_keys) == ({"n", "tail"}, False)  # the variable width is read to place data
    read.clear()
    assert buf.read(base + 17, 2, by="data") == b"\xaa\xaa"
    assert set(read.keys) == {"n", "byte"}
    read.clear()
    assert buf.read(60, 10, by="past") == bytes(full[60:64]).ljust(10, b"\0")  # 64 bytes declared
    assert set(read.keys) == {"n"}
    read.clear()
    assert bytes(buf.data) == full[:64] and read.all_keys is False and set(read.keys) >= set(plain) - {"in_len"}
    # a plain dict notes nothing: no touch to pay for in every other mode
    unwatched, _ = inbound(_World(), env, command, plain)  # type: ignore[arg-type]
    assert unwatched.touch is None and bytes(unwatched.data) == full[:64]


# --------------------------------------------------------------------------- the world (cross-state reuse)

def _touched(f: Callable[[], Any]) -> Touched:
    world_read.begin()
    try:
        f()
    finally:
        touched = world_read.taken()
    return touched


def test_a_watched_map_notes_each_key_touched_and_everything_for_the_whole() -> None:
    """A key read, tested for or written is noted (presence differs between worlds: ``in`` counts); whatever
    sees the whole map notes ``ALL``; ``copy()`` notes nothing but is watched too; ``dict``'s own methods
    (the executor's diff) note nothing."""
    m = WatchedMap({"a": 1, "b": 2}, world_read.state)
    for one in (lambda: m["a"], lambda: m.get("a"), lambda: "a" in m, lambda: m.__setitem__("a", 1),
                lambda: m.setdefault("a", 1), lambda: m.pop("a", None) and m.__setitem__("a", 1)):
        assert _touched(one).state == {"a"}
    assert _touched(lambda: m.__delitem__("b")).state == {"b"}
    m["b"] = 2
    for whole in (lambda: list(m), lambda: len(m), lambda: m.keys(), lambda: m.values(), lambda: m.items(),
                  lambda: m == {}, lambda: repr(m), lambda: copy.copy(m), lambda: copy.deepcopy(m), lambda: dict(m),
                  lambda: {**m}, lambda: json.dumps(m), lambda: m | {}, lambda: {} | m, lambda: m.update({}),
                  lambda: bool(m)):
        assert ALL in _touched(whole).state
    assert copy.copy(m) == {"a": 1, "b": 2} and json.loads(json.dumps(m)) == {"a": 1, "b": 2}
    twin = m.copy()
    assert type(twin) is WatchedMap and _touched(lambda: m.copy()).state == set()
    assert _touched(lambda: twin["b"]).state == {"b"}
    assert _touched(lambda: (dict.items(m), dict.get(m, "a"), dict.__len__(m))).state == set()


def test_the_taint_is_read_by_flag_and_a_flag_the_step_added_is_known() -> None:
    """Through a ``WatchedWorld``: a flag's membership notes that flag; the whole set, ``TAINT``; a flag the
    step added itself notes nothing; ``taint_mark`` (the executor's ``taint_before``) notes only its use;
    the handle counter is a key; outside a step nothing is a view."""
    world = Executor(toy.SUBSYSTEM, toy.LINUX, toy.SUBSYSTEM.devices[0]).world
    world.__class__ = WatchedWorld
    world.tainted = frozenset({"WARN"})
    assert type(world.tainted) is frozenset  # no step runs
    t = lambda: world.tainted  # noqa: E731
    assert _touched(lambda: "WARN" in t()).kernel == {(TAINT, "WARN")}
    assert _touched(lambda: frozenset({"X", "WARN"}) - t()).kernel == {(TAINT, "X"), (TAINT, "WARN")}
    assert _touched(lambda: t() >= {"X"}).kernel == {(TAINT, "X")}
    for whole in (lambda: bool(t()), lambda: sorted(t()), lambda: frozenset(t()), lambda: t() == {"WARN"},
                  lambda: {"A"}.issubset(t()), lambda: t() | {"A"}, lambda: t() - {"A"}, lambda: hash(t())):
        assert TAINT in _touched(whole).kernel
    assert _touched(lambda: (world.taint("NEW"), "NEW" in t(), bool(t()))).kernel == set()
    assert _touched(lambda: "NEW" in world.taint_mark()).kernel == {(TAINT, "NEW")}
    assert _touched(lambda: world.new_handle("h")).kernel == {HANDLES}
    world_read.begin()
    try:
        view = world.tainted
        assert view == frozenset({"WARN", "NEW"}) and frozenset({"WARN", "X"}) - view == {"X"}
        assert hash(view) == hash(frozenset({"WARN", "NEW"})) and view & {"NEW", "Y"} == {"NEW"}
    finally:
        world_read.taken()


def test_a_touched_record_misses_only_keys_it_did_not_touch() -> None:
    t = Touched(frozenset({"a"}), frozenset({(TAINT, "WARN")}), frozenset())
    assert t.misses(frozenset({"b"}), frozenset({TAINT, (TAINT, "X")}), frozenset({"s"}))
    assert not t.misses(frozenset({"a"}), frozenset(), frozenset())
    assert not t.misses(frozenset(), frozenset({TAINT, (TAINT, "WARN")}), frozenset())
    everything = Touched(frozenset({ALL}), frozenset(), frozenset())
    assert everything.misses(frozenset(), frozenset({"k"}), frozenset()) and not everything.misses(
        frozenset({"z"}), frozenset(), frozenset())
