"""Text from corpus files, made safe to print and to embed in exported code.

A corpus file is attacker-controlled data: it travels with bug reports and
shared databases.  Everything ptfuzz shows or writes from one goes through
this module, so there is one place that decides what "safe" means:

* on a terminal, control characters (all of C0 including newline and tab,
  DEL, C1), lone surrogates, line/paragraph separators and bidirectional
  overrides are shown as visible escapes (``\\x1b``), never emitted raw;
* values quoted in messages are cut to about 80 characters, with the total
  length, so a 200 MB string is not a 200 MB error line;
* in exported code, corpus text appears only as escaped string literals
  (``ascii()`` for Python, ``\\ooo`` byte escapes for C) or as line comments
  whose content has no character that could end the comment.
"""

from __future__ import annotations

import re

#: Longest quoted value in a message or a trace line before it is cut.
CUT = 80

# C0, DEL, C1; lone surrogates; U+2028/2029 (line breaks to many tools); bidi
# embedding/override/isolate marks, which reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every unsafe character replaced by a visible escape."""
    return _UNSAFE.sub(_escape, text)


def cut(text: str, limit: int = CUT) -> str:
    """``text`` cut to about ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 3]}... ({len(text):,} chars)"


def shown(value: object, limit: int = CUT) -> str:
    """A corpus value as quoted in a message: ``repr`` (escapes controls), cut to ``limit``."""
    if isinstance(value, str) and len(value) > limit:  # never repr 16 MiB to show 80 characters
        return visible(f"{repr(value[:limit])[: limit - 3]}... ({len(value):,} chars)")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        return f"<integer of {value.bit_length():,} bits>"
    return visible(cut(repr(value), limit))


def line(text: str, limit: int | None = None) -> str:
    """One printable line: unsafe characters escaped, optionally cut."""
    return visible(text if limit is None else cut(text, limit))


# ----------------------------------------------------------------------------- exported code


def py_comment(label: str, text: str) -> str:
    """A Python ``#`` comment line; nothing in ``text`` can end it (newlines are escaped)."""
    return f"# {label}: {visible(text)}"


_C_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\", "?"}


def _c_bytes(text: str) -> str:
    data = text.encode("utf-8", "surrogatepass")
    return "".join(chr(b) if chr(b) in _C_PLAIN else f"\\{b:03o}" for b in data)


def c_string(text: str) -> str:
    """A C string literal: printable ASCII as is, every other byte (and ``"`` ``\\`` ``?``) as ``\\ooo``.

    Octal escapes take at most three digits, so a following digit never joins
    one; escaping ``?`` rules out trigraphs such as ``??/`` in ISO C modes.
    """
    return f'"{_c_bytes(text)}"'


def c_comment(label: str, text: str) -> str:
    """A C ``//`` comment line with the same escaping as ``c_string``, inside quotes.

    The closing quote means the line never ends in a backslash, which would
    splice the next line of code into the comment.
    """
    return f'// {label}: "{_c_bytes(text)}"'
