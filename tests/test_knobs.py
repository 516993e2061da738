"""Declared knobs: checked at load, set with --knob, recorded in corpus files, replayed with them.

The toy's ``reread`` knob (``toy-linux`` sets it on) is a planted hole switched by a knob: off, the
driver does not re-read the MTU after SET_MTU, and the kernel-owned MTU changes under it.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
import toy
from badinput import assert_error, plugin, ptfuzz

from fuzzer import Knob, corpus, host
from fuzzer.errors import UsageError
from fuzzer.spec import Knobs, UnknownKnob

TOY = str(Path(__file__).with_name("toy.py"))
HOLE = "kernel-owned-integrity:toy:SET_MTU:link.mtu"


def run_toy(capsys: pytest.CaptureFixture[str], tmp_path: Path, *extra: str,
            policy: str = "toy-linux") -> tuple[int, str, list[Path]]:
    """``ptfuzz run toy`` with a fixed seed; the exit code, stdout and the corpus files for HOLE."""
    corpus_dir = tmp_path / "corpus"
    code, out, err = ptfuzz(capsys, "--plugin", TOY, "run", "toy", "--policy", policy, "--seed", "1",
                            "--max-examples", "200", "--corpus", corpus_dir, *extra)
    assert code in (0, 1), err
    return code, out, sorted((corpus_dir / "toy").glob("*SET_MTU--link.mtu.json"))


# ----------------------------------------------------------------------------- the record


def test_knob_types_and_parsing() -> None:
    flag = Knob("f", True)
    assert flag.parse("false") is False and flag.parse("1") is True
    assert Knob("n", 0).parse("0x10") == 16
    assert Knob("s", frozenset({"a"})).parse("b, c") == frozenset({"b", "c"})
    assert Knob("s", frozenset({"a"})).coerce(["x"]) == frozenset({"x"})
    choice = Knob("free", "kvfree", choices=("kvfree", "kfree"))
    assert choice.parse("kfree") == "kfree"
    with pytest.raises(ValueError, match="is not one of kvfree, kfree"):
        choice.parse("free")
    with pytest.raises(ValueError, match="is not an integer"):
        Knob("n", 0).coerce(True)  # a bool is not an int here
    with pytest.raises(ValueError, match="a knob holds a bool, an int, a str or a frozenset"):
        Knob("x", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is not one of"):
        Knob("x", "c", choices=("a", "b"))


def test_reading_an_undeclared_knob_names_it() -> None:
    knobs = Knobs((Knob("reread", True),), {}, "toy")
    assert knobs["reread"] is True and "reread" in knobs and "rereed" not in knobs
    # a default at the call site must not hide a misspelt name
    with pytest.raises(UnknownKnob, match=r"knob 'rereed' is not declared by toy; it declares reread "
                                          r"\(did you mean 'reread'\?\)"):
        knobs.get("rereed", True)


def test_registered_policies_see_every_declared_knob() -> None:
    reg = host.load(extra=[toy], entry_points=False)
    policy = reg.policy("toy", "toy-linux")
    assert dict(policy.knobs) == {"reread": True} and policy.tuned == {} and policy.label == "toy-linux"
    tuned = reg.policy("toy", "toy-linux", (), {"reread": False})
    assert tuned.knobs["reread"] is False and tuned.label == "toy-linux{reread=false}"
    # setting a knob to the policy's own value tunes nothing: same label, same corpus file
    assert reg.policy("toy", "toy-linux", (), {"reread": True}).label == "toy-linux"
    with pytest.raises(UsageError, match="did you mean 'reread'"):
        reg.policy("toy", "toy-linux", (), {"rerad": False})


# ----------------------------------------------------------------------------- load-time errors


def test_misspelt_knob_in_a_policy_is_refused_at_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "typoknob", """
        import attrs
        import toy
        from fuzzer import hookimpl

        @hookimpl
        def ptfuzz_policies():
            return [attrs.evolve(toy.LINUX, name="toy-typo", knobs={"rerad": False})]
    """)
    assert_error(capsys, ["--plugin", TOY, "--plugin", p, "list"], "plugin 'typoknob'", "policy 'toy-typo'",
                 "knob 'rerad' is not declared by toy", "it declares reread", "did you mean 'reread'")


def test_knob_value_of_the_wrong_type_in_a_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "typedknob", """
        import attrs
        import toy
        from fuzzer import hookimpl

        @hookimpl
        def ptfuzz_policies():
            return [attrs.evolve(toy.LINUX, name="toy-str", knobs={"reread": "no"})]
    """)
    assert_error(capsys, ["--plugin", TOY, "--plugin", p, "list"], "plugin 'typedknob'", "policy 'toy-str'",
                 "knob 'reread'", "'no' is not true or false")


def test_a_rule_reading_an_undeclared_knob_fails_naming_it(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "readsknob", """
        import attrs
        import toy
        from fuzzer import hookimpl, Rule

        def check(request):
            return None if request.knobs.get("strict_mtu", False) else None

        @hookimpl
        def ptfuzz_policies():
            return [attrs.evolve(toy.LINUX, name="toy-reads", rules=(Rule("strict", check, cite="x"),))]
    """)
    assert_error(capsys, ["--plugin", TOY, "--plugin", p, "run", "toy", "--policy", "toy-reads",
                          "--max-examples", "5", "--corpus", tmp_path / "c"],
                 "'readsknob'", "rule 'strict'", "knob 'strict_mtu' is not declared by toy")


@pytest.mark.parametrize(("knob", "needles"), [
    ("rerad=false", ("--knob 'rerad=false'", "not declared by toy", "did you mean 'reread'")),
    ("reread=maybe", ("--knob 'reread=maybe'", "knob 'reread' of toy", "'maybe' is not true or false")),
    ("reread", ("--knob 'reread'", "NAME=VALUE")),
])
def test_bad_knob_option(tmp_path: Path, capsys: pytest.CaptureFixture[str], knob: str,
                         needles: tuple[str, ...]) -> None:
    assert_error(capsys, ["--plugin", TOY, "run", "toy", "--policy", "toy-linux", "--knob", knob,
                          "--corpus", tmp_path], *needles)


# ----------------------------------------------------------------------------- run, record, replay


def test_knob_switches_a_planted_hole_and_the_file_replays_with_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, files = run_toy(capsys, tmp_path / "intact")
    assert files == [] and HOLE not in out  # the policy's own reread=true closes it
    code, out, files = run_toy(capsys, tmp_path / "off", "--knob", "reread=false")
    assert code == 1 and "policy=toy-linux{reread=false}" in out
    [found] = files
    doc = json.loads(found.read_text())
    assert doc["knobs"] == {"reread": False} and "without" not in doc
    assert [s["op"] for s in doc["steps"]] == ["SET_MTU"]  # the known shortest sequence
    # the file replays with the knob it was found with ...
    code, out, _ = ptfuzz(capsys, "--plugin", TOY, "replay", found)
    assert code == 1 and "policy=toy-linux{reread=false}" in out and "=> still fails" in out
    # ... and --knob over it shows the policy's own setting closes the hole
    code, out, _ = ptfuzz(capsys, "--plugin", TOY, "replay", "-q", found, "--knob", "reread=true")
    assert code == 0 and out.startswith("passes")
    # the file is what ptfuzz writes today (knobs survive a load and a save byte for byte)
    entry = corpus.load(found)
    assert entry.knobs == {"reread": False}
    again = tmp_path / "again.json"
    corpus.write(again, entry)
    assert again.read_bytes() == found.read_bytes()


def test_prove_takes_knobs_and_its_finding_replays_with_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus_dir = tmp_path / "corpus"
    code, out, _ = ptfuzz(capsys, "--plugin", TOY, "prove", "toy", "--policy", "toy-linux", "--depth", "1",
                          "--jobs", "1", "--corpus", corpus_dir)
    assert code == 0 and "no violation within 1 steps" in out  # the policy's own reread=true
    code, out, _ = ptfuzz(capsys, "--plugin", TOY, "prove", "toy", "--policy", "toy-linux", "--depth", "1",
                          "--jobs", "1", "--corpus", corpus_dir, "--knob", "reread=false")
    assert code == 1 and "policy=toy-linux{reread=false}" in out and HOLE in out
    [found] = sorted((corpus_dir / "toy").glob("*SET_MTU--link.mtu.json"))
    assert json.loads(found.read_text())["knobs"] == {"reread": False}
    code, out, _ = ptfuzz(capsys, "--plugin", TOY, "replay", found)
    assert code == 1 and "=> still fails" in out
    assert_error(capsys, ["--plugin", TOY, "prove", "toy", "--policy", "toy-linux", "--knob", "rerad=false"],
                 "--knob 'rerad=false'", "did you mean 'reread'")


def test_a_file_without_knobs_replays_under_the_policys_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, [found] = run_toy(capsys, tmp_path, "--knob", "reread=false")
    doc = json.loads(found.read_text())
    del doc["knobs"]  # as an older ptfuzz wrote it: the policy's own reread=true applies
    older = tmp_path / "older.json"
    older.write_text(json.dumps(doc))
    assert corpus.load(older).knobs == {}
    code, out, _ = ptfuzz(capsys, "--plugin", TOY, "replay", "-q", older)
    assert code == 0 and out.startswith("passes")


def test_a_bad_knob_in_a_corpus_file_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, [found] = run_toy(capsys, tmp_path, "--knob", "reread=false")
    doc = json.loads(found.read_text())
    for knobs, needles in (({"reread": "no"}, ("knob 'reread' of toy", "'no' is not true or false")),
                           ({"rerad": False}, ("knob 'rerad' is not declared by toy",)),
                           ({"reread": 1.5}, ("'knobs' must be an object of knob values",))):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**doc, "knobs": knobs}))
        assert_error(capsys, ["--plugin", TOY, "replay", bad], "bad.json", *needles)


def test_knobs_travel_to_worker_processes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, files = run_toy(capsys, tmp_path, "--knob", "reread=false", "--workers", "2")
    assert code == 1 and len(files) == 1
    assert json.loads(files[0].read_text())["knobs"] == {"reread": False}


def test_exported_regression_test_sets_the_files_knobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, [found] = run_toy(capsys, tmp_path, "--knob", "reread=false")
    out = tmp_path / "test_exported.py"
    code, _, err = ptfuzz(capsys, "--plugin", TOY, "export", found, "--format", "pytest", "-o", out)
    assert code == 0, err
    text = out.read_text()
    assert "KNOBS = {'reread': False}" in text and "registry.policy(SUBSYSTEM, POLICY, WITHOUT, KNOBS)" in text
    namespace: dict[str, object] = {}
    exec(compile(text, str(out), "exec"), namespace)
    test = next(v for k, v in namespace.items() if k.startswith("test_"))
    with pytest.raises(AssertionError):  # fails while the hole (reread off) is open
        test()  # type: ignore[operator]


# ----------------------------------------------------------------------------- campaign files


def _campaign(tmp_path: Path, entry_extra: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    f = tmp_path / "campaign.toml"
    f.write_text(f"""
budget = 3
corpus = "corpus"

[[entry]]
subsystem = "toy"
policy = "toy-linux"
seed = 1
{entry_extra}
""")
    return f


def test_campaign_file_knobs_table_and_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = ptfuzz(capsys, "--plugin", TOY, "campaign", _campaign(tmp_path / "a", "knobs = {reread = false}"))
    assert code == 1 and f"NEW   [hole] {HOLE}" in out and "toy-linux{reread=false}@toy" in out, err
    [found] = (tmp_path / "a" / "corpus" / "toy").glob("*SET_MTU--link.mtu.json")
    assert json.loads(found.read_text())["knobs"] == {"reread": False}
    code, _out, err = ptfuzz(capsys, "--plugin", TOY, "campaign", _campaign(tmp_path / "b", ""),
                            "--knob", "reread=false")
    assert code == 1, err
    assert list((tmp_path / "b" / "corpus" / "toy").glob("*SET_MTU--link.mtu.json"))


def test_campaign_file_bad_knobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_error(capsys, ["--plugin", TOY, "campaign", _campaign(tmp_path, "knobs = {rerad = false}")],
                 "campaign.toml: entry 1", "'knobs'", "knob 'rerad' is not declared by toy", "did you mean 'reread'")
    assert_error(capsys, ["--plugin", TOY, "campaign", _campaign(tmp_path, "knobs = {reread = 3}")],
                 "campaign.toml: entry 1", "'knobs'", "knob 'reread' of toy", "3 is not true or false")
    assert_error(capsys, ["--plugin", TOY, "campaign", _campaign(tmp_path, ""), "--knob", "mtu=1"],
                 "--knob 'mtu=1'", "no run's subsystem (toy) declares knob 'mtu'", "they declare reread")


# ----------------------------------------------------------------------------- derived registered policies


def test_a_policy_registered_as_another_without_a_rule_replays(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``attrs.evolve(LINUX.without("remtu"), name=...)`` wrote ``without: ["remtu"]`` and could not replay."""
    p = plugin(tmp_path, "derived", """
        import attrs
        import toy
        from fuzzer import hookimpl

        @hookimpl
        def ptfuzz_policies():
            return [attrs.evolve(toy.LINUX.without("remtu"), name="toy-noremtu")]
    """)
    corpus_dir = tmp_path / "corpus"
    code, out, err = ptfuzz(capsys, "--plugin", TOY, "--plugin", p, "run", "toy", "--policy", "toy-noremtu",
                            "--seed", "1", "--max-examples", "200", "--corpus", corpus_dir)
    assert code == 1, err
    [found] = (corpus_dir / "toy").glob("*SET_MTU--link.mtu.json")
    doc = json.loads(found.read_text())
    assert doc["policy"] == "toy-noremtu" and "without" not in doc
    assert [s["op"] for s in doc["steps"]] == ["SET_MTU"]
    code, out, err = ptfuzz(capsys, "--plugin", TOY, "--plugin", p, "replay", found)
    assert code == 1 and "=> still fails" in out, err
    # a file an older ptfuzz wrote (the registered policy's own removal in 'without') replays too
    older = tmp_path / "older.json"
    older.write_text(json.dumps({**doc, "without": ["remtu"]}))
    code, out, err = ptfuzz(capsys, "--plugin", TOY, "--plugin", p, "replay", older)
    assert code == 1 and "=> still fails" in out, err
    # and a rule removed on top of the registered policy's is still written and replayed
    reg = host.load([TOY, str(p)], entry_points=False)
    more = reg.policy("toy", "toy-noremtu", ("root-only",))
    assert reg.without_of(more) == ("root-only",)
    assert reg.without_of(attrs.evolve(more, removed=("other",))) == ("other",)


def test_corpus_file_names_carry_knobs_and_stay_short() -> None:
    violation = {"signature": HOLE}
    plain = corpus.Entry("toy", "toy", "toy-linux", (), violation)
    off = attrs.evolve(plain, knobs={"reread": False})
    assert corpus.file_name(plain) == "toy-linux--toy--kernel-owned-integrity--SET_MTU--link.mtu.json"
    assert corpus.file_name(off).startswith("toy-linux_reread_false_--toy--")
    uuids = [f"{i:08x}-0552-4281-8f76-da0b5e7a76a7" for i in range(8)]
    many = [attrs.evolve(plain, knobs={"exclusive_features": uuids[:n]}) for n in (7, 8)]
    names = [corpus.file_name(e) for e in many]
    assert all(len(n) < 120 for n in names) and names[0] != names[1]
