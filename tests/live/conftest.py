"""Live tests: each boots one QEMU guest (TCG) from a recipe that
``vmcores/build.py`` built, and inspects the running kernel. Marked ``live``
(``python3 -m pytest -m live``); each skips, naming the build command, when
its recipe is not built.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
for p in (REPO_ROOT, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "live: boots a QEMU guest from a built recipe and inspects it live (pytest -m live)")
