"""The ``kmemdbg`` gdb command: the command-line contract, run on the attached guest.

    (gdb) kmemdbg [--json] COMMAND ARGS       (help kmemdbg lists the commands)

The commands are those of the table (:mod:`kmemdbg.commands.table`) offered
in gdb; the output is what ``kmemdbg --core DUMP ...`` prints for a dump of
the same guest (the same calls and renderers run here).  A :class:`LiveTarget` holds
what survives while the guest runs (VMCOREINFO text, kallsyms, BTF) and
rebuilds the :class:`~kmemdbg.kernel.Kernel` (tables, layout, caches) at the
first command after each stop.

Every failure is one line.  gdb's state is left as found: the stub's
physical-memory mode restored and the selected frame unchanged, also when a
command fails halfway.
"""
from __future__ import annotations

import sys
from typing import List, Optional, Tuple

from ..api import kernel_from
from ..errors import KmemdbgError
from ..gdb.source import (FoundVmcoreinfo, GdbPhysicalMemory, NotConnectedError, SCAN_LIMIT_BYTES,
                          cpu_paging, find_vmcoreinfo, read_vmcoreinfo_at)
from ..kallsyms import KallsymsSymbols
from ..kernel import Kernel
from ..vmcoreinfo import VmcoreInfo
from .execute import Refused, execute_on, parse_in_session
from .table import GDB, help_lines, offered

#: The commands gdb offers, in table order.
COMMANDS = tuple(c.name for c in offered(GDB))
#: Them as gdb's help has always shown them first: the address commands, then the others.
_FIRST = ("vtop", "classify", "check", "ptov")
SYNOPSIS = "|".join([c for c in _FIRST if c in COMMANDS] + [c for c in COMMANDS if c not in _FIRST])
NOT_CONNECTED = ("gdb is not connected to a guest: 'target remote HOST:PORT' to QEMU's gdbstub "
                 "(qemu -s or -gdb tcp:127.0.0.1:PORT) first")
SOURCE_OPTIONS = ("--core", "--kcore", "--qmp", "--vmlinux", "--allow-truncated")


def core_file_message(path: str) -> str:
    """What to say when gdb has a core file open instead of a live guest."""
    return (f"gdb has the core file {path or '(unnamed)'} open, not a live guest: read it with "
            "'kmemdbg --core FILE COMMAND' in a shell or '%kmemdbg COMMAND' in 'drgn -c FILE'; "
            "in gdb kmemdbg needs 'target remote HOST:PORT' to QEMU's gdbstub")


def _core_file(link) -> Optional[str]:
    probe = getattr(link, "core_file", None)    # fakes in tests may not have it
    return probe() if probe is not None else None


class LiveKernel(Kernel):
    """A Kernel over the gdbstub that reuses the BTF types its target parsed at an earlier stop."""

    target: Optional["LiveTarget"] = None

    def objects(self):
        target = self.target
        if self._objects is None and self._objects_error is None and target is not None \
                and target.btf is not None:
            from ..kobjects import KernelObjects

            self._objects = KernelObjects(self, symbol=self.symbols.address, describe=self.symbols.name_of,
                                          btf=target.btf)
        objs = super().objects()
        if objs is not None and target is not None and target.btf is None:
            target.btf = objs.btf
        return objs


class LiveTarget:
    """The guest gdb is attached to, as kmemdbg sees it.

    ``link`` is a :class:`~kmemdbg.gdb.source.GdbLink` (or a fake with the
    same methods).  Call :meth:`resumed` when the guest runs and
    :meth:`detached` when the connection goes away.
    """

    def __init__(self, link, scan_limit_bytes: int = SCAN_LIMIT_BYTES) -> None:
        self.link = link
        self.memory = GdbPhysicalMemory(link)
        self.scan_limit_bytes = scan_limit_bytes
        self.found: Optional[FoundVmcoreinfo] = None
        self.symbols: Optional[KallsymsSymbols] = None
        self.btf = None
        self._kernel: Optional[LiveKernel] = None

    def resumed(self, *_args) -> None:
        """The guest ran: cached memory, tables and allocations are stale."""
        self.memory.clear()
        self._kernel = None

    def detached(self, *_args) -> None:
        """Another guest may come next: forget everything."""
        self.resumed()
        self.found = None
        self.symbols = None
        self.btf = None

    def kernel(self) -> Kernel:
        """The Kernel at this stop; raises SourceError subclasses with one-line causes."""
        if self._kernel is not None:
            return self._kernel
        if not self.link.connected():
            raise NotConnectedError(NOT_CONNECTED)
        paging = cpu_paging(self.link)
        with self.memory.physical_mode():
            if self.found is not None and read_vmcoreinfo_at(self.memory, self.found.pa) != self.found.text:
                self.detached()     # the guest rebooted (new KASLR offsets) or overwrote the note
            if self.found is None:
                self.found = find_vmcoreinfo(self.link, self.memory, paging, self.scan_limit_bytes)
        info = VmcoreInfo.parse(self.found.text)
        if self.symbols is None:
            self.symbols = KallsymsSymbols(info, lambda va, n: self.kernel().read(va, n))
        notes = [f"VMCOREINFO at pa 0x{self.found.pa:x}, found by {self.found.how}",
                 f"CPU: {paging.evidence}"]
        desc = f"QEMU gdbstub (live, {info.osrelease() or 'unknown release'})"
        kernel = kernel_from(self.memory, info, paging.arch, self.symbols, desc, notes=notes, kind=LiveKernel)
        kernel.target = self
        self._kernel = kernel
        if self.symbols.table is None and self.symbols.error:
            kernel.notes.append(self.symbols.error)
        return kernel


def _split(argv: List[str]) -> Tuple[List[str], Optional[str]]:
    """Move ``--json`` to the front (it may follow the command) and name the command."""
    rest = [a for a in argv if a != "--json"]
    lead = ["--json"] if len(rest) != len(argv) else []
    command = next((a for a in rest if not a.startswith("-")), None)
    return lead + rest, command


def run(target: LiveTarget, argv: List[str]) -> Tuple[int, str]:
    """Run one ``kmemdbg`` command line on ``target``: (exit status, output text).

    Status 0 with the output, 1 with one ``kmemdbg: ...`` line, 2 for usage.
    """
    argv, command = _split(argv)
    if command is None and any(a in ("-h", "--help") for a in argv):
        return 0, help_text()
    if command is None and "--version" in argv:
        from .. import __version__

        return 0, f"kmemdbg {__version__}"
    if any(a.split("=", 1)[0] in SOURCE_OPTIONS for a in argv):
        return 2, "kmemdbg: in gdb the kernel is the attached guest; --core/--kcore/--qmp/--vmlinux " \
                  "belong to the shell command"
    if command is None or command not in COMMANDS:
        return 2, f"kmemdbg: usage: kmemdbg [--json] {{{','.join(COMMANDS)}}} ARGS..."
    try:
        args = parse_in_session(GDB, argv)
    except Refused as refused:
        return refused.status, refused.text
    frame = target.link.selected_frame()
    try:
        core = _core_file(target.link)
        if core is not None:
            raise NotConnectedError(core_file_message(core))
        if not target.link.connected():
            raise NotConnectedError(NOT_CONNECTED)
        with target.memory.physical_mode():
            status, text = execute_on(args, target.kernel())
    except KmemdbgError as exc:
        return 1, f"kmemdbg: {exc}"
    except ImportError as exc:
        return 1, (f"kmemdbg: {command} needs the Python module {exc.name}, which gdb's Python "
                   f"{sys.version.split()[0]} cannot import (on Debian: apt-get install python3-{exc.name})")
    except Exception as exc:  # noqa: BLE001 - gdb must never show a traceback for a kmemdbg failure
        first = str(exc).splitlines()[0] if str(exc) else ""
        return 1, f"kmemdbg: {type(exc).__name__}: {first}"
    finally:
        target.link.restore_frame(frame)
    return status, text


def help_text() -> str:
    """``help kmemdbg`` in gdb: the synopsis and every command gdb offers."""
    return "\n".join((
        "kmemdbg [--json] COMMAND ARGS: kernel addresses of the attached guest",
        "",
        "Reads the guest's page tables physically through QEMU's gdbstub and prints",
        "what the kmemdbg command line prints for a dump of the same guest.",
        "'kmemdbg COMMAND --help' gives a command's arguments, examples and legend.",
        "A core file opened in gdb is read with 'kmemdbg --core FILE' or in drgn instead.",
        "Commands:",
        "",
    ) + help_lines(GDB))


__all__ = ["LiveTarget", "LiveKernel", "run", "help_text", "COMMANDS"]
