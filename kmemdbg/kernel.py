"""A kernel opened for questions about its addresses: classify, translate, check, reverse-map.

:class:`Kernel` extends :class:`~kmemdbg.session.Session` (memory source,
VMCOREINFO, root table, walker) and is a facade over components, each built
once on first use and never changed by a query:

- ``symbols`` (:mod:`kmemdbg.symbols`) and ``layout`` (:mod:`kmemdbg.layout`);
- ``objects()``: typed kernel objects from BTF (:mod:`kmemdbg.kobjects`),
  or None with the reason in :attr:`Kernel.missing`;
- ``owners``: who owns a kernel va (:class:`kmemdbg.linux.owners.OwnerIndex`);
- ``slabs()`` (:mod:`kmemdbg.slab`), ``struct_pages()`` and
  ``page_evidence()`` (what :meth:`Kernel.describe_pa` reads);
- ``table_pages()`` and ``reverse_map()`` (sweeps of the kernel tables).

Verdict prose is :mod:`kmemdbg.verdicts`'; the task list is
:mod:`kmemdbg.linux.tasks`'.

Addresses: ``va`` virtual, ``pa`` physical; region ``end`` values exclusive.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from .gcpause import collection_paused
from .errors import KmemdbgError
from .arch import Arch, arch_named
from .layout import MASK64, Evidence, Layout, Region, discover
from .linux.owners import IMAGE_SECTIONS, OwnerIndex, first_line
from .linux.page import StructPages, page_struct_bytes
from .linux.tasks import Task, TaskOffsets, for_each_task
from .linux.vmalloc import VmapArea
from .memory import PhysicalMemory, TableCache, declared
from .physinfo import PageEvidence, PhysInfo, RamEnd, describe
from .session import Session
from .symbols import SymbolTable
from .kernel_ram import max_pfn_end
from .kernel_tables import kernel_tables
from .tables import Fault, leaf_pa, sweep, table_pages
from .records import new_record
from .verdicts import WalkFault, judge, slab_detail, vmap_detail
from .virt_to_phys import Check, kernel_pa
from .vmcoreinfo import VmcoreInfo
from .walk import Walk, Walker


class Allocation(NamedTuple):
    """What owns an address inside its region.

    ``kind``: vmap-area, module, image-section, slab-object or page.  ``start``
    and ``end`` are virtual (end exclusive); ``flags`` are the kernel's own
    words (vmalloc, vmap, ioremap...) where it has them.
    """

    kind: str
    name: str
    start: int
    end: int
    caller: Optional[str] = None
    flags: Tuple[str, ...] = ()
    detail: str = ""


class Classification(NamedTuple):
    """The region of ``va`` and, where the data allows, the allocation inside it."""

    va: int
    region: Region
    allocation: Optional[Allocation]


@dataclass(frozen=True)
class Mapping:
    """One kernel virtual mapping of a physical address: ``va`` maps ``pa`` via a leaf of ``page_size``."""

    va: int
    pa: int
    page_size: int
    level: str
    region: Region
    allocation: Optional[Allocation]


#: Pages one check_virt_to_phys() call walks at most (``size`` / page size).
MAX_CHECK_PAGES = 1 << 16

IMAGE_SECTIONS = (("text", "_text", "_etext"), ("rodata", "__start_rodata", "__end_rodata"),
                  ("init", "__init_begin", "__init_end"), ("data", "_sdata", "_edata"),
                  ("bss", "__bss_start", "__bss_stop"))


#: "the caller did not translate the address" (None would mean "unmapped")
_UNKNOWN = object()


class Kernel(Session):
    """See the module docstring.  Build with :func:`kmemdbg.open`."""

    def __init__(self, memory, info, tables, walker, description, prog, symbols: SymbolTable,
                 notes: Sequence[str]) -> None:
        super().__init__(memory, info, tables, walker, description, prog)
        self.symbols = symbols
        self.notes = list(notes)
        self._layout: Optional[Layout] = None
        self._tables: Optional[Dict[int, int]] = None
        self._reverse: Optional[ReverseMap] = None
        self._objects = None
        #: why the typed kernel objects could not be built (once, when first asked), or None
        self._objects_error: Optional[str] = None
        self._owners: Optional[OwnerIndex] = None
        self._slabs = None
        self._pages: Optional[PageEvidence] = None
        self._vmap_allocs: Dict[int, Allocation] = {}
        #: the kernel's base page size in bytes
        self._page_bytes = tables.format.page_size
        #: accept layout defaults where the dump gives no evidence (else LayoutError)
        self.guess_layout = False

    #: opens drgn's Program over this kernel on the first use of :attr:`prog`, saying what it
    #: has to say in the list it is given (the kernel's notes); set by :func:`kmemdbg.open`
    #: for dump files (most commands never need drgn), or None
    _prog_factory: Optional[Callable[[List[str]], Any]] = None

    @property
    def prog(self):
        """drgn's ``Program`` over the same kernel (None without drgn), opened on first use."""
        if self.__dict__.get("_prog") is None and self._prog_factory is not None:
            factory, self._prog_factory = self._prog_factory, None
            self.__dict__["_prog"] = factory(self.notes)
        return self.__dict__.get("_prog")

    @prog.setter
    def prog(self, value) -> None:
        self.__dict__["_prog"] = value

    @classmethod
    def build(cls, memory: PhysicalMemory, info: VmcoreInfo, arch: "Arch | str", description: str,
              prog, symbols: SymbolTable, notes: Sequence[str]) -> "Kernel":
        """A Kernel over ``memory``; ``arch`` is a registry :class:`~kmemdbg.arch.Arch` or its name."""
        spec = arch_named(arch) if isinstance(arch, str) else arch
        tables = kernel_tables(info, spec.name)
        walker = Walker(tables.format, memory, tables.root_pa, TableCache(memory), half=spec.kernel_half)
        return cls(memory, info, tables, walker, description, prog, symbols, notes)

    @property
    def arch_spec(self) -> Arch:
        """The registry record of this kernel's architecture."""
        return arch_named(self.arch)

    # -- evidence -----------------------------------------------------------
    def _read_int(self, va: int, size: int) -> Optional[int]:
        try:
            return int.from_bytes(self.read(va, size), "little")
        except KmemdbgError:  # a read failure means "no evidence"
            return None

    def ram(self) -> List[Tuple[int, int]]:
        """Physical ``[start, end)`` ranges of memory the source holds ([] when it does not say)."""
        return sorted(declared(self.memory).ram_ranges() or [])

    def _elf_linear_offset(self) -> Tuple[Optional[int], str]:
        """``p_vaddr - p_paddr`` of a direct-map segment of the source's headers (dump file, /proc/kcore)."""
        image_base = self.arch_spec.image_base
        if image_base is None:
            # only an arch whose image sits at a fixed base tells the direct map's PT_LOADs
            # from the image's by address; elsewhere the headers are no evidence
            return None, ""
        found = declared(self.memory).linear_offset(image_base)
        return (found.offset, found.source) if found is not None else (None, "")

    @property
    def layout(self) -> Layout:
        """The discovered layout.  Raises LayoutError when a region base had to be
        guessed (no evidence, a default taken) unless :attr:`guess_layout` is set."""
        if self._layout is None:
            def translate(va: int) -> Optional[int]:
                return self.walker.walk(va).pa

            def reaches(va: int, depth: int) -> bool:
                steps = self.walker.walk(va).steps
                return len(steps) > depth or (len(steps) == depth and steps[-1].kind != "invalid")
            offset, source = self._elf_linear_offset()
            ev = Evidence(self.arch, self.info, symbol=self.symbols.address,
                          read_u64=lambda va: self._read_int(va, 8),
                          read_u32=lambda va: self._read_int(va, 4),
                          translate=translate, reaches=reaches, ram=self.ram(),
                          elf_linear_offset=offset, elf_linear_source=source,
                          typed_field=self.typed_field)
            layout = discover(ev)
            if layout.guessed and not self.guess_layout:
                from .errors import LayoutError

                what = ", ".join(f"{q} (default 0x{layout.value(q):x})" for q in layout.guessed)
                raise LayoutError(f"layout: no evidence for {what}: that would be a guess "
                                  "(use --guess-layout to accept it)")
            self._layout = layout
        return self._layout

    def typed_field(self, symbol: str, struct: str, member: str) -> Optional[int]:
        """The unsigned value of ``member`` of the BTF ``struct`` stored at ``symbol``, or None."""
        addr = self.symbols.address(symbol)
        objs = self.objects() if addr is not None else None
        if objs is None:
            return None
        try:
            m = objs.btf.struct(struct).member(member)
            size = objs.btf.sizeof(m.type)
        except KmemdbgError:
            return None
        if m.bit_size or size not in (1, 2, 4, 8):
            return None
        return self._read_int(addr + m.offset_bytes, size)

    @property
    def missing(self) -> List[str]:
        """What could not be found, as sentences (symbols, layout evidence, types)."""
        out = list(self.notes)
        if self.symbols.source == "none":
            out.append("no symbols: image sections and symbol-based layout evidence unavailable")
        out += [f"layout: no evidence for {m}" for m in self.layout.missing]
        out += [f"layout: {q} is a guess (a default, no evidence in the dump)" for q in self.layout.guessed]
        if self._objects_error:
            out.append(self._objects_error)
        if self._owners is not None:
            out += [f"{u.what} unreadable: {u.reason}" for u in self._owners.unavailable]
        return out

    def table_pages(self) -> Dict[int, int]:
        """Physical page -> level index for every kernel page-table page (swept once)."""
        if self._tables is None:
            self._tables = table_pages(self.tables.format, self.walker.cache, self.tables.root_pa)
        return self._tables

    # -- components, each built once ------------------------------------------
    def objects(self):
        """Typed kernel objects (vmap areas, modules) from BTF, or None when there is no type info
        (the reason is then in :attr:`missing`)."""
        if self._objects is None and self._objects_error is None:
            from .kobjects import KernelObjects

            try:
                objs = KernelObjects(self, symbol=self.symbols.address, describe=self.symbols.name_of)
                objs.btf  # load types now so a missing type source is reported here
                self._objects = objs
            except KmemdbgError as err:  # degrade: classification without allocations
                self._objects_error = f"no allocation data: {str(err).splitlines()[0] if str(err) else err}"
        return self._objects

    @property
    def owners(self) -> OwnerIndex:
        """Who owns a kernel virtual address (:class:`kmemdbg.linux.owners.OwnerIndex`)."""
        if self._owners is None:
            self._owners = OwnerIndex(self.symbols.address, self.objects)
        return self._owners

    def slabs(self):
        """Slab lookups (:class:`kmemdbg.slab.Slabs`), built once."""
        if self._slabs is None:
            from .slab import Slabs

            self._slabs = Slabs(self)
        return self._slabs

    def struct_pages(self) -> StructPages:
        """The struct page array: virtual base for pfn 0 and SIZE(page) in bytes.

        ``SYMBOL(vmemmap)`` where VMCOREINFO has it (6.9+), else the
        architecture's rule (``Arch.vmemmap_base``).  The base is None when
        nothing gives it.
        """
        info = self.info
        size = page_struct_bytes(info)
        base = info.symbol("vmemmap")
        if base is None:
            base = self.arch_spec.vmemmap_base(info, self.layout, self.tables.format.page_shift, size)
        return StructPages(base, size)

    def page_evidence(self) -> PageEvidence:
        """What :meth:`describe_pa` needs, worked out once: vmemmap, the image's physical range,
        the kernel's end of RAM and the source's RAM ranges."""
        if self._pages is None:
            image = None
            text, end = self.symbols.address("_text"), self.symbols.address("_end")
            if text is not None and end is not None:
                lo, hi = kernel_pa(self.layout, text).pa, kernel_pa(self.layout, end).pa
                if lo is not None and hi is not None:
                    image = (lo, hi)
            end = max_pfn_end(self, self.tables.format.page_size)
            ram_end = RamEnd(end, "the kernel's max_pfn") if end is not None else None
            self._pages = PageEvidence(self.tables.format.page_size, tuple(self.ram()), ram_end, image,
                                       self.struct_pages().vmemmap_va)
        return self._pages

    # -- allocations --------------------------------------------------------
    def _module_allocation(self, va: int) -> Optional[Allocation]:
        sec = (self._owners or self.owners).module_at(va)
        if sec is None:
            return None
        try:
            where = self.objects().describe_address(va)
        except KmemdbgError:  # the module's symbol table may be missing (slices)
            where = None
        return new_record(Allocation, ("module", sec.name, sec.start, sec.end, None, (sec.section,),
                                       where or f"{sec.name} {sec.section}"))

    def _vmap_allocation(self, va: int) -> Optional[Allocation]:
        area = (self._owners or self.owners).vmap_area_at(va)
        if area is None:
            return None
        got = self._vmap_allocs.get(id(area))
        if got is None:
            got = self._vmap_allocs[id(area)] = _area_allocation(area)
        return got

    def _image_section(self, va: int) -> Optional[Allocation]:
        sec = (self._owners or self.owners).image_section_at(va)
        if sec is None:
            return None
        return new_record(Allocation, ("image-section", sec.name, sec.start, sec.end, None, (),
                                       self.symbols.name_of(va) or ""))

    def _slab_allocation(self, va: int, pa: object = _UNKNOWN) -> Optional[Allocation]:
        if pa is _UNKNOWN:
            pa = self.walker.translate_one(va)[0]
        if pa is None:
            return None
        obj = (self._slabs or self.slabs()).object_of(pa)
        if obj is None:
            return None
        cache, head_pa, object_pa, object_size = obj
        base = va - (pa - (object_pa if object_pa is not None else head_pa))
        return new_record(Allocation, ("slab-object", cache or "slab object", base,
                                       base + (object_size or self._page_bytes), None, (),
                                       slab_detail(va - base, object_size)))

    def allocation_of(self, va: int, region: Region, pa: object = _UNKNOWN) -> Optional[Allocation]:
        """The allocation holding ``va``: image section, module section, vmap area or slab object.

        ``pa`` is ``va``'s physical address (or None: unmapped) when the caller already
        translated it."""
        kind = region.kind
        # a stack, a guard page or a per-cpu variable first
        special = (self._owners or self.owners).special(va, kind, self._page_bytes)
        if special is not None:
            return Allocation(special.kind, special.name, special.start, special.end, special.caller,
                              special.flags, special.detail)
        if kind == "linear" or kind == "percpu":
            return self._slab_allocation(va, pa)
        if kind == "kernel-image":
            return self._image_section(va)
        if kind == "vmalloc" or kind == "module":
            return self._module_allocation(va) or self._vmap_allocation(va)
        return None

    def classify(self, va: int) -> Classification:
        """The region of virtual ``va`` and the allocation in it where known."""
        return self._classify(va & MASK64, _UNKNOWN)

    def _classify(self, va: int, pa: object) -> Classification:
        region = (self._layout or self.layout).region_of(va)
        alloc = self.allocation_of(va, region, pa)
        if alloc is not None and alloc.kind == "module" and region.kind != "module":
            # arm64 modules live inside the vmalloc range next to the image.
            region = Region("module", f"module {alloc.name}", alloc.start, alloc.end,
                            "the kernel's module list", "the kernel's module list",
                            f"inside the {region.kind} region ({region.name})")
        return new_record(Classification, (va, region, alloc))

    # -- cross-check ----------------------------------------------------------
    def describe_pa(self, pa: int) -> PhysInfo:
        """What physical ``pa`` holds: beyond RAM, a hole, a page-table page, free, slab..."""
        ev = self.page_evidence()
        if ev.ram_end is not None and pa >= ev.ram_end.pa:
            return describe(pa, self.info, ev, {})
        return describe(pa, self.info, ev, self.table_pages(), self._read_or_none, self._slab_cache_of)

    def _read_or_none(self, va: int, size: int) -> Optional[bytes]:
        try:
            return self.read(va, size)
        except KmemdbgError:
            return None

    def _slab_cache_of(self, page_va: int) -> Optional[str]:
        """Cache name of the slab whose struct page is at virtual ``page_va``, or None."""
        slabs = self.slabs()
        pfn = (page_va - self.page_evidence().vmemmap_va) // slabs.page_struct
        head = slabs.head_of(pfn * slabs.page_size)
        return slabs.cache_of(head)[0] if head is not None else None

    def check_virt_to_phys(self, va: int, claimed_pa: Optional[int] = None, size: int = 1) -> Check:
        """Compare ``__pa(va)`` (or ``claimed_pa``) with the page tables.

        ``size`` (bytes) checks a range and lists the true frame of every page;
        at most MAX_CHECK_PAGES pages (KmemdbgError beyond, or for a size below 1).
        """
        page = self.tables.format.page_size
        if not 1 <= size <= MAX_CHECK_PAGES * page:
            raise KmemdbgError(f"size {size}: give 1 to {MAX_CHECK_PAGES * page} bytes "
                               f"({MAX_CHECK_PAGES} pages of {page} bytes) to check at once")
        va &= MASK64
        walk = self.translate(va)
        fault = None if walk.fault is None else WalkFault(walk.fault.level, walk.fault.reason)
        pages: List[Tuple[int, Optional[int]]] = []
        if size > 1:
            first = va - va % page
            for p in range(first, va + size, page):
                pages.append((p, self.translate(p).pa))
        cls = self._classify(va, walk.pa)       # the walk's pa: no second translation
        memo: Dict[int, PhysInfo] = {}
        return judge(va, claimed_pa, walk.pa, fault, tuple(pages), cls.region, cls.allocation,
                     self.arch_spec.kernel_pa(self.layout, va), lambda pa: self._describe_cached(pa, memo))

    def check_many(self, vas: Sequence[int], claimed: Optional[Sequence[Optional[int]]] = None) -> List[Check]:
        """:meth:`check_virt_to_phys` for many addresses, sharing one batch translation.

        ``claimed`` (parallel to ``vas``) gives claimed physical addresses.
        What a bogus physical frame holds is worked out once per frame.
        """
        with collection_paused():
            batch = self.walker.translate_many(vas)     # its vas are masked to 64 bits
            layout, pa_rule, classify = self.layout, self.arch_spec.kernel_pa, self._classify
            memo: Dict[int, PhysInfo] = {}

            def describe(pa: int) -> PhysInfo:
                return self._describe_cached(pa, memo)

            out = []
            for i, (va, walk_pa, f) in enumerate(zip(batch.vas, batch.pas, batch.faults)):
                cls = classify(va, walk_pa)
                out.append(judge(va, claimed[i] if claimed else None, walk_pa,
                                 None if f is None else WalkFault(f[0], f[1]), (), cls.region,
                                 cls.allocation, pa_rule(layout, va), describe))
        return out

    def _describe_cached(self, pa: int, memo: Dict[int, PhysInfo]) -> PhysInfo:
        """:meth:`describe_pa` of physical ``pa``, worked out once per frame in ``memo`` (physical
        frame -> PhysInfo).  Every frame beyond the end of RAM gets the same words, so they share
        one entry (key -1): __pa() of vmalloc addresses lands there, each in its own frame."""
        ev = self._pages or self.page_evidence()
        beyond = ev.ram_end is not None and pa >= ev.ram_end.pa
        frame = -1 if beyond else pa - pa % ev.page_size
        got = memo.get(frame)
        if got is None:
            got = memo[frame] = self.describe_pa(pa if beyond else frame)
        return new_record(PhysInfo, (pa, got.kind, got.detail))

    # -- user address spaces ----------------------------------------------------
    def tasks(self, limit: int = 1 << 16) -> List[Task]:
        """Every task on the ``init_task`` list (:class:`kmemdbg.linux.tasks.Task`), in list order.

        Offsets come from BTF; raises KmemdbgError (one line) when types or
        the list cannot be read.  The walk is bounded by ``limit`` entries.
        """
        objs = self.objects()
        if objs is None:
            raise KmemdbgError(self._objects_error or "no type information for task_struct")
        btf = objs.btf
        init = objs.symbol("init_task")
        if init is None:
            raise KmemdbgError("no symbol init_task: cannot list tasks")
        try:
            off = TaskOffsets(btf.offset("task_struct", "tasks"), btf.offset("task_struct", "pid"),
                              btf.offset("task_struct", "mm"), btf.offset("task_struct", "comm"))
        except KmemdbgError as err:
            raise KmemdbgError(f"task_struct layout unknown: {err}") from None
        return list(for_each_task(self.read, init, off, limit))

    def user_walker(self, pid: Optional[int] = None, mm: Optional[int] = None) -> Walker:
        """A walker over the user page tables of task ``pid`` or of ``struct mm_struct *mm``.

        The root is ``mm->pgd`` (a linear-map VA) translated through the
        kernel tables.  On x86-64 with PTI the kernel copy is used; it maps
        user pages at the same frames but forces NX at the top level.
        """
        if mm is None:
            if pid is None:
                raise KmemdbgError("give a pid or an mm_struct address")
            # threads too (init_task.tasks holds group leaders only); the leader walk then gives the error
            match = [t for t in self.owners.tasks() if t.pid == pid] or [t for t in self.tasks() if t.pid == pid]
            if not match:
                raise KmemdbgError(f"no task with pid {pid}")
            mm = match[0].mm_va
            if not mm:
                raise KmemdbgError(f"pid {pid} ({match[0].comm}) is a kernel thread: it has no mm")
        objs = self.objects()
        o_pgd = objs.btf.offset("mm_struct", "pgd")
        pgd_va = self._read_int(mm + o_pgd, 8)
        if pgd_va is None:
            raise KmemdbgError(f"mm_struct at 0x{mm:x} is not readable")
        root = self.walker.walk(pgd_va).pa
        if root is None:
            raise KmemdbgError(f"mm->pgd 0x{pgd_va:x} is not mapped")
        return Walker(self.tables.format, self.memory, root, self.walker.cache,
                      half=self.arch_spec.user_half)

    def translate_user(self, va: int, pid: Optional[int] = None, mm: Optional[int] = None) -> Walk:
        """Walk user virtual ``va`` in the address space of ``pid`` (or ``mm``)."""
        return self.user_walker(pid, mm).walk(va)

    # -- reverse map ----------------------------------------------------------
    def reverse_map(self) -> "ReverseMap":
        """The inverted sweep of the kernel tables (built once)."""
        if self._reverse is None:
            self._reverse = ReverseMap.sweep(self)
        return self._reverse

    @property
    def reverse_faults(self) -> List[Fault]:
        """Faults of the sweep behind :meth:`phys_to_virts` (empty until it ran)."""
        return list(self._reverse.faults) if self._reverse is not None else []

    def phys_to_virts(self, pa: int) -> List[Mapping]:
        """Every kernel virtual address that maps physical ``pa`` (from an inverted sweep).

        The sweep's faults (tables it could not read, loops, shared tables it
        counted instead of repeating) are in :attr:`reverse_faults`
        afterwards: mappings under them are not listed.
        """
        fmt = self.tables.format
        out = []
        for leaf in self.reverse_map().leaves_holding(pa):
            v = leaf.va + (pa - leaf.pa)
            cls = self.classify(v)
            out.append(Mapping(v, pa, leaf.size, fmt.levels[leaf.level].name, cls.region, cls.allocation))
        return sorted(out, key=lambda m: m.va)


def _area_allocation(area: VmapArea) -> Allocation:
    name = area.purpose or (area.flags[0] if area.flags else "vmap area")
    return Allocation("vmap-area", name, area.start, area.end, area.caller_name, area.flags, vmap_detail(area))


@dataclass(frozen=True)
class Leaf:
    """One leaf of the kernel tables: virtual ``va`` maps physical ``pa`` for ``size`` bytes at ``level``."""

    pa: int
    size: int
    va: int
    level: int


@dataclass(frozen=True)
class ReverseMap:
    """Every leaf of the kernel tables sorted by physical address, and the sweep's faults."""

    leaves: Tuple[Leaf, ...]
    starts: Tuple[int, ...]
    biggest: int
    faults: Tuple[Fault, ...]

    @classmethod
    def sweep(cls, kernel: Kernel) -> "ReverseMap":
        fmt = kernel.tables.format
        rows, faults = [], []
        for item in sweep(fmt, kernel.walker.cache, kernel.tables.root_pa):
            if isinstance(item, Fault):
                faults.append(item)
            elif item.kind == "leaf":
                rows.append(Leaf(leaf_pa(fmt, item), item.size, item.va, item.level))
        rows.sort(key=lambda r: (r.pa, r.size, r.va, r.level))
        return cls(tuple(rows), tuple(r.pa for r in rows), max((r.size for r in rows), default=0), tuple(faults))

    def leaves_holding(self, pa: int) -> List[Leaf]:
        """The leaves whose physical range holds ``pa``, highest start first."""
        out = []
        i = bisect.bisect_right(self.starts, pa) - 1
        while i >= 0 and self.leaves[i].pa + self.biggest > pa:
            leaf = self.leaves[i]
            if leaf.pa <= pa < leaf.pa + leaf.size:
                out.append(leaf)
            i -= 1
        return out


__all__ = ["Kernel", "SymbolTable", "Allocation", "Classification", "Mapping", "IMAGE_SECTIONS", "ReverseMap",
           "Leaf", "Task", "first_line"]
