"""Cyclic garbage collection held off while a batch builds its results.

A batch call (``Walker.translate_many``, ``Kernel.check_many``) creates one
or more container objects per address and keeps them all; each time the
collector's allocation threshold is crossed it traverses every one of them
again, so the batch costs more per address the longer it is.  Nothing a batch
builds forms a reference cycle, so postponing collection until it returns
frees nothing later than it would have been freed.  The collector's previous
state is restored on the way out, also on an exception.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def collection_paused() -> Iterator[None]:
    """Disable the cyclic collector for the ``with`` block, if it was enabled."""
    was = gc.isenabled()
    if was:
        gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
