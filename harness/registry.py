"""The explicit list of backends: name -> "module:Class" + constructor arguments, imported lazily
so that a missing framework costs nothing until it is asked for."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from typing import Any


class UnknownBackend(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Entry:
    target: str  # "module:Class"
    requires: tuple[str, ...]  # import names that must be installed
    extra: str  # the pip extra that installs them
    kwargs: dict[str, Any]


BACKENDS: dict[str, Entry] = {}


def register(name: str, target: str, requires=(), extra="", **kwargs) -> None:
    if name in BACKENDS:
        raise ValueError(f"backend {name!r} is registered twice")
    BACKENDS[name] = Entry(target, tuple(requires), extra, kwargs)


register("numpy", "backends.numpy_backend:NumpyBackend")
register("torch-cpu", "backends.torch_backend:TorchBackend", ["torch"], "torch", device="cpu")
register("torch-cuda", "backends.torch_backend:TorchBackend", ["torch"], "torch", device="cuda")
register(
    "torch-cuda-tf32",
    "backends.torch_backend:TorchBackend",
    ["torch"],
    "torch",
    device="cuda",
    tf32=True,
)
for _mode in ("eager", "function", "xla"):
    register(
        f"tf-{_mode}", "backends.tf_backend:KerasBackend", ["tensorflow", "keras"], "tf", mode=_mode
    )


for _exporter in ("direct", "torchscript", "dynamo", "tf2onnx", "keras"):
    for _provider in ("cpu", "cuda", "tensorrt"):
        register(
            f"ort-{_exporter}-{_provider}",
            "backends.ort_backend:OrtBackend",
            ["onnx", "onnxruntime"],
            "onnx",
            exporter=_exporter,
            provider=_provider,
        )


def check_name(name: str) -> Entry:
    if name not in BACKENDS:
        raise UnknownBackend(f"unknown backend {name!r}: allowed {', '.join(BACKENDS)}")
    return BACKENDS[name]


def unavailable_reason(name: str) -> str | None:
    """None when the backend can run here, else a one-line reason."""
    entry = check_name(name)
    for module in entry.requires:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'rnnbench[{entry.extra}]')"
    return get_backend(name).unavailable_reason()


def get_backend(name: str):
    entry = check_name(name)
    module_name, class_name = entry.target.split(":")
    return getattr(importlib.import_module(module_name), class_name)(**entry.kwargs)


def parallel_in_time():
    """The parallel-in-time solver (solve_model, make_runner, model_lyapunov, model_gradients,
    sequential_reference, compare_with_sequential)."""
    return importlib.import_module("backends.parallel_time")


def reference():
    """The NumPy oracle module (forward, forward_with_tape, backward, onnx_op): what everything
    is compared with, imported only when asked for (the core imports no backend)."""
    return importlib.import_module("backends.numpy_ref")
