"""A kernel opened for questions about its addresses: classify, translate, check, reverse-map.

:class:`Kernel` extends :class:`~kmemdbg.session.Session` (memory source,
VMCOREINFO, root table, walker) with symbols, the discovered layout, the
allocations inside regions, the kernel's ``__pa()`` arithmetic and a reverse
map from physical pages to every kernel virtual mapping.

Addresses: ``va`` virtual, ``pa`` physical; region ``end`` values exclusive.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from .errors import KmemdbgError
from .layout import MASK64, START_KERNEL_MAP, Evidence, Layout, Region, discover
from .memory import PhysicalMemory, TableCache
from .physinfo import PhysInfo, describe
from .session import Session
from .sources.elfcore import ElfCoreMemory
from .symbols import SymbolTable
from .kernel_tables import kernel_tables
from .tables import TreeFault, leaf_pa, sweep, table_pages
from .virt_to_phys import MISMATCH, NOT_APPLICABLE, OK, UNMAPPED, Check, kernel_pa
from .vmcoreinfo import VmcoreInfo
from .walk import Walk, Walker


@dataclass(frozen=True)
class Allocation:
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


@dataclass(frozen=True)
class Classification:
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


class Kernel(Session):
    """See the module docstring.  Build with :func:`kmemdbg.open`."""

    def __init__(self, memory, info, tables, walker, description, prog, symbols: SymbolTable,
                 notes: Sequence[str]) -> None:
        super().__init__(memory, info, tables, walker, description, prog)
        self.symbols = symbols
        self.notes = list(notes)
        self._layout: Optional[Layout] = None
        self._tables: Optional[Dict[int, int]] = None
        self._reverse: Optional[Tuple[List[int], List[Tuple[int, int, int, int]]]] = None
        #: faults of the sweep behind phys_to_virts() (tables.TreeFault), once it ran
        self.reverse_faults: List[TreeFault] = []
        self._objects = None
        self._objects_error: Optional[str] = None
        self.kcore_path: Optional[str] = None   # set for live /proc/kcore sessions
        #: accept layout defaults where the dump gives no evidence (else LayoutError)
        self.guess_layout = False

    @classmethod
    def build(cls, memory: PhysicalMemory, info: VmcoreInfo, arch: str, description: str,
              prog, symbols: SymbolTable, notes: Sequence[str]) -> "Kernel":
        tables = kernel_tables(info, arch)
        walker = Walker(tables.format, memory, tables.root_pa, TableCache(memory),
                        half="upper" if arch == "arm64" else "both")
        return cls(memory, info, tables, walker, description, prog, symbols, notes)

    # -- evidence -----------------------------------------------------------
    def _read_int(self, va: int, size: int) -> Optional[int]:
        try:
            return int.from_bytes(self.read(va, size), "little")
        except Exception:  # noqa: BLE001 - any read failure means "no evidence"
            return None

    def ram(self) -> List[Tuple[int, int]]:
        """Physical ``[start, end)`` ranges of memory the source holds."""
        if isinstance(self.memory, ElfCoreMemory):
            return sorted((pa, pa + memsz) for pa, _f, _o, memsz, _v in self.memory.loads)
        ranges = getattr(self.memory, "ranges", None)
        return sorted(ranges()) if callable(ranges) else []

    def _elf_linear_offset(self) -> Tuple[Optional[int], str]:
        """``p_vaddr - p_paddr`` of a direct-map segment of the dump file or of /proc/kcore."""
        from .sources.elfcore import linear_offset_from_headers, program_headers

        if isinstance(self.memory, ElfCoreMemory):
            headers = [(1, va, pa, memsz) for pa, _f, _o, memsz, va in self.memory.loads]
            return linear_offset_from_headers(headers, START_KERNEL_MAP), "ELF PT_LOAD p_vaddr - p_paddr"
        if self.kcore_path:
            try:
                headers = program_headers(self.kcore_path)
            except Exception:  # noqa: BLE001 - evidence, not a requirement
                return None, ""
            return linear_offset_from_headers(headers, START_KERNEL_MAP), \
                "/proc/kcore KCORE_RAM p_vaddr - p_paddr"
        return None, ""

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
        return out

    def table_pages(self) -> Dict[int, int]:
        """Physical page -> level index for every kernel page-table page (swept once)."""
        if self._tables is None:
            self._tables = table_pages(self.tables.format, self.walker.cache, self.tables.root_pa)
        return self._tables

    # -- allocations --------------------------------------------------------
    def objects(self):
        """Typed kernel objects (vmap areas, modules) from BTF, or None when there is no type info."""
        if self._objects is None and self._objects_error is None:
            try:
                from .kobjects import KernelObjects

                objs = KernelObjects(self, symbol=self.symbols.address, describe=self.symbols.name_of)
                objs.btf  # load types now so a missing type source is reported here
                self._objects = objs
            except Exception as err:  # noqa: BLE001 - degrade: classification without allocations
                self._objects_error = f"no allocation data: {str(err).splitlines()[0] if str(err) else err}"
        return self._objects

    def _module_index(self):
        """Module sections sorted by start: ([start], [(end, module, section)]), built once."""
        got = getattr(self, "_modidx", None)
        if got is None:
            rows = []
            objs = self.objects()
            if objs is not None:
                try:
                    for mod in objs.modules():
                        for sec in mod.sections:
                            rows.append((sec.start, sec.end, mod, sec))
                except Exception as err:  # noqa: BLE001 - a corrupt module list degrades to no answer
                    self.notes.append(f"module list unreadable: {str(err).splitlines()[0]}")
            rows.sort(key=lambda r: r[0])
            got = self._modidx = ([r[0] for r in rows], rows)
        return got

    def _module_allocation(self, va: int) -> Optional[Allocation]:
        starts, rows = self._module_index()
        i = bisect.bisect_right(starts, va) - 1
        if i < 0 or not va < rows[i][1]:
            return None
        _start, _end, mod, sec = rows[i]
        objs = self.objects()
        try:
            where = objs.describe_address(va)
        except Exception:  # noqa: BLE001 - the module's symbol table may be missing (slices)
            where = None
        return Allocation("module", mod.name, sec.start, sec.end, flags=(sec.name,),
                          detail=where or f"{mod.name} {sec.name}")

    def _vmap_allocation(self, va: int) -> Optional[Allocation]:
        objs = self.objects()
        if objs is None:
            return None
        try:
            area = objs.find_vmap_area(va)
        except Exception as err:  # noqa: BLE001
            self.notes.append(f"vmap areas unreadable: {str(err).splitlines()[0]}")
            return None
        if area is None:
            return None
        memo = self.__dict__.setdefault("_vmap_allocs", {})
        got = memo.get(id(area))
        if got is not None:
            return got
        name = area.purpose or (area.flags[0] if area.flags else "vmap area")
        detail = f"{area.nr_pages} pages" if area.nr_pages else ""
        if area.phys_addr:
            detail += f"{', ' if detail else ''}phys 0x{area.phys_addr:x}"
        if area.state != "busy":
            detail += f"{', ' if detail else ''}{area.state}"
        got = memo[id(area)] = Allocation("vmap-area", name, area.start, area.end, area.caller_name,
                                          area.flags, detail)
        return got

    def _image_section(self, va: int) -> Optional[Allocation]:
        for name, lo, hi in IMAGE_SECTIONS:
            a, b = self.symbols.address(lo), self.symbols.address(hi)
            if a is not None and b is not None and a <= va < b:
                sym = self.symbols.name_of(va)
                return Allocation("image-section", f".{name}", a, b, detail=sym or "")
        return None

    def allocation_of(self, va: int, region: Region) -> Optional[Allocation]:
        """The allocation holding ``va``: image section, module section or vmap area."""
        if region.kind == "kernel-image":
            return self._image_section(va)
        if region.kind in ("vmalloc", "module"):
            return self._module_allocation(va) or self._vmap_allocation(va)
        if region.kind in ("linear", "percpu"):
            return self._slab_allocation(va)
        return None

    def _slab_allocation(self, va: int) -> Optional[Allocation]:
        pa = self.walker.walk(va).pa
        if pa is None:
            return None
        obj = self.slabs().object_of(pa)
        if obj is None:
            return None
        base = va - (pa - obj.object_pa) if obj.object_pa is not None else va - (pa - obj.head_pa)
        size = obj.object_size or self.tables.format.page_size
        offset = va - base
        return Allocation("slab-object", obj.cache or "slab object", base, base + size,
                          detail=f"offset 0x{offset:x} in a {size}-byte object" if obj.object_size
                          else "slab page (cache unknown: no struct slab type)")

    def classify(self, va: int) -> Classification:
        """The region of virtual ``va`` and the allocation in it where known."""
        va &= MASK64
        region = self.layout.region_of(va)
        alloc = self.allocation_of(va, region)
        if alloc is not None and alloc.kind == "module" and region.kind != "module":
            # arm64 modules live inside the vmalloc range next to the image.
            region = Region("module", f"module {alloc.name}", alloc.start, alloc.end,
                            "the kernel's module list", "the kernel's module list",
                            f"inside the {region.kind} region ({region.name})")
        return Classification(va, region, alloc)

    # -- cross-check ----------------------------------------------------------
    def struct_pages(self) -> Tuple[Optional[int], int]:
        """(virtual base of the struct page array for pfn 0, SIZE(page) in bytes).

        ``SYMBOL(vmemmap)`` where VMCOREINFO has it (6.9+), else x86-64's
        ``vmemmap_base`` and arm64's ``VMEMMAP_START - (PHYS_OFFSET >>
        PAGE_SHIFT) * SIZE(page)`` (arch/arm64/include/asm/memory.h).  The
        base is None when nothing gives it.
        """
        info = self.info
        size_text = info.text("SIZE(page)")
        size = int(size_text) if size_text and size_text.isdigit() else 64
        base = info.symbol("vmemmap")
        if base is None and self.arch == "x86_64":
            base = self.layout.value("vmemmap_base")
        if base is None and self.arch == "arm64":
            start, phys = info.number("VMEMMAP_START"), self.layout.value("PHYS_OFFSET")
            if start is not None and phys is not None:
                base = (start - (phys >> self.tables.format.page_shift) * size) & MASK64
        return base, size

    def slabs(self):
        """Slab lookups (:class:`kmemdbg.slab.Slabs`), built once."""
        got = getattr(self, "_slabs", None)
        if got is None:
            from .slab import Slabs

            got = self._slabs = Slabs(self)
        return got

    def _pa_evidence(self):
        """What describe_pa needs, worked out once: vmemmap, image range, RAM end (physical)."""
        cached = getattr(self, "_pa_ev", None)
        if cached is not None:
            return cached
        vmemmap = self.struct_pages()[0]
        image = None
        text, end = self.symbols.address("_text"), self.symbols.address("_end")
        if text is not None and end is not None:
            lo, hi = kernel_pa(self.layout, text).pa, kernel_pa(self.layout, end).pa
            if lo is not None and hi is not None:
                image = (lo, hi)
        ram_end = None
        max_pfn = self.symbols.address("max_pfn")
        if max_pfn is not None:
            value = self._read_int(max_pfn, 8)
            if value:
                ram_end = (value * self.tables.format.page_size, "the kernel's max_pfn")
        slabs = self.slabs()

        def slab_of(page_va: int) -> Optional[str]:
            pfn = (page_va - vmemmap) // slabs.page_struct
            head = slabs.head_of(pfn * slabs.page_size)
            return slabs.cache_of(head)[0] if head is not None else None
        self._pa_ev = (vmemmap, image, ram_end, slab_of, self.ram())
        return self._pa_ev

    def describe_pa(self, pa: int) -> PhysInfo:
        """What physical ``pa`` holds: beyond RAM, a hole, a page-table page, free, slab..."""
        vmemmap, image, ram_end, slab_of, ram = self._pa_evidence()

        def read_virt(va: int, n: int) -> Optional[bytes]:
            try:
                return self.read(va, n)
            except Exception:  # noqa: BLE001
                return None
        if ram_end is not None and pa >= ram_end[0]:
            return describe(pa, self.info, ram, {}, self.tables.format.page_size, ram_end=ram_end)
        return describe(pa, self.info, ram, self.table_pages(), self.tables.format.page_size,
                        image, vmemmap, read_virt, slab_of, ram_end)

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
        fault = None if walk.fault is None else (walk.fault.level, walk.fault.reason)
        pages: List[Tuple[int, Optional[int]]] = []
        if size > 1:
            first = va - va % page
            for p in range(first, va + size, page):
                pages.append((p, self.translate(p).pa))
        return self._check(va, claimed_pa, walk.pa, fault, tuple(pages), {})

    def check_many(self, vas: Sequence[int], claimed: Optional[Sequence[Optional[int]]] = None) -> List[Check]:
        """:meth:`check_virt_to_phys` for many addresses, sharing one batch translation.

        ``claimed`` (parallel to ``vas``) gives claimed physical addresses.
        What a bogus physical frame holds is worked out once per frame.
        """
        batch = self.walker.translate_many(vas)
        memo: Dict[int, PhysInfo] = {}
        out = []
        for i, va in enumerate(batch.vas):
            out.append(self._check(va, claimed[i] if claimed else None, batch.pas[i], batch.faults[i], (), memo))
        return out

    def _describe_cached(self, pa: int, memo: Dict[int, PhysInfo]) -> PhysInfo:
        frame = pa - pa % self.tables.format.page_size
        got = memo.get(frame)
        if got is None:
            got = memo[frame] = self.describe_pa(frame)
        return PhysInfo(pa, got.kind, got.detail)

    def _check(self, va: int, claimed_pa: Optional[int], walk_pa: Optional[int],
               fault: Optional[Tuple[Optional[str], str]], pages, memo) -> Check:
        cls = self.classify(va)
        region = cls.region
        arith = kernel_pa(self.layout, va)
        where = f"{region.kind} address ({region.name})"
        if cls.allocation is not None:
            where += f", {cls.allocation.kind} {cls.allocation.name}"
        if region.kind == "non-canonical" or (fault is not None and fault[1] == "non-canonical"):
            return Check(va, arith.pa, None, claimed_pa, NOT_APPLICABLE, region,
                         f"{where}: no translation exists for it", arith.branch, arith.debug_virtual, pages)
        if arith.pa is None and claimed_pa is None:
            return Check(va, None, walk_pa, None, NOT_APPLICABLE, region,
                         f"{where}: __pa() cannot be computed: {arith.branch}", arith.branch, "", pages)
        subject = claimed_pa if claimed_pa is not None else arith.pa
        label = "the claimed physical address is" if claimed_pa is not None else "__pa() arithmetic gives"
        if fault is not None:
            bogus = self._describe_cached(subject, memo)
            text = (f"{where}: {label} 0x{subject:x}, but the page tables do not map it "
                    f"({fault[1]} at {fault[0]}); 0x{subject:x} is {bogus.detail}")
            return Check(va, arith.pa, None, claimed_pa, UNMAPPED, region, text, arith.branch,
                         arith.debug_virtual, pages, bogus.kind)
        if subject == walk_pa:
            text = f"{where}: {label} 0x{subject:x}, as the page tables say"
            return Check(va, arith.pa, walk_pa, claimed_pa, OK, region, text, arith.branch,
                         arith.debug_virtual, pages)
        bogus = self._describe_cached(subject, memo)
        how = f" ({arith.branch})" if claimed_pa is None else ""
        text = (f"{where}: {label} 0x{subject:x}{how}, which is {bogus.detail}; "
                f"the page tables map it to 0x{walk_pa:x}")
        if claimed_pa is not None and arith.pa is not None and claimed_pa == arith.pa:
            text += "; the claimed value equals __pa() of the pointer: virt_to_phys() used on a " \
                    "non-linear address"
        if pages and len({p for _, p in pages if p is not None}) > 1:
            text += f"; the range spans {len(pages)} pages"
        return Check(va, arith.pa, walk_pa, claimed_pa, MISMATCH, region, text, arith.branch,
                     arith.debug_virtual, pages, bogus.kind)

    # -- user address spaces ----------------------------------------------------
    def tasks(self, limit: int = 1 << 16) -> List[Tuple[int, int, int, str]]:
        """(pid, task_struct VA, mm_struct VA or 0, comm) of every task on the ``init_task`` list.

        Offsets come from BTF; raises KmemdbgError (one line) when types or
        the list cannot be read.  The walk is bounded by ``limit`` entries.
        """
        from .errors import KmemdbgError

        objs = self.objects()
        if objs is None:
            raise KmemdbgError(self._objects_error or "no type information for task_struct")
        btf = objs.btf
        init = objs.symbol("init_task")
        if init is None:
            raise KmemdbgError("no symbol init_task: cannot list tasks")
        try:
            o_tasks, o_pid = btf.offset("task_struct", "tasks"), btf.offset("task_struct", "pid")
            o_mm, o_comm = btf.offset("task_struct", "mm"), btf.offset("task_struct", "comm")
        except Exception as err:  # noqa: BLE001
            raise KmemdbgError(f"task_struct layout unknown: {err}") from None
        out = []
        node = self._read_int(init + o_tasks, 8)
        seen = set()
        while node is not None and node != init + o_tasks and len(out) < limit:
            if node in seen:
                raise KmemdbgError(f"task list loops at 0x{node:x}")
            seen.add(node)
            task = node - o_tasks
            pid = self._read_int(task + o_pid, 4)
            mm = self._read_int(task + o_mm, 8)
            try:
                comm = self.read(task + o_comm, 16).split(b"\0")[0].decode("ascii", "replace")
            except Exception:  # noqa: BLE001
                comm = "?"
            if pid is None:
                raise KmemdbgError(f"task at 0x{task:x} is not readable")
            out.append((pid, task, mm or 0, comm))
            node = self._read_int(node, 8)
        if node is None:
            raise KmemdbgError("the task list is not readable in this dump")
        return out

    def user_walker(self, pid: Optional[int] = None, mm: Optional[int] = None) -> Walker:
        """A walker over the user page tables of task ``pid`` or of ``struct mm_struct *mm``.

        The root is ``mm->pgd`` (a linear-map VA) translated through the
        kernel tables.  On x86-64 with PTI the kernel copy is used; it maps
        user pages at the same frames but forces NX at the top level.
        """
        from .errors import KmemdbgError

        if mm is None:
            if pid is None:
                raise KmemdbgError("give a pid or an mm_struct address")
            match = [t for t in self.tasks() if t[0] == pid]
            if not match:
                raise KmemdbgError(f"no task with pid {pid}")
            mm = match[0][2]
            if not mm:
                raise KmemdbgError(f"pid {pid} ({match[0][3]}) is a kernel thread: it has no mm")
        objs = self.objects()
        o_pgd = objs.btf.offset("mm_struct", "pgd")
        pgd_va = self._read_int(mm + o_pgd, 8)
        if pgd_va is None:
            raise KmemdbgError(f"mm_struct at 0x{mm:x} is not readable")
        root = self.walker.walk(pgd_va).pa
        if root is None:
            raise KmemdbgError(f"mm->pgd 0x{pgd_va:x} is not mapped")
        return Walker(self.tables.format, self.memory, root, self.walker.cache,
                      half="lower" if self.arch == "arm64" else "both")

    def translate_user(self, va: int, pid: Optional[int] = None, mm: Optional[int] = None) -> Walk:
        """Walk user virtual ``va`` in the address space of ``pid`` (or ``mm``)."""
        return self.user_walker(pid, mm).walk(va)

    # -- reverse map ----------------------------------------------------------
    def _reverse_map(self):
        if self._reverse is None:
            fmt = self.tables.format
            rows = []
            faults = []
            for item in sweep(fmt, self.walker.cache, self.tables.root_pa):
                if isinstance(item, TreeFault):
                    faults.append(item)
                elif item.kind == "leaf":
                    rows.append((leaf_pa(fmt, item), item.size, item.va, item.level))
            self.reverse_faults = faults
            rows.sort()
            self._reverse = ([r[0] for r in rows], rows)
        return self._reverse

    def phys_to_virts(self, pa: int) -> List[Mapping]:
        """Every kernel virtual address that maps physical ``pa`` (from an inverted sweep).

        The sweep's faults (tables it could not read, loops, shared tables it
        counted instead of repeating) are in :attr:`reverse_faults`
        afterwards: mappings under them are not listed.
        """
        starts, rows = self._reverse_map()
        fmt = self.tables.format
        biggest = max((r[1] for r in rows), default=0)
        out = []
        i = bisect.bisect_right(starts, pa) - 1
        while i >= 0 and rows[i][0] + biggest > pa:
            start, size, va, level = rows[i]
            if start <= pa < start + size:
                v = va + (pa - start)
                cls = self.classify(v)
                out.append(Mapping(v, pa, size, fmt.levels[level].name, cls.region, cls.allocation))
            i -= 1
        return sorted(out, key=lambda m: m.va)


__all__ = ["Kernel", "SymbolTable", "Allocation", "Classification", "Mapping"]
