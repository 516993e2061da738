"""Hypothesis builds hostile corpus files; every ptfuzz command must handle them.

Each case starts from a committed corpus file and applies one to three
mutations: truncation, a wrong type or a hostile string at any key, unknown
names, unknown and duplicate keys, huge and non-finite numbers, deep nesting,
bad encodings, rich markup, terminal escape sequences, and injection attempts
aimed at each exporter.  The file name is hostile too.  Then ``replay -q``,
``replay``, ``export`` (text, pytest, c) run in-process on a terminal whose
encoding is drawn, and the oracle holds:

* exit 0 or 1 (a replay whose verdict matches the executor's), or exit 2 with
  exactly one ``ptfuzz: error:`` line; never 3, never a traceback;
* nothing printed contains a raw control character, surrogate or escape;
* an exported pytest file has exactly the exporter's syntax tree, and an
  exported C file has no code outside comments and literals that the corpus
  supplied, no trigraph, and compiles with gcc in ISO C (batched);
* each case finishes within ``CASE_SECONDS`` (a hang is a failure).

``python tests/hostile_corpus.py --examples 100000 --shards 2`` is the nox
``fuzz-corpus`` session; the test suite runs a few hundred cases.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hseed
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from committed import corpus_files
from hostile import (
    MARKER,
    c_export_problems,
    gcc_problems,
    python_export_problems,
    reference_body,
)

from fuzzer import cli, corpus, host
from fuzzer.errors import PtfuzzError
from fuzzer.replay import replay as do_replay

ROOT = Path(__file__).resolve().parent.parent
SEEDS = corpus_files()
CASE_SECONDS = 20.0
GCC_BATCH = 200

HOSTILE_TEXT = [
    "[/]", "[bold red]x[/]", "[link=file:///etc/passwd]y[/link]", "\x1b[2J\x1b[31m", "\x1b]0;title\x07",
    "\x9b6n", "\x07\x08\x7f", "\x00", "\r\n", "\u2028\u2029", "\u202eevil", "\ud800", "\udfff",
    "\udcff\udcfe", '"""', "'''", "*/", "/*", "//", "\\", "??/", "??=", "\n#error x\n", "%s%n{0}{x}",
    f'"""\n{MARKER} = 1\n"""', f"'\n{MARKER} = 1\n#", f"*/ int {MARKER} = 1; /*", f"\n{MARKER}();\n//",
    f'\\\n{MARKER}: ;', f'");\n{MARKER}();\n("', f"??/\n{MARKER} = 1;", "\u00e9\u2603\U0001f600",
    "A" * 5000,
]
NAMES = ["cxl", "rdma", "spec", "lax", "vendor", "permissive", "linux-fwctl", "linux-raw", "cxl.raw",
         "cxl.fwctl", "rdma.devx", "CAP_SYS_ADMIN", "CAP_SYS_RAWIO", "debug_write_full", "raw_allow_all",
         "integrity", "SET_FEATURE", "region_create", "nosuch", ""]
NUMBERS = ["NaN", "Infinity", "-Infinity", "1e999", "-0", "1.5", "9" * 4301, str(2**64), str(-(2**63)), "0"]


def _hostile_strings() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE_TEXT), st.sampled_from(NAMES), st.text(max_size=40),
                     st.builds(lambda a, b: a + b, st.sampled_from(NAMES), st.sampled_from(HOSTILE_TEXT)))


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
                        st.floats(allow_nan=False, allow_infinity=False), HOSTILE_STRINGS)
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(HOSTILE_STRINGS, inner, max_size=3)),
                        max_leaves=6)


# Built once: a strategy built inside a draw is validated again on every case.
HOSTILE_STRINGS = _hostile_strings()
JSON_VALUES = _json_values()


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


def _delete(doc: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return doc
    node = doc
    for p in path[:-1]:
        node = node[p]
    del node[path[-1]]
    return doc


@st.composite
def hostile_file(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name, content) of one hostile corpus file."""
    seed = draw(st.sampled_from(SEEDS))
    doc = json.loads(seed.read_text())
    text: str | None = None
    raw: bytes | None = None
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        kind = draw(st.sampled_from(["set", "set", "string", "name", "delete", "unknown-key", "steps",
                                     "truncate", "duplicate", "number", "nest", "encoding", "text", "text"]))
        if kind == "text":  # free text that a valid file may hold: it must replay and export safely
            if isinstance(doc, dict) and isinstance(doc.get("violation"), dict):
                doc["violation"][draw(st.sampled_from(["message", "signature"]))] = draw(HOSTILE_STRINGS)
            continue
        if kind in ("set", "string", "name", "delete", "unknown-key") and not isinstance(doc, (dict, list)):
            kind = "set"
        if kind == "set":
            doc = _set(doc, draw(st.sampled_from(paths)), draw(JSON_VALUES))
        elif kind in ("string", "name"):
            strings = [p for p in paths if p and isinstance(_get(doc, p), str)] or paths
            value = draw(HOSTILE_STRINGS) if kind == "string" else draw(st.sampled_from(NAMES))
            doc = _set(doc, draw(st.sampled_from(strings)), value)
        elif kind == "delete":
            doc = _delete(doc, draw(st.sampled_from(paths)))
        elif kind == "unknown-key":
            objects = [p for p in paths if isinstance(_get(doc, p), dict)]
            if objects:
                _get(doc, draw(st.sampled_from(objects)))[draw(HOSTILE_STRINGS)] = draw(JSON_VALUES)
        elif kind == "steps" and isinstance(doc, dict) and isinstance(doc.get("steps"), list) and doc["steps"]:
            steps = doc["steps"]
            doc["steps"] = [copy.deepcopy(draw(st.sampled_from(steps))) for _ in range(draw(st.integers(0, 60)))]
        else:
            text = json.dumps(doc, indent=draw(st.sampled_from([None, 2])))
            if kind == "truncate":
                text = text[: draw(st.integers(0, len(text)))]
            elif kind == "duplicate" and "{" in text:
                at = text.index("{", draw(st.integers(0, text.rindex("{"))))
                text = text[: at + 1] + '"format": 1, "steps": [], ' * draw(st.integers(1, 2)) + text[at + 1:]
                text = text.replace(", }", "}")
            elif kind == "number":
                spots = [i for i, ch in enumerate(text) if ch.isdigit()] or [0]
                at = draw(st.sampled_from(spots))
                end = at
                while end < len(text) and text[end].isdigit():
                    end += 1
                text = text[:at] + draw(st.sampled_from(NUMBERS)) + text[end:]
            elif kind == "nest":
                depth = draw(st.sampled_from([50, 1000, 100_000]))
                text = text.replace('"args": {', '"args": {"deep": ' + "[" * depth + "]" * depth + ", ", 1)
            elif kind == "encoding":
                how = draw(st.sampled_from(["utf-16", "latin-1", "bom", "bad-byte", "nul"]))
                raw = _encode(text, how)
            break
    if raw is None:
        raw = (text if text is not None else json.dumps(doc)).encode("utf-8", "surrogatepass")
    name = "".join(ch for ch in draw(HOSTILE_STRINGS) if ch not in "/\x00")[:100] or "x"
    return name + draw(st.sampled_from([".json", "", ".JSON"])), raw


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _encode(text: str, how: str) -> bytes:
    if how == "utf-16":
        return text.encode("utf-16")
    if how == "latin-1":
        return text.replace('"cxl"', '"c\u00e9l"').encode("latin-1", "replace")
    if how == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    if how == "bad-byte":
        return text.encode()[: len(text) // 2] + b"\xff\xfe\xc0" + text.encode()[len(text) // 2:]
    return text.encode() + b"\x00"


# ----------------------------------------------------------------------------- running ptfuzz in-process


class Hang(BaseException):
    """A case ran past ``CASE_SECONDS``."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang()


@contextlib.contextmanager
def _cached_registry() -> Iterator[None]:
    """One registry for every in-process call (loading plugins is not what is under test here)."""
    registry = host.load()
    real = host.load
    host.load = lambda plugin_files=(), **kw: registry if not plugin_files and not kw else real(plugin_files, **kw)
    try:
        yield
    finally:
        host.load = real


def run_cli(argv: list[str], encoding: str) -> tuple[int, str, str]:
    """``ptfuzz ARGV`` in-process, stdout and stderr captured through a terminal of ``encoding``."""
    out_b, err_b = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_b, encoding=encoding, errors="strict", write_through=True)
    err = io.TextIOWrapper(err_b, encoding=encoding, errors="strict", write_through=True)
    code: Any = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(argv)
        except SystemExit as exc:
            code = exc.code
        except Hang:
            raise
        except BaseException as exc:  # anything else escaping main() is a traceback to the user
            code = f"escaped {type(exc).__name__}: {exc}"
        out.flush()
        err.flush()
    return (code if isinstance(code, int) else (0 if code is None else str(code))), \
        out_b.getvalue().decode(encoding, "replace"), err_b.getvalue().decode(encoding, "replace")


def _bad_chars(text: str) -> list[str]:
    return sorted({repr(ch) for ch in text
                   if (ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F or 0xD800 <= ord(ch) <= 0xDFFF})


class Oracle:
    """Runs the commands on one file and records what happened; ``problems`` must stay empty."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.registry = host.load()
        self.stats: Counter[str] = Counter()
        self.problems: list[str] = []
        self.c_files: list[Path] = []
        good = ROOT / "corpora/cxl/permissive--spec--kernel-owned-integrity--SET_LSA--lsa.json"
        with _cached_registry():
            code, _, err = run_cli(["export", str(good), "--format", "pytest", "-o", str(workdir / "ref.py")],
                                   "utf-8")
        assert code == 0, err
        self.reference = reference_body((workdir / "ref.py").read_text())

    def problem(self, case: str, what: str) -> None:
        self.problems.append(f"{case}: {what}")

    def check(self, name: str, content: bytes, encoding: str) -> None:
        n = self.stats["cases"]
        self.stats["cases"] += 1
        case_dir = self.workdir / f"case{n % 50}"
        case_dir.mkdir(exist_ok=True)
        for old in case_dir.iterdir():
            old.unlink()
        # lone surrogates as the bytes they would be (a Linux file name is bytes, not text)
        fs_name = os.fsdecode(name.encode("utf-8", "surrogatepass")[:200])
        path = case_dir / (fs_name if fs_name not in (".", "..") else f"x{fs_name}")
        path.write_bytes(content)
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
        try:
            with _cached_registry():
                self._commands(f"case {n} ({name!r})", path, encoding)
        except Hang:
            self.stats["hangs"] += 1
            self.problem(f"case {n} ({name!r})", f"did not finish in {CASE_SECONDS:g}s")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if len(self.c_files) >= GCC_BATCH:
            self.compile_c()

    def _commands(self, case: str, path: Path, encoding: str) -> None:
        expected: int | None = None
        try:
            expected = int(do_replay(self.registry, corpus.load(path)).still_fails)
        except PtfuzzError:
            pass
        except Exception as exc:
            self.problem(case, f"the API raised {type(exc).__name__}: {exc}")
        outs = {}
        for fmt in ("replay-q", "replay", "text", "pytest", "c"):
            if fmt in ("text", "pytest") and outs["replay"] == 2:
                continue  # export loads as replay does; one export ("c") checks the refusal
            out_file = path.parent / f"out.{fmt}"
            argv = (["replay", "-q", str(path)] if fmt == "replay-q" else ["replay", str(path)] if fmt == "replay"
                    else ["export", str(path), "--format", fmt] + ([] if fmt == "text" else ["-o", str(out_file)]))
            code, out, err = run_cli(argv, encoding)
            outs[fmt] = code
            self.stats[f"{fmt}:exit {code}"] += 1
            self._judge(case, fmt, code, out, err)
            if code == 0 and fmt == "pytest":
                for p in python_export_problems(out_file.read_text(), self.reference):
                    self.stats["injections"] += 1
                    self.problem(case, f"pytest export: {p}")
            if code == 0 and fmt == "c":
                src = out_file.read_text()
                for p in c_export_problems(src):
                    self.stats["injections"] += 1
                    self.problem(case, f"C export: {p}")
                kept = self.workdir / f"c{len(self.c_files)}.c"
                kept.write_text(src)
                self.c_files.append(kept)
        if expected is not None and outs["replay"] != expected:
            self.problem(case, f"replay exited {outs['replay']} but the executor says still_fails={expected}")
        if outs["replay"] != outs["replay-q"]:
            self.problem(case, f"replay exited {outs['replay']}, replay -q {outs['replay-q']}")
        if outs["replay"] in (0, 1) and outs.get("text") != 0:
            self.problem(case, f"replay worked but export --format text exited {outs['text']}")
        self.stats["replayed" if outs["replay"] in (0, 1) else "refused"] += 1

    def _judge(self, case: str, fmt: str, code: int | str, out: str, err: str) -> None:
        if "Traceback" in out + err or not isinstance(code, int) or code not in (0, 1, 2):
            self.stats["tracebacks"] += 1
            self.problem(case, f"{fmt}: exit {code!r}: {(err or out)[-400:]!r}")
            return
        lines = [line for line in err.splitlines() if line.strip()]
        if code == 2 and (len(lines) != 1 or not lines[0].startswith("ptfuzz: error: ")):
            self.problem(case, f"{fmt}: exit 2 without exactly one error line: {err[-400:]!r}")
        if code in (0, 1) and err:
            self.problem(case, f"{fmt}: exit {code} with stderr {err[-200:]!r}")
        bad = _bad_chars(out + err)
        if bad:
            self.stats["raw control characters"] += 1
            self.problem(case, f"{fmt}: printed raw {bad[:5]}")
        if len(err) > 3000:
            self.problem(case, f"{fmt}: an error line of {len(err):,} characters")

    def compile_c(self) -> None:
        if self.c_files:
            self.stats["C files compiled"] += len(self.c_files)
            why = gcc_problems(self.c_files)
            if why:
                self.stats["injections"] += 1
                self.problem("gcc", why)
            for p in self.c_files:
                p.unlink()
            self.c_files = []


def campaign(examples: int, workdir: Path, seed: int | None = None,
             on_case: Callable[[Oracle], None] | None = None) -> Oracle:
    """Run ``examples`` hostile files through the oracle (derandomized unless ``seed`` is given)."""
    oracle = Oracle(workdir)

    @settings(max_examples=examples, derandomize=seed is None, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=["generate"])
    @given(hostile_file(), st.sampled_from(["utf-8", "utf-8", "ascii", "latin-1"]))
    def one(case: tuple[str, bytes], encoding: str) -> None:
        oracle.check(case[0], case[1], encoding)
        if on_case is not None:
            on_case(oracle)

    (hseed(seed)(one) if seed is not None else one)()
    oracle.compile_c()
    return oracle


def _shard(examples: int, seed: int, report: Path) -> None:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ptfuzz-hostile-") as tmp:
        def progress(o: Oracle) -> None:
            if o.stats["cases"] % 2000 == 0:
                print(f"  shard {seed}: {o.stats['cases']:,} cases, {len(o.problems)} problems, "
                      f"{time.monotonic() - start:.0f}s", flush=True)

        oracle = campaign(examples, Path(tmp), seed=seed, on_case=progress)
    report.write_text(json.dumps({"stats": dict(oracle.stats), "problems": oracle.problems[:200],
                                  "seconds": round(time.monotonic() - start, 1)}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=100_000, help="hostile files in total")
    ap.add_argument("--shards", type=int, default=2, help="parallel processes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard-of", nargs=2, metavar=("SEED", "REPORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.shard_of:
        _shard(args.examples, int(args.shard_of[0]), Path(args.shard_of[1]))
        return 0
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ptfuzz-hostile-reports-") as tmp:
        per = -(-args.examples // args.shards)
        procs = [(Path(tmp, f"{i}.json"), subprocess.Popen(
            [sys.executable, __file__, "--examples", str(per), "--shard-of", str(args.seed + i), str(Path(tmp, f"{i}.json"))]))
            for i in range(args.shards)]
        total: Counter[str] = Counter()
        problems: list[str] = []
        for report, proc in procs:
            proc.wait()
            if proc.returncode != 0 or not report.exists():
                problems.append(f"shard {report.stem} exited {proc.returncode}")
                continue
            data = json.loads(report.read_text())
            total.update(data["stats"])
            problems.extend(data["problems"])
    elapsed = time.monotonic() - start
    print(f"hostile corpus files: {total['cases']:,} in {elapsed:.0f}s ({args.shards} shards, seed {args.seed})")
    for key in ("tracebacks", "hangs", "injections", "raw control characters"):
        print(f"  {key}: {total[key]}")
    for key in sorted(k for k in total if k not in ("cases", "tracebacks", "hangs", "injections",
                                                   "raw control characters")):
        print(f"  {key}: {total[key]:,}")
    for p in problems[:30]:
        print(f"  PROBLEM {p}")
    print(f"  problems: {len(problems)}")
    return 1 if problems else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
