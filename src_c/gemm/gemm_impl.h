// gemm_impl.h - the GEMM driver, written once for T = float / double (included by gemm.c,
// which also defines KERNELS_T, the path's kernel table type for T).
// Loop nest after BLIS, mirrored because our kernels broadcast A and vectorise along B's rows:
// jc (nc columns of B) > pc (kc of K: pack a kc x nc block of B, kept in L2) > ic (mc rows:
// pack A) > ir (one mr x kc micro-panel of A, kept in L1) > jr (nr columns: B's micro-panels
// stream from L2) > micro-kernel. Threads split C into disjoint blocks of whole tiles;
// the K blocking never depends on the split, so every element is summed in the same order
// whatever the thread count. Edge tiles are computed in place by the kernels (lane masks).

// op(a)(i, p) for i in [i0, i0 + mc), p in [p0, p0 + kc) -> micro-panels of (kc, mr).
static void NN_T(pack_a)(const KERNELS_T *K, T *NN_RESTRICT dst, const T *NN_RESTRICT a,
                         nn_int lda, int trans, nn_int i0, nn_int mc, nn_int p0, nn_int kc,
                         int mr) {
    for (nn_int ir = 0; ir < mc; ir += mr, dst += kc * mr) {
        nn_int rows = mc - ir < mr ? mc - ir : mr;
        if (!trans) {  // a(i, p) = a[i * lda + p]
            K->transpose(dst, mr, a + (i0 + ir) * lda + p0, lda, rows, kc);
        } else {  // a(i, p) = a[p * lda + i]: rows of the panel are contiguous already
            const T *src = a + p0 * lda + i0 + ir;
            for (nn_int p = 0; p < kc; p++) {
                nn_int i = 0;  // fixed-size chunks: moves, not a memcpy call per row
                for (; i + 4 <= rows; i += 4)
                    for (int q = 0; q < 4; q++) dst[p * mr + i + q] = src[p * lda + i + q];
                for (; i < rows; i++) dst[p * mr + i] = src[p * lda + i];
            }
        }
        for (nn_int p = 0; p < kc && rows < mr; p++)
            for (nn_int i = rows; i < mr; i++) dst[p * mr + i] = 0;
    }
}

// op(b)(p, j) for p in [p0, p0 + kc), j in [j0, j0 + nc) -> micro-panels of (kc, nr).
static void NN_T(pack_b)(const KERNELS_T *K, T *NN_RESTRICT dst, const T *NN_RESTRICT b,
                         nn_int ldb, int trans, nn_int p0, nn_int kc, nn_int j0, nn_int nc,
                         int nr) {
    if (!trans) {  // b(p, j) = b[p * ldb + j]
        // Each row of the block is read once, in order, and dealt out to the strips: a strip
        // at a time would read nr values from each of kc rows ldb apart, which no prefetcher
        // follows. G rows go together, a strip of each in turn, with the same strip of the
        // next G rows prefetched: eight rows in flight, as in the plan's gather_rows.
        const nn_int G = 4, line = 64 / (nn_int)sizeof(T);
        for (nn_int p = 0; p < kc; p += G) {
            const nn_int rows = kc - p < G ? kc - p : G;
            const nn_int left = kc - p - rows, next = left < G ? left : G;
            for (nn_int jr = 0; jr < nc; jr += nr) {
                nn_int cols = nc - jr < nr ? nc - jr : nr;
                for (nn_int q = 0; q < next; q++)
                    for (nn_int e = 0; e < cols; e += line)
                        NN_PREFETCH(b + (p0 + p + rows + q) * ldb + j0 + jr + e);
                for (nn_int q = 0; q < rows; q++) {
                    const T *src = b + (p0 + p + q) * ldb + j0 + jr;
                    T *d = dst + jr * kc + (p + q) * nr;
                    nn_int j = 0;
                    for (; j + 8 <= cols; j += 8)  // fixed-size chunks: moves, not memcpy calls
                        for (int e = 0; e < 8; e++) d[j + e] = src[j + e];
                    for (; j < cols; j++) d[j] = src[j];
                    for (; j < nr; j++) d[j] = 0;
                }
            }
        }
        return;
    }
    for (nn_int jr = 0; jr < nc; jr += nr, dst += kc * nr) {  // b(p, j) = b[j * ldb + p]
        nn_int cols = nc - jr < nr ? nc - jr : nr;
        K->transpose(dst, nr, b + (j0 + jr) * ldb + p0, ldb, cols, kc);
        for (nn_int p = 0; p < kc && cols < nr; p++)
            for (nn_int j = cols; j < nr; j++) dst[p * nr + j] = 0;
    }
}

struct NN_T(gemm_args) {
    T *c;
    const T *a, *b;
    nn_int m, n, k, lda, ldb, ldc;
    int trans_a, trans_b, accumulate;
    const T *bias;
    T *z;
    nn_int ldz;
    int act;
    T alpha;
    int epilogue;
    // The direct path reads op(b) as row-major (k, n) at bd with row stride ldbd.
    const T *bd;
    nn_int ldbd;
    const nn_update *upd;  // or NULL
};

// The optimizer's step on a finished block of c (a gradient): rows [i0, i0 + rows) x columns
// [j0, j0 + cols), read from c, or from tile (row stride ldt) when not NULL.
static inline void NN_T(update_block)(const struct NN_T(gemm_args) *g, nn_int i0, nn_int j0,
                                      nn_int rows, nn_int cols, const T *tile, nn_int ldt) {
    if (g->upd)
        g->upd->fn(g->upd->args, g->c + i0 * g->ldc + j0 - (const T *)g->upd->origin, rows,
                   cols, g->ldc, tile, ldt);
}

static inline void NN_T(update_tile)(const struct NN_T(gemm_args) *g, nn_int i0, nn_int j0,
                                     nn_int rows, nn_int cols) {
    NN_T(update_block)(g, i0, j0, rows, cols, NULL, 0);
}

// The bias and activation of a finished tile, while it is in L1.
static inline void NN_T(epilogue_tile)(const struct NN_T(gemm_args) *g, nn_int i0, nn_int j0,
                                       nn_int rows, nn_int cols) {
    if (g->epilogue)
        NN_T(nn_act_tile)(g->c + i0 * g->ldc + j0, g->ldc, g->z ? g->z + i0 * g->ldz + j0 : NULL,
                          g->ldz, g->bias ? g->bias + j0 : NULL, rows, cols, g->act, g->alpha);
}

// Both, for a path that finishes c tile by tile.
static inline void NN_T(finish_tile)(const struct NN_T(gemm_args) *g, nn_int i0, nn_int j0,
                                     nn_int rows, nn_int cols) {
    NN_T(epilogue_tile)(g, i0, j0, rows, cols);
    NN_T(update_tile)(g, i0, j0, rows, cols);
}

// A last panel of a few rows (batch 64 = 5 x 12 + 4) takes the short kernel, NN_MR_SHORT rows
// at a time, when the full one would do more rows' work. The kernels sum each element alike.
static inline int NN_T(few_rows)(nn_int rows, int mr) {
    return (rows + NN_MR_SHORT - 1) / NN_MR_SHORT * NN_MR_SHORT < mr;
}

static void NN_T(short_rows)(const KERNELS_T *K, nn_int kc, const T *a, nn_int rs_a,
                             nn_int cs_a, const T *b, nn_int ldb, T *c, nn_int ldc, nn_int rows,
                             nn_int cols, int acc) {
    UKR_T ukr = K->direct[1][cols <= K->nr_narrow];
    for (nn_int i = 0; i < rows; i += NN_MR_SHORT)
        ukr(kc, a + i * rs_a, rs_a, cs_a, b, ldb, c + i * ldc, ldc,
            (int)(rows - i < NN_MR_SHORT ? rows - i : NN_MR_SHORT), (int)cols, acc);
}

// The k block of the packed path: kc, or the whole of k when that is at most half a block
// more and an mr x k panel of A still fits in L1. Two blocks, the second short, cost an extra
// pass over c and a short k loop.
static inline nn_int NN_T(k_block)(const KERNELS_T *K, nn_int k) {
    return k <= K->kc + K->kc / 2 && K->mr * k * (nn_int)sizeof(T) <= K->rules.k_one_block_bytes
               ? k : K->kc;
}

// Before each kernel call of a panel that ends with the optimizer step, the step's rows of
// the next panel (the parameters and optimizer state under those columns, nn_update.arrays)
// are fetched, so that the step finds them in L1 instead of waiting on memory for each row.
// Only for a gradient of more than rules.upd_prefetch_bytes, beyond L2: for one that stays
// in L2 the prefetches only cost.
static inline void NN_T(prefetch_step_rows)(const struct NN_T(gemm_args) *g, nn_int i0,
                                            nn_int rows, nn_int j0, nn_int cols) {
    const nn_int off = g->c + i0 * g->ldc + j0 - (const T *)g->upd->origin;
    const int n_arrays = (int)(sizeof g->upd->arrays / sizeof g->upd->arrays[0]);
    for (int a = 0; a < n_arrays && g->upd->arrays[a]; a++)
        for (nn_int r = 0; r < rows; r++) {
            const T *row = (const T *)g->upd->arrays[a] + off + r * g->ldc;
            for (nn_int q = 0; q < cols; q += 64 / (nn_int)sizeof(T)) NN_PREFETCH_W(row + q);
        }
}

// C rows [m0, m1) x columns [n0, n1), packed path, on the calling thread.
static int NN_T(gemm_block_packed)(const struct NN_T(gemm_args) *g, const KERNELS_T *K,
                                   nn_int m0, nn_int m1, nn_int n0, nn_int n1) {
    const int mr = K->mr, nr = K->nr;
    const nn_int kcb = NN_T(k_block)(K, g->k), kc_max = g->k < kcb ? g->k : kcb;
    // A short k (x^T.dZ: k is the batch) makes the kc x nc block of B shorter: it may then be
    // wider for the same L2 budget, so that A is packed fewer times (once per nc columns).
    // The K blocking, and so every sum, stays as it is.
    const nn_int nc_step = K->kc * K->nc / kc_max / nr * nr;
    nn_int nc_max = (n1 - n0 + nr - 1) / nr * nr, mc_max = (m1 - m0 + mr - 1) / mr * mr;
    if (nc_max > nc_step) nc_max = nc_step;
    if (mc_max > K->mc) mc_max = K->mc;
    // All rows in one block (m <= mc: a batch of up to 480) and several column blocks: A's
    // panels for every k block are kept, so A is packed once, not once per nc columns.
    const int a_keep = m1 - m0 <= K->mc && n1 - n0 > nc_step &&
                       mc_max * g->k * (nn_int)sizeof(T) <= K->rules.a_keep_bytes;
    T *ap = (T *)nn_workspace(NN_WS_GEMM_A,
                              (size_t)(mc_max * (a_keep ? g->k : kc_max)) * sizeof(T));
    T *bp = (T *)nn_workspace(NN_WS_GEMM_B, (size_t)(kc_max * nc_max) * sizeof(T));
    // A gradient whose tiles are final after one k block, with an optimizer step that need not
    // find them in c (nn_update.scratch): a panel of tiles (mr x nc) is formed in a buffer of
    // its own, stepped from there while in L1/L2, and never written to c, so that dW does not
    // pass through the caches beside W and its momentum.
    T *panel = NULL;
    if (g->upd && g->upd->scratch && kc_max == g->k && !g->accumulate && !g->epilogue) {
        panel = (T *)nn_workspace(NN_WS_GEMM_PANEL, (size_t)(mr * nc_max) * sizeof(T));
        if (!panel) return NN_ERR_NOMEM;
    }
    if (!ap || !bp) return NN_ERR_NOMEM;
    const int prefetch = g->upd && g->m * g->n * (nn_int)sizeof(T) > K->rules.upd_prefetch_bytes;

    for (nn_int jc = n0; jc < n1; jc += nc_step) {
        nn_int nc = n1 - jc < nc_step ? n1 - jc : nc_step;
        for (nn_int pc = 0; pc < g->k; pc += kcb) {
            nn_int kc = g->k - pc < kcb ? g->k - pc : kcb;
            int acc = g->accumulate || pc > 0, last = pc + kc >= g->k;
            NN_T(pack_b)(K, bp, g->b, g->ldb, g->trans_b, pc, kc, jc, nc, nr);
            for (nn_int ic = m0; ic < m1; ic += K->mc) {
                nn_int mc = m1 - ic < K->mc ? m1 - ic : K->mc;
                T *apc = a_keep ? ap + mc_max * pc : ap;
                if (!a_keep || jc == n0)
                    NN_T(pack_a)(K, apc, g->a, g->lda, g->trans_a, ic, mc, pc, kc, mr);
                for (nn_int ir = 0; ir < mc; ir += mr) {
                    nn_int rows = mc - ir < mr ? mc - ir : mr;
                    // A few rows (batch 256 = 21 x 12 + 4): the short kernel reads the same
                    // packed panels (a(i, p) at i + p mr, b's rows nr apart).
                    const int few = NN_T(few_rows)(rows, mr);
                    const nn_int ldt = panel ? nc_max : g->ldc;
                    const nn_int next = ic + ir + mr;
                    const nn_int next_rows = !last || !prefetch || next >= m1 ? 0
                                             : m1 - next < mr ? m1 - next : mr;
                    for (nn_int jr = 0; jr < nc; jr += nr) {
                        nn_int cols = nc - jr < nr ? nc - jr : nr;
                        T *ct = panel ? panel + jr : g->c + (ic + ir) * g->ldc + jc + jr;
                        if (next_rows) NN_T(prefetch_step_rows)(g, next, next_rows, jc + jr, cols);
                        if (few)
                            NN_T(short_rows)(K, kc, apc + ir * kc, 1, mr, bp + jr * kc, nr, ct,
                                             ldt, rows, cols, acc);
                        else
                            K->packed(kc, apc + ir * kc, 1, mr, bp + jr * kc, nr, ct, ldt,
                                      (int)rows, (int)cols, acc);
                        if (last) NN_T(epilogue_tile)(g, ic + ir, jc + jr, rows, cols);
                    }
                    // The step on the panel's rows at once, nc values of each: a call per
                    // tile would update only nr values of each of mr rows at a time.
                    if (last) NN_T(update_block)(g, ic + ir, jc, rows, nc, panel, nc_max);
                }
            }
        }
    }
    return NN_OK;
}

// A small batch (m <= NN_MR_SHORT) uses each row of B for a few multiply-adds only: B is then
// streamed in blocks of rules.kb_short rows, every column strip of a block before the next
// block, so that its rows are read nearly in order (the prefetchers follow) rather than one
// strip down all k rows at a time.

// The direct kernel form for m rows: 0 (mr rows), 1 (short: NN_MR_SHORT rows), 2 (one row).
static inline int NN_T(direct_form)(nn_int m) { return m == 1 ? 2 : m <= NN_MR_SHORT ? 1 : 0; }

// C rows [m0, m1) x columns [n0, n1), direct path: A read in place, B from g->bd (in place,
// or a transposed copy), edges masked in the kernels.
static int NN_T(gemm_block_direct)(const struct NN_T(gemm_args) *g, const KERNELS_T *K,
                                   nn_int m0, nn_int m1, nn_int n0, nn_int n1) {
    const int form = NN_T(direct_form)(g->m);
    const int mr = form == 2 ? 1 : form == 1 ? NN_MR_SHORT : K->mr;
    const int nr = form == 2 ? K->nr_row : K->nr;
    const nn_int rs_a = g->trans_a ? 1 : g->lda, cs_a = g->trans_a ? g->lda : 1;
    const nn_int kb = form ? K->rules.kb_short : g->k;
    // B's rows a whole number of vectors long but not starting on a vector boundary (NumPy
    // aligns large arrays to 16 bytes): every load of B would straddle two cache lines, so the
    // columns before the first boundary take a narrow tile of their own and the others start
    // on it. A column's sums are the same in any tile.
    const nn_int vb = K->nr_narrow * (nn_int)sizeof(T);  // a vector's bytes
    nn_int head = 0;
    if ((g->ldbd * (nn_int)sizeof(T)) % vb == 0) {
        head = (vb - (nn_int)((uintptr_t)(g->bd + n0) % (uintptr_t)vb)) % vb / (nn_int)sizeof(T);
        if (head >= n1 - n0) head = 0;
    }
    // Whether B stays in L2. A last panel of a few rows takes the short kernel only then: each
    // of its calls reads the strip of B again: cheap from L2, not from memory (rows a page
    // apart do not stay in L2).
    const int b_in_l2 = g->k * g->ldbd * (nn_int)sizeof(T) <= K->rules.read_b_bytes;
    if (form == 2 && !b_in_l2 &&
        (g->ldbd * (nn_int)sizeof(T)) % 2048 == 0 && (n1 - n0) % K->nr_narrow == 0) {
        // One row against a B that does not stay in L2, its rows a multiple of 2 KiB apart
        // (widths 512, 1024, 2048 float32): the row form's 64 rows of a k block would share
        // one or two sets of L1 lines. The stream kernel instead, all of this thread's columns
        // at once, a k block at a time (the same blocks, so the same sums). With other
        // strides the row form is as fast or faster.
        for (nn_int pc = 0; pc < g->k; pc += kb) {
            nn_int kc = g->k - pc < kb ? g->k - pc : kb;
            K->stream(kc, g->a + pc * cs_a, rs_a, cs_a, g->bd + pc * g->ldbd + n0, g->ldbd,
                      g->c + n0, g->ldc, 1, (int)(n1 - n0), g->accumulate || pc > 0);
        }
        NN_T(finish_tile)(g, 0, n0, 1, n1 - n0);
        return NN_OK;
    }
    for (nn_int pc = 0; pc < g->k; pc += kb) {
        nn_int kc = g->k - pc < kb ? g->k - pc : kb;
        int acc = g->accumulate || pc > 0, last = pc + kc >= g->k;
        for (nn_int j0 = n0, width; j0 < n1; j0 += width) {
            width = j0 == n0 && head ? head : n1 - j0 < nr ? n1 - j0 : nr;
            // A narrow edge takes the one-vector kernel: same sums, a fraction of the work.
            // The one-row kernel is eight vectors wide: up to two vectors, two one-vector
            // calls instead.
            nn_int step = form == 2 && width <= 2 * K->nr_narrow ? K->nr_narrow : width;
            for (nn_int jr = j0; jr < j0 + width; jr += step) {
                nn_int cols = j0 + width - jr < step ? j0 + width - jr : step;
                UKR_T ukr = K->direct[form][cols <= K->nr_narrow];
                const T *bt = g->bd + pc * g->ldbd + jr;
                for (nn_int ir = m0; ir < m1; ir += mr) {
                    nn_int rows = m1 - ir < mr ? m1 - ir : mr;
                    if (form == 0 && b_in_l2 && NN_T(few_rows)(rows, mr))
                        NN_T(short_rows)(K, kc, g->a + ir * rs_a + pc * cs_a, rs_a, cs_a, bt,
                                         g->ldbd, g->c + ir * g->ldc + jr, g->ldc, rows, cols,
                                         acc);
                    else
                        ukr(kc, g->a + ir * rs_a + pc * cs_a, rs_a, cs_a, bt, g->ldbd,
                            g->c + ir * g->ldc + jr, g->ldc, (int)rows, (int)cols, acc);
                    if (last) NN_T(finish_tile)(g, ir, jr, rows, cols);
                }
            }
        }
    }
    return NN_OK;
}

// Outputs per call of the inner-product kernel: at batch 1 on a SIMD path, one vector of them
// (their sums are formed together); else the path's dot_n.
static inline nn_int NN_T(dot_width)(const KERNELS_T *K, nn_int m) {
    return m == 1 && K->nr_narrow > 1 ? K->nr_narrow : K->dot_n;
}

// C rows [m0, m1) x columns [n0, n1) = A . B^T for a small batch: inner products along the
// rows of A and B, both read in place (m0 = 0, m1 = m <= NN_MR_SHORT).
static int NN_T(gemm_block_dot)(const struct NN_T(gemm_args) *g, const KERNELS_T *K,
                                nn_int m0, nn_int m1, nn_int n0, nn_int n1) {
    const nn_int step = NN_T(dot_width)(K, g->m);
    for (nn_int jr = n0; jr < n1; jr += step) {
        nn_int cols = n1 - jr < step ? n1 - jr : step;
        K->dot(g->k, g->a + m0 * g->lda, g->lda, g->b + jr * g->ldb, g->ldb,
               g->c + m0 * g->ldc + jr, g->ldc, (int)(m1 - m0), (int)cols, g->accumulate);
        NN_T(finish_tile)(g, m0, jr, m1 - m0, cols);
    }
    return NN_OK;
}

// Packing pays for itself only when each packed element is reused many times; below these
// sizes the direct path is faster (measured in benchmarks/bench_gemm.py). With a few rows
// (direct_rows: a small batch) each element of B is used a few times only, and a B no wider
// than one tile (an output layer) would make a packed panel mostly padding: both read B in
// place whatever k is; so do products of a short k and little work (direct_k, direct_work).
// Up to thin_rows rows and thin_k of k, a B read in place from memory as the kernel goes
// beats packing it first, whatever its size (with a longer k a column strip spans more pages
// than the TLB holds) - but not a transposed B, which would be copied whole. Up to read_rows
// rows, a B of at most read_cols columns that fits in read_b_bytes (the L2 budget of a packed
// block, cpu.c) is read in place too. But x^T.dZ (A read transposed) of xt_rows rows or more,
// xt_work multiply-adds or more and B whole tiles wide is packed: read in place, each tile
// takes a few values from each of k rows of x, m values apart, again for every column strip.
static int NN_T(use_direct)(const KERNELS_T *K, nn_int m, nn_int n, nn_int k, int trans_a,
                            int trans_b) {
    const struct nn_gemm_rules *R = &K->rules;
    const int tall_xt = trans_a && m >= R->xt_rows && n % K->nr == 0 && m * n * k >= R->xt_work;
    return m <= R->direct_rows || n <= K->nr ||
           (k <= R->direct_k && m * n * k <= R->direct_work && !tall_xt) ||
           (m <= R->thin_rows && k <= R->thin_k && !trans_b) ||
           (m <= R->read_rows && n <= R->read_cols &&
            k * n * (nn_int)sizeof(T) <= R->read_b_bytes);
}

// Products too small for a micro-kernel's set-up to pay (a tiny network at batch 1: 1x2x3):
// plain loops, the same sums on every CPU path. Chosen by shape alone, like the paths above.
int NN_T(nn_gemm_tiny)(T *c, const T *a, const T *b, nn_int m, nn_int n, nn_int k, nn_int lda,
                       nn_int ldb, nn_int ldc, int trans_a, int trans_b, int accumulate,
                       const T *bias, T *z, nn_int ldz, int act, T alpha) {
    const nn_int rs_a = trans_a ? 1 : lda, cs_a = trans_a ? lda : 1;
    const nn_int rs_b = trans_b ? 1 : ldb, cs_b = trans_b ? ldb : 1;
    const int epilogue = bias != NULL || z != NULL || act != NN_ACT_IDENTITY;
    for (nn_int i = 0; i < m; i++) {
        T *ci = c + i * ldc;
        const T *ai = a + i * rs_a;
        for (nn_int j = 0; j < n; j++) {
            T s = 0;
            for (nn_int p = 0; p < k; p++) s += ai[p * cs_a] * b[p * rs_b + j * cs_b];
            ci[j] = accumulate ? ci[j] + s : s;
        }
        if (epilogue)
            NN_T(nn_act_tile)(ci, ldc, z ? z + i * ldz : NULL, ldz, bias, 1, n, act, alpha);
    }
    return NN_OK;
}

// Split the (m, n) tile grid over nt threads: tm x tn blocks, tm * tn = nt, minimising the
// largest block; among equal ones, the least packing per thread (each thread packs its rows
// of A and its columns of B: x^T.dZ, 784x64x256, packs 784 + 128 rows of 64 split by
// columns, 392 + 256 split by rows).
static void NN_T(split)(nn_int m_tiles, nn_int n_tiles, int mr, int nr, int nt, int *tm,
                        int *tn) {
    nn_int best = -1, best_pack = -1;
    for (int a = 1; a <= nt; a++) {
        if (nt % a) continue;
        int b = nt / a;
        nn_int mt = (m_tiles + a - 1) / a, ntl = (n_tiles + b - 1) / b;
        nn_int cost = mt * ntl, pack = mt * mr + ntl * nr;
        if (best < 0 || cost < best || (cost == best && pack < best_pack))
            best = cost, best_pack = pack, *tm = a, *tn = b;
    }
}

static int NN_T(gemm_run)(T *c, const T *a, const T *b, nn_int m, nn_int n, nn_int k,
                          nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                          int accumulate, const T *bias, T *z, nn_int ldz, int act, T alpha,
                          const nn_update *upd, int n_threads);

int NN_T(nn_gemm_ex)(T *c, const T *a, const T *b, nn_int m, nn_int n, nn_int k, nn_int lda,
                     nn_int ldb, nn_int ldc, int trans_a, int trans_b, int accumulate,
                     const T *bias, T *z, nn_int ldz, int act, T alpha, int n_threads) {
    return NN_T(gemm_run)(c, a, b, m, n, k, lda, ldb, ldc, trans_a, trans_b, accumulate, bias,
                          z, ldz, act, alpha, NULL, n_threads);
}

int NN_T(nn_gemm_upd)(T *c, const T *a, const T *b, nn_int m, nn_int n, nn_int k, nn_int lda,
                      nn_int ldb, nn_int ldc, int trans_a, int trans_b, int accumulate,
                      const nn_update *upd, int n_threads) {
    return NN_T(gemm_run)(c, a, b, m, n, k, lda, ldb, ldc, trans_a, trans_b, accumulate, NULL,
                          NULL, 0, NN_ACT_IDENTITY, 0, upd, n_threads);
}

// C (m, n) = op(a) . op(b) formed as its transpose C^T = op(b)^T . op(a)^T (n, m) in a
// workspace - op_b^T is b read with trans_b_inner, op_a^T is a read with trans_a_inner - then
// written into C by one transpose. For shapes where the transposed form lays the long side
// along the vectors, or reads the large operand in place.
static int NN_T(gemm_as_transpose)(const KERNELS_T *K, T *c, const T *a, const T *b, nn_int m,
                                   nn_int n, nn_int k, nn_int lda, nn_int ldb, nn_int ldc,
                                   int trans_b_inner, int trans_a_inner, int n_threads) {
    T *ct = (T *)nn_workspace(NN_WS_GEMM_CT, (size_t)(n * m) * sizeof(T));
    if (!ct) return NN_ERR_NOMEM;
    int s = NN_T(nn_gemm_ex)(ct, b, a, n, m, k, ldb, lda, m, trans_b_inner, trans_a_inner, 0,
                             NULL, NULL, 0, NN_ACT_IDENTITY, 0, n_threads);
    if (s == NN_OK) K->transpose(c, ldc, ct, m, n, m);
    return s;
}

// How a product runs: the one place that chooses, from its shape alone (so the sums never
// depend on the thread count), with the thresholds of the CPU path's rules (dispatch.h).
#ifndef NN_GEMM_PATHS_ONCE  // dtype-independent, once
#define NN_GEMM_PATHS_ONCE
enum {
    NN_GEMM_PATH_TINY,      // plain loops (nn_gemm_tiny)
    NN_GEMM_PATH_T_NARROW,  // formed as C^T = B^T . A, then one transpose
    NN_GEMM_PATH_T_ROWS,    // formed as C^T = B . A^T, then one transpose
    NN_GEMM_PATH_DOT,       // inner products (gemm_block_dot)
    NN_GEMM_PATH_DIRECT,    // operands read in place (gemm_block_direct)
    NN_GEMM_PATH_PACKED     // packed, cache-blocked (gemm_block_packed)
};
#endif

// The path of c (m, n) (+)= op(a) . op(b) (k), and the kernels *K of the CPU path in use.
// NN_GEMM_TINY is a constant of the core, not a rule: the plan's tiny step relies on it.
static int NN_T(gemm_select)(const KERNELS_T **K_out, nn_int m, nn_int n, nn_int k,
                             int trans_a, int trans_b, int accumulate, int epilogue) {
    if (m * n * k <= NN_GEMM_TINY) return NN_GEMM_PATH_TINY;
    const KERNELS_T *K = *K_out = &nn_dispatch_get()->NN_T(gemm);
    const struct nn_gemm_rules *R = &K->rules;
    const int plain = !accumulate && !epilogue;
    // A . B with a narrow B, A read transposed (dW = x^T . dZ of an output layer): a narrow
    // tile would use n of each vector's lanes. C^T = B^T . A puts the long side along the
    // vectors, then one transpose (n x m, small) writes C. Same sums.
    if (trans_a && !trans_b && plain && n <= K->nr_narrow && m > n && k > 1)
        return NN_GEMM_PATH_T_NARROW;
    // A . B^T at batch 5-32 (dX = dZ . W^T): the paths below would copy or pack all of B^T for
    // a few rows of A. C^T = B . A^T reads B's rows in place as its A, and packs only A^T
    // (k x m, small); then one transpose (n x m) writes C. Past bt_rows rows only from
    // bt_wide_work multiply-adds: smaller products gain on one thread but lose on two. Its
    // inner call has n >= bt_min_cols rows: no loop.
    if (trans_b && !trans_a && plain && m > NN_MR_SHORT && k >= R->bt_min_k &&
        n >= R->bt_min_cols &&
        (m <= R->bt_rows || (m <= R->bt_wide_rows && m * n * k >= R->bt_wide_work)))
        return NN_GEMM_PATH_T_ROWS;
    // A . B^T at batch 1 to 4: inner products, unless they are too short to pay for their
    // horizontal sums (then B^T is copied, k x n, which is small then); at batch 1 the sums of
    // a vector of outputs are formed together, so any k.
    if (trans_b && !trans_a && m <= NN_MR_SHORT &&
        (k >= R->dot_min_k || NN_T(dot_width)(K, m) > K->dot_n))
        return NN_GEMM_PATH_DOT;
    return NN_T(use_direct)(K, m, n, k, trans_a, trans_b) ? NN_GEMM_PATH_DIRECT
                                                         : NN_GEMM_PATH_PACKED;
}

// The GEMM; with upd, *tiled tells whether the tiles applied it (else the caller does).
static int NN_T(gemm_core)(T *c, const T *a, const T *b, nn_int m, nn_int n, nn_int k,
                           nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                           int accumulate, const T *bias, T *z, nn_int ldz, int act, T alpha,
                           const nn_update *upd, int *tiled, int n_threads) {
    if (m <= 0 || n <= 0) return NN_OK;
    int epilogue = bias != NULL || z != NULL || act != NN_ACT_IDENTITY;
    if (k <= 0) {  // an empty sum: c = 0 (or unchanged), then the epilogue
        for (nn_int i = 0; i < m; i++) {
            if (!accumulate) memset(c + i * ldc, 0, (size_t)n * sizeof(T));
            if (epilogue)
                NN_T(nn_act_tile)(c + i * ldc, ldc, z ? z + i * ldz : NULL, ldz, bias, 1, n,
                                  act, alpha);
        }
        return NN_OK;
    }
    const KERNELS_T *K = NULL;
    const int path = NN_T(gemm_select)(&K, m, n, k, trans_a, trans_b, accumulate, epilogue);
    if (path == NN_GEMM_PATH_TINY)
        return NN_T(nn_gemm_tiny)(c, a, b, m, n, k, lda, ldb, ldc, trans_a, trans_b, accumulate,
                                  bias, z, ldz, act, alpha);
    if (path == NN_GEMM_PATH_T_NARROW)
        return NN_T(gemm_as_transpose)(K, c, a, b, m, n, k, lda, ldb, ldc, 1, 0, n_threads);
    if (path == NN_GEMM_PATH_T_ROWS)
        return NN_T(gemm_as_transpose)(K, c, a, b, m, n, k, lda, ldb, ldc, 0, 1, n_threads);
    struct NN_T(gemm_args) g = {c, a, b, m, n, k, lda, ldb, ldc, trans_a, trans_b, accumulate,
                                bias, z, ldz, act, alpha, epilogue, b, ldb, upd};
    *tiled = upd != NULL;
    int (*block)(const struct NN_T(gemm_args) *, const KERNELS_T *, nn_int, nn_int, nn_int,
                 nn_int);
    int mr = K->mr, nr = K->nr, transpose_b = 0;
    if (path == NN_GEMM_PATH_DOT) {
        block = NN_T(gemm_block_dot), mr = NN_MR_SHORT, nr = (int)NN_T(dot_width)(K, m);
    } else if (path == NN_GEMM_PATH_DIRECT) {
        block = NN_T(gemm_block_direct);
        int form = NN_T(direct_form)(m);
        if (form) mr = form == 2 ? 1 : NN_MR_SHORT;
        if (form == 2) nr = K->nr_row;
        if (trans_b) {  // op(b) = b^T: one row-major copy (below: who writes which columns)
            const nn_int line = 64 / (nn_int)sizeof(T);
            nn_int ldt = (n + line - 1) / line * line;
            if ((ldt * (nn_int)sizeof(T)) % 4096 == 0) ldt += line;  // rows not a page apart
            T *bt = (T *)nn_workspace(NN_WS_GEMM_BT, (size_t)(k * ldt) * sizeof(T));
            if (!bt) return NN_ERR_NOMEM;
            g.bd = bt, g.ldbd = ldt;
            transpose_b = 1;
        }
    } else {
        block = NN_T(gemm_block_packed);
    }
    nn_int m_tiles = (m + mr - 1) / mr, n_tiles = (n + nr - 1) / nr;
    int nt = nn_threads_for(n_threads, m * n * k,
                            m == 1 ? NN_PAR_MIN_ROW_FLOPS : NN_PAR_MIN_FLOPS);
    if (nt > m_tiles * n_tiles) nt = (int)(m_tiles * n_tiles);
    // The update as the tiles are finished pays on several threads: each thread updates what
    // it computed, while the other products run. On one thread it pays only where the packed
    // path updates a panel of rows at a time; the direct path's tiles run down a column strip,
    // nr values of each row, so there the caller updates the whole of c right after. It pays
    // for layers of any size, those beyond the caches too, because the packed path fetches
    // the next panel's rows ahead (gemm_block_packed).
    if (nt <= 1 && block != NN_T(gemm_block_packed)) g.upd = NULL, *tiled = 0;
    if (nt <= 1) {
        if (transpose_b) K->transpose((T *)g.bd, g.ldbd, b, ldb, n, k);
        return block(&g, K, 0, m, 0, n);
    }

    int tm = 1, tn = nt, status = NN_OK;
    NN_T(split)(m_tiles, n_tiles, mr, nr, nt, &tm, &tn);
    // The copy of b^T: when each thread has columns of its own, it copies them itself (read
    // back from its own cache: a copy made by one core and read by the other costs more than
    // it saves); else one copy before.
    if (transpose_b && tm > 1) {
        K->transpose((T *)g.bd, g.ldbd, b, ldb, n, k);
        transpose_b = 0;
    }
    const unsigned caller_fp = nn_fp_get();
#pragma omp parallel num_threads(nt)
    {
        const unsigned own_fp = nn_fp_inherit(caller_fp);
#ifdef _OPENMP
        int t = omp_get_thread_num();
#else
        int t = 0;
#endif
        int ti = t / tn, tj = t % tn;
        // Contiguous runs of whole tiles, as even as possible.
        nn_int mt0 = m_tiles * ti / tm, mt1 = m_tiles * (ti + 1) / tm;
        nn_int nt0 = n_tiles * tj / tn, nt1 = n_tiles * (tj + 1) / tn;
        nn_int m0 = mt0 * mr, m1 = mt1 * mr < m ? mt1 * mr : m;
        nn_int n0 = nt0 * nr, n1 = nt1 * nr < n ? nt1 * nr : n;
        if (m0 < m1 && n0 < n1) {
            if (transpose_b)  // columns [n0, n1) of b^T are rows [n0, n1) of b
                K->transpose((T *)g.bd + n0, g.ldbd, b + n0 * ldb, ldb, n1 - n0, k);
            int s = block(&g, K, m0, m1, n0, n1);
            if (s != NN_OK) {
                // critical, not atomic write: MSVC's OpenMP is 2.0, which has no atomic write
                // (and this runs only on an error).
#pragma omp critical(nn_gemm_status)
                status = s;
            }
        }
        nn_fp_set(own_fp);
    }
    return status;
}

// The paths that do not finish c tile by tile (plain loops, a product formed transposed,
// k = 0, see gemm_core) leave the update to the end, over the whole of c, in chunks shared by
// the threads.
static void NN_T(update_all)(const nn_update *upd, T *c, nn_int m, nn_int n, nn_int ldc,
                             int n_threads) {
    const nn_int off = c - (const T *)upd->origin;
    if (ldc != n) {
        upd->fn(upd->args, off, m, n, ldc, NULL, 0);
        return;
    }
    const nn_int len = m * n, chunk = 4096, n_chunks = (len + chunk - 1) / chunk;
    int nt = nn_threads_for(n_threads, len, NN_PAR_MIN_ELEMS);
    NN_PARALLEL_FOR(nt, i, n_chunks, {
        nn_int lo = i * chunk, cnt = len - lo < chunk ? len - lo : chunk;
        upd->fn(upd->args, off + lo, 1, cnt, cnt, NULL, 0);
    });
}

static int NN_T(gemm_run)(T *c, const T *a, const T *b, nn_int m, nn_int n, nn_int k,
                          nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                          int accumulate, const T *bias, T *z, nn_int ldz, int act, T alpha,
                          const nn_update *upd, int n_threads) {
    int tiled = 0;
    int s = NN_T(gemm_core)(c, a, b, m, n, k, lda, ldb, ldc, trans_a, trans_b, accumulate, bias,
                            z, ldz, act, alpha, upd, &tiled, n_threads);
    if (s == NN_OK && upd != NULL && !tiled && m > 0 && n > 0)
        NN_T(update_all)(upd, c, m, n, ldc, n_threads);
    return s;
}

nn_int NN_T(nn_gemm_row_split)(nn_int rows, nn_int cols) {
    const KERNELS_T *K = &nn_dispatch_get()->NN_T(gemm);
    if (cols <= K->nr) return 0;
    nn_int m_tiles = (rows + K->mr - 1) / K->mr, n_tiles = (cols + K->nr - 1) / K->nr;
    int tm = 1, tn = 2;
    NN_T(split)(m_tiles, n_tiles, K->mr, K->nr, 2, &tm, &tn);
    return tm == 2 ? m_tiles / 2 * K->mr : 0;
}

int NN_T(nn_gemm_is_direct)(nn_int m, nn_int n, nn_int k) {
    return NN_T(use_direct)(&nn_dispatch_get()->NN_T(gemm), m, n, k, 0, 0);
}

int NN_T(nn_gemm)(T *c, const T *a, const T *b, nn_int m, nn_int n, nn_int k, nn_int lda,
                  nn_int ldb, nn_int ldc, int trans_a, int trans_b, int accumulate,
                  int n_threads) {
    return NN_T(nn_gemm_ex)(c, a, b, m, n, k, lda, ldb, ldc, trans_a, trans_b, accumulate, NULL,
                            NULL, 0, NN_ACT_IDENTITY, 0, n_threads);
}

void NN_T(nn_gemm_naive)(T *c, const T *a, const T *b, nn_int m, nn_int n, nn_int k,
                         nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                         int accumulate) {
    // c (m, n); op(a) (m, k); op(b) (k, n)
    for (nn_int i = 0; i < m; i++)
        for (nn_int j = 0; j < n; j++) {
            T s = 0;
            for (nn_int p = 0; p < k; p++)
                s += (trans_a ? a[p * lda + i] : a[i * lda + p]) *
                     (trans_b ? b[j * ldb + p] : b[p * ldb + j]);
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + s : s;
        }
}
