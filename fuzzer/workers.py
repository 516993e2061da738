"""How many local workers this machine runs usefully, and how a worker process dies with its client.

The engine itself is ``fuzzer.cluster`` (a Dask ``LocalCluster`` for
``--workers N``, a remote scheduler for ``--cluster``); it replaced the fork
pool that lived here, and keeps its guarantees (one deadline, one voice, stop
on Ctrl-C/SIGTERM, no orphans, a failing worker named).  What is left here is
machine-local: the limit on ``--workers`` (one per CPU, as memory allows) and
``die_with_parent``, which a local cluster's worker processes call so that a
killed client leaves no worker behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

from fuzzer.errors import UsageError

#: Memory a worker may grow to, for ``max_workers``: one starts at about 35 MiB (64 of
#: them took 2.1 GiB); explored behaviours, Hypothesis's caches and long findings grow it.
WORKER_MEMORY = 256 * 2**20
#: Seconds between a worker's looks at its parent's pid (the fallback to PR_SET_PDEATHSIG).
WATCH_EVERY = 0.25
PR_SET_PDEATHSIG = 1


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, where the platform tells), at least 1."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes of memory available without swapping (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def max_workers() -> tuple[int, str]:
    """The most workers this machine runs usefully, and why: one per CPU (at least 2), as memory allows.

    More processes than CPUs only take turns (64 workers on 2 CPUs: load 55,
    2.1 GiB, and the deadline missed by minutes).
    """
    cpus = usable_cpus()
    limit, why = max(2, cpus), f"{cpus} usable CPU(s)"
    memory = available_memory()
    if memory is not None and memory // WORKER_MEMORY < limit:
        limit = max(1, memory // WORKER_MEMORY)
        why += f", {memory / 2**30:.1f} GiB available at {WORKER_MEMORY // 2**20} MiB a worker"
    return limit, why


def check_workers(workers: int) -> None:
    limit, why = max_workers()
    if workers > limit:
        raise UsageError(f"--workers {workers}: at most {limit} on this machine ({why})")


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when ``parent`` dies, however it dies.

    ``prctl(PR_SET_PDEATHSIG)`` is Linux's way; a daemon thread that polls
    the parent pid covers other systems (and a failed prctl).  SIGKILL, not
    SIGTERM: an orphan must stop writing at once; a save cut short leaves at
    most a ``.ptfuzz-tmp-*`` file, removed by a later save
    (``files.clean_stale``), never a half-written corpus file.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_EVERY)
        os._exit(1)

    threading.Thread(target=watch, name="ptfuzz-parent-watch", daemon=True).start()
