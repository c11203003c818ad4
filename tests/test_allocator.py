"""The command line restarts itself with tcmalloc preloaded where the library is installed."""

import ctypes.util
import os
import subprocess
import sys

import pytest

from seq2seq.allocator import TCMALLOC

pytestmark = pytest.mark.skipif(ctypes.util.find_library(TCMALLOC) is None or not sys.platform.startswith("linux"),
                                reason="tcmalloc is not installed (apt install libtcmalloc-minimal4)")

# What the process runs with after the restart, the arguments it got and the LD_PRELOAD that the
# processes it starts inherit (a child's own view of it).
PROBE = ("import subprocess, sys; from seq2seq.allocator import restart_with_tcmalloc, tcmalloc_loaded; "
         "restart_with_tcmalloc(); child = subprocess.run([sys.executable, '-c', "
         "'import os; print(os.environ.get(\"LD_PRELOAD\"))'], capture_output=True, text=True).stdout.strip(); "
         "print(tcmalloc_loaded(), sys.argv[1:], child)")


def environment(**env) -> dict[str, str]:
    """This process's environment without a preload or a choice of malloc, then env."""
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "SEQ2SEQ_MALLOC")} | env


def probe(**env) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, "a", "--b"], env=environment(**env), capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def test_restarts_with_tcmalloc_and_the_same_arguments_and_its_children_do_not_inherit_it():
    assert probe() == "True ['a', '--b'] None"


def test_the_users_own_preload_stays_and_is_what_children_inherit():
    library = ctypes.util.find_library("m")  # a library that is no allocator
    assert probe(LD_PRELOAD=library) == f"True ['a', '--b'] {library}"


def test_system_malloc_on_request():
    assert probe(SEQ2SEQ_MALLOC="system") == "False ['a', '--b'] None"


@pytest.mark.parametrize("preload", [f"lib{TCMALLOC}.so.999", "libjemalloc.so.2"])
def test_an_allocator_preloaded_already_is_left_alone(preload):
    """The user's own allocator, or tcmalloc that the loader refused (no restart loop)."""
    assert probe(LD_PRELOAD=preload) == f"False ['a', '--b'] {preload}"


def test_the_command_line_runs_under_tcmalloc(tmp_path):
    """`python -m seq2seq` restarts before it runs the command: its pid's maps name tcmalloc."""
    code = ("import sys, runpy; from seq2seq import allocator; "
            "sys.argv = ['seq2seq', '--version']; runpy.run_module('seq2seq', run_name='__main__'); "
            "print(allocator.tcmalloc_loaded())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment())
    assert out.stdout.split() == ["seq2seq", "0.1.0", "True"]
