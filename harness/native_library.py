"""Compile C sources with the machine's C compiler on first use, cache the library, load it.

`compiler()` names the compiler ($CC, else cc, else gcc; None: none). `build(name, sources,
flag_sets, compiler)` returns (the loaded library, its path, the compiler's first --version
line), trying each set of flags in turn (the first that compiles wins), or raises OSError,
subprocess.SubprocessError or ValueError. A library built with -march=native suits one machine
only, so the cache key holds the sources, every flag set, the compiler and its version and this
CPU's flags: a different machine or compiler builds its own. It lives in $RNNBENCH_CACHE_DIR,
else $XDG_CACHE_HOME/rnnbench, else ~/.cache/rnnbench, written to a temporary name and renamed
into place, and is loaded only from a directory and file that this user owns and no one else may
write.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

COMPILE_TIMEOUT_S = 120


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def build(
    name: str, sources: Sequence[Path], flag_sets: Sequence[Sequence[str]], compiler: str
) -> tuple[ctypes.CDLL, Path, str]:
    """sources[0] is compiled (the rest are what it includes)."""
    version = _version(compiler)
    path = _cache_dir() / f"{name}-{_key(compiler, version, sources, flag_sets)}.so"
    library = _cached(path)
    if library is None:  # none yet, someone else's, or one that does not load: build it
        _compile(compiler, sources[0], flag_sets, path)
        library = ctypes.CDLL(str(path))
    return library, path, version


def first_line(text: object) -> str:
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(text).__name__


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


def _key(compiler: str, version: str, sources, flag_sets) -> str:
    digest = hashlib.sha256(b"".join(Path(path).read_bytes() for path in sources))
    flags = " | ".join(" ".join(flag_set) for flag_set in flag_sets)
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


def _compile(compiler: str, source: Path, flag_sets, path: Path) -> None:
    handle, temporary = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(handle)
    try:
        for flags in flag_sets:
            done = subprocess.run(
                [compiler, *flags, str(source), "-o", temporary],
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT_S,
            )
            if done.returncode == 0:
                break
        if done.returncode != 0:
            raise ValueError(f"{compiler} exited {done.returncode}: {first_line(done.stderr)}")
        os.chmod(temporary, 0o700)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
