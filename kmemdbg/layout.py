"""Kernel virtual-memory layout, discovered from several sources with evidence.

Every bound of every region says where it came from: a VMCOREINFO key, a
symbol's value read from memory, the ELF program headers, the page tables
themselves, or a layout rule of the paging mode.  When two sources give
different values for the same quantity the layout keeps the preferred one
and records a :class:`Disagreement` instead of choosing silently.

Layout rules are keyed by evidence (a VMCOREINFO key, a symbol, the place of
``_stext``), never by the kernel version number, because distributions
backport layout changes.  The rules of each architecture are its
``layout_rules`` hook (``kmemdbg/arch/<name>/layout.py``); this module holds
the evidence, the builder they fill and the resulting :class:`Layout`.

All ``start``/``end`` values are virtual addresses; ``end`` is exclusive.
Physical quantities (``phys_base``, ``phys_offset``) say so in their names.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .arch import UnknownArchitectureError, arch_named
from .arch.base import MASK64
from .vmcoreinfo import VmcoreInfo

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
        sources = self.__dict__.get("_source_map")
        if sources is None:
            sources = {}
            for k, v in self.value_sources:
                sources.setdefault(k, v)      # the first one given, as the scan it replaces
            object.__setattr__(self, "_source_map", sources)
        got = sources.get(name)
        if got is not None:
            return got
        self.value(name)
        return self.__dict__.get("_deferred_sources", {}).get(name, "unknown")

    def __post_init__(self) -> None:
        # region_of's index, built with the layout: a per-address lookup reads a plain attribute
        object.__setattr__(self, "_segments", self._index())

    def region_of(self, va: int) -> Region:
        """The most specific region holding virtual ``va`` (an ``unknown`` region when none)."""
        starts, owners = self._segments  # type: ignore[attr-defined]
        return owners[bisect.bisect_right(starts, va & MASK64) - 1]

    def _index(self):
        """The prioritised regions flattened into sorted, non-overlapping segments: (starts, owners)."""
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


def discover(ev: Evidence) -> Layout:
    """Build the layout of the kernel described by ``ev``; never raises for missing data."""
    b = _Builder(ev)
    try:
        rules = arch_named(ev.arch).layout_rules
    except UnknownArchitectureError:
        b.missing.append(f"layout rules for {ev.arch}")
    else:
        rules(b)
    return b.done()


__all__ = ["KINDS", "Region", "Disagreement", "Layout", "Evidence", "discover"]
