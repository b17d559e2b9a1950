"""ONNX files: the audit of an export's form, and reading a user's file into the canonical model."""
