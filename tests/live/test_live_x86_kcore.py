"""kmemdbg over a live x86-64 kernel's /proc/kcore, inside the guest.

The x86_64-6.12-l4 recipe's kernel boots under QEMU with the host's root
shared read-only over 9p; /init mounts it, chroots into it and runs
tests/live/kcore_guest.py with the host's own Python, drgn and this
checkout. Oracles, all inside the running guest: drgn's C page-table walker
(``_linux_helper_follow_phys`` from swapper_pg_dir) over the same
/proc/kcore, for addresses named by the guest's own /proc/vmallocinfo,
/proc/iomem and kallsyms; and the guest kernel's own slow_virt_to_phys()
as printed by kmemdbg_probe (loaded from the recipe cache).
"""

import json
import os
import shutil
import shlex
import sys
import time

import pytest

from guestlib import REPO, Guest, initramfs, recipe_files, section, tail, workdir
from vmcores.guest import INIT_PREAMBLE

pytestmark = pytest.mark.live

RECIPE = "x86_64-6.12-l4"
TIMEOUT_S = 170
MODULES = ["9p", "9pnet_virtio"]   # with netfs and 9pnet from their depends=

INIT = INIT_PREAMBLE + r"""mount -t 9p -o trans=virtio,version=9p2000.L,ro host /host || echo "@@KMEMDBG WARN 9p mount failed@@"
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
# scratch space on the (writable) devtmpfs: a tmpfs over /host/tmp would hide a
# checkout that lives under the host's /tmp
mkdir -p /host/dev/kmemdbg-scratch
echo "@@KMEMDBG BOOTED@@"
chroot /host /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/dev/kmemdbg-scratch \
  TMPDIR=/dev/kmemdbg-scratch \
  PYTHONDONTWRITEBYTECODE=1 DRGN_DISABLE_PLUGINS='*' @COMMAND@
echo "@@KMEMDBG DONE@@"
poweroff -f
"""


def test_kmemdbg_on_guest_kcore_agrees_with_drgn_and_the_kernel() -> None:
    files = recipe_files(RECIPE)
    with open(os.path.join(files["dir"], "manifest.json")) as f:
        q = json.load(f)["recipe_content"]["qemu"]
    wd = workdir("kmemdbg-live-")
    script = os.path.join(REPO, "tests", "live", "kcore_guest.py")
    command = " ".join(shlex.quote(x) for x in ("env", "PYTHONPATH=" + REPO, sys.executable, script, REPO))
    init = INIT.replace("@COMMAND@", command)
    initrd = os.path.join(wd, "initrd.gz")
    with open(initrd, "wb") as f:
        f.write(initramfs(files, MODULES, init, probe=True))
    argv = [q["binary"], "-accel", "tcg", "-M", q["machine"], "-cpu", q["cpu"], "-m", "512M", "-smp", "2",
            "-nodefaults", "-display", "none", "-no-reboot",
            "-kernel", files["vmlinuz"], "-initrd", initrd,
            "-append", "console=ttyS0 no_hash_pointers panic=-1 oops=panic",
            "-virtfs", "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap"]
    t0 = time.monotonic()
    with Guest(argv, wd) as g:
        text = g.wait_for("@@KMEMDBG END live@@", TIMEOUT_S)
    print("live guest run took %.0f s" % (time.monotonic() - t0))
    assert "@@KMEMDBG WARN" not in text, tail(text)
    lines = section(text, "live")
    assert lines, tail(text)
    doc = json.loads(lines[0])
    assert "error" not in doc, doc.get("error")
    assert doc["api"] == "kmemdbg.open(kcore=True)", doc.get("api_error")
    # layout evidence: the symbol page_offset_base and /proc/kcore's program
    # headers (KCORE_RAM p_vaddr - p_paddr) must agree, with no disagreement
    lay = doc["layout"]
    assert lay["kcore_linear_offset"] == lay["page_offset_base"], lay
    assert not lay["disagreements"], lay
    # CONFIG_DEBUG_VIRTUAL's phys_addr_valid() bound: boot_cpu_data.x86_phys_bits through BTF,
    # equal to what the guest kernel prints in /proc/cpuinfo; __pa() of a direct-map address
    # at that bound is what the kernel would BUG on
    assert lay["x86_phys_bits"] == doc["cpuinfo_phys_bits"], (lay, doc.get("cpuinfo_phys_bits"))
    assert "boot_cpu_data" in lay["x86_phys_bits_source"]
    assert doc["debug_virtual"]["inside"].startswith("accepted"), doc["debug_virtual"]
    assert doc["debug_virtual"]["beyond"].startswith("would BUG"), doc["debug_virtual"]
    assert "IS_LIVE" in doc["flags"]

    results = doc["results"]
    stable = [r for r in results if r["stable"]]
    assert len(stable) >= len(results) - 3, "too many addresses changed while being walked"
    disagree = [r for r in stable if r["kmemdbg"] != r["drgn"]]
    assert not disagree, "kmemdbg vs drgn on the live guest (%d of %d): %s" % (
        len(disagree), len(stable), disagree[:5])
    wrong = [r for r in stable if r["kernel"] is not None and r["drgn"] is not None and r["kmemdbg"] != r["kernel"]]
    assert not wrong, "kmemdbg vs the guest kernel's own report: %s" % wrong[:5]

    def mapped(prefix):
        return sum(1 for r in stable if r["kind"].startswith(prefix) and r["kmemdbg"] is not None)

    counts = {p: mapped(p) for p in ("vmalloc:", "ioremap", "linear:ram", "image", "probe:")}
    assert counts["vmalloc:"] >= 20 and counts["ioremap"] >= 1 and counts["linear:ram"] >= 3, counts
    probe = [r for r in stable if r["kind"].startswith("probe:")]
    assert counts["image"] == 1 and counts["probe:"] == len(probe) >= 10, counts
    shutil.rmtree(wd, ignore_errors=True)   # kept for inspection when a check fails
