"""drgn plugin entry point: makes kmemdbg's helpers and commands available in drgn.

drgn imports this module through the ``drgn.plugins`` entry point.  Importing
it must never fail or slow drgn down: the commands are registered lazily.
"""
