"""A user's model file timed as it is (`rnnbench bench --model`): the ONNX file in ONNX
Runtime, the Keras model under tf.function, the TorchScript module or ExportedProgram in torch,
each on the CPU with its library's pools fixed at the case's threads. Its outputs are compared
with the NumPy reference by harness/bench/workload.py before a single timing counts."""

from __future__ import annotations

from harness.model.protocol import BaseBackend, NotSupported


class ModelFileBackend(BaseBackend):
    name = "model-file"
    product_label = "none (the file runs as it is)"

    def __init__(self):
        self.threads = None

    def set_threads(self, n: int) -> dict:
        """ONNX Runtime's session gets n intra-op threads; torch's and TensorFlow's pools are
        fixed only when the file's runtime is theirs (opened later, in open)."""
        self.threads = n
        return {"onnxruntime": {"intra_op": n, "inter_op": 1}}

    def open(self, path: str):
        """(the ModelFile, its runtime), the runtime's pools set to this backend's threads."""
        from harness.model_file.model import open_model

        model = open_model(path)
        if model.runtime is None:
            raise NotSupported(f"{path} holds weights only: nothing runs it as it is")
        runtime = model.runtime
        if self.threads:
            runtime.set_threads(self.threads)
        return model, runtime
