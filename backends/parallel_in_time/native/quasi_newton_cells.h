/* The three cells' kernels for one REAL type (float or double), named rnn_SUFFIX etc.; included
   by quasi_newton.c once per type. Each updates the steps t0 <= t < t1, whose product rows
   pre holds from its start (a block the framework has just made, still in cache); mx carries
   the running max from block to block (set to 0 at t0 = 0), and the return value is the max so
   far; mx holds one row of N per thread. With the diagonal Jacobian every unit's scan is its
   own, so `threads` threads each take their rows or units of every step (UNITS), with no
   synchronisation but the region's end. */

#define PASTE(name, suffix) name##_##suffix
#define NAMED(name, suffix) PASTE(name, suffix)
#define EXP NAMED(exp, SUFFIX)
#define SIGMOID NAMED(sigmoid, SUFFIX)
#define TANH NAMED(tanh, SUFFIX)
#define UPDATE NAMED(update, SUFFIX)
#define FINISH NAMED(finish, SUFFIX)
#define UNITS NAMED(units, SUFFIX)

#if RATIONAL_TANH
static inline REAL TANH(REAL a) { return NAMED(tanh_rational, SUFFIX)(a); }

static inline REAL SIGMOID(REAL a) { return (REAL)0.5 + (REAL)0.5 * TANH((REAL)0.5 * a); }
#else
static inline REAL SIGMOID(REAL a) { return (REAL)1 / ((REAL)1 + EXP(-a)); }

static inline REAL TANH(REAL a) { return (REAL)2 * SIGMOID(2 * a) - 1; }
#endif

/* newton.iterate's update of one element: b = f - J s_prev (b_0 = f_0), s = J s_new_prev + b;
   and the running max of |s - old|, NaN once any is NaN */
static inline REAL UPDATE(int first, REAL f, REAL J, REAL prev, REAL prev_new, REAL old,
                          REAL *mx) {
    REAL b = first ? f : f - J * prev;
    REAL s = first ? f : J * prev_new + b;
    REAL d = s - old;
    d = d < 0 ? -d : d;
    *mx = (d > *mx || d != d) ? d : *mx;
    return s;
}

/* This thread's share of a block: whole batch rows [*m0, *m1) where there are rows for every
   thread (apart in memory), else runs of units [*j0, *j1) of every row, each run whole 128-byte
   pairs of lines (the pair a core's prefetcher fetches together), the last thread's shorter. */
static inline void UNITS(long long B, long long H, long long *m0, long long *m1, long long *j0,
                         long long *j1) {
    long long k = THREAD_NUM, n = THREAD_COUNT;
    *m0 = 0, *m1 = B, *j0 = 0, *j1 = H;
    if (n == 1) return;
    if (B >= n) {
        *m0 = B * k / n, *m1 = B * (k + 1) / n;
        return;
    }
    long long pair = 128 / (long long)sizeof(REAL);
    long long chunk = ((H + n - 1) / n + pair - 1) / pair * pair;
    *j0 = k * chunk < H ? k * chunk : H;
    *j1 = *j0 + chunk < H ? *j0 + chunk : H;
}

/* A kernel's body: clear every thread's running max at the first block, let each thread run
   CELL's units function on its share (UNITS) with its own row of mx, and return the max of
   them all. The arguments after N are CELL's pointers, mx aside. */
#define SPLIT_OVER_THREADS(CELL, N, ...)                                                     \
    if (t0 == 0)                                                                             \
        for (long long j = 0; j < (N) * threads; j++) mx[j] = 0;                             \
    PARALLEL(threads)                                                                        \
    {                                                                                        \
        long long m0, m1, j0, j1;                                                            \
        UNITS(B, H, &m0, &m1, &j0, &j1);                                                     \
        NAMED(CELL##_units, SUFFIX)(t0, t1, B, H, m0, m1, j0, j1, __VA_ARGS__,               \
                                    mx + THREAD_NUM * (N));                                  \
    }                                                                                        \
    return FINISH(mx, (N) * threads);

/* the max over every thread's running max (mx holds one row of N per thread) */
static double FINISH(const REAL *mx, long long N) {
    REAL m = 0;
    for (long long j = 0; j < N; j++) {
        if (mx[j] != mx[j]) return (double)mx[j];
        m = mx[j] > m ? mx[j] : m;
    }
    return (double)m;
}

/* The pointers of one (step t, batch row m): the block's product row and the input row of G
   gate blocks each, the state before the step in cur (prev) and in nxt (prev_new), the state
   after it in cur (old) and where the new one goes (out), N values each. */
#define ROW_POINTERS(G, N)                                                                   \
    long long row = t * B + m, block_row = (t - t0) * B + m;                                 \
    const REAL *p = pre + block_row * (G) * H, *x = xw + row * (G) * H;                      \
    const REAL *prev = cur + row * (N), *old = cur + (row + B) * (N);                        \
    const REAL *prev_new = nxt + row * (N);                                                  \
    REAL *out = nxt + (row + B) * (N);

/* units j0 <= j < j1 of every step and row; its own function, so that its restrict
   pointers hold inside the OpenMP region */
static __attribute__((noinline)) void NAMED(rnn_units, SUFFIX)(
    long long t0, long long t1, long long B, long long H, long long m0, long long m1,
    long long j0, long long j1, const REAL *restrict pre, const REAL *restrict xw,
    const REAL *restrict Rd, const REAL *restrict cur, REAL *restrict nxt, REAL *restrict mx) {
    for (long long t = t0; t < t1; t++) {
        int first = t == 0;
        for (long long m = m0; m < m1; m++) {
            ROW_POINTERS(1, H)
            /* out and prev_new are rows of nxt B*N >= N apart: no overlap within a row */
#pragma GCC ivdep
            for (long long j = j0; j < j1; j++) {
                REAL h = TANH(p[j] + x[j]);
                REAL J = (1 - h * h) * Rd[j];
                out[j] = UPDATE(first, h, J, prev[j], prev_new[j], old[j], mx + j);
            }
        }
    }
}

double NAMED(rnn, SUFFIX)(long long t0, long long t1, long long B, long long H, long long threads,
                          const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
                          const REAL *restrict cur, REAL *restrict nxt, REAL *restrict mx) {
    SPLIT_OVER_THREADS(rnn, H, pre, xw, Rd, cur, nxt)
}

/* units j0 <= j < j1 of every step and row; its own function, so that its restrict
   pointers hold inside the OpenMP region */
static __attribute__((noinline)) void NAMED(gru_units, SUFFIX)(
    long long t0, long long t1, long long B, long long H, long long m0, long long m1,
    long long j0, long long j1, const REAL *restrict pre, const REAL *restrict xw,
    const REAL *restrict Rbh, const REAL *restrict Rd, const REAL *restrict cur,
    REAL *restrict nxt, REAL *restrict mx) {
    const REAL *Rz = Rd, *Rr = Rd + H, *Rh = Rd + 2 * H;
    for (long long t = t0; t < t1; t++) {
        int first = t == 0;
        for (long long m = m0; m < m1; m++) {
            ROW_POINTERS(3, H)
            /* out and prev_new are rows of nxt B*N >= N apart: no overlap within a row */
#pragma GCC ivdep
            for (long long j = j0; j < j1; j++) {
                REAL z = SIGMOID(p[j] + x[j]), r = SIGMOID(p[H + j] + x[H + j]);
                REAL rh = p[2 * H + j] + Rbh[j];
                REAL n = TANH(x[2 * H + j] + r * rh);
                REAL d = prev[j] - n;
                REAL f = n + z * d;
                REAL dn = (1 - z) * (1 - n * n);
                REAL J = z + d * z * (1 - z) * Rz[j] + dn * rh * r * (1 - r) * Rr[j]
                         + dn * r * Rh[j];
                out[j] = UPDATE(first, f, J, prev[j], prev_new[j], old[j], mx + j);
            }
        }
    }
}

double NAMED(gru, SUFFIX)(long long t0, long long t1, long long B, long long H, long long threads,
                          const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rbh,
                          const REAL *restrict Rd, const REAL *restrict cur, REAL *restrict nxt,
                          REAL *restrict mx) {
    SPLIT_OVER_THREADS(gru, H, pre, xw, Rbh, Rd, cur, nxt)
}

/* units j0 <= j < j1 of every step and row; its own function, so that its restrict
   pointers hold inside the OpenMP region */
static __attribute__((noinline)) void NAMED(lstm_units, SUFFIX)(
    long long t0, long long t1, long long B, long long H, long long m0, long long m1,
    long long j0, long long j1, const REAL *restrict pre, const REAL *restrict xw,
    const REAL *restrict Rd, const REAL *restrict cur, REAL *restrict nxt, REAL *restrict mx) {
    const REAL *Ri = Rd, *Ro = Rd + H, *Rf = Rd + 2 * H, *Rg = Rd + 3 * H;
    long long N = 2 * H;
    for (long long t = t0; t < t1; t++) {
        int first = t == 0;
        for (long long m = m0; m < m1; m++) {
            ROW_POINTERS(4, N)
            /* out and prev_new are rows of nxt B*N >= N apart: no overlap within a row */
#pragma GCC ivdep
            for (long long j = j0; j < j1; j++) {
                REAL i = SIGMOID(p[j] + x[j]), o = SIGMOID(p[H + j] + x[H + j]);
                REAL fg = SIGMOID(p[2 * H + j] + x[2 * H + j]);
                REAL g = TANH(p[3 * H + j] + x[3 * H + j]);
                REAL c_prev = prev[H + j];
                REAL c = fg * c_prev + i * g;
                REAL tc = TANH(c);
                REAL dc = g * i * (1 - i) * Ri[j] + c_prev * fg * (1 - fg) * Rf[j]
                          + i * (1 - g * g) * Rg[j];
                REAL Jh = tc * o * (1 - o) * Ro[j] + o * (1 - tc * tc) * dc;
                out[j] = UPDATE(first, o * tc, Jh, prev[j], prev_new[j], old[j], mx + j);
                out[H + j] = UPDATE(first, c, fg, c_prev, prev_new[H + j], old[H + j],
                                    mx + H + j);
            }
        }
    }
}

double NAMED(lstm, SUFFIX)(long long t0, long long t1, long long B, long long H, long long threads,
                          const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
                          const REAL *restrict cur, REAL *restrict nxt, REAL *restrict mx) {
    SPLIT_OVER_THREADS(lstm, 2 * H, pre, xw, Rd, cur, nxt)
}

#undef PASTE
#undef NAMED
#undef EXP
#undef SIGMOID
#undef TANH
#undef UPDATE
#undef FINISH
#undef UNITS
#undef ROW_POINTERS
#undef SPLIT_OVER_THREADS
