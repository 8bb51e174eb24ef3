"""Kernel virtual-memory layout, discovered from several sources with evidence.

Every bound of every region says where it came from: a VMCOREINFO key, a
symbol's value read from memory, the ELF program headers, the page tables
themselves, or a layout rule of the paging mode.  When two sources give
different values for the same quantity the layout keeps the preferred one
and records a :class:`Disagreement` instead of choosing silently.

Layout rules are keyed by evidence (a VMCOREINFO key, a symbol, the place of
``_stext``), never by the kernel version number, because distributions
backport layout changes.  Sources: ``Documentation/arch/x86/x86_64/mm.rst``,
``arch/x86/include/asm/pgtable_64_types.h`` and ``arch/arm64/include/asm/memory.h``
of 6.1 and 6.12 (see the reference notes for the eras of arm64).

All ``start``/``end`` values are virtual addresses; ``end`` is exclusive.
Physical quantities (``phys_base``, ``phys_offset``) say so in their names.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .vmcoreinfo import VmcoreInfo, signed64

MASK64 = (1 << 64) - 1
START_KERNEL_MAP = 0xFFFFFFFF80000000
X86_MODULES_END = 0xFFFFFFFFFF000000
X86_FIXADDR_TOP = 0xFFFFFFFFFF7FF000
TIB = 1 << 40

# The vocabulary of region kinds is part of the JSON contract.
KINDS = ("linear", "vmalloc", "module", "kernel-image", "vmemmap", "fixmap", "percpu",
         "kasan-shadow", "cpu-entry-area", "ldt-remap", "espfix", "efi", "pci-io", "user",
         "non-canonical", "unknown")


@dataclass(frozen=True)
class Region:
    """A virtual range ``[start, end)`` of one ``kind``, with the source of each bound."""

    kind: str
    name: str
    start: int
    end: int
    start_source: str
    end_source: str
    note: str = ""

    def __contains__(self, va: int) -> bool:
        return self.start <= va < self.end

    @property
    def source(self) -> str:
        if self.start_source == self.end_source:
            return self.start_source
        return f"start: {self.start_source}; end: {self.end_source}"


@dataclass(frozen=True)
class Disagreement:
    """Two or more sources that gave different values for ``quantity``; ``chosen`` was kept."""

    quantity: str
    values: Tuple[Tuple[int, str], ...]
    chosen: int

    def message(self) -> str:
        vals = ", ".join(f"0x{v:x} from {s}" for v, s in self.values)
        return f"sources disagree on {self.quantity}: {vals}; using 0x{self.chosen:x}"


@dataclass(frozen=True)
class Layout:
    """The regions of one kernel, most specific first, plus what is known of its arithmetic.

    ``values`` holds the quantities ``__pa()`` needs, keyed by kernel name
    (``page_offset_base``, ``phys_base``, ``PAGE_OFFSET``, ``PAGE_END``,
    ``PHYS_OFFSET``, ``kimage_voffset``...), each with its source in
    ``value_sources``.  ``missing`` lists evidence that was looked for and
    not found.
    """

    arch: str
    regions: Tuple[Region, ...]
    values: Tuple[Tuple[str, int], ...]
    value_sources: Tuple[Tuple[str, str], ...]
    disagreements: Tuple[Disagreement, ...] = ()
    missing: Tuple[str, ...] = ()
    #: (name, callable) for quantities read only when first asked for (they need
    #: type information, e.g. ``x86_phys_bits`` from ``boot_cpu_data``); the
    #: callable returns (value, source) or None.
    deferred: Tuple[Tuple[str, Callable[[], Optional[Tuple[int, str]]]], ...] = \
        field(default=(), compare=False, repr=False)
    #: quantities for which no evidence was found and a default was taken (a guess).
    guessed: Tuple[str, ...] = ()

    def value(self, name: str) -> Optional[int]:
        table = self.__dict__.get("_value_map")
        if table is None:
            table = dict(self.values)
            object.__setattr__(self, "_value_map", table)
        if name not in table:
            self._resolve(name)
        return table.get(name)

    def _resolve(self, name: str) -> None:
        table, sources = self.__dict__["_value_map"], self.__dict__.setdefault("_deferred_sources", {})
        for key, fn in self.deferred:
            if key == name:
                try:
                    got = fn()
                except Exception as err:  # noqa: BLE001 - evidence, not a requirement
                    got, why = None, str(err).splitlines()[0] if str(err) else type(err).__name__
                else:
                    why = "not in the dump"
                if got is None:
                    table[name] = None
                    sources[name] = f"unknown ({why})"
                else:
                    table[name], sources[name] = got
                return

    def value_source(self, name: str) -> str:
        for k, v in self.value_sources:
            if k == name:
                return v
        self.value(name)
        return self.__dict__.get("_deferred_sources", {}).get(name, "unknown")

    def region_of(self, va: int) -> Region:
        """The most specific region holding virtual ``va`` (an ``unknown`` region when none)."""
        starts, owners = self._index()
        i = bisect.bisect_right(starts, va & MASK64) - 1
        return owners[i]

    def _index(self):
        """Flatten the prioritised regions into sorted, non-overlapping segments (built once)."""
        cached = self.__dict__.get("_segments")
        if cached is not None:
            return cached
        cuts = sorted({0} | {r.start for r in self.regions} | {r.end for r in self.regions if r.end < 1 << 64})
        starts, owners = [], []
        for i, lo in enumerate(cuts):
            hi = cuts[i + 1] if i + 1 < len(cuts) else 1 << 64
            owner = next((r for r in self.regions if r.start <= lo < r.end), None)
            if owner is None:
                below = max((r.end for r in self.regions if r.end <= lo), default=0)
                above = min((r.start for r in self.regions if r.start >= hi), default=1 << 64)
                owner = Region("unknown", "unassigned kernel hole", below, above,
                               "gap between known regions", "gap between known regions")
            if owners and owners[-1] is owner:
                continue
            starts.append(lo)
            owners.append(owner)
        object.__setattr__(self, "_segments", (starts, owners))
        return starts, owners


@dataclass
class Evidence:
    """What layout discovery may consult.  Every callable returns None when it cannot answer.

    ``symbol(name)`` gives a symbol's virtual address; ``read_u64(va)`` a
    64-bit word at a virtual address; ``translate(va)`` the physical address
    the page tables give.  ``ram`` lists physical RAM ranges ``(start, end)``
    of the memory source; ``elf_linear_offset`` is ``p_vaddr - p_paddr`` of a
    direct-map PT_LOAD when the dump has one (kexec vmcores, /proc/kcore).
    """

    arch: str
    info: VmcoreInfo
    symbol: Callable[[str], Optional[int]] = lambda name: None
    read_u64: Callable[[int], Optional[int]] = lambda va: None
    read_u32: Callable[[int], Optional[int]] = lambda va: None
    translate: Callable[[int], Optional[int]] = lambda va: None
    #: ``reaches(va, depth)``: whether the walk of ``va`` gets past the first ``depth``
    #: levels (their entries are valid tables), False when it cannot tell.
    reaches: Callable[[int, int], bool] = lambda va, depth: False
    ram: Sequence[Tuple[int, int]] = ()
    elf_linear_offset: Optional[int] = None
    elf_linear_source: str = "ELF program headers"
    #: ``typed_field(symbol, struct, member)``: the unsigned value of ``member`` of the
    #: ``struct`` at ``symbol`` (BTF offsets and size), None when it cannot be read.
    typed_field: Callable[[str, str, str], Optional[int]] = lambda sym, struct, member: None


class _Builder:
    def __init__(self, ev: Evidence) -> None:
        self.ev = ev
        self.regions: List[Region] = []
        self.values: Dict[str, int] = {}
        self.sources: Dict[str, str] = {}
        self.disagreements: List[Disagreement] = []
        self.missing: List[str] = []
        self.guessed: List[str] = []
        self.deferred: List[Tuple[str, Callable[[], Optional[Tuple[int, str]]]]] = []

    def defer_field(self, quantity: str, symbol: str, struct: str, member: str) -> None:
        """``quantity`` is ``symbol``'s ``struct.member``, read when first asked for."""
        def read() -> Optional[Tuple[int, str]]:
            value = self.ev.typed_field(symbol, struct, member)
            return None if value is None else (value, f"{symbol}.{member} (BTF struct {struct})")
        self.deferred.append((quantity, read))

    def pick(self, quantity: str, candidates: Sequence[Tuple[Optional[int], str]],
             tolerance_mask: int = MASK64,
             confirm: Optional[Callable[[int], bool]] = None) -> Optional[Tuple[int, str]]:
        """Keep the first candidate with a value; record a disagreement if others differ.

        When sources disagree and ``confirm(value)`` says which values the page
        tables bear out, the first confirmed candidate is kept instead.  A
        candidate whose source starts with "default" is a guess: choosing it
        adds ``quantity`` to :attr:`guessed`.
        """
        have = [(v & MASK64, s) for v, s in candidates if v is not None]
        if not have:
            self.missing.append(quantity)
            return None
        chosen = have[0]
        distinct = {v & tolerance_mask for v, _ in have if not _.startswith("default")}
        if len(distinct) > 1:
            if confirm is not None:
                good = [(v, s) for v, s in have if not s.startswith("default") and confirm(v)]
                if good and good[0] != chosen:
                    chosen = (good[0][0], f"{good[0][1]}, which the page tables confirm")
            self.disagreements.append(Disagreement(quantity, tuple(have), chosen[0]))
        if chosen[1].startswith("default"):
            self.guessed.append(quantity)
        self.values[quantity] = chosen[0]
        self.sources[quantity] = chosen[1]
        return chosen

    def symbol_word(self, name: str) -> Tuple[Optional[int], str]:
        addr = self.ev.symbol(name)
        if addr is None:
            return None, f"symbol {name}"
        return self.ev.read_u64(addr), f"symbol {name} (word at 0x{addr:x})"

    def add(self, kind: str, name: str, start: int, end: int, ssrc: str, esrc: str, note: str = "") -> None:
        if end > start:
            self.regions.append(Region(kind, name, start & MASK64, min(end, 1 << 64), ssrc, esrc, note))

    def image_bounds(self, default_start: Optional[int], default_end: Optional[int],
                     default_src: str) -> None:
        text, end = self.ev.symbol("_text"), self.ev.symbol("_end")
        if text is not None and end is not None:
            self.add("kernel-image", "kernel image (_text.._end)", text, end, "symbol _text", "symbol _end")
        elif default_start is not None and default_end is not None:
            self.add("kernel-image", "kernel image window", default_start, default_end,
                     default_src, default_src)

    def percpu(self) -> None:
        ev = self.ev
        offsets, nr = ev.symbol("__per_cpu_offset"), ev.symbol("nr_cpu_ids")
        start, end = ev.symbol("__per_cpu_start"), ev.symbol("__per_cpu_end")
        if None in (offsets, nr, start, end):
            return
        count = ev.read_u32(nr)
        if count is None or not 0 < count <= 8192:
            return
        size = (end - start) & MASK64
        for cpu in range(count):
            off = ev.read_u64(offsets + 8 * cpu)
            if off is None:
                continue
            base = (start + off) & MASK64
            self.add("percpu", f"per-cpu area of cpu {cpu}", base, base + size,
                     "__per_cpu_start + __per_cpu_offset[cpu]", "+ (__per_cpu_end - __per_cpu_start)",
                     "static per-cpu data; dynamic chunks are vmalloc or linear allocations")

    def done(self) -> Layout:
        # Overlays (image, per-cpu, modules found inside vmalloc) come first so
        # the most specific region wins; then by start address.
        order = {"percpu": 0, "kernel-image": 1, "module": 2, "fixmap": 3}
        regions = sorted(self.regions, key=lambda r: (order.get(r.kind, 9), r.start))
        return Layout(self.ev.arch, tuple(regions), tuple(self.values.items()),
                      tuple(self.sources.items()), tuple(self.disagreements), tuple(self.missing),
                      tuple(self.deferred), tuple(self.guessed))


# -- x86-64 ----------------------------------------------------------------

def _x86(b: _Builder) -> None:
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
    b.add("module", "module area", START_KERNEL_MAP + image_size, X86_MODULES_END,
          f"__START_KERNEL_map + {isrc}", "MODULES_END")
    b.add("fixmap", "fixmap and vsyscall page", X86_MODULES_END, X86_FIXADDR_TOP + 4096,
          "MODULES_END", "FIXADDR_TOP")
    b.percpu()


# -- arm64 -----------------------------------------------------------------

def _arm64(b: _Builder) -> None:
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
        era = _arm64_era(b, va_bits, va_bits_min, page_shift, flipped, page_offset)
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


def _arm64_era(b: _Builder, va_bits: int, va_bits_min: int, page_shift: int, flipped: bool,
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


def discover(ev: Evidence) -> Layout:
    """Build the layout of the kernel described by ``ev``; never raises for missing data."""
    b = _Builder(ev)
    if ev.arch == "x86_64":
        _x86(b)
    elif ev.arch == "arm64":
        _arm64(b)
    else:
        b.missing.append(f"layout rules for {ev.arch}")
    return b.done()


__all__ = ["KINDS", "Region", "Disagreement", "Layout", "Evidence", "discover"]
