"""Kernels to judge the models with: built from Debian's ``linux-source-*``, or Debian's own image.

A ``KernelBuild`` is a Debian source package, a config fragment merged on top of
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

A ``KernelImage`` is a distribution's ready kernel: a Debian ``linux-image-*``
package, fetched and unpacked like the rest (10 s, no build), and the modules
the guest loads.  Its directory in the cache holds ``bzImage`` (the package's
``vmlinuz``), ``config``, and ``modules/``: each module decompressed (Debian
ships ``.ko.xz``; busybox's insmod takes plain ELF) and ``modules/order``, the
names in load order, each after what its ``.modinfo`` says it ``depends`` on
(Debian's package carries no ``modules.dep``: ``depmod`` runs at install).
The guest (``guest.py``) puts them in its initramfs and loads them before
anything else.  Such a kernel has no KASAN: an out-of-bounds access shows only
if it oopses (the guest's command line stays the same: ``console=ttyS0`` works,
and ``kasan_multi_shot`` does nothing there).  The cache key is the package's
version and the module list.
"""

from __future__ import annotations

import errno
import lzma
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from fuzzer import Policy
from ptfuzz_cxl import mailbox as mb
from ptfuzz_cxl.live import tools

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
    #: kernel actions this kernel has no administrator path for, and why (besides ``target.NOT_HERE``)
    lacks: Mapping[str, str] = attrs.field(factory=dict)

    def judge(self, policy: Policy) -> Policy:
        """``policy`` as this kernel, test patches included, runs it."""
        return _judged(policy, self.knobs)

    def key(self, version: str) -> str:
        parts = [version.encode(), (KERNEL_DIR / self.config).read_bytes()]
        parts += [(PATCH_DIR / p).read_bytes() for p in self.patches]
        return tools.digest(*parts)

    def made_of(self) -> str:
        return f"{self.package} + {self.config}" + "".join(f" + {p}" for p in self.patches)


@attrs.frozen
class KernelImage:
    """A ready kernel: a Debian ``linux-image-*`` package (a pattern: the newest matching name) and modules."""

    name: str
    #: ``linux-image-6.12.*+deb13-amd64-unsigned``: ``*`` stands for the point release
    package: str
    suite: str
    #: modules the guest loads, in this order, each after what it needs (its ``.modinfo``);
    #: a name the image has built in is skipped
    modules: tuple[str, ...] = ()
    doc: str = ""
    policy: str = ""
    judges: tuple[str, ...] = ("linux-ioctl",)
    knobs: Mapping[str, Any] = attrs.field(factory=dict)
    lacks: Mapping[str, str] = attrs.field(factory=dict)

    def judge(self, policy: Policy) -> Policy:
        """``policy`` as this kernel runs it."""
        return _judged(policy, self.knobs)

    def key(self, version: str) -> str:
        return tools.digest(version.encode(), " ".join(self.modules).encode())

    def made_of(self) -> str:
        return f"{self.package} from {self.suite}" + (f" + modules {', '.join(self.modules)}" if self.modules else "")


#: what ``ptfuzz live`` can boot
Kernel = KernelBuild | KernelImage


def _judged(policy: Policy, knobs: Mapping[str, Any]) -> Policy:
    return attrs.evolve(policy, knobs={**policy.knobs, **knobs}) if knobs else policy


_TEST_PATCHES = ("test-ecs-user-feature.patch", "test-kasan-mailbox-copies.patch")
#: test-ecs-user-feature.patch takes ECS out of cxl_exclusive_feats[]
_TEST_KNOBS = {"exclusive_features": mb.EXCLUSIVE_FEATURES - {mb.ECS_UUID}}
#: 6.12.117 has no drivers/cxl/core/edac.c: its cxl_mem_probe() registers no EDAC device (7.3.4's
#: calls devm_cxl_memdev_edac_register())
_NO_EDAC = "6.12.117 has no CXL EDAC (no drivers/cxl/core/edac.c): mem0 has no edac device"
_PMEM_MODULE = "cxl_pmem is a module here: (un)binding the nvdimm is insmod/rmmod cxl_pmem, not wired yet"

KERNELS: dict[str, Kernel] = {
    k.name: k for k in (
        KernelBuild("7.3", "linux-source-7.3", "cxl-kasan.config", _TEST_PATCHES,
                    doc="Debian's newest kernel source with RAW, fwctl, CXL Features, EDAC and KASAN",
                    knobs=_TEST_KNOBS),
        KernelBuild("7.3-fwctl-unchecked-sizes", "linux-source-7.3", "cxl-kasan.config",
                    (*_TEST_PATCHES, "revert-fwctl-size-checks.patch"),
                    doc="7.3 without the three fwctl size checks in drivers/cxl/core/features.c",
                    policy="linux-fwctl-unchecked-sizes", judges=("linux-raw", "linux-fwctl-unchecked-sizes"),
                    knobs=_TEST_KNOBS),
        # Judged by linux-ioctl (read from 7.3.4): Debian's 6.12.117 has the same ioctl path, function
        # for function: include/uapi/linux/cxl_mem.h; core/mbox.c cxl_mem_commands[],
        # cxl_validate_cmd_from_user(), cxl_to_mem_cmd(), cxl_payload_from_user_allowed() (with
        # 60b5d1f68338 and 206f9fa9d555), cxl_mbox_cmd_ctor(), handle_mailbox_cmd_from_user(),
        # cxl_send_cmd(), __cxl_mem_sanitize(); core/memdev.c's security attributes and
        # cxl_memdev_security_visible(); pci.c __cxl_pci_mbox_send_cmd() (the sanitize busy gate, no
        # poll_count); pmem.c's exclusive commands.  What differs lies outside what the policy decides:
        # cxl_walk_cel() does not count the Features opcodes and cxl_disabled_raw_commands[] lacks them
        # (no fwctl, RAW compiled out); cxl_mem_sanitize() wants an endpoint, not a bound driver (the
        # same on a probed memdev); cxl_pci_probe() reads no Features and cxl_mem_probe() registers no
        # EDAC (``lacks``); cxl_nvdimm_probe() does not arm dirty shutdown (QEMU answers Set Shutdown
        # State UNSUPPORTED, so the qemu device cannot tell).
        KernelImage("debian-6.12", "linux-image-6.12.*+deb13-amd64-unsigned", "trixie",
                    # cxl_core, cxl_port, virtio_pci and virtio_console are built in
                    ("libnvdimm", "cxl_acpi", "cxl_pmem", "cxl_pci", "cxl_mem"),
                    doc="Debian trixie's own kernel, no build: the ioctl path and sysfs; no RAW "
                        "(CONFIG_CXL_MEM_RAW_COMMANDS unset), no fwctl, no CXL EDAC, no KASAN",
                    judges=("linux-ioctl",),
                    lacks={**{a: _NO_EDAC for a in ("edac_set_scrub", "edac_set_ecs", "edac_repair")},
                           "nvdimm_bind": _PMEM_MODULE, "nvdimm_unbind": _PMEM_MODULE},
                    # 6.12.117 drivers/cxl/core/hdm.c cxl_dpa_set_mode(): "no available ram capacity"
                    # is -ENXIO; 7.3.4's cxl_dpa_set_part() says -EINVAL (found by conformance)
                    knobs={"region_no_capacity_errno": errno.ENXIO}),
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


#: In a build tree: copies of the patches applied now, and the order they went on
APPLIED_DIR = ".ptfuzz-applied"


def _patch(tree: Path, patch: str, log: Path, reverse: bool = False) -> None:
    """Apply (or undo) one patch, keeping a copy in the tree while it is applied.

    The copy is what undoes it: a build killed between applying and undoing (Ctrl-C, a CI job
    cancelled, ptfuzz moved or upgraded in between) leaves the tree patched, and the next
    build undoes what the copies say before it starts (``_undo_leftovers``).
    """
    held = tree / APPLIED_DIR / patch
    source = held if reverse else PATCH_DIR / patch
    cmd = ["patch", "-p1", "--forward", "--no-backup-if-mismatch", "-s", "-i", str(source)]
    if reverse:
        _run([*cmd, "-R"], tree, log)
        held.unlink()
        return
    _run(cmd, tree, log)
    held.parent.mkdir(exist_ok=True)
    shutil.copy(source, held)
    with (held.parent / "order").open("a") as f:  # the order they went on: leftovers come off in reverse
        f.write(patch + "\n")


def _undo_leftovers(tree: Path, log: Path) -> None:
    """Undo the patches an interrupted build left applied (their copies are in the tree)."""
    order = tree / APPLIED_DIR / "order"
    if not order.exists():
        return
    for name in reversed(order.read_text().split()):
        if (tree / APPLIED_DIR / name).exists():
            _log(f"undoing {name}, left applied by an interrupted build")
            _patch(tree, name, log, reverse=True)
    shutil.rmtree(tree / APPLIED_DIR)


def cached(build: Kernel, cache: Path | None = None) -> Path | None:
    """The cached bzImage of this kernel, or None (never builds, never fetches)."""
    cache = cache or tools.cache_dir()
    if isinstance(build, KernelImage):
        try:
            _package, version = tools.deb_name(tools.newest_deb(cache, build.package))
        except tools.ToolError:
            return None
        image = cache / "kernels" / f"{build.name}-{version}-{build.key(version)}" / "bzImage"
        return image if image.exists() else None
    try:
        version = tools.deb_version(cache, build.package)
    except tools.ToolError:
        return None
    image = cache / "kernels" / f"{build.name}-{version}-{build.key(version)}" / "bzImage"
    return image if image.exists() else None


def ensure(build: Kernel, cache: Path | None = None, jobs: int | None = None) -> Path:
    """The bzImage of ``build``: from the cache, else built (22 min the first time on 2 cores) or unpacked."""
    cache = cache or tools.cache_dir()
    if isinstance(build, KernelImage):
        return _unpack_image(build, cache)
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
    _undo_leftovers(tree, log)
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
        shutil.rmtree(tree / APPLIED_DIR, ignore_errors=True)
    _log(f"built {build.name} in {time.monotonic() - t0:.0f} s: {image}")
    return image


# --------------------------------------------------------------------------- ready images


def _unpack_image(k: KernelImage, cache: Path) -> Path:
    """The image's vmlinuz, config and modules under ``kernels/``: fetched once, then from the cache."""
    root = tools.fetch(cache, f"{k.package}/{k.suite}")
    package, version = tools.deb_name(tools.newest_deb(cache, k.package))
    out = cache / "kernels" / f"{k.name}-{version}-{k.key(version)}"
    image = out / "bzImage"
    if image.exists():
        return image
    # Debian's naming: linux-image-RELEASE[-unsigned] has boot/vmlinuz-RELEASE and modules/RELEASE
    release = package.removeprefix("linux-image-").removesuffix("-unsigned")
    vmlinuz = root / "boot" / f"vmlinuz-{release}"
    moddir = next((d for d in (root / "usr/lib/modules" / release, root / "lib/modules" / release)
                   if d.is_dir()), None)
    if not vmlinuz.exists() or moddir is None:
        raise tools.ToolError(f"{package} {version}: no boot/vmlinuz-{release} or modules/{release} under {root}")
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "modules").mkdir(parents=True)
    order = []
    for name, data in load_order(moddir, k.modules):
        (tmp / "modules" / f"{name}.ko").write_bytes(data)
        order.append(name)
    (tmp / "modules" / "order").write_text("".join(f"{n}\n" for n in order))
    shutil.copy(root / "boot" / f"config-{release}", tmp / "config")
    shutil.copy(vmlinuz, tmp / "bzImage")
    try:
        os.replace(tmp, out)
    except OSError:  # another process unpacked it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    _log(f"unpacked {k.name} ({package} {version}; modules {', '.join(order)}): {image}")
    return image


def _norm(name: str) -> str:
    return name.replace("-", "_")


def load_order(moddir: Path, wanted: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """``wanted`` and what they need, as (name, ELF object), in an order insmod takes: dependencies first.

    A module needs what its ``.modinfo`` names in ``depends=``, and its ``softdep=`` ``pre:``
    modules where the image has them as modules; one the image has built in
    (``modules.builtin``) is skipped.
    """
    files: dict[str, Path] = {}
    for path in sorted((moddir / "kernel").rglob("*.ko*")):
        files.setdefault(_norm(path.name.split(".ko")[0]), path)
    builtin = {_norm(Path(line.strip()).name.removesuffix(".ko"))
               for line in (moddir / "modules.builtin").read_text().splitlines() if line.strip()}
    out: list[tuple[str, bytes]] = []
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = _norm(name)
        if name in done or name in builtin:
            return
        if name in chain:
            raise tools.ToolError(f"modules that need each other: {' -> '.join((*chain, name))}")
        path = files.get(name)
        if path is None:
            raise tools.ToolError(f"no module {name} in {moddir} (needed by {' -> '.join(chain) or 'the guest'})")
        data = path.read_bytes()
        if path.name.endswith(".ko.xz"):
            data = lzma.decompress(data)
        elif not path.name.endswith(".ko"):
            raise tools.ToolError(f"{path}: only .ko and .ko.xz modules are handled")
        info = modinfo(data)
        needs = [d for v in info.get("depends", ()) for d in v.split(",") if d]
        for soft in info.get("softdep", ()):
            pre = soft.split("post:")[0].split("pre:")[1:]
            needs += [m for m in " ".join(pre).split() if _norm(m) in files]
        for dep in needs:
            visit(dep, (*chain, name))
        done.add(name)
        out.append((name, data))

    for name in wanted:
        visit(name, ())
    return out


def modinfo(elf: bytes) -> dict[str, list[str]]:
    """The ``key=value`` strings of a module's ``.modinfo`` section (a 64-bit little-endian ELF object)."""
    if elf[:4] != b"\x7fELF" or elf[4:6] != b"\x02\x01":
        raise tools.ToolError("not a 64-bit little-endian ELF object")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize)
        return name, offset, size

    _name, strtab, _size = section(shstrndx)
    info: dict[str, list[str]] = {}
    for i in range(shnum):
        name, offset, size = section(i)
        if elf[strtab + name:elf.index(b"\0", strtab + name)] != b".modinfo":
            continue
        for entry in elf[offset:offset + size].split(b"\0"):
            key, eq, value = entry.decode(errors="replace").partition("=")
            if eq:
                info.setdefault(key, []).append(value)
    return info
