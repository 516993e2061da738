"""Payload bytes and the sizes around them: wire layouts, buffers, and the accesses the memory oracle checks.

Most fixed passthrough bugs are one bug class: a length the caller declares
(CXL_MEM_SEND_COMMAND's ``in.size``, fwctl's ``in_len``, a Get Feature
``count``) trusted before it is compared with the bytes really there.  So a
request carries its declared sizes as arguments of kind ``size``, apart
from the content arguments, and the kernel model reads and writes payloads
only through a ``Buffer`` that knows how many bytes were really allocated.
Every access is logged; the ``out-of-bounds`` invariant reports one that
runs past its buffer, as KASAN would.  A buffer may also carry the function
that allocated it, and be freed: ``fuzzer.lifetimes`` says how, and the
``use-after-free``, ``double-free``, ``invalid-free`` and ``leak`` invariants
read the same log, so the first bad event of a step is one, whatever its kind.

A plugin declares, as data:

* a command's payload as a ``Layout`` of named ``Slot`` s (offset, width),
  fixed or variable in size, and its fixed output size, if any;
* a channel's ``Envelope``: which size argument sizes the input buffer,
  which sizes the caller's output buffer, the header the channel puts in
  front of every command (``struct fwctl_rpc_cxl``), and other size fields;
* the boundaries worth drawing (``Param.marks``): a struct size, the
  device's ``payload_size``, fwctl's ``MAX_RPC_LEN``.

Simplification, once: the caller's buffer always holds at least the
declared input size (so ``copy_from_user`` never faults); the bytes are the
content arguments encoded into the layout, cut or zero-padded to that size.
A read past a buffer returns zeros where the kernel would read its
neighbour.
"""

from __future__ import annotations

import re
import uuid as _uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from fuzzer import lifetimes
from fuzzer.lifetimes import Fault

Args = Mapping[str, Any]
_SITE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Where a buffer lives: kernel memory (KASAN's domain), the caller's memory,
#: or device registers (a mailbox payload area).
BufferKind = Literal["kernel", "user", "device"]


@attrs.frozen
class Slot:
    """One field of a payload: ``width`` bytes at ``offset``, little-endian unless ``kind`` says otherwise.

    ``kind``: ``le`` (an int or bool), ``be`` (big-endian, as mlx5's MLX5_SET), ``uuid`` (a UUID string, RFC 4122 byte
    order as ``uuid_t``), ``text`` (a string, NUL-padded).  ``width`` may name
    an argument (a variable-length data field: ``Slot("data", 8, "length")``).
    ``value`` fixes the content (a reserved field, a fill byte argument's name
    for ``text``/``le`` data is ``source``).
    """

    name: str
    offset: int
    width: int | str
    kind: Literal["le", "be", "uuid", "text", "fill"] = "le"
    #: the argument the slot's bytes come from, if not ``name`` (``fill``: the byte repeated)
    source: str = ""

    def size(self, args: Args) -> int:
        return int(args.get(self.width, 0)) if isinstance(self.width, str) else self.width

    def encode(self, value: Any, args: Args) -> bytes:
        n = self.size(args)
        if n <= 0:
            return b""
        if self.kind == "uuid":
            try:
                raw = _uuid.UUID(str(value)).bytes
            except ValueError:
                raw = b""
        elif self.kind == "text":
            raw = str(value).encode("utf-8", "replace")
        elif self.kind == "fill":
            raw = bytes([int(value) & 0xFF]) * n
        else:
            raw = (int(value) & ((1 << (8 * n)) - 1)).to_bytes(n, "big" if self.kind == "be" else "little")
        return raw[:n].ljust(n, b"\0")

    def decode(self, raw: bytes) -> Any:
        if self.kind == "uuid":
            return str(_uuid.UUID(bytes=raw.ljust(16, b"\0")[:16]))
        if self.kind in ("text", "fill"):
            return raw
        return int.from_bytes(raw, "big" if self.kind == "be" else "little")


@attrs.frozen
class Layout:
    """A command's payload on the wire, as the spec's struct declares it.

    ``size`` is the fixed input size (the kernel table's ``size_in``; None:
    variable, at least ``min``); ``out`` the fixed output size (None:
    variable, up to the device's payload size).

    Example (CXL Clear Log, 16 bytes in, nothing out)::

        Layout((Slot("log", 0, 16, "uuid"),), size=0x10, out=0)
    """

    slots: tuple[Slot, ...] = ()
    size: int | None = 0
    min: int = 0
    out: int | None = 0

    def slot(self, name: str) -> Slot:
        for s in self.slots:
            if s.name == name:
                return s
        raise KeyError(f"layout has no slot {name!r}; it has {[s.name for s in self.slots]}")

    def natural(self, args: Args) -> int:
        """The input size a correct caller declares for these arguments."""
        if self.size is not None:
            return self.size
        end = max((s.offset + s.size(args) for s in self.slots), default=0)
        return max(end, self.min)

    def encode(self, args: Args, base: int = 0, into: bytearray | None = None) -> bytearray:
        buf = into if into is not None else bytearray()
        for s in self.slots:
            source = s.source or s.name
            if source not in args:
                continue
            raw = s.encode(args[source], args)
            at = base + s.offset
            if len(buf) < at + len(raw):
                buf.extend(bytes(at + len(raw) - len(buf)))
            buf[at: at + len(raw)] = raw
        return buf

    def sources(self, args: Args, lo: int, hi: int, base: int = 0) -> list[str]:
        """The arguments whose encoded bytes (``encode`` at ``base``) fall in ``[lo, hi)``: all the bytes
        there depend on, besides ``opcode`` (the command's) and the variable widths read to place them."""
        out = []
        for s in self.slots:
            source = s.source or s.name
            if source == "opcode" or source not in args:
                continue
            at = base + s.offset
            if at < hi and lo < at + s.size(args):
                out.append(source)
        return out


@attrs.frozen
class Envelope:
    """The length fields a channel's request carries around every command's payload.

    ``inbound`` names the size argument that sizes the input buffer the
    kernel copies in (``in_size``, fwctl's ``in_len``); ``outbound`` the one
    that sizes the caller's output buffer.  ``header`` is what the channel
    puts in front of every command's own payload (``struct fwctl_rpc_cxl``:
    opcode, flags, op_size), its slots filled from the arguments plus
    ``opcode``; ``extra`` are size arguments that live in that header.
    Their ``natural`` may be ``"in"`` (header plus the command's payload),
    ``"payload"`` (the command's payload alone) or ``"out"`` (header output
    plus the command's fixed output, or the device's ``payload_size``).

    Example (CXL_MEM_SEND_COMMAND)::

        Envelope("in_size", "out_size", sizes=(
            Param("in_size", "size", 0, 2**32 - 1, natural="in", marks=("payload_size",)),
            Param("out_size", "size", 0, 2**31 - 1, natural="out", marks=("payload_size",)),
        ))
    """

    inbound: str
    outbound: str = ""
    sizes: tuple[Any, ...] = ()  # tuple[Param, ...]; typed loosely to keep spec.py importing this module
    header: Layout = Layout()


@attrs.frozen
class Access:
    """One event of a buffer's life, as the memory oracle sees it: a read, a write, its allocation or a free.

    ``by`` starts with the function that made it (``"cxl_set_feature() memcpy()"``).
    ``lifetime`` is what was wrong with it (a read of a freed buffer, a second
    free), judged when it happened; ``note`` says why (where it was freed, what a bad free does); ``block`` is
    the buffer itself, on an ``alloc``, so the oracle can ask at the end of the
    step whether it was freed.
    """

    buffer: str
    kind: BufferKind
    op: Literal["read", "write", "alloc", "free"]
    offset: int
    length: int
    size: int
    by: str
    lifetime: Fault = ""
    note: str = ""
    block: Buffer | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def site(self) -> str:
        """The function that made the access (the leading name of ``by``): what KASAN's title names."""
        m = _SITE.match(self.by)
        return m.group(0) if m else "unknown"

    @property
    def out_of_bounds(self) -> bool:
        if self.op not in ("read", "write") or self.lifetime:
            return False  # KASAN names a freed buffer's access by the free, wherever it lands
        return self.offset < 0 or self.offset + self.length > self.size

    @property
    def leaked(self) -> bool:
        """An allocation that is still live: at the end of the step, a leak."""
        return self.op == "alloc" and self.block is not None and self.block.live

    def describe(self) -> str:
        where = {"kernel": "slab", "user": "user buffer", "device": "device registers"}[self.kind]
        past = self.offset + self.length - self.size
        def n(k: int) -> str:
            return f"{k} byte" if k == 1 else f"{k} bytes"

        if self.op == "alloc":
            assert self.block is not None
            return (f"leak of {self.buffer} ({n(self.size)} from {self.block.allocator}() in {self.by}): still "
                    f"allocated when the request returned, and nothing keeps it (kmemleak: unreferenced object)")
        if self.op == "free":
            return f"{self.lifetime or 'free'} of {self.buffer} in {self.by}: {self.note}"
        if self.lifetime:
            return (f"{self.lifetime} {self.op} of {n(self.length)} at offset {self.offset} of "
                    f"{self.buffer} ({self.note}) in {self.by}")
        zero = ": a zero-size allocation, so a fault" if self.size == 0 and self.kind == "kernel" else ""
        return (f"{where}-out-of-bounds {self.op} of {n(self.length)} at offset {self.offset} of "
                f"{self.buffer} ({n(self.size)} allocated{zero}, {n(past)} past its end) in {self.by}")


class Buffer:
    """A buffer of ``size`` bytes that logs every access into ``log``.

    Kernel model code reads payloads through ``read``/``field`` and writes
    through ``write``, so the oracle knows exactly which bytes were touched.
    ``allocated``, ``free`` and ``keep`` log its life (``fuzzer.lifetimes``).
    """

    __slots__ = ("_data", "_fill", "allocator", "freed_by", "kept", "kind", "log", "name", "size", "touch")

    def __init__(self, name: str, size: int, data: bytes = b"", *, kind: BufferKind = "kernel",
                 log: list[Access] | None = None, fill: Callable[[], bytes] | None = None) -> None:
        self.name = name
        self.size = max(0, size)
        self.kind = kind
        # a 2 MiB request is drawn rarely but must not cost 2 MiB: keep the bytes given, zeros are implied
        self._data = bytearray(data[: self.size])
        #: computes the contents on first use (most requests are never looked into)
        self._fill = fill
        self.log = log if log is not None else []
        #: the function that allocated it ("kvzalloc"); "" for memory nobody allocated through this model
        self.allocator = ""
        #: where it was freed, once it has been ("" while live)
        self.freed_by = ""
        #: where a kernel structure took it over (it outlives the request, so it is no leak)
        self.kept = ""
        #: called with each byte range ``[lo, hi)`` about to be looked at, before its bytes are fetched: a
        #: lazily filled request tells from it which of the step's arguments the look depended on (the
        #: bounded proof's step classes, ``fuzzer.watched``), where the fill reads them all
        self.touch: Callable[[int, int], None] | None = None

    @property
    def data(self) -> bytearray:
        """All the bytes (a look at every one of them)."""
        if self.touch is not None:
            self.touch(0, self.size)
        return self._bytes()

    def _bytes(self) -> bytearray:
        if self._fill is not None:
            self._data = bytearray(self._fill()[: self.size])
            self._fill = None
        return self._data

    @property
    def live(self) -> bool:
        """Allocated, not freed, and not kept by anything: a leak if the request ends now."""
        return bool(self.allocator) and not self.freed_by and not self.kept

    def _freed(self) -> tuple[Fault, str]:
        return (lifetimes.USE_AFTER_FREE, f"freed in {self.freed_by}") if self.freed_by else ("", "")

    def read(self, offset: int, length: int, by: str) -> bytes:
        self.log.append(Access(self.name, self.kind, "read", offset, length, self.size, by, *self._freed()))
        if length <= 0:
            return b""
        lo, hi = max(0, offset), max(0, min(offset + length, self.size))
        if self.touch is not None and lo < hi:
            self.touch(lo, hi)
        inside = bytes(self._bytes()[lo:hi])
        return inside.ljust(min(length, 1 << 16), b"\0")

    def copied(self, offset: int, length: int, by: str) -> None:
        """A read whose bytes go where the model does not follow them (``copy_to_user()``): logged, not fetched."""
        self.log.append(Access(self.name, self.kind, "read", offset, length, self.size, by, *self._freed()))

    def write(self, offset: int, data: bytes | int, by: str) -> None:
        """Write ``data`` (or that many bytes, given an int) at ``offset``; only in-bounds bytes land."""
        length = data if isinstance(data, int) else len(data)
        self.log.append(Access(self.name, self.kind, "write", offset, length, self.size, by, *self._freed()))
        if isinstance(data, int) or length <= 0:
            return
        end = min(offset + length, self.size)
        if offset < end:  # a write looks at no byte: the bytes it replaces are what a later read touches
            buf = self._bytes()
            if len(buf) < end:
                buf.extend(bytes(end - len(buf)))
            buf[offset:end] = data[: end - offset]

    def allocated(self, allocator: lifetimes.Allocator, by: str) -> Buffer:
        """Record that ``allocator`` (in function ``by``) allocated this buffer: from now on it must be freed."""
        self.allocator = allocator
        self.log.append(Access(self.name, self.kind, "alloc", 0, self.size, self.size, by, block=self))
        return self

    def free(self, freer: lifetimes.Freer, by: str) -> None:
        """``freer(buffer)`` in function ``by``: a double or invalid free is logged as one, and changes nothing.

        An invalid free leaves the buffer allocated, as the kernel does (the WARN returns, the memory leaks).
        """
        if self.freed_by:
            fault, note = lifetimes.DOUBLE_FREE, f"already freed in {self.freed_by}"
        elif not self.allocator or not lifetimes.can_free(freer, lifetimes.backing(self.allocator, self.size)):
            fault, note = lifetimes.INVALID_FREE, lifetimes.why_invalid(freer, self.allocator, self.size)
        else:
            fault, note = "", f"{freer}() of {self.allocator}() memory"
        self.log.append(Access(self.name, self.kind, "free", 0, 0, self.size, by, fault, note))
        if not fault:
            self.freed_by = by

    def keep(self, by: str) -> None:
        """A kernel structure took this buffer over in ``by``: it outlives the request and is no leak."""
        self.kept = by

    def field(self, layout: Layout, name: str, by: str, base: int = 0, args: Args | None = None) -> Any:
        """Read and decode slot ``name`` of ``layout`` (at ``base`` in this buffer)."""
        s = layout.slot(name)  # ``args or {}`` would look at the whole mapping (its length)
        return s.decode(self.read(base + s.offset, s.size(args if args is not None else {}), by))


#: What a resolved size argument's natural value is: fixed, or computed from the content arguments.
Natural = Callable[[Args], int]
