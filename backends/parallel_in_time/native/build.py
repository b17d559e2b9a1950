"""Compile quasi_newton.c with the machine's C compiler on first use, cache the library, load it.

`load()` returns the loaded Kernels, or one line saying why there are none (no compiler, a
failed build, RNNBENCH_NATIVE=0); callers then keep the framework's own iteration. The library
is built with -march=native, so its cache key holds the source, the flags, the compiler's
version and this CPU's flags: a different machine or compiler builds its own. It lives in
$RNNBENCH_CACHE_DIR, else $XDG_CACHE_HOME/rnnbench, else ~/.cache/rnnbench, written to a
temporary name and renamed into place, and is loaded only from a directory and file that this
user owns and no one else may write.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

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
)
# tried first: the kernel then splits a block's units over the caller's OpenMP threads (torch's
# pool); a compiler without OpenMP builds it single-threaded
OPENMP = "-fopenmp"
DISABLE_ENV = "RNNBENCH_NATIVE"  # "0": keep the frameworks' own iterations
CELLS = ("rnn", "gru", "lstm")
DTYPES = {"float32": "f32", "float64": "f64"}
COMPILE_TIMEOUT_S = 120


@dataclasses.dataclass(frozen=True)
class Kernels:
    """The loaded library: `function(cell, dtype)` is the ctypes function of one cell and dtype."""

    path: Path
    compiler: str  # the compiler's first --version line
    library: ctypes.CDLL

    def function(self, cell: str, dtype: str):
        return getattr(self.library, f"{cell}_{DTYPES[dtype]}")

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
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        return "no C compiler (cc, gcc or $CC) to build the fused kernel"
    try:
        version = _version(compiler)
        path = _cache_dir() / f"quasi_newton-{_key(compiler, version)}.so"
        library = _cached(path)
        if library is None:  # none yet, someone else's, or one that does not load: build it
            _compile(compiler, path)
            library = ctypes.CDLL(str(path))
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        return f"the fused C kernel did not build or load: {_first_line(error)}"
    for cell in CELLS:
        for suffix in DTYPES.values():
            function = getattr(library, f"{cell}_{suffix}")
            pointers = 9 if cell == "gru" else 8  # the cell's arrays, mx, P and carry
            function.argtypes = [ctypes.c_longlong] * 5 + [ctypes.c_void_p] * pointers
            function.restype = ctypes.c_double
    return Kernels(path, version, library)


def _cached(path: Path) -> ctypes.CDLL | None:
    if not (path.exists() and _private(path)):
        return None
    try:
        return ctypes.CDLL(str(path))
    except OSError:
        return None


def _version(compiler: str) -> str:
    done = subprocess.run(
        [compiler, "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout.splitlines()[0].strip() if done.stdout else compiler


def _key(compiler: str, version: str) -> str:
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in (SOURCE, *HEADERS)))
    flags = " ".join((*FLAGS, OPENMP))
    for part in (compiler, version, flags, platform.machine(), _cpu_flags()):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:16]


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _cache_dir() -> Path:
    base = os.environ.get("RNNBENCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rnnbench"
    )
    folder = Path(base)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _private(folder):
            return folder
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="rnnbench-native-"))


def _private(path: Path) -> bool:
    """Owned by this user and writable by no one else: a library anyone could replace is
    never loaded."""
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def _compile(compiler: str, path: Path) -> None:
    handle, temporary = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(handle)
    try:
        for flags in ((*FLAGS, OPENMP), FLAGS):
            done = subprocess.run(
                [compiler, *flags, str(SOURCE), "-o", temporary],
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT_S,
            )
            if done.returncode == 0:
                break
        if done.returncode != 0:
            raise ValueError(f"{compiler} exited {done.returncode}: {_first_line(done.stderr)}")
        os.chmod(temporary, 0o700)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _first_line(text: object) -> str:
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(text).__name__
