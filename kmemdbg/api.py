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

import os
from typing import List, Optional

from .errors import SourceError
from .kernel import Kernel, SymbolTable
from .sources.elfcore import ElfCoreMemory
from .vmcoreinfo import VmcoreInfo

_ARCH_BY_DRGN = {"X86_64": "x86_64", "AARCH64": "arm64"}


def _platform(arch: str):
    import drgn

    flags = drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN
    return drgn.Platform(drgn.Architecture.X86_64 if arch == "x86_64" else drgn.Architecture.AARCH64, flags)


def _arch_from_vmcoreinfo(text: str) -> Optional[str]:
    info = VmcoreInfo.parse(text)
    if "NUMBER(VA_BITS)" in info or "NUMBER(kimage_voffset)" in info:
        return "arm64"
    if "NUMBER(phys_base)" in info or "NUMBER(pgtable_l5_enabled)" in info:
        return "x86_64"
    return None


def _vmcoreinfo_of(prog) -> Optional[str]:
    try:
        return prog["VMCOREINFO"].string_().decode("ascii", "replace")
    except (KeyError, LookupError, Exception):  # noqa: BLE001 - drgn raises several kinds here
        return None


def _open_core_prog(path: str, notes: List[str]):
    import drgn

    try:
        with _bopen(path) as f:
            magic = f.read(8)
    except OSError as err:
        raise SourceError(f"{path}: cannot open: {err.strerror}") from None
    if magic[:4] != b"\x7fELF" and not magic.startswith((b"KDUMP", b"DISKDUMP", b"makedump")):
        raise SourceError(f"{path}: not a kernel dump (neither ELF nor kdump-compressed)")
    prog = drgn.Program()
    try:
        prog.set_core_dump(path)
        return prog
    except Exception as err:  # noqa: BLE001 - drgn reports format trouble as various errors
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
    # QEMU's kdump-compressed files carry no architecture name: try each
    # platform and keep the one whose vmcoreinfo matches it.
    for arch in ("x86_64", "arm64"):
        prog = drgn.Program(_platform(arch))
        try:
            prog.set_core_dump(path)
        except Exception:  # noqa: BLE001
            continue
        text = _vmcoreinfo_of(prog)
        if text and _arch_from_vmcoreinfo(text) == arch:
            notes.append(f"drgn could not name the platform ({first}); took {arch} from VMCOREINFO")
            return prog
    raise SourceError(f"{path}: drgn cannot open it as a kernel dump: {first}")


def open(core: Optional[str] = None, kcore: bool = False, qmp: Optional[str] = None,  # noqa: A001
         prog=None, vmlinux: Optional[str] = None, arch: Optional[str] = None,
         allow_truncated: bool = False) -> Kernel:
    """Open one kernel.  Exactly one of ``core``, ``kcore``, ``qmp`` or ``prog``.

    ``vmlinux`` adds DWARF debug info; without it symbols come from the
    kallsyms tables VMCOREINFO points at.  ``arch`` ("x86_64"/"arm64") is
    only needed for a QMP socket of a guest whose architecture differs from
    the host's.  A truncated ELF dump is refused unless ``allow_truncated``,
    in which case walks that need the missing part end in table-unreadable
    faults.  Raises SourceError/LayoutError with a one-line cause.
    """
    chosen = [x for x in (core, qmp, prog) if x is not None] + ([True] if kcore else [])
    if len(chosen) != 1:
        raise SourceError("give exactly one of core=, kcore=True, qmp= or prog=")
    try:
        import drgn
    except ImportError:
        drgn = None
    notes: List[str] = []
    memory = None
    description = ""
    if core is not None:
        if not os.path.exists(core):
            raise SourceError(f"{core}: no such file")
        with _bopen(core) as f:
            magic = f.read(16)
        is_elf = magic[:4] == b"\x7fELF"
        if magic[:8] in (b"KDUMP   ", b"DISKDUMP") or magic.startswith(b"makedumpfile"):
            from .sources.kdump import KdumpMemory

            memory = KdumpMemory(core)
            if memory.missing_bytes and not allow_truncated:
                raise SourceError(f"{core}: the dump is truncated: {memory.missing_bytes} bytes of page "
                                  "descriptors are missing (use --allow-truncated to read what is there)")
            if drgn is not None:
                prog = _prog_over(memory, core, notes)
            description = core
        elif is_elf:
            memory = ElfCoreMemory(core)
            if memory.missing_bytes:
                msg = f"{core}: the dump is truncated: {memory.missing_bytes} bytes of memory " \
                      "described by its program headers are missing"
                if not allow_truncated:
                    raise SourceError(msg + " (use --allow-truncated to read what is there)")
                notes.append(msg)
        if drgn is not None and prog is None:
            prog = _open_core_prog(core, notes)
        description = core
    elif kcore:
        if drgn is None:
            raise SourceError("reading /proc/kcore needs drgn")
        if not os.access("/proc/kcore", os.R_OK):
            raise SourceError("/proc/kcore is not readable: run as root (CAP_SYS_RAWIO)")
        prog = drgn.Program()
        try:
            prog.set_kernel()
        except PermissionError as err:
            raise SourceError(f"/proc/kcore: permission denied ({err.strerror})") from None
        except Exception as err:  # noqa: BLE001
            raise SourceError(f"/proc/kcore: {err}") from None
        description = "/proc/kcore (live)"
    elif qmp is not None:
        if drgn is None:
            raise SourceError("reading a QEMU guest needs drgn")
        if not os.path.exists(qmp):
            raise SourceError(f"{qmp}: no such QMP socket")
        guest_arch = arch or {"x86_64": "x86_64", "aarch64": "arm64"}.get(os.uname().machine, "x86_64")
        prog = drgn.Program(_platform(guest_arch))
        try:
            prog.set_qemu_qmp(qmp)
        except Exception as err:  # noqa: BLE001
            raise SourceError(f"{qmp}: cannot talk to QEMU: {err}") from None
        description = f"QEMU guest via {qmp} (live)"
    else:
        description = "drgn program"
    text = _vmcoreinfo_of(prog) if prog is not None else None
    if text is None and isinstance(memory, ElfCoreMemory):
        note = memory.note(b"VMCOREINFO")
        text = note.split(b"\0", 1)[0].decode("ascii", "replace") if note else None
    if text is None:
        raise SourceError(f"{description}: no VMCOREINFO (not a kernel dump, or qemu_fw_cfg was not loaded)")
    info = VmcoreInfo.parse(text)
    if prog is not None:
        arch_name = _ARCH_BY_DRGN.get(prog.platform.arch.name) if prog.platform else None
    else:
        arch_name = memory.arch if isinstance(memory, ElfCoreMemory) else None
    arch_name = arch_name or _arch_from_vmcoreinfo(text)
    if arch_name is None:
        raise SourceError(f"{description}: unsupported architecture")
    if memory is None:
        from .sources.drgn_program import DrgnPhysicalMemory

        memory = DrgnPhysicalMemory(prog)
    symbols = SymbolTable.from_prog(prog, vmlinux, notes) if prog is not None else SymbolTable.empty()
    kernel = Kernel.build(memory, info, arch_name, description, prog, symbols, notes)
    if kcore:
        kernel.kcore_path = "/proc/kcore"
    return kernel


def _prog_over(memory, path: str, notes: List[str]):
    """A drgn Program reading through kmemdbg's own kdump reader (not libkdumpfile).

    QEMU's kdump files name no architecture and, on arm64, use 64 KiB blocks
    that libkdumpfile misreads; kmemdbg's reader handles both, and drgn then
    gets symbols (kallsyms) and virtual reads on top of it.
    """
    import drgn

    note = memory.note(b"VMCOREINFO")
    if not note:
        raise SourceError(f"{path}: the kdump file carries no VMCOREINFO")
    text = note.split(b"\0", 1)[0]
    arch = memory.arch or _arch_from_vmcoreinfo(text.decode("ascii", "replace"))
    if arch is None:
        raise SourceError(f"{path}: cannot tell the architecture (header says {memory.machine!r})")
    if memory.arch is None:
        notes.append(f"the kdump header names machine {memory.machine!r}; took {arch} from VMCOREINFO")
    prog = drgn.Program(_platform(arch))

    def read_fn(address: int, count: int, offset: int, physical: bool) -> bytes:
        try:
            return memory.read(address, count)
        except Exception as err:  # noqa: BLE001 - reported to drgn as a fault
            raise drgn.FaultError(str(err), address) from None

    for start, end in memory.ranges():
        prog.add_memory_segment(start, end - start, read_fn, physical=True)
    prog.set_linux_kernel_custom(text + b"\n" if not text.endswith(b"\n") else text, False)
    return prog


def _bopen(path: str):
    import builtins

    return builtins.open(path, "rb")
