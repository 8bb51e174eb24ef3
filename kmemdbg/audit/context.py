"""What every audit rule shares: one sweep of the kernel tables and the kernel's own records.

An :class:`AuditContext` sweeps the kernel half once (each table page read at
most once, through the kernel walker's table cache) and keeps the resulting
runs cut at region boundaries.  The kernel's records (vmap areas, modules,
image sections) come from the dump when it has them; a caller (a test over
the MMU model, which has no such records) can pass them in instead.

Addresses: ``va``/``start``/``end`` virtual (``end`` exclusive), ``pa``
physical; sizes in bytes.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import KmemdbgError
from ..linux.owners import Owner, OwnerIndex, first_line
from ..linux.page import StructPages
from ..linux.vmalloc import VM_NO_GUARD, VM_UNINITIALIZED
from ..ptdump import END, LEVEL, PA, PERIOD, START, LeafSweep, split_by_regions
from ..virt_to_phys import kernel_pa

Progress = Callable[[str, float, float], None]
#: Module memory ranges that hold writable (or write-once) data: 6.4+ ``mod_mem_type`` names
#: and the older core/init layouts' parts (kobjects.Module.sections).
MODULE_DATA_SECTIONS = frozenset({"data", "ro_after_init", "bss", "init_data", "data_data",
                                  "data_ro_after_init"})


@dataclass(frozen=True)
class Area:
    """A vmap area as the audits need it.

    ``[start, end)`` is the whole area (guard page included when it has one);
    ``mapped_end`` where the kernel's mapping of it ends; ``pages`` the frame
    numbers the kernel recorded for it (``vm_struct.pages``), when known;
    ``name`` its caller or purpose; ``flags`` the vmallocinfo words.
    """

    start: int
    end: int
    mapped_end: int
    name: str
    flags: Tuple[str, ...] = ()
    pages: Optional[Tuple[int, ...]] = None
    purpose: Optional[str] = None


@dataclass(frozen=True)
class Piece:
    """A run of leaves inside one region: ``[start, end)`` virtual, ``pa`` of ``start``.

    ``period`` 0: pa follows va linearly; > 0: every ``period`` bytes map
    the same frames again.  ``region`` is the layout Region.
    """

    start: int
    end: int
    pa: int
    period: int
    level: int
    run: tuple
    region: object

    def pa_at(self, va: int) -> int:
        if self.period:
            return self.pa + (va - self.start) % self.period
        return self.pa + (va - self.start)

    @property
    def pa_end(self) -> int:
        """Physical end of the frames this piece maps (exclusive)."""
        return self.pa + (self.period or (self.end - self.start))


_err = first_line


class AuditContext:
    """The shared state of one audit of ``kernel`` (a :class:`~kmemdbg.kernel.Kernel`).

    Optional overrides, for sources that lack the kernel's records:
    ``areas`` (a list of :class:`Area`), ``sections`` (name -> (start, end)
    virtual: ``text``, ``rodata``, ``data``, ``bss``...), ``module_sections``
    (module :class:`~kmemdbg.linux.owners.Owner` values), ``static_data`` (list of
    (start, end, owner) virtual ranges holding words to scan).
    """

    def __init__(self, kernel, *, areas: Optional[Sequence[Area]] = None,
                 sections: Optional[Dict[str, Tuple[int, int]]] = None,
                 module_sections: Optional[Sequence[Owner]] = None,
                 static_data: Optional[Sequence[Tuple[int, int, str]]] = None,
                 progress: Optional[Progress] = None) -> None:
        self.kernel = kernel
        self.format = kernel.tables.format
        self.layout = kernel.layout
        self.page_size = self.format.page_size
        self.progress = progress
        self.sweep = LeafSweep(self.format, kernel.walker.cache, kernel.tables.root_pa)
        self._pieces: Optional[List[Piece]] = None
        self._areas = list(areas) if areas is not None else None
        self._areas_error: Optional[str] = None
        self._sections = dict(sections) if sections is not None else None
        self._module_owners = list(module_sections) if module_sections is not None else None
        self._static = list(static_data) if static_data is not None else None
        self._ram: Optional[List[Tuple[int, int]]] = None
        self.ram_source = ""
        self.notes: List[str] = []

    # -- the sweep ------------------------------------------------------------------
    @property
    def pieces(self) -> List[Piece]:
        """Every run of leaves of the kernel half, cut at region boundaries, by VA."""
        if self._pieces is None:
            runs = self.sweep.runs(progress=self.progress)
            self._pieces = [Piece(r[START], r[END], r[PA], r[PERIOD], r[LEVEL], r, region)
                            for r, region in split_by_regions(runs, self.layout)]
            self._starts = [p.start for p in self._pieces]
        return self._pieces

    def permissions(self, piece: Piece):
        return self.sweep.permissions(piece.run)

    def pieces_in(self, start: int, end: int) -> List[Piece]:
        """Pieces overlapping virtual ``[start, end)``."""
        pieces = self.pieces
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        out = []
        while i < len(pieces) and pieces[i].start < end:
            if pieces[i].end > start:
                out.append(pieces[i])
            i += 1
        return out

    def pa_of(self, va: int) -> Optional[int]:
        """Physical address of virtual ``va`` from the sweep, or None when unmapped."""
        for p in self.pieces_in(va, va + 1):
            return p.pa_at(va)
        return None

    def level_name(self, piece: Piece) -> str:
        return self.format.levels[piece.level].name

    def leaf_size(self, piece: Piece) -> int:
        return self.format.levels[piece.level].leaf_size

    # -- the kernel's records ----------------------------------------------------------
    @property
    def owners(self) -> OwnerIndex:
        """The kernel's one owner index (:class:`kmemdbg.linux.owners.OwnerIndex`)."""
        return self.kernel.owners

    def owner(self, va: int) -> Optional[str]:
        """The label of what owns virtual ``va`` (``kernel .text``, ``module NAME SECTION``...), or None."""
        if self._areas is not None and self._module_owners is not None:
            for o in self._module_owners:
                if o.start <= va < o.end:
                    return o.label
            for a in self._areas:
                if a.start <= va < a.end:
                    return f"vmap {a.name}"
            return None
        got = self.owners.owner(va)[0]
        return got.label if got is not None else None

    def areas(self) -> List[Area]:
        """Busy vmap areas with a vm_struct; raises KmemdbgError when none can be read."""
        if self._areas is not None:
            return self._areas
        objs = self.kernel.objects()
        if objs is None:
            raise KmemdbgError("vmap areas unavailable: " + (self.kernel._objects_error or "no type information"))
        try:
            raw = objs.vmap_areas()
        except KmemdbgError as err:  # kobjects raises several kinds
            raise KmemdbgError(f"vmap areas unreadable: {_err(err)}") from None
        out = []
        flags_off = objs.btf.offset("vm_struct", "flags")
        for a in raw:
            if a.state != "busy" or a.vm_struct_va is None:
                continue
            try:
                vmflags = int.from_bytes(objs.read(a.vm_struct_va + flags_off, 8), "little")
            except KmemdbgError:
                vmflags = 0
            if vmflags & VM_UNINITIALIZED:
                continue
            guard = 0 if vmflags & VM_NO_GUARD else self.page_size
            pages = self._recorded_pages(objs, a)
            name = a.caller_name or (a.flags[0] if a.flags else "vmap area")
            out.append(Area(a.start, a.end, a.end - guard, name, a.flags, pages, a.purpose))
        self._areas = out
        return out

    def _recorded_pages(self, objs, a) -> Optional[Tuple[int, ...]]:
        """Frame numbers from ``vm_struct.pages`` (struct page pointers turned into pfns)."""
        if not a.pages_va or not a.nr_pages or a.nr_pages > 1 << 22:
            return None
        pages = self.vmemmap()
        vmemmap, size = pages.vmemmap_va, pages.entry_bytes
        if vmemmap is None:
            return None
        try:
            data = self.kernel.read(a.pages_va, 8 * a.nr_pages)
        except KmemdbgError:
            return None
        ptrs = [int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data), 8)]
        return tuple((p - vmemmap) // size if p >= vmemmap else -1 for p in ptrs)

    def vmemmap(self) -> StructPages:
        """The struct page array (virtual base, SIZE(page)); see Kernel.struct_pages."""
        return self.kernel.struct_pages()

    def sections(self) -> Dict[str, Tuple[int, int]]:
        """Kernel image sections by name (``text``, ``rodata``, ``init``, ``data``, ``bss``)."""
        if self._sections is None:
            self._sections = {o.name[1:]: (o.start, o.end) for o in self.owners.image_sections()}
        return self._sections

    def module_owners(self) -> List[Owner]:
        """Every loaded module's memory ranges, typed (the owner index's, or the override)."""
        if self._module_owners is None:
            self._module_owners = list(self.owners.modules())
            gone = [u for u in self.owners.unavailable if u.what == "modules"]
            if gone:
                self.notes.append(f"modules unreadable: {gone[0].reason}")
        return self._module_owners

    def static_data(self) -> List[Tuple[int, int, str]]:
        """Writable static data to scan (virtual ``[start, end)``, owner): the image's
        ``.data``, ``.data..ro_after_init`` and ``.bss``, and every module's data, bss and
        ro_after_init ranges (``module NAME SECTION``)."""
        if self._static is None:
            out = []
            secs = self.sections()
            sym = self.kernel.symbols.address
            ro = (sym("__start_ro_after_init"), sym("__end_ro_after_init"))
            if None not in ro and ro[0] < ro[1]:
                secs = dict(secs, **{"data..ro_after_init": ro})
            for name in ("data", "data..ro_after_init", "bss"):
                if name in secs:
                    out.append((secs[name][0], secs[name][1], f"kernel .{name}"))
            for o in self.module_owners():
                if o.section in MODULE_DATA_SECTIONS:
                    out.append((o.start, o.end, o.label))
            self._static = out
        return self._static

    def linear_va(self, pa: int) -> Optional[int]:
        """The linear-map (direct-map) virtual address of physical ``pa``."""
        return self.kernel.arch_spec.linear_va(self.layout, pa)

    def arith_pa(self, va: int) -> Optional[int]:
        return kernel_pa(self.layout, va).pa

    def ram_end(self) -> Optional[int]:
        """Physical end of RAM: the kernel's ``max_pfn`` where readable, else the last RAM range."""
        from ..kernel_ram import max_pfn_end

        end = max_pfn_end(self.kernel, self.page_size)
        if end is not None:
            return end
        return max((e for _, e in self.ram()), default=None)

    def ram(self) -> List[Tuple[int, int]]:
        """Physical ``[start, end)`` RAM ranges: the kernel's own map (``iomem_resource``) when
        readable, else the memory source's ranges (a dump's program headers).  A slice or a
        live source holds fewer bytes than RAM, so the kernel's view comes first."""
        if self._ram is None:
            from ..kernel_ram import system_ram

            try:
                self._ram, self.ram_source = system_ram(self.kernel)
            except KmemdbgError as err:
                self._ram = self.kernel.ram()
                self.ram_source = "the memory source's ranges"
                if not self._ram:
                    self.notes.append(f"no RAM map: {_err(err)}")
        return self._ram


__all__ = ["AuditContext", "Area", "Piece"]
