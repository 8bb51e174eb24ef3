"""gdb's side of the gdbstub source: :class:`GdbLink`, the stub link through gdb's Python API.

The memory source itself (physical-memory mode, the per-stop page cache, the
CPU's paging registers, the VMCOREINFO scan) is
:mod:`kmemdbg.sources.gdbstub`; its names are re-exported here for the gdb
command (:mod:`kmemdbg.commands.gdb`).
"""
from __future__ import annotations

import re
from typing import Optional

from ..errors import PhysicalReadError, SourceError
from ..sources.gdbstub import (SCAN_LIMIT_BYTES, CpuPaging, FoundVmcoreinfo, GdbPhysicalMemory,  # noqa: F401
                               NoPhysicalModeError, NotAKernelError, NotConnectedError, PagingOffError,
                               StubLink, cpu_paging, find_vmcoreinfo, read_vmcoreinfo_at)

MASK64 = (1 << 64) - 1


class GdbLink:
    """The :class:`~kmemdbg.sources.gdbstub.StubLink` of gdb's own session.

    The few gdb operations kmemdbg uses.  Every gdb failure becomes a SourceError.
    """

    def __init__(self) -> None:
        import gdb  # only inside gdb's embedded Python

        self.gdb = gdb

    def connected(self) -> bool:
        inf = self.gdb.selected_inferior()
        conn = getattr(inf, "connection", None)
        if conn is not None and getattr(conn, "type", None) not in (None, "remote", "extended-remote"):
            return False
        return inf.pid != 0 and inf.is_valid()

    def core_file(self) -> Optional[str]:
        """The core file gdb has open instead of a live target (``gdb -c FILE``), or None."""
        conn = getattr(self.gdb.selected_inferior(), "connection", None)
        if conn is None or getattr(conn, "type", None) != "core":
            return None
        try:
            text = self.gdb.execute("info target", to_string=True)
        except self.gdb.error:
            return ""
        m = re.search(r"core dump file:\s*`(.*)'", text)
        return m.group(1) if m else ""

    def packet(self, text: str) -> str:
        """Send one remote-protocol packet and return the reply payload ("" if unsupported)."""
        try:
            out = self.gdb.execute(f"maint packet {text}", to_string=True)
        except self.gdb.error as err:
            raise SourceError(f"gdb cannot send {text.split(':')[0]}: {err}") from None
        m = re.search(r'received: "(.*)"', out)
        return m.group(1) if m else ""

    def read(self, addr: int, size: int) -> bytes:
        try:
            return self.gdb.selected_inferior().read_memory(addr, size).tobytes()
        except (self.gdb.MemoryError, self.gdb.error) as err:
            raise PhysicalReadError(addr, size, f"gdb: {err}") from None

    def register(self, name: str) -> Optional[int]:
        """Value of register ``name`` in the innermost frame, or None when the target lacks it."""
        try:
            return int(self.gdb.newest_frame().read_register(name)) & MASK64
        except (ValueError, self.gdb.error):
            return None

    def arch_name(self) -> str:
        try:
            return self.gdb.newest_frame().architecture().name()
        except self.gdb.error as err:
            raise NotConnectedError(f"no registers to read ({err})") from None

    def selected_frame(self):
        try:
            return self.gdb.selected_frame()
        except self.gdb.error:
            return None

    def restore_frame(self, frame) -> None:
        if frame is None or not frame.is_valid():
            return
        try:
            if self.gdb.selected_frame() != frame:
                frame.select()
        except self.gdb.error:
            pass

    def flush_cache(self) -> None:
        # gdb may hold bytes read in physical mode in its data cache; they
        # would be served later for virtual addresses that happen to match.
        try:
            self.gdb.execute("maint flush dcache", to_string=True)
        except self.gdb.error:
            pass

    def symbol_address(self, name: str) -> Optional[int]:
        """Address gdb's loaded symbol file gives ``name`` (may be unrelocated), or None."""
        try:
            sym = self.gdb.lookup_global_symbol(name) or self.gdb.lookup_static_symbol(name)
            if sym is not None:
                return int(sym.value().address) & MASK64
            return int(self.gdb.parse_and_eval(f"(unsigned long)&{name}")) & MASK64
        except (self.gdb.error, AttributeError, ValueError, RuntimeError):
            return None


__all__ = ["GdbLink", "GdbPhysicalMemory", "CpuPaging", "cpu_paging", "find_vmcoreinfo",
           "FoundVmcoreinfo", "NotConnectedError", "NoPhysicalModeError", "PagingOffError",
           "NotAKernelError", "read_vmcoreinfo_at", "SCAN_LIMIT_BYTES", "StubLink"]
