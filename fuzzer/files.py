"""Reading input files and writing output files, the one careful way.

Input: a corpus file may be anything a user or an attacker names: a FIFO
(``open`` would block forever), ``/dev/zero`` (read until memory runs out), a
directory, or a 2 GB file.  ``read_text`` opens without blocking, refuses what
is not a regular file and reads at most ``MAX_BYTES``.

Output: every file ptfuzz writes (corpus entries, ``--json``, ``--junit``,
``export -o``, ``new-plugin``) is written atomically through a temporary file
in the same directory, named ``.ptfuzz-tmp-*`` so that it never looks like a
corpus file (dot-file, no ``.json``) and never collides with a user's file.
A kill between write and rename leaves such a file behind; saving into the
directory later removes leftovers older than ``STALE_AFTER`` seconds.  A new
file gets the mode ``open()`` would give it (``0o666 & ~umask``: the
temporary file is created 0600 and changed before the rename); a file it
replaces keeps its own mode.  A path that is a symbolic link is written
through: the link's target is replaced, the link stays (``ptfuzz migrate``
of a linked corpus file, ``--json`` into a linked report).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import time
from pathlib import Path

from fuzzer.errors import CorpusError, UsageError
from fuzzer.safetext import line

#: Largest corpus file ptfuzz reads (a minimized finding is a few kilobytes).
MAX_BYTES = 16 * 2**20
TMP_PREFIX = ".ptfuzz-tmp-"
#: Temporary-file names of earlier ptfuzz versions (``.tmp-XXXX.json``), also cleaned up.
OLD_TMP_PREFIX = ".tmp-"
STALE_AFTER = 60.0

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def read_text(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of a regular file of at most ``MAX_BYTES``, or a ``CorpusError`` naming it."""
    where = line(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise CorpusError(f"{where}: cannot read: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise CorpusError(f"{where}: is {kind}, not a corpus file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise CorpusError(f"{where}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise CorpusError(f"{where}: larger than the {MAX_BYTES // 2**20} MiB cap for corpus files")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{where}: not UTF-8 text (byte {exc.start})") from None


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a ``.ptfuzz-tmp-*`` file and ``os.replace``.

    Characters UTF-8 cannot encode (lone surrogates) become backslash escapes
    rather than an exception after the work is done.  Raises ``OSError``.
    """
    target = Path(os.path.realpath(path))  # a link is written through, never replaced by a file
    if target.is_symlink():  # a loop of links: realpath gave up
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = 0o666 & ~umask()
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def umask() -> int:
    """The process's umask, read without changing it where Linux says (``/proc/self/status``).

    Elsewhere it is set and restored at once (``os.umask`` has no read-only form).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for row in fh:
                if row.startswith("Umask:"):
                    return int(row.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def is_temporary(name: str) -> bool:
    return name.startswith(TMP_PREFIX) or (name.startswith(OLD_TMP_PREFIX) and name.endswith(".json"))


def clean_stale(directory: str | os.PathLike[str], now: float | None = None) -> list[Path]:
    """Remove temporary files older than ``STALE_AFTER`` left in ``directory`` by a killed save."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not is_temporary(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue  # another process removed or replaced it
    return removed


def check_writable(path: str, option: str) -> None:
    """Fail before the work, not after: ``path``'s directory must exist and be writable."""
    if not path:
        raise UsageError(f"{option} '': an empty path names no file")
    target = Path(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:  # a name too long, a loop of links, a file used as a directory
        raise UsageError(f"{option} {path!r}: cannot write: {exc.strerror or exc}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise UsageError(f"{option} {path!r}: is a directory")
    if mode is not None and not stat.S_ISREG(mode):
        raise UsageError(f"{option} {path!r}: exists and is not a regular file")
    parent = target.parent
    try:
        parent_ok = stat.S_ISDIR(os.stat(parent).st_mode)
    except OSError:
        parent_ok = False
    if not parent_ok:
        raise UsageError(f"{option} {path!r}: cannot write: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path!r}: cannot write: directory {str(parent)!r} is not writable")


def write_output(path: str, option: str, text: str) -> None:
    """Write an output file the user named with ``option``; a failure is one clear line."""
    check_writable(path, option)
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise UsageError(f"{option} {path!r}: cannot write: {exc.strerror or exc}") from None
