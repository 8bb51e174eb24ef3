"""Bad inputs made from good dumps, for the fuzz harness and the regression tests.

A :class:`Dump` describes where things are in a dump file (ELF header,
program headers, the VMCOREINFO text, the kdump header fields, the kernel's
page-table pages); a :class:`Patch` is a few byte writes and an optional new
file size.  Patches are applied to a working copy (:class:`WorkCopy`) and
undone by copying the touched bytes back from the pristine file, so even the
512 MiB dumps cost a few kilobytes per case.  The pristine file is only ever
opened for reading.

:func:`run_case` runs one ``kmemdbg`` command line in a subprocess with an
address-space limit and a wall-clock limit, and reports exit status, stderr
lines, time, peak memory and whether the inputs' sha256 changed.

Page-table entries are written with this file's own encoders (x86-64:
present|RW|accessed|dirty; arm64: table/page descriptors with AF), not with
``kmemdbg.arch``, so a mistake there cannot hide a mistake here.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The limits every case must stay under (the issue's bounds).
CASE_SECONDS = 10.0
CASE_BYTES = 1 << 30


# -- patches and working copies ------------------------------------------------------------

@dataclass(frozen=True)
class Patch:
    """Byte writes ``(offset, data)`` (past the end extends the file) and an optional
    final size (smaller: the file is cut there)."""

    writes: Tuple[Tuple[int, bytes], ...] = ()
    size: Optional[int] = None

    def __add__(self, other: "Patch") -> "Patch":
        return Patch(self.writes + other.writes, other.size if other.size is not None else self.size)


class WorkCopy:
    """A copy of ``pristine`` in ``directory`` that patches are applied to and undone from."""

    def __init__(self, pristine: str, directory: str, name: Optional[str] = None) -> None:
        self.pristine = pristine
        self.path = os.path.join(directory, name or os.path.basename(pristine))
        self.size = os.path.getsize(pristine)
        shutil.copyfile(pristine, self.path)
        os.chmod(self.path, 0o644)
        self._ino = os.stat(self.path).st_ino
        self._dirty: List[Tuple[int, int]] = []

    def apply(self, patch: Patch) -> None:
        with open(self.path, "r+b") as f:
            for off, data in patch.writes:
                f.seek(off)
                f.write(data)
                self._dirty.append((off, off + len(data)))
            if patch.size is not None:
                f.truncate(patch.size)
                self._dirty.append((patch.size, self.size))

    def restore(self) -> None:
        """Back to the pristine bytes (a replaced or removed copy is copied again)."""
        try:
            same = os.stat(self.path).st_ino == self._ino and not os.path.islink(self.path)
        except FileNotFoundError:
            same = False
        if not same:
            if os.path.lexists(self.path):
                os.unlink(self.path)
            shutil.copyfile(self.pristine, self.path)
            os.chmod(self.path, 0o644)
            self._ino = os.stat(self.path).st_ino
            self._dirty = []
            return
        os.chmod(self.path, 0o644)
        with open(self.pristine, "rb") as src, open(self.path, "r+b") as dst:
            dst.truncate(self.size)
            for lo, hi in self._dirty:
                lo, hi = max(0, lo), min(hi, self.size)
                if lo < hi:
                    src.seek(lo)
                    dst.seek(lo)
                    dst.write(src.read(hi - lo))
        self._dirty = []


def sha256(path: str) -> Optional[str]:
    try:
        if not os.path.isfile(path):
            return None
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


# -- running one case ------------------------------------------------------------------------

@dataclass
class Result:
    argv: Tuple[str, ...]
    status: Optional[int]          # None: killed at the time limit
    stderr: str
    seconds: float
    max_rss_bytes: int
    changed: Tuple[str, ...]       # inputs whose sha256 differs after the run
    stdout_bytes: int = 0

    @property
    def lines(self) -> List[str]:
        return [l for l in self.stderr.splitlines() if l.strip()]

    def problems(self, must_fail: bool = True) -> List[str]:
        """What breaks the promise: one line, non-zero exit, time, memory, inputs unchanged."""
        out = []
        if self.status is None:
            out.append(f"still running after {CASE_SECONDS} s (killed)")
        elif self.status < 0:
            out.append(f"killed by signal {-self.status}")
        if "Traceback" in self.stderr or "internal error" in self.stderr:
            out.append("a traceback or internal error")
        if self.status not in (None,) and self.status != 0 and len(self.lines) != 1:
            out.append(f"{len(self.lines)} lines on stderr")
        if must_fail and self.status == 0:
            out.append("exit status 0 for bad input")
        if not must_fail and self.status not in (0, None) and len(self.lines) != 1:
            out.append(f"{len(self.lines)} lines on stderr")
        if self.seconds >= CASE_SECONDS:
            out.append(f"took {self.seconds:.1f} s")
        if self.max_rss_bytes >= CASE_BYTES:
            out.append(f"peak memory {self.max_rss_bytes >> 20} MiB")
        if self.changed:
            out.append(f"input changed: {', '.join(self.changed)}")
        return out

    def describe(self) -> str:
        return (f"argv {list(self.argv)}: status {self.status}, {self.seconds:.1f} s, "
                f"{self.max_rss_bytes >> 20} MiB, stderr {self.stderr[-600:]!r}")


#: Run in the case's own process: the limits, then ``python3 -m kmemdbg``, then the peak
#: resident size of this process (VmHWM: counted from the exec, unlike wait4's
#: ru_maxrss, which also counts the forked copy of the test process) into a side file.
_LIMITED = """
import resource, runpy, sys
limit, report = int(sys.argv.pop(1)), sys.argv.pop(1)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
sys.argv[0] = "kmemdbg"
try:
    runpy.run_module("kmemdbg", run_name="__main__", alter_sys=True)
finally:
    with open("/proc/self/status") as f, open(report, "w") as out:
        out.write(next((l.split()[1] for l in f if l.startswith("VmHWM:")), "0"))
"""


def run_case(argv: Sequence[str], inputs: Sequence[str] = (), cwd: Optional[str] = None,
             stdin_bytes: Optional[bytes] = None) -> Result:
    """Run ``python3 -m kmemdbg ARGV`` with the case limits; inputs are hashed before and after."""
    before = {p: sha256(p) for p in inputs}
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    env.pop("KMEMDBG_TRACEBACK", None)
    out_path = os.path.join(cwd or "/tmp", f".fuzz-stdout-{os.getpid()}")
    err_path = out_path + ".err"
    hwm_path = out_path + ".hwm"
    start = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", _LIMITED, str(CASE_BYTES), hwm_path, *argv], stdout=out,
                                stderr=err, stdin=subprocess.PIPE if stdin_bytes is not None else subprocess.DEVNULL,
                                cwd=cwd, env=env, start_new_session=True)
        if stdin_bytes is not None:
            try:
                proc.stdin.write(stdin_bytes)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        status: Optional[int] = None
        rss = 0
        while True:
            pid, wstatus, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status = os.waitstatus_to_exitcode(wstatus)
                rss = usage.ru_maxrss * 1024
                break
            if time.monotonic() - start > CASE_SECONDS + 2:
                os.killpg(proc.pid, signal.SIGKILL)
                _pid, wstatus, usage = os.wait4(proc.pid, 0)
                rss = usage.ru_maxrss * 1024
                status = None
                break
            time.sleep(0.01)
        proc.returncode = status if status is not None else -9
    seconds = time.monotonic() - start
    with open(err_path, "rb") as f:
        stderr = f.read(1 << 16).decode("utf-8", "replace")
    size = os.path.getsize(out_path)
    os.unlink(out_path)
    os.unlink(err_path)
    try:
        with open(hwm_path) as f:
            rss = int(f.read() or 0) * 1024      # the process's own peak; else wait4's (an upper bound)
        os.unlink(hwm_path)
    except (OSError, ValueError):
        pass
    changed = tuple(p for p in inputs if sha256(p) != before[p])
    return Result(tuple(argv), status, stderr, seconds, rss, changed, size)


# -- where things are in a dump --------------------------------------------------------------

@dataclass
class Phdr:
    index: int
    header_off: int            # file offset of this Elf64_Phdr
    p_type: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int


@dataclass
class Dump:
    """Offsets and values of one pristine dump (ELF core or kdump-compressed)."""

    path: str
    kind: str                  # "elf" or "kdump"
    size: int
    arch: str
    page_size: int
    vmcoreinfo: bytes
    vmcoreinfo_off: int        # file offset of the text
    root_pa: int
    level_bits: Tuple[int, ...]
    table_bytes: Tuple[int, ...]
    kernel_root_slots: Tuple[int, ...]       # root indices of the kernel half
    empty_kernel_slots: Tuple[int, ...]
    tables: Dict[int, Tuple[int, int]] = field(default_factory=dict)   # pa -> (level, file offset)
    phoff: int = 0
    phnum: int = 0
    phdrs: List[Phdr] = field(default_factory=list)
    kdump: Dict[str, int] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<Dump {self.name} ({self.kind})>"

    @property
    def name(self) -> str:
        return os.path.basename(os.path.dirname(self.path)) + "/" + os.path.basename(self.path)

    def offset_of(self, pa: int) -> Optional[int]:
        """File offset of physical ``pa`` (ELF: through PT_LOADs; None when not stored)."""
        for p in self.phdrs:
            if p.p_type == 1 and p.paddr <= pa < p.paddr + p.filesz:
                return p.offset + pa - p.paddr
        return None

    def load_of(self, pa: int) -> Optional[Phdr]:
        return next((p for p in self.phdrs if p.p_type == 1 and p.paddr <= pa < p.paddr + p.memsz), None)


def _elf_headers(f, size: int) -> Tuple[int, int, List[Phdr]]:
    f.seek(0)
    head = f.read(64)
    phoff, = struct.unpack_from("<Q", head, 32)
    phnum, = struct.unpack_from("<H", head, 56)
    f.seek(phoff)
    table = f.read(56 * phnum)
    out = []
    for i in range(phnum):
        t, _fl, off, va, pa, fs, ms, _al = struct.unpack_from("<IIQQQQQQ", table, 56 * i)
        out.append(Phdr(i, phoff + 56 * i, t, off, va, pa, fs, ms))
    return phoff, phnum, out


def _elf_note(f, phdrs: List[Phdr], name: bytes) -> Tuple[int, int]:
    """(file offset, size) of the descriptor of the note ``name``."""
    for p in phdrs:
        if p.p_type != 4:
            continue
        f.seek(p.offset)
        data = f.read(p.filesz)
        pos = 0
        while pos + 12 <= len(data):
            namesz, descsz, _t = struct.unpack_from("<III", data, pos)
            nm = data[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            desc = pos + 12 + ((namesz + 3) & ~3)
            if nm == name:
                return p.offset + desc, descsz
            pos = desc + ((descsz + 3) & ~3)
    raise ValueError(f"no {name!r} note")


KDUMP_FIELDS = {"version": (8, "<i"), "status": (424, "<I"), "block_size": (428, "<i"),
                "sub_hdr_size": (432, "<i"), "bitmap_blocks": (436, "<I"), "max_mapnr": (440, "<I")}
KDUMP_SUB = {"phys_base": (0, "<Q"), "offset_vmcoreinfo": (32, "<Q"), "size_vmcoreinfo": (40, "<Q"),
             "max_mapnr_64": (96, "<Q")}


def describe_dump(path: str) -> Dump:
    """Locate everything the mutations need in the dump at ``path`` (opened read-only)."""
    from kmemdbg.kernel_tables import kernel_tables
    from kmemdbg.memory import TableCache
    from kmemdbg.tables import table_pages
    from kmemdbg.vmcoreinfo import VmcoreInfo

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        magic = f.read(8)
        if magic[:4] == b"\x7fELF":
            from kmemdbg.sources.elfcore import ElfCoreMemory

            mem = ElfCoreMemory(path)
            phoff, phnum, phdrs = _elf_headers(f, size)
            off, n = _elf_note(f, phdrs, b"VMCOREINFO")
            f.seek(off)
            text = f.read(n)
            kind, extra = "elf", {}
        else:
            from kmemdbg.sources.kdump import KdumpMemory

            mem = KdumpMemory(path)
            phoff, phnum, phdrs = 0, 0, []
            bs = mem.block_size
            extra = {"block_size": bs, "bitmap_off": (1 + struct.unpack_from("<i", _pread(f, 432, 4))[0]) * bs,
                     "desc_off": mem._desc_off, "max_mapnr": mem.max_mapnr, "frames": mem.dumped_frames}
            extra["half"] = (extra["desc_off"] - extra["bitmap_off"]) // 2
            off, n = mem._vmcoreinfo
            f.seek(off)
            text = f.read(n)
            kind = "kdump"
    info = VmcoreInfo.parse(text)
    arch = (mem.arch_hint.name if mem.arch_hint is not None else None) or ("arm64" if "NUMBER(VA_BITS)" in info else "x86_64")
    kt = kernel_tables(info, arch)
    fmt = kt.format
    cache = TableCache(mem)
    pages = table_pages(fmt, cache, kt.root_pa)
    root = cache.table(kt.root_pa, fmt.table_size(0))
    nroot = len(root)
    half = range(nroot // 2, nroot) if arch == "x86_64" else range(nroot)
    dump = Dump(path, kind, size, arch, fmt.page_size, text.split(b"\0")[0], off, kt.root_pa,
                tuple(lv.bits for lv in fmt.levels), tuple(fmt.table_size(i) for i in range(len(fmt.levels))),
                tuple(half), tuple(i for i in half if not root[i] & 1), {}, phoff, phnum, phdrs, extra)
    for pa, lvl in pages.items():
        dump.tables[pa] = (lvl, dump.offset_of(pa) if kind == "elf" else -1)
    if kind == "kdump":
        bs = extra["block_size"]
        pfn = kt.root_pa // bs
        dump.kdump["root_pfn"] = pfn
        dump.kdump["root_desc"] = mem._desc_off + 24 * mem._rank(pfn)
    mem.close()
    return dump


def _pread(f, off: int, n: int) -> bytes:
    f.seek(off)
    return f.read(n)


# -- mutations ---------------------------------------------------------------------------------

def u16(v: int) -> bytes:
    return struct.pack("<H", v & 0xFFFF)


def u32(v: int) -> bytes:
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v & (1 << 64) - 1)


ELF_FIELDS = {"e_type": (16, u16), "e_machine": (18, u16), "e_version": (20, u32), "e_phoff": (32, u64),
              "e_phentsize": (54, u16), "e_phnum": (56, u16)}
PHDR_FIELDS = {"p_type": (0, u32), "p_offset": (8, u64), "p_vaddr": (16, u64), "p_paddr": (24, u64),
               "p_filesz": (32, u64), "p_memsz": (40, u64)}


def elf_field(name: str, value: int) -> Patch:
    off, enc = ELF_FIELDS[name]
    return Patch(((off, enc(value)),))


def phdr_field(ph: Phdr, name: str, value: int) -> Patch:
    off, enc = PHDR_FIELDS[name]
    return Patch(((ph.header_off + off, enc(value)),))


def kdump_field(name: str, value: int, dump: Dump) -> Patch:
    if name in KDUMP_FIELDS:
        off, fmt = KDUMP_FIELDS[name]
    else:
        off, fmt = KDUMP_SUB[name]
        off += dump.kdump["block_size"]
    return Patch(((off, struct.pack(fmt, value)),))


def vmcoreinfo_lines(dump: Dump) -> List[Tuple[str, str]]:
    out = []
    for line in dump.vmcoreinfo.decode("ascii").splitlines():
        k, _, v = line.partition("=")
        out.append((k, v))
    return out


def with_vmcoreinfo(dump: Dump, text: bytes) -> Patch:
    """A patch that makes ``text`` the dump's VMCOREINFO: in place when it fits, else
    appended at the end of the file with the note (ELF) or sub-header (kdump) repointed."""
    old = len(dump.vmcoreinfo)
    if dump.kind == "kdump":
        if len(text) <= old:
            return Patch(((dump.vmcoreinfo_off, text + b"\n" * (old - len(text))),))
        at = dump.size + (-dump.size % 8)
        return Patch(((at, text),)) + kdump_field("offset_vmcoreinfo", at, dump) + \
            kdump_field("size_vmcoreinfo", len(text), dump)
    # ELF: the note's descsz is kept; a shorter text is padded with newlines
    if len(text) <= old:
        return Patch(((dump.vmcoreinfo_off, text + b"\n" * (old - len(text))),))
    note_ph = next(p for p in dump.phdrs if p.p_type == 4)
    with open(dump.path, "rb") as f:
        f.seek(note_ph.offset)
        notes = f.read(note_ph.filesz)
    rel = dump.vmcoreinfo_off - note_ph.offset
    start = rel - 12 - ((len(b"VMCOREINFO") + 1 + 3) & ~3)
    descsz = struct.unpack_from("<I", notes, start + 4)[0]
    pad = (len(text) + 3) & ~3
    new = notes[:start] + struct.pack("<I", 11) + struct.pack("<I", len(text)) + notes[start + 8:rel] + \
        text + b"\0" * (pad - len(text)) + notes[rel + ((descsz + 3) & ~3):]
    at = dump.size + (-dump.size % 4096)
    return Patch(((at, new),)) + phdr_field(note_ph, "p_offset", at) + phdr_field(note_ph, "p_filesz", len(new))


def edit_vmcoreinfo(dump: Dump, key: str, value: Optional[str], add: bool = False) -> Patch:
    """Set ``key`` to ``value``, appending the line where the dump has no such key
    (None: remove the line; ``add``: append a second line)."""
    lines = []
    found = False
    for k, v in vmcoreinfo_lines(dump):
        if k == key and not add:
            found = True
            if value is not None:
                lines.append(f"{k}={value}")
        else:
            lines.append(f"{k}={v}")
    if add or (not found and value is not None):
        lines.append(f"{key}={value}")
    text = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    return with_vmcoreinfo(dump, text)


def table_entry(dump: Dump, pa: int) -> int:
    """A valid kernel table entry pointing at physical ``pa``."""
    if dump.arch == "x86_64":
        return pa | 0x63
    return pa | 0x3


def leaf_entry(dump: Dump, pa: int, writable: bool) -> int:
    """A valid last-level kernel leaf mapping physical ``pa``."""
    if dump.arch == "x86_64":
        return pa | 0x61 | (0x2 if writable else 0) | (1 << 63)
    return pa | 0x3 | (1 << 10) | (0 if writable else 1 << 7) | (3 << 53)


def write_entries(dump: Dump, table_pa: int, entries: Dict[int, int]) -> Patch:
    """Patch entries ``{index: raw}`` of the table page at ``table_pa`` (ELF dumps)."""
    off = dump.offset_of(table_pa)
    if off is None:
        raise ValueError(f"table 0x{table_pa:x} is not stored in the file")
    return Patch(tuple((off + 8 * i, u64(raw)) for i, raw in sorted(entries.items())))


def add_pages(dump: Dump, pages: Sequence[bytes]) -> Tuple[Patch, int]:
    """Append ``pages`` as new physical memory (ELF): a copy of the program headers with
    one more PT_LOAD goes to the end of the file.  Returns (patch, first page's pa)."""
    page = dump.page_size
    top = max(p.paddr + p.memsz for p in dump.phdrs if p.p_type == 1)
    base_pa = (top + (1 << 30)) & ~((1 << 30) - 1)
    data_at = dump.size + (-dump.size % page)
    blob = b"".join(p.ljust(page, b"\0") for p in pages)
    with open(dump.path, "rb") as f:
        f.seek(dump.phoff)
        table = f.read(56 * dump.phnum)
    ph_at = data_at + len(blob)
    table += struct.pack("<IIQQQQQQ", 1, 7, data_at, base_pa, base_pa, len(blob), len(blob), 0)
    patch = Patch(((data_at, blob), (ph_at, table))) + elf_field("e_phoff", ph_at) + \
        elf_field("e_phnum", dump.phnum + 1)
    return patch, base_pa


def fan_out(dump: Dump) -> Tuple[Patch, int]:
    """Tables that fan out: every empty kernel root slot -> table A, all of A's entries -> B,
    B's -> C, and C maps 4K pages (alternately writable, so no two neighbours merge).
    Returns (patch, physical address of the first frame C maps)."""
    n = 1 << dump.level_bits[-1]
    levels = len(dump.level_bits)
    frames_pa = 0x1000 * 16
    # pages: the intermediate tables (one per level below the root) and nothing else
    count = levels - 1
    _, base = add_pages(dump, [b""] * count)
    pages = []
    for i in range(count):
        if i == count - 1:
            ents = [leaf_entry(dump, frames_pa + dump.page_size * (j % 4), j % 2 == 0) for j in range(n)]
        else:
            ents = [table_entry(dump, base + dump.page_size * (i + 1))] * (1 << dump.level_bits[i + 1])
        pages.append(b"".join(u64(e) for e in ents))
    patch, base2 = add_pages(dump, pages)
    assert base2 == base
    slots = dump.empty_kernel_slots or dump.kernel_root_slots[:1]
    root = write_entries(dump, dump.root_pa, {s: table_entry(dump, base) for s in slots})
    return patch + root, frames_pa


def small_kdump(elf_path: str, out_path: str, block_size: Optional[int] = None) -> None:
    """Write a kdump-compressed file with the memory and VMCOREINFO of the ELF core at
    ``elf_path`` (the layout of ``kmemdbg.sources.kdump``'s docstring; zlib pages)."""
    with open(elf_path, "rb") as f:
        size = os.path.getsize(elf_path)
        phoff, phnum, phdrs = _elf_headers(f, size)
        off, n = _elf_note(f, phdrs, b"VMCOREINFO")
        info = _pread(f, off, n).split(b"\0")[0]
        machine = struct.unpack_from("<H", _pread(f, 18, 2))[0]
        bs = block_size or 4096
        frames: Dict[int, bytes] = {}
        for p in phdrs:
            if p.p_type != 1:
                continue
            for pa in range(p.paddr - p.paddr % bs, p.paddr + p.memsz, bs):
                if pa in frames:
                    continue
                chunk = bytearray(bs)
                for q in phdrs:
                    if q.p_type != 1:
                        continue
                    lo, hi = max(pa, q.paddr), min(pa + bs, q.paddr + q.filesz)
                    if lo < hi:
                        chunk[lo - pa:hi - pa] = _pread(f, q.offset + lo - q.paddr, hi - lo)
                frames[pa] = bytes(chunk)
    max_mapnr = max(frames) // bs + 1
    half = -(-(-(-max_mapnr // 8)) // bs) * bs
    bitmap = bytearray(half)
    for pa in frames:
        pfn = pa // bs
        bitmap[pfn >> 3] |= 1 << (pfn & 7)
    header = bytearray(bs)
    header[0:8] = b"KDUMP   "
    struct.pack_into("<i", header, 8, 6)
    name = b"x86_64" if machine == 62 else b"aarch64"
    header[12 + 4 * 65:12 + 4 * 65 + len(name)] = name
    struct.pack_into("<IiiIIIIIIi", header, 424, 1, bs, 1, 2 * half // bs, max_mapnr if max_mapnr < 1 << 32
                     else 0, len(frames), 0, len(frames), 0, 1)
    sub = bytearray(bs)
    bitmap_off = 2 * bs
    desc_off = bitmap_off + 2 * half
    data_off = desc_off + 24 * len(frames)
    vi_off = data_off
    data_off += len(info)
    descs = bytearray()
    blobs = []
    for pa in sorted(frames):
        z = zlib.compress(frames[pa])
        if len(z) < bs:
            descs += struct.pack("<qIIQ", data_off, len(z), 1, 0)
            blobs.append(z)
            data_off += len(z)
        else:
            descs += struct.pack("<qIIQ", data_off, bs, 0, 0)
            blobs.append(frames[pa])
            data_off += bs
    struct.pack_into("<QiiQQQQQQQQ", sub, 0, 0, 1, 0, 0, max_mapnr, vi_off, len(info), 0, 0, 0, 0)
    struct.pack_into("<QQQ", sub, 80, 0, max_mapnr, max_mapnr)
    with open(out_path, "wb") as out:
        out.write(header)
        out.write(sub)
        out.write(bitmap)
        out.write(bitmap)
        out.write(descs)
        out.write(info)
        for b in blobs:
            out.write(b)


def zlib_bomb(inflated_bytes: int) -> bytes:
    """A zlib stream that inflates to ``inflated_bytes`` zero bytes (whole MiB), in about
    1/1000 of that: one fully flushed MiB of zeros compresses to the same bytes every time."""
    c = zlib.compressobj(9)
    mib = bytes(1 << 20)
    first = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    unit = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    return first + unit * (inflated_bytes // (1 << 20) - 2) + c.flush()
