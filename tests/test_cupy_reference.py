"""The NumPy reference written against an array namespace runs unchanged on CuPy (GPU):
forward and BPTT must match the NumPy run. Skipped where CuPy or a GPU is absent."""

from __future__ import annotations

import numpy as np
import pytest

from backends import numpy_ref
from harness.model.spec import Head, ModelSpec
from harness.parity.cases import ParityCase, case_data, cotangents_for

cupy = pytest.importorskip("cupy", reason="CuPy is not installed (GPU machines only)")
try:
    GPUS = cupy.cuda.runtime.getDeviceCount()
except Exception as exc:  # no driver
    pytest.skip(f"CuPy finds no CUDA device: {exc}", allow_module_level=True)
if GPUS == 0:
    pytest.skip("CuPy finds no CUDA device", allow_module_level=True)

TOL = {"float64": (1e-11, 1e-12), "float32": (1e-4, 2e-5)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_cupy_forward_and_bptt_match_numpy(cell, dtype):
    spec = ModelSpec(
        cell, 5, 16, num_layers=2, bidirectional=True, head=Head(3, "softmax"), dtype=dtype
    )
    weights64, inputs = case_data(ParityCase(spec, with_lens=True))
    params = dict(weights64.astype(dtype))
    host = {k: v if v is None or k == "seq_lens" else v.astype(dtype) for k, v in inputs.items()}
    device = {k: v if v is None or k == "seq_lens" else cupy.asarray(v) for k, v in host.items()}
    gpu_params = {k: cupy.asarray(v) for k, v in params.items()}
    rest = ("seq_lens", "h0", "c0")
    out_cpu, tape_cpu = numpy_ref.forward_with_tape(
        spec, params, host["x"], *(host[k] for k in rest)
    )
    out_gpu, tape_gpu = numpy_ref.forward_with_tape(
        spec, gpu_params, device["x"], *(device[k] for k in rest)
    )
    assert isinstance(out_gpu.y, cupy.ndarray)
    rtol, atol = TOL[dtype]
    for name, value in out_cpu.as_dict().items():
        np.testing.assert_allclose(
            cupy.asnumpy(out_gpu.as_dict()[name]), value, rtol, atol, err_msg=name
        )
    cot = {k: v.astype(dtype) for k, v in cotangents_for(out_cpu, 0).items()}
    grads_cpu = numpy_ref.backward(params, tape_cpu, **{f"d{k}": v for k, v in cot.items()})
    gpu_cot = {f"d{k}": cupy.asarray(v) for k, v in cot.items()}
    grads_gpu = numpy_ref.backward(gpu_params, tape_gpu, **gpu_cot)
    assert set(grads_cpu) == set(grads_gpu)
    for name, value in grads_cpu.items():
        scale = max(1.0, float(np.abs(value).max()))
        np.testing.assert_allclose(
            cupy.asnumpy(grads_gpu[name]), value, rtol, atol * scale, err_msg=name
        )
