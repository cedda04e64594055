/* tt_sgd_tiled.c - the row-tiled weight update (mirrors tintin.compile.update.fused_weight_update):
 * the int32 gradient is computed a few rows at a time into a small workspace and applied at once,
 * bit-identical to tt_sgd_update_weight_s8/_s16 (and the rows variants) on the whole gradient. */
#include "tt_optim.h"
#include "tt_internal.h"

/* ---- row-tiled weight update -------------------------------------------------------------------- */

typedef struct {
    tt_delta_rule_t d; /* the element step, shared with tt_sgd.c */
    uint8_t have_mult; /* d.mult is known (set from the first tile's gradient scale) */
} tile_rule_t;

static int64_t weight_at(const tt_tiled_update_t *u, size_t i)
{
    return u->w8 != NULL ? (int64_t)u->w8[i] : (int64_t)u->w16[i];
}

static void set_weight(const tt_tiled_update_t *u, size_t i, int32_t v)
{
    if (u->w8 != NULL) {
        u->w8[i] = (int8_t)v;
    } else {
        u->w16[i] = (int16_t)v;
    }
}

/* Gradient tile t into u->tile; fills the aligned multiplier on first use. */
static tt_status_t tile_gradient(const tt_tiled_update_t *u, tile_rule_t *r, const tt_sgd_config_t *cfg,
                                 size_t r0, size_t cnt)
{
    tt_scale_t gs;
    tt_status_t st = u->grad(u->grad_ctx, r0, cnt, u->tile, &gs);
    if (st != TT_OK || r->d.niti || r->have_mult) {
        return st;
    }
    {
        tt_multiplier_t m;
        st = tt_ratio_multiplier(tt_scale_div(tt_scale_mul(cfg->lr, gs), *u->w_scale), &m);
        if (st != TT_OK) {
            return st;
        }
        st = tt_divide_multiplier(m, cfg->batch_size, &r->d.mult);
        if (st != TT_OK) {
            return st;
        }
    }
    r->d.fine.m = r->d.mult.m;
    r->d.fine.n = r->d.mult.n - TT_MOMENTUM_FRAC_BITS;
    r->have_mult = 1;
    return TT_OK;
}

/* The common case in one tight loop per row: int8 weights, aligned rule, stochastic rounding, no
 * momentum, |g| * M <= 2**30 and n in [1, 31] (32-bit arithmetic gives the general path's result).
 * A zero gradient leaves the weight unchanged whatever the draw, so its draw is skipped. */
TT_NOINLINE static uint32_t row_fast_s8_stochastic(int8_t *w, int32_t *t, size_t cols, int32_t m, uint8_t n, uint32_t draw_x,
                                                    uint8_t saturate, int32_t limit)
{
    uint32_t amax = 0;
    size_t k;
    for (k = 0; k < cols; ++k, draw_x += (uint32_t)TT_GOLDEN32) {
        int32_t g = t[k], nw = w[k];
        if (g != 0) {
            int32_t p = g * m, sm = -(int32_t)((uint32_t)p >> 31);
            uint32_t mag = (uint32_t)((p ^ sm) - sm), q, a;
            /* from n = 32 on a magnitude below 2**(n-32) rounds to 0 whatever the draw */
            q = (n >= 32u && (mag >> (n - 32u)) == 0) ? 0u : tt_sr_mag32(mag, n, draw_x);
            nw -= ((int32_t)q ^ sm) - sm;
            a = tt_mag32(nw);
            if (a > amax) {
                amax = a;
            }
        }
        if (saturate) {
            w[k] = (int8_t)tt_clip32(nw, limit);
        } else {
            t[k] = nw;
        }
    }
    return saturate ? 0u : amax;
}

/* New values w - delta of the tile's rows (tile holds its gradient): saturating tiles are written
 * at once; otherwise they are stored (int32-saturated) in the tile and max |w - delta| over the
 * changed elements returned (unchanged ones are in range). */
static uint64_t tile_new_values(const tt_tiled_update_t *u, const tile_rule_t *r, size_t r0, size_t cnt,
                                uint8_t saturate, int32_t limit)
{
    size_t j, k, cols = u->cols;
    uint64_t amax = 0;
    uint32_t m = (uint32_t)r->d.mult.m;
    uint32_t gmax = 0;
    uint8_t fast = 0;
    if (!r->d.niti && !r->d.momentum && r->d.mult.n >= 1 && m != 0 &&
        (r->d.mult.n <= 31 || (r->d.mult.n <= 62 && u->w8 != NULL && r->d.rounding == TT_ROUND_STOCHASTIC))) {
        gmax = tt_max_abs_s32(u->tile, cnt * cols);
        fast = gmax <= ((uint32_t)1 << 30) / m; /* |g| * M <= 2**30: 32-bit arithmetic, same result */
    }
    for (j = 0; j < cnt; ++j) {
        size_t base = tt_selected_row(u->rows, r0 + j) * cols;
        int32_t *t = u->tile + j * cols;
        uint32_t index = (uint32_t)((r0 + j) * cols);
        if (fast && u->w8 != NULL && r->d.rounding == TT_ROUND_STOCHASTIC) {
            uint32_t a = row_fast_s8_stochastic(u->w8 + base, t, cols, (int32_t)m, (uint8_t)r->d.mult.n,
                                                r->d.key + index * (uint32_t)TT_GOLDEN32, saturate, limit);
            if (a > amax) {
                amax = a;
            }
        } else if (fast) {
            int32_t mm = (int32_t)m;
            uint8_t n = (uint8_t)r->d.mult.n;
            uint32_t draw_x = r->d.key + index * (uint32_t)TT_GOLDEN32;
            for (k = 0; k < cols; ++k) {
                int32_t g = t[k] * mm, d;
                int32_t nw;
                uint32_t a;
                if (r->d.rounding == TT_ROUND_STOCHASTIC) {
                    d = tt_rs32_stochastic(g, n, draw_x);
                } else if (r->d.rounding == TT_ROUND_PSEUDO_STOCHASTIC) {
                    d = tt_rs32_pseudo(g, n);
                } else {
                    d = tt_rs32_nearest(g, n);
                }
                draw_x += (uint32_t)TT_GOLDEN32;
                nw = (int32_t)weight_at(u, base + k) - d;
                a = tt_mag32(nw);
                if (saturate) {
                    set_weight(u, base + k, tt_clip32(nw, limit));
                } else {
                    t[k] = nw;
                    if (a > amax) {
                        amax = a;
                    }
                }
            }
        } else {
            for (k = 0; k < cols; ++k) {
                int64_t *v = u->momentum != NULL ? u->momentum + (r0 + j) * cols + k : NULL;
                int64_t nw = tt_sub_wrap64(weight_at(u, base + k), tt_delta_at(&r->d, t[k], v, index + (uint32_t)k));
                uint64_t a = tt_mag64(nw);
                if (saturate) {
                    set_weight(u, base + k, (int32_t)tt_clip64(nw, limit));
                } else {
                    t[k] = tt_sat32(nw);
                    if (a > amax) {
                        amax = a;
                    }
                }
            }
        }
    }
    return amax;
}

/* Write a tile of new values that fit the weight range. */
static void commit_tile(const tt_tiled_update_t *u, size_t r0, size_t cnt)
{
    size_t j, k;
    for (j = 0; j < cnt; ++j) {
        size_t base = tt_selected_row(u->rows, r0 + j) * u->cols;
        const int32_t *t = u->tile + j * u->cols;
        if (u->w8 != NULL) {
            int8_t *w = u->w8 + base;
            for (k = 0; k < u->cols; ++k) {
                w[k] = (int8_t)t[k];
            }
        } else {
            int16_t *w = u->w16 + base;
            for (k = 0; k < u->cols; ++k) {
                w[k] = (int16_t)t[k];
            }
        }
    }
}

/* ---- batch-1 fully connected layer: the gradient is the outer product err x ------------------ */

/* The nonzero inputs, once per update: values xs[j] at columns ks[j], the positive ones from the
 * front (returned: their count) and the negative ones from the back of xs[0..nnz). Every row
 * skips the zero inputs (their gradient is 0: the weight cannot change, whatever its draw); within
 * one group the sign of the gradient is the row's. */
static size_t rank1_nonzero(const int8_t *x, size_t cols, int8_t *xs, uint16_t *ks, size_t *nnz)
{
    size_t k, lo = 0, hi = cols;
    for (k = 0; k < cols; ++k) {
        int8_t v = x[k];
        if (v > 0) {
            xs[lo] = v;
            ks[lo++] = (uint16_t)k;
        } else if (v < 0) {
            xs[--hi] = v;
            ks[hi] = (uint16_t)k;
        }
    }
    /* move the negative group next to the positive one */
    for (k = hi; k < cols; ++k) {
        xs[lo + k - hi] = xs[k];
        ks[lo + k - hi] = ks[k];
    }
    *nnz = lo + cols - hi;
    return lo;
}

/* delta = round(p / 2**n), p = em * x, stochastic with the weyl32 draw u, 1 <= n <= 31 and
 * |p| <= 2**30 (|p| + r < 2**32): sign-magnitude with masks, no shift of a negative number. */
static inline int32_t rank1_delta(int32_t p, uint32_t u, uint8_t n)
{
    int32_t sm = -(int32_t)((uint32_t)p >> 31);
    uint32_t q = ((uint32_t)((p ^ sm) - sm) + (u >> (32u - n))) >> n;
    return ((int32_t)q ^ sm) - sm;
}

/* A run of one row's nonzero inputs whose gradients share a sign: the magnitude of element j is
 * mag = mag_m * xs[j] >= 0, its rounded step q = STEP (u = rowkey + ks[j] * G) is subtracted (_sub:
 * positive gradients, values can only fall below -127) or added (_add: they can only rise above
 * 127). New values are stored wrapped to int8; the result is negative when one of them left the
 * range (OUT_OF_RANGE < 0 for it). */
#if defined(__GNUC__)
#define TT_RANK1_RUN_INLINE static inline __attribute__((always_inline))
#else
#define TT_RANK1_RUN_INLINE static inline
#endif
#define TT_RANK1_RUN(NAME, OP, OUT_OF_RANGE, STEP)                                                           \
    TT_RANK1_RUN_INLINE int32_t NAME(int32_t mag_m, int8_t *w, const int8_t *xs, size_t cnt, const uint16_t *ks, \
                                    uint32_t rowkey, uint8_t n)                                              \
    {                                                                                                        \
        uint8_t sh = (uint8_t)(32u - n);                                                                     \
        int32_t flags = 0;                                                                                   \
        size_t j;                                                                                            \
        for (j = 0; j < cnt; ++j) {                                                                          \
            uint32_t k = ks[j], mag = (uint32_t)(mag_m * xs[j]), u = rowkey + k * (uint32_t)TT_GOLDEN32;     \
            uint32_t q = STEP;                                                                               \
            int32_t nw = (int32_t)w[k] OP (int32_t)q;                                                        \
            w[k] = (int8_t)nw;                                                                               \
            flags |= OUT_OF_RANGE;                                                                           \
        }                                                                                                    \
        (void)sh;                                                                                            \
        return flags;                                                                                        \
    }
/* 1 <= n <= 31 */
#define TT_RANK1_STEP ((mag + (u >> sh)) >> n)
/* 32 <= n <= 62 (a small error against the weight scale, late in training), called with n - 32:
 * the step is 0 or 1, the carry of (mag >> (n - 32)) + u (tt_sr_mag32) */
#define TT_RANK1_STEP_HI ((uint32_t)((mag >> n) + u) < u ? 1u : 0u)
TT_RANK1_RUN(rank1_run_sub_s8, -, nw + 127, TT_RANK1_STEP)
TT_RANK1_RUN(rank1_run_add_s8, +, 127 - nw, TT_RANK1_STEP)
TT_RANK1_RUN(rank1_run_hi_sub_s8, -, nw + 127, TT_RANK1_STEP_HI)
TT_RANK1_RUN(rank1_run_hi_add_s8, +, 127 - nw, TT_RANK1_STEP_HI)

#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__)
/* Cores with SMLAL (Cortex-M3, M4, M33), 8 <= n <= 31 (s = 32 - n <= 24, so |xs[j]| * 2**s < 2**31):
 * the rounded step and the new value in one long multiply-accumulate. With mag = mag_m * xs[j] and
 * the draw u = rowkey + k * G, the high word of w * 2**32 + u + mag * 2**s is
 * w + ((mag + (u >> s)) >> n) (the low s bits of u never carry into it), and the high word of
 * w * 2**32 + ~u - mag * 2**s is w - ((mag + (u >> s)) >> n) (the top n bits of ~u are
 * 2**n - 1 - (u >> s)); ~u = ~rowkey - k * G. */
#define TT_RANK1_LONG 1
static inline int32_t rank1_smlal_hi(int32_t w, uint32_t lo, int32_t a, int32_t b)
{
    int64_t acc = (int64_t)(((uint64_t)(uint32_t)w << 32) | lo);
    acc += (int64_t)a * (int64_t)b;
    return (int32_t)(uint32_t)((uint64_t)acc >> 32);
}
#define TT_RANK1_LONG_RUN(NAME, KEY, MUL, OUT_OF_RANGE)                                                     \
    TT_RANK1_RUN_INLINE int32_t NAME(int32_t mag_m, int8_t *w, const int8_t *xs, size_t cnt, const uint16_t *ks, \
                                     uint32_t rowkey, int32_t p2s)                                           \
    {                                                                                                        \
        int32_t flags = 0;                                                                                   \
        size_t j;                                                                                            \
        for (j = 0; j < cnt; ++j) {                                                                          \
            uint32_t k = ks[j];                                                                              \
            int32_t nw = rank1_smlal_hi(w[k], KEY, MUL, (int32_t)xs[j] * p2s);                               \
            w[k] = (int8_t)nw;                                                                               \
            flags |= OUT_OF_RANGE;                                                                           \
        }                                                                                                    \
        return flags;                                                                                        \
    }
TT_RANK1_LONG_RUN(rank1_long_sub_s8, ~rowkey - k * (uint32_t)TT_GOLDEN32, -mag_m, nw + 127)
TT_RANK1_LONG_RUN(rank1_long_add_s8, rowkey + k * (uint32_t)TT_GOLDEN32, mag_m, 127 - nw)
#if defined(__GNUC__) && defined(__OPTIMIZE__) && !defined(__OPTIMIZE_SIZE__)
/* The same runs when mag_m < 2**(n - 1), in assembly (built at -O2; -O0 and -Os keep the loops
 * above): the row's factor c = -+mag_m * 2**s then fits 32 bits and xs[j] * c is the product above
 * (mag * 2**s), so no shift per weight, and the loads walk ks and xs by post-increment: nine
 * instructions per changed weight, two weights per turn. KEYOP forms the low word from the key:
 * mls (~rowkey - k * G, sub runs) or mla (rowkey + k * G, add runs); FLAGOP makes the range flag
 * negative for a value out of range: add (nw + 127, sub runs) or rsb (127 - nw, add runs). */
#define TT_RANK1_PRE 1
#define TT_RANK1_PRE_ONE(KEYOP, FLAGOP)                    \
    "ldrh %[k], [%[pk]], #2\n\t"                           \
    "ldrsb %[x], [%[px]], #1\n\t"                          \
    "ldrsb %[v], [%[w], %[k]]\n\t"                         \
    KEYOP " %[lo], %[g], %[k], %[key]\n\t"                 \
    "smlal %[lo], %[v], %[x], %[c]\n\t"                    \
    "strb %[v], [%[w], %[k]]\n\t"                          \
    FLAGOP " %[v], %[v], #127\n\t"                         \
    "orr %[f], %[f], %[v]\n\t"
#define TT_RANK1_PRE_RUN(NAME, KEYOP, FLAGOP)                                                                 \
    TT_RANK1_RUN_INLINE int32_t NAME(int32_t c, int8_t *w, const int8_t *xs, size_t cnt, const uint16_t *ks,   \
                                     uint32_t key)                                                           \
    {                                                                                                        \
        const int8_t *end = xs + (cnt & ~(size_t)1u);                                                        \
        int32_t flags = 0;                                                                                   \
        uint32_t k, x, v, lo;                                                                                \
        if (cnt & 1u) {                                                                                      \
            __asm__(TT_RANK1_PRE_ONE(KEYOP, FLAGOP)                                                          \
                    : [k] "=&r"(k), [x] "=&r"(x), [v] "=&r"(v), [lo] "=&r"(lo), [pk] "+r"(ks), [px] "+r"(xs), \
                      [f] "+r"(flags)                                                                        \
                    : [w] "r"(w), [g] "r"(TT_GOLDEN32), [key] "r"(key), [c] "r"(c)                           \
                    : "memory");                                                                             \
            end = xs + (cnt & ~(size_t)1u);                                                                  \
        }                                                                                                    \
        if (xs != end) {                                                                                     \
            __asm__("1:\n\t" TT_RANK1_PRE_ONE(KEYOP, FLAGOP) TT_RANK1_PRE_ONE(KEYOP, FLAGOP)                 \
                    "cmp %[px], %[end]\n\t"                                                                  \
                    "bne 1b\n\t"                                                                             \
                    : [k] "=&r"(k), [x] "=&r"(x), [v] "=&r"(v), [lo] "=&r"(lo), [pk] "+r"(ks), [px] "+r"(xs), \
                      [f] "+r"(flags)                                                                        \
                    : [w] "r"(w), [g] "r"(TT_GOLDEN32), [key] "r"(key), [c] "r"(c), [end] "r"(end)           \
                    : "cc", "memory");                                                                       \
        }                                                                                                    \
        return flags;                                                                                        \
    }
TT_RANK1_PRE_RUN(rank1_pre_sub_s8, "mls", "add")
TT_RANK1_PRE_RUN(rank1_pre_add_s8, "mla", "rsb")
/* Two rows whose runs go the same way (their errors have the same sign) over the same inputs: each
 * input's column and value are loaded once for both rows, two inputs per turn (31 instructions per
 * four changed weights, against 36 in two single runs). A value out of range leaves the loop at
 * once (FLAGOP sets the N flag for it): the result is 1 when row 1's value left the range (row 2's
 * value of that input is not written yet), 2 when row 2's did, else 0, and *pxs points past that
 * input. Thirteen live registers and the end pointer in memory, so that the loop also fits when the
 * frame pointer is kept. cnt >= 1. */
#define TT_RANK1_PAIR_ONE(KEYOP, FLAGOP)                   \
    "ldrh %[k], [%[pk]], #2\n\t"                           \
    "ldrsb %[x], [%[px]], #1\n\t"                          \
    "ldrsb %[v], [%[w1], %[k]]\n\t"                        \
    KEYOP " %[lo], %[g], %[k], %[key1]\n\t"                \
    "smlal %[lo], %[v], %[x], %[c1]\n\t"                   \
    "strb %[v], [%[w1], %[k]]\n\t"                         \
    FLAGOP " %[v], %[v], #127\n\t"                         \
    "bmi 3f\n\t"                                           \
    "ldrsb %[v], [%[w2], %[k]]\n\t"                        \
    KEYOP " %[lo], %[g], %[k], %[key2]\n\t"                \
    "smlal %[lo], %[v], %[x], %[c2]\n\t"                   \
    "strb %[v], [%[w2], %[k]]\n\t"                         \
    FLAGOP " %[v], %[v], #127\n\t"                         \
    "bmi 4f\n\t"
/* the loops' exit: k = 0 when every value fits, 1 or 2 from the range checks of row 1 or row 2 */
#define TT_RANK1_PAIR_EXIT                                 \
    "movs %[k], #0\n\t"                                    \
    "b 5f\n"                                               \
    "3:\n\t"                                               \
    "movs %[k], #1\n\t"                                    \
    "b 5f\n"                                               \
    "4:\n\t"                                               \
    "movs %[k], #2\n"                                      \
    "5:\n\t"
#define TT_RANK1_PAIR_OUTS                                                                               \
    [k] "=&r"(k), [x] "=&r"(x), [v] "=&r"(v), [lo] "=&r"(lo), [pk] "+r"(ks), [px] "+r"(xs)
#define TT_RANK1_PAIR_INS                                                                                \
    [w1] "r"(w1), [w2] "r"(w2), [g] "r"(TT_GOLDEN32), [key1] "r"(key1), [key2] "r"(key2), [c1] "r"(c1), \
        [c2] "r"(c2)
#define TT_RANK1_PAIR_RUN(NAME, KEYOP, FLAGOP)                                                                \
    TT_RANK1_RUN_INLINE uint32_t NAME(int32_t c1, int32_t c2, int8_t *w1, int8_t *w2, const int8_t **pxs,        \
                                      size_t cnt, const uint16_t *ks, uint32_t key1, uint32_t key2)          \
    {                                                                                                        \
        const int8_t *xs = *pxs, *end = xs + cnt; /* an odd first input alone, then two per turn */         \
        uint32_t k, x, v, lo;                                                                                \
        if (cnt & 1u) {                                                                                      \
            __asm__(TT_RANK1_PAIR_ONE(KEYOP, FLAGOP) TT_RANK1_PAIR_EXIT                                      \
                    : TT_RANK1_PAIR_OUTS                                                                     \
                    : TT_RANK1_PAIR_INS                                                                      \
                    : "cc", "memory");                                                                       \
            if (k != 0u || xs == end) {                                                                      \
                *pxs = xs;                                                                                   \
                return k;                                                                                    \
            }                                                                                                \
        }                                                                                                    \
        __asm__("1:\n\t" TT_RANK1_PAIR_ONE(KEYOP, FLAGOP) TT_RANK1_PAIR_ONE(KEYOP, FLAGOP)                   \
                "ldr %[v], %[end]\n\t"                                                                       \
                "cmp %[px], %[v]\n\t"                                                                        \
                "bne 1b\n\t" TT_RANK1_PAIR_EXIT                                                              \
                : TT_RANK1_PAIR_OUTS                                                                         \
                : TT_RANK1_PAIR_INS, [end] "m"(end)                                                          \
                : "cc", "memory");                                                                           \
        *pxs = xs;                                                                                           \
        return k;                                                                                            \
    }
TT_RANK1_PAIR_RUN(rank1_pair_sub_s8, "mls", "adds")
TT_RANK1_PAIR_RUN(rank1_pair_add_s8, "mla", "rsbs")
#else
#define TT_RANK1_PRE 0
#endif
#else
#define TT_RANK1_LONG 0
#define TT_RANK1_PRE 0
#endif

#if defined(__ARM_ARCH_6M__) && defined(__GNUC__) && defined(__OPTIMIZE__) && !defined(__OPTIMIZE_SIZE__)
/* Cortex-M0 (ARMv6-M: no long multiply; shifts, multiplies and register-offset loads on r0-r7
 * only), 1 <= n <= 31: TT_RANK1_RUN's loop in assembly, 20 instructions per changed weight (the
 * compiler expands k * G into a chain of shifts and adds and keeps the loop's values on the stack).
 * The draw u = rowkey + k * G (G from a literal), then q = ((u >> sh) + mag) >> n, mag = mag_m *
 * xs[j]; OP is subs (sub run) or adds (add run). The loop stops after a new value out of range
 * (CHECK branches to 3f); the caller runs it again from the next element. It needs all eight low
 * registers: seven operands are bound to r0-r6 and r7 (the frame pointer when one is kept) is saved
 * on the stack around the loop, which uses it as its scratch register. */
#define TT_RANK1_M0 1
#define TT_RANK1_M0_RUN(NAME, OP, CHECK)                                                                     \
    TT_RANK1_RUN_INLINE int32_t NAME(int32_t mag_m, int8_t *w, const int8_t *xs, size_t cnt, const uint16_t *ks, \
                                     uint32_t rowkey, uint8_t n)                                             \
    {                                                                                                        \
        register const int8_t *xe __asm__("r5") = xs + cnt;                                                  \
        register int8_t *wr __asm__("r6") = w;                                                               \
        register const uint16_t *pk __asm__("r3") = ks;                                                      \
        register int32_t i __asm__("r4") = -(int32_t)cnt;                                                    \
        register uint32_t k __asm__("r0"), u __asm__("r1"), x __asm__("r2");                                 \
        int32_t flags = 0;                                                                                   \
        uint32_t sh = 32u - n, nn = n;                                                                       \
        while (i != 0) {                                                                                     \
            __asm__(".syntax unified\n\t"                                                                    \
                    "push {r7}\n"                                                                            \
                    "1:\n\t"                                                                                 \
                    "ldrh %[k], [%[pk]]\n\t"                                                                 \
                    "adds %[pk], #2\n\t"                                                                     \
                    "ldrsb %[x], [%[xe], %[i]]\n\t"                                                          \
                    "mov r7, %[mm]\n\t"                                                                      \
                    "muls %[x], r7\n\t"                                                                      \
                    "ldr %[u], 4f\n\t"                                                                       \
                    "muls %[u], %[k]\n\t"                                                                    \
                    "add %[u], %[rk]\n\t"                                                                    \
                    "mov r7, %[sh]\n\t"                                                                      \
                    "lsrs %[u], r7\n\t"                                                                      \
                    "adds %[u], %[x]\n\t"                                                                    \
                    "mov r7, %[nn]\n\t"                                                                      \
                    "lsrs %[u], r7\n\t"                                                                      \
                    "ldrsb r7, [%[w], %[k]]\n\t"                                                             \
                    OP " r7, %[u]\n\t"                                                                        \
                    "strb r7, [%[w], %[k]]\n\t"                                                              \
                    CHECK                                                                                    \
                    "adds %[i], #1\n\t"                                                                      \
                    "bne 1b\n\t"                                                                             \
                    "movs %[x], #0\n\t"                                                                      \
                    "b 5f\n\t"                                                                               \
                    "3:\n\t"                                                                                 \
                    "adds %[i], #1\n\t"                                                                      \
                    "movs %[x], #1\n\t"                                                                      \
                    "negs %[x], %[x]\n\t"                                                                    \
                    "b 5f\n\t"                                                                               \
                    ".p2align 2\n"                                                                           \
                    "4:\n\t"                                                                                 \
                    ".word 0x9E3779B9\n"                                                                     \
                    "5:\n\t"                                                                                 \
                    "pop {r7}\n"                                                                             \
                    ".syntax divided\n"                                                                      \
                    : [k] "=&l"(k), [u] "=&l"(u), [x] "=&l"(x), [pk] "+l"(pk), [i] "+l"(i)                   \
                    : [xe] "l"(xe), [w] "l"(wr), [mm] "h"(mag_m), [rk] "h"(rowkey), [sh] "h"(sh), [nn] "h"(nn) \
                    : "cc", "memory");                                                                       \
            flags |= (int32_t)x;                                                                             \
        }                                                                                                    \
        return flags;                                                                                        \
    }
/* sub run: a value can only fall below -127 (nw + 127 < 0); add run: rise above 127 */
TT_RANK1_M0_RUN(rank1_m0_sub_s8, "subs", "adds r7, #127\n\tbmi 3f\n\t")
TT_RANK1_M0_RUN(rank1_m0_add_s8, "adds", "cmp r7, #127\n\tbgt 3f\n\t")
#else
#define TT_RANK1_M0 0
#endif

/* One row: the positive inputs xs[0..npos), then the negative ones, each as one run (both loops
 * in this one function: one call per changed row). Returns 1 when a new value left the int8 range
 * (the row is then undone by rank1_row_undo_s8). */
TT_NOINLINE static uint8_t rank1_row_s8(int32_t em, int8_t *w, const int8_t *xs, size_t npos, size_t nnz, const uint16_t *ks,
                            uint32_t rowkey, uint8_t n)
{
    int32_t aem = em < 0 ? -em : em, flags;
    /* positive inputs: the gradient has em's sign; negative inputs: the opposite */
    if (n >= 32u) {
        uint8_t s = (uint8_t)(n - 32u);
        flags = em > 0 ? rank1_run_hi_sub_s8(aem, w, xs, npos, ks, rowkey, s)
                       : rank1_run_hi_add_s8(aem, w, xs, npos, ks, rowkey, s);
        flags |= em < 0 ? rank1_run_hi_sub_s8(-aem, w, xs + npos, nnz - npos, ks + npos, rowkey, s)
                        : rank1_run_hi_add_s8(-aem, w, xs + npos, nnz - npos, ks + npos, rowkey, s);
        return flags < 0;
    }
#if TT_RANK1_LONG
#if TT_RANK1_PRE
    if (n >= 8u && (uint32_t)aem < ((uint32_t)1 << (n - 1u))) {
        int32_t c = (int32_t)((uint32_t)aem << (32u - n)); /* < 2**31 */
        flags = em > 0 ? rank1_pre_sub_s8(-c, w, xs, npos, ks, ~rowkey) : rank1_pre_add_s8(c, w, xs, npos, ks, rowkey);
        flags |= em < 0 ? rank1_pre_sub_s8(c, w, xs + npos, nnz - npos, ks + npos, ~rowkey)
                        : rank1_pre_add_s8(-c, w, xs + npos, nnz - npos, ks + npos, rowkey);
        return flags < 0;
    }
#endif
    if (n >= 8u) {
        int32_t p2s = (int32_t)((uint32_t)1 << (32u - n));
        flags = em > 0 ? rank1_long_sub_s8(aem, w, xs, npos, ks, rowkey, p2s)
                       : rank1_long_add_s8(aem, w, xs, npos, ks, rowkey, p2s);
        flags |= em < 0 ? rank1_long_sub_s8(-aem, w, xs + npos, nnz - npos, ks + npos, rowkey, p2s)
                        : rank1_long_add_s8(-aem, w, xs + npos, nnz - npos, ks + npos, rowkey, p2s);
        return flags < 0;
    }
#endif
#if TT_RANK1_M0
    flags = em > 0 ? rank1_m0_sub_s8(aem, w, xs, npos, ks, rowkey, n) : rank1_m0_add_s8(aem, w, xs, npos, ks, rowkey, n);
    flags |= em < 0 ? rank1_m0_sub_s8(-aem, w, xs + npos, nnz - npos, ks + npos, rowkey, n)
                    : rank1_m0_add_s8(-aem, w, xs + npos, nnz - npos, ks + npos, rowkey, n);
    return flags < 0;
#endif
    flags = em > 0 ? rank1_run_sub_s8(aem, w, xs, npos, ks, rowkey, n) : rank1_run_add_s8(aem, w, xs, npos, ks, rowkey, n);
    flags |= em < 0 ? rank1_run_sub_s8(-aem, w, xs + npos, nnz - npos, ks + npos, rowkey, n)
                    : rank1_run_add_s8(-aem, w, xs + npos, nnz - npos, ks + npos, rowkey, n);
    return flags < 0;
}

/* Undo rank1_row_s8 (the same deltas added back: exact through the int8 wrap-around); returns
 * max |w - delta| over the row's new values out of range. */
TT_NOINLINE static uint32_t rank1_row_undo_s8(int32_t em, int8_t *w, const int8_t *xs, size_t nnz,
                                              const uint16_t *ks, uint32_t rowkey, uint8_t n)
{
    uint32_t amax = 0;
    size_t j;
    for (j = 0; j < nnz; ++j) {
        uint32_t k = ks[j];
        int32_t p = em * xs[j], sm = -(int32_t)((uint32_t)p >> 31); /* any 1 <= n <= 62 */
        int32_t d = ((int32_t)tt_sr_mag32((uint32_t)((p ^ sm) - sm), n, rowkey + k * (uint32_t)TT_GOLDEN32) ^ sm) - sm;
        int32_t old = (int8_t)((uint32_t)(int32_t)w[k] + (uint32_t)d), nw = old - d;
        w[k] = (int8_t)old;
        if ((uint32_t)(nw + 127) > 254u) {
            uint32_t a = tt_mag32(nw);
            amax = a > amax ? a : amax;
        }
    }
    return amax;
}

/* Saturating row, 1 <= n <= 62 (from n = 32 on the result is 0 or +-1: tt_sr_mag32). */
TT_NOINLINE static void rank1_row_sat_s8(int8_t *w, const int8_t *xs, const uint16_t *ks, size_t nnz, int32_t em,
                                         uint32_t rowkey, uint8_t n, int32_t limit)
{
    size_t j;
    for (j = 0; j < nnz; ++j) {
        uint32_t k = ks[j];
        int32_t p = em * xs[j], sm = -(int32_t)((uint32_t)p >> 31);
        uint32_t mag = (uint32_t)((p ^ sm) - sm), q;
        if (n >= 32u && (mag >> (n - 32u)) == 0) {
            continue; /* from n = 32 on this rounds to 0 whatever the draw */
        }
        q = tt_sr_mag32(mag, n, rowkey + k * (uint32_t)TT_GOLDEN32);
        w[k] = (int8_t)tt_clip32((int32_t)w[k] - (((int32_t)q ^ sm) - sm), limit);
    }
}

#if TT_RANK1_PRE
/* The rounded steps of a run applied without a range check (the rest of a pair of rows after a
 * value left the range, before the undo): w[ks[j]] gets the high word of w * 2**32 + lo + xs[j] * c,
 * lo = key - ks[j] * G (sub runs, key = ~rowkey) or key + ks[j] * G (add runs), as in the runs. */
static void rank1_pre_apply(int32_t c, int8_t *w, const int8_t *xs, const uint16_t *ks, size_t from, size_t cnt,
                            uint32_t key, uint8_t sub)
{
    size_t j;
    for (j = from; j < cnt; ++j) {
        uint32_t k = ks[j], kg = k * (uint32_t)TT_GOLDEN32;
        w[k] = (int8_t)rank1_smlal_hi(w[k], sub ? key - kg : key + kg, (int32_t)xs[j], c);
    }
}

/* One of a row's two runs (the positive inputs, then the negative ones) for two rows at once: 0, or
 * nonzero after a value left the range, with both rows' runs then applied in full. */
static uint32_t rank1_pair_run(int32_t c1, int32_t c2, int8_t *w1, int8_t *w2, const int8_t *xs, const uint16_t *ks,
                               size_t cnt, uint32_t rk1, uint32_t rk2, uint8_t sub)
{
    const int8_t *px = xs;
    uint32_t r;
    size_t j;
    if (cnt == 0) {
        return 0;
    }
    r = sub ? rank1_pair_sub_s8(c1, c2, w1, w2, &px, cnt, ks, ~rk1, ~rk2)
            : rank1_pair_add_s8(c1, c2, w1, w2, &px, cnt, ks, rk1, rk2);
    if (r == 0) {
        return 0;
    }
    j = (size_t)(px - xs); /* past the input whose value left the range */
    if (r == 1u) {
        rank1_pre_apply(c2, w2, xs, ks, j - 1u, j, sub ? ~rk2 : rk2, sub); /* row 2 at that input */
    }
    rank1_pre_apply(c1, w1, xs, ks, j, cnt, sub ? ~rk1 : rk1, sub);
    rank1_pre_apply(c2, w2, xs, ks, j, cnt, sub ? ~rk2 : rk2, sub);
    return r;
}

/* Every row of rank1_update_s8 (all rows, not saturating, 8 <= n <= 31) in one loop: the rows with
 * |e| * M < 2**(n - 1) by the assembly runs, two rows with errors of one sign at a time (a last one
 * of each sign alone), the others by rank1_row_s8; a row with a value out of range (both rows of a
 * pair) is undone and its bit in row_ok cleared. Returns max |w - delta| over those values. */
TT_NOINLINE static uint32_t rank1_rows_pre_s8(const int8_t *err, size_t nrows, int32_t m, uint8_t n, int8_t *w,
                                              size_t cols, const int8_t *xs, const uint16_t *ks, size_t npos,
                                              size_t nnz, uint32_t key, uint8_t *row_ok)
{
    const uint32_t lim = (uint32_t)1 << (n - 1u), step = (uint32_t)cols * (uint32_t)TT_GOLDEN32;
    const uint8_t sh = (uint8_t)(32u - n);
    uint32_t amax = 0;
    size_t j, held[2] = {0, 0};
    uint8_t have[2] = {0, 0}, s;
    for (j = 0; j < nrows; ++j) {
        int32_t em;
        uint32_t aem, over, rowkey;
        int8_t *wr;
        while (err[j] == 0) { /* rows without an error do not change: a tight scan over them */
            if (++j == nrows) {
                goto rest;
            }
        }
        em = (int32_t)err[j] * m; /* M >= 1: em != 0 */
        wr = w + j * cols;
        rowkey = key + (uint32_t)j * step;
        aem = tt_mag32(em);
        if (aem < lim) {
            s = em < 0 ? 1u : 0u;
            if (!have[s]) {
                held[s] = j; /* waits for a row of the same sign */
                have[s] = 1u;
                continue;
            } else {
                const size_t j1 = held[s];
                const int32_t em1 = (int32_t)err[j1] * m;
                const int32_t c1 = (int32_t)(tt_mag32(em1) << sh), c2 = (int32_t)(aem << sh);
                int8_t *w1 = w + j1 * cols;
                const uint32_t rk1 = key + (uint32_t)j1 * step;
                uint32_t r;
                have[s] = 0;
                /* em > 0: positive inputs fall (sub runs, factor -c), negative ones rise (add runs);
                 * em < 0: the other way round, factor +c */
                if (s == 0u) {
                    r = rank1_pair_run(-c1, -c2, w1, wr, xs, ks, npos, rk1, rowkey, 1u);
                    if (r != 0u) {
                        rank1_pre_apply(-c1, w1, xs, ks, npos, nnz, rk1, 0u);
                        rank1_pre_apply(-c2, wr, xs, ks, npos, nnz, rowkey, 0u);
                    } else if (nnz != npos) {
                        r = rank1_pair_run(-c1, -c2, w1, wr, xs + npos, ks + npos, nnz - npos, rk1, rowkey, 0u);
                    }
                } else {
                    r = rank1_pair_run(c1, c2, w1, wr, xs, ks, npos, rk1, rowkey, 0u);
                    if (r != 0u) {
                        rank1_pre_apply(c1, w1, xs, ks, npos, nnz, ~rk1, 1u);
                        rank1_pre_apply(c2, wr, xs, ks, npos, nnz, ~rowkey, 1u);
                    } else if (nnz != npos) {
                        r = rank1_pair_run(c1, c2, w1, wr, xs + npos, ks + npos, nnz - npos, rk1, rowkey, 1u);
                    }
                }
                if (r == 0u) {
                    continue;
                }
                /* both rows are left for the rescale pass */
                row_ok[j1 >> 3] = (uint8_t)(row_ok[j1 >> 3] & ~(1u << (j1 & 7u)));
                over = rank1_row_undo_s8(em1, w1, xs, nnz, ks, rk1, n);
                amax = over > amax ? over : amax;
                row_ok[j >> 3] = (uint8_t)(row_ok[j >> 3] & ~(1u << (j & 7u)));
                over = rank1_row_undo_s8(em, wr, xs, nnz, ks, rowkey, n);
                amax = over > amax ? over : amax;
                continue;
            }
        }
        if (!rank1_row_s8(em, wr, xs, npos, nnz, ks, rowkey, n)) {
            continue;
        }
        row_ok[j >> 3] = (uint8_t)(row_ok[j >> 3] & ~(1u << (j & 7u)));
        over = rank1_row_undo_s8(em, wr, xs, nnz, ks, rowkey, n);
        amax = over > amax ? over : amax;
    }
rest:
    /* a row of each sign left without a partner: alone */
    for (s = 0; s < 2u; ++s) {
        if (have[s]) {
            const size_t jr = held[s];
            const int32_t em = (int32_t)err[jr] * m;
            int8_t *wr = w + jr * cols;
            const uint32_t rowkey = key + (uint32_t)jr * step;
            const int32_t c = (int32_t)(tt_mag32(em) << sh);
            int32_t flags;
            uint32_t over;
            if (em > 0) {
                flags = rank1_pre_sub_s8(-c, wr, xs, npos, ks, ~rowkey);
                if (nnz != npos) {
                    flags |= rank1_pre_add_s8(-c, wr, xs + npos, nnz - npos, ks + npos, rowkey);
                }
            } else {
                flags = rank1_pre_add_s8(c, wr, xs, npos, ks, rowkey);
                if (nnz != npos) {
                    flags |= rank1_pre_sub_s8(c, wr, xs + npos, nnz - npos, ks + npos, ~rowkey);
                }
            }
            if (flags < 0) {
                row_ok[jr >> 3] = (uint8_t)(row_ok[jr >> 3] & ~(1u << (jr & 7u)));
                over = rank1_row_undo_s8(em, wr, xs, nnz, ks, rowkey, n);
                amax = over > amax ? over : amax;
            }
        }
    }
    return amax;
}
#endif

/* Batch-1 fully connected layer, int8 weights, aligned rule with stochastic rounding, no momentum,
 * 1 <= n <= 62, at most 65535 columns: the gradient of element
 * (r, k) is e[r] * x[k] (|g| <= 16129, so |g| * M < 2**30 and 32-bit arithmetic gives the general
 * result). Rows with e[r] == 0 and elements with x[k] == 0 do not change (whatever their draws).
 * Each row is written at once; a row with a value out of range is undone and left for the rescale
 * pass. `work` holds 3 * cols bytes. Returns max |w - delta| over the values out of range (0 when
 * every value fits). */
static uint64_t rank1_update_s8(const tt_tiled_update_t *u, const tile_rule_t *r, size_t nrows, uint8_t saturate,
                                int32_t limit, void *work, uint8_t *row_ok)
{
    size_t j, cols = u->cols;
    uint16_t *ks = (uint16_t *)work;
    int8_t *xs = (int8_t *)(ks + cols);
    size_t nnz = 0, npos = rank1_nonzero(u->rank1_x, cols, xs, ks, &nnz);
    uint8_t n = (uint8_t)r->d.mult.n;
    uint64_t amax = 0;
    if (row_ok != NULL) {
        /* every row is written at once unless it is undone below */
        for (j = 0; j < (nrows + 7u) / 8u; ++j) {
            row_ok[j] = 0xFFu;
        }
    }
    if (nnz == 0) {
        return 0; /* no input is nonzero: no weight changes */
    }
#if TT_RANK1_PRE
    if (!saturate && u->rows == NULL && n >= 8u && n <= 31u) {
        return rank1_rows_pre_s8(u->rank1_err, nrows, r->d.mult.m, n, u->w8, cols, xs, ks, npos, nnz, r->d.key, row_ok);
    }
#endif
    for (j = 0; j < nrows; ++j) {
        const int8_t *err = u->rank1_err;
        size_t row;
        int32_t em;
        int8_t *w;
        uint32_t rowkey, over;
        /* rows without an error do not change (row_ok: set on entry) */
        if (u->rows == NULL) {
            while (err[j] == 0) { /* a tight scan over them */
                if (++j == nrows) {
                    return amax;
                }
            }
            row = j;
        } else {
            row = u->rows[j];
            if (err[row] == 0) {
                continue;
            }
        }
        em = (int32_t)err[row] * r->d.mult.m; /* M >= 1: em != 0 */
        w = u->w8 + row * cols;
        rowkey = r->d.key + (uint32_t)(j * cols) * (uint32_t)TT_GOLDEN32;
        if (saturate) {
            rank1_row_sat_s8(w, xs, ks, nnz, em, rowkey, n, limit);
            continue;
        }
        if (!rank1_row_s8(em, w, xs, npos, nnz, ks, rowkey, n)) {
            continue;
        }
        /* out of range: the row is left for the rescale pass */
        row_ok[j >> 3] = (uint8_t)(row_ok[j >> 3] & ~(1u << (j & 7u)));
        over = rank1_row_undo_s8(em, w, xs, nnz, ks, rowkey, n);
        if (over > amax) {
            amax = over;
        }
    }
    return amax;
}

/* ---- small batch (2..TT_RANK_BATCH_MAX): the gradient is a sum of B outer products ------------ */

/* One sample's share of a row's gradient: its error in the row and its inputs. */
typedef struct {
    int32_t e;       /* err[b, row] */
    const int8_t *x; /* x[b, 0..cols) */
} rank_term_t;

/* acc[j] (+)= sum_i t[i].e * t[i].x[ks[j]] over cnt <= 4 samples (cnt and init constant after
 * inlining): their errors and input rows stay in registers, each column index is loaded once. */
TT_RANK1_RUN_INLINE void rankb_axpy(int32_t *acc, const rank_term_t *t, const uint16_t *ks, size_t nk, unsigned cnt,
                                    unsigned init)
{
    const int32_t e0 = t[0].e, e1 = cnt > 1u ? t[1].e : 0, e2 = cnt > 2u ? t[2].e : 0, e3 = cnt > 3u ? t[3].e : 0;
    const int8_t *x0 = t[0].x, *x1 = cnt > 1u ? t[1].x : x0, *x2 = cnt > 2u ? t[2].x : x0, *x3 = cnt > 3u ? t[3].x : x0;
    const int32_t *end = acc + nk;
    for (; acc != end; ++acc, ++ks) {
        uint32_t k = *ks;
        int32_t s = init ? e0 * (int32_t)x0[k] : *acc + e0 * (int32_t)x0[k];
        if (cnt > 1u) {
            s += e1 * (int32_t)x1[k];
        }
        if (cnt > 2u) {
            s += e2 * (int32_t)x2[k];
        }
        if (cnt > 3u) {
            s += e3 * (int32_t)x3[k];
        }
        *acc = s;
    }
}

/* One row's gradient over the columns ks[0..nk) with a nonzero input: acc[j] = sum_i t[i].e *
 * t[i].x[ks[j]] over the nb >= 1 samples with an error in this row (|acc[j]| <= nb * 16129 < 2**20:
 * exact in 32 bits), four samples per pass over the row. */
TT_NOINLINE static void rankb_gradient_row(int32_t *acc, const rank_term_t *t, size_t nb, const uint16_t *ks, size_t nk)
{
    size_t i = nb & 3u;
    switch (i) {
    case 1u:
        rankb_axpy(acc, t, ks, nk, 1u, 1u);
        break;
    case 2u:
        rankb_axpy(acc, t, ks, nk, 2u, 1u);
        break;
    case 3u:
        rankb_axpy(acc, t, ks, nk, 3u, 1u);
        break;
    default:
        rankb_axpy(acc, t, ks, nk, 4u, 1u);
        i = 4u;
        break;
    }
    for (; i < nb; i += 4u) {
        rankb_axpy(acc, t + i, ks, nk, 4u, 0u);
    }
}

/* max |acc[j]|, j < nk */
static uint32_t rankb_max_abs(const int32_t *acc, size_t nk)
{
    uint32_t a = 0;
    size_t j;
    for (j = 0; j < nk; ++j) {
        uint32_t v = tt_mag32(acc[j]);
        a = v > a ? v : a;
    }
    return a;
}

/* One row, 1 <= n <= 31, |g| * M <= 2**30 for every element (32-bit products): w[ks[j]] -=
 * round(acc[j] * M / 2**n). New values are stored wrapped to int8; returns 1 when one left the
 * range (the row is then undone by rankb_row_undo_s8). A zero gradient leaves its weight as it is
 * (its step is 0 whatever the draw). */
TT_NOINLINE static uint8_t rankb_row_s8(int8_t *w, const int32_t *acc, const uint16_t *ks, size_t nk, int32_t m,
                                        uint32_t rowkey, uint8_t n)
{
    int32_t flags = 0;
    size_t j;
    for (j = 0; j < nk; ++j) {
        uint32_t k = ks[j];
        int32_t nw = (int32_t)w[k] - rank1_delta(acc[j] * m, rowkey + k * (uint32_t)TT_GOLDEN32, n);
        w[k] = (int8_t)nw;
        flags |= (nw + 127) | (127 - nw); /* negative when |nw| > 127 */
    }
    return flags < 0;
}

/* Undo rankb_row_s8 (the same deltas added back, exact through the int8 wrap-around); returns
 * max |w - delta| over the row's new values out of range. */
TT_NOINLINE static uint32_t rankb_row_undo_s8(int8_t *w, const int32_t *acc, const uint16_t *ks, size_t nk, int32_t m,
                                              uint32_t rowkey, uint8_t n)
{
    uint32_t amax = 0;
    size_t j;
    for (j = 0; j < nk; ++j) {
        uint32_t k = ks[j];
        int32_t d = rank1_delta(acc[j] * m, rowkey + k * (uint32_t)TT_GOLDEN32, n), old, nw;
        old = (int8_t)((uint32_t)(int32_t)w[k] + (uint32_t)d);
        nw = old - d;
        w[k] = (int8_t)old;
        if ((uint32_t)(nw + 127) > 254u) {
            uint32_t a = tt_mag32(nw);
            amax = a > amax ? a : amax;
        }
    }
    return amax;
}

#if TT_RANK1_LONG
/* Cores with SMLAL, 16 <= n <= 32 (c = -(M * 2**(32 - n)), |c| < 2**31), any |g| < 2**31: with the
 * draw u = rowkey + k * G, the high word of w * 2**32 + (~u ^ sm) + g * c, sm = 0 for g >= 0 and
 * all ones for g < 0, is w - sign(g) * ((|g| * M + (u >> (32 - n))) >> n): for g > 0 it is
 * w - floor((|g| * M * 2**(32 - n) + u) / 2**32) (see TT_RANK1_LONG above), for g < 0
 * w + floor((u + |g| * M * 2**(32 - n)) / 2**32), and for g = 0 it is w. One SMLAL per weight and
 * no bound on |g| * M. Here g = acc[j] (when use_acc) plus the products of the last cnt <= 2
 * samples t[0..cnt), formed in registers (cnt and use_acc constant after inlining). Returns a
 * negative value when a new value left the int8 range. */
TT_RANK1_RUN_INLINE int32_t rankb_long_run(int8_t *w, const int32_t *acc, const rank_term_t *t, unsigned cnt,
                                           unsigned use_acc, const uint16_t *ks, size_t nk, uint32_t nrowkey, int32_t c)
{
    const int32_t e0 = cnt > 0u ? t[0].e : 0, e1 = cnt > 1u ? t[1].e : 0;
    const int8_t *x0 = cnt > 0u ? t[0].x : NULL, *x1 = cnt > 1u ? t[1].x : NULL;
    const uint16_t *end = ks + nk;
    int32_t flags = 0;
    for (; ks != end; ++ks) {
        uint32_t k = *ks;
        int32_t g, sm, nw;
        if (use_acc) {
            g = *acc++;
            if (cnt > 0u) {
                g += e0 * (int32_t)x0[k];
            }
        } else {
            g = e0 * (int32_t)x0[k];
        }
        if (cnt > 1u) {
            g += e1 * (int32_t)x1[k];
        }
        sm = -(int32_t)((uint32_t)g >> 31);
        nw = rank1_smlal_hi(w[k], (nrowkey - k * (uint32_t)TT_GOLDEN32) ^ (uint32_t)sm, g, c);
        w[k] = (int8_t)nw;
        flags |= (nw + 127) | (127 - nw); /* negative when |nw| > 127 */
    }
    return flags;
}

/* One row by rankb_long_run (acc: the other samples' sum, or NULL; 1 <= cnt <= 2, or cnt = 0 with
 * acc). On a new value out of the int8 range the row is undone (the step f = new - old is the high
 * word of the same sum with w = 0): returns max |w - delta| over those values, else 0. */
TT_NOINLINE static uint32_t rankb_row_long_s8(int8_t *w, const int32_t *acc, const rank_term_t *t, unsigned cnt,
                                              const uint16_t *ks, size_t nk, uint32_t nrowkey, int32_t c)
{
    uint32_t amax = 0;
    size_t j;
    int32_t flags;
    if (acc == NULL) {
        flags = cnt == 1u ? rankb_long_run(w, NULL, t, 1u, 0u, ks, nk, nrowkey, c)
                          : rankb_long_run(w, NULL, t, 2u, 0u, ks, nk, nrowkey, c);
    } else if (cnt == 0u) {
        flags = rankb_long_run(w, acc, t, 0u, 1u, ks, nk, nrowkey, c);
    } else {
        flags = cnt == 1u ? rankb_long_run(w, acc, t, 1u, 1u, ks, nk, nrowkey, c)
                          : rankb_long_run(w, acc, t, 2u, 1u, ks, nk, nrowkey, c);
    }
    if (flags >= 0) {
        return 0;
    }
    for (j = 0; j < nk; ++j) {
        uint32_t k = ks[j];
        int32_t g = acc != NULL ? acc[j] : 0, sm, f, old, nw;
        unsigned i;
        for (i = 0; i < cnt; ++i) {
            g += t[i].e * (int32_t)t[i].x[k];
        }
        sm = -(int32_t)((uint32_t)g >> 31);
        f = rank1_smlal_hi(0, (nrowkey - k * (uint32_t)TT_GOLDEN32) ^ (uint32_t)sm, g, c);
        old = (int8_t)((uint32_t)(int32_t)w[k] - (uint32_t)f);
        nw = old + f;
        w[k] = (int8_t)old;
        if ((uint32_t)(nw + 127) > 254u) {
            uint32_t a = tt_mag32(nw);
            amax = a > amax ? a : amax;
        }
    }
    return amax;
}
#endif

/* A row outside the 32-bit and long-multiply cases, or a saturating update: the general element
 * step on g = acc[j]. Returns max |w - delta| above `limit` when not saturating (the new values are
 * then not written: the row is left for the rescale pass). */
static uint64_t rankb_row_general_s8(int8_t *w, const int32_t *acc, const uint16_t *ks, size_t nk, const tile_rule_t *r,
                                     uint32_t index0, uint8_t saturate, int32_t limit)
{
    uint64_t amax = 0;
    uint8_t pass;
    size_t j;
    for (pass = saturate ? 1u : 0u; pass < 2u && amax == 0; ++pass) { /* pass 0: check the range, 1: write */
        for (j = 0; j < nk; ++j) {
            uint32_t k = ks[j];
            int32_t g = acc[j];
            int64_t nw;
            uint64_t a;
            if (g == 0) {
                continue;
            }
            nw = tt_sub_wrap64(w[k], tt_delta_at(&r->d, g, NULL, index0 + k));
            a = tt_mag64(nw);
            if (pass == 1u) {
                w[k] = (int8_t)tt_clip64(nw, limit);
            } else if (a > (uint64_t)limit && a > amax) {
                amax = a;
            }
        }
    }
    return amax;
}

/* Batch 2..TT_RANK_BATCH_MAX fully connected layer, int8 weights, aligned rule with stochastic
 * rounding, no momentum, 1 <= n <= 31 (1 <= n <= 62 when saturating), at most 65535 columns. Rows
 * whose errors are all 0 and columns whose inputs are all 0 do not change. `work` holds
 * 2 * cols bytes (rounded up to 4) then a row of cols int32. Each row's gradient is formed in
 * the work row (four samples at a time), then applied: in one SMLAL per weight on Cortex-M3, M4,
 * M33 (16 <= n <= 32), else in 32-bit arithmetic where max |g| * M <= 2**30 (n <= 31), else by the
 * general element step. Returns max |w - delta| over the values out of range (0 when every value
 * fits). */
TT_NOINLINE static uint64_t rankb_update_s8(const tt_tiled_update_t *u, const tile_rule_t *r, size_t nrows, uint8_t saturate,
                                            int32_t limit, void *work, uint8_t *row_ok)
{
    size_t j, b, k, cols = u->cols, batch = u->rank_batch, nk = 0;
    uint16_t *ks = (uint16_t *)work;
    int32_t *acc = (int32_t *)work + (cols + 1u) / 2u;
    const int8_t *x = u->rank1_x;
    uint8_t n = (uint8_t)r->d.mult.n;
    int32_t m = r->d.mult.m;
    uint32_t gbound = m > 0 ? ((uint32_t)1 << 30) / (uint32_t)m : 0;
    uint64_t amax = 0;
    rank_term_t e[TT_RANK_BATCH_MAX];
#if TT_RANK1_LONG
    uint8_t long_ok = !saturate && n >= 16u && n <= 32u;
    int32_t c = long_ok ? -(int32_t)((uint32_t)m << (32u - n)) : 0;
#endif
    for (k = 0; k < cols; ++k) {
        for (b = 0; b < batch; ++b) {
            if (x[b * cols + k] != 0) {
                ks[nk++] = (uint16_t)k;
                break;
            }
        }
    }
    for (j = 0; j < nrows; ++j) {
        size_t row = tt_selected_row(u->rows, j);
        int8_t *w = u->w8 + row * cols;
        uint32_t index0 = (uint32_t)(j * cols), rowkey = r->d.key + index0 * (uint32_t)TT_GOLDEN32;
        uint64_t over;
        size_t nb = 0;
        for (b = 0; b < batch; ++b) { /* the samples with an error in this row */
            int32_t eb = u->rank1_err[b * u->row_count + row];
            if (eb != 0) {
                e[nb].e = eb;
                e[nb].x = x + b * cols;
                ++nb;
            }
        }
        if (nb == 0 || nk == 0) {
            if (row_ok != NULL) {
                row_ok[j >> 3] = (uint8_t)(row_ok[j >> 3] | (1u << (j & 7u)));
            }
            continue;
        }
#if TT_RANK1_LONG
        if (long_ok) {
            /* the last one or two samples in registers with the update, the others (if any) summed
             * first, four per pass */
            size_t last = nb <= 2u ? nb : ((nb & 3u) == 1u ? 1u : 2u);
            if (nb > last) {
                rankb_gradient_row(acc, e, nb - last, ks, nk);
            }
            over = rankb_row_long_s8(w, nb > last ? acc : NULL, e + (nb - last), (unsigned)last, ks, nk, ~rowkey, c);
        } else
#endif
        {
            rankb_gradient_row(acc, e, nb, ks, nk);
            if (saturate || n > 31u || rankb_max_abs(acc, nk) > gbound) {
                over = rankb_row_general_s8(w, acc, ks, nk, r, index0, saturate, limit);
            } else if (rankb_row_s8(w, acc, ks, nk, m, rowkey, n)) {
                over = rankb_row_undo_s8(w, acc, ks, nk, m, rowkey, n);
            } else {
                over = 0;
            }
        }
        if (saturate) {
            continue;
        }
        if (over == 0) {
            row_ok[j >> 3] = (uint8_t)(row_ok[j >> 3] | (1u << (j & 7u)));
        } else if (over > amax) {
            amax = over;
        }
    }
    return amax;
}

/* w[i] = lut0[w[i]], i < count (w[i] in [-127, 127]); on Cortex-M3, M4, M33 four values per word
 * (each byte is mapped on its own: the same result in any byte order) */
/* lut[v + 127] = tt_grid_rescale_one(v, mult, limit) for -127 <= v <= 127: by magnitude (the rule
 * is odd in v) with its 16x16->32 product inline when 1 <= n <= 31 and 0 <= m < 2**15 */
static void grid_rescale_table_s8(int8_t *lut, tt_multiplier_t mult, int32_t limit)
{
    int32_t v;
    if (mult.n >= 1 && mult.n <= 31 && mult.m >= 0 && mult.m < 32768L && limit >= 0) {
        const uint32_t m = (uint32_t)mult.m, half = (uint32_t)1 << (mult.n - 1);
        const uint8_t n = (uint8_t)mult.n;
        for (v = 0; v <= 127; ++v) {
            uint32_t q = ((uint32_t)v * m + half) >> n;
            q = q > (uint32_t)limit ? (uint32_t)limit : q;
            lut[127 + v] = (int8_t)q;
            lut[127 - v] = (int8_t)-(int32_t)q;
        }
        return;
    }
    for (v = -127; v <= 127; ++v) {
        lut[v + 127] = (int8_t)tt_grid_rescale_one(v, mult, limit);
    }
}

static void lut_map_s8(int8_t *w, size_t count, const int8_t *lut0)
{
    int8_t *end = w + count;
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__)
    int8_t *end4 = w + (count & ~(size_t)3u);
    while (w != end4) {
        uint32_t v;
        __builtin_memcpy(&v, w, 4);
        v = (uint32_t)(uint8_t)lut0[(int8_t)v] | ((uint32_t)(uint8_t)lut0[(int8_t)(v >> 8)] << 8) |
            ((uint32_t)(uint8_t)lut0[(int8_t)(v >> 16)] << 16) | ((uint32_t)(uint8_t)lut0[(int8_t)(v >> 24)] << 24);
        __builtin_memcpy(w, &v, 4);
        w += 4;
    }
#endif
    for (; w != end; ++w) {
        *w = lut0[*w];
    }
}

tt_status_t tt_tiled_rows(const tt_tiled_update_t *u, const tt_sgd_config_t *cfg, size_t *nrows, size_t *tiles,
                          uint8_t *saturate)
{
    *nrows = u->rows != NULL ? u->nrows : u->row_count;
    *tiles = tt_ceil_div(*nrows, u->tile_rows);
    *saturate = u->rows != NULL || !cfg->weight_rescale;
    if (u->rows != NULL && *nrows != 0 && tt_check_selection(u->rows, 0, *nrows, u->row_count) != TT_OK) {
        return TT_ERR_ARG;
    }
    if (*nrows != 0 && !*saturate && u->tile_flags == NULL) {
        return TT_ERR_ARG;
    }
    return TT_OK;
}

tt_status_t tt_sgd_update_tiled(const tt_tiled_update_t *u, const tt_sgd_config_t *cfg, uint32_t key)
{
    tile_rule_t r;
    tt_status_t st;
    size_t tiles, t, nrows, trows;
    uint8_t saturate, bits, cached = 0, rank1 = 0;
    int32_t limit;
    uint64_t amax_new = 0;
    if (u == NULL || cfg == NULL || u->w_scale == NULL || u->grad == NULL || u->tile == NULL ||
        (u->w8 == NULL) == (u->w16 == NULL) || u->tile_rows == 0 || u->cols == 0) {
        return TT_ERR_ARG;
    }
    if (cfg->rule > TT_RULE_NITI || cfg->rounding > TT_ROUND_PSEUDO_STOCHASTIC || cfg->mode > TT_SCALE_COMPOUND ||
        cfg->momentum_shift > 8 || cfg->batch_size == 0 || (cfg->rule == TT_RULE_NITI && (cfg->mu < 1 || cfg->mu > 8))) {
        return TT_ERR_ARG;
    }
    if (tt_tiled_rows(u, cfg, &nrows, &tiles, &saturate) != TT_OK) {
        return TT_ERR_ARG;
    }
    if (nrows == 0) {
        return TT_OK;
    }
    trows = u->tile_rows;
    bits = u->w8 != NULL ? 8 : 16;
    limit = tt_limit_for_bits(bits);
    r.d.niti = cfg->rule == TT_RULE_NITI;
    r.d.momentum = !r.d.niti && cfg->momentum_shift > 0;
    r.have_mult = 0;
    r.d.momentum_shift = cfg->momentum_shift;
    r.d.niti_k = 0;
    r.d.rounding = (tt_rounding_t)cfg->rounding;
    r.d.mult.m = 0;
    r.d.mult.n = 0;
    r.d.fine = r.d.mult;
    r.d.key = key;
    if (r.d.momentum && u->momentum == NULL) {
        return TT_ERR_ARG;
    }
    if (r.d.niti) {
        /* NITI's shift depends on max |g| of the whole (selected) gradient: a first pass */
        uint32_t amax = 0;
        for (t = 0; t < tiles; ++t) {
            size_t r0 = t * trows, cnt = nrows - r0 < trows ? nrows - r0 : trows;
            uint32_t a;
            st = tile_gradient(u, &r, cfg, r0, cnt);
            if (st != TT_OK) {
                return st;
            }
            a = tt_max_abs_s32(u->tile, cnt * u->cols);
            if (a > amax) {
                amax = a;
            }
        }
        if (amax == 0) {
            return TT_OK; /* no update at all */
        }
        r.d.niti_k = (int8_t)(tt_bit_length_u32(amax) - cfg->mu);
        cached = tiles == 1; /* the tile still holds the whole gradient */
    }
    if (!saturate) {
        for (t = 0; t < (tiles + 7u) / 8u; ++t) {
            u->tile_flags[t] = 0;
        }
    }
    if (u->rank1_err != NULL && u->rank1_x != NULL && u->w8 != NULL && !r.d.niti && !r.d.momentum &&
        r.d.rounding == TT_ROUND_STOCHASTIC && u->rank_batch <= TT_RANK_BATCH_MAX) {
        st = tile_gradient(u, &r, cfg, 0, 0); /* the multiplier (from the gradient scale), no rows */
        if (st != TT_OK) {
            return st;
        }
        /* batch 1: any 1 <= n <= 62; batch 2..: n <= 31 (32 on cores with SMLAL) unless saturating, and
         * a workspace of two rows or more (the nonzero columns and one gradient row) */
        if (r.d.mult.n >= 1 && u->cols <= 0xFFFFu &&
            (u->rank_batch <= 1u ? r.d.mult.n <= 62
                                 : (r.d.mult.n <= (saturate ? 62 : 31 + TT_RANK1_LONG) && u->tile_rows >= 2u && nrows >= 2u))) {
            /* rows are the units written at once (tile_flags holds ceil(nrows / 8) bytes) */
            trows = 1;
            tiles = nrows;
            if (!saturate && u->rank_batch > 1u) {
                for (t = 0; t < (tiles + 7u) / 8u; ++t) {
                    u->tile_flags[t] = 0;
                }
            }
            amax_new = u->rank_batch > 1u ? rankb_update_s8(u, &r, nrows, saturate, limit, (void *)u->tile,
                                                            saturate ? NULL : u->tile_flags)
                                          : rank1_update_s8(u, &r, nrows, saturate, limit, (void *)u->tile,
                                                            saturate ? NULL : u->tile_flags);
            rank1 = 1;
            if (saturate || amax_new == 0) {
                return TT_OK;
            }
            goto rescale;
        }
    }
    for (t = 0; t < tiles; ++t) {
        size_t r0 = t * trows, cnt = nrows - r0 < trows ? nrows - r0 : trows;
        uint64_t tmax;
        if (!cached) {
            st = tile_gradient(u, &r, cfg, r0, cnt);
            if (st != TT_OK) {
                return st;
            }
        }
        tmax = tile_new_values(u, &r, r0, cnt, saturate, limit);
        if (saturate) {
            continue;
        }
        if (tmax > amax_new) {
            amax_new = tmax;
        }
        if (tmax <= (uint64_t)limit) {
            /* this tile fits the weight range: write it now */
            commit_tile(u, r0, cnt);
            u->tile_flags[t >> 3] = (uint8_t)(u->tile_flags[t >> 3] | (1u << (t & 7u)));
        }
    }
    if (saturate || amax_new <= (uint64_t)limit) {
        return TT_OK;
    }
rescale:
    {
        /* rare: the tensor outgrew its range; move every value to a coarser grid scale */
        tt_scale_t new_scale;
        tt_multiplier_t mult;
        uint8_t changed = 0;
        st = tt_choose_grid_rescale(amax_new, *u->w_scale, bits, (tt_scale_mode_t)cfg->mode, &changed, &new_scale,
                                    &mult);
        if (st != TT_OK || !changed) {
            return st;
        }
        /* tiles not written yet first (they may need the tile buffer for their gradient), then the
         * written ones: those hold int8 values, mapped through a table when the tile buffer holds one */
        uint8_t phase, use_lut = 0;
        int8_t *lut = (int8_t *)(void *)u->tile;
        for (phase = 0; phase < 2u; ++phase) {
            if (phase == 1u) {
                use_lut = u->w8 != NULL && u->momentum == NULL && !tt_size_above(255u, (uint32_t)(trows * u->cols * 4u) - 1u);
                if (use_lut) {
                    grid_rescale_table_s8(lut, mult, limit);
                }
            }
            for (t = 0; t < tiles; ++t) {
                size_t r0 = t * trows, cnt = nrows - r0 < trows ? nrows - r0 : trows, j, k;
                uint8_t committed = (uint8_t)((u->tile_flags[t >> 3] >> (t & 7u)) & 1u);
                if (committed != phase) {
                    continue;
                }
                if (use_lut) {
                    /* the row length and the table's centre in registers (int8 stores may alias u);
                     * consecutive rows as one run */
                    const size_t cols = u->cols;
                    const int8_t *lut0 = lut + 127;
                    if (u->rows == NULL) {
                        lut_map_s8(u->w8 + r0 * cols, cnt * cols, lut0);
                        continue;
                    }
                    for (j = 0; j < cnt; ++j) {
                        lut_map_s8(u->w8 + tt_selected_row(u->rows, r0 + j) * cols, cols, lut0);
                    }
                    continue;
                }
                if (!committed && rank1) {
                    /* a row left by the outer-product update: its new values from err and x directly */
                    size_t row = tt_selected_row(u->rows, t), batch = u->rank_batch > 1u ? u->rank_batch : 1u, b;
                    int8_t *w = u->w8 + row * u->cols;
                    const int32_t e0 = u->rank1_err[row]; /* in a register: the stores to w may alias err */
                    if (batch == 1u && r.d.mult.n >= 1 && r.d.mult.n <= 31 && r.d.mult.m >= 0 && r.d.mult.m < 65536L) {
                        /* batch 1: |g| <= 16129 and M < 2**16, so |g| * M < 2**30 and the
                         * step is rank1_delta's */
                        const int32_t em = e0 * r.d.mult.m;
                        const uint8_t n = (uint8_t)r.d.mult.n;
                        uint32_t u0 = r.d.key + (uint32_t)(t * u->cols) * (uint32_t)TT_GOLDEN32;
                        for (k = 0; k < u->cols; ++k, u0 += (uint32_t)TT_GOLDEN32) {
                            int32_t p = em * (int32_t)u->rank1_x[k];
                            w[k] = (int8_t)tt_grid_rescale_one((int32_t)w[k] - (p != 0 ? rank1_delta(p, u0, n) : 0), mult,
                                                               limit);
                        }
                        continue;
                    }
                    for (k = 0; k < u->cols; ++k) {
                        int32_t g = e0 * (int32_t)u->rank1_x[k];
                        for (b = 1; b < batch; ++b) {
                            g += (int32_t)u->rank1_err[b * u->row_count + row] * (int32_t)u->rank1_x[b * u->cols + k];
                        }
                        int64_t d = g != 0 ? tt_delta_at(&r.d, g, NULL, (uint32_t)(t * u->cols + k)) : 0;
                        w[k] = (int8_t)tt_grid_rescale_one(tt_sub_wrap64(w[k], d), mult, limit);
                    }
                    continue;
                }
                if (!committed && !r.d.momentum) {
                    st = tile_gradient(u, &r, cfg, r0, cnt);
                    if (st != TT_OK) {
                        return st;
                    }
                }
                for (j = 0; j < cnt; ++j) {
                    size_t base = (r0 + j) * u->cols; /* row-major index in the selection */
                    size_t wbase = tt_selected_row(u->rows, r0 + j) * u->cols;
                    for (k = 0; k < u->cols; ++k) {
                        int64_t *v = u->momentum != NULL ? u->momentum + base + k : NULL;
                        uint32_t index = (uint32_t)(base + k);
                        int64_t nw = weight_at(u, wbase + k);
                        if (!committed) {
                            /* momentum was already advanced in the first pass: delta = round(v / 2**8) */
                            int64_t d = r.d.momentum ? tt_shift_round_s64(*v, TT_MOMENTUM_FRAC_BITS, r.d.rounding, key, index)
                                                   : tt_delta_at(&r.d, u->tile[j * u->cols + k], NULL, index);
                            nw = tt_sub_wrap64(nw, d);
                        }
                        set_weight(u, wbase + k, tt_grid_rescale_one(nw, mult, limit));
                        if (v != NULL) {
                            *v = tt_apply_multiplier_scalar(*v, mult, TT_ROUND_NEAREST, 0, 0, -1);
                        }
                    }
                }
            }
        }
        *u->w_scale = new_scale;
    }
    return TT_OK;
}
