"""arm64 layout rules: the regions of ``arch/arm64/include/asm/memory.h`` (6.1, 6.12, and
the formulas of older eras where VMCOREINFO has no ranges), each bound with its source.

``layout_rules(b)`` fills a :mod:`kmemdbg.layout` builder; every start/end is virtual.
"""
from __future__ import annotations

from typing import Optional, Tuple

from ...vmcoreinfo import signed64
from ..base import MASK64


def layout_rules(b) -> None:
    """Add the arm64 regions and ``__pa()`` quantities to the layout builder ``b``."""
    ev, info = b.ev, b.ev.info
    va_bits = info.number("VA_BITS")
    page_size = info.page_size() or 4096
    if va_bits is None:
        b.missing.append("NUMBER(VA_BITS)")
        return
    t1sz = info.number("TCR_EL1_T1SZ")
    runtime = 64 - t1sz if t1sz else va_bits
    page_shift = {4096: 12, 16384: 14, 65536: 16}.get(page_size, 12)
    va_bits_min = va_bits if va_bits <= 48 else (47 if page_size == 16384 else 48)
    stext = info.symbol("_stext")
    flipped = stext is None or stext >= (-(1 << (va_bits - 1))) & MASK64
    page_offset = (-(1 << va_bits)) & MASK64 if flipped else (-(1 << (va_bits - 1))) & MASK64
    po_src = "-(1 << VA_BITS)" if flipped else "-(1 << (VA_BITS - 1)) (SYMBOL(_stext) below it: pre-5.4 layout)"
    b.values["PAGE_OFFSET"], b.sources["PAGE_OFFSET"] = page_offset, po_src
    b.values["vabits_actual"], b.sources["vabits_actual"] = runtime, \
        "64 - NUMBER(TCR_EL1_T1SZ)" if t1sz else "NUMBER(VA_BITS)"
    b.values["VA_BITS"], b.sources["VA_BITS"] = va_bits, "NUMBER(VA_BITS)"
    voff = b.pick("kimage_voffset", [(info.number("kimage_voffset"), "NUMBER(kimage_voffset)"),
                                     b.symbol_word("kimage_voffset")])
    phys_offset = b.pick("PHYS_OFFSET", [(info.number("PHYS_OFFSET"), "NUMBER(PHYS_OFFSET)"),
                                         b.symbol_word("memstart_addr")])
    if phys_offset is not None:
        b.values["PHYS_OFFSET"] = signed64(phys_offset[0])
    kasan = ev.symbol("kasan_early_shadow_page") is not None
    top = MASK64 + 1
    if flipped:
        page_end = (-(1 << (va_bits_min - 1))) & MASK64
        pe_src = f"_PAGE_END(VA_BITS_MIN={va_bits_min})"
        b.values["PAGE_END"], b.sources["PAGE_END"] = page_end, pe_src
        reach = (-(1 << runtime)) & MASK64
        if reach > page_offset:
            b.add("non-canonical", "linear map beyond this CPU's VA size", page_offset, reach, po_src,
                  "_PAGE_OFFSET(vabits_actual)",
                  f"__is_lm_address() accepts it but TTBR1 translates only {runtime} bits")
        lin_start, lin_src = max(page_offset, reach), "_PAGE_OFFSET(vabits_actual)" if reach > page_offset else po_src
        if kasan:
            b.add("linear", "linear map", lin_start, page_end, lin_src, "KASAN_SHADOW_START (approximate)",
                  "KASAN is built in: the shadow is carved from the top of the linear half")
        else:
            b.add("linear", "linear map", lin_start, page_end, lin_src, pe_src)
        b.add("user", "user space (TTBR0)", 0, 1 << runtime, "TTBR0 range", f"2^{runtime}")
        b.add("non-canonical", "between TTBR0 and TTBR1", 1 << runtime, min(reach, page_offset),
              f"2^{runtime}", "_PAGE_OFFSET(vabits_actual)" if reach <= page_offset else po_src)
    else:
        page_end = top
        b.values["PAGE_END"], b.sources["PAGE_END"] = page_end, "end of the address space (pre-5.4)"
        b.add("linear", "linear map (upper half)", page_offset, top, po_src, "end of the address space")
        b.add("user", "user space (TTBR0)", 0, 1 << runtime, "TTBR0 range", f"2^{runtime}")
        b.add("non-canonical", "between TTBR0 and TTBR1", 1 << runtime, (-(1 << va_bits)) & MASK64,
              f"2^{runtime}", "-(1 << VA_BITS)")

    def num(name: str) -> Tuple[Optional[int], str]:
        return info.number(name), f"NUMBER({name})"

    mod_s, mod_e = num("MODULES_VADDR"), num("MODULES_END")
    vm_s, vm_e = num("VMALLOC_START"), num("VMALLOC_END")
    vmm_s, vmm_e = num("VMEMMAP_START"), num("VMEMMAP_END")
    if vm_s[0] is None and mod_e[0] is not None:
        vm_s = (mod_e[0], "NUMBER(MODULES_END) (= VMALLOC_START)")
    if vm_e[0] is None and vmm_s[0] is None:
        era = _era(b, va_bits, va_bits_min, page_shift, flipped, page_offset)
        if era is not None:
            name, r = era
            src = f"{name} layout formula"
            mod_s, mod_e = (r["modules"][0], src), (r["modules"][1], src)
            vm_s, vm_e = (r["vmalloc"][0], src), (r["vmalloc"][1], src)
            vmm_s, vmm_e = (r["vmemmap"][0], src), (r["vmemmap"][1], src)
            if "bpf" in r:
                b.add("vmalloc", "BPF JIT region", r["bpf"][0], r["bpf"][1], src, src)
            b.add("pci-io", "PCI I/O window", r["pci"][0], r["pci"][1], src, src)
            b.add("fixmap", "fixmap", r["fixmap"][0], r["fixmap"][1], src + " (start approximate)", src)
    if mod_s[0] is not None and mod_e[0] is not None:
        b.add("module", "module area (MODULES_VADDR..MODULES_END)", mod_s[0], mod_e[0], mod_s[1], mod_e[1],
              "with KASLR, modules are placed near the randomised image instead")
    elif flipped:
        b.missing.append("NUMBER(MODULES_VADDR/END)")
    if vm_s[0] is not None and vm_e[0] is not None:
        b.add("vmalloc", "vmalloc/vmap/ioremap", vm_s[0], vm_e[0], vm_s[1], vm_e[1])
    else:
        b.missing.append("NUMBER(VMALLOC_START/END)")
    from_numbers = vmm_s[1].startswith("NUMBER")
    if vmm_s[0] is not None and vmm_e[0] is not None:
        struct_page = int(info.text("SIZE(page)") or 64)
        reach = (-(1 << runtime)) & MASK64
        if flipped and reach > page_offset:
            # A 52-bit build on a smaller CPU never uses the struct pages of the
            # unreachable linear range; that part of vmemmap is handed to vmalloc.
            used = vmm_s[0] + ((reach - page_offset) >> page_shift) * struct_page
            b.add("vmemmap", "struct page array (vmemmap, reachable part)", used, vmm_e[0],
                  f"{vmm_s[1]} + struct pages of the unreachable linear range", vmm_e[1])
        else:
            b.add("vmemmap", "struct page array (vmemmap)", vmm_s[0], vmm_e[0], vmm_s[1], vmm_e[1])
        if not from_numbers:
            pass
        elif vmm_e[0] == (-(1 << 30)) & MASK64:
            # 6.9+ layout (Linux kernel v6.9 arm64 VA-space reorganisation):
            # PCI I/O and the fixmap moved above vmemmap.
            pci = vmm_e[0] + (8 << 20)
            b.add("pci-io", "PCI I/O window", pci, pci + (16 << 20), "VMEMMAP_END + 8 MiB", "+ 16 MiB")
            fix_top = (-(8 << 20)) & MASK64
            b.add("fixmap", "fixmap", pci + (16 << 20), fix_top, "PCI_IO_END", "FIXADDR_TOP = -8 MiB",
                  "the fixmap occupies the top of this range")
        else:
            pci_end = vmm_s[0] - (8 << 20)
            b.add("pci-io", "PCI I/O window", pci_end - (16 << 20), pci_end, "VMEMMAP_START - 24 MiB",
                  "VMEMMAP_START - 8 MiB")
            fix_top = vmm_s[0] - (32 << 20)
            b.add("fixmap", "fixmap", fix_top - (4 << 20), fix_top, "FIXADDR_TOP - 4 MiB (approximate)",
                  "FIXADDR_TOP = VMEMMAP_START - 32 MiB")
    else:
        b.missing.append("NUMBER(VMEMMAP_START/END)")
    if voff is not None and stext is not None:
        b.image_bounds(stext, stext + (64 << 20), "SYMBOL(_stext) + 64 MiB (no _end symbol)")
    else:
        b.image_bounds(None, None, "")
    b.values["page_shift"], b.sources["page_shift"] = page_shift, "PAGESIZE"
    b.percpu()


def _era(b, va_bits: int, va_bits_min: int, page_shift: int, flipped: bool,
               page_offset: int):
    """Region bounds by the formulas of arm64 kernels older than 5.18 (no vmcoreinfo ranges).

    Returns (era name, {name: (start, end)}) or None.  Pre-5.4 is told by
    ``_stext`` below PAGE_OFFSET (the caller's ``flipped``).  Between the
    5.4-5.10 and 5.11-5.17 formulas the page tables decide: the era whose
    vmemmap maps the struct page of the first RAM page wins.  Formulas:
    ``arch/arm64/include/asm/memory.h`` and ``pgtable.h`` of each era.
    """
    m128 = 128 << 20
    levels = -(-(va_bits - page_shift) // (page_shift - 3))
    pud_size = 1 << (page_shift + min(levels - 1, 2) * (page_shift - 3))
    vmemmap_shift = page_shift - 6   # STRUCT_PAGE_MAX_SHIFT = 6
    if not flipped:
        va_start = (-(1 << va_bits)) & MASK64
        size = 1 << (va_bits - page_shift - 1 + 6)
        vmemmap = page_offset - size
        pci_end = vmemmap - (2 << 20)
        return "pre-5.4 (linear map in the upper half)", {
            "bpf": (va_start, va_start + m128), "modules": (va_start + m128, va_start + 2 * m128),
            "vmalloc": (va_start + 2 * m128, page_offset - pud_size - size - (64 << 10)),
            "vmemmap": (vmemmap, page_offset), "pci": (pci_end - (16 << 20), pci_end),
            "fixmap": (pci_end - (16 << 20) - (6 << 20), pci_end - (16 << 20) - (2 << 20))}
    page_end = (-(1 << (va_bits_min - 1))) & MASK64
    size = ((page_end - page_offset) & MASK64) >> vmemmap_shift
    eras = []
    start_b = (-size - (2 << 20)) & MASK64
    pci_b = start_b - (2 << 20)
    eras.append(("5.4-5.10", start_b, {
        "bpf": (page_end, page_end + m128), "modules": (page_end + m128, page_end + 2 * m128),
        "vmalloc": (page_end + 2 * m128, (-pud_size - size - (64 << 10)) & MASK64),
        "vmemmap": (start_b, start_b + size), "pci": (pci_b - (16 << 20), pci_b),
        "fixmap": (pci_b - (16 << 20) - (6 << 20), pci_b - (16 << 20) - (2 << 20))}))
    start_c = (-(1 << (va_bits - vmemmap_shift))) & MASK64
    eras.append(("5.11-5.17", start_c, {
        "modules": (page_end, page_end + m128), "vmalloc": (page_end + m128, start_c - (256 << 20)),
        "vmemmap": (start_c, start_c + size), "pci": (start_c - (24 << 20), start_c - (8 << 20)),
        "fixmap": (start_c - (36 << 20), start_c - (32 << 20))}))
    first_ram = min((s for s, _ in b.ev.ram), default=None)
    phys_offset = b.values.get("PHYS_OFFSET")
    if first_ram is not None and phys_offset is not None:
        for name, start, ranges in eras:
            page_va = start + ((first_ram - phys_offset) >> page_shift) * 64
            if b.ev.translate(page_va) is not None:
                b.sources["arm64 era"] = "page tables: vmemmap of the first RAM page is mapped there"
                return name, ranges
    b.missing.append("arm64 layout era (no vmcoreinfo ranges, no mapped vmemmap found)")
    return None
