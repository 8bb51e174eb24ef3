"""Per-cpu variables: ``__per_cpu_offset[cpu]`` and the per-cpu area of each cpu.

A static per-cpu variable is linked between ``__per_cpu_start`` and
``__per_cpu_end``; cpu N's copy is at that address plus
``__per_cpu_offset[N]`` (an ``unsigned long`` array of ``nr_cpu_ids``
entries), as ``per_cpu_ptr()`` computes it.  All addresses are kernel
virtual.  On x86-64 the section is linked at 0, so a per-cpu symbol's
value is an offset that looks like a small user address.

The variables' names, offsets and sizes come from the kernel's own BTF
(the ``.data..percpu`` DATASEC, whose offsets count from the section
start, where ``__per_cpu_start`` is defined).  Where kallsyms has no data
symbols (Debian's arm64 6.1 is built without ``CONFIG_KALLSYMS_ALL``) there
is no ``__per_cpu_start`` or ``__per_cpu_offset`` and nothing here can be
answered: :func:`read_percpu_layout` says so instead of guessing.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

from ..errors import KmemdbgError
from .reader import ReadVirt, read_uint

MASK64 = (1 << 64) - 1
#: More cpus than this in ``nr_cpu_ids`` is not a kernel's value (CONFIG_NR_CPUS is at most 8192).
MAX_CPUS = 8192


def nr_cpu_ids(read: ReadVirt, nr_cpu_ids_va: int) -> int:
    """The kernel's ``nr_cpu_ids`` (``unsigned int`` at virtual ``nr_cpu_ids_va``); raises KmemdbgError."""
    return read_uint(read, nr_cpu_ids_va, 4)


def per_cpu_offset(read: ReadVirt, offsets_va: int, cpu: int) -> int:
    """``__per_cpu_offset[cpu]`` (bytes) from the array at virtual ``offsets_va``; raises KmemdbgError.

        >>> hex(per_cpu_offset(k.read, k.symbols.address("__per_cpu_offset"), 1))
        '0xffff88803ec00000'
    """
    return read_uint(read, offsets_va + 8 * cpu, 8)


def per_cpu_ptr(var_va: int, cpu_offset: int) -> int:
    """Virtual address of a cpu's copy of the per-cpu variable linked at ``var_va``."""
    return (var_va + cpu_offset) & MASK64


@dataclass(frozen=True)
class PerCpuVariable:
    """A static per-cpu variable: ``name``, linked virtual ``va`` (``&name``), ``size_bytes``
    and ``type_name`` (BTF), or ``size_bytes`` 0 and ``type_name`` "" when BTF does not list it."""

    name: str
    va: int
    size_bytes: int
    type_name: str


@dataclass(frozen=True)
class PerCpuHit:
    """Where a virtual address falls among the per-cpu variables.

    ``cpu`` is the cpu whose copy holds ``va`` (None when ``va`` is the linked,
    offset-like address itself); ``variable`` the variable (None in padding
    between variables); ``offset`` the byte offset of ``va`` from the start of
    the variable (or of the section when there is no variable there)."""

    va: int
    cpu: Optional[int]
    variable: Optional[PerCpuVariable]
    offset: int


@dataclass(frozen=True)
class PerCpuLayout:
    """The static per-cpu section ``[start, end)`` (linked virtual), each cpu's
    ``__per_cpu_offset`` (index = cpu, bytes) and the BTF variables sorted by address."""

    start: int
    end: int
    offsets: Tuple[int, ...]
    variables: Tuple[PerCpuVariable, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_var_starts", [v.va for v in self.variables])
        units = sorted((per_cpu_ptr(self.start, off), cpu) for cpu, off in enumerate(self.offsets))
        object.__setattr__(self, "_units", units)
        object.__setattr__(self, "_unit_starts", [u for u, _ in units])
        # [lo, hi): every cpu's copy lies inside (most addresses a classification asks about
        # are outside it; the linked section is tested on its own, as it may be far away)
        size = self.end - self.start
        span = (units[0][0], max(u for u, _ in units) + size) if units else (0, 0)
        object.__setattr__(self, "_copies_span", span)

    @property
    def size_bytes(self) -> int:
        return self.end - self.start

    def copies(self, linked_va: int) -> Tuple[Tuple[int, int], ...]:
        """``(cpu, virtual address)`` of every cpu's copy of the byte linked at ``linked_va``."""
        return tuple((cpu, per_cpu_ptr(linked_va, off)) for cpu, off in enumerate(self.offsets))

    def variable(self, linked_va: int) -> Optional[PerCpuVariable]:
        """The variable whose bytes hold linked ``linked_va`` (sized ones only), or None."""
        i = bisect.bisect_right(self._var_starts, linked_va) - 1  # type: ignore[attr-defined]
        if i >= 0:
            v = self.variables[i]
            if linked_va < v.va + max(v.size_bytes, 1):
                return v
        return None

    def find(self, va: int) -> Optional[PerCpuHit]:
        """Which variable (and cpu) virtual ``va`` is in: the linked section itself, or a
        cpu's copy of it.  None when it is in neither."""
        va &= MASK64
        if self.start <= va < self.end:
            return self._hit(va, None, va)
        lo, hi = self._copies_span  # type: ignore[attr-defined]
        if not lo <= va < hi:
            return None
        starts = self._unit_starts  # type: ignore[attr-defined]
        i = bisect.bisect_right(starts, va) - 1
        size = self.end - self.start
        while i >= 0 and va - starts[i] < size:
            unit, cpu = self._units[i]  # type: ignore[attr-defined]
            if unit <= va:
                return self._hit(va, cpu, self.start + (va - unit))
            i -= 1
        return None

    def _hit(self, va: int, cpu: Optional[int], linked: int) -> PerCpuHit:
        var = self.variable(linked)
        return PerCpuHit(va, cpu, var, linked - (var.va if var is not None else self.start))


def read_percpu_layout(symbol: Callable[[str], Optional[int]], read: ReadVirt,
                       btf_vars: Sequence[Tuple[int, int, str, object]] = ()) -> PerCpuLayout:
    """The per-cpu layout of a kernel from its symbols (``__per_cpu_start``, ``__per_cpu_end``,
    ``__per_cpu_offset``, ``nr_cpu_ids``) and ``btf_vars`` (:meth:`kmemdbg.btf.Btf.datasec_vars`
    of ``.data..percpu``: section offset, size, name, type).

    Raises KmemdbgError (one line) naming the symbol that is missing or the
    value that is implausible.
    """
    names = ("__per_cpu_start", "__per_cpu_end", "__per_cpu_offset", "nr_cpu_ids")
    found = {n: symbol(n) for n in names}
    missing = [n for n in names if found[n] is None]
    if missing:
        raise KmemdbgError(f"per-cpu data cannot be located: no symbol {', '.join(missing)} "
                           "(kallsyms without data symbols?)")
    start, end = found["__per_cpu_start"], found["__per_cpu_end"]
    if not start < end or end - start > 1 << 30:  # type: ignore[operator]
        raise KmemdbgError(f"__per_cpu_start..__per_cpu_end 0x{start:x}..0x{end:x} is not a per-cpu section")
    count = nr_cpu_ids(read, found["nr_cpu_ids"])  # type: ignore[arg-type]
    if not 0 < count <= MAX_CPUS:
        raise KmemdbgError(f"nr_cpu_ids reads {count}: not a cpu count (1..{MAX_CPUS})")
    raw = read(found["__per_cpu_offset"], 8 * count)  # type: ignore[arg-type]
    offsets = tuple(int.from_bytes(raw[8 * c:8 * c + 8], "little") for c in range(count))
    variables = []
    for off, size, name, typ in btf_vars:
        if 0 <= off < end - start:  # type: ignore[operator]
            tname = getattr(typ, "describe", lambda: "")()
            variables.append(PerCpuVariable(name, start + off, size, tname))  # type: ignore[operator]
    variables.sort(key=lambda v: v.va)
    return PerCpuLayout(start, end, offsets, tuple(variables))  # type: ignore[arg-type]


__all__ = ["nr_cpu_ids", "per_cpu_offset", "per_cpu_ptr", "PerCpuVariable", "PerCpuHit", "PerCpuLayout",
           "read_percpu_layout", "MAX_CPUS"]
