"""x86-64 layout rules: the regions of ``Documentation/arch/x86/x86_64/mm.rst`` and
``arch/x86/include/asm/pgtable_64_types.h`` (6.1, 6.12), each bound with its source.

``layout_rules(b)`` fills a :mod:`kmemdbg.layout` builder; every start/end is virtual.
"""
from __future__ import annotations

from ..base import MASK64
from .paging import START_KERNEL_MAP

MODULES_END = 0xFFFFFFFFFF000000
FIXADDR_TOP = 0xFFFFFFFFFF7FF000
TIB = 1 << 40


def layout_rules(b) -> None:
    """Add the x86-64 regions and ``__pa()`` quantities to the layout builder ``b``."""
    ev, info = b.ev, b.ev.info
    l5 = bool(info.number("pgtable_l5_enabled"))
    va_bits = 57 if l5 else 48
    pgdir_shift = 48 if l5 else 39
    user_end = 1 << (va_bits - 1)
    b.add("user", "user space", 0, user_end, f"{va_bits}-bit paging", f"{va_bits}-bit paging")
    b.add("non-canonical", "non-canonical hole", user_end, (MASK64 << (va_bits - 1)) & MASK64,
          "paging mode", "paging mode")
    kernel_start = (MASK64 << (va_bits - 1)) & MASK64
    guard_end = (-240 << pgdir_shift) & MASK64
    b.add("unknown", "hypervisor guard hole", kernel_start, guard_end, "paging mode",
          "-240 << PGDIR_SHIFT (LDT_BASE_ADDR)")
    b.add("ldt-remap", "LDT remap (per-mm tables only)", guard_end, guard_end + (1 << pgdir_shift),
          "-240 << PGDIR_SHIFT", "one PGD slot", "never mapped in init_top_pgt")
    phys_base = info.number("phys_base")
    if phys_base is not None:
        b.values["phys_base"] = phys_base
        b.sources["phys_base"] = "NUMBER(phys_base)"
    else:
        b.missing.append("NUMBER(phys_base)")
    b.values["__START_KERNEL_map"] = START_KERNEL_MAP
    b.sources["__START_KERNEL_map"] = "constant of the x86-64 layout"
    # phys_addr_valid() (arch/x86/mm/physaddr.h) checks against the CPU's MAXPHYADDR
    b.defer_field("x86_phys_bits", "boot_cpu_data", "cpuinfo_x86", "x86_phys_bits")

    # Direct map base: symbol word, ELF headers, then the page tables (the
    # vmcoreinfo mem_section pointer is a direct-map address, so VA - PA of
    # its walk is page_offset_base, 1 GiB aligned by KASLR's granularity).
    pt_candidate = None
    mem_section = info.symbol("mem_section")
    if mem_section is not None and mem_section < START_KERNEL_MAP:
        pa = ev.translate(mem_section)
        if pa is not None:
            cand = (mem_section - pa) & MASK64
            if cand % (1 << 30) == 0:
                pt_candidate = cand
    default_pob = 0xFF11000000000000 if l5 else 0xFFFF888000000000
    # When the kernel's own words and VMCOREINFO disagree, the page tables decide:
    # a direct-map base maps the first RAM page to itself, a vmemmap base maps
    # the struct page of the first RAM frame, a vmalloc base lies in tables
    # that exist below the top two levels and outside the direct map of RAM.
    first_ram = min((lo for lo, _ in ev.ram), default=0)
    ram_end = max((hi for _, hi in ev.ram), default=0)

    def direct_map_ok(base: int) -> bool:
        return ev.translate((base + first_ram) & MASK64) == first_ram

    pob = b.pick("page_offset_base", [
        b.symbol_word("page_offset_base"),
        (ev.elf_linear_offset, ev.elf_linear_source),
        (pt_candidate, "page tables (walk of SYMBOL(mem_section), a direct-map pointer)"),
        (default_pob, "default (no memory KASLR)"),
    ], confirm=direct_map_ok)

    def vmalloc_ok(base: int) -> bool:
        if pob is not None and pob[0] <= base < pob[0] + max(ram_end, 1):
            return False
        return ev.reaches(base, 2)

    vmalloc = b.pick("vmalloc_base", [
        (info.number("VMALLOC_START"), "NUMBER(VMALLOC_START)"),
        b.symbol_word("vmalloc_base"),
        (0xFFA0000000000000 if l5 else 0xFFFFC90000000000, "default (no memory KASLR)"),
    ], confirm=vmalloc_ok)
    vmemmap = b.pick("vmemmap_base", [
        (info.symbol("vmemmap"), "SYMBOL(vmemmap)"),
        b.symbol_word("vmemmap_base"),
        (0xFFD4000000000000 if l5 else 0xFFFFEA0000000000, "default (no memory KASLR)"),
    ], confirm=lambda base: ev.translate((base + (first_ram >> 12) * 64) & MASK64) is not None)
    max_phys = info.number("MAX_PHYSMEM_BITS") or (52 if l5 else 46)
    vm_size = (12800 if l5 else 32) * TIB
    if pob is not None:
        end = pob[0] + (1 << max_phys)
        end_src = f"+ 2^MAX_PHYSMEM_BITS ({max_phys})"
        if vmalloc is not None and pob[0] < vmalloc[0] < end:
            end, end_src = vmalloc[0], "vmalloc_base (next KASLR region)"
        b.add("linear", "direct map", pob[0], end, pob[1], end_src)
    if vmalloc is not None:
        b.add("vmalloc", "vmalloc/vmap/ioremap", vmalloc[0], vmalloc[0] + vm_size, vmalloc[1],
              f"+ VMALLOC_SIZE_TB ({vm_size // TIB} TiB)")
    if vmemmap is not None:
        size = TIB if not l5 else TIB << 9
        end, esrc = vmemmap[0] + size, "+ nominal vmemmap size of the paging mode"
        # KASLR places the three regions below vaddr_end = CPU_ENTRY_AREA_BASE
        if vmemmap[0] < 0xFFFFFE0000000000 < end:
            end, esrc = 0xFFFFFE0000000000, "CPU_ENTRY_AREA_BASE (KASLR's vaddr_end)"
        b.add("vmemmap", "struct page array (vmemmap)", vmemmap[0], end, vmemmap[1], esrc)
    if ev.symbol("kasan_early_shadow_page") is not None:
        start = 0xFFDFFC0000000000 if l5 else 0xFFFFEC0000000000
        b.add("kasan-shadow", "KASAN shadow", start, 0xFFFFFC0000000000,
              "KASAN_SHADOW_START formula (symbol kasan_early_shadow_page present)", "KASAN_SHADOW_END")
    b.add("cpu-entry-area", "cpu_entry_area", 0xFFFFFE0000000000, 0xFFFFFE8000000000,
          "-4 << P4D_SHIFT", "+ P4D_SIZE")
    b.add("espfix", "ESPFIX stacks", 0xFFFFFF0000000000, 0xFFFFFF8000000000, "-2 << P4D_SHIFT", "+ P4D_SIZE")
    b.add("efi", "EFI runtime (efi_mm only)", 0xFFFFFFEF00000000, 0xFFFFFFFF00000000,
          "EFI_VA_END = -68 GiB", "EFI_VA_START = -4 GiB", "never mapped in init_top_pgt")
    image_size = info.number("KERNEL_IMAGE_SIZE") or (1 << 30)
    isrc = "NUMBER(KERNEL_IMAGE_SIZE)" if info.number("KERNEL_IMAGE_SIZE") else "default 1 GiB (KASLR build)"
    b.values["kernel_image_size"], b.sources["kernel_image_size"] = image_size, isrc
    b.image_bounds(START_KERNEL_MAP, START_KERNEL_MAP + image_size, f"__START_KERNEL_map + {isrc}")
    b.add("unknown", "kernel image window outside _text.._end", START_KERNEL_MAP,
          START_KERNEL_MAP + image_size, "__START_KERNEL_map", isrc,
          "unmapped after boot (cleanup_highmap)")
    b.add("module", "module area", START_KERNEL_MAP + image_size, MODULES_END,
          f"__START_KERNEL_map + {isrc}", "MODULES_END")
    b.add("fixmap", "fixmap and vsyscall page", MODULES_END, FIXADDR_TOP + 4096,
          "MODULES_END", "FIXADDR_TOP")
    b.percpu()
