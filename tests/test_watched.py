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

from fuzzer.spec import Caller
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
