"""Per-cpu variables: ``__per_cpu_offset[cpu]`` and the per-cpu area of each cpu.

A static per-cpu variable is linked between ``__per_cpu_start`` and
``__per_cpu_end``; cpu N's copy is at that address plus
``__per_cpu_offset[N]`` (an ``unsigned long`` array of ``nr_cpu_ids``
entries), as ``per_cpu_ptr()`` computes it.  All addresses are kernel
virtual.
"""
from __future__ import annotations

from .reader import ReadVirt, read_uint

MASK64 = (1 << 64) - 1


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


__all__ = ["nr_cpu_ids", "per_cpu_offset", "per_cpu_ptr"]
