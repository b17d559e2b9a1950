/* The three cells' kernels for one REAL type (float or double), named rnn_SUFFIX etc.; included
   by quasi_newton.c once per type. Each updates the steps t0 <= t < t1, whose product rows
   pre holds from its start (a block the framework has just made, still in cache); mx carries
   the running max from block to block (set to 0 at t0 = 0), and the return value is the max so
   far; mx holds one row of N per thread. Units are taken LANES at a time (a tile: one vector
   register), a tile's states carried in registers from step to step where a thread has one
   batch row (TILES).

   With the diagonal Jacobian every element's scan is its own linear recurrence
   s_t = J_t s_{t-1} + b_t, so `threads` threads share a block by time (CHUNK) where it has
   MIN_RUN steps and either fewer than ROWS_A_THREAD rows a thread or rows of h shorter than
   SHORT_ROW bytes: thread 0 scans the first run of steps from the true state, each other thread
   its run from a zero state, keeping the running product P of its J's (the block's rows of P);
   then the true state entering each run (CARRIES, one thread) and every run's fix-up
   s = s_local + P * carry (FIX_UP). Measured at 2 threads (an iteration against one product of
   equal FLOPs, T = 1024 and 4096): this beat the split by rows at B = 8 (by up to 33% at
   H = 32: presumably a thread then reads the product rows it made, if the framework's product
   splits a block's rows over the threads in order) and at B = 32 for H = 32 (3.3-3.6x against
   4.2-4.7x for the RNN, 2.9-3.0x against 3.3x for the GRU); it tied at H = 64 and lost at
   H = 128, B = 32 (by up to 30% for the RNN: the fix-up pass costs more there). A shorter
   block, or one with more and longer rows, is shared by rows or units of every step (UNITS, no
   synchronisation but the region's end). */

#define PASTE(name, suffix) name##_##suffix
#define NAMED(name, suffix) PASTE(name, suffix)
#define EXP NAMED(exp, SUFFIX)
#define SIGMOID NAMED(sigmoid, SUFFIX)
#define TANH NAMED(tanh, SUFFIX)
#define ABS NAMED(abs, SUFFIX)
#define FIX_UP NAMED(fix_up, SUFFIX)
#define CARRIES NAMED(carries, SUFFIX)
#define CARRIED NAMED(carried, SUFFIX)
#define FINISH NAMED(finish, SUFFIX)
#define UNITS NAMED(units, SUFFIX)

#define VEC NAMED(vec, SUFFIX)
#define MASK NAMED(mask, SUFFIX)
#define SELECT NAMED(select, SUFFIX)
#define LANES ((long long)(VECTOR_BYTES / sizeof(REAL)))
#define SPLAT(a) ((VEC){} + (REAL)(a))
#define TRACK NAMED(track, SUFFIX)
#define START NAMED(start, SUFFIX)
#define ADVANCE NAMED(advance, SUFFIX)
#define GET NAMED(get, SUFFIX)
#define PUT NAMED(put, SUFFIX)
#define LOAD_SOME NAMED(load_some, SUFFIX)
#define STORE_SOME NAMED(store_some, SUFFIX)

#if RATIONAL_TANH
static inline VEC TANH(VEC a) { return NAMED(tanh_rational, SUFFIX)(a); }

static inline VEC SIGMOID(VEC a) { return (REAL)0.5 + (REAL)0.5 * TANH((REAL)0.5 * a); }
#else
static inline VEC SIGMOID(VEC a) { return (REAL)1 / ((REAL)1 + EXP(-a)); }

static inline VEC TANH(VEC a) { return (REAL)2 * SIGMOID((REAL)2 * a) - (REAL)1; }
#endif

/* |v| (NaN stays NaN): v with its sign bit cleared */
static inline VEC ABS(VEC v) { return (VEC)((MASK)v & ~(MASK)(-SPLAT(0))); }

/* The first w < LANES units of a tile from p (the lanes past w 0) and back: AVX-512's and AVX's
   masked moves, which touch no byte past the w units (PS: the intrinsics' name for REAL);
   elsewhere element by element (a loop the compiler may make a call to memcpy) */
#if VECTOR_BYTES == 64
/* a tile as the intrinsics' own vector type (the type their load gives) */
#define NATIVE(v) ((__typeof__(NAMED(_mm512_maskz_loadu, PS)(0, (const REAL *)0)))(v))
static inline VEC LOAD_SOME(const REAL *p, long long w) {
    return (VEC)NAMED(_mm512_maskz_loadu, PS)((1u << w) - 1, p);
}
static inline void STORE_SOME(REAL *p, VEC v, long long w) {
    NAMED(_mm512_mask_storeu, PS)(p, (1u << w) - 1, NATIVE(v));
}
#elif VECTOR_BYTES == 32
/* lanes [0, w) set: a window of w all-ones words then zeros (AVX has no 256-bit integer compare
   to make it from w) */
static const __typeof__(((MASK){})[0]) NAMED(lanes, SUFFIX)[2 * LANES] = {[0 ... LANES - 1] = -1};
#define FIRST(w) _mm256_loadu_si256((const __m256i *)(NAMED(lanes, SUFFIX) + LANES - (w)))
#define NATIVE(v) ((__typeof__(NAMED(_mm256_maskload, PS)((const REAL *)0, FIRST(1))))(v))
static inline VEC LOAD_SOME(const REAL *p, long long w) {
    return (VEC)NAMED(_mm256_maskload, PS)(p, FIRST(w));
}
static inline void STORE_SOME(REAL *p, VEC v, long long w) {
    NAMED(_mm256_maskstore, PS)(p, FIRST(w), NATIVE(v));
}
#undef FIRST
#else
static inline VEC LOAD_SOME(const REAL *p, long long w) {
    VEC v = {};
    for (long long l = 0; l < w; l++) v[l] = p[l];
    return v;
}
static inline void STORE_SOME(REAL *p, VEC v, long long w) {
    for (long long l = 0; l < w; l++) p[l] = v[l];
}
#endif

/* w units from p into a tile (LANES of them where full; the lanes past w 0), and back */
static inline __attribute__((always_inline)) VEC GET(const int full, long long w,
                                                     const REAL *p) {
    VEC v;
    if (!full) return LOAD_SOME(p, w);
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) void PUT(const int full, long long w, REAL *p,
                                                      VEC v) {
    if (full)
        __builtin_memcpy(p, &v, sizeof v);
    else
        STORE_SOME(p, v, w);
}

/* One tile of one state (h or c) along steps of a run, in registers: the state before the step
   in cur (prev) and in nxt (s), in a run from zero the running product P of its J's, and the
   max of |s - old| (NaN once any is NaN) in an exact run, or where P is 0 in a run from zero
   whose fix-up stops early (ADVANCE's LOCAL 2). */
typedef struct {
    VEC prev, s, P, mx;
} TRACK;

/* The tile of units at offset `at` of batch row m's state before step ta, in a run from step
   `start` (a run from zero: nxt's row before its start is another thread's, not read; P's is
   not the run's) whose block starts at t0; mx, the thread's running max, at `at` */
static inline __attribute__((always_inline)) TRACK START(const int LOCAL, const int full,
                                                         long long w, long long t0,
                                                         long long start, long long ta,
                                                         long long B, long long N, long long m,
                                                         long long at, const REAL *cur,
                                                         const REAL *nxt, const REAL *mx,
                                                         const REAL *P) {
    long long row = (ta * B + m) * N + at;
    int later = ta > start;
    TRACK k = {GET(full, w, cur + row),
               LOCAL && !later ? SPLAT(0) : GET(full, w, nxt + row),
               LOCAL && later ? GET(full, w, P + ((ta - 1 - t0) * B + m) * N + at) : SPLAT(0),
               LOCAL == 1 ? SPLAT(0) : GET(full, w, mx + at)};
    return k;
}

/* newton.iterate's update of one tile at step t: b = f - J s_prev (b_0 = f_0: step 0 is exact)
   and s = J s_new_prev + b; in a run scanned from zero (LOCAL, its first step `start`) s = b at
   its start, and P the running product of the run's J's, stored for FIX_UP. With LOCAL 2 (a
   cell whose fix-up stops early, CELL##_STOP) the running max of |s - old| is kept here where P
   is 0, s then already the true state (s_local + 0 * carry, carry finite: FIX_UP checks), and
   where s is not finite, the true state then not finite either; so FIX_UP can stop at the
   first step whose P is all 0 (0 stays 0: J * 0, J finite where s is). P decays
   geometrically where the recurrence contracts: below NEGLIGIBLE = eps^2 it is set to 0 (the
   fix-up's term P * carry is then under eps^2 |carry| at that step, an absolute error far below
   the solver's tolerance; later steps carry it on as they carry their own rounding, which it
   stays under, where |J| > 1 too; and P never goes subnormal, which costs ~100x on a thread
   whose denormals are not flushed, as the OpenMP workers' are not). Measured at 2 threads,
   H = 32 (the RNN's kernel a row and step, side by side): eps^2 in place of the smallest normal
   number shortened the fix-up to 16 steps (B = 1, 8 and 32; ~2.7x as many before, by the
   logarithms) and took B = 32 from 10.8 to 10.0 ns at T = 1024, 9.9 to 9.2 at T = 4096.
   old_row, out and P_row: the tile's place in cur and nxt after the step and in the block's
   rows of P. */
static inline __attribute__((always_inline)) void ADVANCE(const int LOCAL, const int full,
                                                          long long w, TRACK *k, long long t,
                                                          long long start, VEC f, VEC J,
                                                          const REAL *old_row, REAL *out,
                                                          REAL *P_row) {
    const REAL NEGLIGIBLE = sizeof(REAL) == sizeof(float) ? __FLT_EPSILON__ * __FLT_EPSILON__
                                                          : __DBL_EPSILON__ * __DBL_EPSILON__;
    VEC old = GET(full, w, old_row);
    VEC b = f - J * k->prev;
    VEC s;
    if (LOCAL) {
        VEC product = t == start ? J : J * k->P;
        k->P = SELECT(ABS(product) < SPLAT(NEGLIGIBLE), SPLAT(0), product);
        PUT(full, w, P_row, k->P);
        s = t == start ? b : J * k->s + b;
        if (LOCAL == 2) {
            VEC d = ABS(s - old);
            k->mx = SELECT(((k->P == 0) & (d > k->mx)) | (d - d != 0), d, k->mx);
        }
    } else {
        s = t == 0 ? f : J * k->s + b;
        VEC d = ABS(s - old);
        k->mx = SELECT((d > k->mx) | (d != d), d, k->mx);
    }
    PUT(full, w, out, s);
    k->s = s, k->prev = old;
}

/* The true state of a run scanned from zero: s_local + P * carry, carry the true state before
   the run (where it is 0, s_local: P may have overflowed) */
static inline REAL CARRIED(REAL s_local, REAL P, REAL carry) {
    return carry == 0 ? s_local : s_local + P * carry;
}

/* Steps ta <= t < tb of a run scanned from zero (rows of nxt) made true (CARRIED), carry
   [B, N] the true state before step ta, with the running max of |s - old|; where `stop` (the
   run's scan kept the max where P is 0: ADVANCE's LOCAL 2) and the carry is finite, up to the
   first step whose P is all 0: where the recurrence contracts, a few dozen steps of the run. */
static void FIX_UP(long long t0, long long ta, long long tb, long long B, long long N, int stop,
                   const REAL *restrict P, const REAL *restrict carry, const REAL *restrict cur,
                   REAL *restrict nxt, REAL *restrict mx) {
    int finite = stop;
    for (long long j = 0; finite && j < B * N; j++) finite = carry[j] - carry[j] == 0;
    for (long long t = ta; t < tb; t++) {
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
        if (finite) { /* the first nonzero ends the look while P lives */
            const REAL *p = P + (t - t0) * B * N;
            long long j = 0;
            while (j < B * N && p[j] == 0) j++;
            if (j == B * N) return;
        }
    }
}

/* The block's product rows q0 <= q < q1, columns c0 <= c < c1, where the caller did not make
   them (its RT non-null): pre[q, c] = sum_k S[q lds + k] RT[k GH + c], S the state before each of
   the block's steps (cur's rows from step t0, h alone for the LSTM: lds = N), RT = R^T [H, GH].
   Each thread makes the rows or units its kernel then reads, while they are in its cache, with
   no library call: on NumPy arrays the BLAS's own threads would spin between its products and
   starve this pool (quasi_newton.c). Tiles of PRODUCT_ROWS rows by PRODUCT_VECS vectors of
   columns held in registers along k (RT's tile in L1, reused by every row tile). */
#if VECTOR_BYTES == 64
#define PRODUCT_ROWS 4
#define PRODUCT_VECS 4
#else
#define PRODUCT_ROWS 3
#define PRODUCT_VECS 3
#endif
#define MICRO NAMED(micro, SUFFIX)
#define PRODUCT NAMED(product, SUFFIX)
static inline __attribute__((always_inline)) void MICRO(const int rows, const int nv,
                                                        const int full, long long w, long long K,
                                                        long long GH, const REAL *restrict S,
                                                        long long lds, const REAL *restrict RT,
                                                        REAL *restrict out) {
    VEC acc[PRODUCT_ROWS][PRODUCT_VECS];
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++) acc[r][v] = SPLAT(0);
    for (long long k = 0; k < K; k++) {
        VEC b[PRODUCT_VECS];
        for (int v = 0; v < nv; v++)
            b[v] = GET(full || v < nv - 1, w, RT + k * GH + v * LANES);
        for (int r = 0; r < rows; r++) {
            VEC a = SPLAT(S[r * lds + k]);
            for (int v = 0; v < nv; v++) acc[r][v] += a * b[v];
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++) PUT(full || v < nv - 1, w, out + r * GH + v * LANES, acc[r][v]);
}

#define MICRO_CASE(NV_, FULL_)                                                               \
    case 2 * (NV_) + (FULL_):                                                                \
        for (; q + PRODUCT_ROWS <= q1; q += PRODUCT_ROWS)                                    \
            MICRO(PRODUCT_ROWS, NV_, FULL_, w, K, GH, S + q * lds, lds, RT + c,              \
                  out + q * GH + c);                                                         \
        for (; q < q1; q++) MICRO(1, NV_, FULL_, w, K, GH, S + q * lds, lds, RT + c, out + q * GH + c); \
        break;

static void PRODUCT(long long q0, long long q1, long long c0, long long c1, long long K,
                    long long GH, const REAL *restrict S, long long lds,
                    const REAL *restrict RT, REAL *restrict out) {
    for (long long c = c0; c < c1; c += PRODUCT_VECS * LANES) {
        long long width = c1 - c < PRODUCT_VECS * LANES ? c1 - c : PRODUCT_VECS * LANES;
        long long nv = (width + LANES - 1) / LANES, w = width - (nv - 1) * LANES;
        long long q = q0;
        switch (2 * nv + (w == LANES)) {
            MICRO_CASE(1, 0)
            MICRO_CASE(1, 1)
            MICRO_CASE(2, 0)
            MICRO_CASE(2, 1)
            MICRO_CASE(3, 0)
            MICRO_CASE(3, 1)
#if PRODUCT_VECS == 4
            MICRO_CASE(4, 0)
            MICRO_CASE(4, 1)
#endif
        }
    }
}
#undef MICRO_CASE

/* The product rows a thread's kernel reads (RT non-null; else the caller made them): steps
   ta <= t < tb of the block from t0, batch rows [m0, m1) and units [j0, j1) of each of the G gate
   blocks */
#define OWN_PRODUCT NAMED(own_product, SUFFIX)
static void OWN_PRODUCT(long long t0, long long ta, long long tb, long long B, long long H,
                        long long G, long long N, long long m0, long long m1, long long j0,
                        long long j1, const REAL *restrict cur, const REAL *restrict RT,
                        REAL *restrict pre) {
    const REAL *S = cur + t0 * B * N;
    int whole = j0 == 0 && j1 == H;
    for (long long g = 0; g < (whole ? 1 : G); g++) {
        long long c0 = whole ? 0 : g * H + j0, c1 = whole ? G * H : g * H + j1;
        if (m1 - m0 == B)
            PRODUCT((ta - t0) * B, (tb - t0) * B, c0, c1, H, G * H, S, N, RT, pre);
        else
            for (long long t = ta; t < tb; t++)
                PRODUCT((t - t0) * B + m0, (t - t0) * B + m1, c0, c1, H, G * H, S, N, RT, pre);
    }
}

/* Thread k's run of the block's steps [*ta, *tb) of n: thread 0, which alone has no fix-up,
   takes 1 + share runs' worth. The cell's share (CELL##_SHARE) is what balanced 2 threads at
   H = 32, B = 1, 8 and 32 (measured side by side, shares -0.2 to 1.2): the RNN's fix-up costs
   about 0.4 of its own cheap step, the GRU's and the LSTM's nothing that shows beside theirs
   (0 beat 0.2 by 5-8%, and -0.1 by 1-5%). */
#define rnn_SHARE 0.4
#define gru_SHARE 0.0
#define lstm_SHARE 0.0
#define rnn_STOP 1
#define gru_STOP 0
#define lstm_STOP 0
static inline void NAMED(chunk, SUFFIX)(long long t0, long long t1, long long k, long long n,
                                        double share, long long *ta, long long *tb) {
    double unit = (double)(t1 - t0) / (n + share);
    *ta = k == 0 ? t0 : t0 + (long long)(unit * (k + share));
    *tb = k == n - 1 ? t1 : t0 + (long long)(unit * (k + 1 + share));
}
#define CHUNK NAMED(chunk, SUFFIX)

/* The true state entering each run k >= 1 of n, carry [n, B, N]: run 1's is thread 0's last
   state; run k's is run k - 1's last local state plus its P times run k - 1's carry. */
static void CARRIES(long long t0, long long t1, long long n, double share, long long B,
                    long long N, const REAL *restrict P, const REAL *restrict nxt,
                    REAL *restrict carry) {
    for (long long k = 1; k < n; k++) {
        long long ta, tb;
        CHUNK(t0, t1, k, n, share, &ta, &tb);
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
   than ROWS_A_THREAD rows a thread or rows of h under SHORT_ROW bytes, else CELL's units
   function on its share (UNITS), each with its own row of mx; return the max of them all. The
   arguments after N are CELL's pointers, mx, P and carry aside. */
#define MIN_RUN 8
#define ROWS_A_THREAD 8
#define SHORT_ROW 256
#define SPLIT_OVER_THREADS(CELL, G, N, ...)                                                  \
    if (t0 == 0)                                                                             \
        for (long long j = 0; j < (N) * threads; j++) mx[j] = 0;                             \
    PARALLEL(threads)                                                                        \
    {                                                                                        \
        long long k = THREAD_NUM, n = THREAD_COUNT;                                          \
        REAL *own = mx + k * (N);                                                            \
        int by_time = B < ROWS_A_THREAD * n || H * (long long)sizeof(REAL) < SHORT_ROW;    \
        if (n > 1 && by_time && t1 - t0 >= MIN_RUN * n) {                                    \
            long long ta, tb;                                                                \
            CHUNK(t0, t1, k, n, CELL##_SHARE, &ta, &tb);                                     \
            if (RT) OWN_PRODUCT(t0, ta, tb, B, H, G, (N), 0, B, 0, H, cur, RT, pre);         \
            if (k == 0)                                                                      \
                NAMED(CELL##_units, SUFFIX)(t0, ta, tb, B, H, 0, B, 0, H, __VA_ARGS__, own); \
            else                                                                             \
                NAMED(CELL##_local, SUFFIX)(t0, ta, tb, B, H, 0, B, 0, H, __VA_ARGS__, own,  \
                                            P);                                              \
            BARRIER                                                                          \
            if (k == 0) CARRIES(t0, t1, n, CELL##_SHARE, B, (N), P, nxt, carry);             \
            BARRIER                                                                          \
            if (k > 0)                                                                       \
                FIX_UP(t0, ta, tb, B, (N), CELL##_STOP, P, carry + k * B * (N), cur, nxt, own); \
        } else {                                                                             \
            long long m0, m1, j0, j1;                                                        \
            UNITS(B, H, &m0, &m1, &j0, &j1);                                                 \
            if (RT) OWN_PRODUCT(t0, t0, t1, B, H, G, (N), m0, m1, j0, j1, cur, RT, pre);     \
            NAMED(CELL##_units, SUFFIX)(t0, t0, t1, B, H, m0, m1, j0, j1, __VA_ARGS__, own); \
        }                                                                                    \
    }                                                                                        \
    return FINISH(mx, (N) * threads);

/* A kernel's body on this library's own pool (quasi_newton.c's run_job), for NumPy arrays:
   `threads` parts of the block by runs of steps or by batch rows, chosen as SPLIT_OVER_THREADS
   chooses (a block too short for runs is one part). Part 0 of a split by time is scanned from
   the true state, every later part from zero with its running product P, then, once the part
   before it has made the true state entering it known (entry_of), it makes the next part's
   (its own last state made true, into carry) and fixes itself up; so fix-ups run side by side.
   The parts' running maxes are mx's rows (one a part, whoever runs it). CELL's part and the
   exported CELL_pooled_SUFFIX, whose arguments are CELL's kernel's. */
#define UNPAREN(...) __VA_ARGS__
#define POOLED(CELL, G, N, ARGS, ...)                                                        \
    static void NAMED(CELL##_part, SUFFIX)(const struct job *job, long long k) {             \
        long long t0 = job->t0, t1 = job->t1, B = job->B, H = job->H, n = job->runs;         \
        REAL *pre = job->pre, *nxt = job->nxt, *P = job->P, *carry = job->carry;             \
        const REAL *xw = job->xw, *Rbh = job->Rbh, *Rd = job->Rd, *cur = job->cur;          \
        const REAL *RT = job->RT;                                                            \
        REAL *own = (REAL *)job->mx + k * (N);                                               \
        (void)Rbh;                                                                           \
        if (!job->by_time) {                                                                 \
            long long m0 = B * k / n, m1 = B * (k + 1) / n;                                  \
            if (RT) OWN_PRODUCT(t0, t0, t1, B, H, G, (N), m0, m1, 0, H, cur, RT, pre);       \
            NAMED(CELL##_units, SUFFIX)(t0, t0, t1, B, H, m0, m1, 0, H, UNPAREN ARGS, own);          \
            return;                                                                          \
        }                                                                                    \
        long long ta, tb;                                                                    \
        CHUNK(t0, t1, k, n, CELL##_SHARE, &ta, &tb);                                         \
        if (RT) OWN_PRODUCT(t0, ta, tb, B, H, G, (N), 0, B, 0, H, cur, RT, pre);             \
        if (k == 0) {                                                                        \
            NAMED(CELL##_units, SUFFIX)(t0, ta, tb, B, H, 0, B, 0, H, UNPAREN ARGS, own);            \
            if (n > 1) atomic_store(&((struct job *)job)->entry[1], nxt + tb * B * (N));     \
            return;                                                                          \
        }                                                                                    \
        NAMED(CELL##_local, SUFFIX)(t0, ta, tb, B, H, 0, B, 0, H, UNPAREN ARGS, own, P);             \
        const REAL *entry = entry_of(job, k);                                                \
        if (k + 1 < n) {                                                                     \
            const REAL *last = nxt + tb * B * (N), *p = P + (tb - 1 - t0) * B * (N);         \
            REAL *c = carry + (k + 1) * B * (N);                                             \
            for (long long j = 0; j < B * (N); j++) c[j] = CARRIED(last[j], p[j], entry[j]); \
            atomic_store(&((struct job *)job)->entry[k + 1], c);                             \
        }                                                                                    \
        FIX_UP(t0, ta, tb, B, (N), CELL##_STOP, P, entry, cur, nxt, own);                    \
    }                                                                                        \
    double NAMED(CELL##_pooled, SUFFIX)(long long t0, long long t1, long long B, long long H, \
                                        long long threads, __VA_ARGS__) {                    \
        if (threads > MAX_RUNS) threads = MAX_RUNS;                                          \
        if (t0 == 0)                                                                         \
            for (long long j = 0; j < (N) * threads; j++) mx[j] = 0;                         \
        int by_time = B < ROWS_A_THREAD * threads || H * (long long)sizeof(REAL) < SHORT_ROW; \
        long long runs = by_time && t1 - t0 < MIN_RUN * threads ? 1 : threads;              \
        pthread_mutex_lock(&POOL.lock);                                                      \
        struct job *job = &POOL.job;                                                         \
        job->run = NAMED(CELL##_part, SUFFIX), job->t0 = t0, job->t1 = t1, job->B = B;       \
        job->H = H, job->runs = runs, job->by_time = by_time || runs == 1;                   \
        job->pre = pre, job->nxt = nxt, job->mx = mx, job->P = P, job->carry = carry;        \
        job->xw = xw, job->Rd = Rd, job->cur = cur, job->RT = RT;                            \
        POOLED_RBH(CELL)                                                                     \
        run_job((int)threads);                                                               \
        pthread_mutex_unlock(&POOL.lock);                                                    \
        return FINISH(mx, (N) * threads);                                                    \
    }
#define POOLED_RBH(CELL) NAMED(CELL, RBH)
#define rnn_RBH job->Rbh = 0;
#define lstm_RBH job->Rbh = 0;
#define gru_RBH job->Rbh = Rbh;

/* The input projection x W^T + bias on the pool: out [rows, GH] = X [rows, K] WT [K, GH] plus
   bias [GH] in each row, the rows cut into `threads` parts; so that a solve on NumPy arrays
   calls no BLAS whose threads would then spin beside the pool's (the fields: rows in t1, X in
   cur, WT in RT, bias in Rd, out in pre). */
static void NAMED(project_part, SUFFIX)(const struct job *job, long long k) {
    long long rows = job->t1, n = job->runs, K = job->K, GH = job->GH;
    long long q0 = rows * k / n, q1 = rows * (k + 1) / n;
    REAL *out = job->pre;
    const REAL *bias = job->Rd;
    PRODUCT(q0, q1, 0, GH, K, GH, job->cur, K, job->RT, out);
    for (long long q = q0; q < q1; q++)
        for (long long c = 0; c < GH; c++) out[q * GH + c] += bias[c];
}

void NAMED(project, SUFFIX)(long long rows, long long K, long long GH, long long threads,
                            const REAL *X, const REAL *WT, const REAL *bias, REAL *out) {
    if (threads > MAX_RUNS) threads = MAX_RUNS;
    pthread_mutex_lock(&POOL.lock);
    struct job *job = &POOL.job;
    job->run = NAMED(project_part, SUFFIX), job->t1 = rows, job->K = K, job->GH = GH;
    job->runs = rows >= 4 * threads ? threads : 1;
    job->cur = X, job->RT = WT, job->Rd = bias, job->pre = out;
    run_job((int)threads);
    pthread_mutex_unlock(&POOL.lock);
}

/* the max over every thread's running max (mx holds one row of N per thread) */
static double FINISH(const REAL *mx, long long N) {
    REAL m = 0;
    for (long long j = 0; j < N; j++) {
        if (mx[j] != mx[j]) return (double)mx[j];
        m = mx[j] > m ? mx[j] : m;
    }
    return (double)m;
}

/* A kernel's tiles: each batch row m0 <= m < m1, units j0 <= j < j1 in tiles of LANES (where
   fewer are left, the last LANES again: a tile's units are computed alike, so the overlap writes
   the same values; a range narrower than a tile takes one partial tile). With one row, the
   tiles go along the steps ta <= t < tb with their states in registers, the RNN's two at a time
   (CELL##_PAIRS: one pass over the row's lines where its block has left the L2). With more,
   the steps go in spans of CELL##_SPAN, each row's tiles along a span in registers (the span's
   rows stay in cache from one tile's pass to the next) or, with spans of one step, step by
   step, every row's tiles in memory order, two at a time, the states through memory. Measured
   on one thread at H = 32 (a kernel's time a row and step, side by side in one process): at
   B = 8 and 32, T = 1024 and 4096, spans of 8 steps took the GRU 46-47 ns and the LSTM 68-74
   ns where step by step took 50-52 and 80-87 (spans of 16 the same, of 32 and 64 up to 134 ns:
   the span's rows leave the cache); the RNN 17-19 ns where step by step took 14-16 (its cheap
   step does not pay for a span's setup); tile by tile along all the steps, each tile's pass
   striding through the block, the RNN took 32-35 ns, and two tiles at a time along the steps
   spill the GRU's and LSTM's registers (95-291 ns). At B = 1, T = 1024, 4096 and 16384, the
   RNN's two tiles at a time took 11.2-13.0 ns where one at a time took 11.4-20.5; the GRU's and
   LSTM's took 5-12% longer than one at a time, and spans changed theirs by under 2%. The kernel
   before the tiles, row by row in memory, took the RNN 17 ns at B = 1, T = 1024. CELL##_tile is
   the cell's tile, exact (LOCAL 0) or in a run from zero (LOCAL 1; 2 keeping the max where P is
   0, for a cell whose fix-up stops early: CELL##_STOP); each kernel is its own
   function (not inlined) so that its restrict pointers hold inside the OpenMP region. */
#define rnn_PAIRS 1
#define gru_PAIRS 0
#define lstm_PAIRS 0
#define rnn_SPAN 1
#define gru_SPAN 8
#define lstm_SPAN 8
#define TILE(CELL, LOCAL, PAIRS, from, to)                                                   \
    for (long long j = j0; j < j1;) {                                                        \
        long long at = j1 - j >= LANES || j1 - j0 < LANES ? j : j1 - LANES;                  \
        if (PAIRS && j1 - j >= 2 * LANES) {                                                  \
            NAMED(CELL##_tile, SUFFIX)(LOCAL, 2, 1, LANES, t0, ta, from, to, B, H, m, j,     \
                                       CELL##_ARGS, mx, P);                                  \
            j += 2 * LANES;                                                                  \
            continue;                                                                        \
        }                                                                                    \
        if (j1 - at >= LANES)                                                                \
            NAMED(CELL##_tile, SUFFIX)(LOCAL, 1, 1, LANES, t0, ta, from, to, B, H, m, at,    \
                                       CELL##_ARGS, mx, P);                                  \
        else                                                                                 \
            NAMED(CELL##_tile, SUFFIX)(LOCAL, 1, 0, j1 - at, t0, ta, from, to, B, H, m, at,  \
                                       CELL##_ARGS, mx, P);                                  \
        j += LANES;                                                                          \
    }
#define TILES(CELL, LOCAL)                                                                   \
    if (m1 - m0 == 1)                                                                        \
        for (long long m = m0; m < m1; m++) TILE(CELL, LOCAL, CELL##_PAIRS, ta, tb)          \
    else if (CELL##_SPAN > 1)                                                                \
        for (long long t = ta; t < tb; t += CELL##_SPAN)                                     \
            for (long long m = m0; m < m1; m++)                                              \
                TILE(CELL, LOCAL, 0, t, t + CELL##_SPAN < tb ? t + CELL##_SPAN : tb)         \
    else                                                                                     \
        for (long long t = ta; t < tb; t++)                                                  \
            for (long long m = m0; m < m1; m++) TILE(CELL, LOCAL, 1, t, t + 1)

#define TWO_FUNCTIONS(CELL, ...)                                                             \
    static __attribute__((noinline)) void NAMED(CELL##_units, SUFFIX)(                       \
        long long t0, long long ta, long long tb, long long B, long long H, long long m0,    \
        long long m1, long long j0, long long j1, __VA_ARGS__, REAL *restrict mx) {          \
        REAL *P = 0;                                                                         \
        TILES(CELL, 0)                                                                       \
    }                                                                                        \
    static __attribute__((noinline)) void NAMED(CELL##_local, SUFFIX)(                       \
        long long t0, long long ta, long long tb, long long B, long long H, long long m0,    \
        long long m1, long long j0, long long j1, __VA_ARGS__, REAL *restrict mx,            \
        REAL *restrict P) {                                                                  \
        TILES(CELL, 1 + CELL##_STOP)                                                         \
    }

/* The head of a cell's tile: K tiles side by side (1 or 2; two only whole), units
   [j, j + K LANES) of batch row m (w of them where not full) over steps ta <= t < tb (of the
   block from t0, in a run from `start`), and the places of step t's rows: p and x (the block's
   product row and the input row, G gate blocks of H each, from unit j) and, for the state at
   offset `at` (from j: the tile's, plus H for the LSTM's c), its rows after the step in cur
   (old) and nxt (out) and its row of P. */
#define TILE_HEAD(CELL, ...)                                                                 \
    static inline __attribute__((always_inline)) void NAMED(CELL##_tile, SUFFIX)(            \
        const int LOCAL, const int K, const int full, long long w, long long t0,             \
        long long start,                                                                     \
        long long ta, long long tb, long long B, long long H, long long m, long long j,      \
        __VA_ARGS__,                                                                         \
        REAL *restrict mx, REAL *restrict P)
#define ROWS(G, N)                                                                           \
    const REAL *p = pre + ((t - t0) * B + m) * (G) * H + j;                                  \
    const REAL *x = xw + (t * B + m) * (G) * H + j;                                          \
    long long after = ((t + 1) * B + m) * (N) + j, P_at = ((t - t0) * B + m) * (N) + j;
#define STEP(k, f, J, at)                                                                    \
    ADVANCE(LOCAL, full, w, &(k), t, start, f, J, cur + after + (at), nxt + after + (at),   \
            LOCAL ? P + P_at + (at) : 0)
#define G_(p) GET(full, w, p)

#define rnn_ARGS pre, xw, Rd, cur, nxt
TILE_HEAD(rnn, const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
          const REAL *restrict cur, REAL *restrict nxt) {
    TRACK h[2];
    VEC Rh[2];
    for (int q = 0; q < K; q++) {
        h[q] = START(LOCAL, full, w, t0, start, ta, B, H, m, j + q * LANES, cur, nxt, mx, P);
        Rh[q] = G_(Rd + j + q * LANES);
    }
    for (long long t = ta; t < tb; t++) {
        ROWS(1, H)
        for (int q = 0; q < K; q++) {
            long long u = q * LANES;
            VEC f = TANH(G_(p + u) + G_(x + u));
            VEC J = ((REAL)1 - f * f) * Rh[q];
            STEP(h[q], f, J, u);
        }
    }
    for (int q = 0; q < K && LOCAL != 1; q++) PUT(full, w, mx + j + q * LANES, h[q].mx);
}
TWO_FUNCTIONS(rnn, const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
              const REAL *restrict cur, REAL *restrict nxt)

double NAMED(rnn, SUFFIX)(long long t0, long long t1, long long B, long long H, long long threads,
                          REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
                          const REAL *restrict cur, REAL *restrict nxt, REAL *restrict mx,
                          REAL *restrict P, REAL *restrict carry,
                          const REAL *restrict RT) {
    SPLIT_OVER_THREADS(rnn, 1, H, pre, xw, Rd, cur, nxt)
}

POOLED(rnn, 1, H, (pre, xw, Rd, cur, nxt),
       REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
       const REAL *restrict cur, REAL *restrict nxt, REAL *restrict mx, REAL *restrict P,
       REAL *restrict carry, const REAL *restrict RT)

#define gru_ARGS pre, xw, Rbh, Rd, cur, nxt
TILE_HEAD(gru, const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rbh,
          const REAL *restrict Rd, const REAL *restrict cur, REAL *restrict nxt) {
    TRACK h[2];
    VEC Rz[2], Rr[2], Rh[2], bh[2];
    for (int q = 0; q < K; q++) {
        long long u = j + q * LANES;
        h[q] = START(LOCAL, full, w, t0, start, ta, B, H, m, u, cur, nxt, mx, P);
        Rz[q] = G_(Rd + u), Rr[q] = G_(Rd + H + u), Rh[q] = G_(Rd + 2 * H + u);
        bh[q] = G_(Rbh + u);
    }
    const REAL one = 1;
    for (long long t = ta; t < tb; t++) {
        ROWS(3, H)
        for (int q = 0; q < K; q++) {
            long long u = q * LANES;
            VEC z = SIGMOID(G_(p + u) + G_(x + u)), r = SIGMOID(G_(p + H + u) + G_(x + H + u));
            VEC rh = G_(p + 2 * H + u) + bh[q];
            VEC n = TANH(G_(x + 2 * H + u) + r * rh);
            VEC d = h[q].prev - n;
            VEC f = n + z * d;
            VEC dn = (one - z) * (one - n * n);
            VEC J = z + d * z * (one - z) * Rz[q] + dn * rh * r * (one - r) * Rr[q]
                    + dn * r * Rh[q];
            STEP(h[q], f, J, u);
        }
    }
    for (int q = 0; q < K && LOCAL != 1; q++) PUT(full, w, mx + j + q * LANES, h[q].mx);
}
TWO_FUNCTIONS(gru, const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rbh,
              const REAL *restrict Rd, const REAL *restrict cur, REAL *restrict nxt)

double NAMED(gru, SUFFIX)(long long t0, long long t1, long long B, long long H, long long threads,
                          REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rbh,
                          const REAL *restrict Rd, const REAL *restrict cur, REAL *restrict nxt,
                          REAL *restrict mx, REAL *restrict P, REAL *restrict carry,
                          const REAL *restrict RT) {
    SPLIT_OVER_THREADS(gru, 3, H, pre, xw, Rbh, Rd, cur, nxt)
}

POOLED(gru, 3, H, (pre, xw, Rbh, Rd, cur, nxt),
       REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rbh, const REAL *restrict Rd,
       const REAL *restrict cur, REAL *restrict nxt, REAL *restrict mx, REAL *restrict P,
       REAL *restrict carry, const REAL *restrict RT)

#define lstm_ARGS pre, xw, Rd, cur, nxt
TILE_HEAD(lstm, const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
          const REAL *restrict cur, REAL *restrict nxt) {
    TRACK h[2], c[2];
    VEC Ri[2], Ro[2], Rf[2], Rg[2];
    for (int q = 0; q < K; q++) {
        long long u = j + q * LANES;
        h[q] = START(LOCAL, full, w, t0, start, ta, B, 2 * H, m, u, cur, nxt, mx, P);
        c[q] = START(LOCAL, full, w, t0, start, ta, B, 2 * H, m, H + u, cur, nxt, mx, P);
        Ri[q] = G_(Rd + u), Ro[q] = G_(Rd + H + u), Rf[q] = G_(Rd + 2 * H + u);
        Rg[q] = G_(Rd + 3 * H + u);
    }
    const REAL one = 1;
    for (long long t = ta; t < tb; t++) {
        ROWS(4, 2 * H)
        for (int q = 0; q < K; q++) {
            long long u = q * LANES;
            VEC i = SIGMOID(G_(p + u) + G_(x + u)), o = SIGMOID(G_(p + H + u) + G_(x + H + u));
            VEC fg = SIGMOID(G_(p + 2 * H + u) + G_(x + 2 * H + u));
            VEC g = TANH(G_(p + 3 * H + u) + G_(x + 3 * H + u));
            VEC c_prev = c[q].prev;
            VEC c_new = fg * c_prev + i * g;
            VEC tc = TANH(c_new);
            VEC dc = g * i * (one - i) * Ri[q] + c_prev * fg * (one - fg) * Rf[q]
                     + i * (one - g * g) * Rg[q];
            VEC Jh = tc * o * (one - o) * Ro[q] + o * (one - tc * tc) * dc;
            STEP(h[q], o * tc, Jh, u);
            STEP(c[q], c_new, fg, H + u);
        }
    }
    for (int q = 0; q < K && LOCAL != 1; q++)
        PUT(full, w, mx + j + q * LANES, h[q].mx), PUT(full, w, mx + H + j + q * LANES, c[q].mx);
}
TWO_FUNCTIONS(lstm, const REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
              const REAL *restrict cur, REAL *restrict nxt)

double NAMED(lstm, SUFFIX)(long long t0, long long t1, long long B, long long H, long long threads,
                          REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
                          const REAL *restrict cur, REAL *restrict nxt, REAL *restrict mx,
                          REAL *restrict P, REAL *restrict carry,
                          const REAL *restrict RT) {
    SPLIT_OVER_THREADS(lstm, 4, 2 * H, pre, xw, Rd, cur, nxt)
}

POOLED(lstm, 4, 2 * H, (pre, xw, Rd, cur, nxt),
       REAL *restrict pre, const REAL *restrict xw, const REAL *restrict Rd,
       const REAL *restrict cur, REAL *restrict nxt, REAL *restrict mx, REAL *restrict P,
       REAL *restrict carry, const REAL *restrict RT)

#undef PASTE
#undef NAMED
#undef EXP
#undef SIGMOID
#undef TANH
#undef VEC
#undef MASK
#undef SELECT
#undef LANES
#undef SPLAT
#undef TRACK
#undef START
#undef ADVANCE
#undef TILE
#undef SHORT_ROW
#undef GET
#undef PUT
#undef LOAD_SOME
#undef STORE_SOME
#undef NATIVE
#undef ABS
#undef TILES
#undef TILE_HEAD
#undef ROWS
#undef G_
#undef FIX_UP
#undef CARRIES
#undef CARRIED
#undef CHUNK
#undef STEP
#undef TWO_FUNCTIONS
#undef MIN_RUN
#undef ROWS_A_THREAD
#undef rnn_SHARE
#undef rnn_SPAN
#undef rnn_PAIRS
#undef gru_PAIRS
#undef lstm_PAIRS
#undef gru_SPAN
#undef lstm_SPAN
#undef gru_SHARE
#undef lstm_SHARE
#undef rnn_STOP
#undef gru_STOP
#undef lstm_STOP
#undef rnn_ARGS
#undef gru_ARGS
#undef lstm_ARGS
#undef FINISH
#undef UNITS
#undef SPLIT_OVER_THREADS
#undef POOLED
#undef UNPAREN
#undef POOLED_RBH
#undef rnn_RBH
#undef gru_RBH
#undef lstm_RBH
#undef PRODUCT
#undef MICRO
#undef OWN_PRODUCT
#undef PRODUCT_ROWS
#undef PRODUCT_VECS
