"""Checks shared by the hostile-input tests and the ``fuzz-corpus`` nox session.

An exported file is safe when the corpus supplied no code to it: for Python,
the module's syntax tree has exactly the exporter's shape, with corpus values
only in literals; for C, once comments and literals are removed (as the C
preprocessor would, splices first) no marker the hostile input carried is
left, no trigraph exists, and gcc compiles it in an ISO mode (trigraphs on).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

#: Every injection attempt names this identifier; finding it in code means the corpus wrote code.
MARKER = "PWNED_BY_CORPUS"

GCC = shutil.which("gcc")
GCC_FLAGS = ("-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-std=c11", "-D_DEFAULT_SOURCE")

_TOP = ("SIGNATURE", "SUBSYSTEM", "POLICY", "WITHOUT", "DEVICE", "PLUGIN_FILES", "STEPS")
_IMPORTS = [("fuzzer", ("host",)), ("fuzzer.spec", ("Caller",)), ("fuzzer.world", ("Step",))]


def _literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, int)
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _literal(k) for k in node.keys) and all(_literal(v) for v in node.values)
    return False


def _call_of(node: ast.AST, name: str) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
            and not node.keywords)


def _step(node: ast.AST) -> bool:
    if not _call_of(node, "Step"):
        return False
    assert isinstance(node, ast.Call)
    for arg in node.args:
        if _call_of(arg, "Caller"):
            assert isinstance(arg, ast.Call)
            for c in arg.args:
                if _call_of(c, "frozenset"):
                    assert isinstance(c, ast.Call)
                    if not all(_literal(x) for x in c.args):
                        return False
                elif not _literal(c):
                    return False
        elif not _literal(arg):
            return False
    return True


def python_export_problems(text: str, reference_body: str) -> list[str]:
    """Why ``text`` is not exactly the pytest exporter's shape (empty when it is)."""
    try:
        compile(text, "<export>", "exec", dont_inherit=True)
        tree = ast.parse(text)
    except (SyntaxError, ValueError) as exc:
        return [f"does not compile: {exc}"]
    body = list(tree.body)
    problems: list[str] = []
    if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
        problems.append("no module docstring first")
    else:
        body = body[1:]
    imports = [(b.module, tuple(a.name for a in b.names)) for b in body[:3] if isinstance(b, ast.ImportFrom)]
    if imports != _IMPORTS:
        problems.append(f"imports are {imports}")
    assigns = body[3:3 + len(_TOP)]
    for name, node in zip(_TOP, assigns, strict=False):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == name):
            problems.append(f"expected {name} = ..., got {ast.dump(node)[:200]}")
            continue
        if name == "STEPS":
            if not (isinstance(node.value, ast.List) and all(_step(e) for e in node.value.elts)):
                problems.append("STEPS holds something other than Step(...) of literals")
        elif not _literal(node.value):
            problems.append(f"{name} is not a literal")
    rest = body[3 + len(_TOP):]
    if len(rest) != 1 or not isinstance(rest[0], ast.FunctionDef) or not rest[0].name.startswith("test_"):
        problems.append(f"after the constants: {[type(n).__name__ for n in rest]}, expected one test function")
    elif function_body(rest[0]) != reference_body:
        problems.append("the test function's body differs from the exporter's")
    return problems


def function_body(fn: ast.FunctionDef) -> str:
    return ast.dump(ast.Module(body=fn.body, type_ignores=[])) + ast.dump(fn.args)


def reference_body(text: str) -> str:
    """The test function's body in a known-good export."""
    tree = ast.parse(text)
    fn = tree.body[-1]
    assert isinstance(fn, ast.FunctionDef)
    return function_body(fn)


def c_code_only(src: str) -> str:
    """``src`` without comments, string and character literals (after line splicing, as cpp does)."""
    s = src.replace("\\\n", "")
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if s.startswith("//", i):
            j = s.find("\n", i)
            i = n if j < 0 else j
        elif s.startswith("/*", i):
            j = s.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        elif c in "\"'":
            j = i + 1
            while j < n and s[j] != c:
                if s[j] == "\n":
                    break  # an unterminated literal: leave the rest as code so the check sees it
                j += 2 if s[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def c_export_problems(src: str) -> list[str]:
    problems = []
    if MARKER in c_code_only(src):
        problems.append(f"{MARKER} appears outside comments and literals")
    if "??" in src:
        problems.append("a trigraph-like '??' sequence")
    if any(ord(ch) > 0x7E or (ord(ch) < 0x20 and ch not in "\n\t") for ch in src):
        problems.append("a character outside printable ASCII")
    return problems


def gcc_problems(paths: Sequence[Path]) -> str:
    """gcc's complaints about ``paths`` (compiled in one run), or an empty string."""
    if GCC is None or not paths:
        return ""
    done = subprocess.run([GCC, *GCC_FLAGS, *map(str, paths)], capture_output=True, text=True,
                          errors="backslashreplace", timeout=600, check=False)
    return "" if done.returncode == 0 else done.stderr[-4000:]
