"""The committed corpus: the files under ``corpora/`` that git tracks.

Tests that vouch for ``corpora/`` (every file replays, is 1-minimal, is what
ptfuzz writes today, exports to C) check the findings this repository ships,
not whatever a user's own run left there: ``ptfuzz run`` writes into
``corpora/`` by default, and a finding made with ``--plugin`` does not
replay without that plugin.  Staged files count (``git ls-files`` reads the
index), so a new finding is checked as soon as it is added.  Outside a git
checkout (an unpacked sdist) every file counts.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT / "corpora"


@functools.cache
def _tracked() -> frozenset[Path] | None:
    """Corpus files git tracks, or None when this is not a git checkout (or git is absent)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", "corpora"], cwd=ROOT, capture_output=True,
                             check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return frozenset(ROOT / name for name in out.decode().split("\0") if name)


def corpus_files(subsystem: str = "*", pattern: str = "*.json") -> list[Path]:
    """Committed corpus files ``corpora/SUBSYSTEM/PATTERN``, sorted."""
    tracked = _tracked()
    found = sorted(CORPORA.glob(f"{subsystem}/{pattern}"))
    return found if tracked is None else [p for p in found if p in tracked]
