"""kmemdbg on a running arm64 (52-bit VA, LPA2) guest through drgn's QMP mode.

The arm64-6.12-lpa2 recipe's kernel boots under QEMU with two QMP sockets.
/init loads qemu_fw_cfg (VMCOREINFO for QEMU's vmcoreinfo device) and
kmemdbg_probe, prints the probe's lines, /proc/modules and /proc/vmallocinfo
on the serial console and idles. The host then stops the guest, opens it with
``kmemdbg.open(qmp=...)`` (drgn's ``Program.set_qemu_qmp`` underneath; the
memory source is ``DrgnPhysicalMemory``) and compares kmemdbg's walk of each
address with two oracles: QEMU's own MMU (``gva2gpa`` through the human
monitor, on the second socket) and drgn's C walker from swapper_pg_dir; for
the probe's buffers also with what the guest kernel printed
(vmalloc_to_pfn(), virt_to_phys() of kmalloc memory).
"""

import os
import shutil
import time

import pytest

from guestlib import Guest, gva2gpa, recipe_guest, section, tail
from vmcores.guest import INIT_PREAMBLE
from vmcores.qmp import QMP
from vmcores.truth import parse_modules, parse_plants, parse_probe, parse_vmallocinfo

pytestmark = pytest.mark.live

RECIPE = "arm64-6.12-lpa2"
TIMEOUT_S = 150
MODULES = ["qemu_fw_cfg"]

INIT = INIT_PREAMBLE + r"""echo "@@KMEMDBG BEGIN probe@@"; dmesg | grep 'kmemdbg_probe: '; echo "@@KMEMDBG END probe@@"
echo "@@KMEMDBG BEGIN modules@@"; cat /proc/modules; echo "@@KMEMDBG END modules@@"
read -t 2 x
echo "@@KMEMDBG BEGIN vmallocinfo@@"
while IFS= read -r l; do echo "$l"; done < /proc/vmallocinfo
echo "@@KMEMDBG END vmallocinfo@@"
echo "@@KMEMDBG READY@@"
while :; do read -r x || sleep 86400; done
"""


def test_kmemdbg_over_qmp_agrees_with_qemu_mmu_and_drgn() -> None:
    import _drgn
    import drgn

    import kmemdbg

    argv, _rec, wd = recipe_guest(RECIPE, "kmemdbg-live-", INIT, MODULES, ["drgn.sock", "mon.sock"])
    drgn_sock, hmp_sock = os.path.join(wd, "drgn.sock"), os.path.join(wd, "mon.sock")
    t0 = time.monotonic()
    with Guest(argv, wd) as g:
        text = g.wait_for("@@KMEMDBG READY@@", TIMEOUT_S)
        assert "@@KMEMDBG WARN" not in text, tail(text)
        mon = QMP(hmp_sock)
        try:
            mon.execute("stop")   # one consistent state for all three walkers
            k = kmemdbg.open(qmp=drgn_sock, arch="arm64")
            prog = k.prog
            assert prog.flags & drgn.ProgramFlags.IS_LIVE
            pgd = drgn.Object(prog, "void *", int(k.info.text("SYMBOL(swapper_pg_dir)"), 16))

            areas = parse_vmallocinfo(section(text, "vmallocinfo"))
            modules = parse_modules(section(text, "modules"))
            probe = parse_probe(section(text, "probe"))
            page = int(k.info.text("PAGESIZE"))
            samples = []   # (kind, va, the guest kernel's own answer or None)
            for a in areas:
                start = int(a["start"], 16)
                samples.append(("vmalloc:" + "+".join(a["flags"]), start, None))
                if a.get("pages"):
                    samples.append(("vmalloc:" + "+".join(a["flags"]), start + (a["pages"] - 1) * page, None))
            samples += [("module", int(m["address"], 16), None) for m in modules]
            for e in probe:
                if e["name"].endswith(".run"):
                    samples.append(("probe:" + e["name"], int(e["va"], 16), int(e["vmalloc_to_pfn"], 16) * page))
                elif "virt_to_phys" in e:
                    samples.append(("probe:" + e["name"], int(e["va"], 16), int(e["virt_to_phys"], 16)))

            results = []
            for kind, va, kernel in samples:
                try:
                    want = _drgn._linux_helper_follow_phys(prog, pgd, va)
                except drgn.FaultError:
                    want = None
                mmu = gva2gpa(mon.execute("human-monitor-command", {"command-line": "gva2gpa 0x%x" % va}))
                results.append((kind, va, k.translate(va).pa, mmu, want, kernel))
        finally:
            mon.close()
    print("live guest run took %.0f s" % (time.monotonic() - t0))

    def fmt(rows):
        return [(kind, "0x%x" % va) + tuple(None if x is None else "0x%x" % x for x in rest)
                for kind, va, *rest in rows[:5]]

    vs_mmu = [r for r in results if r[2] != r[3]]
    assert not vs_mmu, "kmemdbg vs QEMU's MMU (kind, va, kmemdbg, gva2gpa, drgn, kernel): %s" % fmt(vs_mmu)
    vs_drgn = [r for r in results if r[2] != r[4]]
    assert not vs_drgn, "kmemdbg vs drgn's C walker: %s" % fmt(vs_drgn)
    vs_kernel = [r for r in results if r[5] is not None and r[2] != r[5]]
    assert not vs_kernel, "kmemdbg vs the guest kernel's own report: %s" % fmt(vs_kernel)
    mapped = {}
    for kind, _va, pa, *_ in results:
        if pa is not None:
            key = kind.split(":")[0]
            mapped[key] = mapped.get(key, 0) + 1
    # How many probe samples there are depends on the boot (a vmalloc buffer's pages form
    # as many ".run" entries as it has physically contiguous runs): every one must be
    # mapped, with runs and single addresses both among them.
    probes = [kind for kind, *_ in samples if kind.startswith("probe:")]
    assert mapped.get("probe", 0) == len(probes), (mapped, len(probes))
    assert any(p.endswith(".run") for p in probes) and any(not p.endswith(".run") for p in probes), probes
    assert mapped.get("vmalloc", 0) >= 20 and mapped.get("module", 0) >= 2, mapped
    assert k.info.number("TCR_EL1_T1SZ") == 12, "not a 52-bit (LPA2) guest"
    shutil.rmtree(wd, ignore_errors=True)   # kept for inspection when a check fails


def _misuse(k):
    """{word va: (severity, form, value, source va)} of the misuse findings above info, and the
    statistics finding."""
    from kmemdbg.audit import run_audit

    report = run_audit(k, ["virt-to-phys-misuse"])
    assert not report.errors, report.errors
    got = {}
    stats = None
    for f in report.findings:
        if f.kind == "statistics":
            stats = f
        elif f.severity != "info":
            ev = f.evidence_dict()
            got[f.start] = (f.severity, f.kind, ev.get("form"), ev.get("value"), ev.get("source_va"))
    return got, stats


def test_misuse_over_qmp_equals_the_dump_of_the_same_moment() -> None:
    """The same stopped guest audited twice: live over QMP (no RAM map from the source: RAM
    comes from the kernel's iomem_resource) and from QEMU's ELF dump of that moment.  Both
    must find the same stored virt_to_phys()/virt_to_page() values, the probe's plants among
    them (the guest kernel's own printout), and scan the same bytes of every kind."""
    import kmemdbg

    argv, _rec, wd = recipe_guest(RECIPE, "kmemdbg-live-misuse-", INIT, MODULES, ["drgn.sock", "mon.sock"])
    drgn_sock, hmp_sock = os.path.join(wd, "drgn.sock"), os.path.join(wd, "mon.sock")
    dump = os.path.join(wd, "moment.elf")
    with Guest(argv, wd) as g:
        text = g.wait_for("@@KMEMDBG READY@@", TIMEOUT_S)
        mon = QMP(hmp_sock)
        try:
            mon.execute("stop")
            live, live_stats = _misuse(kmemdbg.open(qmp=drgn_sock, arch="arm64"))
            mon.execute("dump-guest-memory", {"paging": False, "protocol": "file:" + dump}, timeout=300)
        finally:
            mon.close()
    dumped, dump_stats = _misuse(kmemdbg.open(core=dump))
    assert live == dumped, (live, dumped)
    probe = parse_probe(section(text, "probe"))
    plants = parse_plants(probe)["plants"]
    assert plants, "the probe printed no plants"
    for p in plants:
        word = int(p["word_va"], 16)
        if p["control"]:
            assert word not in live, p["id"]
        else:
            assert word in live and live[word][0] == "high", (p["id"], live.get(word))
    glob = [e for e in probe if e["name"] == "bogus_global"][0]
    assert int(glob["va"], 16) in live
    lev, dev = live_stats.evidence_dict(), dump_stats.evidence_dict()
    for kind in ("image", "module", "percpu", "stack", "vmalloc", "slab", "page"):
        assert lev[f"{kind}_bytes"] == dev[f"{kind}_bytes"], kind
        assert lev[f"{kind}_bytes"] > 0, kind
    shutil.rmtree(wd, ignore_errors=True)
