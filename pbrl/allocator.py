"""Keep freed memory in the process for the next tensor, instead of handing it back to the OS and faulting it in anew.

glibc serves every block over its mmap threshold (128 KB, rising on its own to 32 MB at most) with a fresh ``mmap``
and returns it with ``munmap`` when freed. A CNN reward minibatch on the CPU is bigger than that: 3 members x 16
pairs x 50 frames of 4 x 84 x 84 floats is 90 MB, and its activations are tens of MB more. So each of the fit's
steps mapped some hundreds of MB, touched every 4 KB page of them once (one page fault each) and gave them back: on
the 2-core machine half of the fit's CPU time went to the kernel (``scripts/speed/bench_allocator.py``;
``results/speed/allocator.md``). Raising the mmap and trim thresholds keeps those blocks in the heap, where the next
step reuses them. The cost is that the process keeps its peak heap rather than shrinking after it.

This changes the whole process's allocator (like ``torch.set_num_threads``), so the loop calls it when a run starts.
Elsewhere than glibc (macOS, musl, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30  # blocks up to 1 GiB come from the heap, and up to 1 GiB of free heap top is kept


def reuse_freed_memory(keep_bytes: int = KEEP_BYTES) -> bool:
    """Have glibc's malloc serve blocks up to ``keep_bytes`` from the heap and keep that much freed; True if set."""
    if not sys.platform.startswith("linux"):
        return False
    try:  # the process's own symbols, libc's among them: no library search (find_library runs ldconfig)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no mallopt: not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, keep_bytes)) and bool(mallopt(M_TRIM_THRESHOLD, keep_bytes))
