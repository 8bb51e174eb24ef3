"""Whether a ``--vmlinux`` file is the kernel of the dump it is given with.

Since Linux kernel commit 0935288c6e00 ("kdump: append kernel build-id string
to VMCOREINFO") (in v5.9) VMCOREINFO carries ``BUILD-ID``, the hex of the
image's ``NT_GNU_BUILD_ID`` note; a vmlinux carries the same note.  When the
dump has no build ID the kernel release (``OSRELEASE``) is compared with the
``Linux version RELEASE`` banner in the file instead.  A file that is not a
matching ELF is an error naming the cause: debug info of another kernel
would give wrong symbols, and drgn would only ignore it with a warning.
"""
from __future__ import annotations

from typing import Optional

from .errors import SourceError
from .parse import shown
from .vmcoreinfo import VmcoreInfo

NT_GNU_BUILD_ID = 3
#: Bytes of the file searched for the ``Linux version`` banner when the dump has no build ID.
BANNER_SEARCH_BYTES = 1 << 27


def build_id_of(path: str) -> Optional[str]:
    """The lowercase hex ``NT_GNU_BUILD_ID`` of ELF file ``path``, or None when it has none.

    Raises SourceError when ``path`` is not an ELF file; OSError when unreadable.
    """
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        try:
            elf = ELFFile(f)
            for sec in elf.iter_sections():
                if sec.header.sh_type != "SHT_NOTE":
                    continue
                for note in sec.iter_notes():
                    if note["n_type"] in ("NT_GNU_BUILD_ID", NT_GNU_BUILD_ID) and note["n_name"] == "GNU":
                        desc = note["n_desc"]
                        return (desc.hex() if isinstance(desc, bytes) else str(desc)).lower()
        except (ELFError, ValueError, KeyError) as err:
            raise SourceError(f"{path}: not an ELF file, so not a vmlinux "
                              f"({' '.join(str(err).split())[:60]})") from None
    return None


def _has_banner(path: str, release: str) -> bool:
    needle = f"Linux version {release} ".encode()
    overlap = len(needle)
    tail = b""
    with open(path, "rb") as f:
        read = 0
        while read < BANNER_SEARCH_BYTES:
            chunk = f.read(1 << 20)
            if not chunk:
                return False
            if needle in tail + chunk:
                return True
            tail = chunk[-overlap:]
            read += len(chunk)
    return False


def check_vmlinux(path: str, info: VmcoreInfo) -> None:
    """Raise SourceError unless ELF file ``path`` is the kernel ``info`` (the dump's
    VMCOREINFO) describes: the same build ID, or, without one in the dump, the same release."""
    file_id = build_id_of(path)
    dump_id = (info.text("BUILD-ID") or "").strip().lower() or None
    if dump_id is not None:
        if file_id is None:
            raise SourceError(f"{path}: does not match the dump: it has no build ID, the dump's kernel "
                              f"has {dump_id}")
        # VMCOREINFO's BUILD-ID may be cut at the kernel's buffer size: a prefix must agree
        if not (file_id.startswith(dump_id) or dump_id.startswith(file_id)):
            raise SourceError(f"{path}: does not match the dump: build ID {file_id}, the dump's kernel "
                              f"has {dump_id} (VMCOREINFO BUILD-ID)")
        return
    release = info.osrelease()
    if release and not _has_banner(path, release):
        raise SourceError(f"{path}: does not match the dump: no 'Linux version {release}' banner in it "
                          f"(the dump's OSRELEASE={shown(release)})")


__all__ = ["check_vmlinux", "build_id_of"]
