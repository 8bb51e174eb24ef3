"""The fixture factory's own parsers and initramfs writer, on lines copied
from the guests' serial logs (no cache, no QEMU needed).

Oracle: the text the guest kernels printed, as read by a person.
"""

import gzip
import json
import struct

from vmcores import build, guest, truth


def test_vmallocinfo_line_kinds_parse_into_fields() -> None:
    lines = [
        "0xffffca3880005000-0xffffca3880007000    8192 acpi_os_map_iomem+0x1a9/0x1e0 phys=0x000000000ffe1000 ioremap",
        "0xffffca3880020000-0xffffca3880025000   20480 kernel_clone+0xc2/0x430 pages=4 vmalloc N0=4",
        "0xffffca3880490000-0xffffca3880495000   20480 unpurged vm_area",
        "0xffffa376c9900000-0xffffa376c9a00000 1048576 paging_init+0x470/0x538 phys=0x0000000041f00000 vmap",
        "not an area line",
    ]
    ioremap, stack, unpurged, image = truth.parse_vmallocinfo(lines)
    assert ioremap["phys"] == "0xffe1000" and ioremap["flags"] == ["ioremap"]
    assert ioremap["caller"] == "acpi_os_map_iomem+0x1a9/0x1e0" and ioremap["pages"] is None
    assert stack == dict(stack, start="0xffffca3880020000", end="0xffffca3880025000", size=20480,
                         caller="kernel_clone+0xc2/0x430", pages=4, flags=["vmalloc"], numa={"0": 4})
    assert unpurged["caller"] is None and unpurged["flags"] == ["unpurged", "vm_area"]
    assert image["phys"] == "0x41f00000" and image["flags"] == ["vmap"]


def test_modules_iomem_meminfo_kallsyms_parse() -> None:
    mods = truth.parse_modules([
        "zstd 12288 0 - Live 0xffffa89cc22ec000",
        "zstd_compress 200704 1 zstd, Live 0xffffa89cc22ae000",
    ])
    assert mods[0]["address"] == "0xffffa89cc22ec000" and mods[0]["deps"] == []
    assert mods[1]["deps"] == ["zstd"] and mods[1]["size"] == 200704
    iomem = truth.parse_iomem([
        "00001000-0009fbff : System RAM",
        "40000000-5fffffff : System RAM",
        "  40210000-41ffffff : Kernel code",
    ])
    assert iomem[1] == {"start": "0x40000000", "end": "0x5fffffff", "name": "System RAM", "depth": 0}
    assert iomem[2]["depth"] == 1 and iomem[2]["name"] == "Kernel code"
    mi = truth.parse_meminfo(["MemTotal:         248000 kB", "HugePages_Total:       0"])
    assert mi == {"MemTotal": {"value": 248000, "unit": "kB"}, "HugePages_Total": {"value": 0, "unit": None}}
    ks = truth.parse_kallsyms(["ffffffffb5600000 T _text", "ffffffffc0228000 t fw_cfg_init\t[qemu_fw_cfg]"])
    assert ks["_text"] == {"address": "0xffffffffb5600000", "type": "T", "module": None}
    assert ks["fw_cfg_init"]["module"] == "qemu_fw_cfg"


def test_vmcoreinfo_keys_keep_their_own_radix() -> None:
    text = "\n".join([
        "OSRELEASE=6.1.0-50-amd64", "PAGESIZE=4096", "SYMBOL(swapper_pg_dir)=ffffffff94410000",
        "NUMBER(phys_base)=-119537664", "NUMBER(PHYS_OFFSET)=0xfff0fb3d80000000",
        "NUMBER(TCR_EL1_T1SZ)=0xc", "KERNELOFFSET=11a00000", "NUMBER(pgtable_l5_enabled)=0",
        "BUILD-ID=0123456789", "",
    ])
    v = truth.parse_vmcoreinfo(text)
    assert v["SYMBOL(swapper_pg_dir)"] == "0xffffffff94410000"
    assert v["NUMBER(phys_base)"] == -119537664
    assert v["NUMBER(PHYS_OFFSET)"] == "0xfff0fb3d80000000"
    assert v["NUMBER(TCR_EL1_T1SZ)"] == "0xc"
    assert v["KERNELOFFSET"] == "0x11a00000"
    assert v["PAGESIZE"] == 4096 and v["NUMBER(pgtable_l5_enabled)"] == 0
    assert v["OSRELEASE"] == "6.1.0-50-amd64" and v["BUILD-ID"] == "0123456789"


def test_elf_note_reader_finds_vmcoreinfo(tmp_path) -> None:
    desc = b"OSRELEASE=6.12.113+deb12-amd64\nPAGESIZE=4096\n"
    name = b"VMCOREINFO\x00"
    note = struct.pack("<III", len(name), len(desc), 0) + name + b"\x00" * (-len(name) % 4) + desc
    phoff = 64
    ehdr = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + struct.pack(
        "<HHIQQQIHHHHHH", 4, 62, 1, 0, phoff, 0, 0, 64, 56, 2, 0, 0, 0)
    note_off = phoff + 2 * 56
    load_off = note_off + len(note)
    ph_note = struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(note), len(note), 0)
    ph_load = struct.pack("<IIQQQQQQ", 1, 7, load_off, 0x1000, 0x1000, 16, 16, 0)
    core = tmp_path / "core"
    core.write_bytes(ehdr + ph_note + ph_load + note + b"\x00" * 16)
    assert truth.vmcoreinfo_text_from_elf(str(core)) == desc.decode()
    assert truth.read_elf_core(str(core))["loads"][0]["paddr"] == "0x1000"


def test_serial_sections_strip_cr_and_ignore_noise() -> None:
    log = ("[    1.0] boot noise\r\n@@KMEMDBG BEGIN modules@@\r\nloop 32768 0 - Live 0xffffffffc0219000\r\n"
           "@@KMEMDBG END modules@@\r\n@@KMEMDBG BEGIN cut@@\r\nunterminated\r\n")
    assert guest.sections(log) == {"modules": ["loop 32768 0 - Live 0xffffffffc0219000"]}


def test_initramfs_is_newc_with_console_node_and_init() -> None:
    blob = gzip.decompress(guest.build_initramfs(b"BUSYBOX", [("qemu_fw_cfg", b"KO")]))
    entries = {}
    pos = 0
    while True:
        hdr = blob[pos:pos + 110]
        assert hdr[:6] == b"070701"
        f = [int(hdr[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        name = blob[pos + 110:pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        data = blob[pos:pos + size]
        pos += size + (-size % 4)
        if name == "TRAILER!!!":
            break
        entries[name] = (mode, data, (rmaj, rmin))
    assert entries["dev/console"][0] & 0o170000 == 0o020000 and entries["dev/console"][2] == (5, 1)
    assert entries["bin/busybox"][1] == b"BUSYBOX" and entries["bin/busybox"][0] & 0o111
    assert entries["lib/modules/kmemdbg/qemu_fw_cfg.ko"][1] == b"KO"
    init = entries["init"][1].decode()
    assert init.startswith("#!/bin/busybox sh") and "qemu_fw_cfg" in init
    assert init.index("b vmallocinfo") > init.index("b dmesg")  # the snapshot comes last


def test_recipes_pin_everything_the_brief_requires() -> None:
    doc = build.load_recipes()
    for name, r in doc["recipes"].items():
        k = r["kernel"]
        assert len(k["sha256"]) == 64 and k["version"] and k["package"].startswith("linux-image-"), name
        assert r["qemu"]["cpu"] and r["qemu"]["memory"] and r["arch"] in ("x86_64", "aarch64"), name
        assert "no_hash_pointers" in r["cmdline"] and "nokaslr" not in r["cmdline"], name
        assert "qemu_fw_cfg" in r["modules"], name
        assert r["busybox"] in doc["helpers"], name
    assert json.dumps(build.recipe_hash("x86_64-6.12-l4")) != json.dumps(build.recipe_hash("x86_64-6.12-l5"))
