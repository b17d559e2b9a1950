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
   LSTM (h then c). mx [threads, N] holds each thread's running max |nxt - cur|; NaN once any
   difference is NaN.

   The cells' equations and the order of the update are backends/cell_update.py's and
   newton.iterate's (b_0 = f_0: the first step is exact). Built without -ffast-math: NaN must
   stay NaN, and loading the library must not change the process's denormal mode. So the
   activations are written out for the compiler to vectorise inline (a call into a vector math
   library would spill every live vector register at each gate): in double, exp within ~1 ulp,
   sigmoid(a) = 1 / (1 + e^-a) and tanh(a) = 2 sigmoid(2a) - 1; in float, tanh as one rational
   function (within 2.3 ulp, measured over [-20, 20]) and sigmoid(a) = (1 + tanh(a/2)) / 2,
   11-17% faster an iteration than float's exp there (measured at H = 32, 64). */

/* A block is split over `threads` threads of the process's OpenMP pool (by runs of steps, rows
   or units: quasi_newton_cells.h): torch's own (the dynamic loader hands this library the
   libgomp.so.1 torch has loaded), whose workers are spinning, just done with the block's
   product, when the region starts. Without OpenMP the pragmas go and the calling thread takes
   the whole block. */
#ifdef _OPENMP
#include <omp.h>
#define PARALLEL(threads) _Pragma("omp parallel num_threads(threads) if (threads > 1)")
#define BARRIER _Pragma("omp barrier")
#define THREAD_NUM omp_get_thread_num()
#define THREAD_COUNT omp_get_num_threads()
#else
#define PARALLEL(threads)
#define BARRIER
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

/* tanh(x) for float as one rational function (Eigen's generic_fast_tanh_float: a degree-13 odd
   numerator over a degree-6 even denominator, on x clamped to +-7.9053, where tanh rounds to
   +-1): one division and 11 multiply-adds, where exp's range reduction, polynomial and scaling
   and then a division cost about half as much again. NaN stays NaN (the clamp's comparisons
   are false for it). */
static inline float tanh_rational_f32(float x) {
    const float c = 7.90531110763549805f;
    x = x < -c ? -c : (x > c ? c : x);
    float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * x;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return p / q;
}

/* e^x for x clamped to [-700, 700], so that 2^n stays normal; a sigmoid or tanh has saturated
   there. NaN stays NaN. */
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
#define RATIONAL_TANH 1
#include "quasi_newton_cells.h"
#undef REAL
#undef SUFFIX
#undef RATIONAL_TANH

#define REAL double
#define SUFFIX f64
#define RATIONAL_TANH 0
#include "quasi_newton_cells.h"
#undef RATIONAL_TANH
