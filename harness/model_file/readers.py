"""The backends that read a user's torch or Keras file, reached by name (importlib) as the
registry reaches the timing backends: harness/model_file never imports the registry, which names
the model-file backend that imports harness/model_file."""

from __future__ import annotations

import importlib
import types

from harness.model.errors import missing_package
from harness.model.protocol import NotSupported

MODEL_READERS = {
    "keras": ("backends.keras_file", ("tensorflow", "keras"), "tf"),
    "torch": ("backends.torch_file", ("torch",), "torch"),
}


def model_reader(kind: str) -> types.ModuleType:
    """The module that reads a user's `kind` model file (load(path[, spec]) -> (kind, spec,
    weights, runtime, notes)); NotSupported, with the install hint, when its framework is
    missing."""
    module_name, requires, extra = MODEL_READERS[kind]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        package = missing_package(exc, requires)
        if package is None:
            raise
        raise NotSupported(
            f"reading a {kind} model needs {package}, which is not installed "
            f"(pip install 'rnnbench[{extra}]')"
        ) from None
