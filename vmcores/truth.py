"""Ground truth: the guest kernel's own reports parsed into plain data, and
the VMCOREINFO note read from a QEMU ELF dump.

Every address is a lowercase "0x..." string, so that JSON readers in any
language see the same value and nothing is rounded through a float.
"""

import re
import struct
from typing import Any, Dict, List, Optional, Tuple


def hx(value: int) -> str:
    return "0x%x" % value


# --- /proc/vmallocinfo ---------------------------------------------------------

# Bare words that mm/vmalloc.c prints after the caller: the VM_* flags of the
# area, and the two kinds of area that have no vm_struct.
VMALLOC_FLAG_WORDS = frozenset((
    "ioremap", "vmalloc", "vmap", "user", "dma-coherent", "vpages",
    "vm_map_ram", "unpurged", "vm_area", "sparse",
))


def parse_vmallocinfo(lines: List[str]) -> List[Dict[str, Any]]:
    """One dict per /proc/vmallocinfo line: start, end, size (bytes, as
    printed: it includes the guard page), caller, pages, phys, flags, numa."""
    areas = []
    for line in lines:
        m = re.match(r"\s*0x([0-9a-f]+)-0x([0-9a-f]+)\s+(\d+)\s*(.*)$", line)
        if not m:
            continue
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        area = {
            "start": hx(start), "end": hx(end), "size": int(m.group(3)),
            "caller": None, "pages": None, "phys": None, "flags": [],
            "numa": {}, "line": line.strip(),
        }  # type: Dict[str, Any]
        for tok in m.group(4).split():
            if tok.startswith("pages="):
                area["pages"] = int(tok[6:])
            elif tok.startswith("phys="):
                area["phys"] = hx(int(tok[5:], 16))
            elif re.fullmatch(r"N\d+=\d+", tok):
                node, count = tok[1:].split("=")
                area["numa"][node] = int(count)
            elif tok in VMALLOC_FLAG_WORDS:
                area["flags"].append(tok)
            elif area["caller"] is None and not area["flags"]:
                area["caller"] = tok
            else:
                area.setdefault("other", []).append(tok)
        areas.append(area)
    return areas


# --- /proc/modules ----------------------------------------------------------------

def parse_modules(lines: List[str]) -> List[Dict[str, Any]]:
    """name, size, refcount, deps, state, address (module core base)."""
    mods = []
    for line in lines:
        parts = line.split()
        if len(parts) < 6 or not parts[5].startswith("0x"):
            continue
        deps = [d for d in parts[3].split(",") if d and d != "-"]
        mods.append({
            "name": parts[0], "size": int(parts[1]), "refcount": int(parts[2]),
            "deps": deps, "state": parts[4], "address": hx(int(parts[5], 16)),
            "taint": parts[6] if len(parts) > 6 else None,
        })
    return mods


# --- /proc/iomem -------------------------------------------------------------------

def parse_iomem(lines: List[str]) -> List[Dict[str, Any]]:
    """start, end (inclusive, as printed), name, depth (nesting level)."""
    ranges = []
    for line in lines:
        m = re.match(r"^(\s*)([0-9a-f]+)-([0-9a-f]+) : (.*)$", line)
        if not m:
            continue
        ranges.append({
            "start": hx(int(m.group(2), 16)), "end": hx(int(m.group(3), 16)),
            "name": m.group(4).strip(), "depth": len(m.group(1)) // 2,
        })
    return ranges


# --- /proc/meminfo -----------------------------------------------------------------

def parse_meminfo(lines: List[str]) -> Dict[str, Dict[str, Any]]:
    out = {}
    for line in lines:
        m = re.match(r"^([^:]+):\s+(\d+)(?:\s+(\S+))?\s*$", line)
        if m:
            out[m.group(1)] = {"value": int(m.group(2)), "unit": m.group(3)}
    return out


# --- /proc/kallsyms ------------------------------------------------------------------

def parse_kallsyms(lines: List[str]) -> Dict[str, Dict[str, Any]]:
    out = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and re.fullmatch(r"[0-9a-f]+", parts[0]):
            out.setdefault(parts[2], {"address": hx(int(parts[0], 16)),
                                      "type": parts[1],
                                      "module": parts[3].strip("[]") if len(parts) > 3 else None})
    return out


# --- the probe module's printout --------------------------------------------------

PROBE_TAG = "kmemdbg_probe: "


def parse_probe(lines: List[str]) -> List[Dict[str, Any]]:
    """One dict per ``kmemdbg_probe: <name> key=value ...`` line (the dmesg
    timestamp, if any, is dropped): ``name``, every printed field (0x values
    as lowercase "0x..." strings, anything else verbatim) and ``line``."""
    out = []
    for raw in lines:
        pos = raw.find(PROBE_TAG)
        if pos < 0:
            continue
        text = raw[pos + len(PROBE_TAG):].strip()
        words = text.split()
        # "<name> key=value...": the kernel's own lines under the module's
        # name ("loading out-of-tree module taints kernel.") are not reports
        if len(words) < 2 or "=" in words[0] or not all("=" in w for w in words[1:]):
            continue
        entry = {"name": words[0]}  # type: Dict[str, Any]
        for word in words[1:]:
            key, sep, value = word.partition("=")
            if re.fullmatch(r"0x[0-9a-fA-F]+", value):
                entry[key] = hx(int(value, 16))
            else:
                entry[key] = value
        entry["line"] = text
        out.append(entry)
    return out


PLANT_KINDS = ("module-data", "module-bss", "module-ro_after_init", "slab", "page", "vmalloc",
               "percpu-static", "percpu-dynamic", "stack")
PLANT_FORMS = ("virt_to_phys", "virt_to_page", "sg_page_link")
PLANT_FIELDS = ("kind", "form", "control", "word_va", "value", "source_va", "source_pfn",
                "source_region", "source_page", "how")


#: the probe's plant kinds -> the memory kind kmemdbg's misuse rule names for that memory
PLANT_MEMORY_KIND = {"module-data": "module", "module-bss": "module", "module-ro_after_init": "module",
                     "slab": "slab", "page": "page", "vmalloc": "vmalloc", "percpu-static": "percpu",
                     "percpu-dynamic": "percpu", "stack": "stack"}


def parse_plants(probe: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The probe's planted stored-misuse values and their controls
    (``plant.*`` lines, see vmcores/probe/kmemdbg_probe.c), one dict each:
    ``id`` (the line's name), the printed fields (``control`` as a bool),
    ``src_word_va`` (word_va - 8: where the structure keeps the source
    pointer) and ``cpu`` (per-cpu kinds, else None); ``stack_thread``: the
    kthread whose stack holds the stack kind; ``summary``: the probe's own
    count line; ``errors``: what the probe could not plant."""
    plants = []
    for e in probe:
        if not e["name"].startswith("plant."):
            continue
        p = {"id": e["name"]}  # type: Dict[str, Any]
        for key in PLANT_FIELDS:
            p[key] = e.get(key)
        p["control"] = e.get("control") == "0x1"
        if e.get("word_va"):
            p["src_word_va"] = hx(int(e["word_va"], 16) - 8)
        m = re.search(r"\.cpu(\d+)$", e["name"])
        p["cpu"] = int(m.group(1)) if m else None
        plants.append(p)
    by_name = {e["name"]: e for e in probe}
    thread = by_name.get("stack_thread")
    return {
        "plants": plants,
        "stack_thread": {k: v for k, v in thread.items() if k not in ("name", "line")} if thread else None,
        "summary": {k: v for k, v in by_name["plants"].items() if k not in ("name", "line")}
        if "plants" in by_name else None,
        "errors": [e["line"] for e in probe if e["name"] == "plants_error"],
    }


# --- dmesg ------------------------------------------------------------------------

# Boot-log lines that describe the memory layout or paging mode. A line is kept
# if it matches any of these; the full log is kept beside truth.json anyway.
DMESG_LAYOUT_PATTERNS = (
    r"BIOS-e820", r"e820: ", r"\bMemory: ", r"Zone ranges", r"^\s+(DMA|DMA32|Normal|Movable)\b",
    r"Movable zone", r"Early memory node ranges", r"node\s+\d+: \[mem", r"Initmem setup",
    r"percpu: Embedded", r"NUMA", r"Virtual Addressing", r"LPA2", r"\bLVA\b", r"Reserved memory",
    r"OF: reserved mem", r"crashkernel", r"x86/mm", r"page tables isolation", r"KASLR",
    r"Freeing unused kernel", r"Write protecting", r"Machine model", r"5-level paging",
    r"PAGE_OFFSET", r"vmalloc", r"vmemmap", r"last_pfn", r"max_pfn", r"RAMDISK", r"initrd",
    r"Kernel command line", r"Linux version", r"mem auto-init", r"Dentry cache", r"Inode-cache",
    r"software IO TLB", r"cma: ", r"psci", r"CPU features: detected", r"KFENCE",
    r"Booting Linux on physical CPU", r"efi:", r"ACPI: Reserving",
)


def parse_dmesg_layout(lines: List[str]) -> List[str]:
    rx = re.compile("|".join("(?:%s)" % p for p in DMESG_LAYOUT_PATTERNS))
    out = []
    for line in lines:
        text = re.sub(r"^\[\s*\d+\.\d+\]\s?", "", line)
        if rx.search(text):
            out.append(line)
    return out


# --- ELF dump: program headers and the VMCOREINFO note ---------------------------

PT_LOAD, PT_NOTE = 1, 4


def read_elf_core(path: str) -> Dict[str, Any]:
    """The PT_LOADs and notes (name, type, desc bytes) of a 64-bit LE ELF core.

    QEMU 7.2 writes e_ehsize=8 and two section headers; only the program
    headers are used here, so that quirk does not matter."""
    with open(path, "rb") as f:
        ident = f.read(64)
        if ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1:
            raise ValueError("%s: not a 64-bit little-endian ELF file" % path)
        (e_type, e_machine, _ver, _entry, e_phoff, _shoff, _flags, _ehsize,
         e_phentsize, e_phnum) = struct.unpack_from("<HHIQQQIHHH", ident, 16)
        f.seek(e_phoff)
        phdrs = f.read(e_phentsize * e_phnum)
        loads = []
        notes = []  # type: List[Tuple[str, int, bytes]]
        for i in range(e_phnum):
            (p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz,
             _align) = struct.unpack_from("<IIQQQQQQ", phdrs, i * e_phentsize)
            if p_type == PT_LOAD:
                loads.append({"offset": hx(p_offset), "vaddr": hx(p_vaddr),
                              "paddr": hx(p_paddr), "filesz": hx(p_filesz),
                              "memsz": hx(p_memsz)})
            elif p_type == PT_NOTE:
                f.seek(p_offset)
                notes.extend(_parse_notes(f.read(p_filesz)))
    return {"e_type": e_type, "e_machine": e_machine, "loads": loads, "notes": notes}


def _parse_notes(blob: bytes) -> List[Tuple[str, int, bytes]]:
    out = []
    pos = 0
    while pos + 12 <= len(blob):
        namesz, descsz, ntype = struct.unpack_from("<III", blob, pos)
        pos += 12
        name = blob[pos:pos + namesz].rstrip(b"\x00").decode("ascii", "replace")
        pos += (namesz + 3) & ~3
        desc = blob[pos:pos + descsz]
        pos += (descsz + 3) & ~3
        out.append((name, ntype, desc))
    return out


def vmcoreinfo_text_from_elf(path: str) -> Optional[str]:
    for name, _ntype, desc in read_elf_core(path)["notes"]:
        if name == "VMCOREINFO":
            return desc.rstrip(b"\x00").decode("ascii", "replace")
    return None


def parse_vmcoreinfo(text: str) -> Dict[str, Any]:
    """Each key with its own radix (see the layout reference, section 3.1).

    SYMBOL(x) and KERNELOFFSET are hex without 0x; NUMBER(x) is signed
    decimal unless written with 0x; OSRELEASE, BUILD-ID, CRASHTIME stay
    strings. Hex values come back as "0x..." strings, decimal ones as ints
    (NUMBER(phys_base) can be negative: Debian's 6.1 x86-64 kernel writes one)."""
    out = {}  # type: Dict[str, Any]
    for line in text.splitlines():
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        if key.startswith("SYMBOL(") or key == "KERNELOFFSET":
            out[key] = hx(int(value, 16))
        elif value.lower().startswith("0x"):
            out[key] = hx(int(value, 16))
        elif re.fullmatch(r"-?\d+", value) and key not in ("OSRELEASE", "BUILD-ID", "CRASHTIME"):
            out[key] = int(value)
        else:
            out[key] = value
    return out


def build_truth(recipe_name: str, sec: Dict[str, List[str]], vmcoreinfo_text: Optional[str],
                elf_loads: List[Dict[str, Any]]) -> Dict[str, Any]:
    def one(name: str) -> Optional[str]:
        lines = sec.get(name)
        return lines[0].strip() if lines else None

    probe = parse_probe(sec.get("probe", []))
    return {
        "recipe": recipe_name,
        "source": "the guest kernel's own /proc and dmesg reports, printed by /init on the "
                  "serial console just before the dump; vmcoreinfo from the ELF dump's note",
        "uname": one("uname"),
        "proc_version": one("version"),
        "cmdline": one("cmdline"),
        "fw_cfg_entries": sec.get("fw_cfg", []),
        "sys_kernel_vmcoreinfo": one("sys_kernel_vmcoreinfo"),
        "vmalloc_areas": parse_vmallocinfo(sec.get("vmallocinfo", [])),
        "modules": parse_modules(sec.get("modules", [])),
        "iomem": parse_iomem(sec.get("iomem", [])),
        "meminfo": parse_meminfo(sec.get("meminfo", [])),
        "kallsyms": parse_kallsyms(sec.get("kallsyms", [])),
        "probe": probe,
        # the plant.* lines of the probe, structured (see parse_plants)
        "plants": parse_plants(probe),
        "probe_kallsyms": parse_kallsyms(sec.get("probe_kallsyms", [])),
        "dmesg_memory_layout": parse_dmesg_layout(sec.get("dmesg", [])),
        # the kernel's own page-table dump (x86: kmemdbg_probe's debugfs file
        # calls the kernel's exported ptdump walker), as printed
        "kernel_ptdump": [l.rstrip() for l in sec.get("kernel_ptdump", [])],
        "vmcoreinfo": parse_vmcoreinfo(vmcoreinfo_text) if vmcoreinfo_text else None,
        "vmcoreinfo_raw": vmcoreinfo_text,
        "elf_loads": elf_loads,
    }
