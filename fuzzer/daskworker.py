"""What a local cluster's Dask worker processes do at start (a module of its own: it imports Dask)."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

from distributed import WorkerPlugin


class LocalWorker(WorkerPlugin):
    """A worker process the client started: Ctrl-C is the client's alone, and it dies with the client.

    A terminal's Ctrl-C reaches every process of the foreground group: a worker
    ignores it (the client sets the run's stop event instead, ``fuzzer.cluster``).
    When the client dies, however it dies, the worker is killed
    (``workers.die_with_parent``): Dask's own pipe to the nanny covers most
    ways, not all.
    """

    def __init__(self, client_pid: int) -> None:
        self.client_pid = client_pid

    def setup(self, worker: Any) -> None:
        from fuzzer.workers import die_with_parent

        with contextlib.suppress(ValueError):  # not the main thread: no handler can be set there
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if os.getppid() == self.client_pid:  # a process the client itself started (not a remote worker)
            die_with_parent(self.client_pid)
