"""The fuzz harness: bad input never costs a traceback, a hang, unbounded memory, a silent
empty answer, or the user's dump.

Hypothesis draws mutations of the committed slices, of small kdump-compressed
files made from them, and of the CI recipes' full ELF and kdump dumps where
they are built: ELF headers, program headers, notes, VMCOREINFO values and
removals, kdump headers, bitmaps, descriptors and compressed pages,
page-table pages (loops, fan-out, garbage, the root pointing at itself),
special files, QMP sockets that never answer, ``slice`` output paths,
address arguments and files, command lines.  Every case runs ``kmemdbg`` in
its own process with a 1 GiB address-space limit and must end in under
10 s with exactly one line on stderr and a non-zero exit status, its inputs
unchanged (sha256 before and after).  A few cases are valid input with a
bounded cost (tables that fan out are a legitimate shape for ``slice`` and
``check``; a planted ``OUT.tmp`` must simply not be followed): those must
not fail, and must still stay in the bounds with their inputs unchanged.

Oracle: the promise of README.md ("Errors are one line on stderr ... never
a traceback"; kmemdbg never writes to a dump) and the bounds of issue 14.

Profiles: the default runs in CI in a few minutes; ``KMEMDBG_FUZZ_LONG=1``
runs ten times as many cases with fresh random draws.  The counts and times
are printed at the end of the session.
"""
from __future__ import annotations

import os
import random
import socket
import struct
import threading
import time
import zlib
from typing import Callable, Dict, List, Optional, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzlib as F
from realdumps import FIXTURES, RECIPES, cache_dir

LONG = bool(os.environ.get("KMEMDBG_FUZZ_LONG"))
SCALE = 10 if LONG else 1
CI_RECIPES = ("x86_64-6.12-l4", "arm64-6.12-lpa2")
STATS: Dict[str, List[float]] = {}


def fuzz(examples: int):
    """Hypothesis settings of one family: ``examples`` cases (x10 in the long profile)."""
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=not LONG, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


# -- the dumps and the runner -----------------------------------------------------------------

class Harness:
    """Working copies of the pristine dumps, and the check of every case."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self._copies: Dict[str, F.WorkCopy] = {}
        self.pristine_hashes: Dict[str, Optional[str]] = {}

    def copy(self, dump: F.Dump) -> F.WorkCopy:
        wc = self._copies.get(dump.path)
        if wc is None:
            sub = os.path.join(self.workdir, f"copy{len(self._copies)}")
            os.makedirs(sub, exist_ok=True)
            self.pristine_hashes[dump.path] = F.sha256(dump.path)
            wc = self._copies[dump.path] = F.WorkCopy(dump.path, sub, "dump.core")
        return wc

    def run(self, family: str, argv: Sequence[str], inputs: Sequence[str] = (), must_fail: bool = True,
            what: str = "", cwd: Optional[str] = None) -> F.Result:
        result = F.run_case(list(argv), inputs, cwd=cwd or self.workdir)
        STATS.setdefault(family, []).append(result.seconds)
        STATS.setdefault("rss:" + family, []).append(result.max_rss_bytes / (1 << 20))
        problems = result.problems(must_fail)
        assert not problems, f"{family} {what}: {'; '.join(problems)}; {result.describe()}"
        return result

    def case(self, family: str, dump: F.Dump, patch: F.Patch, command: Sequence[str],
             must_fail: bool = True, what: str = "") -> F.Result:
        """Apply ``patch`` to ``dump``'s working copy, run ``--core COPY COMMAND``, undo."""
        wc = self.copy(dump)
        wc.apply(patch)
        try:
            argv = ["--core", wc.path] + [a.replace("{dir}", os.path.dirname(wc.path)) for a in command]
            return self.run(family, argv, [wc.path], must_fail, f"{dump.name} {what}")
        finally:
            wc.restore()

    def finish(self) -> List[str]:
        changed = [p for p, h in self.pristine_hashes.items() if F.sha256(p) != h]
        return changed


@pytest.fixture(scope="session")
def harness(tmp_path_factory, request):
    h = Harness(str(tmp_path_factory.mktemp("fuzz")))
    yield h
    changed = h.finish()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    total = sum(len(v) for k, v in STATS.items() if not k.startswith("rss:"))
    if reporter is not None and total:
        with capture.global_and_fixture_disabled() if capture else _nothing():
            _report(reporter, total)
    assert not changed, f"pristine dumps changed: {changed}"


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _report(reporter, total: int) -> None:
    times = {k: v for k, v in STATS.items() if not k.startswith("rss:")}
    slowest = max(max(v) for v in times.values())
    biggest = max(max(v) for k, v in STATS.items() if k.startswith("rss:"))
    seconds = sum(sum(v) for v in times.values())
    reporter.write_line(f"fuzz ({'long' if LONG else 'default'} profile): {total} cases in {seconds:.0f} s, "
                        f"slowest {slowest:.1f} s, peak {biggest:.0f} MiB")
    for k in sorted(times):
        reporter.write_line(f"  {k}: {len(times[k])} cases, max {max(times[k]):.1f} s, "
                            f"max {max(STATS['rss:' + k]):.0f} MiB")


def _slices() -> List[F.Dump]:
    out = []
    for r in RECIPES:
        path = os.path.join(FIXTURES, r, "vmcore.slice")
        if os.path.exists(path):
            out.append(F.describe_dump(path))
    return out


@pytest.fixture(scope="session")
def slices() -> List[F.Dump]:
    got = _slices()
    if not got:
        pytest.skip("no committed slices")
    return got


@pytest.fixture(scope="session")
def small_kdumps(tmp_path_factory, slices) -> List[F.Dump]:
    """kdump-compressed files made from two slices (4 KiB blocks on x86-64, QEMU's 64 KiB on arm64)."""
    d = tmp_path_factory.mktemp("kdumps")
    out = []
    for dump in slices:
        recipe = dump.name.split("/")[0]
        if recipe in CI_RECIPES:
            path = str(d / f"{recipe}.kdump")
            F.small_kdump(dump.path, path, 65536 if dump.arch == "arm64" else 4096)
            os.chmod(path, 0o444)
            out.append(F.describe_dump(path))
    return out


@pytest.fixture(scope="session")
def full_dumps() -> List[F.Dump]:
    out = []
    for r in CI_RECIPES:
        for name in ("vmcore.elf", "vmcore.kdump"):
            path = os.path.join(cache_dir(), r, name)
            if os.path.exists(path):
                out.append(F.describe_dump(path))
    if not out:
        pytest.skip("the CI recipes are not built (python3 vmcores/build.py)")
    return out


def elf_of(dumps: List[F.Dump]) -> List[F.Dump]:
    return [d for d in dumps if d.kind == "elf"]


def kdump_of(dumps: List[F.Dump]) -> List[F.Dump]:
    got = [d for d in dumps if d.kind == "kdump"]
    if not got:
        pytest.skip("no kdump-compressed dump")
    return got


# Commands a broken dump must refuse (each names something it needs).
OPEN_COMMANDS = (["layout"], ["vtop", "init_mm"], ["--json", "classify", "init_mm"], ["ptdump"],
                 ["audit", "--rule", "wx"], ["check", "init_mm"], ["ptov", "0x1000"])


# -- mutation families ----------------------------------------------------------------------

GARBAGE_VALUES = st.one_of(
    st.sampled_from(["zz", "", "0x", "-", "0x-1", "1_0", "1 2", "١٠", "0x1g", "--1", "+5", "1e3",
                     "0x10000000000000000", "18446744073709551616", "-9223372036854775809", "ff" * 12,
                     "nan", "\t", "0X", "0x 1"]),
    st.text(alphabet="0123456789abcdefxXg-+_ ", min_size=1, max_size=24))


def _bad_for(key: str, value: str) -> bool:
    """Whether ``value`` is not valid syntax for ``key`` (so the case must be refused)."""
    from kmemdbg.errors import KmemdbgError
    from kmemdbg.vmcoreinfo import VmcoreInfo

    try:
        VmcoreInfo.parse(f"{key}={value}\n")
    except KmemdbgError:
        return True
    return False


def elf_header_patch(data, dump: F.Dump) -> F.Patch:
    field = data.draw(st.sampled_from(["magic", "class", "data", "ei_version", "e_type", "e_machine",
                                       "e_version", "e_phentsize", "e_phoff", "e_phnum"]), label="field")
    if field == "magic":
        magic = data.draw(st.binary(min_size=4, max_size=4).filter(lambda b: b != b"\x7fELF"))
        return F.Patch(((0, magic),))
    if field in ("class", "data", "ei_version"):
        off = {"class": 4, "data": 5, "ei_version": 6}[field]
        good = {4: 2, 5: 1, 6: 1}[off]
        return F.Patch(((off, bytes([data.draw(st.integers(0, 255).filter(lambda v: v != good))])),))
    if field == "e_type":
        return F.elf_field("e_type", data.draw(st.integers(0, 0xFFFF).filter(lambda v: v != 4)))
    if field == "e_machine":
        return F.elf_field("e_machine", data.draw(st.integers(0, 0xFFFF).filter(lambda v: v not in (62, 183))))
    if field == "e_version":
        return F.elf_field("e_version", data.draw(st.integers(0, 0xFFFFFFFF).filter(lambda v: v != 1)))
    if field == "e_phentsize":
        return F.elf_field("e_phentsize", data.draw(st.integers(0, 0xFFFF).filter(lambda v: v != 56)))
    if field == "e_phoff":
        value = data.draw(st.one_of(st.integers(0, 63), st.integers(dump.size - 55, 1 << 64 - 1),
                                    st.integers(64, 4096).filter(lambda v: v % 8)))
        return F.elf_field("e_phoff", value)
    # e_phnum: none, or more than the file holds
    room = (dump.size - dump.phoff) // 56
    choices = st.one_of(st.just(0), st.integers(room + 1, 0xFFFE)) if room + 1 <= 0xFFFE else st.just(0)
    return F.elf_field("e_phnum", data.draw(choices))


def phdr_patch(data, dump: F.Dump) -> F.Patch:
    loads = [p for p in dump.phdrs if p.p_type == 1 and p.filesz]
    root = dump.load_of(dump.root_pa)
    note = next(p for p in dump.phdrs if p.p_type == 4)
    kind = data.draw(st.sampled_from(["filesz>memsz", "offset-past-eof", "paddr-past-52-bits",
                                      "note-past-eof", "root-load-moved", "root-load-type"]), label="kind")
    ph = data.draw(st.sampled_from(loads))
    if kind == "filesz>memsz":
        return F.phdr_field(ph, "p_filesz", ph.memsz + data.draw(st.integers(1, 1 << 40)))
    if kind == "offset-past-eof":
        return F.phdr_field(ph, "p_offset", data.draw(st.integers(dump.size, 1 << 61)))
    if kind == "paddr-past-52-bits":
        return F.phdr_field(ph, "p_paddr", data.draw(st.integers((1 << 52) - ph.memsz + 1, (1 << 64) - 1)))
    if kind == "note-past-eof":
        if data.draw(st.booleans()):
            return F.phdr_field(note, "p_offset", data.draw(st.integers(dump.size, 1 << 62)))
        return F.phdr_field(note, "p_filesz", data.draw(st.integers(dump.size, 1 << 62)))
    if kind == "root-load-moved":
        shift = data.draw(st.integers(1, 1 << 10)) << 32
        return F.phdr_field(root, "p_paddr", root.paddr + shift)
    return F.phdr_field(root, "p_type", data.draw(st.integers(0, 0xFFFFFFFF).filter(lambda v: v not in (1, 4))))


def note_patch(data, dump: F.Dump) -> F.Patch:
    name_at = dump.vmcoreinfo_off - ((len(b"VMCOREINFO") + 1 + 3) & ~3)
    header = name_at - 12
    kind = data.draw(st.sampled_from(["name", "namesz", "descsz", "empty"]), label="kind")
    if kind == "name":
        name = data.draw(st.binary(min_size=10, max_size=10).filter(lambda b: b != b"VMCOREINFO"))
        return F.Patch(((name_at, name),))
    if kind == "namesz":
        return F.Patch(((header, F.u32(data.draw(st.integers(0, 0xFFFFFFFF).filter(lambda v: v != 11)))),))
    if kind == "descsz":
        return F.Patch(((header + 4, F.u32(data.draw(st.integers(1 << 20, 0xFFFFFFFF)))),))
    return F.with_vmcoreinfo(dump, b"\n")


def vmcoreinfo_syntax_patch(data, dump: F.Dump) -> F.Patch:
    keys = [k for k, _ in F.vmcoreinfo_lines(dump)
            if k.split("(")[0] in ("SYMBOL", "NUMBER", "SIZE", "OFFSET", "LENGTH", "PAGESIZE", "KERNELOFFSET")]
    key = data.draw(st.sampled_from(keys), label="key")
    value = data.draw(GARBAGE_VALUES.filter(lambda v: _bad_for(key, v)), label="value")
    return F.edit_vmcoreinfo(dump, key, value)


def _values_for(dump: F.Dump):
    """(key, value) pairs the architecture does not allow, or that do not match the tables."""
    info = dict(F.vmcoreinfo_lines(dump))
    if dump.arch == "x86_64":
        l5 = info.get("NUMBER(pgtable_l5_enabled)", "0")
        return st.one_of(
            st.tuples(st.just("NUMBER(pgtable_l5_enabled)"),
                      st.sampled_from(["0" if l5 == "1" else "1", "2", "-1", "7"])),
            st.tuples(st.just("NUMBER(sme_mask)"), st.sampled_from(["-1", "3", "0x10", str((1 << 52) + (1 << 53))])),
            st.tuples(st.just("NUMBER(phys_base)"),
                      st.integers(-(1 << 60), 1 << 60).filter(lambda v: v % 4096 or abs(v) >= 1 << 52).map(str)),
            st.tuples(st.just("NUMBER(phys_base)"),
                      st.integers(1, 1000).map(lambda k: str(int(info["NUMBER(phys_base)"]) + (k << 21)))),
            st.tuples(st.just("NUMBER(MAX_PHYSMEM_BITS)"), st.sampled_from(["0", "12", "64", "99"])),
            st.tuples(st.just("NUMBER(KERNEL_IMAGE_SIZE)"), st.sampled_from(["0", "4097", str(1 << 40)])),
            st.tuples(st.just("PAGESIZE"), st.sampled_from(["0", "8192", "16384", "65536", "4095"])),
            st.tuples(st.just("NUMBER(VMALLOC_START)"), st.integers(0, (1 << 47) - 1).map(hex)),
            st.tuples(st.just("SYMBOL(swapper_pg_dir)"),
                      st.integers(1, 4096).map(lambda k: f"{int(info['SYMBOL(swapper_pg_dir)'], 16) + 4096 * k:x}")),
            st.tuples(st.sampled_from([k for k in info if k.startswith("SYMBOL(")]),
                      st.integers(0, (1 << 47) - 1).map(lambda v: f"{v:x}")))
    t1sz = info.get("NUMBER(TCR_EL1_T1SZ)")
    va_bits = int(info["NUMBER(VA_BITS)"])
    return st.one_of(
        st.tuples(st.just("NUMBER(VA_BITS)"), st.sampled_from(["0", "-1", "99", "64", "40", "53", "12"])),
        # another VA size the architecture allows, but smaller than TCR_EL1_T1SZ's
        st.tuples(st.just("NUMBER(VA_BITS)"),
                  st.sampled_from([v for v in ("36", "39", "42", "47", "48") if int(v) != va_bits
                                   and t1sz is not None and int(v) < 64 - int(t1sz, 16)] or ["99"])),
        st.tuples(st.just("PAGESIZE"), st.sampled_from(["0", "8192", "4095", "131072"])),
        st.tuples(st.just("NUMBER(kimage_voffset)"),
                  st.integers(1, 1 << 20).map(lambda k: hex(int(info["NUMBER(kimage_voffset)"], 16) + 4096 * k))),
        st.tuples(st.just("NUMBER(kimage_voffset)"), st.integers(0, (1 << 63) - 1).map(hex)),
        st.tuples(st.just("NUMBER(PHYS_OFFSET)"), st.sampled_from(["0x123", hex(1 << 60), "0x" + "f" * 20])),
        st.tuples(st.just("NUMBER(TCR_EL1_T1SZ)"), st.sampled_from(["0x1", "0x40", "0x8", "0x30"])),
        st.tuples(st.just("SIZE(page)"), st.sampled_from(["0", "8", "4096", "100000"])),
        st.tuples(st.sampled_from([k for k in info if k.startswith("SYMBOL(")]),
                  st.integers(0, (1 << 63) - 1).map(lambda v: f"{v:x}")))


def vmcoreinfo_value_patch(data, dump: F.Dump) -> F.Patch:
    key, value = data.draw(_values_for(dump), label="key=value")
    return F.edit_vmcoreinfo(dump, key, value)


def vmcoreinfo_removal_patch(data, dump: F.Dump) -> F.Patch:
    if dump.arch == "x86_64":
        gone = data.draw(st.sampled_from([("NUMBER(phys_base)",), ("SYMBOL(swapper_pg_dir)", "SYMBOL(init_top_pgt)"),
                                          ("*",)]), label="removed")
    else:
        gone = data.draw(st.sampled_from([("NUMBER(VA_BITS)",), ("NUMBER(kimage_voffset)",), ("PAGESIZE",),
                                          ("SYMBOL(swapper_pg_dir)",), ("*",)]), label="removed")
    lines = [f"{k}={v}" for k, v in F.vmcoreinfo_lines(dump) if k not in gone and gone != ("*",)]
    return F.with_vmcoreinfo(dump, ("\n".join(lines) + "\n").encode())


def vmcoreinfo_text_patch(data, dump: F.Dump) -> F.Patch:
    lines = [f"{k}={v}" for k, v in F.vmcoreinfo_lines(dump)]
    kind = data.draw(st.sampled_from(["non-ascii", "no-equals", "duplicate", "nul-inside"]), label="kind")
    i = data.draw(st.integers(0, len(lines) - 1), label="line")
    if kind == "non-ascii":
        pos = data.draw(st.integers(0, len(lines[i])))
        text = "\n".join(lines).encode()
        at = sum(len(l) + 1 for l in lines[:i]) + pos
        byte = bytes([data.draw(st.integers(0x80, 0xFF))])
        return F.with_vmcoreinfo(dump, text[:at] + byte + text[at:] + b"\n")
    if kind == "no-equals":
        lines.insert(i, data.draw(st.text(alphabet="ABCDEFGHIJ()_ 0123", min_size=1, max_size=20)
                                  .filter(lambda t: t.strip())))
    elif kind == "duplicate":
        k, _, v = lines[i].partition("=")
        lines.append(f"{k}={v}")
    else:
        lines[i] = lines[i] + "\x01"
    return F.with_vmcoreinfo(dump, ("\n".join(lines) + "\n").encode())


def table_patch(data, dump: F.Dump):
    """(patch, commands that must fail, commands that must only stay bounded)."""
    kind = data.draw(st.sampled_from(["root-slot-loop", "table-loop", "root-self", "garbage", "zero-root",
                                      "fan-out"]), label="kind")
    upper = [pa for pa, (lvl, off) in dump.tables.items()
             if 0 < lvl < len(dump.level_bits) - 1 and off is not None]
    if kind == "root-slot-loop" and dump.empty_kernel_slots:
        slot = data.draw(st.sampled_from(dump.empty_kernel_slots))
        return F.write_entries(dump, dump.root_pa, {slot: F.table_entry(dump, dump.root_pa)}), \
            [["ptdump"], ["audit", "--rule", "wx"], ["--json", "ptdump"]], []
    if kind in ("table-loop", "root-slot-loop") and upper:
        pa = data.draw(st.sampled_from(sorted(upper)))
        idx = data.draw(st.integers(0, (1 << dump.level_bits[dump.tables[pa][0]]) - 1))
        target = data.draw(st.sampled_from([dump.root_pa, pa]))
        return F.write_entries(dump, pa, {idx: F.table_entry(dump, target)}), \
            [["ptdump"], ["audit", "--rule", "wx"], ["ptov", "0x1000"]], [["check", "init_mm"]]
    if kind == "root-self":
        return F.write_entries(dump, dump.root_pa, {s: F.table_entry(dump, dump.root_pa)
                                                    for s in dump.kernel_root_slots}), [c for c in OPEN_COMMANDS], []
    if kind == "garbage" and upper:
        # random entries, one of them surely a table outside the dump (an all-zero page
        # would be a valid empty table)
        pa = data.draw(st.sampled_from(sorted(upper)))
        noise = bytearray(random.Random(data.draw(st.integers(0, 1 << 32), label="seed")).randbytes(dump.page_size))
        idx = data.draw(st.integers(0, (1 << dump.level_bits[dump.tables[pa][0]]) - 1), label="index")
        outside = data.draw(st.integers(1 << 44, (1 << 48) - 1), label="outside") & ~0xFFF
        noise[8 * idx:8 * idx + 8] = F.u64(F.table_entry(dump, outside))
        return F.Patch(((dump.offset_of(pa), bytes(noise)),)), [["ptdump"], ["audit", "--rule", "wx"]], \
            [["check", "init_mm"], ["vtop", "init_mm"]]
    if kind == "zero-root":
        return F.Patch(((dump.offset_of(dump.root_pa), bytes(dump.table_bytes[0])),)), list(OPEN_COMMANDS), []
    patch, frame = F.fan_out(dump)
    return patch, [["ptdump"], ["audit"], ["ptov", hex(frame)], ["--json", "ptdump"]], \
        [["check", "init_mm"], ["slice", "{dir}/fanout.slice"]]


def kdump_header_patch(data, dump: F.Dump) -> F.Patch:
    bs = dump.kdump["block_size"]
    field = data.draw(st.sampled_from(["signature", "version", "block_size", "sub_hdr_size", "bitmap_blocks",
                                       "max_mapnr", "vmcoreinfo"]), label="field")
    if field == "signature":
        sig = data.draw(st.binary(min_size=8, max_size=8).filter(lambda b: b not in (b"KDUMP   ", b"DISKDUMP")))
        return F.Patch(((0, sig),))
    if field == "version":
        return F.kdump_field("version", data.draw(st.one_of(st.integers(-(1 << 31), 0), st.integers(65, (1 << 31) - 1))), dump)
    if field == "block_size":
        past_end = [1 << k for k in range(12, 21) if 1 << k != bs and (1 << k) > dump.size // 2]
        value = data.draw(st.one_of(
            st.integers(-(1 << 31), 4095),
            st.integers(4097, (1 << 31) - 1).filter(lambda v: v & (v - 1) or v > 1 << 20),
            *([st.sampled_from(past_end)] if past_end else [])))
        return F.kdump_field("block_size", value, dump)
    if field == "sub_hdr_size":
        return F.kdump_field("sub_hdr_size", data.draw(st.one_of(st.integers(-(1 << 31), 0),
                                                                   st.integers(dump.size // bs + 1, (1 << 31) - 1))), dump)
    if field == "bitmap_blocks":
        good = 2 * dump.kdump["half"] // bs
        value = data.draw(st.integers(0, 0xFFFFFFFF).filter(
            lambda v: not -(-dump.kdump["max_mapnr"] // 8) <= v * bs // 2 <= -(-dump.kdump["max_mapnr"] // 8) + bs))
        return F.kdump_field("bitmap_blocks", value, dump)
    if field == "max_mapnr":
        value = data.draw(st.one_of(st.just(0), st.integers(dump.kdump["half"] * 8 + 1, (1 << 32) - 1)))
        return F.kdump_field("max_mapnr", value, dump) + F.kdump_field("max_mapnr_64", value, dump)
    which = data.draw(st.booleans())
    if which:
        return F.kdump_field("offset_vmcoreinfo", data.draw(st.integers(dump.size, (1 << 63) - 1)), dump)
    return F.kdump_field("size_vmcoreinfo", data.draw(st.integers(1 << 16 + 1, (1 << 63) - 1)), dump)


def same_upper_half(path: str, root, other) -> bool:
    """Whether the frame of descriptor ``other`` holds the root table's upper half, kernel
    entries and all: a process's top-level table does, and read as the root it is not bad
    input.  ``root``/``other`` are (file offset, size, flags) of zlib-or-raw pages."""
    pages = []
    with open(path, "rb") as f:
        for off, size, flags in (root, other):
            f.seek(off)
            raw = f.read(size)
            try:
                pages.append(zlib.decompress(raw) if flags & 1 else raw)
            except zlib.error:
                return False
    half = len(pages[0]) // 2
    return pages[0][half:] == pages[1][half:]


def kdump_body_patch(data, dump: F.Dump) -> F.Patch:
    bs = dump.kdump["block_size"]
    root_pfn, desc = dump.kdump["root_pfn"], dump.kdump["root_desc"]
    kind = data.draw(st.sampled_from(["cut", "root-bit-cleared", "bit-below-root", "desc-size", "desc-offset",
                                      "desc-flags", "desc-elsewhere", "page-garbage", "page-bomb"]), label="kind")
    if kind == "cut":
        return F.Patch((), data.draw(st.integers(1, dump.size - 1), label="size"))
    bitmap2 = dump.kdump["bitmap_off"] + dump.kdump["half"]
    if kind == "root-bit-cleared":
        with open(dump.path, "rb") as f:
            f.seek(bitmap2 + root_pfn // 8)
            byte = f.read(1)[0]
        return F.Patch(((bitmap2 + root_pfn // 8, bytes([byte & ~(1 << root_pfn % 8)])),))
    if kind == "bit-below-root":
        pfn = data.draw(st.integers(0, root_pfn - 1))
        with open(dump.path, "rb") as f:
            f.seek(bitmap2 + pfn // 8)
            byte = f.read(1)[0]
        return F.Patch(((bitmap2 + pfn // 8, bytes([byte ^ (1 << pfn % 8)])),))
    with open(dump.path, "rb") as f:
        f.seek(desc)
        off, size, flags, pflags = struct.unpack("<qIIQ", f.read(24))
    if kind == "desc-size":
        value = data.draw(st.one_of(st.just(0), st.integers(bs + 1, 0xFFFFFFFF)))
        return F.Patch(((desc + 8, F.u32(value)),))
    if kind == "desc-offset":
        value = data.draw(st.one_of(st.integers(-(1 << 63), -1), st.integers(dump.size - size + 1, (1 << 63) - 1)))
        return F.Patch(((desc, struct.pack("<q", value)),))
    if kind == "desc-flags":
        return F.Patch(((desc + 12, F.u32(data.draw(st.sampled_from([2, 4, 0x20, 6, 0x24])))),))
    if kind == "desc-elsewhere":
        other = data.draw(st.integers(0, dump.kdump["frames"] - 1), label="other")
        with open(dump.path, "rb") as f:
            f.seek(dump.kdump["desc_off"] + 24 * other)
            entry = f.read(24)
        o_off, o_size, o_flags, _ = struct.unpack("<qIIQ", entry)
        if (o_off, o_size) == (off, size) or not 0 < o_size <= bs or \
                same_upper_half(dump.path, (off, size, flags), (o_off, o_size, o_flags)):
            return F.Patch(((desc + 8, F.u32(0)),))
        return F.Patch(((desc, entry),))
    if kind == "page-garbage":
        if not flags & 1:
            return F.Patch(((desc + 12, F.u32(1)), (off, data.draw(st.binary(min_size=16, max_size=64)))))
        noise = data.draw(st.binary(min_size=size, max_size=size).filter(lambda b: b[0] != 0x78))
        return F.Patch(((off, noise),))
    bomb = F.zlib_bomb(max(2, (bs * 700) >> 20) << 20)
    at = dump.size + (-dump.size % 8)
    return F.Patch(((at, bomb), (desc, struct.pack("<qIIQ", at, len(bomb), 1, pflags))))


# -- the families as tests --------------------------------------------------------------------

@fuzz(10)
@given(data=st.data())
def test_elf_headers(harness, slices, data):
    dump = data.draw(st.sampled_from(slices), label="dump")
    patch = elf_header_patch(data, dump)
    harness.case("elf-header", dump, patch, data.draw(st.sampled_from(OPEN_COMMANDS)))


@fuzz(10)
@given(data=st.data())
def test_program_headers(harness, slices, data):
    dump = data.draw(st.sampled_from(slices), label="dump")
    harness.case("program-headers", dump, phdr_patch(data, dump), data.draw(st.sampled_from(OPEN_COMMANDS)))


@fuzz(6)
@given(data=st.data())
def test_notes(harness, slices, data):
    dump = data.draw(st.sampled_from(slices), label="dump")
    harness.case("notes", dump, note_patch(data, dump), data.draw(st.sampled_from(OPEN_COMMANDS)))


@fuzz(16)
@given(data=st.data())
def test_vmcoreinfo_values(harness, slices, small_kdumps, data):
    dump = data.draw(st.sampled_from(slices + small_kdumps), label="dump")
    make = data.draw(st.sampled_from([vmcoreinfo_syntax_patch, vmcoreinfo_value_patch, vmcoreinfo_removal_patch,
                                      vmcoreinfo_text_patch]), label="family")
    harness.case("vmcoreinfo", dump, make(data, dump), data.draw(st.sampled_from(OPEN_COMMANDS)))


@fuzz(14)
@given(data=st.data())
def test_page_tables(harness, slices, data):
    dump = data.draw(st.sampled_from(slices), label="dump")
    patch, failing, bounded = table_patch(data, dump)
    command = data.draw(st.sampled_from(failing + bounded), label="command")
    harness.case("page-tables", dump, patch, command, must_fail=command in failing)


@fuzz(10)
@given(data=st.data())
def test_kdump_headers(harness, small_kdumps, data):
    dump = data.draw(st.sampled_from(small_kdumps), label="dump")
    harness.case("kdump-header", dump, kdump_header_patch(data, dump), data.draw(st.sampled_from(OPEN_COMMANDS)))


@fuzz(14)
@given(data=st.data())
def test_kdump_bitmaps_descriptors_and_pages(harness, small_kdumps, data):
    dump = data.draw(st.sampled_from(small_kdumps), label="dump")
    harness.case("kdump-body", dump, kdump_body_patch(data, dump), data.draw(st.sampled_from(OPEN_COMMANDS)))


@fuzz(8)
@given(data=st.data())
def test_full_dumps(harness, full_dumps, data):
    dump = data.draw(st.sampled_from(full_dumps), label="dump")
    if dump.kind == "elf":
        make = data.draw(st.sampled_from([elf_header_patch, phdr_patch, vmcoreinfo_syntax_patch,
                                          vmcoreinfo_value_patch, "tables"]), label="family")
    else:
        make = data.draw(st.sampled_from([kdump_header_patch, kdump_body_patch, vmcoreinfo_syntax_patch,
                                          vmcoreinfo_removal_patch]), label="family")
    if make == "tables":
        patch, failing, bounded = table_patch(data, dump)
        command = data.draw(st.sampled_from(failing), label="command")
    else:
        patch, command = make(data, dump), data.draw(st.sampled_from(OPEN_COMMANDS[:3]), label="command")
    harness.case("full-dumps", dump, patch, command)


# special files ---------------------------------------------------------------------------

def _special(kind: str, d: str) -> str:
    path = os.path.join(d, f"special-{kind}")
    if os.path.lexists(path):
        return path
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        os.mkdir(path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()
    elif kind == "symlink-to-fifo":
        os.symlink(_special("fifo", d), path)
    elif kind == "empty":
        open(path, "wb").close()
    else:
        return {"null": "/dev/null", "zero": "/dev/zero", "tty": "/dev/tty"}[kind]
    return path


@fuzz(8)
@given(data=st.data())
def test_special_files(harness, slices, data):
    kind = data.draw(st.sampled_from(["fifo", "directory", "socket", "symlink-to-fifo", "null", "zero",
                                      "empty"]), label="kind")
    path = _special(kind, harness.workdir)
    where = data.draw(st.sampled_from(["--core", "--vmlinux", "--addresses"]), label="as")
    core = slices[0].path
    if where == "--core":
        argv = ["--core", path, data.draw(st.sampled_from(["layout", "ptdump"]))]
    elif where == "--vmlinux":
        if kind == "empty":
            return              # a regular file: drgn's refusal of it is a note, not an error
        argv = ["--core", core, "--vmlinux", path, "layout"]
    else:
        if kind in ("fifo", "symlink-to-fifo", "empty"):
            return              # a pipe or an empty list of addresses is valid input
        argv = ["--core", core, "audit", "--rule", "addresses", "--addresses", path]
    harness.run("special-files", argv, [core], what=f"{kind} as {where}")


# QMP sockets -------------------------------------------------------------------------------

class _Server(threading.Thread):
    """A unix socket server on loopback that accepts and then behaves as ``mode`` says."""

    def __init__(self, path: str, mode: str) -> None:
        super().__init__(daemon=True)
        self.path, self.mode = path, mode
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(4)
        self.conns: List[socket.socket] = []
        self.stop = False

    def run(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            try:
                if self.mode == "garbage":
                    conn.sendall(b"\x00\xffHELLO not qmp\n")
                elif self.mode == "greet-then-silence":
                    conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
                elif self.mode == "endless-line":
                    conn.sendall(b"{" * (1 << 17))
                elif self.mode == "close":
                    conn.close()
            except OSError:
                pass

    def close(self) -> None:
        self.stop = True
        for c in self.conns:
            c.close()
        self.sock.close()


@fuzz(7)
@given(mode=st.sampled_from(["silent", "garbage", "greet-then-silence", "endless-line", "close", "no-listener",
                             "regular-file"]))
def test_qmp_sockets(harness, mode):
    path = os.path.join(harness.workdir, f"qmp-{mode}-{time.monotonic_ns()}.sock")
    server = None
    if mode == "no-listener":
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()
    elif mode == "regular-file":
        open(path, "w").close()
    else:
        server = _Server(path, mode)
        server.start()
    try:
        harness.run("qmp", ["--qmp", path, "vtop", "0"], what=mode)
    finally:
        if server is not None:
            server.close()


# slice output paths ------------------------------------------------------------------------

@fuzz(11)
@given(data=st.data())
def test_slice_output_paths(harness, slices, data):
    dump = slices[0]
    wc = harness.copy(dump)
    d = os.path.dirname(wc.path)
    base = os.path.basename(wc.path)
    kind = data.draw(st.sampled_from(["self", "dotted", "symlink", "hardlink", "empty", "directory", "no-dir",
                                      "read-only", "fifo", "device", "planted-tmp"]), label="kind")
    extra: List[str] = []
    must_fail = True
    cleanup: List[str] = []
    if kind == "self":
        out = wc.path
    elif kind == "dotted":
        out = os.path.join(d, "..", os.path.basename(d), ".", base)
    elif kind in ("symlink", "hardlink"):
        out = os.path.join(d, f"out-{kind}")
        (os.symlink if kind == "symlink" else os.link)(wc.path, out)
        cleanup.append(out)
    elif kind == "empty":
        out = ""
    elif kind == "directory":
        out = d + os.sep
    elif kind == "no-dir":
        out = os.path.join(d, "no", "such", "dir", "out.slice")
    elif kind == "read-only":
        out = os.path.join(d, "read-only.slice")
        with open(out, "wb") as f:
            f.write(b"keep me")
        os.chmod(out, 0o444)
        extra.append(out)
        cleanup.append(out)
    elif kind == "fifo":
        out = _special("fifo", harness.workdir)
    elif kind == "device":
        out = "/dev/null"
    else:
        # OUT.tmp planted as a symlink to the input: the slice must succeed without following it
        out = os.path.join(d, "planted.slice")
        os.symlink(wc.path, out + ".tmp")
        cleanup += [out + ".tmp", out]
        must_fail = False
    json_flag = ["--json"] if data.draw(st.booleans(), label="json") else []
    try:
        harness.run("slice-output", ["--core", wc.path] + json_flag + ["slice", out], [wc.path] + extra,
                    must_fail=must_fail, what=kind, cwd=d)
        leftovers = [n for n in os.listdir(d) if n.endswith(".tmp") and not n.startswith("planted")]
        assert not leftovers, f"temporary files left behind: {leftovers}"
    finally:
        for p in cleanup:
            if os.path.lexists(p):
                os.chmod(p, 0o644) if not os.path.islink(p) else None
                os.unlink(p)
        wc.restore()


# addresses and command lines ---------------------------------------------------------------

BAD_ADDRESSES = st.one_of(
    st.sampled_from(["init_mm+", "init_mm++1", "0x 1000", "١٠", "1_0", "+0x10", "0x", "", "-1", "0x1ffffffffffffffff",
                     "init_mm+0x", "init_mm+zz", "no_such_symbol", " ", "0x10 0x20", "ｆｆ", "init_mm-1", "0o17"]),
    st.text(min_size=1, max_size=30)).filter(lambda t: not _valid_address(t))


def _valid_address(text: str) -> bool:
    import re

    t = text.strip()
    return bool(re.fullmatch(r"(0[xX])?[0-9a-fA-F]{1,16}", t, re.ASCII)) or t == "init_mm" or \
        bool(re.fullmatch(r"init_mm\+(0[xX])?[0-9a-fA-F]+", t, re.ASCII))


@fuzz(10)
@given(data=st.data())
def test_addresses(harness, slices, data):
    core = slices[0].path
    if data.draw(st.booleans(), label="as a file"):
        lines = data.draw(st.lists(st.one_of(BAD_ADDRESSES.filter(lambda t: t.strip() and not t.strip().startswith("#")
                                                                 and "\n" not in t and "\r" not in t),
                                             st.binary(min_size=1, max_size=20).map(
                                                 lambda b: b.replace(b"\n", b"x").replace(b"\r", b"x")
                                                 .decode("latin-1"))),
                                   min_size=1, max_size=400), label="lines")
        path = os.path.join(harness.workdir, "addresses.txt")
        body = b"\n".join(l.encode("latin-1", "replace") if all(ord(c) < 256 for c in l) else l.encode()
                          for l in lines)
        bad = [l for l in body.split(b"\n") if _bad_line(l)]
        if not bad:
            return
        with open(path, "wb") as f:
            f.write(body)
        harness.run("addresses", ["--core", core, "audit", "--rule", "addresses", "--addresses", path], [core, path])
        return
    text = data.draw(BAD_ADDRESSES, label="address")
    if "\x00" in text:
        return                  # an argv cannot hold a NUL byte
    command = data.draw(st.sampled_from(["vtop", "classify", "check", "ptov"]))
    harness.run("addresses", ["--core", core, command, text], [core])


def _bad_line(line: bytes) -> bool:
    from kmemdbg.audit.addresses import parse_line
    from kmemdbg.errors import AddressError

    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return True
    try:
        parse_line(text)
    except AddressError:
        return True
    return False


@fuzz(10)
@given(argv=st.one_of(
    st.lists(st.sampled_from(["--core", "--kcore", "--qmp", "--json", "--size", "x", "vtop", "check", "audit",
                              "--rule", "--fail-on", "ptdump", "--start", "--bogus", "-q", "slice", "--", "layout",
                              "--pid", "-1", "--mm", "--help=x", "demo2"]), min_size=0, max_size=6),
    st.lists(st.text(min_size=1, max_size=12).filter(lambda t: "\x00" not in t), min_size=1, max_size=4)))
def test_command_lines(harness, argv):
    from kmemdbg.cli import build_parser

    # only command lines argparse refuses: the promise is one usage line and status 2
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(argv)
            parsed = True
        except SystemExit as exc:
            parsed = exc.code == 0
    if parsed or not argv:
        return
    result = harness.run("command-lines", argv, [])
    assert result.status == 2 and result.lines[0].startswith("kmemdbg: usage: "), result.describe()
