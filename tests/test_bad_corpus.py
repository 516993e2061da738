"""Bad corpus files: exit 2 and one line naming the file and the step; a corpus file is data only."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from badinput import BASE, KERNEL_STEP, USER_STEP, assert_error, doc, ptfuzz, with_step, write

# ----------------------------------------------------------------------------- the base file is good


def test_hand_built_corpus_file_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = ptfuzz(capsys, "replay", write(tmp_path, BASE))
    assert code == 1, (out, err)  # the permissive policy lets SET_PARTITION_INFO move kernel-owned state
    assert "still fails" in out
    assert err == ""


# ----------------------------------------------------------------------------- corpus files: structure


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        pytest.param('{"format": "ptfuzz.sequence/1", "steps": [', ("not valid JSON",), id="malformed"),
        pytest.param("", ("not valid JSON",), id="empty-file"),
        pytest.param(b"\xff\xfe{\x00}\x00", ("not UTF-8",), id="not-utf8"),
        pytest.param([BASE], ("top level must be a JSON object",), id="top-level-list"),
        pytest.param('"ptfuzz.sequence/1"', ("top level must be a JSON object",), id="top-level-string"),
        pytest.param(doc(format="ptfuzz.sequence/99"), ("unknown format", "ptfuzz.sequence/99"), id="format-99"),
        pytest.param({k: v for k, v in BASE.items() if k != "format"}, ("unknown format",), id="no-format"),
        pytest.param(doc(steps=[]), ("'steps' is empty",), id="empty-steps"),
        pytest.param(doc(steps={"1": KERNEL_STEP}), ("'steps' must be list",), id="steps-not-list"),
        pytest.param({k: v for k, v in BASE.items() if k != "steps"}, ("missing 'steps'",), id="no-steps"),
        pytest.param(doc(violation={"invariant": "x"}), ("violation", "missing 'signature'"), id="no-signature"),
        pytest.param(doc(subsystem=7), ("'subsystem' must be str",), id="subsystem-not-str"),
        pytest.param(doc(seed="3"), ("'seed' must be an integer",), id="seed-not-int"),
        pytest.param(doc(without="immediate-flag"), ("'without' must be a list",), id="without-not-list"),
        pytest.param("[" * 100_000 + "]" * 100_000, ("not valid JSON", "nested too deeply"), id="deeply-nested"),
    ],
)
def test_malformed_corpus_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               content: Any, needles: tuple[str, ...]) -> None:
    path = write(tmp_path, content)
    assert_error(capsys, ["replay", path], str(path), *needles)


def test_truncated_corpus_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(BASE, indent=2)
    path = write(tmp_path, text[: len(text) // 2])
    assert_error(capsys, ["replay", path], str(path), "not valid JSON", "line ")


def test_integer_too_long_to_parse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(BASE).replace('"volatile": 4', '"volatile": ' + "9" * 5000)
    path = write(tmp_path, text)
    assert_error(capsys, ["replay", path], str(path), "not valid JSON")


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nosuch.json"
    assert_error(capsys, ["replay", path], str(path), "cannot read")


def test_missing_file_for_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nosuch.json"
    assert_error(capsys, ["export", path], str(path), "cannot read")


def test_second_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, BASE, "good.json")
    bad = write(tmp_path, doc(steps=[]), "bad.json")
    line = assert_error(capsys, ["replay", "-q", good, bad], str(bad))
    assert "good.json" not in line


# ----------------------------------------------------------------------------- corpus files: steps


@pytest.mark.parametrize(
    ("n", "step", "needles"),
    [
        pytest.param(2, dict(USER_STEP, op="NO_SUCH_OP"), ("unknown op", "NO_SUCH_OP"), id="unknown-op"),
        pytest.param(1, dict(KERNEL_STEP, action="summon"), ("unknown kernel action", "summon"),
                     id="unknown-action"),
        pytest.param(2, dict(USER_STEP, channel="cxl.nosuch"), ("unknown channel", "cxl.nosuch"),
                     id="unknown-channel"),
        pytest.param(2, dict(USER_STEP, args={"volatile": 10**6, "immediate": True}),
                     ("argument 'volatile'", "outside"), id="value-out-of-range"),
        pytest.param(2, dict(USER_STEP, args={"volatile": -1, "immediate": True}),
                     ("argument 'volatile'", "outside"), id="value-negative"),
        pytest.param(2, dict(USER_STEP, args={"volatile": "4", "immediate": True}),
                     ("argument 'volatile'", "expected an integer"), id="value-wrong-type"),
        pytest.param(2, dict(USER_STEP, args={"volatile": 4, "immediate": 1}),
                     ("argument 'immediate'", "true or false"), id="bool-as-int"),
        pytest.param(1, dict(KERNEL_STEP, args={"mode": "rom", "size": 1}),
                     ("argument 'mode'", "'rom'"), id="bad-choice"),
        pytest.param(2, dict(USER_STEP, args={"volatile": 4, "immediate": True, "force": True}),
                     ("unknown argument", "force"), id="unknown-arg"),
        pytest.param(2, dict(USER_STEP, args={"volatile": 4}), ("missing argument 'immediate'",),
                     id="missing-arg"),
        pytest.param(1, dict(KERNEL_STEP, args={}), ("missing argument 'mode'",), id="missing-kernel-arg"),
        pytest.param(2, dict(USER_STEP, args={"volatile": 4.0, "immediate": True}),
                     ("argument 'volatile'", "number, string or boolean"), id="float-arg"),
        pytest.param(2, dict(USER_STEP, args={"volatile": [4], "immediate": True}),
                     ("argument 'volatile'",), id="list-arg"),
        pytest.param(2, dict(USER_STEP, args=[4, True]), ("'args' must be an object",), id="args-not-object"),
        pytest.param(2, dict(USER_STEP, actor="root"), ("'actor'", "'root'"), id="unknown-actor"),
        pytest.param(2, {k: v for k, v in USER_STEP.items() if k != "actor"}, ("'actor'", "None"),
                     id="missing-actor"),
        pytest.param(2, {k: v for k, v in USER_STEP.items() if k != "op"}, ("missing 'op'",), id="missing-op"),
        pytest.param(1, dict(KERNEL_STEP, action=5), ("'action' must be str",), id="action-not-str"),
        pytest.param(2, dict(USER_STEP, caller={"caps": [], "uid": 0}), ("unknown caller key", "uid"),
                     id="unknown-caller-key"),
        pytest.param(2, dict(USER_STEP, caller={"caps": "CAP_SYS_ADMIN"}), ("'caps' must be a list",),
                     id="caps-not-list"),
        pytest.param(2, dict(USER_STEP, caller=None), ("'caller' must be an object",), id="caller-null"),
        pytest.param(2, ["user", "SET_PARTITION_INFO"], ("a step must be an object",), id="step-not-object"),
    ],
)
def test_bad_step_names_file_and_step(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      n: int, step: Any, needles: tuple[str, ...]) -> None:
    path = write(tmp_path, with_step(n, step))
    line = assert_error(capsys, ["replay", path], f"{path}: step {n}:", *needles)
    other = 3 - n
    assert f"step {other}" not in line


def test_bad_step_in_a_long_sequence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps = [KERNEL_STEP] + [USER_STEP] * 10 + [dict(USER_STEP, op="NO_SUCH_OP")] + [USER_STEP] * 3
    path = write(tmp_path, doc(steps=steps))
    assert_error(capsys, ["replay", path], f"{path}: step 12:", "NO_SUCH_OP")


def test_bad_step_reported_by_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, with_step(2, dict(USER_STEP, args={"volatile": 4})))
    assert_error(capsys, ["export", path], f"{path}: step 2:", "missing argument 'immediate'")


# ----------------------------------------------------------------------------- corpus files: unknown names


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        pytest.param({"subsystem": "nosuchsub"}, ("unknown subsystem", "nosuchsub"), id="subsystem"),
        pytest.param({"device": "nosuchdev"}, ("unknown device", "nosuchdev"), id="device"),
        pytest.param({"policy": "nosuchpol"}, ("unknown policy", "nosuchpol"), id="policy"),
        pytest.param({"policy": "linux-fwctl", "without": ["nosuch-rule"]}, ("nosuch-rule",), id="without-rule"),
    ],
)
def test_unknown_names_in_corpus_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      changes: dict[str, Any], needles: tuple[str, ...]) -> None:
    path = write(tmp_path, doc(**changes))
    assert_error(capsys, ["replay", path], str(path), *needles)
    assert_error(capsys, ["export", path], str(path), *needles)


def test_unknown_replay_policy_names_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE)
    assert_error(capsys, ["replay", path, "--policy", "nosuchpol"], str(path), "unknown policy", "nosuchpol")
    assert_error(capsys, ["replay", path, "--policy", "linux-fwctl", "--without", "nosuch-rule"],
                 str(path), "nosuch-rule")


# ----------------------------------------------------------------------------- corpus files are data only

EVIL = "__import__('os').system('touch {marker}')"


def test_code_in_corpus_strings_is_never_executed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "PWNED"
    evil = EVIL.format(marker=marker)
    # A handle argument accepts any string: the step runs, and the kernel model finds no such region.
    runs = write(tmp_path, doc(steps=[KERNEL_STEP, {"actor": "kernel", "action": "region_destroy",
                                                   "args": {"region": evil}}]), "runs.json")
    code, out, err = ptfuzz(capsys, "replay", runs)
    assert code in (0, 1), (out, err)
    assert "Traceback" not in out + err
    # ... as a capability or a caller scope: refused, since the channel does not declare them.
    caps = write(tmp_path, with_step(2, dict(USER_STEP, caller={"caps": [evil]})), "caps.json")
    assert_error(capsys, ["replay", caps], str(caps), "step 2", "caller capability", "not declared")
    scope = write(tmp_path, with_step(2, dict(USER_STEP, caller={"scope": evil})), "scope.json")
    assert_error(capsys, ["export", scope], str(scope), "step 2", "caller scope", "not declared")
    for n, d in enumerate([
        with_step(2, dict(USER_STEP, op=evil)),
        with_step(2, dict(USER_STEP, args={"volatile": evil, "immediate": True})),
        with_step(2, dict(USER_STEP, args={evil: 1, "volatile": 4, "immediate": True})),
        doc(device=evil),
        doc(policy=evil),
        doc(subsystem=evil),
        doc(format=evil),
    ]):
        path = write(tmp_path, d, f"evil{n}.json")
        assert_error(capsys, ["replay", path], str(path))
        assert_error(capsys, ["export", path], str(path))
    assert not marker.exists()


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_is_not_unpickled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "PWNED"
    for protocol in (0, pickle.HIGHEST_PROTOCOL):
        path = write(tmp_path, pickle.dumps(_Payload(marker), protocol=protocol), f"p{protocol}.json")
        assert_error(capsys, ["replay", path], str(path))
    assert not marker.exists()
