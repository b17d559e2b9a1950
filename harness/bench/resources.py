"""Resources checked before they are used: a case whose arrays would not fit in the memory
available (RAM, or the GPU's for a GPU case) is refused before a worker allocates them, with
the estimate in the reason.

The estimate counts what the workload holds at once, in its dtype: the weights, the input and
output sequences, and per mode the activations a training step keeps for BPTT, the operands of
the equal-FLOP product, the dense Jacobians of Newton's method in time (3 arrays of
[T, B, N, N], float64) or the quasi-Newton's diagonal ones. Frameworks keep copies and
workspaces beside these: a case is refused only when the arrays alone, times SLACK, exceed
what is available."""

from __future__ import annotations

from harness.model.flops import GATES, ITEMSIZE, layer_inputs

SLACK = 2.0  # a framework's copies and workspaces beside the arrays counted


def estimate_bytes(case) -> tuple[int, str]:
    """(bytes, what they are) of the arrays `case` holds at once."""
    item = ITEMSIZE[case.dtype]
    if case.mode == "peak":
        return 3 * case.size**2 * item, f"3 matrices of {case.size}^2"
    if case.mode == "bandwidth":
        return 2 * case.size * item, f"2 arrays of {case.size}"
    T, B, H, D, G = case.steps, case.batch, case.hidden, case.directions, GATES[case.cell]
    inputs = layer_inputs(case.input_size, H, case.layers, D)
    weights = sum(D * G * H * (i + H + 2) for i in inputs) * item
    sequences = T * B * (case.input_size + D * H) * item
    parts = {"weights": weights, "sequences": sequences}
    if case.mode in ("forward", "sequential"):
        parts["gates"] = T * B * G * H * D * item  # the input projection of a layer
    elif case.mode == "train":
        parts["activations"] = case.layers * T * B * (G + 2) * H * D * item * 2
    elif case.mode == "gemm":
        parts["operands"] = sum(T * B * G * (i + H) + G * (i + H) * H for i in inputs) * D * item
    elif case.mode in ("newton", "quasi-newton"):
        N = H * (2 if case.cell == "lstm" else 1)
        per_step = N * N if case.mode == "newton" else N
        parts["jacobians"] = 3 * T * B * per_step * 8
    total = sum(parts.values())
    what = ", ".join(f"{k} {_gib(v)}" for k, v in parts.items())
    return total, what


def available_bytes(device: str) -> tuple[int | None, str]:
    """(bytes available, where that figure comes from); None when it cannot be told."""
    if device == "gpu":
        try:
            import torch

            if torch.cuda.is_available():
                free, _ = torch.cuda.mem_get_info()
                return int(free), "free GPU memory (torch.cuda.mem_get_info)"
        except Exception:  # no torch, no driver: the worker's own error will say
            return None, "unknown"
        return None, "unknown"
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available), "psutil's available memory"
    except ImportError:
        return None, "unknown"


def refusal(case) -> str | None:
    """Why `case` must not start (its arrays would not fit), or None."""
    need, what = estimate_bytes(case)
    have, source = available_bytes(case.device)
    if have is None or need * SLACK <= have:
        return None
    return (
        f"refused before allocating: needs ~{_gib(need)} ({what}), x{SLACK:g} for a "
        f"framework's copies, against {_gib(have)} available ({source})"
    )


def _gib(n: int) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"
