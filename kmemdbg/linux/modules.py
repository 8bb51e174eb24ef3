"""Loaded modules (``struct module``) as values, and ``%pS`` of an address inside one.

The readers take a :class:`~kmemdbg.linux.reader.TypedReader` (usually
:class:`kmemdbg.kobjects.KernelObjects`): a ``struct module``, its
``mod_kallsyms`` symbol table, and the ``modules`` head found without a
symbol; the rest says how ``%pS`` names an address in a module.  Which layout a kernel has is
evidence, not version: ``struct module.mem[]`` exists after Linux kernel
commit ac3b43283923 ("module: replace module_layout with module_memory") (in
v6.4); before it ``core_layout``/``init_layout``.  Addresses are kernel
virtual; sizes in bytes.
"""
from __future__ import annotations

import bisect
import re
import struct
from dataclasses import dataclass
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

from ..btf import BtfError
from ..errors import KmemdbgError
from .errors import KobjectsError, MissingSymbolError
from .reader import ReadVirt, TypedReader
from .vmalloc import VmapArea

ELF64_SYM_SIZE = 24
_ELF64_SYM = struct.Struct("<IBBHQQ")      # Elf64_Sym, little-endian
SHN_UNDEF = 0


@dataclass(frozen=True)
class ModuleSection:
    """One memory range of a module (``text``, ``rodata``, ``init_data``...): [start, end)."""

    name: str
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class Module:
    """A loaded module: ``base`` and ``size`` as ``/proc/modules`` shows them (bytes).

    ``sections`` are its memory ranges (empty ranges left out); ``struct_va``
    is the address of its ``struct module``.
    """

    name: str
    state: str
    base: int
    size: int
    sections: Tuple[ModuleSection, ...]
    struct_va: int

    def section_of(self, va: int) -> Optional[str]:
        for s in self.sections:
            if s.start <= va < s.end:
                return s.name
        return None


@dataclass(frozen=True)
class ModuleSymbol:
    """One defined symbol of a module's own symbol table: virtual ``start``, ``size`` bytes, ``name``."""

    start: int
    size: int
    name: str


def is_mapping_symbol(name: str) -> bool:
    # kernel/module/kallsyms.c is_mapping_symbol(): local labels and arch mapping symbols
    return name.startswith((".L", "L0", "$")) or not name


def elf64_symbols(symtab: bytes, strtab: bytes, count: int) -> List[ModuleSymbol]:
    """The defined, non-mapping symbols of ``count`` ``Elf64_Sym`` entries in ``symtab`` (entry 0,
    the null symbol, skipped), named from ``strtab``."""
    out: List[ModuleSymbol] = []
    whole = symtab[ELF64_SYM_SIZE:max(1, count) * ELF64_SYM_SIZE]
    whole = whole[:len(whole) - len(whole) % ELF64_SYM_SIZE]         # whole entries only
    # st_name, st_info, st_other, st_shndx, st_value, st_size (one unpack per entry, in C)
    for st_name, _info, _other, shndx, value, size in _ELF64_SYM.iter_unpack(whole):
        if shndx == SHN_UNDEF:
            continue
        end = strtab.find(b"\0", st_name)
        name = strtab[st_name:end if end >= 0 else len(strtab)].decode("ascii", "replace")
        if is_mapping_symbol(name):
            continue
        out.append(ModuleSymbol(value, size, name))
    return out


def symtab_names_end(symtab: bytes, count: int) -> int:
    """Bytes of ``strtab`` to read so that every name of the ``count`` entries fits (+256 slack)."""
    whole = symtab[:count * ELF64_SYM_SIZE]
    whole = whole[:len(whole) - len(whole) % ELF64_SYM_SIZE]
    return max((e[0] for e in _ELF64_SYM.iter_unpack(whole)), default=0) + 256


def symbol_bounds(mod: Module, va: int, layout_era: bool) -> Tuple[Optional[int], Optional[int]]:
    """(lowest symbol start looked at, end a symbol's size runs to at most) for ``va`` in ``mod``:
    the start and end of ``va``'s memory range, both None when ``va`` is in none of them.
    ``layout_era`` as in :func:`describe_in_module`."""
    nextval = None
    sec = mod.section_of(va)
    for s in mod.sections:
        if s.name == sec:
            nextval = s.end
    if layout_era and sec is not None:
        text = [s for s in mod.sections if s.name == ("init_text" if sec.startswith("init_") else "text")]
        if text and va < text[0].end:
            # the kernel's rule before v6.4 bounds text symbols by text_size;
            # data addresses (audit owners) are bounded by their own range
            nextval = text[0].end
    lo = next((s.start for s in mod.sections if s.name == sec), None)
    return lo, nextval


class SymbolOrder(NamedTuple):
    """A module's symbols sorted by virtual ``starts`` (equal starts kept in table order), for
    :func:`describe_in_module` to bisect instead of scanning the table per address."""

    starts: List[int]
    syms: List[ModuleSymbol]

    @classmethod
    def of(cls, syms: Sequence[ModuleSymbol]) -> "SymbolOrder":
        ordered = sorted(syms, key=lambda s: s.start)      # stable: table order among equals
        return cls([s.start for s in ordered], ordered)


def describe_in_module(mod: Module, order: SymbolOrder, va: int, layout_era: bool) -> Optional[str]:
    """``va`` as ``%pS`` prints it in ``mod``: ``name+0xoff/0xsize [module]``, or None.

    As the kernel's ``find_kallsyms_symbol``: the best symbol at or below
    ``va`` in the same memory range (the first in table order among symbols
    at one address); its size runs to the next symbol above ``va`` or the
    end of the range.  Symbols below the range's start are not looked at.
    ``layout_era`` (``struct module`` has ``core_layout``, before v6.4)
    bounds text symbols by ``text_size`` as the kernel did.  ``order`` is
    the module's symbol table as :class:`SymbolOrder`.
    """
    lo, nextval = symbol_bounds(mod, va, layout_era)
    starts, syms = order
    best = None
    j = bisect.bisect_right(starts, va)             # starts[:j] are at or below va
    if j and (lo is None or starts[j - 1] >= lo):
        best = syms[bisect.bisect_left(starts, starts[j - 1])]
    k = bisect.bisect_left(starts, va + 1 if lo is None else max(va + 1, lo))    # the next one up
    if k < len(starts) and (nextval is None or starts[k] < nextval):
        nextval = starts[k]
    if best is None or nextval is None:
        return None
    return f"{best.name}+{va - best.start:#x}/{nextval - best.start:#x} [{mod.name}]"


def read_module(r: TypedReader, mod_va: int) -> Module:
    """The ``struct module`` at virtual ``mod_va``: name, state, and its memory ranges
    (``mem[]`` after v6.4, ``core_layout``/``init_layout``/``data_layout`` before).

    Raises CorruptStructureError, BtfError.
    """
    btf = r.btf
    m = r.struct("module", mod_va, "struct module")
    name_off, name_len = r.field("module", "name")
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


def read_module_symbols(r: TypedReader, mod: Module) -> List[ModuleSymbol]:
    """The defined symbols of ``mod``'s own symbol table (``mod->kallsyms``).

    Raises CorruptStructureError when the table cannot be read.
    """
    out: List[ModuleSymbol] = []
    ks_off, _ = r.field("module", "kallsyms")
    ks = r.u64(mod.struct_va + ks_off, f"module {mod.name}: kallsyms pointer")
    if ks:
        k = r.struct("mod_kallsyms", ks, f"module {mod.name}: mod_kallsyms")
        n, symtab, strtab = k.u("num_symtab"), k.u("symtab"), k.u("strtab")
        if 0 < n <= 1 << 20:
            tab = r.checked_read(symtab, n * ELF64_SYM_SIZE, f"module {mod.name}: symtab")
            names_end = symtab_names_end(tab, n)
            strs = r.checked_read(strtab, names_end, f"module {mod.name}: strtab") if names_end else b""
            out = elf64_symbols(tab, strs, n)
    return out


def find_modules_head(r: TypedReader, areas: Sequence[VmapArea], describe: Callable[[int], Optional[str]],
                      modules_range: Tuple[Optional[int], Optional[int]], page_size: int) -> int:
    """Find the ``modules`` list head when no symbol names it (kernels without KALLSYMS_ALL).

    ``areas`` are the busy vmap areas, ``describe(va)`` names a vmlinux text
    address (``load_module+0x..``), ``modules_range`` is VMCOREINFO's
    ``MODULES_VADDR``/``MODULES_END`` (either may be None).

    A ``struct module`` lies in its own module memory, and its first
    memory range's ``base`` is the start of that vmalloc area: search
    module areas for that value, check the candidate, then follow its
    ``list`` to the one node that is not inside a module.
    """
    btf = r.btf
    lo, hi = modules_range
    if btf.has_member("module", "mem"):
        base_field = "mem[0].base"
    else:
        base_field = "core_layout.base"
    base_off = btf.offset("module", base_field)
    list_off = btf.offset("module", "list")
    candidates = []
    for a in areas:
        in_range = lo is not None and hi is not None and lo <= a.start < hi
        name = (a.caller and describe(a.caller)) or ""
        if not (in_range or name.startswith(("load_module", "module_alloc", "execmem"))):
            continue
        data = read_present(r.read, a.start, a.size, page_size)
        needle = a.start.to_bytes(8, "little")
        pos = data.find(needle)
        while pos >= 0:
            mod_va = a.start + pos - base_off
            if pos >= base_off and (pos - base_off) % 8 == 0:
                candidates.append(mod_va)
            pos = data.find(needle, pos + 1)
    for mod_va in candidates:
        try:
            mod = read_module(r, mod_va)
        except (KobjectsError, BtfError):
            continue
        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,55}", mod.name):
            continue
        found = head_from(r, mod_va + list_off, candidates, list_off)
        if found is not None:
            return found
    raise MissingSymbolError("symbol modules is not in VMCOREINFO or kallsyms, and no struct module "
                             "was found in the module areas")


def read_present(read: ReadVirt, va: int, size: int, page_size: int) -> bytes:
    """``size`` bytes at virtual ``va`` with unreadable pages (guard pages) read as zeros."""
    out = bytearray()
    for cur in range(va, va + size, page_size):
        try:
            out += read(cur, min(page_size, va + size - cur))
        except KmemdbgError:
            out += bytes(min(page_size, va + size - cur))
    return bytes(out)


def head_from(r: TypedReader, node_va: int, candidates: Sequence[int], list_off: int) -> Optional[int]:
    """Follow the ``list`` at ``node_va`` of a candidate ``struct module`` round to the one node
    that is not a candidate's (the ``modules`` head); None when there is not exactly one."""
    known = {c + list_off for c in candidates}
    nxt_off, _ = r.field("list_head", "next")
    node = node_va
    heads = []
    for _ in range(4096):
        node = r.u64(node + nxt_off, "module list")
        if node == node_va:
            break
        if node not in known:
            heads.append(node)
    else:
        return None
    return heads[0] if len(heads) == 1 else None


__all__ = ["Module", "ModuleSection", "ModuleSymbol", "read_module", "read_module_symbols", "find_modules_head",
           "read_present", "head_from", "is_mapping_symbol", "elf64_symbols",
           "symtab_names_end", "describe_in_module", "symbol_bounds", "SymbolOrder", "ELF64_SYM_SIZE", "SHN_UNDEF"]
