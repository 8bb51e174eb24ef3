#!/usr/bin/env python3
"""Fetch a recipe kernel's DWARF vmlinux (Debian's linux-image-…-dbg) for the crash tests.

    python3 .ci/fetch_dbg_vmlinux.py x86_64-6.1-l4

crash needs DWARF debug info; kmemdbg does not.  The .deb (sha256-pinned
below) is downloaded with ``apt-get download`` into
``${KMEMDBG_CACHE:-~/.cache/kmemdbg}/debs``, only ``vmlinux-RELEASE`` is
extracted into ``…/dbg/usr/lib/debug/boot/`` (where tests/realdumps.py's
debug_vmlinux() looks), and the .deb is then deleted.  Safe to run again:
an extracted vmlinux is kept.  Measured here: about 8 s of download (855 MB)
and 75 s of extraction for the 6.1 package.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vmcores.build import cache_root, sha256_file  # noqa: E402  (the factory's own cache and digest)

#: recipe -> the -dbg package of its kernel, pinned
PACKAGES = {
    "x86_64-6.1-l4": {"package": "linux-image-6.1.0-50-amd64-dbg", "version": "6.1.176-1", "arch": "amd64",
                      "release": "6.1.0-50-amd64",
                      "sha256": "432bdac42155219d5ef471cf73b27bc86370c3a9ac441eed79ea1d4cb442c417"},
    # not fetched by CI (1033 MB; ~7 s download, ~2 min extraction here); both 6.12 recipes use it
    "x86_64-6.12-l4": {"package": "linux-image-6.12.113+deb12-amd64-dbg", "version": "6.12.113-1~deb12u1",
                       "arch": "amd64", "release": "6.12.113+deb12-amd64",
                       "sha256": "77f6df0186af60d79a29c65a43e3ec772bd67d660f130f9b919f6be3d9513c1c"},
}
PACKAGES["x86_64-6.12-l5"] = PACKAGES["x86_64-6.12-l4"]


def fetch(recipe: str) -> str:
    pkg = PACKAGES[recipe]
    dbg = os.path.join(cache_root(), "dbg")
    target = os.path.join(dbg, "usr", "lib", "debug", "boot", f"vmlinux-{pkg['release']}")
    if os.path.exists(target):
        return target
    debs = os.path.join(cache_root(), "debs")
    os.makedirs(debs, exist_ok=True)
    deb = os.path.join(debs, f"{pkg['package']}_{pkg['version']}_{pkg['arch']}.deb")
    t0 = time.monotonic()
    if not os.path.exists(deb):
        spec = f"{pkg['package']}:{pkg['arch']}={pkg['version']}"
        cmd = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", spec]
        if subprocess.run(cmd, cwd=debs).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], check=True)
            subprocess.run(cmd, cwd=debs, check=True)
    t1 = time.monotonic()
    digest = sha256_file(deb)
    if digest != pkg["sha256"]:
        os.rename(deb, deb + ".bad-sha256")
        sys.exit(f"fetch_dbg_vmlinux: {os.path.basename(deb)} has sha256 {digest}, pinned {pkg['sha256']}")
    tmp = dbg + f".tmp{os.getpid()}"
    os.makedirs(tmp)
    member = f"./usr/lib/debug/boot/vmlinux-{pkg['release']}"
    tar = subprocess.Popen(["tar", "-x", "-C", tmp, member], stdin=subprocess.PIPE)
    deb_tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=tar.stdin)
    tar.stdin.close()
    if deb_tar.wait() != 0 or tar.wait() != 0:
        sys.exit(f"fetch_dbg_vmlinux: extracting {member} from {os.path.basename(deb)} failed")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(os.path.join(tmp, member), target)
    subprocess.run(["rm", "-rf", tmp], check=True)
    os.unlink(deb)
    print(f"fetch_dbg_vmlinux: {target} (download {t1 - t0:.0f} s, verify and extract "
          f"{time.monotonic() - t1:.0f} s)", file=sys.stderr)
    return target


def main(argv) -> int:
    for recipe in argv or list(PACKAGES):
        if recipe not in PACKAGES:
            sys.exit(f"fetch_dbg_vmlinux: no -dbg package pinned for {recipe} (known: {', '.join(PACKAGES)})")
        print(fetch(recipe))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
