"""``python3 -m kmemdbg.crash --build``: build the crash extension and print the path for ``extend``."""
from __future__ import annotations

import argparse
import sys

from . import BuildError, build, cache_dir, crash_version, package_root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m kmemdbg.crash",
                                description="Build kmemdbg's crash extension for the installed crash.")
    p.add_argument("--build", action="store_true", help="compile kmemdbg.so and print its path")
    p.add_argument("--out-dir", metavar="DIR", help=f"where to put kmemdbg.so (default {cache_dir()})")
    p.add_argument("--python", metavar="PATH", help="the Python the extension runs (default: this one)")
    args = p.parse_args(argv)
    if not args.build:
        p.print_help()
        return 2
    try:
        path = build(args.out_dir, args.python)
    except BuildError as err:
        print(f"kmemdbg: {err}", file=sys.stderr)
        return 1
    version = crash_version()
    print(f"kmemdbg: built for crash {version or '(crash not found on PATH)'}; the child is "
          f"{args.python or sys.executable} with kmemdbg from {package_root()}", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
