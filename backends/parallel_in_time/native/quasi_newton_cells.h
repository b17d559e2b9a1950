/* The three cells' kernels for one REAL type (float or double), named rnn_SUFFIX etc.; included
   by quasi_newton.c once per type. Each updates the steps t0 <= t < t1, whose product rows
   pre holds from its start (a block the framework has just made, still in cache); mx carries
   the running max from block to block (set to 0 at t0 = 0), and the return value is the max so
   far; mx holds one row of N per thread. With the diagonal Jacobian every element's scan is its
   own linear recurrence s_t = J_t s_{t-1} + b_t, so `threads` threads share a block by time
   (CHUNK) where it has MIN_RUN steps and fewer than ROWS_A_THREAD rows a thread: thread 0
   scans the first run of steps from the true state, each other thread its run from a zero
   state, keeping the running product P of its J's (the block's rows of P); then the true state
   entering each run (CARRIES, one thread) and every run's fix-up s = s_local + P * carry
   (FIX_UP). Measured at 2 threads (an iteration against one product of equal FLOPs, T = 1024
   and 4096, H = 32-128), this beat the split by rows at B = 8 (by up to 33% at H = 32:
   presumably a thread then reads the product rows it made, if the framework's product splits a
   block's rows over the threads in order), and lost to it at B = 32 (by up to 30% for the RNN
   at H = 128: the fix-up pass costs more there). A shorter block, or one with more rows, is
   shared by rows or units of every step (UNITS, no synchronisation but the region's end). */

#define PASTE(name, suffix) name##_##suffix
#define NAMED(name, suffix) PASTE(name, suffix)
#define EXP NAMED(exp, SUFFIX)
#define SIGMOID NAMED(sigmoid, SUFFIX)
#define TANH NAMED(tanh, SUFFIX)
#define UPDATE NAMED(update, SUFFIX)
#define UPDATE_LOCAL NAMED(update_local, SUFFIX)
#define FIX_UP NAMED(fix_up, SUFFIX)
#define CARRIES NAMED(carries, SUFFIX)
#define CARRIED NAMED(carried, SUFFIX)
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

/* The same update in a run of steps scanned from a zero state (start: the run's first step):
   s = J s_prev_local + b, and P the running product of the run's J's; no max (FIX_UP's). P
   decays geometrically where the recurrence contracts: below the smallest normal number it is
   set to 0 (it can only shrink from there; and a subnormal operand costs ~100x on a thread
   whose denormals are not flushed, as the OpenMP workers' are not: the runner flushes its own
   thread's). */
static inline REAL UPDATE_LOCAL(int start, REAL f, REAL J, REAL prev, REAL prev_new,
                                REAL P_prev, REAL *P) {
    const REAL smallest = sizeof(REAL) == sizeof(float) ? __FLT_MIN__ : __DBL_MIN__;
    REAL b = f - J * prev;
    REAL product = start ? J : J * P_prev;
    REAL size = product < 0 ? -product : product;
    *P = size < smallest ? 0 : product;
    return start ? b : J * prev_new + b;
}

/* The true state of a run scanned from zero: s_local + P * carry, carry the true state before
   the run (where it is 0, s_local: P may have overflowed) */
static inline REAL CARRIED(REAL s_local, REAL P, REAL carry) {
    return carry == 0 ? s_local : s_local + P * carry;
}

/* Steps ta <= t < tb of a run scanned from zero (rows of nxt) made true (CARRIED), carry
   [B, N] the true state before step ta, with the running max of |s - old|. */
static void FIX_UP(long long t0, long long ta, long long tb, long long B, long long N,
                   const REAL *restrict P, const REAL *restrict carry, const REAL *restrict cur,
                   REAL *restrict nxt, REAL *restrict mx) {
    for (long long t = ta; t < tb; t++)
        for (long long m = 0; m < B; m++) {
            long long row = t * B + m;
            const REAL *p = P + ((t - t0) * B + m) * N, *c = carry + m * N;
            const REAL *old = cur + (row + B) * N;
            REAL *s = nxt + (row + B) * N;
#pragma GCC ivdep
            for (long long j = 0; j < N; j++) {
                REAL v = CARRIED(s[j], p[j], c[j]);
                REAL d = v - old[j];
                d = d < 0 ? -d : d;
                mx[j] = (d > mx[j] || d != d) ? d : mx[j];
                s[j] = v;
            }
        }
}

/* Thread k's run of the block's steps [*ta, *tb) of n: thread 0, which alone has no fix-up,
   takes 1 + FIX_UP_SHARE runs' worth */
#define FIX_UP_SHARE 0.2
static inline void NAMED(chunk, SUFFIX)(long long t0, long long t1, long long k, long long n,
                                        long long *ta, long long *tb) {
    double unit = (double)(t1 - t0) / (n + FIX_UP_SHARE);
    *ta = k == 0 ? t0 : t0 + (long long)(unit * (k + FIX_UP_SHARE));
    *tb = k == n - 1 ? t1 : t0 + (long long)(unit * (k + 1 + FIX_UP_SHARE));
}
#define CHUNK NAMED(chunk, SUFFIX)

/* The true state entering each run k >= 1 of n, carry [n, B, N]: run 1's is thread 0's last
   state; run k's is run k - 1's last local state plus its P times run k - 1's carry. */
static void CARRIES(long long t0, long long t1, long long n, long long B, long long N,
                    const REAL *restrict P, const REAL *restrict nxt, REAL *restrict carry) {
    for (long long k = 1; k < n; k++) {
        long long ta, tb;
        CHUNK(t0, t1, k, n, &ta, &tb);
        const REAL *last = nxt + ta * B * N; /* the state after step ta - 1 */
        REAL *c = carry + k * B * N;
        if (k == 1) {
            for (long long j = 0; j < B * N; j++) c[j] = last[j];
            continue;
        }
        const REAL *p = P + (ta - 1 - t0) * B * N, *before = carry + (k - 1) * B * N;
        for (long long j = 0; j < B * N; j++)
            c[j] = CARRIED(last[j], p[j], before[j]);
    }
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
   its run of steps (CHUNK) and the fix-up where the block has at least MIN_RUN steps and fewer
   than ROWS_A_THREAD rows a thread, else CELL's units function on its share (UNITS), each with
   its own row of mx; return the max of them all. The arguments after N are CELL's pointers,
   mx, P and carry aside. */
#define MIN_RUN 8
#define ROWS_A_THREAD 8
#define SPLIT_OVER_THREADS(CELL, N, ...)                                                     \
    if (t0 == 0)                                                                             \
        for (long long j = 0; j < (N) * threads; j++) mx[j] = 0;                             \
    PARALLEL(threads)                                                                        \
    {                                                                                        \
        long long k = THREAD_NUM, n = THREAD_COUNT;                                          \
        REAL *own = mx + k * (N);                                                            \
        if (n > 1 && B < ROWS_A_THREAD * n && t1 - t0 >= MIN_RUN * n) {                     \
            long long ta, tb;                                                                \
            CHUNK(t0, t1, k, n, &ta, &tb);                                                   \
            if (k == 0)                                                                      \
                NAMED(CELL##_units, SUFFIX)(t0, ta, tb, B, H, 0, B, 0, H, __VA_ARGS__, own); \
            else                                                                             \
                NAMED(CELL##_local, SUFFIX)(t0, ta, tb, B, H, 0, B, 0, H, __VA_ARGS__, P);   \
            BARRIER                                                                          \
            if (k == 0) CARRIES(t0, t1, n, B, (N), P, nxt, carry);                           \
            BARRIER                                                                          \
            if (k > 0) FIX_UP(t0, ta, tb, B, (N), P, carry + k * B * (N), cur, nxt, own);    \
        } else {                                                                             \
            long long m0, m1, j0, j1;                                                        \
            UNITS(B, H, &m0, &m1, &j0, &j1);                                                 \
            NAMED(CELL##_units, SUFFIX)(t0, t0, t1, B, H, m0, m1, j0, j1, __VA_ARGS__, own); \
        }                                                                                    \
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
   after it in cur (old) and where the new one goes (out), N values each; in a run scanned from
   zero (LOCAL), the row of P before (P_prev) and at this step (P_row). At a run's first step
   prev_new and P_prev are not used: they point at prev, not at a row another thread writes. */
#define ROW_POINTERS(G, N)                                                                   \
    long long row = t * B + m, block_row = (t - t0) * B + m;                                 \
    const REAL *p = pre + block_row * (G) * H, *x = xw + row * (G) * H;                      \
    const REAL *prev = cur + row * (N), *old = cur + (row + B) * (N);                        \
    const REAL *prev_new = LOCAL && t == ta ? prev : nxt + row * (N);                        \
    const REAL *P_prev = LOCAL && t > ta ? P + (block_row - B) * (N) : prev;                 \
    REAL *P_row = LOCAL ? P + block_row * (N) : 0;                                           \
    REAL *out = nxt + (row + B) * (N);                                                       \
    (void)P_prev, (void)P_row, (void)old;

/* One element's update, exact (UPDATE, from step 0) or in a run from zero (UPDATE_LOCAL) */
#define STEP(f, J, j, prev_value)                                                            \
    (LOCAL ? UPDATE_LOCAL(t == ta, f, J, prev_value, prev_new[j], P_prev[j], P_row + (j))     \
           : UPDATE(first, f, J, prev_value, prev_new[j], old[j], mx + (j)))

/* Each cell's units function is written once, as a body inlined into two: _units (exact, LOCAL
   0) and _local (a run from zero, LOCAL 1), each its own function so that its restrict
   pointers hold inside the OpenMP region. */
#define TWO_FUNCTIONS(CELL, ...)                                                             \
    static __attribute__((noinline)) void NAMED(CELL##_units, SUFFIX)(                       \
        long long t0, long long ta, long long tb, long long B, long long H, long long m0,    \
        long long m1, long long j0, long long j1, __VA_ARGS__, REAL *restrict mx) {          \
        NAMED(CELL##_body, SUFFIX)(0, t0, ta, tb, B, H, m0, m1, j0, j1, CELL##_ARGS, mx, 0);  \
    }                                                                                        \
    static __attribute__((noinline)) void NAMED(CELL##_local, SUFFIX)(                       \
        long long t0, long long ta, long long tb, long long B, long long H, long long m0,    \
        long long m1, long long j0, long long j1, __VA_ARGS__, REAL *restrict P) {           \
        NAMED(CELL##_body, SUFFIX)(1, t0, ta, tb, B, H, m0, m1, j0, j1, CELL##_ARGS, 0, P);   \
    }

#define BODY_HEAD(CELL, ...)                                                                 \
    static inline __attribute__((always_inline)) void NAMED(CELL##_body, SUFFIX)(            \
        const int LOCAL, long long t0, long long ta, long long tb, long long B, long long H, \
        long long m0, long long m1, long long j0, long long j1, __VA_ARGS__,                 \
        REAL *restrict mx, REAL *restrict P)

/* units j0 <= j < j1 of steps ta <= t < tb and rows m0 <= m < m1 */
#define rnn_ARGS pre, xw, Rd, cur, nxt
BODY_HEAD(rnn, const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
          const REAL *restrict cur, REAL *restrict nxt) {
    for (long long t = ta; t < tb; t++) {
        int first = t == 0;
        for (long long m = m0; m < m1; m++) {
            ROW_POINTERS(1, H)
            /* out and prev_new are rows of nxt B*N >= N apart: no overlap within a row */
#pragma GCC ivdep
            for (long long j = j0; j < j1; j++) {
                REAL h = TANH(p[j] + x[j]);
                REAL J = (1 - h * h) * Rd[j];
                out[j] = STEP(h, J, j, prev[j]);
            }
        }
    }
}
TWO_FUNCTIONS(rnn, const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
              const REAL *restrict cur, REAL *restrict nxt)

double NAMED(rnn, SUFFIX)(long long t0, long long t1, long long B, long long H, long long threads,
                          const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
                          const REAL *restrict cur, REAL *restrict nxt, REAL *restrict mx,
                          REAL *restrict P, REAL *restrict carry) {
    SPLIT_OVER_THREADS(rnn, H, pre, xw, Rd, cur, nxt)
}

/* units j0 <= j < j1 of steps ta <= t < tb and rows m0 <= m < m1 */
#define gru_ARGS pre, xw, Rbh, Rd, cur, nxt
BODY_HEAD(gru, const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rbh,
          const REAL *restrict Rd, const REAL *restrict cur, REAL *restrict nxt) {
    const REAL *Rz = Rd, *Rr = Rd + H, *Rh = Rd + 2 * H;
    for (long long t = ta; t < tb; t++) {
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
                out[j] = STEP(f, J, j, prev[j]);
            }
        }
    }
}
TWO_FUNCTIONS(gru, const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rbh,
              const REAL *restrict Rd, const REAL *restrict cur, REAL *restrict nxt)

double NAMED(gru, SUFFIX)(long long t0, long long t1, long long B, long long H, long long threads,
                          const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rbh,
                          const REAL *restrict Rd, const REAL *restrict cur, REAL *restrict nxt,
                          REAL *restrict mx, REAL *restrict P, REAL *restrict carry) {
    SPLIT_OVER_THREADS(gru, H, pre, xw, Rbh, Rd, cur, nxt)
}

/* units j0 <= j < j1 of steps ta <= t < tb and rows m0 <= m < m1 */
#define lstm_ARGS pre, xw, Rd, cur, nxt
BODY_HEAD(lstm, const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
          const REAL *restrict cur, REAL *restrict nxt) {
    const REAL *Ri = Rd, *Ro = Rd + H, *Rf = Rd + 2 * H, *Rg = Rd + 3 * H;
    long long N = 2 * H;
    for (long long t = ta; t < tb; t++) {
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
                out[j] = STEP(o * tc, Jh, j, prev[j]);
                out[H + j] = STEP(c, fg, H + j, c_prev);
            }
        }
    }
}
TWO_FUNCTIONS(lstm, const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
              const REAL *restrict cur, REAL *restrict nxt)

double NAMED(lstm, SUFFIX)(long long t0, long long t1, long long B, long long H, long long threads,
                          const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
                          const REAL *restrict cur, REAL *restrict nxt, REAL *restrict mx,
                          REAL *restrict P, REAL *restrict carry) {
    SPLIT_OVER_THREADS(lstm, 2 * H, pre, xw, Rd, cur, nxt)
}

#undef PASTE
#undef NAMED
#undef EXP
#undef SIGMOID
#undef TANH
#undef UPDATE
#undef UPDATE_LOCAL
#undef FIX_UP
#undef CARRIES
#undef CARRIED
#undef CHUNK
#undef STEP
#undef TWO_FUNCTIONS
#undef BODY_HEAD
#undef MIN_RUN
#undef ROWS_A_THREAD
#undef FIX_UP_SHARE
#undef rnn_ARGS
#undef gru_ARGS
#undef lstm_ARGS
#undef FINISH
#undef UNITS
#undef ROW_POINTERS
#undef SPLIT_OVER_THREADS
