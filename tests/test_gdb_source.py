"""The gdb front end without gdb: a fake gdbstub over real-kernel slices, and bad input.

The fake behaves as QEMU's stub does where it matters: physical reads only
in physical-memory mode, zeros for memory it does not have, the mode
queried with ``qqemu.PhyMemMode``.  Oracles: kmemdbg's command line on the
same slice (the JSON of the walk and region must be equal) and, for the
import rule, the system Python with drgn made unimportable.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess

import pytest

from kmemdbg import cli
from kmemdbg.errors import PhysicalReadError
from kmemdbg.gdb import SCRIPT
from kmemdbg.commands.gdb import LiveTarget, run
from kmemdbg.kernel_tables import kernel_tables
from kmemdbg.sources.elfcore import ElfCoreMemory
from kmemdbg.vmcoreinfo import VmcoreInfo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "vmcores", "fixtures")
NOTE_PA = 0x13BA000   # where the fake puts the VMCOREINFO note (a page the slices do not hold)


class FakeLink:
    """A QEMU gdbstub over a physical memory source, with the registers a CPU would show."""

    def __init__(self, memory=None, arch="i386:x86-64", registers=None, connected=True,
                 phys_mode_supported=True, note_text=None, fail_after_reads=None, frame_thief=False):
        self.memory = memory
        self.arch = arch
        self.registers = dict(registers or {})
        self._connected = connected
        self.supported = phys_mode_supported
        self.mode = "0"
        self.packets = []
        self.reads = 0
        self.virtual_reads = 0
        self.fail_after_reads = fail_after_reads
        self.frame = "frame #2"
        self.frame_thief = frame_thief
        self.overlay = {}
        if note_text is not None:
            desc = note_text.encode() + b"\0"
            self.overlay[NOTE_PA] = struct.pack("<III", 11, len(desc), 0) + b"VMCOREINFO\0\0" + desc

    def connected(self):
        return self._connected

    def packet(self, text):
        self.packets.append(text)
        if not self.supported:
            return ""
        if text == "qqemu.PhyMemMode":
            return self.mode
        if text.startswith("Qqemu.PhyMemMode:"):
            self.mode = text.rsplit(":", 1)[1]
            return "OK"
        return ""

    def read(self, addr, size):
        if self.mode != "1":
            self.virtual_reads += 1
            raise PhysicalReadError(addr, size, "virtual read (the test expects physical reads only)")
        self.reads += 1
        if self.frame_thief:
            self.frame = "frame #0"       # as if something selected another frame halfway
        if self.fail_after_reads is not None and self.reads > self.fail_after_reads:
            raise RuntimeError("Remote connection closed")
        for base, blob in self.overlay.items():
            if base <= addr < base + 4096:
                return (blob + bytes(4096))[addr - base:addr - base + size]
        try:
            return self.memory.read(addr, size) if self.memory is not None else bytes(size)
        except PhysicalReadError:
            return bytes(size)     # QEMU reads holes and memory past the end of RAM as zeros

    def register(self, name):
        return self.registers.get(name)

    def arch_name(self):
        return self.arch

    def selected_frame(self):
        return self.frame

    def restore_frame(self, frame):
        self.frame = frame

    def flush_cache(self):
        pass

    def symbol_address(self, name):
        return None


def _slice(recipe):
    path = os.path.join(FIXTURES, recipe, "vmcore.slice")
    if not os.path.exists(path):
        pytest.skip(f"no slice for {recipe}")
    mem = ElfCoreMemory(path)
    text = mem.note(b"VMCOREINFO").split(b"\0", 1)[0].decode()
    with open(os.path.join(FIXTURES, recipe, "truth.json")) as f:
        return path, mem, text, json.load(f)


def _x86_link(recipe="x86_64-6.12-l4", **kw):
    path, mem, text, truth = _slice(recipe)
    info = VmcoreInfo.parse(text)
    root = kernel_tables(info, "x86_64").root_pa
    l5 = bool(info.number("pgtable_l5_enabled"))
    regs = {"cr0": 0x80050033, "cr3": root, "cr4": 0x750EF0 | (l5 << 12), "efer": 0xD01,
            "pc": info.symbol("_stext") + 0x1234}
    return FakeLink(mem, registers=regs, note_text=text, **kw), path, truth


def _arm64_link(recipe="arm64-6.12-lpa2", **kw):
    path, mem, text, truth = _slice(recipe)
    info = VmcoreInfo.parse(text)
    root = kernel_tables(info, "arm64").root_pa
    t1sz = info.number("TCR_EL1_T1SZ")
    ds = 1 if 64 - t1sz == 52 else 0
    tcr = (t1sz << 16) | (2 << 30) | (5 << 32) | (ds << 59)
    ttbr1 = (2 << 48) | (root & ((1 << 48) - 1)) | ((root >> 48 & 0xF) << 2) | 1   # ASID 2, CnP
    regs = {"SCTLR": 0x200000034F4D91D, "TCR_EL1": tcr, "TTBR1_EL1": ttbr1,
            "pc": info.symbol("_stext") + 0x1234}
    link = FakeLink(mem, arch="aarch64", registers=regs, note_text=None, **kw)
    # arm64 RAM starts at 1 GiB on QEMU's virt board: put the note where the scan starts.
    desc = text.encode() + b"\0"
    link.overlay[(1 << 30) + 0x3807000] = struct.pack("<III", 11, len(desc), 0) + b"VMCOREINFO\0\0" + desc
    return link, path, truth


def _samples(truth, k=60):
    vas = [a["start"] for a in truth["vmalloc_areas"][:k]]
    vas += [s["address"] for s in truth["kallsyms"].values() if s.get("module") is None][:20]
    vas += [m["address"] for m in truth["modules"]]
    vas += ["0x8000000000000000", "0xffffffffffffffff"]     # (a user address needs --pid now)
    return vas


def _walk_part(obj):
    return {k: obj[k] for k in ("va", "pa", "page_size", "steps", "fault", "permissions")}


def _cli_json(path, argv):
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["--core", path, "--json"] + argv) == 0
    return json.loads(out.getvalue())["results"]


@pytest.mark.parametrize("make", [_x86_link, _arm64_link], ids=["x86_64-6.12-l4", "arm64-6.12-lpa2"])
def test_vtop_over_the_fake_stub_equals_the_cli_on_the_same_slice(make):
    link, path, truth = make()
    vas = _samples(truth)
    status, text = run(LiveTarget(link), ["vtop", "--json"] + vas)
    assert status == 0, text
    got, want = json.loads(text)["results"], _cli_json(path, ["vtop"] + vas)
    assert [_walk_part(o) for o in got] == [_walk_part(o) for o in want]
    # A slice carries its BTF in an ELF note, which a gdbstub has no way to
    # show, so module names (which refine arm64 regions) are compared live only.
    by_list = "the kernel's module list"
    pairs = [(g["region"], w["region"]) for g, w in zip(got, want) if w["region"]["source"] != by_list]
    assert len(pairs) > len(vas) // 2 and all(g == w for g, w in pairs)
    assert link.mode == "0" and link.virtual_reads == 0
    assert sum(o["pa"] is not None for o in got) > len(vas) // 2


def test_layout_over_the_fake_stub_names_where_vmcoreinfo_was_found():
    link, path, _ = _x86_link()
    status, text = run(LiveTarget(link), ["layout"])
    assert status == 0, text
    assert f"VMCOREINFO at pa 0x{NOTE_PA:x}, found by scan of guest physical memory" in " ".join(text.split())
    status, js = run(LiveTarget(_x86_link()[0]), ["--json", "layout"])
    assert json.loads(js)["results"][0]["regions"] == _cli_json(path, ["layout"])[0]["regions"]


def test_not_connected_is_one_line_and_sends_no_packet():
    link = FakeLink(connected=False)
    status, text = run(LiveTarget(link), ["vtop", "0xffffffff81000000"])
    assert status == 1 and "\n" not in text
    assert text.startswith("kmemdbg: gdb is not connected")
    assert link.packets == []


def test_stub_without_physical_mode_is_one_line():
    link, _, _ = _x86_link(phys_mode_supported=False)
    status, text = run(LiveTarget(link), ["vtop", "0xffffffff81000000"])
    assert status == 1 and "\n" not in text
    assert "no physical-memory mode" in text


def test_paging_off_is_one_line_and_restores_physical_mode():
    link, _, _ = _x86_link()
    link.registers["cr0"] = 0x60000010          # reset value: PE and PG clear
    status, text = run(LiveTarget(link), ["vtop", "0xffffffff81000000"])
    assert (status, "\n" in text) == (1, False)
    assert "paging is off (CR0.PG=0" in text
    assert link.mode == "0"


def test_arm64_mmu_off_is_one_line():
    link, _, _ = _arm64_link()
    link.registers["SCTLR"] = 0x30D00800        # M (bit 0) clear
    status, text = run(LiveTarget(link), ["classify", "0xffff800080000000"])
    assert status == 1 and "the MMU is off (SCTLR_EL1.M=0" in text and "\n" not in text


def test_unknown_architecture_is_one_line():
    link = FakeLink(arch="mips:isa64r2")
    status, text = run(LiveTarget(link), ["layout"])
    assert status == 1 and "unknown architecture 'mips:isa64r2'" in text and "\n" not in text
    assert link.mode == "0"


def test_guest_without_a_kernel_is_one_line_after_a_bounded_scan():
    link = FakeLink(memory=None, registers={"cr0": 0x80000011, "cr3": 0x1000, "cr4": 0x20})
    status, text = run(LiveTarget(link, scan_limit_bytes=4 << 20), ["vtop", "0xffffffff81000000"])
    assert status == 1 and "\n" not in text
    assert text.startswith("kmemdbg: no Linux VMCOREINFO in the first 4 MiB of guest RAM")
    assert link.mode == "0" and link.virtual_reads == 0


def test_failure_halfway_restores_physical_mode_and_the_selected_frame():
    link, _, _ = _x86_link(fail_after_reads=40, frame_thief=True)
    status, text = run(LiveTarget(link), ["vtop", "0xffffffff81000000"])
    assert status == 1 and "\n" not in text
    assert "Remote connection closed" in text
    assert link.mode == "0"
    assert link.frame == "frame #2"


def test_usage_errors_and_dump_options_are_refused_in_gdb():
    link = FakeLink()
    assert run(LiveTarget(link), [])[0] == 2
    assert run(LiveTarget(link), ["slice", "out"])[0] == 2
    status, text = run(LiveTarget(link), ["--core", "x", "vtop", "0"])
    assert status == 2 and "--core" in text
    assert link.packets == []


def test_resume_drops_cached_memory_but_keeps_vmcoreinfo():
    link, _, _ = _x86_link()
    target = LiveTarget(link)
    assert run(target, ["vtop", "init_mm"])[0] == 0
    reads = link.reads
    assert run(target, ["vtop", "init_mm"])[0] == 0
    assert link.reads == reads                   # same stop: everything from the cache
    target.resumed()
    assert run(target, ["vtop", "init_mm"])[0] == 0
    assert reads < link.reads < 2 * reads        # re-read tables, but no second scan
    assert target.found.pa == NOTE_PA


def test_core_imports_without_drgn_in_the_system_python():
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("no system python3")
    code = ("import sys; sys.modules['drgn'] = None; sys.modules['_drgn'] = None; "
            f"sys.path.insert(0, {ROOT!r}); "
            "import kmemdbg.walk, kmemdbg.layout, kmemdbg.kernel, kmemdbg.model, kmemdbg.render, "
            "kmemdbg.cli, kmemdbg.kallsyms, kmemdbg.kobjects, kmemdbg.gdb.source, kmemdbg.commands.gdb; "
            "print('ok')")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_sourced_file_registers_the_command_in_real_gdb_and_reports_not_connected():
    gdb = shutil.which("gdb")
    if gdb is None:
        pytest.skip("gdb is not installed")
    out = subprocess.run([gdb, "-nx", "-batch", "-ex", f"source {SCRIPT}", "-ex", "kmemdbg vtop 0",
                          "-ex", "help kmemdbg"], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stderr.strip().splitlines() == [
        "kmemdbg: gdb is not connected to a guest: 'target remote HOST:PORT' to QEMU's gdbstub "
        "(qemu -s or -gdb tcp:127.0.0.1:PORT) first"]
    assert "kmemdbg [--json] COMMAND ARGS" in out.stdout and "\n  vtop " in out.stdout


def test_ptdump_over_the_fake_stub_equals_the_cli_on_the_same_slice():
    pytest.importorskip("numpy")
    if not hasattr(cli, "cmd_ptdump"):
        pytest.skip("this checkout has no ptdump command")
    link, path, _ = _x86_link()
    status, text = run(LiveTarget(link), ["--json", "ptdump"])
    assert status == 0, text
    got, want = json.loads(text)["results"], _cli_json(path, ["ptdump"])
    assert len(got) > 100
    # Owners come from allocations, which a slice keeps in an ELF note (see above).
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("owner", "allocation")} for r in rows]  # noqa: E731
    assert strip(got) == strip(want)
    assert link.mode == "0"


def test_a_changed_note_after_resume_means_a_new_kernel_and_a_fresh_scan():
    link, _, _ = _x86_link()
    target = LiveTarget(link)
    assert run(target, ["vtop", "init_mm"])[0] == 0
    old = target.found.text
    note = link.overlay[NOTE_PA]
    link.overlay[NOTE_PA] = note.replace(b"OSRELEASE=6", b"OSRELEASE=7")   # as after a reboot
    target.resumed()
    assert run(target, ["layout"])[0] == 0
    assert target.found.text != old and target.found.text.startswith("OSRELEASE=7")
