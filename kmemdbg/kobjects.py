"""Kernel allocations read from a dump with no debug info: vmap areas and modules.

Types come from BTF (:mod:`kmemdbg.btf`): first the ``KMEMDBG_BTF`` note a
slice carries, else the kernel's own ``.BTF`` blob between ``__start_BTF``
and ``__stop_BTF`` (or, on kernels built without ``CONFIG_KALLSYMS_ALL``,
found by its header in the read-only data after ``_etext``).  Symbols come
from the ``KMEMDBG_SYMBOLS`` note of a slice, VMCOREINFO, then the dump's
kallsyms (through a callable, usually drgn's kallsyms finder).  Every object
is read through the session's own page-table walker.

Which kernel data structures exist is decided by evidence in the dump (a
symbol, a struct member), never by the version number; the readers of each
live in :mod:`kmemdbg.linux.vmalloc` and :mod:`kmemdbg.linux.modules`, and
this class is the :class:`~kmemdbg.linux.reader.TypedReader` they read
through (symbols, BTF offsets cached per member, reads that fail as
CorruptStructureError), with the caches of their results.

All addresses are kernel virtual addresses unless named ``pa``; sizes are in
bytes.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from .btf import Btf, BtfError
from .errors import KmemdbgError
from .linux.errors import CorruptStructureError, KobjectsError, MissingSymbolError, NoTypeInfoError
from .linux.lists import MAX_LIST_ENTRIES, list_for_each, rbtree_inorder  # noqa: F401 - re-exported
from .linux.modules import Module, ModuleSection, ModuleSymbol, SymbolOrder, describe_in_module, \
    find_modules_head, read_module, read_module_symbols
from .linux.reader import StructView
from .linux.vmalloc import VmapArea, area_purpose, find_area, read_raw_areas
from .vmcoreinfo import VmcoreInfo

BTF_NOTE = b"KMEMDBG_BTF"
SYMBOLS_NOTE = b"KMEMDBG_SYMBOLS"
BTF_SCAN_BYTES = 64 << 20    # how far past _etext to look for the BTF header

# The structs (and enums) kobjects reads; a slice's KMEMDBG_BTF note holds these.
SUBSET_TYPES = ("vmap_area", "vm_struct", "vmap_node", "rb_list", "rb_root", "rb_node",
                "list_head", "module", "module_memory", "module_layout", "mod_kallsyms",
                "mod_mem_type", "module_state", "mod_tree_node", "elf64_sym")

Symbol = Callable[[str], Optional[int]]
Describe = Callable[[int], Optional[str]]




# --- symbol and type sources ------------------------------------------------------
def drgn_kallsyms(path: str) -> Tuple[Symbol, Describe]:
    """(symbol, describe) callables over the vmlinux kallsyms of the core at ``path``.

    ``symbol(name)`` gives a virtual address or None; ``describe(va)`` gives
    ``"name+0xoff/0xsize"`` or None.  Needs drgn and kallsyms in VMCOREINFO
    (Linux >= 6.0); raises MissingSymbolError otherwise.
    """
    try:
        import drgn
        from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms
    except ImportError:
        raise MissingSymbolError("drgn is not installed, so kallsyms cannot be read") from None
    prog = drgn.Program()
    try:
        prog.set_core_dump(path)
        prog.register_symbol_finder("kallsyms", load_vmlinux_kallsyms(prog), enable_index=0)
    except Exception as err:  # noqa: BLE001 - any drgn failure means "no kallsyms"
        raise MissingSymbolError(f"{path}: cannot load kallsyms: {err}") from None

    def symbol(name: str) -> Optional[int]:
        try:
            return prog.symbol(name).address
        except LookupError:
            return None

    def describe(va: int) -> Optional[str]:
        try:
            s = prog.symbol(va)
        except LookupError:
            return None
        return f"{s.name}+0x{va - s.address:x}/0x{s.size:x}"

    return symbol, describe


def _note(session, name: bytes) -> Optional[bytes]:
    from .memory import declared

    return declared(session.memory).note(name)


def find_btf_blob(read: Callable[[int, int], bytes], lo_va: int, hi_va: int,
                  chunk: int = 1 << 20) -> Optional[Tuple[int, int]]:
    """(va, size) of the first valid BTF blob whose header lies in [lo_va, hi_va), or None.

    The header searched for is magic 0xeB9F, version 1, flags 0, hdr_len 24
    and type_off 0, as the kernel's ``.BTF`` section starts.  Chunks that
    cannot be read end the search.
    """
    magic = bytes.fromhex("9feb0100" "18000000" "00000000")
    va = lo_va
    tail = b""
    while va < hi_va:
        try:
            data = read(va, min(chunk, hi_va - va))
        except KmemdbgError:
            return None
        buf = tail + data
        base = va - len(tail)
        pos = buf.find(magic)
        while pos >= 0:
            hdr = buf[pos:pos + 24]
            if len(hdr) < 24:
                try:
                    hdr = read(base + pos, 24)
                except KmemdbgError:
                    return None
            type_len = int.from_bytes(hdr[16:20], "little")
            str_off = int.from_bytes(hdr[12:16], "little")
            str_len = int.from_bytes(hdr[20:24], "little")
            if str_off == type_len and 0 < type_len < 1 << 30 and 0 < str_len < 1 << 30:
                return base + pos, 24 + type_len + str_len
            pos = buf.find(magic, pos + 1)
        tail = buf[-11:]
        va += len(data)
    return None


def load_btf(session, symbol: Symbol) -> Tuple[Btf, str]:
    """(Btf, where it came from) for the kernel in ``session``.

    Raises NoTypeInfoError naming what is missing.
    """
    note = _note(session, BTF_NOTE)
    if note:
        return Btf.parse(note), "the core's KMEMDBG_BTF note"
    start, stop = symbol("__start_BTF"), symbol("__stop_BTF")
    if start is not None and stop is not None and stop > start:
        from .btf import MAX_BTF_BYTES

        if stop - start > MAX_BTF_BYTES:
            raise NoTypeInfoError(f"no type information: __start_BTF..__stop_BTF (0x{start:016x}, "
                                  f"{stop - start} bytes) is larger than the {MAX_BTF_BYTES} a kernel has")
        try:
            return Btf.parse(session.read(start, stop - start)), "the kernel's __start_BTF..__stop_BTF"
        except KmemdbgError as err:
            raise NoTypeInfoError(f"no type information: the kernel's BTF at 0x{start:016x} "
                                  f"({stop - start} bytes) cannot be read: {err}") from None
    etext = symbol("_etext")
    if etext is not None:
        hi = symbol("__init_begin") or etext + BTF_SCAN_BYTES
        found = find_btf_blob(session.read, etext, hi)
        if found is not None:
            va, size = found
            try:
                return Btf.parse(session.read(va, size)), f"the kernel's BTF found at 0x{va:016x}"
            except KmemdbgError:
                pass
    raise NoTypeInfoError("no type information: the core has no KMEMDBG_BTF note and the kernel's "
                          "BTF (__start_BTF..__stop_BTF) is not in its symbols or its memory")


# --- the reader -------------------------------------------------------------------
class KernelObjects:
    """Typed reads of kernel allocations from ``session`` with no debug info.

    ``symbol(name)`` returns a kernel virtual address or None (kallsyms);
    ``describe(va)`` formats a vmlinux text address as ``name+0xoff/0xsize``.
    ``read(va, size)`` defaults to ``session.read`` (a slice records through it).
    Methods raise KobjectsError subclasses (one line) and BtfError.
    """

    def __init__(self, session, symbol: Optional[Symbol] = None, describe: Optional[Describe] = None,
                 btf: Optional[Btf] = None, read: Optional[Callable[[int, int], bytes]] = None,
                 extra_symbols: Optional[Dict[str, int]] = None) -> None:
        self.session = session
        self._kallsyms = symbol or (lambda name: None)
        self._describe = describe or (lambda va: None)
        self.read = read or session.read
        notes = _note(session, SYMBOLS_NOTE)
        self._note_syms = VmcoreInfo.parse(notes) if notes else VmcoreInfo()
        self._extra = dict(extra_symbols or {})
        self._btf = btf
        self.btf_source = "given" if btf is not None else None
        self._areas: Optional[List[VmapArea]] = None
        self._starts: List[int] = []
        self._modules: Optional[List[Module]] = None
        self._modules_error: Optional[str] = None
        self._mod_syms: Dict[int, List[ModuleSymbol]] = {}
        self._mod_order: Dict[int, SymbolOrder] = {}       # struct module va -> its symbols by start
        self.unavailable: List[str] = []
        self.discovered: Dict[str, int] = {}
        self._layout: Dict[Tuple[str, str], Tuple[int, int]] = {}

    # symbols and types
    def symbol(self, name: str) -> Optional[int]:
        """A kernel symbol's virtual address from the slice note, VMCOREINFO or kallsyms."""
        for src in (self._extra.get, self._note_syms.symbol, self.session.info.symbol, self._kallsyms):
            va = src(name)
            if va is not None:
                return va
        return None

    def need_symbol(self, name: str, why: str) -> int:
        va = self.symbol(name)
        if va is None:
            raise MissingSymbolError(f"symbol {name} ({why}) is not in VMCOREINFO or kallsyms")
        return va

    @property
    def btf(self) -> Btf:
        if self._btf is None:
            self._btf, self.btf_source = load_btf(self.session, self.symbol)
        return self._btf

    def field(self, struct_name: str, path: str) -> Tuple[int, int]:
        key = (struct_name, path)
        got = self._layout.get(key)
        if got is None:
            m = self.btf.member_path(struct_name, path)
            got = self._layout[key] = (m.offset, self.btf.sizeof(m.type))
        return got

    def checked_read(self, va: int, size: int, what: str) -> bytes:
        try:
            return self.read(va, size)
        except KmemdbgError as err:
            raise CorruptStructureError(f"{what} at 0x{va:016x}: cannot read {size} bytes: {err}") from None

    def struct(self, struct_name: str, va: int, what: str) -> StructView:
        return StructView(self, struct_name, self.checked_read(va, self.btf.sizeof(struct_name), what), va)

    def u64(self, va: int, what: str) -> int:
        return int.from_bytes(self.checked_read(va, 8, what), "little")

    # lists and trees
    def list_nodes(self, head_va: int, what: str) -> Iterator[int]:
        """Each node of the list at ``head_va`` (:func:`kmemdbg.linux.lists.list_for_each`)."""
        nxt_off, _ = self.field("list_head", "next")
        prev_off, _ = self.field("list_head", "prev")
        return list_for_each(self.read, head_va, nxt_off, prev_off, what)

    def rbtree_nodes(self, root_node_va: int, what: str) -> Iterator[int]:
        """Each ``struct rb_node`` of a tree in order (:func:`kmemdbg.linux.lists.rbtree_inorder`)."""
        left_off, _ = self.field("rb_node", "rb_left")
        right_off, _ = self.field("rb_node", "rb_right")
        return rbtree_inorder(self.read, root_node_va, left_off, right_off, self.btf.sizeof("rb_node"), what)

    # vmap areas
    def vmap_areas(self) -> List[VmapArea]:
        """Every vmap area (busy, then lazily freed where the kernel's lists can be found), sorted by start.

        ``self.unavailable`` names collections that could not be found.
        Raises MissingSymbolError, CorruptStructureError, NoTypeInfoError.
        """
        if self._areas is not None:
            return self._areas
        raw = sorted(read_raw_areas(self, self.unavailable), key=lambda a: (a.start, a.state != "busy"))
        self._areas = raw
        self._starts = [a.start for a in raw]
        busy = [a for a in raw if a.state == "busy"]
        busy_starts = [a.start for a in busy]
        out = []
        for a in raw:
            if a.vm_struct_va is not None:
                name = self.describe_address(a.caller) if a.caller else None
                if name is None and a.caller:
                    # %pS prints the bare address when no symbol covers it
                    # (for example a module's init text, freed after loading)
                    name = f"0x{a.caller:x}"
                flags = a.flags
                # is_vmalloc_addr(pages): the page array itself lies in a busy area
                if a.pages_va is not None and find_area(busy, busy_starts, a.pages_va) is not None:
                    flags = flags + ("vpages",)
                a = _replace(a, caller_name=name, flags=flags, purpose=area_purpose(name, flags))
            out.append(a)
        self._areas = out
        return out

    def find_vmap_area(self, va: int) -> Optional[VmapArea]:
        """The area whose [start, end) holds virtual ``va`` (a busy one before a lazy one), or None."""
        areas = self.vmap_areas()
        return find_area(areas, self._starts, va)

    # modules
    def _modules_head(self) -> int:
        va = self.symbol("modules")
        if va is not None:
            return va
        info = self.session.info
        va = find_modules_head(self, self._areas_for_search(), self._describe,
                               (info.number("MODULES_VADDR"), info.number("MODULES_END")),
                               self.session.tables.format.page_size)
        self.discovered["modules"] = va
        return va

    def _areas_for_search(self) -> List[VmapArea]:
        if self._areas is None:
            self.vmap_areas()
        return [a for a in self._areas or [] if a.state == "busy" and a.size > 0]

    def modules(self) -> List[Module]:
        """Loaded modules in list order (newest first, as /proc/modules), unformed ones left out.

        Raises MissingSymbolError, CorruptStructureError, NoTypeInfoError.
        """
        if self._modules is not None:
            return self._modules
        head = self._modules_head()
        list_off = self.btf.offset("module", "list")
        out = []
        for node in self.list_nodes(head, "modules list"):
            mod = read_module(self, node - list_off)
            if mod.state != "unformed":
                out.append(mod)
        self._modules = out
        return out

    def find_module(self, va: int) -> Optional[Tuple[Module, str]]:
        """(module, section name) holding virtual ``va``, or None."""
        for mod in self.modules():
            sec = mod.section_of(va)
            if sec is not None:
                return mod, sec
        return None

    # %pS
    def describe_address(self, va: int) -> Optional[str]:
        """``va`` as ``%pS`` prints it: ``name+0xoff/0xsize``, with `` [module]`` in a module."""
        hit = None
        try:
            hit = self.find_module(va) if self._modules is not None or self._can_list_modules() else None
        except KmemdbgError:
            hit = None
        if hit is not None:
            return self._describe_in_module(hit[0], va)
        return self._describe(va)

    def _can_list_modules(self) -> bool:
        if self._modules_error is None:
            try:
                self.modules()
                self._modules_error = ""
            except KmemdbgError as err:  # BtfError too: a kernel whose struct module we cannot read
                self._modules_error = str(err)
        return not self._modules_error

    def _describe_in_module(self, mod: Module, va: int) -> Optional[str]:
        """The module's own kallsyms (``mod->kallsyms``): best symbol at or below ``va``.

        As the kernel's ``find_kallsyms_symbol``: undefined and mapping
        symbols are skipped and the size runs to the next symbol or the end
        of the range (``text_size`` of the layout before v6.4, the memory
        range after).
        """
        order = self._mod_order.get(mod.struct_va)
        if order is None:
            order = self._mod_order[mod.struct_va] = SymbolOrder.of(self._module_symbols(mod))
        return describe_in_module(mod, order, va, self.btf.has_member("module", "core_layout"))

    def _module_symbols(self, mod: Module) -> List[ModuleSymbol]:
        got = self._mod_syms.get(mod.struct_va)
        if got is not None:
            return got
        out = read_module_symbols(self, mod)
        self._mod_syms[mod.struct_va] = out
        return out

    def module_symbol(self, name: str) -> Optional[Tuple[Module, ModuleSymbol]]:
        """The loaded module whose own symbol table (``mod->kallsyms``) defines ``name``, and
        that symbol (its ``start`` is a kernel virtual address), or None, also when the modules
        cannot be listed.  A module whose table cannot be read is passed over."""
        if not (self._modules is not None or self._can_list_modules()):
            return None
        for mod in self._modules or ():
            try:
                syms = self._module_symbols(mod)
            except KmemdbgError:
                continue
            for sym in syms:
                if sym.name == name:
                    return mod, sym
        return None


def _replace(area: VmapArea, **changes) -> VmapArea:
    return replace(area, **changes)


def open_kernel_objects(path: str) -> KernelObjects:
    """KernelObjects over the ELF core at ``path``, with symbols from its kallsyms (through drgn)."""
    from .session import open_core

    session = open_core(path)
    try:
        symbol, describe = drgn_kallsyms(path)
    except MissingSymbolError:
        symbol, describe = None, None
    return KernelObjects(session, symbol, describe)


__all__ = ["KernelObjects", "VmapArea", "Module", "ModuleSection", "KobjectsError", "NoTypeInfoError",
           "MissingSymbolError", "CorruptStructureError", "load_btf", "drgn_kallsyms",
           "open_kernel_objects", "find_btf_blob", "SUBSET_TYPES", "BTF_NOTE", "SYMBOLS_NOTE"]
