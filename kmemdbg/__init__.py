"""kmemdbg: the truth about kernel virtual addresses in live kernels and crash dumps.

The core (paging formats, walker, model, layout) imports without drgn, so it
also runs inside gdb's embedded Python; :func:`open` uses drgn when present.
"""
from __future__ import annotations

__version__ = "0.1.0"


def open(*args, **kwargs):  # noqa: A001 - the natural name: kmemdbg.open(core=...)
    """Open a kernel; see :func:`kmemdbg.api.open`."""
    from .api import open as _open

    return _open(*args, **kwargs)
