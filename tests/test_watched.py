"""What a step reads of its caller and arguments (``fuzzer.watched``): the bounded proof's step classes rest on it.

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

from fuzzer.executor import encode_request, inbound
from fuzzer.sizes import Buffer, Envelope, Layout, Slot
from fuzzer.spec import Caller, Command
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
