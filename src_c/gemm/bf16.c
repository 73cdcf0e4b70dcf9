// bf16.c - the bfloat16 products (nn_gemm_bf16): float32 operands rounded to bfloat16 as they
// are packed, pairs of k steps multiplied and added into float32 by VDPBF16PS (AVX512_BF16)
// or by float32 multiply-adds of the same rounded values on every other CPU.
//
// Packed layout (the one VDPBF16PS reads): a 32-bit word holds the bfloat16 of k step 2q in
// its low half and of step 2q + 1 in its high half (0 past k). A panel of A is [k pair][mr
// rows], a panel of B [k pair][nr columns], zero-padded past m and n. The loop nest is the
// float GEMM's (gemm_impl.h): jc (nc columns of B) > pc (kc of k: a packed block of B in L2)
// > ic (mc rows: a packed block of A) > jr > ir > micro-kernel. Threads take disjoint blocks
// of C and the k blocking never depends on them, so the sums do not depend on the threads.
#include <string.h>

#include "internal/port.h"
#include "internal/threads.h"
#include "internal/memory.h"
#include "internal/isa.h"
#include "internal/update.h"
#include "gemm/bf16.h"
#include "ops/ops.h"

#define NN_BF16_KC 512  // k steps a block packs: an mr x kc panel of A is 12-32 KiB, in L1
#define NN_BF16_MC 192  // rows of a packed block of A
#define NN_BF16_NC 1024  // columns of a packed block of B: kc x nc is 1 MiB, in L2
#define NN_BF16_KP_MAX (NN_BF16_KC / 2)  // k pairs in a block

// Branch-free, so that the packing loops vectorise.
NN_INLINE uint32_t nn_bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : r;  // NaN: a quiet NaN
}

uint16_t nn_bf16_round(float x) { return (uint16_t)nn_bf16_bits(x); }

// ---- the emulation: float32 multiply-adds of the rounded operands ------------------------------

NN_INLINE float nn_bf16_lo(uint32_t w) {  // the even k step's value
    uint32_t u = w << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
NN_INLINE float nn_bf16_hi(uint32_t w) {  // the odd k step's value
    uint32_t u = w & 0xffff0000u;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// c (m, n) (+)= the MR x NR tile of the panels, the odd step's product added before the even
// one's, as VDPBF16PS does (each product of two bfloat16 values is exact in float32).
#define NN_BF16_EMU_BODY(MR, NR)                                                              \
    float acc[MR][NR];                                                                        \
    for (int i = 0; i < MR; i++)                                                              \
        for (int j = 0; j < NR; j++) acc[i][j] = 0;                                           \
    for (nn_int p = 0; p < kp; p++, a += MR, b += NR) {                                       \
        float blo[NR], bhi[NR];                                                               \
        for (int j = 0; j < NR; j++) blo[j] = nn_bf16_lo(b[j]), bhi[j] = nn_bf16_hi(b[j]);    \
        for (int i = 0; i < MR; i++) {                                                        \
            const float alo = nn_bf16_lo(a[i]), ahi = nn_bf16_hi(a[i]);                       \
            for (int j = 0; j < NR; j++) {                                                    \
                acc[i][j] += ahi * bhi[j];                                                    \
                acc[i][j] += alo * blo[j];                                                    \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    for (int i = 0; i < m; i++)                                                               \
        for (int j = 0; j < n; j++)                                                           \
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];

static void bf16_emu_generic(nn_int kp, const uint32_t *NN_RESTRICT a,
                             const uint32_t *NN_RESTRICT b, float *NN_RESTRICT c, nn_int ldc,
                             int m, int n, int accumulate) {
    NN_BF16_EMU_BODY(4, 8)
}
#ifdef NN_X86_64
static NN_TARGET_AVX2 void bf16_emu_avx2(nn_int kp, const uint32_t *NN_RESTRICT a,
                                         const uint32_t *NN_RESTRICT b, float *NN_RESTRICT c,
                                         nn_int ldc, int m, int n, int accumulate) {
    NN_BF16_EMU_BODY(6, 16)
}
static NN_TARGET_AVX512 void bf16_emu_avx512(nn_int kp, const uint32_t *NN_RESTRICT a,
                                             const uint32_t *NN_RESTRICT b,
                                             float *NN_RESTRICT c, nn_int ldc, int m, int n,
                                             int accumulate) {
    NN_BF16_EMU_BODY(12, 32)
}
#endif

// ---- packing --------------------------------------------------------------------------------
// Two vectorisable steps, compiled for each path (pack_*_<isa>): words of pairs along a run
// of k (pairs_along) and words of two runs of k steps side by side (pairs_of); each packing
// then places the words with the loop order that keeps the reads contiguous, through a short
// buffer where the panel's layout runs the other way.

NN_INLINE uint32_t nn_pair(float even, float odd) {
    return nn_bf16_bits(even) | nn_bf16_bits(odd) << 16;
}

// d[q] for q < (kb + 1) / 2: the pairs of x[0 .. kb), the last one padded with 0.
NN_INLINE void pairs_along(uint32_t *NN_RESTRICT d, const float *NN_RESTRICT x, nn_int kb) {
    const nn_int half = kb / 2;
    for (nn_int q = 0; q < half; q++) d[q] = nn_pair(x[2 * q], x[2 * q + 1]);
    if (kb & 1) d[half] = nn_pair(x[kb - 1], 0.0f);
}

// d[j] for j < n: the pairs of e[j] and o[j] (o NULL: 0).
NN_INLINE void pairs_of(uint32_t *NN_RESTRICT d, const float *NN_RESTRICT e,
                        const float *NN_RESTRICT o, nn_int n) {
    if (o != NULL)
        for (nn_int j = 0; j < n; j++) d[j] = nn_pair(e[j], o[j]);
    else
        for (nn_int j = 0; j < n; j++) d[j] = nn_bf16_bits(e[j]);
}

#define NN_BF16_MR_MAX 32

// op(a)(i0 + i, p0 + p) for i < mb, p < kb -> panels of mr rows: [k pair][row], or with amx
// [row][k pair] (kpad pairs, zeros past kb).
NN_INLINE void pack_a_body(uint32_t *NN_RESTRICT dst, const float *NN_RESTRICT a, nn_int lda,
                           int trans, nn_int i0, nn_int mb, nn_int p0, nn_int kb, nn_int kpad,
                           int mr, int amx) {
    const nn_int kp = (kb + 1) / 2;
    uint32_t tmp[NN_BF16_KP_MAX > NN_BF16_MR_MAX ? NN_BF16_KP_MAX : NN_BF16_MR_MAX];
    for (nn_int ir = 0; ir < mb; ir += mr, dst += kpad * mr) {
        const int rows = mb - ir < mr ? (int)(mb - ir) : mr;
        if (!trans) {  // rows of A along k: a row of the panel with amx, else a column
            for (int i = 0; i < mr; i++) {
                uint32_t *d = amx ? dst + i * kpad : tmp;
                nn_int q = 0;
                if (i < rows) pairs_along(d, a + (i0 + ir + i) * lda + p0, kb), q = kp;
                for (; q < kpad; q++) d[q] = 0;
                if (!amx)
                    for (q = 0; q < kpad; q++) dst[q * mr + i] = tmp[q];
            }
        } else {  // rows of a^T along i: a row of the panel without amx, else a column
            for (nn_int q = 0; q < kpad; q++) {
                uint32_t *d = amx ? tmp : dst + q * mr;
                const nn_int p = p0 + 2 * q;
                int i = 0;
                if (q < kp)
                    pairs_of(d, a + p * lda + i0 + ir, p + 1 < p0 + kb ? a + (p + 1) * lda + i0 + ir
                                                                       : NULL, rows),
                        i = rows;
                for (; i < mr; i++) d[i] = 0;
                if (amx)
                    for (i = 0; i < mr; i++) dst[i * kpad + q] = tmp[i];
            }
        }
    }
}

// op(b)(p0 + p, j0 + j) for p < kb, j < nb -> panels of nr columns, [k pair][column] (kpad
// pairs, zeros past kb).
NN_INLINE void pack_b_body(uint32_t *NN_RESTRICT dst, const float *NN_RESTRICT b, nn_int ldb,
                           int trans, nn_int p0, nn_int kb, nn_int kpad, nn_int j0, nn_int nb,
                           int nr) {
    const nn_int kp = (kb + 1) / 2;
    uint32_t tmp[NN_BF16_KP_MAX];
    for (nn_int jr = 0; jr < nb; jr += nr, dst += kpad * nr) {
        const int cols = nb - jr < nr ? (int)(nb - jr) : nr;
        if (trans) {  // a column of the panel is a row of b: along k
            for (int j = 0; j < cols; j++) {
                pairs_along(tmp, b + (j0 + jr + j) * ldb + p0, kb);
                for (nn_int q = 0; q < kp; q++) dst[q * nr + j] = tmp[q];
            }
            for (nn_int q = 0; q < kp; q++)
                for (int j = cols; j < nr; j++) dst[q * nr + j] = 0;
        } else {
            for (nn_int q = 0; q < kp; q++) {
                const float *e = b + (p0 + 2 * q) * ldb + j0 + jr;
                uint32_t *d = dst + q * nr;
                pairs_of(d, e, 2 * q + 1 < kb ? e + ldb : NULL, cols);
                for (int j = cols; j < nr; j++) d[j] = 0;
            }
        }
        memset(dst + kp * nr, 0, (size_t)(kpad - kp) * nr * 4);
    }
}

#define NN_BF16_PACKERS(sfx, TARGET)                                                          \
    static TARGET void pack_a_##sfx(uint32_t *dst, const float *a, nn_int lda, int trans,     \
                                    nn_int i0, nn_int mb, nn_int p0, nn_int kb, nn_int kpad,  \
                                    int mr, int amx) {                                        \
        pack_a_body(dst, a, lda, trans, i0, mb, p0, kb, kpad, mr, amx);                       \
    }                                                                                         \
    static TARGET void pack_b_##sfx(uint32_t *dst, const float *b, nn_int ldb, int trans,     \
                                    nn_int p0, nn_int kb, nn_int kpad, nn_int j0, nn_int nb,  \
                                    int nr) {                                                 \
        pack_b_body(dst, b, ldb, trans, p0, kb, kpad, j0, nb, nr);                            \
    }
NN_BF16_PACKERS(generic, )
#ifdef NN_X86_64
NN_BF16_PACKERS(avx2, NN_TARGET_AVX2)
NN_BF16_PACKERS(avx512, NN_TARGET_AVX512)
#endif

// The kernel and its tile on the selected path.
static struct nn_bf16_ukr_info bf16_kernel(void) {
    struct nn_bf16_ukr_info K = {bf16_emu_generic, 4, 8, 0, pack_a_generic, pack_b_generic};
#ifdef NN_X86_64
    const int kernel = nn_cpu_bf16_kernel();
    if (nn_cpu_get_path() == NN_CPU_AVX512)
        K.pack_a = pack_a_avx512, K.pack_b = pack_b_avx512;
    else if (nn_cpu_get_path() == NN_CPU_AVX2)
        K.pack_a = pack_a_avx2, K.pack_b = pack_b_avx2;
    if (kernel == NN_BF16_AMX) {
        K.ukr = nn_bf16_ukr_avx512_amx, K.mr = 32, K.nr = 32, K.amx = 1;
    } else if (kernel == NN_BF16_AVX512) {
        K.ukr = nn_bf16_ukr_avx512_bf16, K.mr = 12, K.nr = 32;
    } else if (nn_cpu_get_path() == NN_CPU_AVX512) {
        K.ukr = bf16_emu_avx512, K.mr = 12, K.nr = 32;
    } else if (nn_cpu_get_path() == NN_CPU_AVX2) {
        K.ukr = bf16_emu_avx2, K.mr = 6, K.nr = 16;
    }
#endif
    return K;
}

// ---- the driver -----------------------------------------------------------------------------


struct bf16_args {
    float *c;
    const float *a, *b;
    nn_int m, n, k, lda, ldb, ldc;
    int trans_a, trans_b, accumulate;
    struct nn_bf16_ukr_info K;
    // After a tile's last k block, while it is in L1: c = act(c + bias) (z: c + bias), then
    // the optimizer's step on it (upd; c is a block of upd->origin).
    const float *bias;
    float *z;
    nn_int ldz;
    int act, epilogue;
    float alpha;
    const nn_update *upd;
};

// The epilogue of a finished tile, while it is in L1.
static void bf16_epilogue(const struct bf16_args *g, nn_int i0, nn_int j0, nn_int rows,
                          nn_int cols) {
    if (g->epilogue)
        nn_act_tile_f32(g->c + i0 * g->ldc + j0, g->ldc, g->z ? g->z + i0 * g->ldz + j0 : NULL,
                        g->ldz, g->bias ? g->bias + j0 : NULL, rows, cols, g->act, g->alpha);
}

// The step on a finished block of rows of c (in L2), along whole rows of the block: the
// parameters and optimizer state it reads and writes stream in order, where tile by tile
// each row would be a 128-byte piece far from the next.
static void bf16_update(const struct bf16_args *g, nn_int i0, nn_int j0, nn_int rows,
                        nn_int cols) {
    if (g->upd)
        g->upd->fn(g->upd->args, g->c + i0 * g->ldc + j0 - (const float *)g->upd->origin, rows,
                   cols, g->ldc, NULL, 0);
}

// C rows [m0, m1) x columns [n0, n1) on the calling thread.
static int bf16_block(const struct bf16_args *g, nn_int m0, nn_int m1, nn_int n0, nn_int n1) {
    const struct nn_bf16_ukr_info *K = &g->K;
    const nn_int kpc = NN_BF16_KP_MAX;
    const nn_int nc = NN_BF16_NC / K->nr * K->nr, mc = NN_BF16_MC / K->mr * K->mr;
    uint32_t *bp = (uint32_t *)nn_workspace(NN_WS_GEMM_B, (size_t)kpc * nc * 4);
    uint32_t *ap = (uint32_t *)nn_workspace(NN_WS_GEMM_A, (size_t)kpc * mc * 4);
    if (bp == NULL || ap == NULL) return NN_ERR_NOMEM;
#ifdef NN_X86_64
    if (K->amx) nn_bf16_amx_begin();
#endif
    for (nn_int jc = n0; jc < n1; jc += nc) {
        const nn_int nb = n1 - jc < nc ? n1 - jc : nc;
        for (nn_int pc = 0; pc < g->k; pc += NN_BF16_KC) {
            const nn_int kb = g->k - pc < NN_BF16_KC ? g->k - pc : NN_BF16_KC;
            const nn_int kp = (kb + 1) / 2;
            const nn_int kpad = K->amx ? (kp + NN_AMX_PAIRS - 1) / NN_AMX_PAIRS * NN_AMX_PAIRS
                                       : kp;
            const int acc = g->accumulate || pc > 0;
            K->pack_b(bp, g->b, g->ldb, g->trans_b, pc, kb, kpad, jc, nb, K->nr);
            for (nn_int ic = m0; ic < m1; ic += mc) {
                const nn_int mb = m1 - ic < mc ? m1 - ic : mc;
                K->pack_a(ap, g->a, g->lda, g->trans_a, ic, mb, pc, kb, kpad, K->mr, K->amx);
                for (nn_int jr = 0; jr < nb; jr += K->nr)
                    for (nn_int ir = 0; ir < mb; ir += K->mr) {
                        const int rows = mb - ir < K->mr ? (int)(mb - ir) : K->mr;
                        const int cols = nb - jr < K->nr ? (int)(nb - jr) : K->nr;
                        K->ukr(kpad, ap + ir * kpad, bp + jr * kpad,
                               g->c + (ic + ir) * g->ldc + jc + jr, g->ldc, rows, cols, acc);
                        if (pc + kb == g->k) bf16_epilogue(g, ic + ir, jc + jr, rows, cols);
                    }
                if (pc + kb == g->k) bf16_update(g, ic, jc, mb, nb);
            }
        }
    }
#ifdef NN_X86_64
    if (K->amx) nn_bf16_amx_end();
#endif
    return NN_OK;
}

// ---- a few rows: B read in place ---------------------------------------------------------------
// A product of at most NN_BF16_FEW_ROWS rows of A (a one-sample predict) uses each element of
// B once or a few times: packing B would read it, write it and read it again. Here B's rows
// (not transposed) are read in order and rounded as they are read, the pairs summed with the
// emulation's arithmetic in the packed path's k blocks - the same bits as the emulated and
// VDPBF16PS kernels (AMX's tiles round in their own order: last bits may differ from them).
#define NN_BF16_FEW_ROWS 4
#define NN_BF16_FEW_COLS 512  // columns of partial sums at a time: 4 rows x 2 KiB, in L1

NN_INLINE float nn_bf16_value(float x) { return nn_bf16_lo(nn_bf16_bits(x)); }  // x rounded

// c rows [0, m) x columns [j0, j1).
NN_INLINE void few_rows_body(const struct bf16_args *g, nn_int j0, nn_int j1) {
    enum { R = NN_BF16_FEW_ROWS, CW = NN_BF16_FEW_COLS };
    float acc[R][CW], lo[CW], hi[CW];
    const nn_int m = g->m;
    for (nn_int jc = j0; jc < j1; jc += CW) {
        const nn_int w = j1 - jc < CW ? j1 - jc : CW;
        for (nn_int pc = 0; pc < g->k; pc += NN_BF16_KC) {
            const nn_int kb = g->k - pc < NN_BF16_KC ? g->k - pc : NN_BF16_KC;
            for (nn_int i = 0; i < m; i++)
                for (nn_int j = 0; j < w; j++) acc[i][j] = 0;
            for (nn_int q = 0; 2 * q < kb; q++) {
                const nn_int p = pc + 2 * q;
                const int odd = 2 * q + 1 < kb;
                const float *be = g->b + p * g->ldb + jc, *bo = be + g->ldb;
                if (m == 1) {  // one row: each weight once, rounded where it is used
                    const float alo = nn_bf16_value(g->a[p]);
                    const float ahi = odd ? nn_bf16_value(g->a[p + 1]) : 0.0f;
                    float *s = acc[0];
                    if (odd)
                        for (nn_int j = 0; j < w; j++) {
                            s[j] += ahi * nn_bf16_value(bo[j]);
                            s[j] += alo * nn_bf16_value(be[j]);
                        }
                    else
                        for (nn_int j = 0; j < w; j++) {
                            s[j] += ahi * 0.0f;  // the padding's product, as the kernels add it
                            s[j] += alo * nn_bf16_value(be[j]);
                        }
                    continue;
                }
                for (nn_int j = 0; j < w; j++) lo[j] = nn_bf16_value(be[j]);
                for (nn_int j = 0; j < w; j++) hi[j] = odd ? nn_bf16_value(bo[j]) : 0.0f;
                for (nn_int i = 0; i < m; i++) {
                    const float *ar = g->a + i * g->lda + p;
                    const float alo = nn_bf16_value(ar[0]), ahi = odd ? nn_bf16_value(ar[1]) : 0;
                    float *s = acc[i];
                    for (nn_int j = 0; j < w; j++) {
                        s[j] += ahi * hi[j];
                        s[j] += alo * lo[j];
                    }
                }
            }
            const int add = g->accumulate || pc > 0;
            for (nn_int i = 0; i < m; i++) {
                float *cr = g->c + i * g->ldc + jc;
                for (nn_int j = 0; j < w; j++) cr[j] = add ? cr[j] + acc[i][j] : acc[i][j];
            }
        }
        bf16_epilogue(g, 0, jc, m, w);
        bf16_update(g, 0, jc, m, w);
    }
}

NN_ISA_VARIANTS(few_rows_cols, const struct bf16_args *, few_rows_body)

// The few-rows product over the threads, each a range of whole column blocks.
static void few_rows(const struct bf16_args *g, int n_threads) {
    void (*run)(const struct bf16_args *, nn_int, nn_int) = NN_ISA_PICK(few_rows_cols);
    const nn_int blocks = (g->n + NN_BF16_FEW_COLS - 1) / NN_BF16_FEW_COLS;
    int nt = nn_threads_for(n_threads, g->n * g->k, (nn_int)1 << 16);
    if (nt > blocks) nt = (int)blocks;
    NN_PARALLEL_FOR(nt, t, nt, {
        const nn_int b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
        const nn_int j1 = b1 * NN_BF16_FEW_COLS < g->n ? b1 * NN_BF16_FEW_COLS : g->n;
        run(g, b0 * NN_BF16_FEW_COLS, j1);
    });
}

int nn_gemm_bf16_ex(float *c, const float *a, const float *b, nn_int m, nn_int n, nn_int k,
                    nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                    int accumulate, const float *bias, float *z, nn_int ldz, int act,
                    float alpha, const nn_update *upd, int n_threads) {
    if (m <= 0 || n <= 0) return NN_OK;
    struct bf16_args g = {c, a, b, m, n, k, lda, ldb, ldc, trans_a, trans_b, accumulate,
                          bf16_kernel(), bias, z, ldz, act,
                          bias != NULL || z != NULL || act != NN_ACT_IDENTITY, alpha, upd};
    if (k <= 0) {  // no products: c (or 0), then the epilogue and the step
        for (nn_int i = 0; i < m; i++)
            if (!accumulate) memset(c + i * ldc, 0, (size_t)n * sizeof(float));
        bf16_epilogue(&g, 0, 0, m, n);
        bf16_update(&g, 0, 0, m, n);
        return NN_OK;
    }
    if (m <= NN_BF16_FEW_ROWS && !trans_a && !trans_b) {
        few_rows(&g, n_threads);
        return NN_OK;
    }
    // Threads take whole tiles of columns or of rows. Each packs its part of one operand and
    // all of the other: split the columns when A is the smaller and not transposed (each
    // packs all of A; a transposed A packs slowest, through a buffer), else the rows (each
    // packs all of B) - if there are tiles enough for every thread.
    const nn_int n_tiles = (n + g.K.nr - 1) / g.K.nr, m_tiles = (m + g.K.mr - 1) / g.K.mr;
    int nt = nn_threads_for(n_threads, m * n * k, (nn_int)1 << 18);
    const int by_cols = m_tiles < nt || (n_tiles >= nt && m <= n && !trans_a);
    const nn_int tiles = by_cols ? n_tiles : m_tiles;
    if (nt > tiles) nt = (int)tiles;
    int status = NN_OK;
    NN_PARALLEL_FOR(nt, t, nt, {
        const nn_int t0 = tiles * t / nt, t1 = tiles * (t + 1) / nt;
        int s;
        if (by_cols) {
            const nn_int j0 = t0 * g.K.nr, j1 = t1 * g.K.nr < n ? t1 * g.K.nr : n;
            s = bf16_block(&g, 0, m, j0, j1);
        } else {
            const nn_int i0 = t0 * g.K.mr, i1 = t1 * g.K.mr < m ? t1 * g.K.mr : m;
            s = bf16_block(&g, i0, i1, 0, n);
        }
        if (s != NN_OK) status = s;
    });
    return status;
}

int nn_gemm_bf16(float *c, const float *a, const float *b, nn_int m, nn_int n, nn_int k,
                 nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b, int accumulate,
                 int n_threads) {
    return nn_gemm_bf16_ex(c, a, b, m, n, k, lda, ldb, ldc, trans_a, trans_b, accumulate, NULL,
                           NULL, 0, NN_ACT_IDENTITY, 0.0f, NULL, n_threads);
}
