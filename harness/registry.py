"""The one place that names backends: each name -> "module:Class" + constructor arguments, the
packages it needs, the device it runs on and the benchmark modes it offers. Imported lazily,
so that a missing framework costs nothing until it is asked for. Parity, timing, analysis and
the CLI all ask this table; nothing else branches on a backend's name."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Mapping
from typing import Literal

from harness.model.errors import missing_package
from harness.model.protocol import NotSupported
from harness.model.spec import VARIANTS

MODEL_MODES = ("forward", "train", "gemm")
PROBE_MODES = ("peak", "bandwidth")  # machine probes: `size` is their only axis
MINGRU_MODES = ("forward", "sequential", "gemm")  # forward = its parallel scan
PARALLEL_IN_TIME_MODES = ("newton", "quasi-newton")  # the recurrence solved in parallel over time
# One step per call with the state carried (stream), and the streams it serves under load
STREAM_MODES = ("stream", "load")
ALL = (*MODEL_MODES, "sequential", *PROBE_MODES, *PARALLEL_IN_TIME_MODES, *STREAM_MODES)
REFERENCE = "numpy"  # the oracle every other backend is compared with
HEADLINE = ("torch-cpu", "torch-cuda")  # the framework the findings and the selfcheck quote first


Device = Literal["cpu", "gpu"]


class UnknownBackend(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Entry:
    import_path: str  # "module:Class"
    requires: tuple[str, ...]  # import names that must be installed
    extra: str  # the pip extra that installs them
    kwargs: Mapping[str, object]  # the backend class's constructor arguments
    device: Device
    modes: tuple[str, ...]  # benchmark modes; () = parity only
    mingru: bool  # has minGRU (forward = parallel scan, sequential)
    product_of: str  # the backend whose matrix product is this one's equal-FLOP baseline ("": none)
    parity: bool  # in the default parity matrix
    variants: tuple[str, ...] = ()  # the cell variants (spec.VARIANTS) it computes
    reverse_only: bool = False  # runs a reverse-only layer (an ONNX node's direction=reverse)
    runs_file: bool = False  # times a user's model file as it is (bench --model)
    # Elements from which its copy (the bandwidth probe) runs on every thread of the case;
    # None: its copy runs on one thread whatever the case allows.
    copy_threads_from: int | None = None


BACKENDS: dict[str, Entry] = {}


def register(
    name: str,
    import_path: str,
    requires=(),
    extra="",
    runs_on: Device = "cpu",
    modes=(),
    mingru=False,
    product_of=None,
    parity=True,
    variants=(),
    reverse_only=False,
    runs_file=False,
    copy_threads_from=None,
    **kwargs,
) -> None:
    if name in BACKENDS:
        raise ValueError(f"backend {name!r} is registered twice")
    BACKENDS[name] = Entry(
        import_path,
        tuple(requires),
        extra,
        kwargs,
        runs_on,
        tuple(modes),
        mingru,
        name if product_of is None else product_of,
        parity,
        tuple(variants),
        reverse_only,
        runs_file,
        copy_threads_from,
    )


_NUMPY = "backends.numpy_backend:NumpyBackend"
_TORCH = "backends.torch_backend:TorchBackend"
_KERAS = "backends.tf_backend:KerasBackend"
_TF = ("tensorflow", "keras")
_KERAS_VARIANTS = ("linear_before_reset",)  # GRU(reset_after=False)
# fmt: off
# One row a backend: a table reads better unformatted.
register("numpy", _NUMPY, modes=ALL, mingru=True, variants=VARIANTS, reverse_only=True)
register("cupy", _NUMPY, ["cupy"], "gpu", "gpu",
         ("forward", "gemm", "sequential", *PROBE_MODES, *PARALLEL_IN_TIME_MODES, *STREAM_MODES),
         mingru=True,
         parity=False, variants=VARIANTS, xp="cupy")
# ATen copies on every intra-op thread from its grain size (at::internal::GRAIN_SIZE) up;
# NumPy's copyto is single-threaded.
register("torch-cpu", _TORCH, ["torch"], "torch", modes=ALL, mingru=True, device="cpu",
         copy_threads_from=32768)
register("torch-cpu-onednn", _TORCH, ["torch"], "torch", modes=("gemm", "peak"), parity=False,
         device="cpu", gemm_library="onednn")
register("torch-cpu-compile", _TORCH, ["torch"], "torch", modes=("forward", *STREAM_MODES),
         mingru=True, product_of="torch-cpu", parity=False, device="cpu", compile_mode="default")
register("torch-cpu-script", "backends.torch_script:TorchScriptBackend", ["torch"],
         "torch", modes=("forward", *STREAM_MODES), product_of="torch-cpu", parity=False)
register("torch-cuda", _TORCH, ["torch"], "torch", "gpu", ALL, mingru=True, device="cuda")
register("torch-cuda-graphs", _TORCH, ["torch"], "torch", "gpu", ("forward",), mingru=True,
         product_of="torch-cuda", parity=False, device="cuda", compile_mode="reduce-overhead")
register("torch-cuda-tf32", _TORCH, ["torch"], "torch", "gpu", ("forward", "train", "gemm"),
         parity=False, device="cuda", tf32=True)
# tf-eager: a Python-driven loop, ~2 ms of dispatch a step: no product is its baseline
register("tf-eager", _KERAS, _TF, "tf", modes=("forward", "train", "sequential", *STREAM_MODES),
         mingru=True, product_of="", variants=_KERAS_VARIANTS, mode="eager")
register("tf-function", _KERAS, _TF, "tf",
         modes=("forward", "train", "gemm", "sequential", *STREAM_MODES), mingru=True,
         variants=_KERAS_VARIANTS, mode="function")
register("tf-xla", _KERAS, _TF, "tf", modes=("forward", "train", "sequential", *STREAM_MODES),
         mingru=True, product_of="tf-function", variants=_KERAS_VARIANTS, mode="xla")
# fmt: on
EXPORTERS = ("direct", "torchscript", "dynamo", "tf2onnx", "keras")
PROVIDERS = ("cpu", "cuda", "tensorrt")
# What each export path can write: the direct builder every variant of the ONNX operator, the
# others what the framework they export from computes.
EXPORTER_VARIANTS = {
    "direct": VARIANTS,
    "torchscript": (),
    "dynamo": (),
    "tf2onnx": _KERAS_VARIANTS,
    "keras": _KERAS_VARIANTS,
}
for _exporter in EXPORTERS:
    for _provider in PROVIDERS:
        register(
            f"ort-{_exporter}-{_provider}",
            "backends.ort_backend:OrtBackend",
            ["onnx", "onnxruntime"],
            "onnx",
            "cpu" if _provider == "cpu" else "gpu",
            # the direct builder also writes the one-step graph (backends/streaming/ort_step.py)
            ("forward", *STREAM_MODES) if _exporter == "direct" else ("forward",),
            parity=_exporter != "keras" and _provider != "tensorrt",
            variants=EXPORTER_VARIANTS[_exporter],
            exporter=_exporter,
            provider=_provider,
        )

# A user's model file, run by its own runtime (ONNX Runtime, Keras, torch): bench --model.
register(
    "model-file",
    "backends.model_file_backend:ModelFileBackend",
    modes=("forward",),
    product_of="",
    parity=False,
    variants=VARIANTS,
    runs_file=True,
)

DEFAULT_PARITY = tuple(name for name, entry in BACKENDS.items() if entry.parity)


def check_name(name: str) -> Entry:
    if name not in BACKENDS:
        raise UnknownBackend(f"unknown backend {name!r}: allowed {', '.join(BACKENDS)}")
    return BACKENDS[name]


def trainable() -> tuple[str, ...]:
    """Backends that run a training step (and so the training trajectories)."""
    return tuple(name for name, entry in BACKENDS.items() if "train" in entry.modes)


def timing_backends() -> tuple[str, ...]:
    return tuple(name for name, entry in BACKENDS.items() if entry.modes)


def modes_of(name: str, cell: str = "lstm") -> tuple[str, ...]:
    """The benchmark modes `name` offers for this cell (minGRU has its own set)."""
    entry = check_name(name)
    if cell == "mingru":
        return tuple(m for m in MINGRU_MODES if entry.mingru and m in entry.modes)
    return tuple(m for m in entry.modes if m != "sequential")


def copy_threads(name: str, elements: int, threads: int) -> int:
    """How many threads `name`'s copy of `elements` ran on in a case allowing `threads`; an
    unknown backend counts as one (what it moved is then read as one thread's bandwidth, the
    larger figure, so a bound drawn from it stays a bound)."""
    entry = BACKENDS.get(name)
    if entry is None or entry.copy_threads_from is None or elements < entry.copy_threads_from:
        return 1
    return threads


def product_baseline(name: str) -> str | None:
    """The backend whose matrix product of the same FLOPs is `name`'s baseline, if it has one."""
    entry = BACKENDS.get(name)
    if entry is None or not entry.product_of or "gemm" not in BACKENDS[entry.product_of].modes:
        return None
    return entry.product_of


def spec_reason(name: str, spec) -> str | None:
    """Why `name` cannot compute this model's cell variants (None: it can), known from its
    entry alone, without importing it."""
    entry = check_name(name)
    missing = [v for v in getattr(spec, "variants", ()) if v not in entry.variants]
    if not missing:
        return None
    can = "the canonical cell" + (f" and {', '.join(entry.variants)}" if entry.variants else "")
    return f"{name} cannot compute {spec.describe_variants(missing)}: it computes {can} only"


def unavailable_reason(name: str) -> str | None:
    """None when the backend can run here, else a one-line reason."""
    entry = check_name(name)
    for module in entry.requires:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'rnnbench[{entry.extra}]')"
    return get_backend(name).unavailable_reason()


def get_backend(name: str):
    """A new backend object. A missing optional package is NotSupported (a skip, with the
    install hint); any other import error is raised as it is: it is a bug, not a skip."""
    entry = check_name(name)
    module_name, class_name = entry.import_path.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        package = missing_package(exc, entry.requires)
        if package is None:
            raise
        raise NotSupported(
            f"{package} is not installed (pip install 'rnnbench[{entry.extra or 'all'}]')"
        ) from None
    backend = getattr(module, class_name)(**entry.kwargs)
    backend.name = name  # its name is its key here, never built from its arguments
    return backend


def reference():
    """The NumPy oracle module (forward, forward_with_tape, backward): what everything is
    compared with."""
    return importlib.import_module("backends.numpy_ref")


def mingru():
    """The minGRU reference (init_weights, forward_sequential, forward_parallel)."""
    return importlib.import_module("backends.mingru")


def exporter():
    """The ONNX export paths (export, EXPORTERS)."""
    return importlib.import_module("backends.onnx_export")


def parallel_in_time():
    """The parallel-in-time solver (solve_model, make_runner, model_lyapunov, model_gradients,
    sequential_reference)."""
    return importlib.import_module("backends.parallel_in_time")


def streaming():
    """The stateful step's helpers (streamed: T single steps as a whole sequence's outputs,
    zeros_state, check_streamable)."""
    return importlib.import_module("backends.streaming.base")
