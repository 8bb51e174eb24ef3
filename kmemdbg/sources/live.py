"""Live kernels read through drgn: the running kernel's /proc/kcore and a QEMU guest's QMP socket.

drgn waits for ever on a QMP socket that accepts and never answers, so
:func:`probe_qmp` checks the socket first, with a deadline.
"""
from __future__ import annotations

import os
import socket
import stat
import time
from ..errors import SourceError
from .drgn_program import DrgnPhysicalMemory, drgn_platform

#: Seconds a QMP socket has to greet and answer ``qmp_capabilities``.
QMP_TIMEOUT = 5.0
#: Longest QMP line read while probing (the greeting is a few hundred bytes).
QMP_MAX_LINE = 1 << 16
KCORE = "/proc/kcore"


def _drgn():
    try:
        import drgn
    except ImportError:
        return None
    return drgn


def open_kcore() -> DrgnPhysicalMemory:
    """The running kernel through /proc/kcore (drgn ``set_kernel``); raises SourceError."""
    drgn = _drgn()
    if drgn is None:
        raise SourceError("reading /proc/kcore needs drgn")
    if not os.access(KCORE, os.R_OK):
        raise SourceError("/proc/kcore is not readable: run as root (CAP_SYS_RAWIO)")
    prog = drgn.Program()
    try:
        prog.set_kernel()
    except PermissionError as err:
        raise SourceError(f"/proc/kcore: permission denied ({err.strerror})") from None
    except Exception as err:  # noqa: BLE001
        raise SourceError(f"/proc/kcore: {err}") from None
    return DrgnPhysicalMemory(prog, "/proc/kcore (live)", headers_path=KCORE,
                              headers_source="/proc/kcore KCORE_RAM p_vaddr - p_paddr")


def open_qmp(path: str, arch=None) -> DrgnPhysicalMemory:
    """A QEMU guest through its QMP socket at ``path``; ``arch`` (registry Arch) defaults
    to the host's.  Raises SourceError."""
    from ..arch import ARCHES, arch_for_host

    drgn = _drgn()
    if drgn is None:
        raise SourceError("reading a QEMU guest needs drgn")
    if not os.path.lexists(path):
        raise SourceError(f"{path}: no such QMP socket")
    probe_qmp(path)
    # an unknown host takes the first registered architecture (x86-64), as before
    guest = arch or arch_for_host(os.uname().machine) or ARCHES[0]
    prog = drgn.Program(drgn_platform(guest))
    try:
        prog.set_qemu_qmp(path)
    except Exception as err:  # noqa: BLE001
        raise SourceError(f"{path}: cannot talk to QEMU: {err}") from None
    return DrgnPhysicalMemory(prog, f"QEMU guest via {path} (live)")


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


__all__ = ["open_kcore", "open_qmp", "probe_qmp", "QMP_TIMEOUT"]
