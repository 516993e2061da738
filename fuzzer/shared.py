"""What campaigns on several machines share through Redis: known signatures and coverage counts.

The ``--db`` address (when it is Redis) serves two memories.  ``fuzzer.database``
keeps what a *rerun* needs (each signature's shortest sequence, the seeds of new
behaviours).  This module keeps what *concurrent* campaigns need, per scope
(subsystem, policy with its removed rules and knobs, device):

* ``ptfuzz:known:<scope>``, a hash: signature -> ``{"owner": ..., "steps": n}``.
  The first campaign to save a signature claims it with ``HSETNX`` (atomic in
  Redis), so two campaigns on two machines never both write it: the other one
  reports the finding as saved by its owner.  The owner is the machine and
  the corpus directory (``owner_id``): a rerun into the same corpus may replace
  its own file with a shorter sequence, another corpus never writes it.
  Slices read the hash before they start, and once more at the first sighting
  of a signature, and do not minimize what is known with as short a sequence,
  so N machines do not minimize one bug N times (two slices that see a new bug
  in the same second still may: the claim is made when a minimized finding
  reaches its client, not at the raw sighting; a stated simplification).
* ``ptfuzz:coverage:<scope>``, a hash of counters (``sequences``, ``steps``,
  ``slices``, ``findings``) that every campaign adds to (``HINCRBY``).

A directory ``--db`` (or none) shares nothing: every method answers as if no
one else were running.  Redis failing mid-run is one warning (the caller's
``warn``); from then on the campaign runs on its local state and loses nothing:
a claim that cannot be made is taken as granted (the file is written locally).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fuzzer import safetext
from fuzzer.database import REDIS_SCHEMES, REDIS_TIMEOUT, scheme_of

#: Layout of the keys below; a new layout gets a new number.
LAYOUT = "ptfuzz.shared/1"
#: Known signatures read per scope, at most (a hostile or huge hash must not stall a start).
MAX_KNOWN = 5000


def db_warnings_once(warn: Callable[[str], None] | None) -> Callable[[str], None]:
    """``warn``, passing on each warning once and a failing ``--db`` once in all.

    The shared state, the native search's store and Hypothesis's database all
    notice a Redis that went away; the user is told once.
    """
    said: set[str] = set()

    def say(text: str) -> None:
        kind = "--db" if text.startswith("ptfuzz: warning: --db") else text
        if kind not in said:
            said.add(kind)
            if warn is not None:
                warn(text)
            else:
                print(text, file=sys.stderr, flush=True)

    return say


def scope_key(subsystem: str, policy: str, device: str) -> str:
    """The part of every key that names one scope (hashed: policy labels may hold any character)."""
    return hashlib.sha256(f"{LAYOUT}\0{subsystem}\0{policy}\0{device}".encode()).hexdigest()[:32]


def owner_id(corpus_dir: str | os.PathLike[str]) -> str:
    """Who writes a claimed signature's file: this machine and this corpus directory."""
    return f"{socket.gethostname()}:{Path(corpus_dir).resolve()}"


class Shared:
    """The shared state at a ``--db`` address; inert (local only) unless it is Redis."""

    def __init__(self, address: str | None, owner: str = "",
                 warn: Callable[[str], None] | None = None) -> None:
        self.owner = owner
        self.warn = warn or (lambda text: print(text, file=sys.stderr, flush=True))
        self.client: Any = None
        #: Redis was there and failed: the campaign runs on its local state from then on
        self.failed = False
        if address and scheme_of(address) in REDIS_SCHEMES:
            import redis  # database.check has made sure it is installed and the address is served

            self.client = redis.Redis.from_url(address, socket_connect_timeout=REDIS_TIMEOUT,
                                               socket_timeout=REDIS_TIMEOUT)
            from redis.exceptions import RedisError

            self._errors: tuple[type[BaseException], ...] = (OSError, RedisError)
        else:
            self._errors = (OSError,)

    @property
    def active(self) -> bool:
        return self.client is not None

    def _lost(self, exc: BaseException) -> None:
        """Redis failed: say so once, then run on local state."""
        self.client = None
        self.failed = True
        self.warn(f"ptfuzz: warning: --db: the shared Redis failed ({type(exc).__name__}: "
                  f"{safetext.cut(str(exc), 200)}); the campaign goes on with its local state")

    def _hgetall(self, key: str) -> dict[Any, Any]:
        """A Redis hash, or nothing once Redis has failed (said once, by ``_lost``)."""
        if self.client is None:
            return {}
        try:
            return dict(self.client.hgetall(key))
        except self._errors as exc:
            self._lost(exc)
            return {}

    # ---------------------------------------------------------------- known signatures

    def known(self, scope: str) -> dict[str, int]:
        """Every claimed signature of ``scope`` and the length of its saved sequence."""
        raw = self._hgetall(f"ptfuzz:known:{scope}")
        out: dict[str, int] = {}
        for sig, value in list(raw.items())[:MAX_KNOWN]:
            got = _claim(value)
            if got is not None and isinstance(sig, bytes):
                out[sig.decode("utf-8", "replace")] = got[1]
        return out

    def length(self, scope: str, signature: str) -> int | None:
        """The length of ``signature``'s claimed sequence, or None if no one has claimed it."""
        if self.client is None:
            return None
        try:
            value = self.client.hget(f"ptfuzz:known:{scope}", signature)
        except self._errors as exc:
            self._lost(exc)
            return None
        got = _claim(value) if value is not None else None
        return None if got is None else got[1]

    def claim(self, scope: str, signature: str, steps: int) -> str | None:
        """Claim ``signature`` for this owner: None if it is ours to write, else the owner who has it.

        Ours when no one had it (the atomic ``HSETNX`` won) or we had it already
        (a shorter sequence then updates the recorded length).
        """
        if self.client is None:
            return None
        key = f"ptfuzz:known:{scope}"
        mine = json.dumps({"owner": self.owner, "steps": steps}, sort_keys=True)
        try:
            if self.client.hsetnx(key, signature, mine):
                return None
            got = _claim(self.client.hget(key, signature))
            if got is None:  # unreadable (hostile, or another layout): ours now
                self.client.hset(key, signature, mine)
                return None
            owner, length = got
            if owner != self.owner:
                return owner
            if steps < length:
                self.client.hset(key, signature, mine)
            return None
        except self._errors as exc:
            self._lost(exc)
            return None

    # ---------------------------------------------------------------- coverage counts

    def count(self, scope: str, **counters: int) -> None:
        """Add to the scope's counters (``sequences=..., steps=...``)."""
        if self.client is None:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for name, n in counters.items():
                pipe.hincrby(f"ptfuzz:coverage:{scope}", name, n)
            pipe.execute()
        except self._errors as exc:
            self._lost(exc)

    def counts(self, scope: str) -> dict[str, int]:
        """The scope's counters, as every campaign sharing this Redis added them."""
        raw = self._hgetall(f"ptfuzz:coverage:{scope}")
        out: dict[str, int] = {}
        for name, value in raw.items():
            try:
                out[name.decode()] = int(value)
            except (ValueError, UnicodeDecodeError):
                continue
        return out


def _claim(value: Any) -> tuple[str, int] | None:
    """A stored claim ``(owner, steps)``, or None if the value is not one (what comes back may be hostile)."""
    try:
        doc = json.loads(value)
    except (TypeError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    owner, steps = doc.get("owner"), doc.get("steps")
    if not isinstance(owner, str) or not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        return None
    return owner, steps
