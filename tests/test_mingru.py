"""minGRU: the parallel scan and the step loop are the same model, in NumPy and in torch."""

from __future__ import annotations

import numpy as np
import pytest

from backends import mingru


def _data(T, dtype="float64", layers=2, B=3, I=5, H=8):  # noqa: N803
    weights = mingru.init_weights(I, H, layers, seed=1, dtype=dtype)
    x = np.random.default_rng(2).standard_normal((T, B, I)).astype(dtype)
    return weights, x


@pytest.mark.parametrize("T", [1, 2, 3, 7, 64, 1000])
def test_parallel_scan_equals_step_loop_float64(T):
    weights, x = _data(T)
    y_seq, h_seq = mingru.forward_sequential(weights, x)
    y_par, h_par = mingru.forward_parallel(weights, x)
    np.testing.assert_allclose(y_par, y_seq, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_par, h_seq, rtol=1e-12, atol=1e-14)
    assert y_seq.shape == (T, 3, 8) and h_seq.shape == (2, 3, 8)


def test_initial_state_and_the_log_form():
    weights, x = _data(50)
    h0 = np.abs(np.random.default_rng(3).standard_normal((2, 3, 8)))
    y_seq, _ = mingru.forward_sequential(weights, x, h0)
    for method in ("scan", "log"):
        y_par, _ = mingru.forward_parallel(weights, x, h0, method=method)
        np.testing.assert_allclose(y_par, y_seq, rtol=1e-11)


def test_step_loop_is_the_paper_recurrence():
    """One step by hand: h1 = (1 - z) h0 + z g(k_h), z = sigmoid(k_z)."""
    weights, x = _data(1, layers=1)
    k = x[0] @ weights["l0.W"].T + weights["l0.b"]
    z = 1 / (1 + np.exp(-k[:, :8]))
    g = np.where(k[:, 8:] >= 0, k[:, 8:] + 0.5, 1 / (1 + np.exp(-k[:, 8:])))
    y, _ = mingru.forward_sequential(weights, x)
    np.testing.assert_allclose(y[0], z * g, rtol=1e-14)


def test_float32_log_space_loses_accuracy_with_T_and_the_scan_does_not():
    """The finding behind method="scan": at T = 1024 the paper's log-space form drifts past
    float32 parity (relative error ~1e-4) while the linear scan stays near float32 epsilon."""
    weights64, x64 = _data(1024, layers=1, B=4, I=32, H=64)
    ref, _ = mingru.forward_sequential(weights64, x64)
    w32 = {k: v.astype(np.float32) for k, v in weights64.items()}
    x32 = x64.astype(np.float32)

    def err(y):
        return np.max(np.abs(y - ref) / np.abs(ref))

    scan_err = err(mingru.forward_parallel(w32, x32)[0])
    log_err = err(mingru.forward_parallel(w32, x32, method="log")[0])
    assert scan_err < 2e-6
    assert log_err > 20 * scan_err


@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize("T", [1, 5, 300])
def test_torch_module_matches_numpy(T, sequential):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    weights, x = _data(T)
    y_ref, h_ref = mingru.forward_sequential(weights, x)
    module = mingru.torch_module(weights)
    with torch.no_grad():
        y, h = module(torch.from_numpy(x), sequential)
    assert y.dtype == torch.float64
    np.testing.assert_allclose(y.numpy(), y_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h.numpy(), h_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_tensorflow_matches_numpy(mode, sequential):
    pytest.importorskip("tensorflow", reason="tensorflow is not installed")
    from backends.tf_backend import tf

    weights, x = _data(37)
    y_ref, h_ref = mingru.forward_sequential(weights, x)
    y, h = mingru.tf_forward(weights, mode)(tf.constant(x), sequential)
    np.testing.assert_allclose(y.numpy(), y_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h.numpy(), h_ref, rtol=1e-12, atol=1e-14)
