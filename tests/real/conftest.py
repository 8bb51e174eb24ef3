"""Tests against real Debian kernels dumped by vmcores/build.py.

They need the fixture cache (${KMEMDBG_CACHE:-$HOME/.cache/kmemdbg}) and are
marked ``real``; each one skips, naming the build command, when its recipe
is not built.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "real: needs a real-kernel dump built by `python3 vmcores/build.py` (cached, skipped if absent)")
