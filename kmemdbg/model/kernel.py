"""A kernel-like address space built from the layout formulas.

``build_kernel(mode)`` lays out RAM, a linear (direct) map with the big
leaves the kernel uses, the kernel image, modules, vmalloc areas (scattered
and huge), vmemmap, fixmap and a KFENCE-like pool with non-present guard
pages, plus a small user address space holding PROT_NONE and swap entries.
Every mapping is recorded, so :meth:`KernelModel.truth` is ground truth.

Virtual addresses are named ``*va*`` and physical ones ``*pa*``; sizes are
in bytes.
"""
from __future__ import annotations

import random
import struct
from typing import Dict, Iterator, List, Optional, Tuple

from . import arm64 as a64
from . import x86
from .alloc import FrameAllocator
from .geometry import M64
from .layout import (ARM64_ERAS, G, M, MODES, STRUCT_PAGE, X86_FIXADDR_TOP,
                     X86_KERNEL_IMAGE_SIZE, X86_LOAD_PHYSICAL_ADDR, X86_MODULES_END,
                     X86_START_KERNEL_MAP, X86_VSYSCALL_ADDR, Mode, arm64_layout,
                     arm64_memstart_align, x86_kaslr_bases, x86_layout)
from .physmem import SparseMemory
from .space import AddressSpace, MappedRange, Truth

K = 1 << 10
#: Image sections as offsets from _text: text, rodata, data (holding the root
#: table at ``ROOT_OFF``), bss.  Multiples of 2 MiB / 64 KiB so every granule fits.
IMAGE_TEXT, IMAGE_RODATA, IMAGE_DATA, IMAGE_END = 0x600000, 0x820000, 0xA00000, 0xC00000
ROOT_OFF = 0x9F0000
#: Above every modelled RAM bank of a 52-bit-PA machine sits one more bank
#: whose address uses PA bits 51, 49 and 48, to exercise LPA/LPA2 encodings.
HIGH_BANK_PA = 0x000B000000000000
HIGH_BANK_SIZE = 64 * M


class KernelModel:
    """The result of :func:`build_kernel`; see the module docstring."""

    def __init__(self, mode: Mode, memory: SparseMemory, allocator: FrameAllocator,
                 space: AddressSpace, params: Dict[str, object], rng: random.Random) -> None:
        self.mode = mode
        self.memory = memory
        self.allocator = allocator
        self.space = space
        self.params = params
        self.rng = rng
        self.user: Optional[AddressSpace] = None
        self.regions: List[Tuple[str, int, int]] = []
        self._vmalloc_next = 0

    # -- ground truth -------------------------------------------------------------
    def truth(self, va: int) -> Truth:
        """Ground truth of kernel virtual ``va`` (through swapper_pg_dir)."""
        return self.space.truth(va)

    def mapped_ranges(self) -> Iterator[MappedRange]:
        """Coalesced runs (va, size, pa, page_size) of the kernel address space."""
        return self.space.mapped_ranges()

    def linear_va(self, pa: int) -> int:
        """Linear-map (direct-map) virtual address of physical ``pa``."""
        p = self.params
        if p["arch"] == "x86_64":
            return (p["page_offset"] + pa) & M64
        return ((pa - p["PHYS_OFFSET"]) + p["page_offset"]) & M64

    # -- allocations ----------------------------------------------------------------
    def _fill(self, va: int, pa: int, size: int, step: int) -> None:
        """Write each ``step``-sized piece's own virtual address at its start."""
        for off in range(0, size, step):
            self.memory.write(pa + off, struct.pack("<Q", va + off))

    def kmalloc(self, size: int, *, fill: bool = True) -> int:
        """Allocate physically contiguous memory; returns its linear-map virtual address.

        With ``fill`` each 4 KiB piece starts with its own virtual address.
        """
        align = 8
        while align < min(size, self.mode.page_size):
            align <<= 1
        pa = self.allocator.alloc(max(size, 8), align, below=self.params["linear_end_pa"])
        va = self.linear_va(pa)
        if fill:
            self._fill(va, pa, size, 4096)
        return va

    def vmalloc(self, size: int, huge: bool = False, *, fill: bool = True,
                flags: Optional[frozenset] = None) -> int:
        """Map ``size`` bytes of physically scattered frames in the vmalloc area.

        ``huge`` uses PMD leaves (x86-64 2 MiB, arm64 4K: 2 MiB blocks) or,
        on 16K/64K arm64, 2 MiB contiguous-PTE runs (arch_vmap_pte_supported_shift).
        Returns the virtual address; a guard page follows, as in vmalloc.
        """
        ps = self.mode.page_size
        if huge:
            chunk = 2 * M
        else:
            chunk = ps
        size = -(-size // chunk) * chunk
        va = -(-self._vmalloc_next // chunk) * chunk
        if va + size > self.params["vmalloc_end"]:
            raise MemoryError("vmalloc area exhausted")
        self._vmalloc_next = va + size + ps
        for off in range(0, size, chunk):
            pa = self.allocator.alloc(chunk)
            if huge and ps == 4096:
                self.space.map(va + off, pa, chunk, chunk, flags)
            else:
                self.space.map(va + off, pa, chunk, ps, flags, cont=huge)
            if fill:
                self._fill(va + off, pa, chunk, ps if not huge else chunk)
        return va

    # -- dumps ----------------------------------------------------------------------
    def vmcoreinfo(self) -> str:
        """VMCOREINFO text a kernel of this layout would write."""
        from .vmcore import vmcoreinfo_text
        return vmcoreinfo_text(self)

    def write_vmcore(self, path) -> None:
        """Write an ELF64 kdump-style core of the model to ``path``."""
        from .vmcore import write_elf_core
        write_elf_core(self, path)

    def drgn_program(self):
        """A drgn Program reading the model's memory directly (no file)."""
        from .vmcore import drgn_program
        return drgn_program(self)


def _x86_kernel(mode: Mode, rng: random.Random, ram_bytes: int, kaslr: bool,
                sme_mask: int, phys_bits: Optional[int]) -> KernelModel:
    five = mode.va_bits == 57
    phys_bits = phys_bits or mode.phys_bits
    ram = [(0, 0x9F000), (1 * M, ram_bytes)]
    # the high bank only fits a 5-level direct map (4-level maps 2^46 bytes)
    if phys_bits == 52 and not sme_mask and five:
        ram.append((HIGH_BANK_PA, HIGH_BANK_PA + HIGH_BANK_SIZE))
    for s, e in ram:
        if (e - 1) >> phys_bits or (e - 1) & sme_mask:
            raise ValueError(f"RAM [0x{s:x}, 0x{e:x}) does not fit {phys_bits}-bit PAs "
                             f"and sme_mask 0x{sme_mask:x}")
    memory = SparseMemory(ram)
    allocator = FrameAllocator(ram, rng)
    allocator.reserve(0, 1 * M if ram_bytes > 1 * M else 0x9F000)   # BIOS, real mode

    lay = x86_layout(five)
    if kaslr:
        lay.update(x86_kaslr_bases(five, ram[-1][1], rng))
        kernel_offset = rng.randrange(0, (X86_KERNEL_IMAGE_SIZE - 64 * M) // (2 * M)) * 2 * M
        load_pa = allocator.alloc(IMAGE_END, 2 * M, below=ram_bytes)
    else:
        kernel_offset = 0
        load_pa = allocator.reserve(X86_LOAD_PHYSICAL_ADDR, IMAGE_END)
    text_va = X86_START_KERNEL_MAP + X86_LOAD_PHYSICAL_ADDR + kernel_offset
    phys_base = load_pa - X86_LOAD_PHYSICAL_ADDR - kernel_offset
    enc = x86.X86Encoder(phys_bits=phys_bits, sme_mask=sme_mask)
    space = AddressSpace(mode.geometry(), enc, memory, allocator, root_pa=load_pa + ROOT_OFF,
                         canonical_bits=mode.va_bits, half="both")
    params = _common_params(mode, space, phys_bits)
    params.update({
        "sme_mask": sme_mask, "phys_base": phys_base, "KERNELOFFSET": kernel_offset,
        "page_offset": lay["page_offset_base"], "PHYS_OFFSET": 0,
        "vmalloc_start": lay["vmalloc_base"],
        "vmalloc_end": lay["vmalloc_base"] + (lay["vmalloc_size_tb"] << 40),
        "vmemmap_start": lay["vmemmap_base"],
        "vmemmap_end": lay["vmemmap_base"] + (1 << (lay["max_physmem_bits"] - 12)) * STRUCT_PAGE,
        "modules_vaddr": X86_START_KERNEL_MAP + X86_KERNEL_IMAGE_SIZE,
        "modules_end": X86_MODULES_END, "fixaddr_top": X86_FIXADDR_TOP,
        "kernel_image_size": X86_KERNEL_IMAGE_SIZE, "kimage_voffset": None,
        "text_va": text_va, "end_va": text_va + IMAGE_END, "text_pa": load_pa,
        "root_va": text_va + ROOT_OFF, "linear_end_pa": 1 << lay["max_physmem_bits"],
        "max_physmem_bits": lay["max_physmem_bits"],
    })
    model = KernelModel(mode, memory, allocator, space, params, rng)

    # Kernel image: early tables carry _PAGE_TABLE (with USER), as head_64.S sets them.
    sp = space
    sp.map(text_va, load_pa, IMAGE_TEXT, 2 * M, x86.PAGE_KERNEL_ROX, table_flags=x86.USER_TABLE)
    sp.map(text_va + IMAGE_TEXT, load_pa + IMAGE_TEXT, 2 * M, 2 * M, x86.PAGE_KERNEL_RO)
    sp.map(text_va + IMAGE_TEXT + 2 * M, load_pa + IMAGE_TEXT + 2 * M,
           IMAGE_RODATA - IMAGE_TEXT - 2 * M, 4096, x86.PAGE_KERNEL_RO)
    sp.map(text_va + IMAGE_RODATA, load_pa + IMAGE_RODATA, IMAGE_DATA - IMAGE_RODATA, 4096)
    sp.map(text_va + IMAGE_DATA, load_pa + IMAGE_DATA, IMAGE_END - IMAGE_DATA, 2 * M)
    model.regions.append(("kernel image", text_va, text_va + IMAGE_END))

    # Fixmap and the vsyscall page (user-readable, under USER tables).
    sp.map(X86_VSYSCALL_ADDR, load_pa + IMAGE_TEXT - 4096, 4096, 4096,
           x86.PAGE_USER_RO_EXEC | {"NX"}, table_flags=x86.USER_TABLE)
    # Slot n is at FIXADDR_TOP - n pages: local APIC, IO-APIC, text_poke pages,
    # and two early_ioremap (FIX_BTMAP) slots near FIXADDR_START (~0xffffffffff5xx000).
    for slot, pa, flags in [(1, 0xFEE00000, x86.PAGE_KERNEL_NOCACHE),
                            (2, 0xFEC00000, x86.PAGE_KERNEL_NOCACHE),
                            (3, allocator.alloc(4096), x86.PAGE_KERNEL),
                            (4, load_pa + 0x100000, x86.PAGE_KERNEL_RO),
                            (0x250, allocator.alloc(4096), x86.PAGE_KERNEL),
                            (0x251, 0xFED00000, x86.PAGE_KERNEL_NOCACHE)]:
        sp.map(X86_FIXADDR_TOP - slot * 4096, pa, 4096, 4096, flags)
    model.regions.append(("fixmap", X86_FIXADDR_TOP - 0x300 * 4096, X86_FIXADDR_TOP + 4096))

    _linear_and_kfence(model, [(model.linear_va(s), s, e) for s, e in ram],
                       x86.PAGE_KERNEL, None, 1 << 30, False)
    model.regions.append(("direct map", lay["page_offset_base"],
                          lay["page_offset_base"] + (1 << lay["max_physmem_bits"])))

    # vmemmap: 2 MiB leaves backing struct pages (vmemmap_populate_hugepages).
    _vmemmap(model, lay["vmemmap_base"], 0, ram, 2 * M)

    # Modules: text ROX, data RW+NX, 4 KiB scattered frames, guard page between.
    mod_va = params["modules_vaddr"] + (rng.randrange(1, 1025) * 4096 if kaslr else 0)
    _modules(model, mod_va, x86.PAGE_KERNEL_ROX, x86.PAGE_KERNEL)

    model._vmalloc_next = params["vmalloc_start"] + (rng.randrange(0, 4096) * 4096 if kaslr else 0)
    _vmalloc_areas(model)
    _user_space(model, x86.X86Encoder(phys_bits=phys_bits, sme_mask=sme_mask), "both",
                frozenset({"P", "RW", "US", "A", "D", "NX"}), x86.USER_TABLE)
    return model


def _arm64_kernel(mode: Mode, rng: random.Random, ram_bytes: int, kaslr: bool, era: str,
                  phys_bits: Optional[int]) -> KernelModel:
    ps = mode.page_size
    phys_bits = phys_bits or mode.phys_bits
    ram_bytes = ram_bytes // ps * ps
    ram = [(0x40000000, 0x40000000 + ram_bytes)]
    if phys_bits == 52:
        ram.append((HIGH_BANK_PA, HIGH_BANK_PA + HIGH_BANK_SIZE))
    memory = SparseMemory(ram)
    allocator = FrameAllocator(ram, rng)
    lay = arm64_layout(mode, era)
    act = mode.runtime_va_bits
    nonpresent = "6.10+" if era == "6.9" else "pre-6.10"
    enc = a64.Arm64Encoder(mode.page_shift, mode.pa_encoding, nonpresent_layout=nonpresent)

    # PHYS_OFFSET (memstart_addr): RAM base rounded down; on a 52-bit build
    # running with fewer VA bits it is lowered by _PAGE_OFFSET(vabits_actual) -
    # _PAGE_OFFSET(52) (arch/arm64/mm/init.c arm64_memblock_init()).
    memstart = ram[0][0] // arm64_memstart_align(mode.page_shift) * \
        arm64_memstart_align(mode.page_shift)
    if mode.va_bits == 52 and act < 52:
        memstart -= (1 << 52) - (1 << act)
    phys_offset = memstart & M64

    # Image: 2 MiB-aligned load address; KASLR offset in the vmalloc area.
    if kaslr:
        vrange = (lay["vmalloc_end"] - lay["kimage_vaddr"]) // 2
        kernel_offset = (vrange // 2 + rng.randrange(vrange // 2)) & ~(2 * M - 1)
        load_pa = allocator.alloc(IMAGE_END, 2 * M, below=ram[0][1])
    else:
        kernel_offset = 0
        load_pa = allocator.reserve(ram[0][0] + 2 * M, IMAGE_END)
    text_va = lay["kimage_vaddr"] + kernel_offset
    kimage_voffset = (text_va - load_pa) & M64
    space = AddressSpace(mode.geometry(), enc, memory, allocator, root_pa=load_pa + ROOT_OFF,
                         canonical_bits=act, half="upper")
    params = _common_params(mode, space, phys_bits)
    params.update({
        "sme_mask": 0, "phys_base": None, "KERNELOFFSET": kernel_offset,
        "page_offset": lay["page_offset"], "PHYS_OFFSET": phys_offset,
        "kimage_voffset": kimage_voffset, "era": era, "nonpresent_layout": nonpresent,
        # the newest release each era's layout fits
        "osrelease": {"6.9": "6.12.0", "5.11": "6.1.0", "5.4": "5.10.0", "4.x": "5.3.0"}[era]
        + "-kmemdbg-model",
        "tcr_el1_t1sz": 64 - act, "text_va": text_va, "end_va": text_va + IMAGE_END,
        "text_pa": load_pa, "root_va": text_va + ROOT_OFF,
        "linear_end_pa": (lay["page_end"] - lay["page_offset"] + memstart) & M64
        if era != "4.x" else memstart + (1 << (mode.va_bits - 1)),
        "linear_start_va": lay["linear_start"],
    })
    params.update({k: v for k, v in lay.items() if k not in params})
    if mode.walk_va_bits != act:
        # TTBR1 points at the last 2**(act - top shift) entries of the 52-bit table.
        top = mode.geometry().levels[0]
        params["ttbr1_pa"] = space.root_pa + 8 * (top.entries - (1 << (act - top.shift)))
    model = KernelModel(mode, memory, allocator, space, params, rng)

    sp = space
    big = 2 * M if ps == 4096 else None
    sp.map_largest(text_va, load_pa, IMAGE_TEXT, a64.PAGE_KERNEL_ROX, max_page=big, cont=True)
    sp.map_largest(text_va + IMAGE_TEXT, load_pa + IMAGE_TEXT, IMAGE_RODATA - IMAGE_TEXT,
                   a64.PAGE_KERNEL_RO, max_page=ps, cont=True)
    sp.map(text_va + IMAGE_RODATA, load_pa + IMAGE_RODATA, IMAGE_END - IMAGE_RODATA, ps,
           a64.PAGE_KERNEL)
    model.regions.append(("kernel image", text_va, text_va + IMAGE_END))

    # Fixmap: slot n at FIXADDR_TOP - n pages; a UART and two RAM pages.
    top = lay["fixaddr_top"]
    sp.map(top - ps, 0x09000000, ps, ps, a64.PROT_NORMAL, attr_index=a64.MT_DEVICE_nGnRE)
    sp.map(top - 2 * ps, allocator.alloc(ps), ps, ps, a64.PAGE_KERNEL)
    sp.map(top - 3 * ps, load_pa, ps, ps, a64.PAGE_KERNEL_RO)
    model.regions.append(("fixmap", top - 64 * ps, top + ps))
    # PCI I/O window (device memory of QEMU virt).
    sp.map(lay["pci_io_start"], 0x3EFF0000, 0x10000, ps, a64.PROT_NORMAL,
           attr_index=a64.MT_DEVICE_nGnRE)
    model.regions.append(("PCI I/O", lay["pci_io_start"], lay["pci_io_end"]))

    max_leaf = {4096: G, 16384: 32 * M, 65536: 512 * M}[ps]
    _linear_and_kfence(model, [(model.linear_va(s), s, e) for s, e in ram], a64.PAGE_KERNEL,
                       a64.LINEAR_TABLE, max_leaf, True)
    model.regions.append(("linear map", lay["linear_start"], lay["page_end"] & M64))

    # vmemmap = VMEMMAP_START - (memstart_addr >> PAGE_SHIFT) * sizeof(struct page),
    # with memstart_addr signed (it is negative on 52-bit builds on 48-bit CPUs).
    signed_memstart = memstart if memstart < 1 << 63 else memstart - (1 << 64)
    vmemmap = (lay["vmemmap_start"] - (signed_memstart >> mode.page_shift) * STRUCT_PAGE) & M64
    params["vmemmap"] = vmemmap
    _vmemmap(model, vmemmap, 0, ram, 2 * M if ps == 4096 else ps)

    # Modules sit next to the image: [_end - 128M, _end) without KASLR.
    mod_va = max(text_va + IMAGE_END - 128 * M, lay["modules_vaddr"])
    if kaslr:
        mod_va = text_va - rng.randrange(1, 1024) * 2 * M
    _modules(model, mod_va, a64.PAGE_KERNEL_ROX, a64.PAGE_KERNEL)

    model._vmalloc_next = lay["vmalloc_start"] + IMAGE_END + 1 * G + \
        (rng.randrange(0, 4096) * ps if kaslr else 0)
    if model._vmalloc_next >= text_va - 256 * M and model._vmalloc_next < text_va + IMAGE_END:
        model._vmalloc_next = text_va + IMAGE_END + 1 * G
    _vmalloc_areas(model)
    _user_space(model, a64.Arm64Encoder(mode.page_shift, mode.pa_encoding,
                                        nonpresent_layout=nonpresent), "lower",
                frozenset({"USER", "AF", "nG", "PXN", "DBM"}), frozenset())
    return model


def _common_params(mode: Mode, space: AddressSpace, phys_bits: int) -> Dict[str, object]:
    return {
        "mode": mode.name, "arch": mode.arch, "levels": len(mode.geometry().levels),
        "page_size": mode.page_size, "page_shift": mode.page_shift, "va_bits": mode.va_bits,
        "runtime_va_bits": mode.runtime_va_bits, "walk_va_bits": mode.walk_va_bits,
        "phys_bits": phys_bits, "pa_encoding": mode.pa_encoding, "root_pa": space.root_pa,
        "ttbr1_pa": space.root_pa, "osrelease": "6.12.0-kmemdbg-model",
        "ram": tuple(space.memory.ram_ranges),
    }


def _linear_and_kfence(model: KernelModel, banks, flags, table_flags, max_leaf: int,
                       cont: bool) -> None:
    """Linear map of every RAM bank, except a 2 MiB KFENCE-like pool in the first
    big bank mapped with base pages whose even pages are non-present guards."""
    sp, ps = model.space, model.mode.page_size
    pool_pa = model.allocator.alloc(2 * M, 2 * M)
    model.params["kfence_pool_pa"] = pool_pa
    for va, s, e in banks:
        pieces = [(s, e)]
        if s <= pool_pa < e:
            pieces = [(s, pool_pa), (pool_pa + 2 * M, e)]
        for ps_, pe in pieces:
            if pe > ps_:
                sp.map_largest(va + ps_ - s, ps_, pe - ps_, flags, max_page=max_leaf, cont=cont,
                               table_flags=table_flags)
    pool_va = model.linear_va(pool_pa)
    model.params["kfence_pool_va"] = pool_va
    for i, off in enumerate(range(0, 2 * M, ps)):
        if i % 2:
            sp.map(pool_va + off, pool_pa + off, ps, ps, flags, table_flags=table_flags)
        else:
            sp.set_not_present(pool_va + off, pool_pa + off, ps)


def _vmemmap(model: KernelModel, vmemmap_va: int, base_pfn: int, ram, leaf: int) -> None:
    """Back struct pages of RAM (at most 1 GiB of vmemmap per bank) with ``leaf`` pages."""
    shift = model.mode.page_shift
    for s, e in ram:
        start = vmemmap_va + ((s >> shift) - base_pfn) * STRUCT_PAGE
        end = vmemmap_va + ((e >> shift) - base_pfn) * STRUCT_PAGE
        start &= ~(leaf - 1)
        end = min(-(-end // leaf) * leaf, start + G)
        for va in range(start, end, leaf):
            if model.space.truth(va).status == "mapped":
                continue                       # shared with the previous bank
            model.space.map(va, model.allocator.alloc(leaf), leaf, leaf)
    model.regions.append(("vmemmap", model.params["vmemmap_start"], model.params["vmemmap_end"]))


def _modules(model: KernelModel, va: int, rox, rw) -> None:
    ps = model.mode.page_size
    for text_pages, data_pages in ((3, 2), (1, 1), (6, 3), (2, 5)):
        for pages, flags in ((text_pages, rox), (data_pages, rw)):
            for _ in range(pages):
                pa = model.allocator.alloc(ps)
                model.space.map(va, pa, ps, ps, flags)
                model.memory.write(pa, struct.pack("<Q", va))
                va += ps
            va += ps                           # guard page
    model.regions.append(("modules", model.params["modules_vaddr"], model.params["modules_end"]))


def _vmalloc_areas(model: KernelModel) -> None:
    start = model._vmalloc_next
    for _ in range(6):
        model.vmalloc(4 * model.mode.page_size)            # e.g. stacks
    if model.mode.page_size == 4096 or model.memory.ram_ranges[-1][1] > 64 * M:
        model.vmalloc(4 * M, huge=True)
    model.regions.append(("vmalloc", model.params["vmalloc_start"], model.params["vmalloc_end"]))
    model.params["vmalloc_used"] = (start, model._vmalloc_next)


def _user_space(model: KernelModel, enc, half: str, flags, table_flags) -> None:
    """A process address space: a few pages, PROT_NONE pages and swap entries."""
    mode, ps = model.mode, model.mode.page_size
    bits = mode.runtime_va_bits
    user = AddressSpace(mode.geometry(), enc, model.memory, model.allocator,
                        canonical_bits=bits, half=half)
    base = 0x400000 if ps < 65536 else 0x4000000
    for i in range(4):
        pa = model.allocator.alloc(ps)
        user.map(base + i * ps, pa, ps, ps, flags, table_flags=table_flags)
        model.memory.write(pa, struct.pack("<Q", base + i * ps))
    user.set_prot_none(base + 5 * ps, model.allocator.alloc(ps))
    user.set_prot_none(base + 6 * ps, model.allocator.alloc(ps))
    user.set_swap(base + 8 * ps, 1, 0x1234)
    user.set_swap(base + 9 * ps, 3, (1 << 40) + 5)
    stack = (1 << (bits - 1)) - 16 * ps
    user.map(stack, model.allocator.alloc(ps), ps, ps, flags, table_flags=table_flags)
    model.user = user
    model.params["user_root_pa"] = user.root_pa


def build_kernel(mode: str, seed: int = 0, ram_bytes: Optional[int] = None, *,
                 kaslr: bool = True, sme_mask: int = 0, phys_bits: Optional[int] = None,
                 era: str = "6.9") -> KernelModel:
    """Build a kernel-like model for ``mode`` (a key of :data:`MODES`).

    ``ram_bytes`` is the end of the first RAM bank relative to its start
    (default 2 GiB + 6 MiB + 20 KiB, so the linear map needs tails).
    ``sme_mask`` (x86-64) is the C-bit set in every table and leaf entry;
    ``phys_bits`` the physical address width (default per mode; 52-bit
    machines get a second RAM bank at 0xb000000000000); ``era`` the arm64
    layout ("6.9", "5.11", "5.4" or "4.x").
    """
    try:
        m = MODES[mode]
    except KeyError:
        raise ValueError(f"unknown mode {mode!r}; pick one of {sorted(MODES)}") from None
    rng = random.Random(seed)
    if ram_bytes is None:
        ram_bytes = 2 * G + 6 * M + 20 * K
    if m.arch == "x86_64":
        if era != "6.9":
            raise ValueError("eras are an arm64 notion")
        return _x86_kernel(m, rng, ram_bytes, kaslr, sme_mask, phys_bits)
    if sme_mask:
        raise ValueError("sme_mask is an x86-64 notion")
    if era not in ARM64_ERAS:
        raise ValueError(f"unknown era {era!r}")
    return _arm64_kernel(m, rng, ram_bytes, kaslr, era, phys_bits)
