"""Modes the model can build and the kernel virtual layout of each.

The formulas are the kernel's own (x86-64: Documentation/arch/x86/x86_64/mm.rst,
arch/x86/include/asm/pgtable_64_types.h and page_64_types.h; arm64:
arch/arm64/include/asm/memory.h and pgtable.h of each era), written out
again here so the model does not share code with the library's layout
module.  All addresses returned are virtual unless named ``*_pa``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

from .geometry import M64, Geometry, arm64_geometry, x86_geometry

G = 1 << 30
M = 1 << 20
TB = 1 << 40
STRUCT_PAGE = 64          # sizeof(struct page) on 64-bit builds without debug options


@dataclass(frozen=True)
class Mode:
    """One paging configuration.

    ``va_bits`` is the configured size (arm64 CONFIG_ARM64_VA_BITS, x86 48
    or 57), ``runtime_va_bits`` what the MMU runs with (arm64 64 - T1SZ),
    ``walk_va_bits`` the size the tables in memory are built for: equal to
    the run-time size except for 64 KiB 52-bit kernels on 48-bit hardware,
    where swapper_pg_dir keeps its 52-bit shape and TTBR1 points into it
    (Linux kernel commit c812026c54cf ("arm64: mm: Logic to make offset_ttbr1
    conditional") (in v5.4)).
    """

    name: str
    arch: str
    page_shift: int
    va_bits: int
    runtime_va_bits: int
    walk_va_bits: int
    pa_encoding: str
    phys_bits: int

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift

    def geometry(self) -> Geometry:
        if self.arch == "x86_64":
            return x86_geometry(self.va_bits == 57)
        return arm64_geometry(self.page_shift, self.walk_va_bits, self.pa_encoding != "48")


def _a64(name, shift, va, run, enc, phys):
    walk = va if (shift == 16 and run != va) else run
    return Mode(name, "arm64", shift, va, run, walk, enc, phys)


MODES: Dict[str, Mode] = {m.name: m for m in (
    Mode("x86_64-4level", "x86_64", 12, 48, 48, 48, "x86", 46),
    Mode("x86_64-5level", "x86_64", 12, 57, 57, 57, "x86", 52),
    _a64("arm64-4k-39", 12, 39, 39, "48", 48),
    _a64("arm64-4k-48", 12, 48, 48, "48", 48),
    _a64("arm64-4k-52", 12, 52, 52, "lpa2", 52),
    _a64("arm64-4k-52on48", 12, 52, 48, "48", 48),
    _a64("arm64-16k-47", 14, 47, 47, "48", 48),
    _a64("arm64-16k-48", 14, 48, 48, "48", 48),
    _a64("arm64-16k-52", 14, 52, 52, "lpa2", 52),
    _a64("arm64-16k-52on47", 14, 52, 47, "48", 48),
    _a64("arm64-64k-42", 16, 42, 42, "48", 48),
    _a64("arm64-64k-48", 16, 48, 48, "48", 48),
    _a64("arm64-64k-52", 16, 52, 52, "lpa64k", 52),
    _a64("arm64-64k-52on48", 16, 52, 48, "lpa64k", 48),
)}

ARM64_ERAS = ("6.9", "5.11", "5.4", "4.x")


def x86_layout(five_level: bool) -> Dict[str, int]:
    """Default (non-KASLR) x86-64 bases and sizes; see layout.md §1.4."""
    if five_level:
        return {"page_offset_base": 0xFF11000000000000, "vmalloc_base": 0xFFA0000000000000,
                "vmemmap_base": 0xFFD4000000000000, "vmalloc_size_tb": 12800,
                "kaslr_start": 0xFF11000000000000, "max_physmem_bits": 52}
    return {"page_offset_base": 0xFFFF888000000000, "vmalloc_base": 0xFFFFC90000000000,
            "vmemmap_base": 0xFFFFEA0000000000, "vmalloc_size_tb": 32,
            "kaslr_start": 0xFFFF888000000000, "max_physmem_bits": 46}


X86_START_KERNEL_MAP = 0xFFFFFFFF80000000
X86_LOAD_PHYSICAL_ADDR = 0x1000000
X86_KERNEL_IMAGE_SIZE = 1 << 30            # CONFIG_RANDOMIZE_BASE builds
X86_MODULES_END = 0xFFFFFFFFFF000000
X86_FIXADDR_TOP = 0xFFFFFFFFFF7FF000
X86_VSYSCALL_ADDR = 0xFFFFFFFFFF600000
X86_CPU_ENTRY_AREA_BASE = 0xFFFFFE0000000000
X86_VADDR_END = 0xFFFFFC0000000000           # vaddr_end in arch/x86/mm/kaslr.c


def x86_kaslr_bases(five_level: bool, ram_end_pa: int, rng) -> Dict[str, int]:
    """Memory-KASLR bases, placed as kernel_randomize_memory() does.

    Regions in order direct map, vmalloc, vmemmap, each at a random PUD
    (1 GiB) aligned offset sharing the spare space (arch/x86/mm/kaslr.c).
    """
    lay = x86_layout(five_level)
    direct_tb = -(-ram_end_pa // TB) + 10          # + RANDOMIZE_MEMORY_PHYSICAL_PADDING
    vmemmap_tb = -(-(direct_tb * TB >> 12) * STRUCT_PAGE // TB)
    sizes = [direct_tb * TB, lay["vmalloc_size_tb"] * TB, vmemmap_tb * TB]
    vaddr = lay["kaslr_start"]
    remain = X86_VADDR_END - vaddr - sum(sizes)
    bases = []
    for i, size in enumerate(sizes):
        entropy = remain // (len(sizes) - i)
        entropy = rng.randrange(entropy + 1) & ~(G - 1)
        vaddr += entropy
        bases.append(vaddr)
        vaddr = (vaddr + size + G) & ~(G - 1)       # round_up(vaddr + 1, PUD_SIZE)
        remain -= entropy
    return {"page_offset_base": bases[0], "vmalloc_base": bases[1], "vmemmap_base": bases[2]}


def _page_offset(va: int) -> int:
    return -(1 << va) & M64


def _page_end(va: int) -> int:
    return -(1 << (va - 1)) & M64


def arm64_layout(mode: Mode, era: str = "6.9") -> Dict[str, int]:
    """Region bounds of an arm64 kernel of ``era`` (no KASAN).  Ends are exclusive."""
    va, act, ps = mode.va_bits, mode.runtime_va_bits, mode.page_shift
    if era not in ARM64_ERAS:
        raise ValueError(f"unknown arm64 era {era!r}; pick one of {ARM64_ERAS}")
    if era in ("5.4", "4.x") and va > 48:
        raise ValueError(f"the {era} layout is modelled for VA_BITS <= 48 only")
    if era != "6.9" and ps == 14 and va == 52:
        raise ValueError("16K pages with 52-bit VA exist only since v6.9 (LPA2)")
    out: Dict[str, int] = {}
    if era == "6.9":
        vmin = 47 if (ps == 14 and va == 52) else min(va, 48)
        page_offset, page_end = _page_offset(va), _page_end(vmin)
        out["modules_vaddr"] = page_end
        out["modules_end"] = page_end + 2 * G
        vmemmap_end = -G & M64
        vmemmap_size = ((page_end - page_offset) >> ps) * STRUCT_PAGE
        vmemmap_start = vmemmap_end - vmemmap_size
        if va == vmin:
            vmalloc_end = vmemmap_start - 8 * M
        else:  # the vmemmap of the unusable linear part is given to vmalloc
            vmalloc_end = vmemmap_start + (((_page_offset(act) - page_offset) & M64) >> ps) \
                * STRUCT_PAGE - 8 * M
        pci_io = vmemmap_end + 8 * M
        fixaddr_top = -8 * M & M64
    elif era == "5.11":
        vmin = min(va, 48)
        page_offset, page_end = _page_offset(va), _page_end(vmin)
        out["modules_vaddr"] = page_end
        out["modules_end"] = page_end + 128 * M        # 5.17-6.4: 128M, no BPF region
        vshift = ps - 6
        vmemmap_start = -(1 << (va - vshift)) & M64
        vmemmap_end = vmemmap_start + ((page_end - page_offset) >> vshift)
        vmalloc_end = vmemmap_start - 256 * M
        pci_io = vmemmap_start - 8 * M - 16 * M
        fixaddr_top = vmemmap_start - 32 * M
    else:
        pud_shift = min(ps + 2 * (ps - 3), mode.geometry().levels[0].shift)
        if era == "5.4":
            page_offset, page_end = _page_offset(va), _page_end(va)
            bpf = page_end
            vmemmap_size = (page_end - page_offset) >> (ps - 6)
            vmemmap_start = (-vmemmap_size - 2 * M) & M64
            vmalloc_end = (-(1 << pud_shift) - vmemmap_size - 64 * 1024) & M64
        else:  # 5.0-5.3: linear map in the upper half (before the 5.4 flip)
            page_offset, page_end = _page_end(va), 1 << 64
            bpf = _page_offset(va)
            vmemmap_size = 1 << (va - ps - 1 + 6)
            vmemmap_start = page_offset - vmemmap_size
            vmalloc_end = page_offset - (1 << pud_shift) - vmemmap_size - 64 * 1024
        vmemmap_end = vmemmap_start + vmemmap_size
        out["bpf_jit_start"] = bpf
        out["modules_vaddr"] = bpf + 128 * M
        out["modules_end"] = bpf + 256 * M
        pci_io = vmemmap_start - 2 * M - 16 * M
        fixaddr_top = pci_io - 2 * M
    out.update({
        "page_offset": page_offset, "page_end": page_end,
        "linear_start": max(page_offset, _page_offset(act)) if era != "4.x" else page_offset,
        "kimage_vaddr": out["modules_end"], "vmalloc_start": out["modules_end"],
        "vmalloc_end": vmalloc_end, "vmemmap_start": vmemmap_start, "vmemmap_end": vmemmap_end,
        "pci_io_start": pci_io, "pci_io_end": pci_io + 16 * M, "fixaddr_top": fixaddr_top,
    })
    return out


def arm64_memstart_align(page_shift: int) -> int:
    """ARM64_MEMSTART_ALIGN: 1 GiB for 4K/16K (PUD/CONT_PMD shift 30), 512 MiB for 64K."""
    return 1 << (29 if page_shift == 16 else 30)
