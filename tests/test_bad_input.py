"""One regression test per cause of issue 14, each with the issue's own reproducer.

Oracle: README.md's promise (one line on stderr, a non-zero exit status, never
a traceback; kmemdbg never writes to a dump) and the issue's bounds (10 s,
1 GiB).  Every command runs in its own process under those limits
(``fuzzlib.run_case``), and every input's sha256 is compared before and after.
Where a test checks an answer, the oracle is named there.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import threading

import pytest

import fuzzlib as F
from realdumps import FIXTURES, cache_dir

X86 = os.path.join(FIXTURES, "x86_64-6.12-l4", "vmcore.slice")
ARM = os.path.join(FIXTURES, "arm64-6.12-lpa2", "vmcore.slice")


@pytest.fixture(scope="module")
def x86():
    return F.describe_dump(X86)


@pytest.fixture(scope="module")
def arm():
    return F.describe_dump(ARM)


@pytest.fixture(scope="module")
def x86_kdump(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("kd") / "x86.kdump")
    F.small_kdump(X86, path)
    return F.describe_dump(path)


def mutated(tmp_path, dump, patch, name="in.core"):
    wc = F.WorkCopy(dump.path, str(tmp_path), name)
    wc.apply(patch)
    return wc.path


def refused(result, *needles):
    """The promise for bad input, and the line names the cause."""
    assert not result.problems(True), result.describe()
    for n in needles:
        assert n in result.lines[0], result.describe()
    return result.lines[0]


def full(recipe, name="vmcore.elf"):
    path = os.path.join(cache_dir(), recipe, name)
    if not os.path.exists(path):
        pytest.skip(f"recipe {recipe} not built: run python3 vmcores/build.py {recipe}")
    return path


# -- the user's dump is destroyed ------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["same", "dotted", "json", "symlink", "hardlink"])
def test_slice_onto_its_own_input_is_refused_and_the_dump_is_unchanged(tmp_path, spelling):
    core = str(tmp_path / "in.core")
    shutil.copyfile(X86, core)
    out, flags = core, []
    if spelling == "dotted":
        out = os.path.join(str(tmp_path), "..", tmp_path.name, ".", "in.core")
    elif spelling == "json":
        flags = ["--json"]
    elif spelling in ("symlink", "hardlink"):
        out = str(tmp_path / "link.core")
        (os.symlink if spelling == "symlink" else os.link)(core, out)
    r = F.run_case(["--core", core] + flags + ["slice", out], [core], cwd=str(tmp_path))
    refused(r, "is the input dump itself")
    assert sorted(os.listdir(tmp_path)) == sorted(["in.core"] + (["link.core"] if "link" in spelling else []))


@pytest.mark.real
@pytest.mark.parametrize("recipe", ["x86_64-6.12-l4", "arm64-6.12-lpa2"])
def test_slice_onto_the_full_dump_itself_is_refused(tmp_path, recipe):
    core = str(tmp_path / "vmcore.elf")
    shutil.copyfile(full(recipe), core)
    r = F.run_case(["--core", core, "slice", core], [core], cwd=str(tmp_path))
    refused(r, "is the input dump itself")


def test_planted_tmp_symlink_to_the_input_is_not_written_through(tmp_path):
    core = str(tmp_path / "in.core")
    shutil.copyfile(X86, core)
    os.symlink(core, str(tmp_path / "out.slice.tmp"))
    r = F.run_case(["--core", core, "slice", str(tmp_path / "out.slice")], [core], cwd=str(tmp_path))
    assert r.status == 0 and not r.changed, r.describe()
    assert os.path.islink(tmp_path / "out.slice.tmp")
    # the slice is a new file, and a core kmemdbg opens (oracle: the same root table as the input)
    import kmemdbg

    assert kmemdbg.open(core=str(tmp_path / "out.slice")).tables.root_pa == kmemdbg.open(core=core).tables.root_pa


def test_slice_refuses_to_replace_a_write_protected_file(tmp_path):
    out = tmp_path / "old.slice"
    out.write_bytes(b"keep me")
    out.chmod(0o444)
    r = F.run_case(["--core", X86, "slice", str(out)], [X86, str(out)], cwd=str(tmp_path))
    refused(r, "write-protected")
    assert out.read_bytes() == b"keep me"


def test_failed_slice_leaves_no_temporary_file(tmp_path, x86):
    r = F.run_case(["--core", X86, "slice", ""], [X86], cwd=str(tmp_path))
    refused(r, "empty")
    # a slice that fails after it started writing: the core has no readable page tables
    core = mutated(tmp_path, x86, F.Patch(((x86.offset_of(x86.root_pa), bytes(4096)),)))
    r = F.run_case(["--core", core, "slice", str(tmp_path / "out.slice")], [core], cwd=str(tmp_path))
    assert r.status != 0 and len(r.lines) == 1, r.describe()
    assert sorted(os.listdir(tmp_path)) == ["in.core"]


def test_a_write_that_fails_midway_removes_its_temporary_file(tmp_path):
    from kmemdbg.outfile import write_output

    def boom(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(Exception, match="No space left"):
        write_output(str(tmp_path / "out"), boom)
    assert os.listdir(tmp_path) == []


# -- tracebacks ----------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["SYMBOL(vmemmap)", "SYMBOL(mem_section)", "SYMBOL(_stext)", "NUMBER(VMALLOC_START)",
                                 "NUMBER(phys_base)", "NUMBER(sme_mask)", "NUMBER(KERNEL_IMAGE_SIZE)",
                                 "NUMBER(MAX_PHYSMEM_BITS)"])
def test_non_numeric_vmcoreinfo_value_is_one_line_naming_key_and_value(tmp_path, x86, key):
    core = mutated(tmp_path, x86, F.edit_vmcoreinfo(x86, key, "zz"))
    refused(F.run_case(["--core", core, "layout"], [core]), f"{key}=zz")


@pytest.mark.parametrize("key", ["NUMBER(VMALLOC_START)", "NUMBER(VMALLOC_END)", "NUMBER(VMEMMAP_START)",
                                 "NUMBER(VMEMMAP_END)", "NUMBER(MODULES_VADDR)", "NUMBER(PHYS_OFFSET)",
                                 "SIZE(page)"])
def test_non_numeric_arm64_vmcoreinfo_value_is_one_line(tmp_path, arm, key):
    core = mutated(tmp_path, arm, F.edit_vmcoreinfo(arm, key, "zz"))
    refused(F.run_case(["--core", core, "layout"], [core]), f"{key}=zz")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_arm64_va_bits_zero_or_negative_is_one_line(tmp_path, arm, value):
    core = mutated(tmp_path, arm, F.edit_vmcoreinfo(arm, "NUMBER(VA_BITS)", value))
    refused(F.run_case(["--core", core, "vtop", "init_mm"], [core]), f"NUMBER(VA_BITS)={value}")


@pytest.mark.parametrize("edit", ["no-swapper_pg_dir", "PAGESIZE=zz", "garbage"])
def test_kdump_vmcoreinfo_that_drgn_rejects_is_one_line(tmp_path, x86_kdump, edit):
    if edit == "no-swapper_pg_dir":
        patch, needle = F.edit_vmcoreinfo(x86_kdump, "SYMBOL(swapper_pg_dir)", None), "swapper_pg_dir"
        patch = F.with_vmcoreinfo(x86_kdump, b"\n".join(
            f"{k}={v}".encode() for k, v in F.vmcoreinfo_lines(x86_kdump)
            if k not in ("SYMBOL(swapper_pg_dir)", "SYMBOL(init_top_pgt)")) + b"\n")
    elif edit == "PAGESIZE=zz":
        patch, needle = F.edit_vmcoreinfo(x86_kdump, "PAGESIZE", "zz"), "PAGESIZE=zz"
    else:
        patch, needle = F.with_vmcoreinfo(x86_kdump, b"\x13\x37garbage without an equals sign\n"), "vmcoreinfo"
    core = mutated(tmp_path, x86_kdump, patch)
    refused(F.run_case(["--core", core, "vtop", "init_mm"], [core]), needle)


def test_kdump_block_size_past_the_end_or_cut_sub_header_is_one_line(tmp_path, x86_kdump):
    core = mutated(tmp_path, x86_kdump, F.kdump_field("block_size", 1 << 21, x86_kdump))
    refused(F.run_case(["--core", core, "layout"], [core]), "block_size 2097152")
    short = mutated(tmp_path, x86_kdump, F.Patch((), 4096 + 40), "short.core")
    refused(F.run_case(["--core", short, "layout"], [short]), "sub-header")


def _point_root_at(dump, blob):
    """A patch that appends ``blob`` and makes it the root frame's zlib data."""
    at = dump.size + (-dump.size % 8)
    return F.Patch(((at, blob), (dump.kdump["root_desc"], struct.pack("<qIIQ", at, len(blob), 1, 0))))


def test_kdump_zlib_page_that_inflates_to_6_gib_is_refused_in_bounded_memory(tmp_path, x86_kdump):
    core = mutated(tmp_path, x86_kdump, _point_root_at(x86_kdump, F.zlib_bomb(6 << 30)))
    r = F.run_case(["--core", core, "vtop", "init_mm"], [core])
    refused(r, "root table")
    assert r.max_rss_bytes < 256 << 20


def test_kdump_zlib_page_inflating_past_its_block_is_cut_at_the_block(tmp_path, x86_kdump):
    """A bomb small enough to pass the descriptor check: inflation stops one byte past the block."""
    from kmemdbg.errors import PhysicalReadError
    from kmemdbg.sources.kdump import KdumpMemory

    bomb = F.zlib_bomb(2 << 20)
    assert len(bomb) < 4096
    core = mutated(tmp_path, x86_kdump, _point_root_at(x86_kdump, bomb))
    with pytest.raises(PhysicalReadError, match="inflates past 4096 bytes"):
        KdumpMemory(core).read(x86_kdump.root_pa, 8)
    refused(F.run_case(["--core", core, "vtop", "init_mm"], [core]), "inflates past")


def test_tables_that_fan_out_make_audit_one_line_in_bounds(tmp_path, x86):
    patch, _ = F.fan_out(x86)
    core = mutated(tmp_path, x86, patch)
    refused(F.run_case(["--core", core, "audit"], [core]), "table-fan-out")


def test_non_utf8_addresses_file_is_counted_not_a_traceback(tmp_path):
    path = tmp_path / "addresses.txt"
    path.write_bytes(b"\xff\xfe\x00garbage\n" * 3 + b"ffffffff81000000\n")
    r = F.run_case(["--core", X86, "audit", "--rule", "addresses", "--addresses", str(path)], [X86, str(path)])
    refused(r, "not UTF-8", "(and 2 more)")


# -- hangs -------------------------------------------------------------------------------------

def test_fifo_as_core_is_refused_without_blocking(tmp_path):
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    r = refused(F.run_case(["--core", fifo, "vtop", "0"]), "a FIFO")
    assert F.run_case(["--core", X86, "--vmlinux", fifo, "layout"]).status == 1
    assert "character device" in refused(F.run_case(["--core", "/dev/zero", "layout"]))
    assert r


def test_qmp_socket_that_accepts_and_never_answers_times_out(tmp_path):
    path = str(tmp_path / "qmp.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    held = []
    t = threading.Thread(target=lambda: held.append(server.accept()), daemon=True)
    t.start()
    try:
        r = F.run_case(["--qmp", path, "vtop", "0"])
    finally:
        server.close()
        for conn, _ in held:
            conn.close()
    refused(r, "no QMP answer within")
    assert r.seconds < 8


def test_root_entries_pointing_at_the_root_do_not_hang_the_kallsyms_loader(tmp_path, x86):
    core = mutated(tmp_path, x86, F.write_entries(
        x86, x86.root_pa, {s: F.table_entry(x86, x86.root_pa) for s in x86.kernel_root_slots}))
    refused(F.run_case(["--core", core, "layout"], [core]), "table-loop")
    # the library's own guard, on the same tables: kallsyms_problem() names the loop
    import kmemdbg
    from kmemdbg.kallsyms import kallsyms_problem

    k = kmemdbg.open(core=X86)
    k.walker.cache._tables[k.tables.root_pa] = memoryview(
        b"".join(F.u64(F.table_entry(x86, x86.root_pa)) for _ in range(512))).cast("Q")
    assert "table-loop" in kallsyms_problem(k)


def test_corrupt_vmap_area_is_reported_not_walked():
    import kmemdbg
    from kmemdbg.audit import Area, AuditContext
    from kmemdbg.audit.integrity import rule_vmalloc_integrity

    k = kmemdbg.open(core=X86)
    start = k.layout.value("vmalloc_base")
    huge = Area(start, start + (1 << 45), start + (1 << 45), "corrupt", ("vmalloc",))
    backwards = Area(start + (1 << 30), start, start, "backwards", ("vmalloc",))
    findings = rule_vmalloc_integrity(AuditContext(k, areas=[huge, backwards]))
    corrupt = [f for f in findings if f.kind == "corrupt-area"]
    assert corrupt and corrupt[0].evidence_dict()["areas"] == 2


@pytest.mark.parametrize("command", [["ptov", "0x10000"], ["check", "--size", "0x100000", "init_mm"],
                                     ["slice", "{dir}/out.slice"]])
def test_tables_that_fan_out_keep_ptov_check_and_slice_in_bounds(tmp_path, x86, command):
    patch, frame = F.fan_out(x86)
    assert frame == 0x10000
    core = mutated(tmp_path, x86, patch)
    argv = ["--core", core] + [c.replace("{dir}", str(tmp_path)) for c in command]
    r = F.run_case(argv, [core])
    assert not r.problems(must_fail=command[0] == "ptov"), r.describe()
    if command[0] == "slice":
        import kmemdbg

        # the slice holds the four new table pages once each (oracle: the patch wrote exactly those)
        k = kmemdbg.open(core=str(tmp_path / "out.slice"))
        assert len(k.table_pages()) == len(kmemdbg.open(core=X86).table_pages()) + len(x86.level_bits) - 1


def test_check_size_of_a_terabyte_is_refused_at_once():
    r = F.run_case(["--core", X86, "check", "--size", "1099511627776", "init_mm"], [X86])
    refused(r, "size 1099511627776")
    assert r.seconds < 8


# -- exit 0, or a silently empty or wrong answer -------------------------------------------------

def _root_unreadable(dump, how):
    if how == "moved-load":
        ph = dump.load_of(dump.root_pa)
        return F.phdr_field(ph, "p_paddr", ph.paddr + (1 << 40))
    if how == "zero-root":
        return F.Patch(((dump.offset_of(dump.root_pa), bytes(dump.table_bytes[0])),))
    ph = dump.load_of(dump.root_pa)
    return F.phdr_field(ph, "p_filesz", 0)


@pytest.mark.parametrize("how", ["moved-load", "zero-root", "dropped-bytes"])
@pytest.mark.parametrize("truncated_ok", [False, True])
def test_ptdump_of_an_unreadable_root_exits_nonzero(tmp_path, x86, how, truncated_ok):
    core = mutated(tmp_path, x86, _root_unreadable(x86, how))
    flags = ["--allow-truncated"] if truncated_ok else []
    for out in ([], ["--json"]):
        r = F.run_case(["--core", core] + flags + out + ["ptdump"], [core])
        refused(r)


def test_ptdump_of_a_kdump_with_a_corrupt_root_block_exits_nonzero(tmp_path, x86_kdump):
    with open(x86_kdump.path, "rb") as f:
        f.seek(x86_kdump.kdump["root_desc"])
        off, size, _fl, _pf = struct.unpack("<qIIQ", f.read(24))
    core = mutated(tmp_path, x86_kdump, F.Patch(((off, b"\x00" * size),)))
    refused(F.run_case(["--core", core, "ptdump"], [core]), "root table")


def test_ptdump_shows_a_looping_subtree_as_a_fault_range(tmp_path, x86):
    slot = x86.empty_kernel_slots[0]
    core = mutated(tmp_path, x86, F.write_entries(x86, x86.root_pa, {slot: F.table_entry(x86, x86.root_pa)}))
    r = F.run_case(["--core", core, "ptdump"], [core])
    refused(r, "table-loop")
    r = F.run_case(["--core", core, "--json", "ptdump"], [core])
    refused(r, "table-loop")
    # the JSON: a fault range exactly where the looping root slot's 512 GiB are (oracle: the patch)
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "kmemdbg", "--core", core, "--json", "ptdump"],
                         capture_output=True, text=True, timeout=60).stdout
    faults = [o for o in json.loads(out)["results"] if o["fault"]]
    start = (0xFFFF << 48) | (slot << 39)
    assert faults and int(faults[0]["start"], 16) >= start and faults[0]["fault"]["reason"] == "table-loop"
    assert int(faults[0]["end"], 16) <= start + (1 << 39)
    text = subprocess.run([sys.executable, "-m", "kmemdbg", "--core", core, "ptdump"], capture_output=True,
                          text=True, timeout=60).stdout
    assert "fault: table-loop" in text


def test_slice_of_a_truncated_dump_is_refused(tmp_path):
    core = str(tmp_path / "half.core")
    with open(X86, "rb") as f:
        data = f.read()
    with open(core, "wb") as f:
        f.write(data[:len(data) // 2])
    refused(F.run_case(["--core", core, "slice", str(tmp_path / "out")], [core]), "truncated")
    assert not os.path.exists(tmp_path / "out")


def test_slice_with_no_page_tables_is_refused(tmp_path, x86):
    core = mutated(tmp_path, x86, _root_unreadable(x86, "moved-load"))
    refused(F.run_case(["--core", core, "--allow-truncated", "slice", str(tmp_path / "out")], [core]), "root table")
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.real
def test_truncated_full_kdump_is_detected_at_open(tmp_path):
    src = full("x86_64-6.12-l4", "vmcore.kdump")
    core = str(tmp_path / "cut.kdump")
    with open(src, "rb") as f, open(core, "wb") as out:
        out.write(f.read(20_000_000))
    refused(F.run_case(["--core", core, "layout"], [core]), "truncated")
    # and read as far as it goes, the layout that would be guessed is an error unless asked for
    r = F.run_case(["--core", core, "--allow-truncated", "audit", "--rule", "wx", "--fail-on", "high"], [core])
    assert r.status == 2 and len(r.lines) == 1, r.describe()


def test_truncated_kdump_is_detected_at_open(tmp_path, x86_kdump):
    core = mutated(tmp_path, x86_kdump, F.Patch((), x86_kdump.size * 2 // 3))
    refused(F.run_case(["--core", core, "layout"], [core]), "truncated")


def test_layout_that_falls_back_to_defaults_is_an_error_unless_guessed(tmp_path, x86):
    # no word of page_offset_base, no direct-map PT_LOAD, no walkable mem_section: only the default is left
    lines = [f"{k}={v}" for k, v in F.vmcoreinfo_lines(x86) if not k.startswith("SYMBOL(kallsyms")
             and k != "SYMBOL(mem_section)"]
    core = mutated(tmp_path, x86, F.with_vmcoreinfo(x86, ("\n".join(lines) + "\n").encode()))
    refused(F.run_case(["--core", core, "layout"], [core]), "page_offset_base", "--guess-layout")
    r = F.run_case(["--core", core, "audit", "--rule", "wx", "--fail-on", "high"], [core])
    assert r.status == 2 and len(r.lines) == 1 and "guess" in r.lines[0], r.describe()
    r = F.run_case(["--core", core, "--guess-layout", "--json", "layout"], [core])
    assert r.status == 0, r.describe()


@pytest.mark.parametrize("size", [57, 64])
def test_e_phentsize_other_than_56_is_refused(tmp_path, x86, size):
    core = mutated(tmp_path, x86, F.elf_field("e_phentsize", size))
    refused(F.run_case(["--core", core, "vtop", "init_mm"], [core]), f"e_phentsize {size}")


@pytest.mark.parametrize("text", ["init_mm+", "init_mm++1", "0x 1000", "\u0661\u0660", "1_0", "+0x10"])
def test_loose_address_spellings_are_refused(text):
    refused(F.run_case(["--core", X86, "vtop", text], [X86]), "address" if "init_mm" not in text else "offset")


@pytest.mark.parametrize("dump_name,key,value,needle", [
    ("arm", "NUMBER(VA_BITS)", "99", "VA_BITS"),
    ("x86", "NUMBER(VMALLOC_START)", "0x10000000000000000", "64-bit"),
    ("x86", "NUMBER(sme_mask)", "-1", "sme_mask"),
    ("arm", "NUMBER(PHYS_OFFSET)", "0x" + "ff" * 10, "PHYS_OFFSET"),
    ("x86", "NUMBER(pgtable_l5_enabled)", "1", "swapper_pg_dir"),
])
def test_impossible_vmcoreinfo_values_are_refused(tmp_path, x86, arm, dump_name, key, value, needle):
    dump = {"x86": x86, "arm": arm}[dump_name]
    core = mutated(tmp_path, dump, F.edit_vmcoreinfo(dump, key, value))
    refused(F.run_case(["--core", core, "layout"], [core]), needle)


def test_vmcoreinfo_and_the_kernels_vmalloc_base_disagree_the_page_tables_decide(tmp_path, x86):
    """VMCOREINFO says the non-KASLR default, the kernel's vmalloc_base word says otherwise:
    the layout keeps the word (oracle: the kernel's own VMCOREINFO, which gives that word)."""
    import kmemdbg

    truth = kmemdbg.open(core=X86).info.number("VMALLOC_START")
    core = mutated(tmp_path, x86, F.edit_vmcoreinfo(x86, "NUMBER(VMALLOC_START)", "0xffffc90000000000"))
    k = kmemdbg.open(core=core)
    assert k.layout.value("vmalloc_base") == truth
    assert "page tables confirm" in k.layout.value_source("vmalloc_base")
    assert any(d.quantity == "vmalloc_base" for d in k.layout.disagreements)


def test_non_ascii_byte_in_vmcoreinfo_is_one_line(tmp_path, x86):
    text = x86.vmcoreinfo.replace(b"OSRELEASE=", b"OSRELEASE=\xe9", 1)
    core = mutated(tmp_path, x86, F.with_vmcoreinfo(x86, text))
    refused(F.run_case(["--core", core, "--json", "layout"], [core]), "non-ASCII", "0xe9")


def test_dump_larger_than_the_address_space_limit_is_read_not_mapped(tmp_path):
    core = str(tmp_path / "huge.core")
    shutil.copyfile(X86, core)
    with open(core, "r+b") as f:
        f.truncate(2 * F.CASE_BYTES)          # sparse: twice the address space the case may use
    r = F.run_case(["--core", core, "vtop", "init_mm"], [core])
    assert r.status == 0 and not r.problems(must_fail=False), r.describe()


def test_os_error_without_a_file_name_has_no_empty_name(capsys, monkeypatch):
    from kmemdbg import cli

    def fail(args):
        raise OSError(12, "Cannot allocate memory")
    monkeypatch.setattr(cli, "cmd_layout", fail)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions:
        action.choices["layout"].set_defaults(func=fail)
    assert cli.main(["--core", X86, "layout"]) == 1
    assert capsys.readouterr().err == "kmemdbg: Cannot allocate memory\n"


# -- many lines ----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["--bogus"], ["vtop"], ["check", "--size", "x", "0"], ["--core"], [],
                                  ["nope"], ["audit", "--jsonl", "--fail-on"]])
def test_usage_errors_are_one_line(argv):
    r = F.run_case(argv)
    assert r.status == 2 and len(r.lines) == 1 and r.lines[0].startswith("kmemdbg: usage: "), r.describe()


def test_rules_that_fail_alike_print_one_line():
    from kmemdbg.cli import audit_error_lines

    errors = [(rule, "no layout: a guess") for rule in ("wx", "exec-alias", "text-rw")] + \
             [("addresses", f"line {n}: 'zz' is not a hexadecimal address") for n in range(1, 10001)]
    lines = audit_error_lines(errors)
    assert lines == ["kmemdbg: wx, exec-alias, text-rw: no layout: a guess",
                     "kmemdbg: addresses: line 1: 'zz' is not a hexadecimal address (and 9999 more)"]


def test_garbage_addresses_file_gives_one_counted_line(tmp_path):
    path = tmp_path / "garbage.txt"
    path.write_text("zz\n" * 10000)
    r = F.run_case(["--core", X86, "audit", "--rule", "addresses", "--addresses", str(path)], [X86])
    line = refused(r, "line 1", "(and 9999 more)")
    assert r.status == 2, line
