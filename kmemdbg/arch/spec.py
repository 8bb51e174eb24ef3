"""What one architecture provides: the :class:`Arch` record and the values its hooks return.

An architecture folder (``kmemdbg/arch/<name>/``) builds exactly one
:class:`Arch`; generic code reads its data fields and calls its hooks and
never tests an architecture's name.  The result types here cross from the
architecture folders into generic code, so they live beside :class:`Arch`.

Integers: ``*_pa`` physical addresses, ``*_va`` / ``va`` virtual addresses,
``image_base`` virtual.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, FrozenSet, List, NamedTuple, Optional, Sequence, Tuple

from ..errors import LayoutError, SourceError
from .base import MASK64, PagingFormat

if TYPE_CHECKING:  # pragma: no cover - type names only
    from ..layout import Layout
    from ..vmcoreinfo import VmcoreInfo


class UnknownArchitectureError(LayoutError):
    """No architecture of the registry has this name (or id)."""


class PagingOffError(SourceError):
    """The CPU has address translation switched off, so there are no kernel page tables."""


@dataclass(frozen=True)
class KernelTables:
    """The kernel root table at physical ``root_pa`` (``root_va`` virtual) in ``format``.

    ``arch`` is the architecture's name; ``evidence`` names the vmcoreinfo keys
    each value came from.
    """

    arch: str
    format: PagingFormat
    root_pa: int
    root_va: int
    evidence: str


class PaArithmetic(NamedTuple):
    """``pa`` as ``__pa(va)`` computes it, the ``branch`` taken, and what a
    ``CONFIG_DEBUG_VIRTUAL`` kernel would have said (``debug_virtual``)."""

    pa: Optional[int]
    branch: str
    debug_virtual: str


@dataclass(frozen=True)
class PageArray:
    """Where ``struct page`` objects live: ``vmemmap_va`` is the virtual address of
    pfn 0's struct page, ``start_va`` the start of the vmemmap region (arm64's
    ``VMEMMAP_START``; None where unknown), ``entry_bytes`` is ``sizeof(struct page)``
    and ``page_shift`` is PAGE_SHIFT."""

    vmemmap_va: int
    start_va: Optional[int]
    entry_bytes: int
    page_shift: int


@dataclass(frozen=True)
class CpuPaging:
    """The translation regime a live CPU is in at this stop.

    ``root_pa`` is the physical address of the top-level table that
    translates kernel addresses (CR3 on x86-64, TTBR1_EL1 on arm64), or None
    when the stub does not expose it (then ``format`` is None too); ``pc_va``
    the program counter.
    """

    arch: str
    format: Optional[PagingFormat]
    root_pa: Optional[int]
    pc_va: Optional[int]
    evidence: str


#: ``(name, bit, when_set)``: a table-entry restriction ptdump names; ``when_set``
#: False means the restriction is the bit being clear (shown as ``!name``).
TableFlag = Tuple[str, int, bool]


@dataclass(frozen=True)
class Arch:
    """One architecture: identifiers, facts read by generic code, and its hooks.

    Data
        ``name`` the name kmemdbg prints ("x86_64", "arm64"); ``display`` the
        spelling of messages ("x86-64"); ``elf_machine`` ELF ``e_machine``;
        ``kdump_machines`` utsname machine strings of a kdump header;
        ``host_machines`` ``os.uname().machine`` of a host of this arch;
        ``drgn_arch`` the ``drgn.Architecture`` member name; ``crash_machine``
        crash's machine type; ``crash_define`` the ``-D`` of the crash
        extension build; ``gdb_names`` gdb architecture names (a trailing
        ``*`` matches a prefix); ``page_sizes`` allowed PAGESIZE values;
        ``kernel_half`` / ``user_half`` which half of the VA space the kernel
        root / a user root translates ("both": one sign-extended space;
        "upper"/"lower": TTBR1/TTBR0 halves); ``image_base`` the va the
        kernel image's linear offset is relative to (x86-64
        ``__START_KERNEL_map``; None elsewhere); ``vmcoreinfo_marks`` keys
        whose presence in VMCOREINFO says "this arch"; ``ptdump_use_bits``
        entry bits that record use (ranges are not split on them) and
        ``ptdump_use_flags`` the flag names of those bits (not printed);
        ``ptdump_table_flags`` the table restrictions ptdump names;
        ``ptdump_leaf_bits`` bits to OR into a leaf's attributes before naming
        its flags (the present bit ptdump strips on x86-64); ``vsyscall_va``
        the va of a user-readable-by-design kernel page (None: none);
        ``expects_pxn`` whether the kernel maps data regions privileged-
        execute-never (the audit's exec-without-pxn and user-exec checks).

    Hooks (callables, documented in :mod:`kmemdbg.arch`)
        ``kernel_tables``, ``check_vmcoreinfo``, ``kernel_half_floor``,
        ``layout_rules``, ``kernel_pa``, ``virt_to_page``, ``linear_va``,
        ``vmemmap_base``, ``cpu_paging``, ``scan_order``.
    """

    name: str
    display: str
    elf_machine: int
    kdump_machines: Tuple[str, ...]
    host_machines: Tuple[str, ...]
    drgn_arch: str
    crash_machine: str
    crash_define: str
    gdb_names: Tuple[str, ...]
    page_sizes: Tuple[int, ...]
    kernel_half: str
    user_half: str
    image_base: Optional[int]
    vmcoreinfo_marks: Tuple[str, ...]
    ptdump_use_bits: int
    ptdump_use_flags: FrozenSet[str]
    ptdump_table_flags: Tuple[TableFlag, ...]
    ptdump_leaf_bits: int
    vsyscall_va: Optional[int]
    expects_pxn: bool
    kernel_tables: Callable[["VmcoreInfo", int], KernelTables] = field(compare=False, repr=False)
    check_vmcoreinfo: Callable[["VmcoreInfo", Callable[[str, str], None]], None] = \
        field(compare=False, repr=False)
    kernel_half_floor: Callable[["VmcoreInfo"], int] = field(compare=False, repr=False)
    layout_rules: Callable[[object], None] = field(compare=False, repr=False)
    kernel_pa: Callable[["Layout", int], PaArithmetic] = field(compare=False, repr=False)
    virt_to_page: Callable[["Layout", int, PageArray], PaArithmetic] = field(compare=False, repr=False)
    linear_va: Callable[["Layout", int], Optional[int]] = field(compare=False, repr=False)
    vmemmap_base: Callable[["VmcoreInfo", "Layout", int, int], Optional[int]] = \
        field(compare=False, repr=False)
    cpu_paging: Callable[[object], CpuPaging] = field(compare=False, repr=False)
    scan_order: Callable[[CpuPaging, object, int], List[Tuple[int, int]]] = \
        field(compare=False, repr=False)

    # -- address-space halves (data-driven: no arch names) -----------------------
    def va_of(self, fmt: PagingFormat, bits_value: int, high: bool = True) -> int:
        """The virtual address of the ``fmt.va_bits``-bit table index bits ``bits_value``.

        A "both" kernel half is one sign-extended space (from bit ``va_bits - 1``);
        otherwise ``high`` says the tables are the upper (TTBR1) half's.
        """
        if self.kernel_half == "both":
            if bits_value >> (fmt.va_bits - 1) & 1:
                return (bits_value | (MASK64 << fmt.va_bits)) & MASK64
            return bits_value
        return (bits_value | (MASK64 << fmt.va_bits)) & MASK64 if high else bits_value

    def kernel_range(self, fmt: PagingFormat, high: bool = True) -> Tuple[int, int]:
        """The kernel's half ``[start, end)`` (virtual) for tables of ``fmt`` (``high``:
        the upper-half root; else the lower half of a split space)."""
        if self.kernel_half == "both":
            return (MASK64 << (fmt.va_bits - 1)) & MASK64, 1 << 64
        if high:
            return (MASK64 << fmt.va_bits) & MASK64, 1 << 64
        return 0, 1 << fmt.va_bits

    def user_range(self, fmt: PagingFormat) -> Tuple[int, int]:
        """The user half ``[start, end)`` (virtual) of a space with tables of ``fmt``: below
        the canonical hole of one sign-extended space, else the lower (TTBR0) half."""
        if self.user_half == "both":
            return 0, 1 << (fmt.va_bits - 1)
        return 0, 1 << fmt.va_bits

    def is_user_address(self, fmt: PagingFormat, va: int) -> bool:
        """Whether virtual ``va`` is in the user half, which the kernel root does not translate
        for a task (its walk needs the task's own tables)."""
        lo, hi = self.user_range(fmt)
        return lo <= va < hi

    def root_hole_index(self, fmt: PagingFormat) -> int:
        """Root-table index where the canonical hole splits one space (-1: none)."""
        return fmt.levels[0].entries >> 1 if self.kernel_half == "both" else -1

    def matches_gdb(self, gdb_name: str) -> bool:
        """Whether gdb's architecture name ``gdb_name`` is this architecture."""
        for pattern in self.gdb_names:
            if pattern.endswith("*") and gdb_name.startswith(pattern[:-1]) or gdb_name == pattern:
                return True
        return False

    def table_flag_names(self, raws: Sequence[int]) -> Tuple[str, ...]:
        """Restrictions the table entries ``raws`` above a leaf impose, as ptdump flag names."""
        out = []
        for name, bit, when_set in self.ptdump_table_flags:
            if when_set and any(r & bit for r in raws):
                out.append(name)
            elif not when_set and not all(r & bit for r in raws):
                out.append("!" + name)
        return tuple(out)


__all__ = ["Arch", "CpuPaging", "KernelTables", "PaArithmetic", "PageArray", "PagingOffError",
           "TableFlag", "UnknownArchitectureError"]
