"""Memory sources, and the one registry that opens a path or a target.

Every source derives from :class:`kmemdbg.memory.MemorySource` and declares
what it knows (RAM ranges, notes, architecture, live or snapshot):

- :mod:`.elfcore` an ELF core (kexec vmcore, QEMU dump-guest-memory, a slice),
- :mod:`.kdump` a kdump-compressed (makedumpfile/QEMU) core,
- :mod:`.drgn_program` a drgn Program: /proc/kcore, a QEMU guest over QMP, any program,
- :mod:`.gdbstub` QEMU's gdbstub through gdb,
- :mod:`.crash_pipe` the crash utility over the extension's pipe,
- :class:`kmemdbg.memory.BytesMemory` and the model's ``SparseMemory``.

:func:`open_source` opens one of ``core=PATH`` (the kind picked by the file's
magic from :data:`DUMP_KINDS`), ``kcore=True``, ``qmp=SOCKET`` or ``prog=``.
Adding a dump format is one module here plus one :class:`DumpKind` line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from ..errors import SourceError
from ..memory import MemorySource
from .dumpfile import magic_of

#: Bytes of a dump's start read to tell its kind.
MAGIC_BYTES = 16


def _is_kdump(magic: bytes) -> bool:
    return magic[:8] in (b"KDUMP   ", b"DISKDUMP") or magic.startswith(b"makedumpfile")


def _is_elf(magic: bytes) -> bool:
    return magic[:4] == b"\x7fELF"


def _open_kdump(path: str) -> MemorySource:
    from .kdump import KdumpMemory

    return KdumpMemory(path)


def _open_elf(path: str) -> MemorySource:
    from .elfcore import ElfCoreMemory

    return ElfCoreMemory(path)


@dataclass(frozen=True)
class DumpKind:
    """One dump file format: ``matches(first MAGIC_BYTES bytes)`` picks it, ``open(path)``
    reads it; ``contents`` names what a truncated file of this kind lacks, in words;
    ``drgn_opens`` says whether drgn reads the file itself (else drgn is given
    kmemdbg's reader, for symbols)."""

    name: str
    matches: Callable[[bytes], bool]
    open: Callable[[str], MemorySource]
    contents: str
    drgn_opens: bool


#: Dump formats, tried in this order.
DUMP_KINDS: Tuple[DumpKind, ...] = (
    DumpKind("kdump-compressed", _is_kdump, _open_kdump, "page descriptors or page data", drgn_opens=False),
    DumpKind("elf", _is_elf, _open_elf, "memory described by its program headers", drgn_opens=True),
)


def dump_kind(path: str) -> DumpKind:
    """The :class:`DumpKind` of the file at ``path``; SourceError when none matches."""
    if not os.path.lexists(path):
        raise SourceError(f"{path}: no such file")
    magic = magic_of(path, MAGIC_BYTES)
    for kind in DUMP_KINDS:
        if kind.matches(magic):
            return kind
    raise SourceError(f"{path}: not a kernel dump (neither ELF nor kdump-compressed)")


def open_dump(path: str) -> MemorySource:
    """The memory of the dump file at ``path``, whatever its kind; raises SourceError."""
    return dump_kind(path).open(path)


def open_source(core: Optional[str] = None, kcore: bool = False, qmp: Optional[str] = None,
                prog=None, arch=None) -> MemorySource:
    """The memory source of exactly one of ``core``, ``kcore``, ``qmp`` or ``prog``.

    ``core`` is a dump file (ELF or kdump-compressed, told by its magic);
    ``kcore`` the running kernel's /proc/kcore and ``qmp`` a QEMU guest's QMP
    socket, both through drgn (the source's ``prog``); ``prog`` any drgn
    Program.  ``arch`` (a registry Arch) names a QMP guest's architecture
    when it is not the host's.  Raises SourceError with a one-line cause.
    """
    chosen = [x for x in (core, qmp, prog) if x is not None] + ([True] if kcore else [])
    if len(chosen) != 1:
        raise SourceError("give exactly one of core=, kcore=True, qmp= or prog=")
    if core is not None:
        return open_dump(core)
    from . import live

    if kcore:
        return live.open_kcore()
    if qmp is not None:
        return live.open_qmp(qmp, arch)
    from .drgn_program import DrgnPhysicalMemory

    return DrgnPhysicalMemory(prog, "drgn program")


__all__ = ["DUMP_KINDS", "DumpKind", "dump_kind", "open_dump", "open_source"]
