"""Real servers for tests: a throw-away redis-server on a loopback port, a Dask LocalCluster of processes.

Each skips with the reason (and the command that installs it) when its binary
or package is missing; nothing here is mocked.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from fuzzer import database


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server process of the test's own, on a random loopback port (and a unix socket)."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
        pytest.importorskip("redis", reason="the redis package is not installed: pip install 'ptfuzz[redis]'")
        self.port = free_port()
        self.sock = directory / "redis.sock"
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.unix_url = f"unix://{self.sock}?db=1"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--unixsocket", str(self.sock), "--unixsocketperm", "700", "--dir", str(directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                database.check(self.url)
                return
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    pytest.fail(f"redis-server did not start on port {self.port}")
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server now (SIGKILL: as a machine or a network would lose it)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def keys(self) -> list[bytes]:
        import redis

        return list(redis.Redis.from_url(self.url).keys("*"))
