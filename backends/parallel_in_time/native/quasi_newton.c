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
   activations are written out on vectors, inline (a call into a vector math library would spill
   every live vector register at each gate): in double, exp within ~1 ulp, sigmoid(a) =
   1 / (1 + e^-a) and tanh(a) = 2 sigmoid(2a) - 1; in float, tanh as one rational function
   (within 5.6 ulp of tanh in double, measured at every 7th float of [-20, 20] from 1e-30 in
   size, where x p(x^2) goes subnormal; 4.6 ulp with Horner's rule) and sigmoid(a) =
   (1 + tanh(a/2)) / 2, 11-17% faster an iteration than float's exp there (measured at H = 32,
   64). */

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

/* The kernels work on tiles of LANES units held in vector registers (GCC's vector extension:
   one register of the target's widest: AVX-512's, AVX's, else SSE's). A comparison of two
   vectors gives a vector of integers of the same width, all bits set where it holds: SELECT
   takes a where it does, b where not. */
#if defined(__AVX512F__)
#define VECTOR_BYTES 64
#elif defined(__AVX__)
#define VECTOR_BYTES 32
#else
#define VECTOR_BYTES 16
#endif
typedef float vec_f32 __attribute__((vector_size(VECTOR_BYTES)));
typedef int mask_f32 __attribute__((vector_size(VECTOR_BYTES)));
typedef double vec_f64 __attribute__((vector_size(VECTOR_BYTES)));
typedef long long mask_f64 __attribute__((vector_size(VECTOR_BYTES)));

static inline vec_f32 select_f32(mask_f32 m, vec_f32 a, vec_f32 b) {
    return (vec_f32)((m & (mask_f32)a) | (~m & (mask_f32)b));
}

static inline vec_f64 select_f64(mask_f64 m, vec_f64 a, vec_f64 b) {
    return (vec_f64)((m & (mask_f64)a) | (~m & (mask_f64)b));
}

/* x clamped to [-c, c], NaN kept: x86's max and min return their second operand where either is
   NaN (one instruction each, where a SELECT costs a comparison and two logical operations) */
#if defined(__SSE2__)
#include <immintrin.h>
#if VECTOR_BYTES == 64
#define MIN_MAX(c, x, ps) (_mm512_min_##ps(c, _mm512_max_##ps(-(c), x)))
#elif VECTOR_BYTES == 32
#define MIN_MAX(c, x, ps) (_mm256_min_##ps(c, _mm256_max_##ps(-(c), x)))
#else
#define MIN_MAX(c, x, ps) (_mm_min_##ps(c, _mm_max_##ps(-(c), x)))
#endif
static inline vec_f32 clamp_f32(vec_f32 x, vec_f32 c) { return (vec_f32)MIN_MAX(c, x, ps); }
static inline vec_f64 clamp_f64(vec_f64 x, vec_f64 c) { return (vec_f64)MIN_MAX(c, x, pd); }
#else
static inline vec_f32 clamp_f32(vec_f32 x, vec_f32 c) {
    return select_f32(x < -c, -c, select_f32(x > c, c, x));
}
static inline vec_f64 clamp_f64(vec_f64 x, vec_f64 c) {
    return select_f64(x < -c, -c, select_f64(x > c, c, x));
}
#endif

/* tanh(x) for float as one rational function (Eigen's generic_fast_tanh_float: a degree-13 odd
   numerator over a degree-6 even denominator, on x clamped to +-7.9053, where tanh rounds to
   +-1): one division and 11 multiply-adds, where exp's range reduction, polynomial and scaling
   and then a division cost about half as much again. NaN stays NaN (the clamp's comparisons
   are false for it). */
static inline vec_f32 tanh_rational_f32(vec_f32 x) {
    const vec_f32 c = (vec_f32){} + 7.90531110763549805f;
    x = clamp_f32(x, c);
    /* p(y) and q(y), y = x^2, by Estrin's scheme: each iteration runs these gate after gate,
       end to end, and Horner's rule makes a chain of 7 dependent multiply-adds where this makes
       4 (y, y^2 and the pairs of coefficients in parallel) */
    vec_f32 y = x * x, y2 = y * y, xy2 = x * y2;
    vec_f32 p45 = y * 2.00018790482477e-13f + -8.60467152213735e-11f;
    vec_f32 p23 = y * 5.12229709037114e-08f + 1.48572235717979e-05f;
    vec_f32 p01 = y * 6.37261928875436e-04f + 4.89352455891786e-03f;
    vec_f32 p26 = y2 * (y2 * -2.76076847742355e-16f + p45) + p23;
    vec_f32 p = xy2 * p26 + x * p01;
    vec_f32 q23 = y * 1.19825839466702e-06f + 1.18534705686654e-04f;
    vec_f32 q01 = y * 2.26843463243900e-03f + 4.89352518554385e-03f;
    vec_f32 q = y2 * q23 + q01;
    return p / q;
}

/* e^x for x clamped to [-700, 700], so that 2^n stays normal; a sigmoid or tanh has saturated
   there. NaN stays NaN. */
static inline vec_f64 exp_f64(vec_f64 x) {
    const vec_f64 c = (vec_f64){} + 700.0;
    x = clamp_f64(x, c);
    /* n = round(x log2 e) by the 1.5 * 2^52 shift: the shifted sum's low bits hold n, so
       2^n is made from its bits without a float-to-integer conversion (undefined for NaN) */
    const vec_f64 shift = (vec_f64){} + 6755399441055744.0;
    vec_f64 shifted = x * 1.4426950408889634073599 + shift;
    vec_f64 n = shifted - shift;
    x = x - n * 6.93145751953125e-1 - n * 1.42860682030941723212e-6; /* Cephes' exp */
    vec_f64 xx = x * x;
    vec_f64 px = x * ((xx * 1.26177193074810590878e-4 + 3.02994407707441961300e-2) * xx
                      + 9.99999999999999999910e-1);
    vec_f64 qx = ((xx * 3.00198505138664455042e-6 + 2.52448340349684104192e-3) * xx
                  + 2.27265548208155028766e-1) * xx + 2.00000000000000000009e0;
    x = 1.0 + 2.0 * (px / (qx - px));
    typedef unsigned long long bits_f64 __attribute__((vector_size(VECTOR_BYTES)));
    bits_f64 bits = ((bits_f64)shifted - (bits_f64)shift + 1023) << 52;
    return x * (vec_f64)bits;
}

/* A block's work for NumPy arrays, on a pool of this library's own (POOL): NumPy's BLAS keeps
   threads of its own, which spin for ~0.1 s after each of its products (measured: an OpenMP
   region started in that time waited a scheduler tick, 7-15 ms, at each barrier for its worker),
   and a worker woken from sleep on this VM now and then took ~10 ms to run. So the caller never
   waits for a worker that has not started: the block is cut into `runs` parts that the threads
   claim in order (a counter tagged with the job's number, so that a worker that wakes late
   claims nothing of a later job), the caller claiming too, and it waits only for the parts a
   worker did claim. Where no worker comes, the caller does every part, each the same way (a
   part's way is fixed by its index, not by who runs it: results do not depend on timing). The
   workers spin ~SPIN_NS between jobs (one iteration's blocks follow each other within
   microseconds), then sleep on a futex. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define MAX_RUNS 64
#define SPIN_NS 100000

struct job {
    void (*run)(const struct job *, long long k); /* the cell's part k */
    long long t0, t1, B, H, runs, by_time;
    long long K, GH; /* the input projection's (project_SUFFIX): rows are t1 */
    void *pre, *nxt, *mx, *P, *carry;
    const void *xw, *Rbh, *Rd, *cur, *RT;
    /* by time: the true state entering part k once known (part k - 1 publishes it) */
    const void *_Atomic entry[MAX_RUNS];
    unsigned csr; /* the caller's floating-point control (flush-to-zero, rounding), x86 */
};

static struct {
    pthread_mutex_t lock; /* one job at a time */
    struct job job;
    _Atomic unsigned generation; /* the job's number, and the sleeping workers' futex */
    /* generation << 32 | parts << 16 | the next unclaimed part: one word, so that a claim reads
       the job's number and size together (a job's other fields are read only after a claim
       succeeds: the job is then not finished, and its fields hold) */
    _Atomic unsigned long long claim;
    _Atomic long long done;           /* parts finished in this job */
    _Atomic int wanted; /* the workers a job may use (its parts less the caller's) */
    /* worker i sleeps on wake[i] (the job's number, stored where a job wants it) while asleep[i]:
       a job wakes only the workers it wants */
    _Atomic unsigned wake[MAX_RUNS];
    _Atomic int asleep[MAX_RUNS];
    int workers;
} POOL = {.lock = PTHREAD_MUTEX_INITIALIZER};

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void relax(void) {
#if defined(__SSE2__)
    _mm_pause();
#endif
}

/* one turn of a wait on another thread of the job: a pause, and past ~YIELD_AFTER of them the
   core (a worker just woken may share the waiter's core until the scheduler moves it: a waiter
   that only spins then holds it off for a whole time slice, measured as rounds of iterations at
   2x their time) */
#define YIELD_AFTER 2048
static inline void wait_turn(long long *turns) {
    if (++*turns < YIELD_AFTER)
        relax();
    else
        sched_yield();
}

/* claim and run parts of job `generation` until none is left */
static void take_parts(unsigned generation) {
    for (;;) {
        unsigned long long c = atomic_load(&POOL.claim);
        long long k = (long long)(c & 0xffff), parts = (long long)((c >> 16) & 0xffff);
        if ((unsigned)(c >> 32) != generation || k >= parts) return;
        if (!atomic_compare_exchange_weak(&POOL.claim, &c, c + 1)) continue;
#if defined(__SSE2__)
        /* a worker runs a part as the caller would: its control word is its creator's */
        if (_mm_getcsr() != POOL.job.csr) _mm_setcsr(POOL.job.csr);
#endif
        POOL.job.run(&POOL.job, k);
        atomic_fetch_add(&POOL.done, 1);
    }
}

/* worker `index` (0, 1, ...): it takes parts of the jobs that want it, spinning SPIN_NS after
   each; a job that wants fewer workers than the pool has (the pool grows to the largest thread
   count asked for, and never shrinks) sends the rest straight back to sleep */
static void *worker_main(void *argument) {
    int index = (int)(intptr_t)argument, idle = 0;
    unsigned seen = atomic_load(&POOL.generation);
    for (;;) {
        long long since = idle ? 0 : now_ns();
        unsigned g;
        for (long long spins = 0; (g = atomic_load(&POOL.generation)) == seen; spins++) {
            relax();
            if (!idle && ((spins & 63) || now_ns() - since < SPIN_NS)) continue;
            /* asleep, then the job's number checked again: a job stored after that check
               changes wake[index] before it reads asleep, so the futex returns or is woken */
            unsigned word = atomic_load(&POOL.wake[index]);
            atomic_store(&POOL.asleep[index], 1);
            if (atomic_load(&POOL.generation) == seen) {
#ifdef __linux__
                syscall(SYS_futex, &POOL.wake[index], FUTEX_WAIT_PRIVATE, word, NULL, NULL, 0);
#else
                nanosleep(&(struct timespec){0, 50000}, NULL);
#endif
            }
            atomic_store(&POOL.asleep[index], 0);
            since = now_ns();
        }
        seen = g;
        idle = index >= atomic_load(&POOL.wanted);
        if (!idle) take_parts(g);
    }
    return NULL;
}

/* after fork() the child has none of the parent's workers */
static void forget_workers(void) {
    POOL.workers = 0;
    for (int i = 0; i < MAX_RUNS; i++) atomic_store(&POOL.asleep[i], 0);
    pthread_mutex_init(&POOL.lock, NULL);
}

/* job must be filled (POOL.job) under POOL.lock; runs it with up to threads - 1 workers */
static void run_job(int threads) {
    static int registered;
    if (!registered) registered = !pthread_atfork(NULL, NULL, forget_workers);
    for (; POOL.workers < threads - 1 && POOL.workers < MAX_RUNS - 1; POOL.workers++) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&thread, &attr, worker_main, (void *)(intptr_t)POOL.workers);
        pthread_attr_destroy(&attr);
        if (failed) break; /* fewer workers: the caller does their parts */
    }
    for (long long k = 0; k < POOL.job.runs; k++) POOL.job.entry[k] = NULL;
#if defined(__SSE2__)
    POOL.job.csr = _mm_getcsr();
#endif
    atomic_store(&POOL.wanted, (int)POOL.job.runs - 1);
    atomic_store(&POOL.done, 0);
    unsigned g = atomic_load(&POOL.generation) + 1;
    atomic_store(&POOL.claim, (unsigned long long)g << 32 | (unsigned long long)POOL.job.runs << 16);
    if (POOL.job.runs > 1 && POOL.workers > 0) {
        atomic_store(&POOL.generation, g);
        for (int i = 0; i < POOL.job.runs - 1 && i < POOL.workers; i++) {
            atomic_store(&POOL.wake[i], g);
#ifdef __linux__
            if (atomic_load(&POOL.asleep[i]))
                syscall(SYS_futex, &POOL.wake[i], FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
#endif
        }
    }
    take_parts(g);
    for (long long turns = 0; atomic_load(&POOL.done) < POOL.job.runs;) wait_turn(&turns);
}

/* part k's wait for the true state entering it (a part before it is running on another
   thread) */
static const void *entry_of(const struct job *job, long long k) {
    const void *entry;
    for (long long turns = 0; !(entry = atomic_load(&((struct job *)job)->entry[k]));)
        wait_turn(&turns);
    return entry;
}

#define REAL float
#define SUFFIX f32
#define PS ps /* the intrinsics' name for the type */
#define RATIONAL_TANH 1
#include "quasi_newton_cells.h"
#undef REAL
#undef SUFFIX
#undef PS
#undef RATIONAL_TANH

#define REAL double
#define SUFFIX f64
#define PS pd
#define RATIONAL_TANH 0
#include "quasi_newton_cells.h"
#undef RATIONAL_TANH
