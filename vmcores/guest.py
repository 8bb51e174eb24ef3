"""The guest side: the /init scenario and the initramfs (newc cpio) writer.

The initramfs is written here rather than with the cpio tool so that it can
hold the /dev/console node (needed before devtmpfs is mounted) without mknod
on the host, and so that it is byte-for-byte reproducible.
"""

import gzip
import io
import lzma
import os
import re
import stat
from typing import Dict, List, Tuple

MARK_BEGIN = "@@KMEMDBG BEGIN {}@@"
MARK_END = "@@KMEMDBG END {}@@"
MARK_READY = "@@KMEMDBG READY@@"
MARK_WARN = "@@KMEMDBG WARN"

# Symbols whose /proc/kallsyms lines are kept in truth.json; absent ones are
# simply not printed (e.g. page_offset_base does not exist on arm64).
KALLSYMS_WANTED = (
    "_text", "_stext", "_etext", "_sdata", "_edata", "_end",
    "swapper_pg_dir", "init_top_pgt", "init_mm", "init_task",
    "page_offset_base", "vmalloc_base", "vmemmap_base", "phys_base",
    "memstart_addr", "kimage_voffset", "vabits_actual",
    "saved_command_line", "mem_section", "node_data", "__per_cpu_offset",
    "empty_zero_page", "idmap_pg_dir", "tramp_pg_dir", "reserved_pg_dir",
    "__init_begin", "__init_end", "_sinittext", "_einittext",
)

# The order matters: everything that forks a process comes first. The last
# report, /proc/vmallocinfo, is read by PID 1's own shell builtins so that no
# process is created or exits (VMAP_STACK stacks are vmalloc areas) between
# that snapshot and the dump; after READY the shell blocks in a builtin read.
# The builtin `read -t 3` before it lets the stacks of the children that have
# exited be freed first (they go through RCU): without it, a stack listed as
# "vmalloc" was already unmapped in the arm64 dump.
# The first lines every guest's /init runs (the live tests reuse them):
# busybox applets, /proc /sys /dev, then the modules in order.
INIT_PREAMBLE = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
dmesg -n 1
for m in @MODULES@; do
  insmod /lib/modules/kmemdbg/$m.ko || echo "@@KMEMDBG WARN insmod $m failed@@"
done
"""
INIT_TEMPLATE = INIT_PREAMBLE + r"""b() { echo "@@KMEMDBG BEGIN $1@@"; }
e() { echo "@@KMEMDBG END $1@@"; }
b uname; uname -a; e uname
b version; cat /proc/version; e version
b cmdline; cat /proc/cmdline; e cmdline
b fw_cfg; ls /sys/firmware/qemu_fw_cfg/by_name/etc/ 2>&1; e fw_cfg
b sys_kernel_vmcoreinfo; cat /sys/kernel/vmcoreinfo 2>&1; e sys_kernel_vmcoreinfo
b probe; dmesg | grep 'kmemdbg_probe: '; e probe
b modules; cat /proc/modules; e modules
b iomem; cat /proc/iomem; e iomem
b meminfo; cat /proc/meminfo; e meminfo
b kallsyms; grep -E ' (@KALLSYMS@)$' /proc/kallsyms; e kallsyms
b probe_kallsyms; grep -E ' kmemdbg_probe_[a-z_]+[[:space:]]+\[kmemdbg_probe\]$' /proc/kallsyms; e probe_kallsyms
b dmesg; dmesg; e dmesg
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
b kernel_ptdump; cat /sys/kernel/debug/kmemdbg_ptdump 2>/dev/null; e kernel_ptdump
b pause; read -r u < /proc/uptime; echo "$u"
read -t 3 x
read -r u < /proc/uptime; echo "$u"; e pause
b vmallocinfo
while IFS= read -r l; do echo "$l"; done < /proc/vmallocinfo
e vmallocinfo
echo "@@KMEMDBG READY@@"
while :; do read -r x || sleep 86400; done
"""


def init_script(modules: List[str]) -> str:
    """The /init text for a guest that loads ``modules`` (names, in order)."""
    for name in modules:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
            raise ValueError("bad module name %r" % name)
    return (INIT_TEMPLATE
            .replace("@MODULES@", " ".join(modules))
            .replace("@KALLSYMS@", "|".join(KALLSYMS_WANTED)))


# --- modules ---------------------------------------------------------------

def modinfo(ko: bytes) -> Dict[str, str]:
    """The key=value strings of a module's .modinfo section (first of each)."""
    info = {}  # type: Dict[str, str]
    for m in re.finditer(rb"(?<=\x00)(depends|name|vermagic)=([^\x00]*)\x00", ko):
        key = m.group(1).decode()
        info.setdefault(key, m.group(2).decode("ascii", "replace"))
    return info


def _read_ko(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".zst"):
        raise RuntimeError("zstd-compressed module not supported: %s" % path)
    return data


def index_modules(modroot: str) -> Dict[str, str]:
    """Map module name (with '_' for '-') to its .ko file under ``modroot``."""
    index = {}  # type: Dict[str, str]
    for dirpath, _dirs, files in os.walk(modroot):
        for fn in files:
            m = re.fullmatch(r"(.+)\.ko(\.xz|\.zst|\.gz)?", fn)
            if m:
                index[m.group(1).replace("-", "_")] = os.path.join(dirpath, fn)
    return index


def resolve_modules(modroot: str, wanted: List[str]) -> List[Tuple[str, bytes]]:
    """Modules ``wanted`` plus their ``depends=`` closure, dependencies first,
    as (name, uncompressed .ko bytes)."""
    index = index_modules(modroot)
    done = []  # type: List[Tuple[str, bytes]]
    seen = set()  # type: set

    def visit(name: str, chain: Tuple[str, ...]) -> None:
        name = name.replace("-", "_")
        if name in seen:
            return
        if name in chain:
            raise RuntimeError("module dependency cycle: %s" % " -> ".join(chain + (name,)))
        if name not in index:
            raise RuntimeError("module %s not found under %s" % (name, modroot))
        ko = _read_ko(index[name])
        deps = [d for d in modinfo(ko).get("depends", "").split(",") if d]
        for dep in deps:
            visit(dep, chain + (name,))
        seen.add(name)
        done.append((name, ko))

    for w in wanted:
        visit(w, ())
    return done


# --- newc cpio ---------------------------------------------------------------

class Newc:
    """A minimal writer of the "newc" cpio format that the kernel unpacks."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"",
               rdev: Tuple[int, int] = (0, 0), nlink: int = 1) -> None:
        namez = name.encode() + b"\x00"
        fields = (self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0,
                  rdev[0], rdev[1], len(namez), 0)
        hdr = b"070701" + b"".join(b"%08x" % v for v in fields)
        self._ino += 1
        out = self._buf
        out.write(hdr + namez)
        out.write(b"\x00" * (-(len(hdr) + len(namez)) % 4))
        out.write(data)
        out.write(b"\x00" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish_gzip(self) -> bytes:
        self._entry("TRAILER!!!", 0, nlink=1)
        raw = self._buf.getvalue()
        raw += b"\x00" * (-len(raw) % 512)
        return gzip.compress(raw, compresslevel=6, mtime=0)


def build_initramfs(busybox: bytes, modules: List[Tuple[str, bytes]]) -> bytes:
    """A gzip'd newc archive: busybox, /init, the modules, /dev/console."""
    c = Newc()
    for d in ("bin", "dev", "proc", "sys", "tmp", "sbin", "usr", "usr/bin",
              "usr/sbin", "lib", "lib/modules", "lib/modules/kmemdbg"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3, 0o666)
    c.file("bin/busybox", busybox, 0o755)
    c.file("init", init_script([n for n, _ in modules]).encode(), 0o755)
    for name, ko in modules:
        c.file("lib/modules/kmemdbg/%s.ko" % name, ko)
    return c.finish_gzip()


def sections(serial_text: str) -> Dict[str, List[str]]:
    """The marked sections of a serial log, as lists of lines (CR stripped)."""
    out = {}  # type: Dict[str, List[str]]
    current = None  # type: Optional[str]
    buf = []  # type: List[str]
    for raw in serial_text.splitlines():
        line = raw.rstrip("\r")
        m = re.search(r"@@KMEMDBG (BEGIN|END) (\S+)@@", line)
        if m:
            if m.group(1) == "BEGIN":
                current, buf = m.group(2), []
            elif current == m.group(2):
                out[current] = buf
                current = None
            continue
        if current is not None:
            buf.append(line)
    return out
