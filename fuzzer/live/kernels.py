"""Kernels to judge the models with: built from Debian's ``linux-source-*``, cached by version and config.

A kernel is a Debian source package, a config fragment merged on top of
``tinyconfig``, and patches.  Patches are of two kinds, and every patch file
starts with a line saying why it exists:

* ``test-*.patch``: test-only changes that let a test see what the kernel
  does (QEMU offers only kernel-exclusive features, so without
  ``test-ecs-user-feature.patch`` no fwctl node appears; KASAN does not see
  ``memcpy_fromio()``, so ``test-kasan-mailbox-copies.patch`` checks those
  copies by hand);
* ``revert-*.patch``: a fix taken out, so that a historical policy ("before
  COMMIT") can be checked on a kernel: its findings must show as KASAN
  reports or oopses there, and be refused on the released kernel.

The cache key is the source package's version, the fragment and the
patches, so a CI run reuses a build from an earlier run and any change to
what goes into the kernel rebuilds it.  One build tree per source version is
kept: a kernel that differs by a patch rebuilds in 30 s, not 22 min.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from fuzzer.live import tools
from fuzzer.plugins.cxl import mailbox as mb
from fuzzer.spec import Policy

KERNEL_DIR = tools.HERE / "kernel"
PATCH_DIR = KERNEL_DIR / "patches"


@attrs.frozen
class KernelBuild:
    """One kernel: Debian source package, config fragment, patches (applied in order)."""

    name: str
    package: str
    config: str
    patches: tuple[str, ...] = ()
    doc: str = ""
    #: the historical policy this kernel is the judge for (its fixes reverted)
    policy: str = ""
    #: the policies that describe this kernel as built, by the channels they cover; ``--policy auto``
    #: judges a file with the first one that has all of its channels
    judges: tuple[str, ...] = ("linux-raw", "linux-fwctl")
    #: policy knobs that describe what the test-only patches change (set on every policy judged here)
    knobs: Mapping[str, Any] = attrs.field(factory=dict)

    def judge(self, policy: Policy) -> Policy:
        """``policy`` as this kernel, test patches included, runs it."""
        return attrs.evolve(policy, knobs={**policy.knobs, **self.knobs}) if self.knobs else policy

    def key(self, version: str) -> str:
        parts = [version.encode(), (KERNEL_DIR / self.config).read_bytes()]
        parts += [(PATCH_DIR / p).read_bytes() for p in self.patches]
        return tools.digest(*parts)


_TEST_PATCHES = ("test-ecs-user-feature.patch", "test-kasan-mailbox-copies.patch")
#: test-ecs-user-feature.patch takes ECS out of cxl_exclusive_feats[]
_TEST_KNOBS = {"exclusive_features": mb.EXCLUSIVE_FEATURES - {mb.ECS_UUID}}

KERNELS = {
    k.name: k for k in (
        KernelBuild("7.3", "linux-source-7.3", "cxl-kasan.config", _TEST_PATCHES,
                    doc="Debian's newest kernel source with RAW, fwctl, CXL Features, EDAC and KASAN",
                    knobs=_TEST_KNOBS),
        KernelBuild("7.3-fwctl-unchecked-sizes", "linux-source-7.3", "cxl-kasan.config",
                    (*_TEST_PATCHES, "revert-fwctl-size-checks.patch"),
                    doc="7.3 without the three fwctl size checks in drivers/cxl/core/features.c",
                    policy="linux-fwctl-unchecked-sizes", judges=("linux-raw", "linux-fwctl-unchecked-sizes"),
                    knobs=_TEST_KNOBS),
    )
}

#: suites the source packages come from
SUITES = {"linux-source-7.3": "trixie-backports"}


def _log(msg: str) -> None:
    print(f"ptfuzz live: {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], cwd: Path, log: Path) -> None:
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(cmd) + "\n").encode())
        f.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = log.read_text(errors="replace")[-3000:]
        raise tools.ToolError(f"{' '.join(cmd[:3])} failed in {cwd} (log {log}):\n{tail}")


def _patch(tree: Path, patch: str, log: Path, reverse: bool = False) -> None:
    cmd = ["patch", "-p1", "--forward", "--no-backup-if-mismatch", "-s", "-i", str(PATCH_DIR / patch)]
    _run([*cmd, "-R"] if reverse else cmd, tree, log)


def cached(build: KernelBuild, cache: Path | None = None) -> Path | None:
    """The cached bzImage of this build, or None (never builds)."""
    cache = cache or tools.cache_dir()
    try:
        version = tools.deb_version(cache, build.package)
    except tools.ToolError:
        return None
    image = cache / "kernels" / f"{build.name}-{version}-{build.key(version)}" / "bzImage"
    return image if image.exists() else None


def ensure(build: KernelBuild, cache: Path | None = None, jobs: int | None = None) -> Path:
    """The bzImage of ``build``: from the cache, else built (22 min the first time on 2 cores)."""
    cache = cache or tools.cache_dir()
    root = tools.fetch(cache, f"{build.package}/{SUITES[build.package]}")
    version = tools.deb_version(cache, build.package)
    out = cache / "kernels" / f"{build.name}-{version}-{build.key(version)}"
    image = out / "bzImage"
    if image.exists():
        return image
    tree = cache / "build" / f"{build.package}-{version}"
    log = cache / "build" / f"{build.package}-{version}.log"
    tree.parent.mkdir(parents=True, exist_ok=True)
    if not (tree / "Makefile").exists():
        _log(f"unpacking {build.package} {version}")
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        tarball = next((root / "usr/src").glob(f"{build.package}.tar.*"))
        _run(["tar", "xf", str(tarball), "--strip-components=1", "-C", str(tree)], tree, log)
    t0 = time.monotonic()
    _log(f"building kernel {build.name} ({version}, key {build.key(version)}) in {tree}")
    applied: list[str] = []
    try:
        for p in build.patches:
            _patch(tree, p, log)
            applied.append(p)
        _run(["make", "tinyconfig"], tree, log)
        _run(["scripts/kconfig/merge_config.sh", "-m", ".config", str(KERNEL_DIR / build.config)], tree, log)
        _run(["make", "olddefconfig"], tree, log)
        _run(["make", f"-j{jobs or os.cpu_count() or 2}", "bzImage"], tree, log)
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(tree / "arch/x86/boot/bzImage", out / "bzImage.tmp")
        shutil.copy(tree / ".config", out / "config")
        os.replace(out / "bzImage.tmp", image)
    finally:
        for p in reversed(applied):
            _patch(tree, p, log, reverse=True)
    _log(f"built {build.name} in {time.monotonic() - t0:.0f} s: {image}")
    return image
