"""A pure-Python MMU model: page tables of real formats in sparse physical
memory, with ground truth kept apart from the tables.

It lets every kmemdbg helper be tested without a real dump, and it writes
vmcores that drgn opens, so drgn's own walker can check the model.  It must
not import the code it tests (``kmemdbg.arch``, ``kmemdbg.walk*``): its
encoders are its own.

    >>> from kmemdbg.model import build_kernel
    >>> m = build_kernel("arm64-4k-52", seed=1)
    >>> va = m.vmalloc(8192)
    >>> m.truth(va).status, m.truth(va).level
    ('mapped', 'L3')
"""
from __future__ import annotations

from .alloc import FrameAllocator, OutOfMemory
from .geometry import Geometry, Level, arm64_geometry, x86_geometry
from .kernel import KernelModel, build_kernel
from .layout import ARM64_ERAS, MODES, Mode, arm64_layout
from .physmem import SparseMemory
from .space import STATUSES, AddressSpace, MappedRange, Truth

__all__ = [
    "ARM64_ERAS", "MODES", "STATUSES", "AddressSpace", "FrameAllocator", "Geometry",
    "KernelModel", "Level", "MappedRange", "Mode", "OutOfMemory", "SparseMemory", "Truth",
    "arm64_geometry", "arm64_layout", "build_kernel", "x86_geometry",
]
