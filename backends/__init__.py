"""Implementations of the canonical model: one module per framework (NumPy reference, torch,
Keras, ONNX export paths, ONNX Runtime) and the readers of a user's torch and Keras files. The
cell equations for NumPy, CuPy and torch arrays are written once, in cell_update.py: the
reference's loop, its BPTT and the parallel-in-time solver's steps and Jacobians call them. May
import harness/model, harness/files, harness/onnx and harness/model_file's front end and
runtime shape; nothing of harness/bench, harness/analysis or the CLI."""
