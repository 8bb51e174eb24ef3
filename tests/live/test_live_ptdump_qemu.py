"""ptdump of a dump against QEMU's own page-table dump of the same stopped x86-64 guest.

The kernel's own ptdump (PTDUMP_DEBUGFS) is compiled out of Debian's kernels
and its walker is not exported to modules, so the independent oracle here is
QEMU: its human-monitor ``info mem`` walks the guest CPU's current page tables
(CR3) and prints merged ranges with the effective user/write rights (the AND
of U/S and R/W over every level).  The guest is stopped, ``info mem`` is
taken and the guest is dumped over QMP at that same moment; kmemdbg's
``ptdump`` of the dump, reduced to the same (user, write) rights and merged
the same way, must give exactly QEMU's ranges over the kernel half.
"""

import os
import re
import shutil
import time

import pytest

from guestlib import Guest, recipe_guest, tail
from test_live_arm64_qmp import INIT, MODULES
from vmcores.qmp import QMP

pytestmark = pytest.mark.live

RECIPE = "x86_64-6.12-l4"
KERNEL_HALF = 0xFFFF800000000000
INFO_MEM = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16}) ([0-9a-f]{16}) ([u-])r([w-])$")


def qemu_ranges(text):
    """[(start, end, user, write)] from QEMU's ``info mem`` (end exclusive), kernel half only."""
    out = []
    for line in text.splitlines():
        m = INFO_MEM.match(line.strip())
        if m:
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            if start >= KERNEL_HALF:
                out.append((start, end, m.group(4) == "u", m.group(5) == "w"))
    return out


def merged(ranges):
    """Join ranges that touch and have the same rights, as QEMU's monitor does."""
    out = []
    for start, end, user, write in sorted(ranges):
        if out and out[-1][1] == start and out[-1][2:] == (user, write):
            out[-1] = (out[-1][0], end, user, write)
        else:
            out.append((start, end, user, write))
    return out


def test_ptdump_of_the_dump_equals_qemus_info_mem() -> None:
    import kmemdbg
    from kmemdbg.ptdump import ptdump

    argv, _rec, wd = recipe_guest(RECIPE, "kmemdbg-ptdump-", INIT, MODULES, ["qmp.sock"], smp=1)
    sock, core = os.path.join(wd, "qmp.sock"), os.path.join(wd, "vmcore.elf")
    t0 = time.monotonic()
    with Guest(argv, wd) as g:
        text = g.wait_for("@@KMEMDBG READY@@", 150)
        assert "@@KMEMDBG WARN" not in text, tail(text)
        mon = QMP(sock)
        try:
            mon.execute("stop")
            info = mon.execute("human-monitor-command", {"command-line": "info mem"})
            mon.execute("dump-guest-memory", {"paging": False, "protocol": "file:" + core})
        finally:
            mon.close()
    want = qemu_ranges(info if isinstance(info, str) else str(info))
    assert len(want) > 20, info[:2000] if isinstance(info, str) else info

    k = kmemdbg.open(core=core)
    ours = []
    for r in ptdump(k, KERNEL_HALF, 1 << 64, owners=False):
        p = r.permissions
        ours.append((r.start, r.end, p.user_read, p.kernel_write))
    got = [x for x in merged(ours)]
    print("kernel-half ranges: QEMU %d, kmemdbg %d (from %d ptdump ranges)" % (len(want), len(got), len(ours)))
    assert got == want, "first difference: %s" % next(
        ((a, b) for a, b in zip(got, want) if a != b), (len(got), len(want)))
    assert time.monotonic() - t0 < 180
    shutil.rmtree(wd, ignore_errors=True)
