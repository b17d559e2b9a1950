"""The clock a core runs at, measured: a chain of dependent integer additions (clock.c, one
cycle each) timed. A VM's /proc/cpuinfo often shows the base clock, and boost runs faster: a
peak drawn from that clock is beaten by what is measured against it. So the peak is drawn from
the higher of the clock reported and this one (cpu_limits.py).

The chain runs on one core, at that core's boost; with every core busy the clock may be lower,
so the peak it gives for several threads is an upper bound, never a figure to be reached.
"""

from __future__ import annotations

import ctypes
import functools
import subprocess
import time
from pathlib import Path

from harness import native_library

SOURCE = Path(__file__).with_name("clock.c")
FLAGS = ("-O2", "-fPIC", "-shared")
CHAIN = 1 << 26  # ~20-35 ms at 2-3.5 GHz
ROUNDS = 5


@functools.cache
def measured_mhz() -> tuple[float | None, str]:
    """(MHz, how it was measured) or (None, why not): the fastest of ROUNDS chains of CHAIN
    additions, after one to wake the core from an idle clock."""
    compiler = native_library.compiler()
    if not compiler:
        return None, "no C compiler (cc, gcc or $CC) to build the clock probe"
    try:
        library, _, _ = native_library.build("clock", (SOURCE,), (FLAGS,), compiler)
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        return None, f"the clock probe did not build or load: {native_library.first_line(error)}"
    if not library.chain_available():
        return None, "no clock probe for this processor (x86-64 and AArch64 only)"
    chain = library.add_chain
    chain.argtypes, chain.restype = [ctypes.c_longlong], ctypes.c_longlong
    chain(CHAIN)
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        done = chain(CHAIN)
        best = min(best, time.perf_counter() - start)
    if done != CHAIN // 16 * 16:
        return None, f"the clock probe added {done} for {CHAIN}: not a chain of additions"
    how = f"measured: {CHAIN} dependent integer additions (1 cycle each), fastest of {ROUNDS}"
    return done / best / 1e6, how
