"""Building typed records on per-address paths.

A NamedTuple built through its class runs a Python-level ``__new__``, which
costs as much as the rest of a slab or vmap lookup's bookkeeping; code that
makes one record per address builds it from a plain tuple instead:
``new_record(Check, (va, ...))`` with every field given, in field order.
"""
from __future__ import annotations

#: ``new_record(cls, fields)``: the NamedTuple ``cls`` holding the tuple ``fields``
new_record = tuple.__new__

__all__ = ["new_record"]
