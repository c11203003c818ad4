"""The memory allocator of a process on Linux: tcmalloc where it is installed, glibc's malloc
otherwise.

PyTorch's CPU tensors come from the C library's malloc. Batches of varying shapes ask it for
blocks of ever different sizes, and glibc's malloc keeps the freed ones in pieces it cannot
hand back or reuse: the bahdanau model's bf16 training held 2.2-2.5 GB where one batch shape
needs 1.1 GB. tcmalloc (from gperftools; Debian and Ubuntu: `apt install
libtcmalloc-minimal4`) reuses them: it held 1.5-1.7 GB, trained about as fast in fp32 and
faster in bf16 (docs/results.md). An allocator can only be chosen before a process starts,
so the command line starts itself again with tcmalloc preloaded (LD_PRELOAD) where the
library is found and no allocator is preloaded yet; once restarted, it puts the user's own
LD_PRELOAD back, so that the processes it starts do not inherit tcmalloc.
SEQ2SEQ_MALLOC=system keeps glibc's malloc (tcmalloc, the default, asks for the restart).
"""

from __future__ import annotations

import ctypes.util
import os
import re
import sys

from seq2seq.errors import UserError

TCMALLOC = "tcmalloc_minimal"
CHOICES = ("tcmalloc", "system")  # SEQ2SEQ_MALLOC
PRELOAD_BEFORE = "SEQ2SEQ_PRELOAD_BEFORE"  # across the restart: the LD_PRELOAD it had before ("" for none)


def tcmalloc_loaded() -> bool:
    """Whether this process's malloc is tcmalloc's."""
    try:
        with open("/proc/self/maps") as maps:
            return any(f"lib{TCMALLOC}" in line for line in maps)
    except OSError:
        return False


def restart_with_tcmalloc() -> None:
    """Replace this process by the same command with tcmalloc preloaded, where that applies;
    otherwise return (other systems, SEQ2SEQ_MALLOC=system, no tcmalloc, an allocator preloaded
    already, or this process is the restart, which then puts the LD_PRELOAD from before back)."""
    choice = os.environ.get("SEQ2SEQ_MALLOC", "tcmalloc")
    if choice not in CHOICES:
        raise UserError(f"SEQ2SEQ_MALLOC must be {' or '.join(CHOICES)}, got {choice!r}")
    if PRELOAD_BEFORE in os.environ:
        before = os.environ.pop(PRELOAD_BEFORE)
        if before:
            os.environ["LD_PRELOAD"] = before
        else:
            del os.environ["LD_PRELOAD"]
        return
    if not sys.platform.startswith("linux") or choice == "system":
        return
    library = ctypes.util.find_library(TCMALLOC)  # its soname, e.g. libtcmalloc_minimal.so.4
    before = os.environ.get("LD_PRELOAD", "")
    # an allocator preloaded (jemalloc, mimalloc, a tcmalloc; or ours, which the loader refused: no loop)
    if library is None or tcmalloc_loaded() or any("malloc" in os.path.basename(entry)
                                                   for entry in re.split(r"[\s:]+", before)):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]],
              {**os.environ, "LD_PRELOAD": " ".join(filter(None, [before, library])), PRELOAD_BEFORE: before})
