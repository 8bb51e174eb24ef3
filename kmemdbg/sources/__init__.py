"""Physical memory sources: a drgn Program, a raw ELF core, (the model lives in kmemdbg.model)."""
