"""drgn commands and the drgn plugin of kmemdbg (installed as ``kmemdbg.commands``)."""
