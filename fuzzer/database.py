"""``--db``: what a rerun remembers, in a directory or in Redis.

One address serves both searches.  The Hypothesis search hands the opened
database to Hypothesis, which keeps its own failing examples there.  The
native search keeps two things of its own in the same database, under its
own keys (one pair per subsystem, policy with its removed rules, and device):

* **findings**: for each signature, the shortest sequence seen that shows it
  (the corpus file's ``steps``, as JSON);
* **seeds**: the sequence that first reached each behaviour the search had
  not seen before (``Explorer.behaviours``).

A rerun replays the findings first, then the seeds, before drawing anything:
a known bug is found again in its first sequences, and the search starts
with the arguments and callers that worked last time (``Explorer.learn``).
The storage is Hypothesis's own (``DirectoryBasedExampleDatabase``,
``hypothesis.extra.redis.RedisExampleDatabase``): a key holds a set of
values, which is all this needs.

What comes back from a database is as hostile as a corpus file (a shared
Redis): values are parsed with the corpus reader, size-capped, and a
sequence with any step the executor refuses is skipped.  An address that
cannot be served is the user's configuration (``UsageError``, exit 2); a
database that fails mid-run costs the memory, not the run (one warning).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from fuzzer import corpus, safetext
from fuzzer.errors import CorpusError, UsageError
from fuzzer.world import Step

if TYPE_CHECKING:  # pragma: no cover
    from fuzzer.executor import Executor

#: Schemes ``--db`` understands; anything else with ``scheme://`` is an error, not a directory.
REDIS_SCHEMES = ("redis", "rediss", "unix")
#: Layout of the native search's keys and values; a new layout gets a new number (old keys are ignored).
LAYOUT = "ptfuzz.native/1"
#: Values read per key, at most (a database shared by many runs must not make a start slow).
MAX_VALUES = 2000
#: Bytes per stored value, at most; longer ones are ignored on read and never written.
MAX_VALUE = 256 * 1024
#: Seconds a Redis connection or command may take before the address is declared unusable.
REDIS_TIMEOUT = 5

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme_of(address: str) -> str | None:
    """``redis`` for ``redis://host``; None for a directory path."""
    m = _SCHEME.match(address)
    return m.group(1).lower() if m else None


def open_database(address: str | None) -> ExampleDatabase | None:
    """The database at ``address`` (a directory, ``redis://``, ``rediss://`` or ``unix://``), or None.

    Raises ``UsageError`` naming the address when it cannot be served.
    Opening does not contact a server; ``check`` does.
    """
    if not address:
        return None
    scheme = scheme_of(address)
    if scheme is None:
        return _directory(address)
    if scheme not in REDIS_SCHEMES:
        raise UsageError(f"--db {safetext.shown(address)}: unknown scheme {scheme!r}; use a directory, "
                         f"redis://HOST:PORT/N, rediss://HOST:PORT/N (TLS) or unix:///PATH/TO/redis.sock")
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError:
        raise UsageError(f"--db {safetext.shown(address)} needs the redis package: "
                         f"pip install 'ptfuzz[redis]'") from None
    if scheme == "rediss":
        try:
            import ssl  # noqa: F401  (redis-py's TLS; absent from a Python built without OpenSSL)
        except ImportError:
            raise UsageError(f"--db {safetext.shown(address)}: this Python has no TLS support "
                             f"(the ssl module); use redis:// or a directory") from None
    try:
        client = redis.Redis.from_url(address, socket_connect_timeout=REDIS_TIMEOUT,
                                      socket_timeout=REDIS_TIMEOUT)
    except Exception as exc:  # a malformed URL: the user's configuration
        raise UsageError(f"--db {safetext.shown(address)}: not a Redis address: {type(exc).__name__}: "
                         f"{safetext.cut(str(exc))}") from None
    return Tolerant(RedisExampleDatabase(client))


class Tolerant(ExampleDatabase):
    """A Redis example database whose failure mid-run is one warning, then an empty database.

    Hypothesis calls the database from deep inside its engine: a Redis that goes
    away there used to end the run with a traceback.  Wrapped, both searches see
    a database that forgets (``fetch`` yields nothing, ``save`` is dropped) once
    it has failed, and the campaign goes on with its local state.  ``warn`` says
    it once; a cluster slice replaces it to send the warning to its client.
    """

    def __init__(self, inner: ExampleDatabase) -> None:
        super().__init__()
        self.inner: ExampleDatabase | None = inner
        self.redis = getattr(inner, "redis", None)
        self.warn: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)
        self._errors = _failures()

    def _lost(self, exc: BaseException) -> None:
        self.inner = None
        self.warn(f"ptfuzz: warning: --db failed ({type(exc).__name__}: {safetext.cut(str(exc), 200)}); "
                  f"the run goes on without it")

    def save(self, key: bytes, value: bytes) -> None:
        if self.inner is not None:
            try:
                self.inner.save(key, value)
            except self._errors as exc:
                self._lost(exc)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        if self.inner is None:
            return
        try:
            yield from list(self.inner.fetch(key))
        except self._errors as exc:
            self._lost(exc)

    def delete(self, key: bytes, value: bytes) -> None:
        if self.inner is not None:
            try:
                self.inner.delete(key, value)
            except self._errors as exc:
                self._lost(exc)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        if self.inner is not None:
            try:
                self.inner.move(src, dest, value)
            except self._errors as exc:
                self._lost(exc)

    def _start_listening(self) -> None:  # change listeners: not offered (Hypothesis asks only if present)
        pass

    def _stop_listening(self) -> None:
        pass


def _directory(address: str) -> ExampleDatabase:
    path = Path(address)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--db {safetext.shown(address)}: cannot create the database directory: "
                         f"{exc.strerror or exc}") from None
    return DirectoryBasedExampleDatabase(str(path))


def check(address: str | None) -> None:
    """Open ``address`` and, for Redis, reach it now: a typo must not cost the campaign (exit 2)."""
    db = open_database(address)
    client = getattr(db, "redis", None)
    if client is None:
        return
    try:
        client.ping()
    except Exception as exc:  # refused, timeout, TLS handshake, auth: all the user's configuration
        raise UsageError(f"--db {safetext.shown(address)}: cannot use this Redis: {type(exc).__name__}: "
                         f"{safetext.cut(str(exc), 200)}") from None


def _failures() -> tuple[type[BaseException], ...]:
    """What a database may raise mid-run: I/O errors, and Redis's own when the redis package is there."""
    try:
        from redis.exceptions import RedisError
    except ImportError:
        return (OSError,)
    return (OSError, RedisError)


class Store:
    """The native search's memory for one subsystem, policy (with removed rules) and device."""

    def __init__(self, db: ExampleDatabase, subsystem: str, policy: str, device: str,
                 warn: Callable[[str], None] | None = None) -> None:
        self.db: ExampleDatabase | None = db
        where = f"{LAYOUT}\0{subsystem}\0{policy}\0{device}".encode()
        base = b"ptfuzz-native:" + hashlib.sha256(where).hexdigest()[:32].encode()
        self.findings_key = base + b":findings"
        self.seeds_key = base + b":seeds"
        self._warn: Callable[[str], None] = warn or (lambda text: print(text, file=sys.stderr, flush=True))
        if isinstance(db, Tolerant):
            db.warn = self._warn
        self._errors = _failures()
        #: signature -> (length, stored value) of what this store holds, read lazily
        self._best: dict[str, tuple[int, bytes]] | None = None

    @property
    def warn(self) -> Callable[[str], None]:
        """Where a database failure is said (once): a Redis database says it itself (``Tolerant``)."""
        return self._warn

    @warn.setter
    def warn(self, value: Callable[[str], None]) -> None:
        self._warn = value
        if isinstance(self.db, Tolerant):
            self.db.warn = value

    # ---------------------------------------------------------------- reading

    def _fetch(self, key: bytes) -> list[bytes]:
        if self.db is None:
            return []
        out: list[bytes] = []
        try:
            for value in self.db.fetch(key):
                if len(out) >= MAX_VALUES:
                    break
                if isinstance(value, bytes) and len(value) <= MAX_VALUE:
                    out.append(value)
        except self._errors as exc:
            self._lost(exc)
        return out

    @staticmethod
    def _decode(value: bytes) -> tuple[str, list[Step]] | None:
        """A stored ``{"signature": ..., "steps": [...]}``, or None if it is not one (hostile or stale)."""
        try:
            doc = corpus.parse(value.decode("utf-8"), "--db value")
            steps = doc.get("steps")
            sig = doc.get("signature", "")
            if not isinstance(sig, str) or not isinstance(steps, list) or not steps:
                return None
            return sig, [corpus.step_from_json(s, "--db value") for s in steps]
        except (CorpusError, UnicodeDecodeError):
            return None

    def _sequences(self, key: bytes, executor: Executor) -> list[tuple[str, list[Step]]]:
        out = []
        for value in self._fetch(key):
            got = self._decode(value)
            if got is not None and all(executor.validate(s) is None for s in got[1]):
                out.append(got)
        # the database's order is its own (a set): sort, so a rerun is a function of its contents
        return sorted(out, key=lambda item: (len(item[1]), item[0], repr(item[1])))

    def known(self, executor: Executor) -> list[tuple[str, list[Step]]]:
        """Stored findings ``(signature, steps)`` that this executor can run, shortest first."""
        return self._sequences(self.findings_key, executor)

    def seeds(self, executor: Executor) -> list[list[Step]]:
        """Stored sequences that reached a new behaviour, shortest first."""
        return [steps for _, steps in self._sequences(self.seeds_key, executor)]

    # ---------------------------------------------------------------- writing

    @staticmethod
    def _encode(signature: str, steps: Iterable[Step]) -> bytes:
        doc = {"signature": signature, "steps": [corpus.step_to_json(s) for s in steps]}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def save_finding(self, signature: str, steps: list[Step]) -> None:
        """Keep ``steps`` as the sequence for ``signature`` unless a shorter one is stored."""
        if self.db is None:
            return
        if self._best is None:
            self._best = {}
            for value in self._fetch(self.findings_key):
                got = self._decode(value)
                if got is not None:
                    old = self._best.get(got[0])
                    if old is None or len(got[1]) < old[0]:
                        self._best[got[0]] = (len(got[1]), value)
        value = self._encode(signature, steps)
        old = self._best.get(signature)
        if (old is not None and old[0] <= len(steps)) or len(value) > MAX_VALUE:
            return
        try:
            self.db.save(self.findings_key, value)
            if old is not None:
                self.db.delete(self.findings_key, old[1])
        except self._errors as exc:
            self._lost(exc)
            return
        self._best[signature] = (len(steps), value)

    def save_seed(self, steps: list[Step]) -> None:
        """Keep a sequence that reached a behaviour not seen before."""
        if self.db is None:
            return
        value = self._encode("", steps)
        if len(value) > MAX_VALUE:
            return
        try:
            self.db.save(self.seeds_key, value)
        except self._errors as exc:
            self._lost(exc)

    def _lost(self, exc: BaseException) -> None:
        """The database failed mid-run: say so once, and go on without it."""
        self.db = None
        self.warn(f"ptfuzz: warning: --db failed ({type(exc).__name__}: {safetext.cut(str(exc), 200)}); "
                  f"the run goes on without it")


def warm_start(store: Store, executor: Executor, run: Callable[[list[Step]], bool]) -> None:
    """Replay the stored findings, then the seeds, through ``run`` (False: the budget is spent).

    Called by the native search before it draws anything.
    """
    for _, steps in store.known(executor):
        if not run(steps):
            return
    for steps in store.seeds(executor):
        if not run(steps):
            return


def store_for(db: Any, subsystem: str, policy: str, device: str) -> Store | None:
    """The native search's store in ``db`` (None without a database)."""
    return Store(db, subsystem, policy, device) if isinstance(db, ExampleDatabase) else None
