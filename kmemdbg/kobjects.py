"""Kernel allocations read from a dump with no debug info: vmap areas and modules.

Types come from BTF (:mod:`kmemdbg.btf`): first the ``KMEMDBG_BTF`` note a
slice carries, else the kernel's own ``.BTF`` blob between ``__start_BTF``
and ``__stop_BTF`` (or, on kernels built without ``CONFIG_KALLSYMS_ALL``,
found by its header in the read-only data after ``_etext``).  Symbols come
from the ``KMEMDBG_SYMBOLS`` note of a slice, VMCOREINFO, then the dump's
kallsyms (through a callable, usually drgn's kallsyms finder).  Every object
is read through the session's own page-table walker.

Which kernel data structures exist is decided by evidence in the dump (a
symbol, a struct member), never by the version number:

- ``vmap_nodes``/``nr_vmap_nodes`` and ``struct vmap_node``: Linux kernel
  commit d093602919ad ("mm: vmalloc: remove global vmap_area_root rb-tree")
  (in v6.9) split the busy tree per node; each node has ``busy`` and
  ``lazy`` (``struct rb_list``: root, sorted list head, lock).
- ``vmap_area_list`` (sorted list) and ``vmap_area_root`` (rb-tree) before
  that; unpurged areas on ``purge_vmap_area_list``.
- ``struct module.mem[]``: Linux kernel commit ac3b43283923 ("module:
  replace module_layout with module_memory") (in v6.4); before it
  ``core_layout``/``init_layout``.

All addresses are kernel virtual addresses unless named ``pa``; sizes are in
bytes.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .btf import Btf, BtfError
from .errors import KmemdbgError
from .linux.errors import CorruptStructureError, KobjectsError, MissingSymbolError, NoTypeInfoError
from .linux.lists import MAX_LIST_ENTRIES, list_for_each, rbtree_inorder  # noqa: F401 - re-exported
from .linux.modules import ELF64_SYM_SIZE, Module, ModuleSection, ModuleSymbol, describe_in_module, \
    elf64_symbols, symtab_names_end
from .linux.vmalloc import VM_FLAG_WORDS, VMAP_RAM, VmapArea, area_purpose, busy_contains, find_area
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
    note = getattr(session.memory, "note", None)
    return note(name) if note is not None else None


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

    def _field(self, struct_name: str, path: str) -> Tuple[int, int]:
        key = (struct_name, path)
        got = self._layout.get(key)
        if got is None:
            m = self.btf.member_path(struct_name, path)
            got = self._layout[key] = (m.offset, self.btf.sizeof(m.type))
        return got

    def _read(self, va: int, size: int, what: str) -> bytes:
        try:
            return self.read(va, size)
        except KmemdbgError as err:
            raise CorruptStructureError(f"{what} at 0x{va:016x}: cannot read {size} bytes: {err}") from None

    def _obj(self, struct_name: str, va: int, what: str) -> "_View":
        return _View(self, struct_name, self._read(va, self.btf.sizeof(struct_name), what), va)

    def _u64(self, va: int, what: str) -> int:
        return int.from_bytes(self._read(va, 8, what), "little")

    # lists and trees
    def _list(self, head_va: int, what: str) -> Iterator[int]:
        """Each node of the list at ``head_va`` (:func:`kmemdbg.linux.lists.list_for_each`)."""
        nxt_off, _ = self._field("list_head", "next")
        prev_off, _ = self._field("list_head", "prev")
        return list_for_each(self.read, head_va, nxt_off, prev_off, what)

    def _rbtree(self, root_node_va: int, what: str) -> Iterator[int]:
        """Each ``struct rb_node`` of a tree in order (:func:`kmemdbg.linux.lists.rbtree_inorder`)."""
        left_off, _ = self._field("rb_node", "rb_left")
        right_off, _ = self._field("rb_node", "rb_right")
        return rbtree_inorder(self.read, root_node_va, left_off, right_off, self.btf.sizeof("rb_node"), what)

    # vmap areas
    def _area_lists(self) -> List[Tuple[str, str, int, str]]:
        """(state, "list"|"tree", head or root va, description) of every vmap area collection."""
        out = []
        btf = self.btf
        nodes_sym = self.symbol("vmap_nodes")
        if nodes_sym is not None and btf.has_struct("vmap_node"):
            base = self._u64(nodes_sym, "vmap_nodes pointer")
            nr_sym = self.need_symbol("nr_vmap_nodes", "number of vmap nodes")
            nr = int.from_bytes(self._read(nr_sym, 4, "nr_vmap_nodes"), "little")
            if not 0 < nr <= 4096:
                raise CorruptStructureError(f"nr_vmap_nodes is {nr}")
            node_size = btf.sizeof("vmap_node")
            for i in range(nr):
                node = base + i * node_size
                for state, member in (("busy", "busy"), ("lazy", "lazy")):
                    if btf.has_member("vmap_node", f"{member}.head"):
                        out.append((state, "list", node + btf.offset("vmap_node", f"{member}.head"),
                                    f"vmap_nodes[{i}].{member}.head"))
                    else:
                        out.append((state, "tree", node + btf.offset("vmap_node", f"{member}.root"),
                                    f"vmap_nodes[{i}].{member}.root"))
            return out
        for state, lst, root in (("busy", "vmap_area_list", "vmap_area_root"),
                                 ("lazy", "purge_vmap_area_list", "purge_vmap_area_root")):
            va = self.symbol(lst)
            if va is not None:
                out.append((state, "list", va, lst))
                continue
            va = self.symbol(root)
            if va is not None:
                out.append((state, "tree", va, root))
                continue
            if state == "busy":
                raise MissingSymbolError("no vmap area collection: none of vmap_nodes, vmap_area_list, "
                                         "vmap_area_root is in VMCOREINFO or kallsyms")
            self.unavailable.append(f"{state} vmap areas: neither {lst} nor {root} is in VMCOREINFO or kallsyms")
        return out

    def _raw_areas(self) -> List[VmapArea]:
        btf = self.btf
        list_off = btf.offset("vmap_area", "list")
        rb_off = btf.offset("vmap_area", "rb_node")
        has_flags = btf.has_member("vmap_area", "flags")
        out: List[VmapArea] = []
        for state, how, va, desc in self._area_lists():
            if how == "list":
                nodes = [n - list_off for n in self._list(va, desc)]
            else:
                root = self._u64(va, desc)
                nodes = [n - rb_off for n in self._rbtree(root, desc)]
            for area_va in nodes:
                out.append(self._area(area_va, state, has_flags, desc))
        return out

    def _area(self, area_va: int, state: str, has_flags: bool, desc: str) -> VmapArea:
        a = self._obj("vmap_area", area_va, f"{desc}: vmap_area")
        va_start, va_end = a.u("va_start"), a.u("va_end")
        if va_end <= va_start:
            raise CorruptStructureError(f"{desc}: vmap_area at 0x{area_va:016x} has start 0x{va_start:x} "
                                        f">= end 0x{va_end:x}")
        if state == "lazy":
            return VmapArea(va_start, va_end, va_end - va_start, ("unpurged", "vm_area"), None, None, 0,
                            None, None, va_start, va_end, area_va, None, state)
        vm_va = a.u("vm")
        if not vm_va:
            # /proc/vmallocinfo: an area with no vm_struct is vm_map_ram's when the kernel has no
            # vmap_area.flags, else only when VMAP_RAM is set (other such areas are not shown)
            ram = not has_flags or bool(a.u("flags") & VMAP_RAM)
            return VmapArea(va_start, va_end, va_end - va_start, ("vm_map_ram",) if ram else (), None,
                            None, 0, None, None, va_start, va_end, area_va, None, state,
                            "vm_map_ram" if ram else None)
        vm = self._obj("vm_struct", vm_va, f"{desc}: vm_struct of vmap_area 0x{area_va:016x}")
        start, size, flags = vm.u("addr"), vm.u("size"), vm.u("flags")
        words = tuple(w for bit, w in VM_FLAG_WORDS if flags & bit)
        return VmapArea(start, start + size, size, words, vm.u("caller") or None, None, vm.u("nr_pages"),
                        vm.u("phys_addr") or None, vm.u("pages") or None, va_start, va_end, area_va,
                        vm_va, state)

    def vmap_areas(self) -> List[VmapArea]:
        """Every vmap area (busy, then lazily freed where the kernel's lists can be found), sorted by start.

        ``self.unavailable`` names collections that could not be found.
        Raises MissingSymbolError, CorruptStructureError, NoTypeInfoError.
        """
        if self._areas is not None:
            return self._areas
        raw = sorted(self._raw_areas(), key=lambda a: (a.start, a.state != "busy"))
        self._areas = raw
        self._starts = [a.start for a in raw]
        busy = [a for a in raw if a.state == "busy"]
        out = []
        for a in raw:
            if a.vm_struct_va is not None:
                name = self.describe_address(a.caller) if a.caller else None
                if name is None and a.caller:
                    # %pS prints the bare address when no symbol covers it
                    # (for example a module's init text, freed after loading)
                    name = f"0x{a.caller:x}"
                flags = a.flags
                if a.pages_va is not None and busy_contains(busy, a.pages_va):
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
    def _module_struct(self, mod_va: int) -> Module:
        btf = self.btf
        m = self._obj("module", mod_va, "struct module")
        name_off, name_len = self._field("module", "name")
        name = m.data[name_off:name_off + name_len].split(b"\0", 1)[0].decode("ascii", "replace")
        state_val = m.u("state")
        state_t = btf.find("module_state", ("enum",))
        state = str(state_val)
        if state_t is not None:
            for k, v in state_t.enumerators.items():
                if v == state_val:
                    state = k.replace("MODULE_STATE_", "").lower()
        sections: List[ModuleSection] = []
        if btf.has_member("module", "mem"):
            mem = btf.struct("module").member("mem").type.resolved()
            enum = btf.find("mod_mem_type", ("enum",))
            names = {v: k for k, v in (enum.enumerators.items() if enum else ())}
            total = 0
            base = None
            for i in range(mem.count):
                b, s = m.u(f"mem[{i}].base"), m.u(f"mem[{i}].size")
                label = names.get(i, f"mem{i}").replace("MOD_", "").lower()
                total += s
                if i == 0:
                    base = b
                if s:
                    sections.append(ModuleSection(label, b, s))
            return Module(name, state, base or 0, total, tuple(sections), mod_va)
        total = 0
        base = 0
        for prefix, layout in (("", "core_layout"), ("init_", "init_layout"), ("data_", "data_layout")):
            if not btf.has_member("module", layout):
                continue
            b, size = m.u(f"{layout}.base"), m.u(f"{layout}.size")
            total += size
            if layout == "core_layout":
                base = b
            if not size:
                continue
            text, ro = m.u(f"{layout}.text_size"), m.u(f"{layout}.ro_size")
            ro_after = (m.u(f"{layout}.ro_after_init_size")
                        if btf.has_member("module_layout", "ro_after_init_size") else ro)
            for label, lo, hi in (("text", 0, text), ("rodata", text, ro), ("ro_after_init", ro, ro_after),
                                  ("data", ro_after, size)):
                if hi > lo:
                    sections.append(ModuleSection(prefix + label, b + lo, hi - lo))
        return Module(name, state, base, total, tuple(sections), mod_va)

    def _modules_head(self) -> int:
        va = self.symbol("modules")
        if va is not None:
            return va
        va = self._search_modules_head()
        self.discovered["modules"] = va
        return va

    def _search_modules_head(self) -> int:
        """Find the ``modules`` list head when no symbol names it (kernels without KALLSYMS_ALL).

        A ``struct module`` lies in its own module memory, and its first
        memory range's ``base`` is the start of that vmalloc area: search
        module areas for that value, check the candidate, then follow its
        ``list`` to the one node that is not inside a module.
        """
        btf = self.btf
        info = self.session.info
        lo, hi = info.number("MODULES_VADDR"), info.number("MODULES_END")
        if btf.has_member("module", "mem"):
            base_field = "mem[0].base"
        else:
            base_field = "core_layout.base"
        base_off = btf.offset("module", base_field)
        list_off = btf.offset("module", "list")
        candidates = []
        for a in self._areas_for_search():
            in_range = lo is not None and hi is not None and lo <= a.start < hi
            name = (a.caller and self._describe(a.caller)) or ""
            if not (in_range or name.startswith(("load_module", "module_alloc", "execmem"))):
                continue
            data = self._read_present(a.start, a.size)
            needle = a.start.to_bytes(8, "little")
            pos = data.find(needle)
            while pos >= 0:
                mod_va = a.start + pos - base_off
                if pos >= base_off and (pos - base_off) % 8 == 0:
                    candidates.append(mod_va)
                pos = data.find(needle, pos + 1)
        for mod_va in candidates:
            try:
                mod = self._module_struct(mod_va)
            except (KobjectsError, BtfError):
                continue
            if not re.fullmatch(r"[A-Za-z0-9_\-]{1,55}", mod.name):
                continue
            found = self._head_from(mod_va + list_off, candidates, list_off)
            if found is not None:
                return found
        raise MissingSymbolError("symbol modules is not in VMCOREINFO or kallsyms, and no struct module "
                                 "was found in the module areas")

    def _read_present(self, va: int, size: int) -> bytes:
        """``size`` bytes at ``va`` with unreadable pages (guard pages) read as zeros."""
        page = self.session.tables.format.page_size
        out = bytearray()
        for cur in range(va, va + size, page):
            try:
                out += self.read(cur, min(page, va + size - cur))
            except KmemdbgError:
                out += bytes(min(page, va + size - cur))
        return bytes(out)

    def _head_from(self, node_va: int, candidates: Sequence[int], list_off: int) -> Optional[int]:
        known = {c + list_off for c in candidates}
        nxt_off, _ = self._field("list_head", "next")
        node = node_va
        heads = []
        for _ in range(4096):
            node = self._u64(node + nxt_off, "module list")
            if node == node_va:
                break
            if node not in known:
                heads.append(node)
        else:
            return None
        return heads[0] if len(heads) == 1 else None

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
        for node in self._list(head, "modules list"):
            mod = self._module_struct(node - list_off)
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
        return describe_in_module(mod, self._module_symbols(mod), va,
                                  self.btf.has_member("module", "core_layout"))

    def _module_symbols(self, mod: Module) -> List[ModuleSymbol]:
        got = self._mod_syms.get(mod.struct_va)
        if got is not None:
            return got
        out: List[ModuleSymbol] = []
        ks_off, _ = self._field("module", "kallsyms")
        ks = self._u64(mod.struct_va + ks_off, f"module {mod.name}: kallsyms pointer")
        if ks:
            k = self._obj("mod_kallsyms", ks, f"module {mod.name}: mod_kallsyms")
            n, symtab, strtab = k.u("num_symtab"), k.u("symtab"), k.u("strtab")
            if 0 < n <= 1 << 20:
                tab = self._read(symtab, n * ELF64_SYM_SIZE, f"module {mod.name}: symtab")
                names_end = symtab_names_end(tab, n)
                strs = self._read(strtab, names_end, f"module {mod.name}: strtab") if names_end else b""
                out = elf64_symbols(tab, strs, n)
        self._mod_syms[mod.struct_va] = out
        return out


def _replace(area: VmapArea, **changes) -> VmapArea:
    return replace(area, **changes)


class _View:
    """The bytes of one struct read at virtual ``va``, with fields by BTF path."""

    __slots__ = ("k", "struct", "data", "va")

    def __init__(self, k: KernelObjects, struct: str, data: bytes, va: int) -> None:
        self.k, self.struct, self.data, self.va = k, struct, data, va

    def u(self, path: str) -> int:
        off, size = self.k._field(self.struct, path)
        return int.from_bytes(self.data[off:off + min(size, 8)], "little")


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
