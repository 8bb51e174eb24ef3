"""Loaded modules (``struct module``) as values, and ``%pS`` of an address inside one.

:class:`kmemdbg.kobjects.KernelObjects` reads the ``modules`` list; this
module holds what a module is, how its ``mod_kallsyms`` symbol table is
decoded and how ``%pS`` names an address in it.  Which layout a kernel has is
evidence, not version: ``struct module.mem[]`` exists after Linux kernel
commit ac3b43283923 ("module: replace module_layout with module_memory") (in
v6.4); before it ``core_layout``/``init_layout``.  Addresses are kernel
virtual; sizes in bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

ELF64_SYM_SIZE = 24
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
    for i in range(1, count):
        e = symtab[i * ELF64_SYM_SIZE:(i + 1) * ELF64_SYM_SIZE]
        st_name = int.from_bytes(e[0:4], "little")
        shndx = int.from_bytes(e[6:8], "little")
        value = int.from_bytes(e[8:16], "little")
        if shndx == SHN_UNDEF:
            continue
        end = strtab.find(b"\0", st_name)
        name = strtab[st_name:end if end >= 0 else len(strtab)].decode("ascii", "replace")
        if is_mapping_symbol(name):
            continue
        out.append(ModuleSymbol(value, int.from_bytes(e[16:24], "little"), name))
    return out


def symtab_names_end(symtab: bytes, count: int) -> int:
    """Bytes of ``strtab`` to read so that every name of the ``count`` entries fits (+256 slack)."""
    return max(int.from_bytes(symtab[i * ELF64_SYM_SIZE:i * ELF64_SYM_SIZE + 4], "little")
               for i in range(count)) + 256


def describe_in_module(mod: Module, syms: Sequence[ModuleSymbol], va: int, layout_era: bool) -> Optional[str]:
    """``va`` as ``%pS`` prints it in ``mod``: ``name+0xoff/0xsize [module]``, or None.

    As the kernel's ``find_kallsyms_symbol``: the best symbol at or below
    ``va`` in the same memory range; its size runs to the next symbol or the
    end of the range.  ``layout_era`` (``struct module`` has ``core_layout``,
    before v6.4) bounds text symbols by ``text_size`` as the kernel did.
    """
    best, nextval = None, None
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
    if lo is not None:
        syms = [s for s in syms if lo <= s.start]
    for s in syms:
        if s.start <= va and (best is None or s.start > best.start):
            best = s
        if va < s.start and (nextval is None or s.start < nextval):
            nextval = s.start
    if best is None or nextval is None:
        return None
    return f"{best.name}+0x{va - best.start:x}/0x{nextval - best.start:x} [{mod.name}]"


__all__ = ["Module", "ModuleSection", "ModuleSymbol", "is_mapping_symbol", "elf64_symbols",
           "symtab_names_end", "describe_in_module", "ELF64_SYM_SIZE", "SHN_UNDEF"]
