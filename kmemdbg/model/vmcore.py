"""VMCOREINFO text, ELF64 core files and drgn programs for a KernelModel.

The ELF core looks like a kdump /proc/vmcore: ET_CORE, one PT_NOTE holding a
``VMCOREINFO`` note, PT_LOAD segments whose p_paddr is the physical address
and p_vaddr the linear-map address (as kexec writes them).  Only stored
frames carry file data; RAM that was never written is described by PT_LOAD
segments with ``p_filesz = 0`` (zero-filled by ELF rules), so a model with
terabytes of RAM still writes a file of kilobytes.
"""
from __future__ import annotations

import os
import struct
from typing import List, Tuple


EM_X86_64 = 62
EM_AARCH64 = 183
PT_LOAD = 1
PT_NOTE = 4
ET_CORE = 4



def vmcoreinfo_text(model) -> str:
    """The key=value lines a kernel of ``model``'s layout writes, in its own radixes.

    SYMBOL() and KERNELOFFSET are hex without 0x; NUMBER() is signed decimal
    except the hand-written arm64 and VMALLOC_START lines, which are 0x-hex
    (kernel/vmcore_info.c, arch/*/kernel/vmcore_info*.c).
    """
    p = model.params
    lines: List[str] = []
    if p["arch"] == "x86_64":
        lines += [
            f"OSRELEASE={p['osrelease']}",
            f"BUILD-ID={'00' * 20}",
            f"PAGESIZE={p['page_size']}",
            f"SYMBOL(swapper_pg_dir)={p['root_va']:x}",
            f"SYMBOL(_stext)={p['text_va']:x}",
            f"NUMBER(VMALLOC_START)=0x{p['vmalloc_start']:x}",
            f"SYMBOL(vmemmap)={p['vmemmap_start']:x}",
            f"NUMBER(MAX_PHYSMEM_BITS)={p['max_physmem_bits']}",
            f"NUMBER(phys_base)={p['phys_base']}",
            f"SYMBOL(init_top_pgt)={p['root_va']:x}",
            f"NUMBER(pgtable_l5_enabled)={1 if p['levels'] == 5 else 0}",
            f"KERNELOFFSET={p['KERNELOFFSET']:x}",
            f"NUMBER(KERNEL_IMAGE_SIZE)={p['kernel_image_size']}",
            f"NUMBER(sme_mask)={p['sme_mask']}",
        ]
    else:
        era = p["era"]
        lines += [
            f"OSRELEASE={p['osrelease']}",
            f"PAGESIZE={p['page_size']}",
            f"SYMBOL(swapper_pg_dir)={p['root_va']:x}",
            f"SYMBOL(_stext)={p['text_va']:x}",
        ]
        if era == "6.9":
            lines.append(f"NUMBER(VMALLOC_START)=0x{p['vmalloc_start']:x}")
            lines.append(f"SYMBOL(vmemmap)={p['vmemmap']:x}")
        lines.append(f"NUMBER(VA_BITS)={p['va_bits']}")
        if era in ("6.9", "5.11"):        # 5.18+: "Export MODULES, VMALLOC, and VMEMMAP ranges"
            lines += [f"NUMBER(MODULES_VADDR)=0x{p['modules_vaddr']:x}",
                      f"NUMBER(MODULES_END)=0x{p['modules_end']:x}"]
            if era == "5.11":
                lines.append(f"NUMBER(VMALLOC_START)=0x{p['vmalloc_start']:x}")
            lines += [f"NUMBER(VMALLOC_END)=0x{p['vmalloc_end']:x}",
                      f"NUMBER(VMEMMAP_START)=0x{p['vmemmap_start']:x}",
                      f"NUMBER(VMEMMAP_END)=0x{p['vmemmap_end']:x}"]
        lines += [f"NUMBER(kimage_voffset)=0x{p['kimage_voffset']:x}",
                  f"NUMBER(PHYS_OFFSET)=0x{p['PHYS_OFFSET']:x}"]
        if era != "4.x":                  # 5.9+
            lines.append(f"NUMBER(TCR_EL1_T1SZ)=0x{p['tcr_el1_t1sz']:x}")
        lines.append(f"KERNELOFFSET={p['KERNELOFFSET']:x}")
    lines.append("CRASHTIME=1700000000")
    return "\n".join(lines) + "\n"


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    pad = lambda b: b + bytes(-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name) + 1, len(desc), ntype) + pad(name + b"\0") + pad(desc)


def load_segments(model) -> List[Tuple[int, int, bool]]:
    """``(start_pa, size_bytes, stored)`` runs a core of the model describes."""
    return list(model.memory.backed_runs())


def write_elf_core(model, path) -> None:
    """Write ``model`` as an ELF64 little-endian core file at ``path``."""
    p = model.params
    machine = EM_X86_64 if p["arch"] == "x86_64" else EM_AARCH64
    note = _note(b"VMCOREINFO", 0, vmcoreinfo_text(model).encode())
    segs = load_segments(model)
    phnum = 1 + len(segs)
    off = 64 + 56 * phnum
    headers = [struct.pack("<IIQQQQQQ", PT_NOTE, 0, off, 0, 0, len(note), len(note), 4)]
    data_off = off + len(note)
    data_off += -data_off % 4096
    blobs = []
    cur = data_off
    for start_pa, size, stored in segs:
        filesz = size if stored else 0
        vaddr = model.linear_va(start_pa)
        headers.append(struct.pack("<IIQQQQQQ", PT_LOAD, 7, cur if stored else 0, vaddr,
                                   start_pa, filesz, size, 4096 if stored else 0))
        if stored:
            blobs.append((cur, start_pa, size))
            cur += size
    ehdr = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, bytes(7),
                       ET_CORE, machine, 1, 0, 64, 0, 0, 64, 56, phnum, 64, 0, 0)
    with open(os.fspath(path), "wb") as f:
        f.write(ehdr)
        f.write(b"".join(headers))
        f.write(note)
        for file_off, start_pa, size in blobs:
            f.seek(file_off)
            f.write(model.memory.read(start_pa, size))
        f.truncate(cur)


def drgn_platform(model):
    import drgn
    arch = drgn.Architecture.X86_64 if model.params["arch"] == "x86_64" \
        else drgn.Architecture.AARCH64
    return drgn.Platform(arch, drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN)


def drgn_program(model):
    """A drgn Program over the model's memory, with no file in between.

    Uses ``add_memory_segment(..., physical=True)`` for every run of RAM and
    stored frames, then ``set_linux_kernel_custom(vmcoreinfo, False)``
    (drgn 0.3.0), which sets up drgn's page-table walker for virtual reads.
    """
    import drgn
    prog = drgn.Program(drgn_platform(model))
    mem = model.memory

    def read_fn(address: int, count: int, offset: int, physical: bool) -> bytes:
        try:
            return mem.read(address, count)
        except Exception as err:  # reported to drgn as a fault at that address
            raise drgn.FaultError(str(err), address) from None

    for start_pa, size, _stored in load_segments(model):
        prog.add_memory_segment(start_pa, size, read_fn, physical=True)
    prog.set_linux_kernel_custom(vmcoreinfo_text(model).encode(), False)
    return prog
