"""Allocations and frees: the lifetime half of the memory oracle (``fuzzer.sizes`` is the bounds half).

A kernel ``Buffer`` may carry the function that allocated it
(``Buffer.allocated``); freeing it (``Buffer.free``) records which function
freed it, and the access log gets an ``alloc`` or ``free`` entry in the
kernel's code order, next to the reads and writes.  Four invariants read that
log, named as the kernel's own tools report them (KASAN's bug types in
``mm/kasan/report.c`` and ``report_generic.c``, kmemleak's "unreferenced
object", 7.3.4):

* ``use-after-free``: a read or write of a buffer after it was freed;
* ``double-free``: a second free of the same buffer;
* ``invalid-free``: a free by a function that cannot free it (``kfree()`` of a
  vmalloc'd area, ``vfree()`` of slab memory), or of memory that was never an
  allocation (the caller's buffer, a buffer inside another);
* ``leak``: an allocation still live at the end of the request that nothing
  kept (``Buffer.keep``).

As for bounds, only the first bad event of a step counts, in kernel order (a
KASAN kernel reports once; a ``leak`` comes last, after the request returned).
Buffers nobody allocated through this vocabulary (the executor's copy of a
request, the device's registers) are not tracked: they never leak, and a free
of one is an ``invalid-free``.

Which allocator really backs ``kvmalloc()``: mm/slub.c ``__kvmalloc_node_noprof()``
(7.3.4) tries kmalloc first, and returns its answer "if (ret || size <= PAGE_SIZE)";
above a page the kmalloc attempt runs without direct reclaim
(``kmalloc_gfp_adjust()``) and falls back to ``vmalloc`` when it fails.  The model
decides by size alone, once: at ``PAGE_SIZE`` or below, slab; above it, vmalloc,
the outcome a fragmented machine reaches (so ``kfree()`` of a large
``kvzalloc()`` area is reported even though an idle machine may get slab memory and
survive it, as coccinelle's ``kfree_mismatch.cocci`` does statically).
"""

from __future__ import annotations

from typing import Literal

#: x86-64's PAGE_SIZE: the size above which kvmalloc() may fall back to vmalloc
PAGE_SIZE = 4096

Allocator = Literal["kmalloc", "kzalloc", "kvmalloc", "kvzalloc", "vmalloc", "vzalloc"]
Freer = Literal["kfree", "kvfree", "vfree"]
#: what backs an allocation: a slab object (or a large kmalloc's pages) or a vmalloc area
Backing = Literal["slab", "vmalloc"]
#: the report an event earns, by its KASAN (or kmemleak) name; "" for none
Fault = Literal["", "use-after-free", "double-free", "invalid-free", "leak"]

USE_AFTER_FREE: Fault = "use-after-free"
DOUBLE_FREE: Fault = "double-free"
INVALID_FREE: Fault = "invalid-free"
LEAK: Fault = "leak"
FAULTS: tuple[Fault, ...] = (USE_AFTER_FREE, DOUBLE_FREE, INVALID_FREE, LEAK)

#: which free functions can free what (kvfree(): is_vmalloc_addr() ? vfree() : kfree(), mm/slub.c 7.3.4)
_FREES: dict[Freer, frozenset[Backing]] = {
    "kfree": frozenset({"slab"}),
    "vfree": frozenset({"vmalloc"}),
    "kvfree": frozenset({"slab", "vmalloc"}),
}


def backing(allocator: str, size: int) -> Backing:
    """What the model says backs ``allocator(size)`` (the kvmalloc decision is in the module docstring)."""
    if allocator in ("vmalloc", "vzalloc"):
        return "vmalloc"
    if allocator in ("kvmalloc", "kvzalloc") and size > PAGE_SIZE:
        return "vmalloc"
    return "slab"


def can_free(freer: str, back: Backing) -> bool:
    """Whether ``freer`` frees memory with this backing (an unknown freer frees nothing)."""
    return back in _FREES.get(freer, frozenset())  # type: ignore[call-overload]


def why_invalid(freer: str, allocator: str, size: int) -> str:
    """What the kernel does when ``freer`` is handed ``allocator``'s memory it cannot free (7.3.4)."""
    if not allocator:
        return f"{freer}() of memory that is no allocation of its own"
    if freer == "kfree":
        return (f"kfree() of a vmalloc'd area ({allocator}({size}) may fall back to vmalloc above PAGE_SIZE): "
                "virt_to_page() is valid only for the direct map (arch/x86/include/asm/page.h), so kfree() "
                "faults on a struct page past the memory map, or finds a page that is no slab and "
                "free_large_kmalloc() WARNs \"Not a kmalloc allocation\" and returns, leaking the area (mm/slub.c)")
    if freer == "vfree":
        return (f"vfree() of slab memory from {allocator}(): remove_vm_area() finds none, "
                "WARN \"Trying to vfree() nonexistent vm area\" (mm/vmalloc.c vfree())")
    return f"{freer}() cannot free {allocator}() memory"
