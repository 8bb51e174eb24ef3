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
import socket
import stat
import time
from typing import List, Optional

from .errors import KmemdbgError, PhysicalReadError, SourceError
from .kernel import Kernel, SymbolTable
from .kallsyms import kallsyms_problem
from .kernel_tables import kernel_tables
from .session import check_root
from .sources.dumpfile import check_regular, open_regular
from .sources.elfcore import ElfCoreMemory
from .vmcoreinfo import VmcoreInfo

#: Seconds a QMP socket has to greet and answer ``qmp_capabilities``.
QMP_TIMEOUT = 5.0
#: Longest QMP line read while probing (the greeting is a few hundred bytes).
QMP_MAX_LINE = 1 << 16
#: More memory ranges than this are handed to drgn as one span (reads of holes still fault).
MAX_DRGN_SEGMENTS = 4096

_ARCH_BY_DRGN = {"X86_64": "x86_64", "AARCH64": "arm64"}


def _platform(arch: str):
    import drgn

    flags = drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN
    return drgn.Platform(drgn.Architecture.X86_64 if arch == "x86_64" else drgn.Architecture.AARCH64, flags)


def _arch_from_vmcoreinfo(text: "str | VmcoreInfo") -> Optional[str]:
    try:
        info = text if isinstance(text, VmcoreInfo) else VmcoreInfo.parse(text)
    except KmemdbgError:
        return None
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

    magic = _magic(path, 8)
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


def _magic(path: str, n: int) -> bytes:
    """The first ``n`` bytes of the regular file ``path`` (SourceError for FIFOs, devices...)."""
    fd = open_regular(path)
    try:
        return os.pread(fd, n, 0)
    finally:
        os.close(fd)


def open(core: Optional[str] = None, kcore: bool = False, qmp: Optional[str] = None,  # noqa: A001
         prog=None, vmlinux: Optional[str] = None, arch: Optional[str] = None,
         allow_truncated: bool = False, guess_layout: bool = False) -> Kernel:
    """Open one kernel.  Exactly one of ``core``, ``kcore``, ``qmp`` or ``prog``.

    ``vmlinux`` adds DWARF debug info; without it symbols come from the
    kallsyms tables VMCOREINFO points at.  ``arch`` ("x86_64"/"arm64") is
    only needed for a QMP socket of a guest whose architecture differs from
    the host's.  A truncated dump (ELF or kdump-compressed), or one whose
    kernel root table is not in it, is refused unless ``allow_truncated``,
    in which case walks that need the missing part end in table-unreadable
    faults.  A layout region that only a default could place is a
    LayoutError when the layout is first used, unless ``guess_layout``.
    Raises SourceError/LayoutError with a one-line cause.
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
    raw_info: Optional[bytes] = None
    if vmlinux:
        check_regular(vmlinux)
    if core is not None:
        if not os.path.lexists(core):
            raise SourceError(f"{core}: no such file")
        magic = _magic(core, 16)
        is_elf = magic[:4] == b"\x7fELF"
        if magic[:8] in (b"KDUMP   ", b"DISKDUMP") or magic.startswith(b"makedumpfile"):
            from .sources.kdump import KdumpMemory

            memory = KdumpMemory(core)
            what = "page descriptors or page data"
        elif is_elf:
            memory = ElfCoreMemory(core)
            what = "memory described by its program headers"
        else:
            raise SourceError(f"{core}: not a kernel dump (neither ELF nor kdump-compressed)")
        if memory.missing_bytes:
            msg = f"{core}: the dump is truncated: {memory.missing_bytes} bytes of {what} are missing"
            if not allow_truncated:
                raise SourceError(msg + " (use --allow-truncated to read what is there)")
            notes.append(msg)
        note = memory.note(b"VMCOREINFO")
        if not note:
            raise SourceError(f"{core}: no VMCOREINFO (not a kernel dump, or qemu_fw_cfg was not loaded)")
        raw_info = note.split(b"\0", 1)[0]
        info = VmcoreInfo.parse(raw_info)
        arch_name = memory.arch or _arch_from_vmcoreinfo(info)
        if arch_name is None:
            raise SourceError(f"{core}: cannot tell the architecture (header says {memory.machine!r})")
        kernel_tables(info, arch_name)     # every value the walker needs, checked before drgn sees it
        if drgn is not None:
            if isinstance(memory, ElfCoreMemory):
                prog = _open_core_prog(core, notes)
            else:
                prog = _prog_over(memory, core, notes, raw_info, arch_name)
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
        if not os.path.lexists(qmp):
            raise SourceError(f"{qmp}: no such QMP socket")
        probe_qmp(qmp)
        guest_arch = arch or {"x86_64": "x86_64", "aarch64": "arm64"}.get(os.uname().machine, "x86_64")
        prog = drgn.Program(_platform(guest_arch))
        try:
            prog.set_qemu_qmp(qmp)
        except Exception as err:  # noqa: BLE001
            raise SourceError(f"{qmp}: cannot talk to QEMU: {err}") from None
        description = f"QEMU guest via {qmp} (live)"
    else:
        description = "drgn program"
    if raw_info is None:
        text = _vmcoreinfo_of(prog) if prog is not None else None
        if text is None:
            raise SourceError(f"{description}: no VMCOREINFO (not a kernel dump, or qemu_fw_cfg was not loaded)")
        info = VmcoreInfo.parse(text)
        arch_name = (_ARCH_BY_DRGN.get(prog.platform.arch.name) if prog.platform else None) \
            or _arch_from_vmcoreinfo(info)
        if arch_name is None:
            raise SourceError(f"{description}: unsupported architecture")
    if memory is None:
        from .sources.drgn_program import DrgnPhysicalMemory

        memory = DrgnPhysicalMemory(prog, description, headers_path="/proc/kcore" if kcore else None,
                                    headers_source="/proc/kcore KCORE_RAM p_vaddr - p_paddr")
    kernel = Kernel.build(memory, info, arch_name, description, prog, SymbolTable.empty(), notes)
    kernel.guess_layout = guess_layout
    check_root(kernel, allow_truncated)
    if prog is not None:
        why = kallsyms_problem(kernel)
        if why is None or vmlinux:
            kernel.symbols = SymbolTable.from_prog(prog, vmlinux, kernel.notes, kallsyms=why is None)
        else:
            kernel.notes.append(f"no symbols: {why}")
    if kcore:
        kernel.kcore_path = "/proc/kcore"   # until Kernel reads memory.linear_offset()
    return kernel


def probe_qmp(path: str, timeout: float = QMP_TIMEOUT) -> None:
    """Check that ``path`` is a QMP socket that greets and answers within ``timeout`` seconds.

    drgn's ``set_qemu_qmp`` waits for ever on a socket that accepts and never
    answers; this probe (connect, greeting, ``qmp_capabilities``) runs first,
    with a deadline.  QEMU serves one QMP client at a time, so the probe's
    connection is closed before drgn opens its own.  Raises SourceError.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise SourceError(f"{path}: cannot talk to QEMU: {err.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise SourceError(f"{path}: not a socket (a QMP socket is made by QEMU's -qmp unix:PATH,server)")
    deadline = time.monotonic() + timeout
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        greeting = _qmp_line(sock, deadline)
        if not greeting.lstrip().startswith(b'{"QMP"'):
            raise SourceError(f"{path}: cannot talk to QEMU: not a QMP greeting: {greeting[:40]!r}")
        sock.sendall(b'{"execute": "qmp_capabilities"}\n')
        while True:
            reply = _qmp_line(sock, deadline)
            if b'"return"' in reply:
                break
            if b'"error"' in reply:
                raise SourceError(f"{path}: cannot talk to QEMU: qmp_capabilities failed: {reply[:80]!r}")
    except socket.timeout:
        raise SourceError(f"{path}: cannot talk to QEMU: no QMP answer within {timeout:g} s") from None
    except SourceError as err:
        if str(err).startswith(path):
            raise
        raise SourceError(f"{path}: cannot talk to QEMU: {err}") from None
    except OSError as err:
        raise SourceError(f"{path}: cannot talk to QEMU: {err.strerror or err}") from None
    finally:
        sock.close()


def _qmp_line(sock: socket.socket, deadline: float) -> bytes:
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        sock.settimeout(left)
        more = sock.recv(4096)
        if not more:
            raise SourceError("QMP socket closed by QEMU" if buf else "the QMP socket closed without a greeting")
        buf += more
        if len(buf) > QMP_MAX_LINE:
            raise SourceError(f"QMP line longer than {QMP_MAX_LINE} bytes")
    return buf.split(b"\n", 1)[0]


def _prog_over(memory, path: str, notes: List[str], text: bytes, arch: str):
    """A drgn Program reading through kmemdbg's own kdump reader (not libkdumpfile).

    QEMU's kdump files name no architecture and, on arm64, use 64 KiB blocks
    that libkdumpfile misreads; kmemdbg's reader handles both, and drgn then
    gets symbols (kallsyms) and virtual reads on top of it.  ``text`` is the
    VMCOREINFO (already checked), ``arch`` the architecture.
    """
    import drgn

    if memory.arch is None:
        notes.append(f"the kdump header names machine {memory.machine!r}; took {arch} from VMCOREINFO")
    prog = drgn.Program(_platform(arch))

    def read_fn(address: int, count: int, offset: int, physical: bool) -> bytes:
        try:
            return memory.read(address, count)
        except Exception as err:  # noqa: BLE001 - reported to drgn as a fault
            raise drgn.FaultError(str(err), address) from None

    ranges = memory.ranges()
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
