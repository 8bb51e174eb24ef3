"""Physical reads through a drgn Program (dump, /proc/kcore or QMP), and the drgn
Programs kmemdbg builds over its own dump readers for symbols.

drgn is imported inside each function, so the core of kmemdbg works without it.
"""
from __future__ import annotations

from typing import List, Optional

from ..errors import KmemdbgError, PhysicalReadError, SourceError
from ..memory import LinearOffset, MemorySource

#: More memory ranges than this are handed to drgn as one span (reads of holes still fault).
MAX_DRGN_SEGMENTS = 4096


class DrgnPhysicalMemory(MemorySource):
    """Reads physical bytes with ``prog.read(pa, size, True)``.

    A live program (/proc/kcore, a QEMU guest) is ``live`` and sets
    ``zero_fills_holes``: /proc/kcore reads unbacked ranges as zeros.  The
    architecture hint is drgn's platform; the VMCOREINFO text is drgn's
    ``VMCOREINFO`` object.  ``headers_path`` names an ELF file whose program
    headers give the direct-map offset (``/proc/kcore``), described in the
    words of ``headers_source``.
    """

    def __init__(self, prog, description: str = "drgn program", headers_path: Optional[str] = None,
                 headers_source: str = "") -> None:
        import drgn

        self.prog = prog
        self._fault = drgn.FaultError
        self.live = self.zero_fills_holes = bool(prog.flags & drgn.ProgramFlags.IS_LIVE)
        self.description = description
        self.headers_path, self.headers_source = headers_path, headers_source

    @property
    def arch_hint(self):  # type: ignore[override]
        """The registry Arch of the program's platform, or None."""
        return drgn_arch(self.prog)

    def read(self, pa: int, size: int) -> bytes:
        try:
            return self.prog.read(pa, size, True)
        except self._fault as err:
            raise PhysicalReadError(pa, size, f"not in the dump ({err})") from None
        except (ValueError, OverflowError) as err:
            raise PhysicalReadError(pa, size, str(err)) from None

    def vmcoreinfo(self) -> Optional[bytes]:
        text = vmcoreinfo_of(self.prog)
        return None if text is None else text.encode("ascii", "replace")

    def linear_offset(self, image_start_va: int) -> Optional[LinearOffset]:
        """``p_vaddr - p_paddr`` of a KCORE_RAM segment of ``headers_path``; None when unreadable."""
        from .elfcore import linear_offset_from_headers, program_headers

        if not self.headers_path:
            return None
        try:
            headers = program_headers(self.headers_path)
        except (KmemdbgError, OSError):     # evidence, not a requirement
            return None
        offset = linear_offset_from_headers(headers, image_start_va)
        return None if offset is None else LinearOffset(offset, self.headers_source)


def drgn_arch(prog):
    """The registry's Arch of drgn program ``prog``'s platform, or None."""
    from ..arch import arch_for_drgn

    platform = prog.platform
    return arch_for_drgn(platform.arch.name) if platform is not None else None


def drgn_platform(arch):
    """A 64-bit little-endian drgn Platform of registry Arch ``arch``."""
    import drgn

    flags = drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN
    return drgn.Platform(getattr(drgn.Architecture, arch.drgn_arch), flags)


def vmcoreinfo_of(prog) -> Optional[str]:
    """drgn's ``VMCOREINFO`` text of ``prog``, or None when it has none."""
    try:
        return prog["VMCOREINFO"].string_().decode("ascii", "replace")
    except (KeyError, LookupError, Exception):  # noqa: BLE001 - drgn raises several kinds here
        return None


def open_core_prog(path: str, notes: List[str], arch_of_vmcoreinfo):
    """A drgn Program over the dump at ``path`` (for symbols); raises SourceError.

    QEMU's kdump-compressed files carry no architecture name: when drgn
    cannot name the platform, each architecture is tried and the one whose
    VMCOREINFO (``arch_of_vmcoreinfo(text)``) matches it is kept.
    """
    import drgn

    from ..arch import ARCHES
    from .dumpfile import magic_of

    magic = magic_of(path, 8)
    if magic[:4] != b"\x7fELF" and not magic.startswith((b"KDUMP", b"DISKDUMP", b"makedump")):
        raise SourceError(f"{path}: not a kernel dump (neither ELF nor kdump-compressed)")
    prog = drgn.Program()
    try:
        prog.set_core_dump(path)
        return prog
    except Exception as err:  # noqa: BLE001 - drgn reports format trouble as various errors
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
    for arch in ARCHES:
        prog = drgn.Program(drgn_platform(arch))
        try:
            prog.set_core_dump(path)
        except Exception:  # noqa: BLE001
            continue
        text = vmcoreinfo_of(prog)
        if text and arch_of_vmcoreinfo(text) is arch:
            notes.append(f"drgn could not name the platform ({first}); took {arch.name} from VMCOREINFO")
            return prog
    raise SourceError(f"{path}: drgn cannot open it as a kernel dump: {first}")


def prog_over(memory: MemorySource, path: str, notes: List[str], text: bytes, arch):
    """A drgn Program reading through kmemdbg's own kdump reader (not libkdumpfile).

    QEMU's kdump files name no architecture and, on arm64, use 64 KiB blocks
    that libkdumpfile misreads; kmemdbg's reader handles both, and drgn then
    gets symbols (kallsyms) and virtual reads on top of it.  ``text`` is the
    VMCOREINFO (already checked), ``arch`` the registry Arch.
    """
    import drgn

    if memory.arch_hint is None:
        notes.append(f"the kdump header names machine {memory.machine!r}; took {arch.name} "
                     "from VMCOREINFO")
    prog = drgn.Program(drgn_platform(arch))

    def read_fn(address: int, count: int, offset: int, physical: bool) -> bytes:
        try:
            return memory.read(address, count)
        except Exception as err:  # noqa: BLE001 - reported to drgn as a fault
            raise drgn.FaultError(str(err), address) from None

    ranges = memory.ram_ranges() or []
    if len(ranges) > MAX_DRGN_SEGMENTS:
        ranges = [(ranges[0][0], ranges[-1][1])]
    try:
        for start, end in ranges:
            prog.add_memory_segment(start, end - start, read_fn, physical=True)
        prog.set_linux_kernel_custom(text + b"\n" if not text.endswith(b"\n") else text, False)
    except Exception as err:  # noqa: BLE001 - drgn's BadDataError and friends
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SourceError(f"{path}: drgn rejects the dump's VMCOREINFO: {first}") from None
    return prog
