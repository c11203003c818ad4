"""The memory allocator of a process on Linux: tcmalloc where it is installed, glibc's malloc
otherwise.

PyTorch's CPU tensors come from the C library's malloc. Batches of varying shapes ask it for
blocks of ever different sizes, and glibc's malloc keeps the freed ones in pieces it cannot
hand back or reuse: the bahdanau model's bf16 training held 2.2-2.5 GB where one batch shape
needs 1.1 GB. tcmalloc (from gperftools; Debian and Ubuntu: `apt install
libtcmalloc-minimal4`) reuses them: it held 1.5-1.7 GB, trained about as fast in fp32 and
faster in bf16 (docs/results.md). An allocator can only be chosen before a process starts,
so the command line starts itself again with tcmalloc preloaded (LD_PRELOAD) where the
library is found and not loaded yet. SEQ2SEQ_MALLOC=system keeps glibc's malloc.
"""

from __future__ import annotations

import ctypes.util
import os
import sys

TCMALLOC = "tcmalloc_minimal"


def tcmalloc_loaded() -> bool:
    """Whether this process's malloc is tcmalloc's."""
    try:
        with open("/proc/self/maps") as maps:
            return any(f"lib{TCMALLOC}" in line for line in maps)
    except OSError:
        return False


def restart_with_tcmalloc() -> None:
    """Replace this process by the same command with tcmalloc preloaded, where that applies;
    otherwise return (other systems, SEQ2SEQ_MALLOC=system, no tcmalloc, or loaded already)."""
    if not sys.platform.startswith("linux") or os.environ.get("SEQ2SEQ_MALLOC", "tcmalloc") == "system":
        return
    library = ctypes.util.find_library(TCMALLOC)  # its soname, e.g. libtcmalloc_minimal.so.4
    if library is None or tcmalloc_loaded() or TCMALLOC in os.environ.get("LD_PRELOAD", ""):
        return  # the last: preloaded and not taken (the loader said why): do not loop
    preload = " ".join(filter(None, [os.environ.get("LD_PRELOAD"), library]))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, "LD_PRELOAD": preload})
