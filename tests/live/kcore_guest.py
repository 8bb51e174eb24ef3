"""Runs *inside* an x86-64 guest, with the host's own Python and drgn (the
host root is shared read-only over 9p and chrooted into): translate a set of
kernel addresses taken from this guest's own /proc/vmallocinfo, /proc/iomem
and the kmemdbg_probe printout, with kmemdbg over /proc/kcore and with drgn's
C walker, and print both on the console as one JSON line between
``@@KMEMDBG BEGIN live@@`` and ``@@KMEMDBG END live@@``.

usage (in the guest): python kcore_guest.py REPO_ROOT
"""

import json
import subprocess
import sys
import time
import traceback


def main(repo: str) -> dict:
    sys.path.insert(0, repo)
    import _drgn
    import drgn

    from vmcores.truth import parse_iomem, parse_probe, parse_vmallocinfo

    t0 = time.monotonic()
    out = {"timings_s": {}}
    prog = drgn.Program()
    prog.set_kernel()
    vmcoreinfo = prog["VMCOREINFO"].string_().decode()
    info = dict(line.split("=", 1) for line in vmcoreinfo.splitlines() if "=" in line)
    pgd = drgn.Object(prog, "void *", int(info["SYMBOL(swapper_pg_dir)"], 16))
    out["flags"] = str(prog.flags)
    out["timings_s"]["drgn_open"] = round(time.monotonic() - t0, 2)

    t1 = time.monotonic()
    try:
        import kmemdbg
        k = kmemdbg.open(kcore=True)
        out["api"] = "kmemdbg.open(kcore=True)"
    except Exception:  # the product API must work; the fallback says where it broke
        out["api_error"] = traceback.format_exc()
        from kmemdbg.session import session_from
        from kmemdbg.sources.drgn_program import DrgnPhysicalMemory
        from kmemdbg.vmcoreinfo import VmcoreInfo
        k = session_from(DrgnPhysicalMemory(prog), VmcoreInfo.parse(vmcoreinfo), "x86_64", "live")
        out["api"] = "kmemdbg.session.session_from"
    out["timings_s"]["kmemdbg_open"] = round(time.monotonic() - t1, 2)
    if hasattr(k, "layout"):
        offset, source = k._elf_linear_offset()
        out["layout"] = {"disagreements": [d.message() for d in k.layout.disagreements],
                         "page_offset_base": k.layout.value("page_offset_base"),
                         "page_offset_base_source": k.layout.value_source("page_offset_base"),
                         "kcore_linear_offset": offset, "kcore_source": source,
                         "x86_phys_bits": k.layout.value("x86_phys_bits"),
                         "x86_phys_bits_source": k.layout.value_source("x86_phys_bits")}
        from kmemdbg.virt_to_phys import kernel_pa
        pob = k.layout.value("page_offset_base")
        bits = k.layout.value("x86_phys_bits") or 0
        out["debug_virtual"] = {"inside": kernel_pa(k.layout, pob + (1 << bits) - 4096).debug_virtual,
                                "beyond": kernel_pa(k.layout, pob + (1 << bits)).debug_virtual}
    # the guest kernel's own word on MAXPHYADDR: /proc/cpuinfo prints boot_cpu_data's
    # "address sizes : N bits physical, M bits virtual" (arch/x86/kernel/cpu/proc.c)
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("address sizes"):
                out["cpuinfo_phys_bits"] = int(line.split(":", 1)[1].split()[0])
                break

    with open("/proc/vmallocinfo") as f:
        areas = parse_vmallocinfo(f.read().splitlines())
    with open("/proc/iomem") as f:
        iomem = parse_iomem(f.read().splitlines())
    kallsyms = {}
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] in ("page_offset_base", "_text", "_end"):
                kallsyms[parts[2]] = int(parts[0], 16)
    page_offset = prog.read_u64(kallsyms["page_offset_base"])
    try:
        dmesg = subprocess.run(["dmesg"], stdout=subprocess.PIPE, timeout=60).stdout.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        dmesg = ""
    probe = parse_probe(dmesg.splitlines())

    samples = []  # (kind, va, pa the guest kernel itself reported, or None)
    for a in areas:
        start = int(a["start"], 16)
        samples.append(("vmalloc:" + "+".join(a["flags"]), start + 0x123, None))
        if a.get("pages"):
            samples.append(("vmalloc:" + "+".join(a["flags"]), start + (a["pages"] - 1) * 4096, None))
        if a.get("phys") and "ioremap" in a["flags"]:
            samples[-1] = ("ioremap", start, int(a["phys"], 16) & ~0xFFF)
    for r in iomem:
        lo, hi = int(r["start"], 16), int(r["end"], 16)
        ram = r["name"] == "System RAM"
        for pa in sorted({lo, (lo + (hi - lo) // 2) & ~0xFFF, hi & ~0xFFF}):
            samples.append(("linear:" + ("ram" if ram else "other"), page_offset + pa + 0x48,
                            pa + 0x48 if ram else None))
    samples.append(("image", kallsyms["_text"], None))
    for e in probe:
        if e["name"].endswith(".run") and "slow_virt_to_phys" in e:
            samples.append(("probe:" + e["name"], int(e["va"], 16), int(e["slow_virt_to_phys"], 16)))
        elif "virt_to_phys" in e and "slow_virt_to_phys" in e:
            samples.append(("probe:" + e["name"], int(e["va"], 16), int(e["slow_virt_to_phys"], 16)))

    def follow(va):
        try:
            return _drgn._linux_helper_follow_phys(prog, pgd, va)
        except drgn.FaultError:
            return None

    t2 = time.monotonic()
    results = []
    for kind, va, kernel in samples:
        before = follow(va)
        ours = k.translate(va).pa
        after = follow(va)
        results.append({"kind": kind, "va": "0x%x" % va, "kmemdbg": None if ours is None else "0x%x" % ours,
                        "drgn": None if before is None else "0x%x" % before,
                        "stable": before == after,
                        "kernel": None if kernel is None else "0x%x" % kernel})
    out["timings_s"]["translate"] = round(time.monotonic() - t2, 2)
    out["results"] = results
    out["counts"] = {"vmallocinfo": len(areas), "iomem": len(iomem), "probe": len(probe)}
    return out


if __name__ == "__main__":
    try:
        doc = main(sys.argv[1])
    except Exception:
        doc = {"error": traceback.format_exc()}
    sys.stdout.write("@@KMEMDBG BEGIN live@@\n%s\n@@KMEMDBG END live@@\n" % json.dumps(doc))
    sys.stdout.flush()
