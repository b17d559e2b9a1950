"""The environment a run was measured in, from small collect_* functions (pyperf's pattern).
Everything that can change a timing is recorded: a comparison between two runs is flagged
when any of the COMPARABLE keys differ."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.json_values import JsonObject
from harness.machine.cpu_limits import collect_cpu_limits

LIBRARIES = (
    "numpy",
    "torch",
    "tensorflow",
    "keras",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxscript",
    "tf2onnx",
    "cupy-cuda12x",
    "cupy-cuda13x",
    "threadpoolctl",
    "pytest-benchmark",
    "rnnbench",
)
ENVIRONMENT_VARIABLES = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "CUDA_VISIBLE_DEVICES",
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_ENABLE_ONEDNN_OPTS",
    "PYTHONHASHSEED",
    "CI",
    "RNNBENCH_NATIVE",  # "0": the quasi-Newton iteration without its fused C kernel
    "CC",  # the compiler that builds that kernel
)
# What must match for two runs' timings to be compared without a flag.
COMPARABLE = ("cpu.model", "cpu.logical_cores", "gpu.name", "libraries")
NO_GPU_PROBE = "RNNBENCH_NO_GPU_PROBE"
# The GPU a run did not look for: no name, so it compares as unknown, not as "none".
NOT_PROBED = {"probed": False, "reason": f"{NO_GPU_PROBE} was set: torch was not asked"}


def gpu_probe_skipped() -> bool:
    """RNNBENCH_NO_GPU_PROBE set to anything but empty or 0."""
    return os.environ.get(NO_GPU_PROBE, "") not in ("", "0")


def gpu_label(gpu: JsonObject | None) -> str:
    """What a record's `gpu` says: the device's name, "none", or "not probed"."""
    if gpu is None:
        return "none"
    if gpu.get("probed") is False:
        return "not probed"
    return str(gpu.get("name", "unnamed"))


def collect_cpu() -> JsonObject:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "model": model,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "machine": platform.machine(),
    }


def usable_cores() -> int | None:
    """The cores this process may run on (its affinity), else the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def collect_gpu() -> JsonObject | None:
    """The first CUDA device as torch sees it, with the driver from nvidia-smi; None without.
    Where RNNBENCH_NO_GPU_PROBE is set (the test suite sets it: importing torch to ask costs
    seconds a run), torch is not asked and the record says so: NOT_PROBED, never None."""
    if gpu_probe_skipped():
        return dict(NOT_PROBED)
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    gpu = {
        "name": props.name,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "capability": f"{props.major}.{props.minor}",
        "count": torch.cuda.device_count(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }
    try:
        gpu["driver"] = (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
            .stdout.split("\n")[0]
            .strip()
        )
    except (OSError, subprocess.SubprocessError):
        gpu["driver"] = None
    return gpu


def collect_libraries() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def collect_blas() -> list[JsonObject]:
    """numpy's BLAS and OpenMP pools as threadpoolctl sees them in this process."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    import numpy  # noqa: F401  (its BLAS must be loaded to be seen)

    keep = ("internal_api", "version", "num_threads", "architecture", "threading_layer")
    return [{k: info.get(k) for k in keep} for info in threadpool_info()]


def collect_git() -> JsonObject:
    """The commit the code was at, and whether the code differed from it (results/ and
    README.md aside: a regeneration writes those). Where the tree is a copy without .git (the
    device machine), RNNBENCH_GIT_COMMIT names the commit and `dirty` is unknown."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = _git(root, "rev-parse", "HEAD")
        changed = _git(
            root,
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":!results",
            ":!README.md",
        )
    except (OSError, subprocess.SubprocessError):
        given = os.environ.get("RNNBENCH_GIT_COMMIT")
        return {
            "commit": given,
            "dirty": None,
            "source": "RNNBENCH_GIT_COMMIT" if given else "no git checkout",
        }
    return {"commit": commit, "dirty": changed != ""}


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()


def collect_numpy_gemm(blas: list[JsonObject]) -> JsonObject:
    """Which GEMM kernel NumPy's OpenBLAS runs, and the OPENBLAS_CORETYPE that chose it (set
    on some machines for safety: it can force 256-bit kernels on a 512-bit CPU)."""
    openblas = next((b for b in blas if b.get("internal_api") == "openblas"), None)
    return {
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "kernel": None if openblas is None else openblas.get("architecture"),
        "blas": None if openblas is None else "openblas",
    }


def machine_label(given: str | None = None) -> str:
    """What reports call this machine: --machine, else RNNBENCH_MACHINE (how a Dask worker is
    named), else the hostname. Machines of one kind may share a label: their timings pool."""
    return given or os.environ.get("RNNBENCH_MACHINE") or platform.node() or "?"


def collect_environment(machine: str | None = None) -> JsonObject:
    cpu, blas = collect_cpu(), collect_blas()
    return {
        "machine": machine_label(machine),
        "cpu": cpu,
        "cpu_limits": collect_cpu_limits(cpu["usable_cores"] or 1),
        "numpy_gemm": collect_numpy_gemm(blas),
        "gpu": collect_gpu(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "libraries": collect_libraries(),
        "blas": blas,
        "environment_variables": {k: os.environ.get(k) for k in ENVIRONMENT_VARIABLES},
        "git": collect_git(),
    }


def differences(a: JsonObject, b: JsonObject) -> list[str]:
    """The COMPARABLE keys on which two environments differ, as 'key: a -> b'."""
    out = []
    for key in COMPARABLE:
        left, right = _get(a, key), _get(b, key)
        if key == "libraries" and isinstance(left, dict) and isinstance(right, dict):
            for lib in sorted(set(left) | set(right)):
                if left.get(lib) != right.get(lib):
                    out.append(f"{lib}: {left.get(lib)} -> {right.get(lib)}")
        elif key == "gpu.name":  # a GPU not probed is unknown: neither this one nor none
            left, right = gpu_label(a.get("gpu")), gpu_label(b.get("gpu"))
            if left != right:
                out.append(f"gpu: {left} -> {right}")
        elif left != right:
            out.append(f"{key}: {left} -> {right}")
    return out


def _get(data: JsonObject, dotted: str) -> Any:
    found: Any = data
    for part in dotted.split("."):
        found = found.get(part) if isinstance(found, dict) else None
    return found
