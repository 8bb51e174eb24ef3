"""Paging formats as data: :mod:`.base` holds the table types, :mod:`.x86_64`
and :mod:`.arm64` fill them in for each architecture."""
from .base import FAULT_REASONS, Level, PagingFormat, Permissions  # noqa: F401
