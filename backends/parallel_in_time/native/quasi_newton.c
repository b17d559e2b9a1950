/* One quasi-Newton (quasi-DEER) update of a recurrence's states, fused into one pass over time.
   The framework makes pre = S_prev R^T for a block of steps (from the current iterate, the
   block sized to stay in cache); then, in time order, each step's pre-activations (pre plus the
   input term xw), f, the diagonal Jacobian J, b = f - J s_prev and the new state
   s_t = J s_{t-1} + b. The scan is sequential: on a CPU core the odd-even scan's extra passes
   over memory cost more than its shorter dependency chain saves (each step's chain is one
   multiply-add per element), and at small H an iteration's cost is its passes over memory.

   Layout (row-major, as the Python side allocates): xw [T*B, G*H], pre the block's rows
   [(t1 - t0) * B, G*H] (gate blocks in the canonical order: LSTM i, o, f, c; GRU z, r, h), cur
   and nxt [T+1, B, N] whose row 0 is the given initial state (cur holds the current iterate,
   nxt receives the next), Rd [G, H] the diagonals of R's gate blocks, for the GRU Rbh [H] (the
   candidate's recurrent bias, which the reset gate scales with R_h s). N = H, or 2H for the
   LSTM (h then c). mx [N] holds the running max |nxt - cur|; NaN once any difference is NaN.

   The cells' equations and the order of the update are backends/parallel_in_time/jacobians.py's
   and newton.iterate's (b_0 = f_0: the first step is exact); tanh(a) = 2 sigmoid(2a) - 1. Built
   without -ffast-math: NaN must stay NaN, and loading the library must not change the process's
   denormal mode. So exp is written out, within ~1 ulp, for the compiler to vectorise inline (a
   call into a vector math library would spill every live vector register at each gate). */

/* The units of a block are split over `threads` threads of the process's OpenMP pool: torch's
   own (the dynamic loader hands this library the libgomp.so.1 torch has loaded), whose workers
   are spinning, just done with the block's product, when the region starts. Without OpenMP
   the pragma goes and the calling thread takes every unit. */
#ifdef _OPENMP
#include <omp.h>
#define PARALLEL(threads) _Pragma("omp parallel num_threads(threads) if (threads > 1)")
#define THREAD_NUM omp_get_thread_num()
#define THREAD_COUNT omp_get_num_threads()
#else
#define PARALLEL(threads)
#define THREAD_NUM 0
#define THREAD_COUNT 1
#endif

int openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* e^x for x clamped to [-80, 80] (float) or [-700, 700] (double), so that 2^n stays normal; a
   sigmoid or tanh has saturated there. NaN stays NaN. */
static inline float exp_f32(float x) {
    x = x < -80.0f ? -80.0f : (x > 80.0f ? 80.0f : x);
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    x = x - n * 0.693359375f + n * 2.12194440e-4f; /* Cephes' expf */
    float p = 1.9875691500e-4f;
    p = p * x + 1.3981999507e-3f;
    p = p * x + 8.3334519073e-3f;
    p = p * x + 4.1665795894e-2f;
    p = p * x + 1.6666665459e-1f;
    p = p * x + 5.0000001201e-1f;
    p = p * x * x + x + 1.0f;
    int bits = ((int)n + 127) << 23;
    float scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline double exp_f64(double x) {
    x = x < -700.0 ? -700.0 : (x > 700.0 ? 700.0 : x);
    double n = (x * 1.4426950408889634073599 + 6755399441055744.0) - 6755399441055744.0;
    x = x - n * 6.93145751953125e-1 - n * 1.42860682030941723212e-6; /* Cephes' exp */
    double xx = x * x;
    double px = x * ((1.26177193074810590878e-4 * xx + 3.02994407707441961300e-2) * xx
                     + 9.99999999999999999910e-1);
    double qx = ((3.00198505138664455042e-6 * xx + 2.52448340349684104192e-3) * xx
                 + 2.27265548208155028766e-1) * xx + 2.00000000000000000009e0;
    x = 1.0 + 2.0 * (px / (qx - px));
    long long bits = ((long long)n + 1023) << 52;
    double scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return x * scale;
}

#define REAL float
#define SUFFIX f32
#include "quasi_newton_cells.h"
#undef REAL
#undef SUFFIX

#define REAL double
#define SUFFIX f64
#include "quasi_newton_cells.h"
