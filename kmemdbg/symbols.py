"""Kernel symbol tables: one protocol, several implementations.

A symbol table answers two questions about kernel *virtual* addresses: where a
symbol is (``address(name) -> va``) and which symbol holds an address
(``name_of(va) -> "name+0xoff/0xsize"``).  ``source`` says where the symbols came
from, in the words printed by the commands ("DWARF from vmlinux", "kallsyms tables
in the dump", "none").

Implementations: :class:`SymbolTable` (drgn-backed: DWARF or the dump's kallsyms),
:class:`kmemdbg.kallsyms.KallsymsSymbols` (the kallsyms tables in memory, decoded
by kmemdbg itself: the gdb front end uses it) and
:class:`kmemdbg.crash.target.CrashSymbols` (crash's).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Protocol, runtime_checkable


@runtime_checkable
class Symbols(Protocol):
    """What every symbol table offers."""

    source: str  # where the symbols came from, as printed ("none" when there are none)

    def address(self, name: str) -> Optional[int]:
        """Virtual address of symbol ``name``, or None when unknown."""
        ...

    def name_of(self, va: int) -> Optional[str]:
        """``name+0xoff/0xsize`` for the symbol holding virtual ``va``, or None."""
        ...


class SymbolTable:
    """Kernel symbols from DWARF (a vmlinux) or the dump's kallsyms tables, through drgn."""

    def __init__(self, prog=None, source: str = "none") -> None:
        self.prog = prog
        self.source = source
        self._cache: Dict[str, Optional[int]] = {}

    @classmethod
    def empty(cls) -> "SymbolTable":
        return cls(None, "none")

    @classmethod
    def from_prog(cls, prog, vmlinux: Optional[str], notes: List[str],
                  kallsyms: bool = True) -> "SymbolTable":
        """DWARF from ``vmlinux`` when given and loadable, else the dump's kallsyms
        (unless ``kallsyms`` is False); failures are appended to ``notes``."""
        if vmlinux:
            import logging

            log = logging.getLogger("drgn")
            level = log.level
            log.setLevel(logging.ERROR)   # a mismatch is reported below as one line, not drgn's warning
            try:
                prog.load_debug_info([vmlinux])
                main = getattr(prog, "main_module", None)
                if main is not None and main().debug_file_path is None:
                    # drgn ignores a file that matches no loaded module, with only a warning
                    raise ValueError("it does not match the dump's kernel")
                return cls(prog, f"DWARF from {vmlinux}")
            except Exception as err:  # noqa: BLE001 - drgn raises MissingDebugInfoError and others
                notes.append(f"debug info from {vmlinux} not loaded: {str(err).splitlines()[0]}")
            finally:
                log.setLevel(level)
        if not kallsyms:
            return cls(None, "none")
        try:
            from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

            finder = load_vmlinux_kallsyms(prog)
            if "kallsyms" not in prog.registered_symbol_finders():
                prog.register_symbol_finder("kallsyms", finder, enable_index=0)
            return cls(prog, "kallsyms tables in the dump")
        except Exception as err:  # noqa: BLE001
            notes.append(f"no symbols: kallsyms not loadable ({str(err).splitlines()[0] if str(err) else err})")
            return cls(None, "none")

    def address(self, name: str) -> Optional[int]:
        """Virtual address of symbol ``name``, or None."""
        if self.prog is None:
            return None
        if name not in self._cache:
            try:
                self._cache[name] = self.prog.symbol(name).address
            except (LookupError, ValueError):
                self._cache[name] = None
        return self._cache[name]

    def name_of(self, va: int) -> Optional[str]:
        """``name+0xoff/0xsize`` for the symbol holding virtual ``va``, or None."""
        if self.prog is None:
            return None
        try:
            sym = self.prog.symbol(va)
        except (LookupError, ValueError, OverflowError):
            return None
        return f"{sym.name}+0x{va - sym.address:x}/0x{sym.size:x}"
