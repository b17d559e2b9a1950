"""The fused quasi-Newton kernels: quasi_newton.c compiled with the machine's C compiler on
first use, cached and loaded by harness/native_library.py (one library per machine, compiler and
source; only from a directory and file that this user alone may write).

`load()` returns the loaded Kernels, or one line saying why there are none (no compiler, a
failed build, RNNBENCH_NATIVE=0); callers then keep the framework's own iteration.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
import subprocess
from pathlib import Path

from harness import native_library

SOURCE = Path(__file__).with_name("quasi_newton.c")
HEADERS = (Path(__file__).with_name("quasi_newton_cells.h"),)
FLAGS = (
    "-O3",
    "-march=native",
    "-funroll-loops",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fPIC",
    "-shared",
    "-pthread",
)
# tried first: the kernel then splits a block's units over the caller's OpenMP threads (torch's
# pool); a compiler without OpenMP builds it single-threaded
OPENMP = "-fopenmp"
DISABLE_ENV = "RNNBENCH_NATIVE"  # "0": keep the frameworks' own iterations
CELLS = ("rnn", "gru", "lstm")
DTYPES = {"float32": "f32", "float64": "f64"}


@dataclasses.dataclass(frozen=True)
class Kernels:
    """The loaded library: `function(cell, dtype)` is the ctypes function of one cell and dtype."""

    path: Path
    compiler: str  # the compiler's first --version line
    library: ctypes.CDLL

    def function(self, cell: str, dtype: str, pooled: bool = False):
        """The cell's kernel on the caller's OpenMP pool, or (pooled) on the library's own."""
        return getattr(self.library, f"{cell}_{'pooled_' if pooled else ''}{DTYPES[dtype]}")

    @property
    def threaded(self) -> bool:
        """Built with OpenMP: a call may split its units over several threads."""
        return bool(self.library.openmp())

    def describe(self) -> str:
        threads = ", OpenMP" if self.threaded else ""
        return f"fused C kernel ({self.compiler}, {' '.join(FLAGS[:3])}{threads})"


@functools.cache
def load() -> Kernels | str:
    if os.environ.get(DISABLE_ENV, "") == "0":
        return f"the fused C kernel is off ({DISABLE_ENV}=0)"
    compiler = native_library.compiler()
    if not compiler:
        return "no C compiler (cc, gcc or $CC) to build the fused kernel"
    try:
        library, path, version = native_library.build(
            "quasi_newton", (SOURCE, *HEADERS), ((*FLAGS, OPENMP), FLAGS), compiler
        )
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        return f"the fused C kernel did not build or load: {native_library.first_line(error)}"
    for cell in CELLS:
        for suffix in DTYPES.values():
            for pooled in ("", "pooled_"):
                function = getattr(library, f"{cell}_{pooled}{suffix}")
                pointers = 10 if cell == "gru" else 9  # the cell's arrays, mx, P, carry and RT
                function.argtypes = [ctypes.c_longlong] * 5 + [ctypes.c_void_p] * pointers
                function.restype = ctypes.c_double
    for suffix in DTYPES.values():
        function = getattr(library, f"project_{suffix}")
        function.argtypes = [ctypes.c_longlong] * 4 + [ctypes.c_void_p] * 4
        function.restype = None
    return Kernels(path, version, library)
