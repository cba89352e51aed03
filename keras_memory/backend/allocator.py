"""Which memory allocator this process runs with: what the CPU figures depend on."""

import os


def host_allocator():
    """`"tcmalloc"` or `"jemalloc"` when preloaded (`LD_PRELOAD`), else `"default"`.

    On the CPU the allocator moves the figures: XLA's and PyTorch's large
    temporary buffers come back from glibc's malloc as fresh pages, which
    the kernel zeroes on first touch each step; tcmalloc keeps them. The
    `keras-memory` command preloads tcmalloc where it is installed.
    """
    preloaded = [os.path.basename(p) for p in os.environ.get("LD_PRELOAD", "").split()]
    for name in ("tcmalloc", "jemalloc"):
        if any(name in library for library in preloaded):
            return name
    return "default"
