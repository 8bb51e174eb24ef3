"""gdb start-up file for kmemdbg: ``source`` this file in gdb.

gdb runs it in its embedded Python (on Debian the system python3, not a
virtualenv), so it first puts the folder holding the ``kmemdbg`` package on
``sys.path``, then registers the ``kmemdbg`` command.
"""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import kmemdbg.gdb  # noqa: E402,F401 - registers the command
