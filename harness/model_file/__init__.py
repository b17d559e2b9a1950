"""A user's model file (--model): told apart by content and read into a spec, canonical weights
and a front end (model.py, front.py), run as it is by its own runtime (runtime.py), checked
against the NumPy reference and against its export (verify.py orchestrates: check.py,
data_check.py, weight_match.py, sizes.py, explain.py, reference.py), as a Python call (api.py).
May import harness/model, harness/files, harness/onnx and harness/parity; the backends that
read a file by name (readers.py), the others through harness/registry.py from every module but
model.py (the model-file backend imports it, and the registry names that backend)."""
