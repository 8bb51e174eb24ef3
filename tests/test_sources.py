"""The memory protocol's declared capabilities, the dump-kind registry and the symbol protocol.

Oracle: the ELF program headers of a committed fixture slice, read here with
``struct`` straight from the file (not through kmemdbg's reader), and the
kernel's own VMCOREINFO note text.
"""
from __future__ import annotations

import os
import struct

import pytest

from kmemdbg.api import kernel_from
from kmemdbg.arch import arch_named
from kmemdbg.errors import SourceError
from kmemdbg.kallsyms import KallsymsSymbols
from kmemdbg.memory import BytesMemory, MemorySource, TableCache, declared
from kmemdbg.session import open_core
from kmemdbg.sources import DUMP_KINDS, dump_kind, open_dump, open_source
from kmemdbg.sources.elfcore import ElfCoreMemory
from kmemdbg.symbols import SymbolTable, Symbols

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLICES = {name: os.path.join(ROOT, "vmcores", "fixtures", name, "vmcore.slice")
          for name in ("x86_64-6.12-l4", "arm64-6.12-lpa2")}


def _pt_loads(path):
    """(p_paddr, p_memsz) of every PT_LOAD, parsed from the file with struct."""
    with open(path, "rb") as f:
        head = f.read(64)
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    out = []
    for i in range(phnum):
        p_type, _fl, _off, _va, pa, _fs, memsz, _al = struct.unpack_from("<IIQQQQQQ", table, i * phentsize)
        if p_type == 1 and memsz:
            out.append((pa, pa + memsz))
    return sorted(out), struct.unpack_from("<H", head, 18)[0]


@pytest.mark.parametrize("name", sorted(SLICES))
def test_an_elf_slice_declares_its_ram_notes_and_arch(name):
    path = SLICES[name]
    mem = open_dump(path)
    assert isinstance(mem, ElfCoreMemory) and dump_kind(path).name == "elf"
    ram, e_machine = _pt_loads(path)
    assert mem.ram_ranges() == ram
    assert mem.arch_hint is arch_named(name.split("-")[0]) and mem.arch_hint.elf_machine == e_machine
    assert not mem.live and mem.generation == 0 and mem.missing_bytes == 0
    assert mem.description == path
    text = mem.vmcoreinfo()
    assert text.startswith(b"OSRELEASE=") and b"\0" not in text
    assert mem.note(b"NO SUCH NOTE") is None


def test_a_plain_reader_gets_the_defaults():
    class Plain:
        def read(self, pa, size):
            return bytes(size)

    got = declared(Plain())
    assert isinstance(got, MemorySource) and got.read(0, 3) == b"\0\0\0"
    assert (got.ram_ranges(), got.note(b"VMCOREINFO"), got.vmcoreinfo(), got.linear_offset(0)) == \
        (None, None, None, None)
    assert (got.live, got.zero_fills_holes, got.arch_hint, got.missing_bytes) == (False, False, None, 0)
    mem = BytesMemory(b"\1" * 8192, 0x1000)
    assert declared(mem) is mem and mem.ram_ranges() == [(0x1000, 0x3000)]


def test_a_new_generation_drops_the_table_cache():
    mem = BytesMemory(bytearray(8192))
    cache = TableCache(mem)
    assert cache.table(0, 4096)[0] == 0
    cache.fresh()
    assert len(cache) == 1                      # same generation: kept
    mem.moved_on()
    cache.fresh()
    assert len(cache) == 0 and cache.generation == 1


def test_the_dump_registry_refuses_what_no_kind_matches(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a dump at all" * 4)
    with pytest.raises(SourceError, match=r"junk: not a kernel dump \(neither ELF nor kdump-compressed\)$"):
        open_dump(str(junk))
    with pytest.raises(SourceError, match=r"nothing: no such file$"):
        open_dump(str(tmp_path / "nothing"))
    with pytest.raises(SourceError, match="give exactly one of"):
        open_source(core=str(junk), kcore=True)
    assert [k.name for k in DUMP_KINDS] == ["kdump-compressed", "elf"]


@pytest.mark.parametrize("name", sorted(SLICES))
def test_kernel_from_builds_what_open_core_builds(name):
    path = SLICES[name]
    session = open_core(path)
    mem = ElfCoreMemory(path)
    symbols = KallsymsSymbols(session.info, session.read)
    k = kernel_from(mem, session.info, mem.arch_hint, symbols, "test", notes=["a note"])
    assert (k.tables, k.arch, k.description, k.notes) == (session.tables, session.arch, "test", ["a note"])
    assert k.walker.walk(k.tables.root_va).pa == session.walker.walk(session.tables.root_va).pa
    for table in (symbols, SymbolTable.empty(), k.symbols):
        assert isinstance(table, Symbols)
    assert SymbolTable.empty().address("init_task") is None


@pytest.mark.parametrize("name", sorted(SLICES))
def test_kmemdbg_kallsyms_and_drgn_kallsyms_answer_alike(name):
    """kmemdbg.open's symbols (its own kallsyms decoder) against drgn's kallsyms loader on the
    same dump: every 50th symbol by name, and the symbol holding an address inside each."""
    pytest.importorskip("drgn")
    import kmemdbg
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

    k = kmemdbg.open(core=SLICES[name])
    assert k.symbols.source == "kallsyms tables in the dump"
    prog = k.prog                                 # drgn over the same dump: the oracle
    prog.register_symbol_finder("oracle", load_vmlinux_kallsyms(prog), enable_index=0)
    table = k.symbols.table
    assert table is not None, k.symbols.error
    assert len(table) > 10000
    for i in range(0, len(table), 50):
        name = table.names[i]
        assert k.symbols.address(name) == prog.symbol(name).address, name
        va = table.addresses[i] + 8
        try:
            sym = prog.symbol(va)
            want = f"{sym.name}+0x{va - sym.address:x}/0x{sym.size:x}"
        except LookupError:
            want = None
        assert k.symbols.name_of(va) == want, hex(va)
    for sym in ("init_task", "_stext", "init_mm"):
        assert k.symbols.address(sym) == prog.symbol(sym).address, sym


@pytest.mark.parametrize("name", sorted(SLICES))
def test_names_held_by_several_symbols_resolve_as_drgn_resolves_them(name):
    """A name that several symbols share (static functions in different files): the
    lookups answered by a scan and those answered by the name index both give drgn's
    kallsyms loader's address for it, the first such symbol in address order."""
    pytest.importorskip("drgn")
    import kmemdbg
    from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms
    from kmemdbg import kallsyms

    k = kmemdbg.open(core=SLICES[name])
    prog = k.prog
    prog.register_symbol_finder("oracle", load_vmlinux_kallsyms(prog), enable_index=0)
    table = k.symbols.table
    seen, shared = set(), {}
    for n in table.names:
        if n in seen:
            shared[n] = None            # a dict: first-met order, each name once
        seen.add(n)
    shared = list(shared)[:2 * kallsyms.SCANNED_LOOKUPS]
    assert len(shared) == 2 * kallsyms.SCANNED_LOOKUPS       # half by scan, half by the index
    assert table._by_name is None and table._scans < kallsyms.SCANNED_LOOKUPS   # some go by scan
    for n in shared:
        want = min(s.address for s in prog.symbols(n))
        assert table.address(n) == want, n
    assert table._by_name is not None
