"""``python3 -m kmemdbg.gdb``: print the file to ``source`` in gdb for this installation."""
from . import SCRIPT

print(SCRIPT)
