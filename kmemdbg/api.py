"""``kmemdbg.open()``: one entry point for dumps, /proc/kcore, QEMU guests and drgn programs.

    >>> k = kmemdbg.open(core="vmcore")           # no debug info needed (Linux >= 6.0)
    >>> k.classify(0xffffd3d940001000).region.kind
    'vmalloc'
    >>> k.check_virt_to_phys(0xffffd3d940001000).verdict
    'mismatch'

The returned :class:`~kmemdbg.kernel.Kernel` holds the drgn Program, the
physical memory source, the layout and the walker.  Missing optional data
(debug info, kallsyms, a vmcoreinfo key) degrades the answers and is listed
in ``kernel.missing``; it never makes ``open`` fail.
"""
from __future__ import annotations

import os  # noqa: F401 - the os module the sources use (tests patch ``kmemdbg.api.os.access``)
from typing import List, Optional, Sequence, Type, Union

from .arch import Arch, arch_for_vmcoreinfo, arch_named
from .errors import KmemdbgError, SourceError
from .kernel import Kernel
from .kallsyms import KallsymsSymbols, kallsyms_problem
from .kernel_tables import kernel_tables
from .memory import PhysicalMemory
from .session import check_root, session_parts
from .sources import dump_kind, open_source
from .sources.dumpfile import check_regular
from .sources.live import QMP_TIMEOUT, probe_qmp  # noqa: F401 - public here since kmemdbg 0.x
from .symbols import SymbolTable, Symbols
from .vmcoreinfo import VmcoreInfo


def kernel_from(memory: PhysicalMemory, info: VmcoreInfo, arch: Union[Arch, str], symbols: Optional[Symbols],
                description: str, prog=None, notes: Sequence[str] = (),
                kind: Type[Kernel] = Kernel) -> Kernel:
    """The one constructor of a :class:`~kmemdbg.kernel.Kernel`, for every front end.

    ``memory`` reads physical bytes (any :class:`~kmemdbg.memory.PhysicalMemory`);
    ``info`` is the kernel's VMCOREINFO; ``arch`` a registry
    :class:`~kmemdbg.arch.Arch` (or its name); ``symbols`` any
    :class:`~kmemdbg.symbols.Symbols` (None: no symbols); ``description``
    names the kernel in messages; ``prog`` the drgn Program when there is
    one; ``notes`` what was degraded while opening; ``kind`` a Kernel
    subclass to build (the gdb and crash front ends add state).  The root
    table is derived from ``info`` (LayoutError/VmcoreinfoError naming a key)
    but not yet read: :func:`kmemdbg.session.check_root` does that.
    """
    arch = arch_named(arch) if isinstance(arch, str) else arch
    tables, walker = session_parts(memory, info, arch)
    return kind(memory, info, tables, walker, description, prog,
                symbols if symbols is not None else SymbolTable.empty(), notes)


def arch_of_vmcoreinfo(text: "str | bytes | VmcoreInfo") -> Optional[Arch]:
    """The architecture VMCOREINFO's own keys name, or None (also for unparsable text)."""
    try:
        info = text if isinstance(text, VmcoreInfo) else VmcoreInfo.parse(text)
    except KmemdbgError:
        return None
    return arch_for_vmcoreinfo(info)


def open(core: Optional[str] = None, kcore: bool = False, qmp: Optional[str] = None,  # noqa: A001
         prog=None, vmlinux: Optional[str] = None, arch: Optional[str] = None,
         allow_truncated: bool = False, guess_layout: bool = False) -> Kernel:
    """Open one kernel.  Exactly one of ``core``, ``kcore``, ``qmp`` or ``prog``.

    ``vmlinux`` adds DWARF debug info; without it symbols come from the
    kallsyms tables VMCOREINFO points at.  ``arch`` (a name of :data:`kmemdbg.arch.ARCHES`) is
    only needed for a QMP socket of a guest whose architecture differs from
    the host's.  A truncated dump (ELF or kdump-compressed), or one whose
    kernel root table is not in it, is refused unless ``allow_truncated``,
    in which case walks that need the missing part end in table-unreadable
    faults.  A layout region that only a default could place is a
    LayoutError when the layout is first used, unless ``guess_layout``.
    Raises SourceError/LayoutError with a one-line cause.

    The memory comes from :func:`kmemdbg.sources.open_source`, the Kernel
    from :func:`kernel_from`.
    """
    chosen = [x for x in (core, qmp, prog) if x is not None] + ([True] if kcore else [])
    if len(chosen) != 1:
        raise SourceError("give exactly one of core=, kcore=True, qmp= or prog=")
    import importlib.util

    drgn = importlib.util.find_spec("drgn")    # imported (0.1 s) only where drgn is used
    notes: List[str] = []
    prog_factory = None
    if vmlinux:
        check_regular(vmlinux)
    if core is not None:
        kind = dump_kind(core)
        memory = kind.open(core)
        if memory.missing_bytes:
            msg = f"{core}: the dump is truncated: {memory.missing_bytes} bytes of {kind.contents} are missing"
            if not allow_truncated:
                raise SourceError(msg + " (use --allow-truncated to read what is there)")
            notes.append(msg)
        note = memory.note(b"VMCOREINFO")
        if not note:
            raise SourceError(f"{core}: no VMCOREINFO (not a kernel dump, or qemu_fw_cfg was not loaded)")
        raw_info = note.split(b"\0", 1)[0]
        info = VmcoreInfo.parse(raw_info)
        guest = memory.arch_hint or arch_of_vmcoreinfo(info)
        if guest is None:
            raise SourceError(f"{core}: cannot tell the architecture "
                              f"(header says {memory.machine!r})")
        kernel_tables(info, guest.name)    # every value the walker needs, checked before drgn sees it
        if drgn is not None:
            from .sources.drgn_program import open_core_prog, prog_over

            if kind.drgn_opens:
                def prog_factory(sink: List[str], core=core):
                    return open_core_prog(core, sink, arch_of_vmcoreinfo)
            else:
                def prog_factory(sink: List[str], core=core, memory=memory, raw_info=raw_info, guest=guest):
                    return prog_over(memory, core, sink, raw_info, guest)
            if vmlinux:
                prog = prog_factory(notes)    # DWARF is read through drgn
        description = core
    else:
        memory = open_source(kcore=kcore, qmp=qmp, prog=prog, arch=arch_named(arch) if arch else None)
        prog = memory.prog  # type: ignore[attr-defined]
        description = memory.description
        from .sources.drgn_program import vmcoreinfo_of

        text = vmcoreinfo_of(prog)
        if text is None:
            raise SourceError(f"{description}: no VMCOREINFO (not a kernel dump, or qemu_fw_cfg was not loaded)")
        info = VmcoreInfo.parse(text)
        guest = memory.arch_hint or arch_of_vmcoreinfo(info)
        if guest is None:
            raise SourceError(f"{description}: unsupported architecture")
    if vmlinux:
        from .vmlinux import check_vmlinux

        check_vmlinux(vmlinux, info)      # another kernel's DWARF would give wrong symbols
    kernel = kernel_from(memory, info, guest, SymbolTable.empty(), description, prog, notes)
    kernel.guess_layout = guess_layout
    check_root(kernel, allow_truncated)
    if prog is None and prog_factory is not None:
        # A dump file: drgn is opened when something asks for kernel.prog, and the
        # symbols come from kmemdbg's own kallsyms decoder, loaded on first lookup.
        kernel._prog_factory = prog_factory
        why = kallsyms_problem(kernel)
        if why is None:
            kernel.symbols = KallsymsSymbols(info, kernel.read, "kallsyms tables in the dump", kernel.notes)
        else:
            kernel.notes.append(f"no symbols: {why}")
    elif prog is not None:
        why = kallsyms_problem(kernel)
        if why is None or vmlinux:
            kernel.symbols = SymbolTable.from_prog(prog, vmlinux, kernel.notes, kallsyms=why is None)
            if vmlinux and not kernel.symbols.source.startswith("DWARF"):
                raise SourceError(f"{vmlinux}: {kernel.notes[-1] if kernel.notes else 'debug info not loaded'}")
        else:
            kernel.notes.append(f"no symbols: {why}")
    return kernel


__all__ = ["open", "kernel_from", "arch_of_vmcoreinfo", "probe_qmp"]
