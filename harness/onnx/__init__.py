"""ONNX files: a user's file read into the canonical model (reader.py, with its embedding,
head and values), the graph indexed once (graph.py), every size it declares held to the memory
budget (sizes.py), one ONNX Runtime session builder (session.py), and the audit of an export's
form. May import harness/model and harness/files; nothing above."""
