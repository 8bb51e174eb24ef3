"""Kernel-object helpers in drgn's style: small functions over a :class:`~.reader.Reader`.

One topic per module:

- :mod:`.reader`: the protocols the helpers read through (``Reader``: virtual
  reads; ``TypedReader``: plus symbols and BTF offsets).
- :mod:`.errors`: the errors they raise (``KobjectsError`` and its kinds).
- :mod:`.lists`: ``struct list_head`` and ``struct rb_root`` walkers.
- :mod:`.tasks`: the ``init_task`` task list.
- :mod:`.percpu`: ``__per_cpu_offset`` and ``per_cpu_ptr``.
- :mod:`.page`: ``struct page`` geometry and page-type words.
- :mod:`.slab`: the one test of a slab page.
- :mod:`.vmalloc`: ``struct vmap_area`` values and lookups.
- :mod:`.modules`: ``struct module`` values and ``%pS`` formatting in modules.
- :mod:`.owners`: one index of who owns a kernel virtual address.

Every address is a kernel virtual address (``va``) unless named ``pa``;
sizes are in bytes.
"""
