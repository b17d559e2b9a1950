"""A user's model file (--model): told apart by content and read into a spec and canonical
weights (model.py), run as it is by its own runtime (runtime.py), checked against the NumPy
reference of its weights and against its export (check.py, reference.py, inputs.py), and a
reverse-only ONNX layer made forward (reverse.py)."""
