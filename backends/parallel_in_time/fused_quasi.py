"""The quasi-Newton iteration with its elementwise work and its scan in one compiled pass per
iteration (native/quasi_newton.c), on the CPU, for NumPy arrays and torch CPU tensors.

Per iteration, block by block of steps: the framework's own product of the previous iterate
with R for the block's rows (torch.mm or numpy.matmul, into one block-sized buffer), then one
call of the cell's kernel, which reads each step's product and input term once, makes f, the
diagonal Jacobian, b and the new state in time order, and keeps the max-abs change. A block's
product is read back while it is still in cache (a quarter of the L2 a thread:
block_bytes_per_thread): at small H the kernel's cost is its traffic to memory, and the product
never goes there. The generic path (newton.iterate) makes ~30 passes over [T, B, N] arrays per
iteration and the fused torch path (torch_quasi.py) ~20 plus the odd-even scan's; at small H
those passes, not the product, set an iteration's cost.

Same method, stopping rule and results as newton.iterate with mode "diagonal"; tanh is taken as
2 sigmoid(2a) - 1 in double and as a rational function in float, so a float32 iterate differs
from the generic one in the last bits. On torch tensors the kernel splits each block over
torch's threads (torch.get_num_threads(), its own OpenMP pool: the workers that made the product
take the kernel's share, where a pool of the kernel's own would fight them for the cores): with
few rows a thread or short ones by runs of steps, each thread's run then fixed up from the true
state entering it, else by rows or units (native/quasi_newton_cells.h says when). On NumPy
arrays, where the BLAS runs on several threads, the kernel makes the product itself (R^T within
POOL_PRODUCT_BYTES) on a pool of its own threads (native/quasi_newton.c: OpenBLAS keeps threads
of its own, which spin ~0.1 s after each product and starve any other pool), as many as the
BLAS's, and so does the solve's input projection (input_projection); on one BLAS thread it runs
on the calling thread, making the product itself where R^T is small (ONE_THREAD_PRODUCT_BYTES).
"""

from __future__ import annotations

import functools
import math

from backends.parallel_in_time import jacobians
from backends.parallel_in_time.arrays import namespace
from backends.parallel_in_time.native.build import DTYPES, Kernels, load
from harness.machine.cpu_limits import caches
from harness.model.spec import Cell

__all__ = [
    "BLOCK_BYTES",
    "FusedQuasiNewton",
    "block_bytes_per_thread",
    "input_projection",
    "load",
    "step_blocks",
    "unavailable",
]

# a block's product rows, per thread: a quarter of the core's L2 (where sysfs does not say,
# BLOCK_BYTES), the rest for the block's other streams (input term, states, P). Measured on a
# 2-core Xeon (L2 2 MiB a core), an iteration / one product of equal FLOPs at T = 1024 and 4096:
# at 2 threads, 256 KiB -> 1 MiB a block took GRU and LSTM at H = 32 from 3.3-3.7x to 2.8-3.4x
# and at H = 256 from 1.5-1.7x to 1.3-1.6x (fewer blocks: each costs a product call, a parallel
# region and its barriers, ~7 us); 4 MiB blocks took the RNN at H = 32, B = 32 up to 5.5x (the
# block no longer fits with its other streams). At 1 thread 256 KiB -> 512 KiB changed H = 32
# by under 3% and H = 256 by 3-6% less.
BLOCK_BYTES = 256 << 10
# R^T up to which the kernel makes the product itself on NumPy arrays, measured on the 2-core
# Xeon against numpy.matmul's block products (an iteration / one product of equal FLOPs, the
# pools timed apart): at 2 threads 1.2-2.6x where the BLAS's product beside the one-thread kernel
# took 1.6-3.7x, at every H from 32 to 256 (R^T up to 1 MiB, the LSTM's at H = 256); at one
# thread 5-20% faster at H = 32 and R^T <= 16 KiB, within +-15% at H = 64 and up to 40% slower
# at H = 128 and 256
POOL_PRODUCT_BYTES = 1 << 20
ONE_THREAD_PRODUCT_BYTES = 32 << 10


@functools.cache
def block_bytes_per_thread() -> int:
    # an L2 shared by several logical CPUs (SMT) is shared by their threads
    l2 = [c["bytes"] // max(1, c["shared_by_cpus"]) for c in caches() if c["level"] == 2]
    return max(BLOCK_BYTES, l2[0] // 4) if l2 else BLOCK_BYTES


def unavailable(xw) -> str | None:
    """None when the fused kernel can run on xw's arrays here, else why not."""
    xp = namespace(xw)
    if xp.__name__ == "torch" and xw.device.type != "cpu":
        return f"the fused C kernel runs on the CPU; these tensors are on {xw.device}"
    if xp.__name__ not in ("numpy", "torch"):
        return f"the fused C kernel takes NumPy arrays or torch CPU tensors, not {xp.__name__}"
    if str(xw.dtype).removeprefix("torch.") not in DTYPES:
        return f"the fused C kernel takes {' or '.join(DTYPES)}, not {xw.dtype}"
    kernels = load()
    return kernels if isinstance(kernels, str) else None


def step_blocks(T: int, row_bytes: int, block_bytes: int = BLOCK_BYTES) -> list[tuple[int, int]]:
    """[t0, t1) blocks of the T steps whose product rows (row_bytes per step) fit block_bytes,
    one step at least, of nearly equal length."""
    per_block = max(1, block_bytes // max(1, row_bytes))
    count = math.ceil(T / per_block)
    edges = [T * k // count for k in range(count + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


class FusedQuasiNewton:
    """One recurrence's buffers, allocated once; `iteration()` does one update of the iterate
    (starting from s^(0) = 0) and returns the max-abs change (NaN if anything is not finite).
    xw [T, B, G*H] from input_projection, s0 [B, N]; call `unavailable(xw)` first."""

    def __init__(
        self,
        cell: Cell,
        xw,
        R,
        Rb,
        s0,
        block_bytes: int | None = None,
        own_product: bool | None = None,
    ):
        kernels = load()
        assert isinstance(kernels, Kernels), kernels
        xp = self.xp = namespace(xw)
        # the kernel reads every array in xw's dtype (the generic path promotes mixed dtypes)
        R, Rb = _cast(xp, R, xw.dtype), _cast(xp, Rb, xw.dtype)
        T, B, N = xw.shape[0], xw.shape[1], s0.shape[-1]
        H, GH = R.shape[1], R.shape[0]
        self.buffers = [_empty(xp, (T + 1, B, N), xw) for _ in range(2)]
        for states in self.buffers:
            states[0] = s0  # row 0: the given initial state, before step 0
        self.buffers[0][1:] = 0
        self.xw = _contiguous(xp, xw.reshape(T * B, GH))
        self.RT = R.T
        diagonals = [R[g * H : (g + 1) * H].diagonal() for g in range(GH // H)]
        self.Rd = _contiguous(xp, xp.stack(diagonals))
        # the GRU's candidate: the reset gate scales R_h s + Rb_h, so Rb_h is not in xw
        self.Rbh = _contiguous(xp, Rb[2 * H :]) if cell is Cell.GRU else None
        threads, own_product = _threads(xp, kernels, H, GH, xw.dtype.itemsize, own_product)
        self.own_product = own_product
        # NumPy's BLAS keeps threads of its own: the kernel's threads are then the library's pool
        pooled = xp.__name__ == "numpy" and threads > 1
        dtype = str(xw.dtype).removeprefix("torch.")
        self.kernel = kernels.function(cell.value, dtype, pooled)
        # the kernel makes the product itself from R^T [H, GH] (else the framework, block by block)
        self.RTc = _contiguous(xp, self.RT) if own_product else None
        if block_bytes is None:
            block_bytes = threads * block_bytes_per_thread()
        self.blocks = step_blocks(T, B * GH * xw.dtype.itemsize, block_bytes)
        longest = max(t1 - t0 for t0, t1 in self.blocks)
        self.pre = _empty(xp, (longest * B, GH), xw)
        self.mx = _empty(xp, (threads, N), xw)  # each thread's running max
        # over several threads the kernel may split a block's steps (quasi_newton_cells.h): each
        # run's running product of J (the block's rows) and the true state entering it
        by_time = threads > 1
        self.P = _empty(xp, (longest * B, N) if by_time else (1, N), xw)
        self.carry = _empty(xp, (threads, B, N) if by_time else (1, N), xw)
        inputs = [self.pre, self.xw, *([self.Rbh] if self.Rbh is not None else []), self.Rd]
        pointers = [_pointer(xp, array) for array in inputs]
        mx = (_pointer(xp, self.mx), _pointer(xp, self.P), _pointer(xp, self.carry))
        RT_pointer = _pointer(xp, self.RTc) if self.RTc is not None else None
        self.steps = []  # per parity: per block, (the product's operands, the kernel's arguments)
        for now, then in ((0, 1), (1, 0)):
            # the product reads the state before each step; for the LSTM h only (a strided view)
            previous = self.buffers[now][:-1].reshape(T * B, N)[:, :H]
            ends = (
                _pointer(xp, self.buffers[now]),
                _pointer(xp, self.buffers[then]),
                *mx,
                RT_pointer,
            )
            self.steps.append(
                [
                    (
                        previous[t0 * B : t1 * B],
                        self.pre[: (t1 - t0) * B],
                        (t0, t1, B, H, threads, *pointers, *ends),
                    )
                    for t0, t1 in self.blocks
                ]
            )
        self.parity = 0

    def iteration(self) -> float:
        change = math.nan
        product, RT = self.xp.mm if self.xp.__name__ == "torch" else self.xp.matmul, self.RT
        for previous, pre, arguments in self.steps[self.parity]:
            if not self.own_product:
                product(previous, RT, out=pre)
            change = self.kernel(*arguments)
        self.parity = 1 - self.parity
        return change if change - change == 0 else math.nan

    def states(self):
        """The current iterate, [T, B, N] (a view of the solver's buffer)."""
        return self.buffers[self.parity][1:]


def _threads(xp, kernels: Kernels, H, GH, itemsize, own_product):
    """(threads, own_product) for the kernel: torch's thread count with torch's product; on NumPy
    arrays the BLAS's thread count, the kernel making the product on its own pool where R^T
    fits own_product_bytes, else one thread beside the BLAS's product."""
    if xp.__name__ == "torch":
        return (xp.get_num_threads() if kernels.threaded else 1), bool(own_product)
    threads = blas_threads()
    if own_product is None:
        own_product = H * GH * itemsize <= own_product_bytes(threads)
    return (threads if own_product else 1), own_product


def own_product_bytes(threads: int) -> int:
    """The largest R^T (or W^T) whose product the kernel makes itself on NumPy arrays."""
    return POOL_PRODUCT_BYTES if threads > 1 else ONE_THREAD_PRODUCT_BYTES


def input_projection(cell: Cell, x, W, Wb, Rb):
    """jacobians.input_projection; on NumPy arrays where the BLAS runs on several threads and
    W^T fits own_product_bytes, made on the kernel's pool: a BLAS product just before the
    iteration leaves the BLAS's threads spinning ~0.1 s beside the pool's."""
    xp = namespace(x)
    threads = blas_threads() if xp.__name__ == "numpy" else 1
    dtype = str(x.dtype)
    if (
        threads < 2
        or dtype not in DTYPES
        or any(str(a.dtype) != dtype for a in (W, Wb, Rb))
        or x.ndim != 3
        or W.shape != (W.shape[0], x.shape[-1])  # else the generic one's error
        or Wb.shape != (W.shape[0],)
        or Rb.shape != (W.shape[0],)
        or W.size * x.dtype.itemsize > own_product_bytes(threads)
        or isinstance(kernels := load(), str)
    ):
        return jacobians.input_projection(cell, x, W, Wb, Rb)
    T, B, I = x.shape
    GH = W.shape[0]
    X = xp.ascontiguousarray(x).reshape(T * B, I)
    WT = xp.ascontiguousarray(W.T)
    bias = xp.ascontiguousarray(jacobians.projection_bias(cell, Wb, Rb), dtype=dtype)
    out = xp.empty((T, B, GH), dtype)
    project = getattr(kernels.library, f"project_{DTYPES[dtype]}")
    project(T * B, I, GH, threads, *(a.ctypes.data for a in (X, WT, bias, out)))
    return out


def blas_threads() -> int:
    """The threads NumPy's BLAS runs a product on (threadpoolctl's count, read from the library
    each call: a limit set since counts; 1 where it cannot say)."""
    counts = [library.num_threads for library in _blas_libraries()]
    return max(1, min(counts)) if counts else 1


@functools.cache
def _blas_libraries() -> list:
    """The BLAS libraries loaded (NumPy's is, with NumPy), found once: looking them up takes
    0.15-1.2 ms, and a solve asks twice a layer and direction."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return []
    return [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]


def _cast(xp, array, dtype):
    return array.to(dtype) if xp.__name__ == "torch" else array.astype(dtype, copy=False)


def _contiguous(xp, array):
    return array.contiguous() if xp.__name__ == "torch" else xp.ascontiguousarray(array)


def _empty(xp, shape, like):
    if xp.__name__ == "torch":
        return xp.empty(shape, dtype=like.dtype, device=like.device)
    return xp.empty(shape, dtype=like.dtype)


def _pointer(xp, array) -> int:
    return array.data_ptr() if xp.__name__ == "torch" else array.ctypes.data
