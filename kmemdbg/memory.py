"""Physical memory sources and the per-source cache of page-table pages.

A memory source is anything with ``read(pa, size) -> bytes`` that reads
*physical* bytes and raises :class:`~kmemdbg.errors.PhysicalReadError` when
it cannot.  The walker only ever sees this protocol: a drgn Program, the MMU
model and a raw core file all look the same to it.  What else a source knows
(RAM ranges, notes, its architecture, whether it is live) it declares through
:class:`MemorySource`; see :class:`PhysicalMemory`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .errors import PhysicalReadError

from typing import Protocol

if sys.byteorder != "little":  # pragma: no cover - both supported targets are little-endian
    raise ImportError("kmemdbg decodes little-endian page tables with native memoryview casts")


@dataclass(frozen=True)
class LinearOffset:
    """The direct-map offset a source's headers give: ``va = pa + offset`` (mod 2**64).

    ``source`` names the headers ("ELF PT_LOAD p_vaddr - p_paddr",
    "/proc/kcore KCORE_RAM p_vaddr - p_paddr"), as printed by ``layout``.
    """

    offset: int
    source: str


@dataclass(eq=False)
class PhysicalView:
    """A read-only buffer holding physical memory exactly as a source's ``read`` gives it.

    ``segments`` are sorted, disjoint ``(pa_start, pa_end, buffer_offset)``
    triples: physical ``[pa_start, pa_end)`` is at ``buffer[buffer_offset:
    buffer_offset + pa_end - pa_start]``.  Physical memory outside them is
    read through the source (holes, zero-filled or truncated ranges).

    ``held``, when the source declares it, says where the source has
    anything at all: physical ``(start, end)`` ranges sorted by start (they
    may overlap), looked up as the source does, by the last range starting
    at or below a read's first byte.  A read whose first byte that range
    does not reach is one the source refuses with
    ``PhysicalReadError(pa, size, absent, pa)``, ``absent`` a ``str.format``
    template for the physical address; compiled reads raise it themselves.
    None: the source reads everything outside the segments itself.
    """

    buffer: object
    segments: Tuple[Tuple[int, int, int], ...]
    held: Optional[Tuple[Tuple[int, int], ...]] = None
    absent: str = ""


class PhysicalMemory(Protocol):
    """Reads bytes of physical memory, and says what else it knows.

    ``read(pa, size)`` returns exactly ``size`` bytes starting at physical
    address ``pa`` or raises :class:`PhysicalReadError`.  That is the only
    method the walker needs.  The rest are optional capabilities; every
    source of kmemdbg declares them by deriving from :class:`MemorySource`,
    whose defaults mean "not known" (None) or "no" (False, 0).  For any
    other object with only ``read``, :func:`declared` supplies the defaults,
    so a caller never probes with ``isinstance`` or ``getattr``.

    - ``zero_fills_holes``: unreadable ranges read back as zeros
      (``/proc/kcore``, QEMU's gdbstub), so an all-zero table may be a hole.
    - ``live``: the memory changes under the reader (a running kernel);
      ``generation`` grows each time the target may have moved on, so a
      per-snapshot cache that saw another generation must be dropped.
    - ``description``: what the source is, in words (a path, "/proc/kcore").
    - ``arch_hint``: the :class:`kmemdbg.arch.Arch` the source's headers name
      (ELF ``e_machine``, a kdump header's utsname machine, drgn's platform),
      or None when they name none.
    - ``machine``: the raw machine id the headers carry (ELF ``e_machine``,
      a kdump utsname machine string), for messages; None without headers.
    - ``missing_bytes``: bytes the headers promise that the file lacks
      (a truncated dump), 0 when complete.
    - ``ram_ranges()``: sorted physical ``[start, end)`` ranges the source
      holds (ELF PT_LOADs, a kdump bitmap), or None when unknown.
    - ``note(name)``: the descriptor of the ELF-style note ``name`` (e.g.
      ``b"VMCOREINFO"``), or None; ``vmcoreinfo()`` is that note's text.
    - ``linear_offset(image_start_va)``: the direct-map offset the headers
      give (segments at or above ``image_start_va``, the kernel image, are
      skipped), or None.
    - ``physical_view()``: a :class:`PhysicalView`, a read-only buffer and
      the physical ranges whose bytes it holds as ``read`` gives them (a
      mapped dump file), so walks and reads can run compiled
      (:mod:`kmemdbg.walk_accel`); None when there is none.
    """

    zero_fills_holes: bool
    live: bool
    generation: int
    description: str
    arch_hint: Optional[object]
    machine: object
    missing_bytes: int

    def read(self, pa: int, size: int) -> bytes:  # pragma: no cover - protocol
        ...

    def ram_ranges(self) -> Optional[List[Tuple[int, int]]]:  # pragma: no cover - protocol
        ...

    def note(self, name: bytes) -> Optional[bytes]:  # pragma: no cover - protocol
        ...

    def vmcoreinfo(self) -> Optional[bytes]:  # pragma: no cover - protocol
        ...

    def linear_offset(self, image_start_va: int) -> Optional[LinearOffset]:  # pragma: no cover
        ...

    def physical_view(self) -> Optional["PhysicalView"]:  # pragma: no cover - protocol
        ...


class MemorySource:
    """Defaults of every optional capability of :class:`PhysicalMemory`.

    A source derives from this class, implements ``read`` and overrides what
    it knows.  A live source calls :meth:`moved_on` when the target may have
    changed (it resumed, or a new command starts).
    """

    zero_fills_holes: bool = False
    live: bool = False
    generation: int = 0
    description: str = ""
    arch_hint: Optional[object] = None   # a kmemdbg.arch.Arch
    machine: object = None               # the raw machine id of the headers (e_machine, utsname), for messages
    missing_bytes: int = 0

    def read(self, pa: int, size: int) -> bytes:  # pragma: no cover - every source overrides it
        raise NotImplementedError

    def ram_ranges(self) -> Optional[List[Tuple[int, int]]]:
        """Sorted physical ``[start, end)`` ranges the source holds; None when unknown."""
        return None

    def note(self, name: bytes) -> Optional[bytes]:
        """Descriptor of the note called ``name``; None when the source has no notes."""
        return None

    def vmcoreinfo(self) -> Optional[bytes]:
        """The VMCOREINFO text (up to its first NUL), or None."""
        note = self.note(b"VMCOREINFO")
        return note.split(b"\0", 1)[0] if note else None

    def linear_offset(self, image_start_va: int) -> Optional[LinearOffset]:
        """Direct-map offset from the source's headers, or None."""
        return None

    def physical_view(self) -> Optional["PhysicalView"]:
        """A read-only buffer holding the source's bytes, or None (reads go through ``read``)."""
        return None

    def moved_on(self) -> None:
        """The target may have changed: per-snapshot caches must start over."""
        self.generation += 1


class _Declared(MemorySource):
    """An object with only ``read`` (and maybe ``zero_fills_holes``), with the defaults."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.zero_fills_holes = bool(getattr(inner, "zero_fills_holes", False))

    def read(self, pa: int, size: int) -> bytes:
        return self._inner.read(pa, size)  # type: ignore[attr-defined]


def declared(memory: object) -> MemorySource:
    """``memory`` itself when it declares its capabilities, else a view with the defaults.

    Use this to ask an arbitrary source (a test's wrapper, a user's object)
    for an optional capability: ``declared(m).ram_ranges()``.
    """
    return memory if isinstance(memory, MemorySource) else _Declared(memory)


class BytesMemory(MemorySource):
    """Physical memory backed by one bytes-like object starting at ``base_pa``."""

    def __init__(self, data: bytes, base_pa: int = 0) -> None:
        self._data = memoryview(data)
        self.base_pa = base_pa
        self.description = f"{len(data)} bytes at pa 0x{base_pa:x}"

    def ram_ranges(self) -> Optional[List[Tuple[int, int]]]:
        return [(self.base_pa, self.base_pa + len(self._data))]

    def physical_view(self) -> Optional[PhysicalView]:
        view = self.__dict__.get("_view")
        if view is None:
            view = self._view = PhysicalView(self._data, ((self.base_pa, self.base_pa + len(self._data), 0),))
        return view

    def read(self, pa: int, size: int) -> bytes:
        off = pa - self.base_pa
        if size < 0 or off < 0 or off + size > len(self._data):
            raise PhysicalReadError(pa, size, "outside the memory image")
        return bytes(self._data[off:off + size])


class _TableDict(dict):
    """The cache's table pages by pa; ``epoch`` grows when pages are dropped or one is replaced.

    Adding a page cannot invalidate what was decoded from the pages already
    there, so only :meth:`clear` and replacing a page count.
    """

    epoch = 0
    #: a page was replaced: the cache no longer holds what the source reads
    replaced = False

    def __setitem__(self, pa, table) -> None:
        if pa in self:
            self.epoch += 1
            self.replaced = True
        dict.__setitem__(self, pa, table)

    def clear(self) -> None:
        dict.clear(self)
        self.epoch += 1


class TableCache:
    """Reads page-table pages whole and keeps them, once per source.

    ``table(pa, size)`` returns a read-only ``memoryview`` of 64-bit entries
    (native little-endian) for the table of ``size`` bytes at physical ``pa``.
    A batch of walks therefore costs one source read per distinct table page.
    Read failures are cached too, so a bad table is asked for only once.

    Use one cache per snapshot: for a live target call :meth:`fresh` before
    a query; it drops the tables when the source's ``generation`` moved on
    (or call :meth:`clear` directly).  Walkers do so themselves.  ``epoch``
    grows each time tables are dropped or replaced, so memos built on them
    (a walker's decoded entries) know to start over.
    """

    def __init__(self, source: PhysicalMemory) -> None:
        self.source = source
        self._declared = declared(source)
        self._tables: Dict[int, object] = _TableDict()
        #: the object whose ``epoch`` attribute :attr:`epoch` reads (the same one for the cache's
        #: life), for per-address paths that check it without a property call
        self.epoch_of = self._tables
        self.reads = 0
        self.generation = self._declared.generation

    @property
    def epoch(self) -> int:
        """Grows each time tables were dropped or replaced (memos built on them start over)."""
        return self._tables.epoch  # type: ignore[attr-defined]

    @property
    def replaced(self) -> bool:
        """True once a table page was replaced by one the source does not hold (tests, patches)."""
        return self._tables.replaced  # type: ignore[attr-defined]

    def fresh(self) -> None:
        """Drop every table read in an earlier generation of a live source."""
        now = self._declared.generation
        if now != self.generation:
            self.clear()
            self.generation = now

    def table(self, pa: int, size: int) -> memoryview:
        """Entries of the table at physical ``pa`` (``size`` bytes); raises PhysicalReadError."""
        got = self._tables.get(pa)
        if got is None:
            self.reads += 1
            try:
                data = self.source.read(pa, size)
                if len(data) != size:
                    raise PhysicalReadError(pa, size, f"short read ({len(data)} bytes)")
                got = memoryview(data if data.__class__ is bytes else bytes(data)).cast("Q")
            except PhysicalReadError as err:
                got = err
            self._tables[pa] = got
        if got.__class__ is not memoryview:
            raise got   # type: ignore[misc]
        return got  # type: ignore[return-value]

    def cached(self, pa: int) -> Optional[memoryview]:
        got = self._tables.get(pa)
        return got if isinstance(got, memoryview) else None

    def clear(self) -> None:
        self._tables.clear()

    def __len__(self) -> int:
        return len(self._tables)
