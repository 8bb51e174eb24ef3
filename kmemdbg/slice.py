"""``kmemdbg slice``: a small shareable vmcore holding page tables but no user data.

A slice keeps, from a full ELF core:

- every page-table page reachable from the kernel root;
- the VMCOREINFO note;
- the kallsyms tables named in VMCOREINFO (Linux >= 6.0), so tools can
  resolve symbols with no debug info;
- the pages backing any extra virtual ranges and physical pages asked for
  (the pages a test's ground truth names, the words of a few symbols);
- a ``KMEMDBG_BTF`` note with the structures kmemdbg reads (a subset of the
  kernel's ~6 MiB BTF, which is not kept), and the pages those reads touch:
  vmap areas, modules, the task list, each mm's VMAs and user page tables
  (so ``tasks``, ``vm`` and ``vtop --pid`` work on a slice; user memory
  itself is not kept).

Everything else, user memory included, is left out.  The source is only
read, never written.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Sequence, Set, Tuple

from .elfwrite import note_bytes, runs, write_core
from .errors import KmemdbgError, PhysicalReadError, SourceError
from .kallsyms import MAX_SYMBOLS, kallsyms_problem
from .outfile import check_output
from .session import Session, check_root, open_core
from .sources.elfcore import ElfCoreMemory
from .tables import table_pages


@dataclass(frozen=True)
class SliceReport:
    """What a slice kept: counts of pages per reason, and the output size in bytes."""

    path: str
    table_pages: int
    kallsyms_pages: int
    extra_pages: int
    unreadable: Tuple[str, ...]
    size_bytes: int


def _read_u32(session: Session, va: int) -> int:
    return int.from_bytes(session.read(va, 4), "little")


def kallsyms_ranges(session: Session) -> List[Tuple[int, int]]:
    """Virtual (start, size) of each kallsyms table exported in VMCOREINFO.

    Sizes are computed from the tables themselves: ``kallsyms_num_syms``
    entries in ``kallsyms_names`` (a length byte, two when the high bit is
    set, then that many token bytes), 256 NUL-terminated tokens, 256 u16
    token indices, one u32 offset (or u64 address) per symbol and one u32
    marker per 256 symbols.
    """
    info = session.info
    sym = info.symbol
    out: List[Tuple[int, int]] = []
    num_va = sym("kallsyms_num_syms")
    if num_va is None:
        return out
    n = _read_u32(session, num_va)
    if not 0 < n <= MAX_SYMBOLS:
        raise KmemdbgError(f"kallsyms_num_syms reads {n}: not a symbol count (1..{MAX_SYMBOLS})")
    out.append((num_va, 4))
    names = sym("kallsyms_names")
    if names is not None:
        pos = names
        data = b""
        base = names
        for _ in range(n):
            if pos + 2 > base + len(data):
                data = session.read(pos, 1 << 16)
                base = pos
            length = data[pos - base]
            if length & 0x80:
                if pos + 2 > base + len(data):
                    data = session.read(pos, 1 << 16)
                    base = pos
                length = (length & 0x7F) | (data[pos - base + 1] << 7)
                pos += 2 + length
            else:
                pos += 1 + length
        out.append((names, pos - names))
    tokens = sym("kallsyms_token_table")
    if tokens is not None:
        blob = session.read(tokens, 1 << 14)
        end = 0
        for _ in range(256):
            end = blob.index(b"\0", end) + 1
        out.append((tokens, end))
    for name, size in (("kallsyms_token_index", 512), ("kallsyms_offsets", 4 * n),
                       ("kallsyms_addresses", 8 * n), ("kallsyms_relative_base", 8),
                       ("kallsyms_markers", 4 * ((n + 255) // 256))):
        va = sym(name)
        if va is not None:
            out.append((va, size))
    return out


def pages_of_va_range(session: Session, va: int, size: int) -> Set[int]:
    """Physical page addresses backing ``[va, va + size)``; unmapped pages are skipped."""
    page = session.tables.format.page_size
    out: Set[int] = set()
    cur = va - va % page
    while cur < va + size:
        walk = session.translate(cur)
        if walk.fault is None:
            out.add(walk.pa - walk.pa % page)
        cur += page
    return out


# Words that layout discovery reads; kept by default when kallsyms can name them.
LAYOUT_SYMBOLS = ("page_offset_base", "vmalloc_base", "vmemmap_base", "phys_base",
                  "memstart_addr", "kimage_voffset", "vabits_actual", "physvirt_offset",
                  "_text", "_stext", "_etext", "__start_rodata", "__end_rodata", "_sdata",
                  "_edata", "__bss_start", "__bss_stop", "_end", "saved_command_line",
                  "init_mm", "swapper_pg_dir", "init_top_pgt", "__per_cpu_offset",
                  "nr_cpu_ids", "__per_cpu_start", "__per_cpu_end", "max_pfn", "__init_begin",
                  "__init_end")


def symbol_ranges(path: str, names: Iterable[str]) -> List[Tuple[int, int]]:
    """Virtual (address, size) of the named symbols, found through drgn's kallsyms reader.

    Returns an empty list when drgn or the kallsyms tables are not available.
    """
    try:
        import drgn
        from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms
    except ImportError:
        return []
    try:
        prog = drgn.Program()
        prog.set_core_dump(path)
        prog.register_symbol_finder("kallsyms", load_vmlinux_kallsyms(prog), enable_index=0)
    except Exception:  # noqa: BLE001 - any drgn failure only means "no symbols"
        return []
    out = []
    for name in names:
        try:
            sym = prog.symbol(name)
        except LookupError:
            continue
        out.append((sym.address, max(sym.size, 8)))
    return out


#: Structures the task, VMA and file-name readers use (:mod:`kmemdbg.linux.tasks`,
#: :mod:`kmemdbg.linux.mm`), kept in a slice's BTF note beside kobjects' own.
TASK_TYPES = ("task_struct", "signal_struct", "mm_struct", "vm_area_struct", "maple_tree", "maple_node",
              "maple_range_64", "maple_arange_64", "maple_metadata", "file", "path", "dentry", "qstr",
              "vfsmount", "mount")


def task_keep(objs, session: Session) -> Set[int]:
    """Physical pages of every task's user page tables (each ``mm->pgd`` tree), after reading
    the task list and every mm's VMAs through ``objs`` (whose reader may record the pages).
    Empty when the tasks cannot be read (no BTF for them, no ``init_task``)."""
    from .linux.mm import read_vmas
    from .linux.tasks import read_tasks

    try:
        tasks, _ = read_tasks(objs)
        pgd_off = objs.btf.offset("mm_struct", "pgd")
    except KmemdbgError:
        return set()
    fmt = session.tables.format
    pages: Set[int] = set()
    for mm in sorted({t.mm_va for t in tasks if t.mm_va}):
        try:
            read_vmas(objs, mm)
        except KmemdbgError:
            pass  # keep what was read; the tables are still worth keeping
        try:
            pgd = objs.u64(mm + pgd_off, "mm_struct.pgd")
        except KmemdbgError:
            continue
        root = session.translate(pgd).pa
        if root is None:
            continue
        pages.add(root - root % fmt.page_size)
        pages |= set(table_pages(fmt, session.walker.cache, root, high=False))
    return pages


def kobject_keep(src: str, session: Session, kallsyms: bool = True) -> Tuple[bytes, Set[int]]:
    """What a slice needs so that :mod:`kmemdbg.kobjects` works on it: (notes, physical pages).

    The notes are ``KMEMDBG_BTF`` (the BTF subset of the structs kobjects
    and the task and VMA readers read: SUBSET_TYPES and TASK_TYPES) and, when a symbol had to be found by search, ``KMEMDBG_SYMBOLS``
    (``SYMBOL(name)=hex`` lines).  The pages are those of every object
    kobjects reads (vmap areas, vm_structs, vmap nodes, modules, module
    symbol tables, the task list, VMAs), recorded by running it on the source,
    and every task's user page-table pages (:func:`task_keep`).  Returns
    ``(b"", set())`` when the dump has no BTF or the objects cannot be read.
    ``kallsyms=False`` does without the dump's kallsyms (they do not load).
    """
    from .kobjects import (BTF_NOTE, SUBSET_TYPES, SYMBOLS_NOTE, KernelObjects, MissingSymbolError,
                           drgn_kallsyms)

    try:
        if not kallsyms:
            raise MissingSymbolError("kallsyms not loadable")
        symbol, describe = drgn_kallsyms(src)
    except MissingSymbolError:
        symbol, describe = None, None
    try:
        first = KernelObjects(session, symbol, describe)
        btf = first.btf
        first.vmap_areas()
        first.modules()
    except KmemdbgError:
        return b"", set()
    reads: List[Tuple[int, int]] = []

    def recording(va: int, size: int) -> bytes:
        reads.append((va, size))
        return session.read(va, size)

    again = KernelObjects(session, symbol, describe, btf=btf, read=recording,
                          extra_symbols=first.discovered)
    again.vmap_areas()
    again.modules()
    pages: Set[int] = task_keep(again, session)
    for va, size in reads:
        pages |= pages_of_va_range(session, va, size)
    notes = note_bytes(BTF_NOTE, 0, btf.encode_subset(SUBSET_TYPES + TASK_TYPES))
    if first.discovered:
        text = "".join(f"SYMBOL({k})={v:x}\n" for k, v in sorted(first.discovered.items()))
        notes += note_bytes(SYMBOLS_NOTE, 0, text.encode())
    return notes, pages


def slice_core(src: str, dst: str, keep_va: Sequence[Tuple[int, int]] = (),
               keep_pa: Iterable[int] = (), kallsyms: bool = True,
               symbols: Iterable[str] = LAYOUT_SYMBOLS, kobjects: bool = True,
               allow_truncated: bool = False) -> SliceReport:
    """Write to ``dst`` a slice of the ELF core ``src`` (see module doc).

    ``keep_va`` lists extra virtual (start, size) ranges; ``keep_pa`` extra
    physical addresses whose pages are kept; ``symbols`` names kernel
    symbols whose words are kept (resolved through the dump's kallsyms);
    ``kobjects`` adds what :func:`kobject_keep` says vmap areas and modules
    need.  ``dst`` is never ``src`` (see :mod:`kmemdbg.outfile`); a
    truncated source is refused unless ``allow_truncated``, and a source whose
    page tables cannot be read at all gives no slice.  Raises KmemdbgError
    subclasses with a one-line cause.
    """
    check_output(dst, [src])
    session = open_core(src)
    mem = session.memory
    if not isinstance(mem, ElfCoreMemory):  # pragma: no cover - open_core always gives one
        raise KmemdbgError("slice needs an ELF core source")
    if mem.missing_bytes and not allow_truncated:
        raise SourceError(f"{src}: the dump is truncated: {mem.missing_bytes} bytes of memory described by "
                          "its program headers are missing (use --allow-truncated to slice what is there)")
    check_root(session, allow_truncated)
    fmt = session.tables.format
    page = fmt.page_size
    tables = table_pages(fmt, session.walker.cache, session.tables.root_pa, high=True)
    if not tables:
        raise SourceError(f"{src}: the kernel root table (pa 0x{session.tables.root_pa:x}) cannot be read: "
                          "a slice would hold no page tables")
    pages: Set[int] = set(tables)
    ksyms: Set[int] = set()
    problem = kallsyms_problem(session)
    kallsyms = kallsyms and problem is None
    if kallsyms:
        try:
            for va, size in kallsyms_ranges(session):
                ksyms |= pages_of_va_range(session, va, size)
        except (KmemdbgError, ValueError):
            ksyms = set()
    extra: Set[int] = set()
    for va, size in list(keep_va) + (symbol_ranges(src, symbols) if kallsyms else []):
        extra |= pages_of_va_range(session, va, max(size, 1))
    for pa in keep_pa:
        extra.add(pa - pa % page)
    extra_notes = b""
    if kobjects:
        extra_notes, kobject_pages = kobject_keep(src, session, kallsyms=kallsyms)
        extra |= kobject_pages
    keep = pages | ksyms | extra
    segments: List[Tuple[int, int, bytes]] = []
    unreadable: List[str] = []
    for start, length in runs(keep, page):
        try:
            data = mem.read(start, length)
        except PhysicalReadError:
            # keep what can be read page by page
            for pa in range(start, start + length, page):
                try:
                    segments.append((pa, mem.vaddr_of(pa) or pa, mem.read(pa, page)))
                except PhysicalReadError as err:
                    unreadable.append(f"0x{pa:x}: {err.reason}")
            continue
        segments.append((start, mem.vaddr_of(start) or start, data))
    note = mem.note(b"VMCOREINFO") or b""
    size = write_core(dst, mem.machine, note_bytes(b"VMCOREINFO", 0, note) + extra_notes, segments,
                      inputs=[src])
    return SliceReport(dst, len(pages), len(ksyms - pages), len(extra - pages - ksyms),
                       tuple(unreadable), size)


__all__ = ["SliceReport", "slice_core", "kallsyms_ranges", "pages_of_va_range", "kobject_keep", "task_keep",
           "TASK_TYPES"]
