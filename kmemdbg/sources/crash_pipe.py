"""Physical memory, VMCOREINFO and symbols served by the crash utility over a pipe.

kmemdbg's crash extension (``kmemdbg/crash/kmemdbg_crash.c``) runs kmemdbg
as a child process; the child asks crash for everything it reads.  Frames,
both ways: a 24-byte little-endian header ``(kind: u32, length: u32, a: u64,
b: u64)`` then ``length`` bytes.  The child sends one request and waits for
crash's ``D`` (data) or ``F`` (failed: ``a`` is the first unreadable
address, the payload says why).

:class:`CrashPhysicalMemory` is the memory source: ``read(pa, size)`` is
``readmem(pa, PHYSADDR, ..., RETURN_ON_ERROR|QUIET)`` inside crash, cached in
4 KiB pages, so a batch of walks costs one round trip per distinct table
page and a run of missing pages is one request.
"""
from __future__ import annotations

import os
import signal
import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..errors import PhysicalReadError, SourceError
from ..memory import LinearOffset, MemorySource

HEADER = struct.Struct("<IIQQ")
PAGE = 4096

RUN, DATA, FAIL, HELLO = ord("R"), ord("D"), ord("F"), ord("H")
PREAD, VREAD, VMCI, SYMBOL, SOURCE, KVTOP = (ord(c) for c in "PVCSTK")
OUT, ERR, DONE, ERROR, TESTFATAL = (ord(c) for c in "OWXEZ")

#: Bytes one request asks crash for at most (the shim serves up to 64 MiB).
MAX_REQUEST_BYTES = 16 << 20
#: Pages the read cache holds before it starts over (64 MiB).
CACHE_PAGES = 16384
#: Reads longer than this go around the cache (scans touch each page once).
CACHE_READ_LIMIT = 256 << 10


class CrashGoneError(SourceError):
    """The pipe to crash closed: crash exited or unloaded the extension."""


class CrashRequestError(SourceError):
    """crash refused a request (the reply names why)."""


@dataclass(frozen=True)
class CrashTranslation:
    """crash's own ``kvtop()`` for virtual ``va``.

    ``pa`` is what crash's reads and the PHYSICAL column of its ``vtop``
    use (``kvtop(..., verbose=0)``), None when crash says it cannot
    translate; ``walk_pa`` is the result of crash's verbose walk, None when
    that walk fails, and ``walk_lines`` the walk as crash prints it.
    """

    va: int
    pa: Optional[int]
    walk_pa: Optional[int]
    walk_lines: Tuple[str, ...]


class CrashLink:
    """The child's end of the pipe: ``rfd`` reads crash's frames, ``wfd`` writes ours.

    ``round_trips`` counts requests.  A SIGINT forwarded by the shim is
    turned into KeyboardInterrupt at the next request (never between a
    request and its reply, so the pipe stays in step).
    """

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd
        self.round_trips = 0
        self.interrupted = False

    # -- framing -----------------------------------------------------------
    def send(self, kind: int, a: int = 0, b: int = 0, payload: bytes = b"") -> None:
        data = HEADER.pack(kind, len(payload), a & (2**64 - 1), b & (2**64 - 1)) + payload
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.wfd, view)
                view = view[n:]
        except (BrokenPipeError, OSError) as err:
            raise CrashGoneError(f"the pipe to crash is closed ({err.strerror or err})") from None

    def _exact(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            try:
                more = os.read(self.rfd, min(n - got, 1 << 22))
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            except OSError as err:
                raise CrashGoneError(f"the pipe from crash failed ({err.strerror})") from None
            if not more:
                raise CrashGoneError("crash closed the pipe")
            chunks.append(more)
            got += len(more)
        return b"".join(chunks)

    def recv(self) -> Tuple[int, int, int, bytes]:
        kind, length, a, b = HEADER.unpack(self._exact(HEADER.size))
        return kind, a, b, self._exact(length) if length else b""

    def request(self, kind: int, a: int = 0, b: int = 0, payload: bytes = b"") -> Tuple[int, int, bytes]:
        """One request and crash's reply: (kind DATA or FAIL, a, payload)."""
        if self.interrupted:
            self.interrupted = False
            raise KeyboardInterrupt
        self.send(kind, a, b, payload)
        self.round_trips += 1
        got, ra, _rb, data = self.recv()
        if got not in (DATA, FAIL):
            raise CrashGoneError(f"crash answered a request with frame {chr(got)!r}")
        return got, ra, data

    def catch_interrupts(self) -> None:
        """SIGINT (forwarded by the shim for crash's Ctrl-C) marks the next request as interrupted."""
        def on_sigint(_sig, _frame):
            self.interrupted = True
        signal.signal(signal.SIGINT, on_sigint)

    # -- requests ------------------------------------------------------------
    def read(self, addr: int, size: int, physical: bool = True) -> bytes:
        """``size`` bytes at ``addr`` (physical, or kernel virtual through crash's
        own translation); raises PhysicalReadError naming the first bad address."""
        kind, bad, data = self.request(PREAD if physical else VREAD, addr, size)
        if kind == FAIL:
            raise PhysicalReadError(bad if physical else addr, size, data.decode("utf-8", "replace"))
        if len(data) != size:
            raise PhysicalReadError(addr, size, f"crash sent {len(data)} bytes")
        return data

    def vmcoreinfo(self, key: str) -> Optional[str]:
        """crash's ``pc->read_vmcoreinfo(key)``, or None."""
        kind, _a, data = self.request(VMCI, payload=key.encode())
        return data.decode("utf-8", "replace") if kind == DATA else None

    def symbol(self, name: str) -> Optional[int]:
        """crash's ``symbol_value(name)`` (relocated), or None when crash does not know it."""
        kind, value, _data = self.request(SYMBOL, payload=name.encode())
        return value if kind == DATA else None

    def source(self) -> Dict[str, str]:
        """What crash has open: kind (elf, kdump-compressed, live, ...), path, live, machine, crash version."""
        kind, _a, data = self.request(SOURCE)
        if kind != DATA:
            raise CrashRequestError(f"crash did not describe its source: {data.decode(errors='replace')}")
        out = {}
        for line in data.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition("=")
            out[key] = value
        return out

    def kvtop(self, va: int) -> CrashTranslation:
        """crash's own translation of kernel virtual ``va``."""
        kind, flags, data = self.request(KVTOP, va)
        if kind != DATA or len(data) < 16:
            return CrashTranslation(va, None, None, ())
        pa0, pa1 = struct.unpack_from("<QQ", data)
        lines = tuple(ln.rstrip() for ln in data[16:].decode("utf-8", "replace").splitlines() if ln.strip())
        return CrashTranslation(va, pa0 if flags & 1 else None, pa1 if flags & 2 else None, lines)


class CrashPhysicalMemory(MemorySource):
    """Physical memory read by crash, cached in 4 KiB pages.

    ``read(pa, size)`` returns exactly ``size`` bytes or raises
    PhysicalReadError.  For a live system crash opened, call :meth:`clear`
    before each command (the kernel moves on, a new ``generation``);
    ``zero_fills_holes`` is set there, since crash's live drivers may read
    holes as zeros.  ``headers`` is kmemdbg's own reader of the dump file
    crash has open (None for a live system or a format kmemdbg does not
    read): the RAM ranges and the direct-map offset are what its headers say.
    """

    def __init__(self, link: CrashLink, live: bool = False, description: str = "crash",
                 headers: Optional[MemorySource] = None) -> None:
        self.link = link
        self.live = self.zero_fills_holes = live
        self.description = description
        self.headers = headers
        self._pages: Dict[int, bytes] = {}

    def ram_ranges(self) -> Optional[List[Tuple[int, int]]]:
        return self.headers.ram_ranges() if self.headers is not None else None

    def linear_offset(self, image_start_va: int) -> Optional[LinearOffset]:
        return self.headers.linear_offset(image_start_va) if self.headers is not None else None

    def _fetch(self, pa: int, size: int) -> bytes:
        out: List[bytes] = []
        while size > 0:
            n = min(size, MAX_REQUEST_BYTES)
            out.append(self.link.read(pa, n))
            pa, size = pa + n, size - n
        return b"".join(out)

    def read(self, pa: int, size: int) -> bytes:
        if size <= 0:
            return b""
        if pa < 0 or pa + size > 1 << 64:
            raise PhysicalReadError(pa, size, "outside the 64-bit physical address space")
        if size > CACHE_READ_LIMIT:
            return self._fetch(pa, size)
        first, last = pa // PAGE, (pa + size - 1) // PAGE
        missing = [p for p in range(first, last + 1) if p not in self._pages]
        if missing:
            if len(self._pages) + len(missing) > CACHE_PAGES:
                self._pages.clear()
                missing = list(range(first, last + 1))
            runs: List[List[int]] = []
            for p in missing:
                if runs and runs[-1][1] == p:
                    runs[-1][1] = p + 1
                else:
                    runs.append([p, p + 1])
            for lo, hi in runs:
                data = self._fetch(lo * PAGE, (hi - lo) * PAGE)
                for i in range(hi - lo):
                    self._pages[lo + i] = data[i * PAGE:(i + 1) * PAGE]
        if first == last:
            off = pa - first * PAGE
            return self._pages[first][off:off + size]
        blob = b"".join(self._pages[p] for p in range(first, last + 1))
        off = pa - first * PAGE
        return blob[off:off + size]

    def clear(self) -> None:
        """Forget every page read: the kernel may have moved on."""
        self._pages.clear()
        self.moved_on()


__all__ = ["CrashLink", "CrashPhysicalMemory", "CrashTranslation", "CrashGoneError", "CrashRequestError"]
