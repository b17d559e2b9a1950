"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"), the parallel-in-time contrast model.

Its gates read x_t only, never h_{t-1}:
    z_t = sigmoid(Wz x_t + bz)      h~_t = g(Wh x_t + bh)      h_t = (1 - z_t) h_{t-1} + z_t h~_t
with g(v) = v + 1/2 for v >= 0 and sigmoid(v) below (positive). The recurrence is linear in h,
h_t = a_t h_{t-1} + b_t with a_t = 1 - z_t and b_t = z_t h~_t, so it is a scan over the operator
(a1, b1) then (a2, b2) = (a2 a1, a2 b1 + b2), which is associative: log2(T) rounds of elementwise
work replace T dependent steps (Hillis-Steele). All terms are positive, so nothing cancels.

The paper computes the scan in log space instead: log h_t = log A_t + logcumsumexp(log b - log A)
with A_t = a_1 ... a_t. log A_t falls by about 0.7 per step, so both terms grow like T and
their sum cancels: in float32 the relative error reaches 1.3e-4 at T = 1024 (measured here,
against 4e-7 for the step loop), outside float32 parity. It is kept as method="log" for that
finding; method="scan" is the default. Both start from one input projection [T*B, I] @ [I, 2H],
the only matrix product.

Weights per layer l: "l{l}.W" [2H, I_l] (rows z then h) and "l{l}.b" [2H]. States are h >= 0;
h0 defaults to zeros. Arrays are [T, B, H] time-major; NumPy or CuPy (same code), or torch.
"""

from __future__ import annotations

import numpy as np

from backends.array_namespace import namespace


def init_weights(input_size: int, hidden: int, layers: int = 1, seed: int = 0, dtype="float32"):
    rng = np.random.Generator(np.random.PCG64(seed))
    bound, weights = 1.0 / np.sqrt(hidden), {}
    for layer in range(layers):
        fan_in = input_size if layer == 0 else hidden
        weights[f"l{layer}.W"] = rng.uniform(-bound, bound, (2 * hidden, fan_in)).astype(dtype)
        weights[f"l{layer}.b"] = rng.uniform(-bound, bound, 2 * hidden).astype(dtype)
    return weights


def _layers(weights) -> int:
    return sum(1 for k in weights if k.endswith(".W"))


# ---- NumPy / CuPy --------------------------------------------------------------------------


def _softplus(v, xp):
    return xp.logaddexp(0, v)


def _projection(x, W, b, xp):
    T, B, _ = x.shape
    k = (x.reshape(T * B, -1) @ W.T + b).reshape(T, B, -1)
    H = W.shape[0] // 2
    return k[..., :H], k[..., H:]


def forward_sequential(weights, x, h0=None):
    """y [T, B, H] and h_n [layers, B, H], one step at a time."""
    xp = namespace(x)
    finals = []
    for layer in range(_layers(weights)):
        kz, kh = _projection(x, weights[f"l{layer}.W"], weights[f"l{layer}.b"], xp)
        a, b = _gates(kz, kh, xp)
        h = xp.zeros_like(kz[0]) if h0 is None else h0[layer]
        y = xp.empty_like(kz)
        for t in range(x.shape[0]):
            h = a[t] * h + b[t]
            y[t] = h
        finals.append(h)
        x = y
    return x, xp.stack(finals)


def _gates(kz, kh, xp):
    """a = 1 - z and b = z * g(kh)."""
    z = 1 / (1 + xp.exp(-kz))
    return 1 - z, z * xp.where(kh >= 0, kh + 0.5, 1 / (1 + xp.exp(-kh)))


def scan(a, b, h0=None):
    """h_t = a_t h_{t-1} + b_t for all t, by log2(T) rounds of elementwise products."""
    a, b = a.copy(), b.copy()
    if h0 is not None:
        b[0] += a[0] * h0
    d = 1
    while d < a.shape[0]:
        b[d:] += a[d:] * b[:-d]  # b first: it needs the a of the previous round
        a[d:] *= a[:-d].copy()
        d *= 2
    return b


def log_scan(kz, kh, h0, xp):
    """The paper's log-space form (see the module docstring for its float32 error)."""
    log_a = -_softplus(kz, xp)  # log(1 - z)
    log_b = -_softplus(-kz, xp) + xp.where(
        kh >= 0, xp.log(xp.maximum(kh, 0) + 0.5), -_softplus(-kh, xp)
    )
    log_A = xp.cumsum(log_a, axis=0)
    log_sum = xp.logaddexp.accumulate(log_b - log_A, axis=0)
    if h0 is not None:
        with np.errstate(divide="ignore"):  # log(0) = -inf is exact: that h0 adds nothing
            log_sum = xp.logaddexp(xp.log(h0)[None], log_sum)
    return xp.exp(log_A + log_sum)


def forward_parallel(weights, x, h0=None, method="scan"):
    """The same numbers with no step waiting on the previous one: method "scan" or "log"."""
    xp = namespace(x)
    finals = []
    for layer in range(_layers(weights)):
        kz, kh = _projection(x, weights[f"l{layer}.W"], weights[f"l{layer}.b"], xp)
        start = None if h0 is None else h0[layer]
        if method == "log":
            y = log_scan(kz, kh, start, xp)
        else:
            a, b = _gates(kz, kh, xp)
            y = scan(a, b, start)
        finals.append(y[-1])
        x = y
    return x, xp.stack(finals)


# ---- torch ---------------------------------------------------------------------------------


def torch_module(weights, device="cpu", dtype=None):
    """nn.Module(x, sequential=False) -> (y, h_n), with the given weights."""
    import torch
    from torch import nn

    class MinGRU(nn.Module):
        def __init__(self):
            super().__init__()
            self.projections = nn.ModuleList()
            for layer in range(_layers(weights)):
                W = torch.as_tensor(np.asarray(weights[f"l{layer}.W"]))
                linear = nn.Linear(W.shape[1], W.shape[0], dtype=W.dtype)
                with torch.no_grad():
                    linear.weight.copy_(W)
                    linear.bias.copy_(torch.as_tensor(np.asarray(weights[f"l{layer}.b"])))
                self.projections.append(linear)

        def forward(self, x, sequential: bool = False):
            finals = []
            for linear in self.projections:
                kz, kh = linear(x).chunk(2, dim=-1)
                z = torch.sigmoid(kz)
                a, b = 1 - z, z * torch.where(kh >= 0, kh + 0.5, torch.sigmoid(kh))
                if sequential:
                    h, steps = torch.zeros_like(a[0]), []
                    for t in range(x.shape[0]):
                        h = a[t] * h + b[t]
                        steps.append(h)
                    y = torch.stack(steps)
                else:
                    y = _torch_scan(a, b)
                finals.append(y[-1])
                x = y
            return x, torch.stack(finals)

    module = MinGRU()
    return module.to(device=device, dtype=dtype or getattr(torch, str(weights["l0.W"].dtype)))


def _torch_scan(a, b):
    """scan() in torch, out of place (autograd- and compile-friendly)."""
    import torch

    d = 1
    while d < a.shape[0]:
        b = torch.cat([b[:d], b[d:] + a[d:] * b[:-d]])
        a = torch.cat([a[:d], a[d:] * a[:-d]])
        d *= 2
    return b


# ---- TensorFlow ----------------------------------------------------------------------------


def tf_forward(weights, mode: str = "function"):
    """forward(x, sequential) -> (y, h_n) as TensorFlow ops: eager, tf.function or XLA. The
    step loop is tf.scan (a while loop); the parallel form the same Hillis-Steele rounds."""
    from backends.tf_model import tf

    layers = [
        (tf.constant(np.asarray(weights[f"l{n}.W"])), tf.constant(np.asarray(weights[f"l{n}.b"])))
        for n in range(_layers(weights))
    ]

    def forward(x, sequential: bool):
        finals = []
        for W, b in layers:
            kz, kh = tf.split(tf.tensordot(x, W, axes=[[2], [1]]) + b, 2, axis=-1)
            z = tf.sigmoid(kz)
            a, g = 1 - z, z * tf.where(kh >= 0, kh + 0.5, tf.sigmoid(kh))
            if sequential:
                y = tf.scan(
                    lambda h, ab: ab[0] * h + ab[1], (a, g), initializer=tf.zeros_like(a[0])
                )
            else:
                d, steps = 1, x.shape[0]  # static T: the rounds unroll at trace time
                while d < steps:
                    g = tf.concat([g[:d], g[d:] + a[d:] * g[:-d]], axis=0)
                    a = tf.concat([a[:d], a[d:] * a[:-d]], axis=0)
                    d *= 2
                y = g
            finals.append(y[-1])
            x = y
        return x, tf.stack(finals)

    if mode == "eager":
        return forward
    return tf.function(forward, jit_compile=mode == "xla", reduce_retracing=True)
