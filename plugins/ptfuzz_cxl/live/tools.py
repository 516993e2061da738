"""The live target's pieces, from Debian's archive by package name, cached.

Nothing is installed on the host: ``fetch.sh`` downloads the packages with an
apt configuration of its own and unpacks them under the cache
(``$PTFUZZ_CACHE``, default ``~/.cache/ptfuzz``).  QEMU 10 comes from
bookworm-backports (the default suite's 7.2 needs ``pci=nomsi`` and predates
the CXL features QEMU now emulates), with the libraries it links; busybox
from the default suites; the guest agent is compiled here with ``gcc -static``.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import attrs

HERE = Path(__file__).resolve().parent

#: (package/suite) that make up QEMU 10 and what it links that bookworm lacks or has too old
QEMU_PACKAGES = (
    "qemu-system-x86/bookworm-backports", "qemu-system-common/bookworm-backports",
    "qemu-system-data/bookworm-backports", "seabios/bookworm-backports",
    "libcapstone4/bookworm", "libpmem1/bookworm", "libfdt1/bookworm", "librdmacm1/bookworm",
    "libibverbs1/bookworm", "libslirp0/bookworm", "libvdeplug2/bookworm", "libfuse3-3/bookworm",
    "libaio1/bookworm", "liburing2/bookworm", "libndctl6/bookworm", "libdaxctl1/bookworm",
    "libnl-3-200/bookworm", "libnl-route-3-200/bookworm",
)
BUSYBOX_PACKAGES = ("busybox-static/bookworm",)


class ToolError(Exception):
    """A piece of the live target could not be fetched or built; the message says which."""


def cache_dir() -> Path:
    return Path(os.environ.get("PTFUZZ_CACHE") or Path.home() / ".cache" / "ptfuzz")


def digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()[:12]


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def fetch(cache: Path, *packages: str) -> Path:
    """Unpack the packages under ``cache/live/root`` (once each); returns that root."""
    live = cache / "live"
    root = live / "root"
    marker = live / ("fetched-" + digest(*(p.encode() for p in packages)))
    if marker.exists():
        return root
    live.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["bash", str(HERE / "fetch.sh"), str(live), *packages],
                          capture_output=True, text=True)
    if proc.returncode:
        raise ToolError(f"fetching {' '.join(packages)} from Debian's archive failed:\n{proc.stderr[-2000:]}")
    marker.touch()
    return root


def deb_version(cache: Path, package: str) -> str:
    """The version of a fetched package, from its .deb's name (``linux-source-7.3_7.3.4-1~bpo13+1_all.deb``)."""
    for deb in sorted((cache / "live" / "debs").glob(f"{package}_*.deb")):
        return deb.name.split("_")[1].replace("%3a", ":")
    raise ToolError(f"{package} has not been fetched")


def newest_deb(cache: Path, pattern: str) -> Path:
    """The fetched .deb of the newest package whose name matches ``pattern`` (``*`` for a version in it)."""
    debs = list((cache / "live" / "debs").glob(f"{pattern}_*.deb"))
    if not debs:
        raise ToolError(f"{pattern} has not been fetched")
    return max(debs, key=lambda p: _natural(p.name))


def deb_name(deb: Path) -> tuple[str, str]:
    """(package, version) from a .deb's name (``linux-image-6.12.117+deb13-amd64-unsigned_6.12.117-1_amd64.deb``)."""
    package, version, _arch = deb.name.split("_")
    return package, version.replace("%3a", ":")


def _natural(name: str) -> list[tuple[int, str]]:
    """Sorts 6.12.117 after 6.12.99."""
    return [(int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", name)]


@attrs.frozen
class Qemu:
    binary: Path
    data_args: tuple[str, ...]
    env: dict[str, str]
    version: str


def qemu(cache: Path) -> Qemu:
    root = fetch(cache, *QEMU_PACKAGES)
    libs = [root / "usr/lib/x86_64-linux-gnu", root / "lib/x86_64-linux-gnu"]
    env = {"LD_LIBRARY_PATH": ":".join(str(p) for p in libs)}
    return Qemu(root / "usr/bin/qemu-system-x86_64",
                ("-L", str(root / "usr/share/seabios"), "-L", str(root / "usr/share/qemu")),
                env, deb_version(cache, "qemu-system-x86"))


def busybox(cache: Path) -> Path:
    return fetch(cache, *BUSYBOX_PACKAGES) / "bin/busybox"


def agent(cache: Path) -> Path:
    """The guest agent, compiled statically; rebuilt when its source changes."""
    src = HERE / "guest" / "agent.c"
    out = cache / "agent" / f"agent-{digest(src.read_bytes())}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    proc = subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", str(tmp), str(src)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise ToolError(f"compiling {src} failed (gcc and libc6-dev are needed):\n{proc.stderr[-2000:]}")
    os.replace(tmp, out)
    return out
