// gemm_impl.h - the GEMM driver, written once for T = float / double (included by gemm.c,
// which also defines UKR_T, the micro-kernel pointer type for T).
// Loop nest after BLIS: jc (nc columns of B) > pc (kc of K, pack B) > ic (mc rows, pack A)
// > jr (nr) > ir (mr) > micro-kernel. Threads split C into disjoint blocks of whole tiles;
// the K blocking never depends on the split, so every element is summed in the same order
// whatever the thread count.

// op(a)(i, p) for i in [i0, i0 + mc), p in [p0, p0 + kc) -> micro-panels of (kc, mr).
static void NN_T(pack_a)(T *NN_RESTRICT dst, const T *NN_RESTRICT a, nn_int lda, int trans,
                         nn_int i0, nn_int mc, nn_int p0, nn_int kc, int mr) {
    for (nn_int ir = 0; ir < mc; ir += mr) {
        nn_int rows = mc - ir < mr ? mc - ir : mr;
        if (!trans) {
            const T *src = a + (i0 + ir) * lda + p0;  // a(i, p) = src[i * lda + p]
            for (nn_int p = 0; p < kc; p++) {
                for (nn_int i = 0; i < rows; i++) dst[p * mr + i] = src[i * lda + p];
                for (nn_int i = rows; i < mr; i++) dst[p * mr + i] = 0;
            }
        } else {
            const T *src = a + p0 * lda + i0 + ir;  // a(i, p) = src[p * lda + i]
            for (nn_int p = 0; p < kc; p++) {
                for (nn_int i = 0; i < rows; i++) dst[p * mr + i] = src[p * lda + i];
                for (nn_int i = rows; i < mr; i++) dst[p * mr + i] = 0;
            }
        }
        dst += kc * mr;
    }
}

// op(b)(p, j) for p in [p0, p0 + kc), j in [j0, j0 + nc) -> micro-panels of (kc, nr).
static void NN_T(pack_b)(T *NN_RESTRICT dst, const T *NN_RESTRICT b, nn_int ldb, int trans,
                         nn_int p0, nn_int kc, nn_int j0, nn_int nc, int nr) {
    for (nn_int jr = 0; jr < nc; jr += nr) {
        nn_int cols = nc - jr < nr ? nc - jr : nr;
        if (!trans) {
            const T *src = b + p0 * ldb + j0 + jr;  // b(p, j) = src[p * ldb + j]
            for (nn_int p = 0; p < kc; p++) {
                for (nn_int j = 0; j < cols; j++) dst[p * nr + j] = src[p * ldb + j];
                for (nn_int j = cols; j < nr; j++) dst[p * nr + j] = 0;
            }
        } else {
            const T *src = b + (j0 + jr) * ldb + p0;  // b(p, j) = src[j * ldb + p]
            for (nn_int p = 0; p < kc; p++) {
                for (nn_int j = 0; j < cols; j++) dst[p * nr + j] = src[j * ldb + p];
                for (nn_int j = cols; j < nr; j++) dst[p * nr + j] = 0;
            }
        }
        dst += kc * nr;
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
    // The direct path reads op(b) as row-major (k, n) at bd with row stride ldbd; b_padded
    // when that copy is zero-padded to whole tiles (so edge tiles may read it too).
    const T *bd;
    nn_int ldbd;
    int b_padded;
};

// Store an edge tile (computed whole into scratch) and apply the epilogue to a finished tile.
static inline void NN_T(finish_tile)(const struct NN_T(gemm_args) *g, const T *tile, int nr,
                                     nn_int i0, nn_int j0, nn_int rows, nn_int cols, int acc,
                                     int last) {
    T *ct = g->c + i0 * g->ldc + j0;
    if (tile != NULL)
        for (nn_int i = 0; i < rows; i++)
            for (nn_int j = 0; j < cols; j++)
                ct[i * g->ldc + j] = acc ? ct[i * g->ldc + j] + tile[i * nr + j] : tile[i * nr + j];
    if (last && g->epilogue)
        NN_T(nn_act_tile)(ct, g->ldc, g->z ? g->z + i0 * g->ldz + j0 : NULL, g->ldz,
                          g->bias ? g->bias + j0 : NULL, rows, cols, g->act, g->alpha);
}

// C rows [m0, m1) x columns [n0, n1), packed path, on the calling thread.
static int NN_T(gemm_block_packed)(const struct NN_T(gemm_args) *g, const struct nn_dispatch *d,
                                   nn_int m0, nn_int m1, nn_int n0, nn_int n1) {
    const struct nn_gemm_shape *s = &d->NN_T(gemm);
    const int mr = s->mr, nr = s->nr;
    const nn_int kc_max = g->k < s->kc ? g->k : s->kc;
    nn_int nc_max = (n1 - n0 + nr - 1) / nr * nr, mc_max = (m1 - m0 + mr - 1) / mr * mr;
    if (nc_max > s->nc) nc_max = s->nc;
    if (mc_max > s->mc) mc_max = s->mc;
    T *ap = (T *)nn_workspace(0, (size_t)(mc_max * kc_max) * sizeof(T));
    T *bp = (T *)nn_workspace(1, (size_t)(kc_max * nc_max) * sizeof(T));
    T *tile = (T *)nn_workspace(2, (size_t)(mr * nr) * sizeof(T));
    if (!ap || !bp || !tile) return NN_ERR_NOMEM;

    for (nn_int jc = n0; jc < n1; jc += s->nc) {
        nn_int nc = n1 - jc < s->nc ? n1 - jc : s->nc;
        for (nn_int pc = 0; pc < g->k; pc += s->kc) {
            nn_int kc = g->k - pc < s->kc ? g->k - pc : s->kc;
            int acc = g->accumulate || pc > 0, last = pc + kc >= g->k;
            NN_T(pack_b)(bp, g->b, g->ldb, g->trans_b, pc, kc, jc, nc, nr);
            for (nn_int ic = m0; ic < m1; ic += s->mc) {
                nn_int mc = m1 - ic < s->mc ? m1 - ic : s->mc;
                NN_T(pack_a)(ap, g->a, g->lda, g->trans_a, ic, mc, pc, kc, mr);
                for (nn_int jr = 0; jr < nc; jr += nr) {
                    nn_int cols = nc - jr < nr ? nc - jr : nr;
                    for (nn_int ir = 0; ir < mc; ir += mr) {
                        nn_int rows = mc - ir < mr ? mc - ir : mr;
                        const T *at = ap + ir * kc, *bt = bp + jr * kc;
                        int full = rows == mr && cols == nr;
                        T *ct = full ? g->c + (ic + ir) * g->ldc + jc + jr : tile;
                        d->NN_T(ukr)(kc, at, 1, mr, bt, nr, ct, full ? g->ldc : nr, mr,
                                     full && acc);
                        NN_T(finish_tile)(g, full ? NULL : tile, nr, ic + ir, jc + jr, rows,
                                          cols, acc, last);
                    }
                }
            }
        }
    }
    return NN_OK;
}

// C rows [m0, m1) x columns [n0, n1), direct path: A read in place, B from g->bd; an edge
// panel of an unpadded B is copied (zero-padded) so no read runs past the end of b.
static int NN_T(gemm_block_direct)(const struct NN_T(gemm_args) *g, const struct nn_dispatch *d,
                                   nn_int m0, nn_int m1, nn_int n0, nn_int n1) {
    const int mr = d->NN_T(gemm).mr, nr = d->NN_T(gemm).nr;
    const nn_int k = g->k;
    const nn_int rs_a = g->trans_a ? 1 : g->lda, cs_a = g->trans_a ? g->lda : 1;
    T *tile = (T *)nn_workspace(2, (size_t)(mr * nr) * sizeof(T));
    if (!tile) return NN_ERR_NOMEM;
    for (nn_int jr = n0; jr < n1; jr += nr) {
        nn_int cols = n1 - jr < nr ? n1 - jr : nr;
        // A narrow edge takes the one-vector kernel: same sums, a fraction of the work.
        int narrow = cols <= d->NN_T(nr_narrow);
        int w = narrow ? d->NN_T(nr_narrow) : nr;
        UKR_T ukr = narrow ? d->NN_T(ukr_narrow) : d->NN_T(ukr_direct);
        const T *bt = g->bd + jr;
        nn_int ldbt = g->ldbd;
        if (cols < w && !g->b_padded) {
            T *edge = (T *)nn_workspace(1, (size_t)(k * w) * sizeof(T));
            if (!edge) return NN_ERR_NOMEM;
            for (nn_int p = 0; p < k; p++) {
                for (nn_int j = 0; j < cols; j++) edge[p * w + j] = bt[p * ldbt + j];
                for (nn_int j = cols; j < w; j++) edge[p * w + j] = 0;
            }
            bt = edge, ldbt = w;
        }
        for (nn_int ir = m0; ir < m1; ir += mr) {
            nn_int rows = m1 - ir < mr ? m1 - ir : mr;
            // A short row edge (batch 1 to 4) takes the 4-row kernel: the same sums again.
            int shrt = rows <= NN_MR_SHORT && !narrow;
            int full = rows == (shrt ? NN_MR_SHORT : mr) && cols == w;
            T *ct = full ? g->c + ir * g->ldc + jr : tile;
            (shrt ? d->NN_T(ukr_short) : ukr)(k, g->a + ir * rs_a, rs_a, cs_a, bt, ldbt, ct,
                                              full ? g->ldc : w, (int)rows,
                                              full && g->accumulate);
            NN_T(finish_tile)(g, full ? NULL : tile, w, ir, jr, rows, cols, g->accumulate, 1);
        }
    }
    return NN_OK;
}

// Packing pays for itself only when each packed element is reused many times; below these
// sizes the direct path is faster (measured in benchmarks/bench_gemm.py). The choice depends
// on the shape alone, never on the thread count.
// With a few rows (a small batch) each element of B is used a few times only, so B is
// streamed once in place whatever k is.
static int NN_T(use_direct)(nn_int m, nn_int n, nn_int k) {
    return m <= 16 || (k <= 512 && m * n * k <= ((nn_int)1 << 22));
}

// Products too small for a micro-kernel's set-up to pay (a tiny network at batch 1: 1x2x3):
// plain loops, the same sums on every CPU path. Chosen by shape alone, like the paths above.
#ifndef NN_GEMM_TINY
#define NN_GEMM_TINY 64  // multiply-adds; measured: 8x8 at batch 1 gains, 16x16 loses
#endif
static int NN_T(gemm_tiny)(const struct NN_T(gemm_args) *g) {
    const nn_int rs_a = g->trans_a ? 1 : g->lda, cs_a = g->trans_a ? g->lda : 1;
    const nn_int rs_b = g->trans_b ? 1 : g->ldb, cs_b = g->trans_b ? g->ldb : 1;
    for (nn_int i = 0; i < g->m; i++) {
        T *ci = g->c + i * g->ldc;
        const T *ai = g->a + i * rs_a;
        for (nn_int j = 0; j < g->n; j++) {
            T s = 0;
            for (nn_int p = 0; p < g->k; p++) s += ai[p * cs_a] * g->b[p * rs_b + j * cs_b];
            ci[j] = g->accumulate ? ci[j] + s : s;
        }
        if (g->epilogue)
            NN_T(nn_act_tile)(ci, g->ldc, g->z ? g->z + i * g->ldz : NULL, g->ldz, g->bias, 1,
                              g->n, g->act, g->alpha);
    }
    return NN_OK;
}

// Split the (m, n) tile grid over nt threads: tm x tn blocks, tm * tn = nt, minimising the
// largest block (ties: fewer splits of M, so each thread packs less of B).
static void NN_T(split)(nn_int m_tiles, nn_int n_tiles, int nt, int *tm, int *tn) {
    nn_int best = -1;
    for (int a = 1; a <= nt; a++) {
        if (nt % a) continue;
        int b = nt / a;
        nn_int cost = ((m_tiles + a - 1) / a) * ((n_tiles + b - 1) / b);
        if (best < 0 || cost < best) best = cost, *tm = a, *tn = b;
    }
}

int NN_T(nn_gemm_ex)(T *c, const T *a, const T *b, nn_int m, nn_int n, nn_int k, nn_int lda,
                     nn_int ldb, nn_int ldc, int trans_a, int trans_b, int accumulate,
                     const T *bias, T *z, nn_int ldz, int act, T alpha, int n_threads) {
    if (m <= 0 || n <= 0) return NN_OK;
    const struct nn_dispatch *d = nn_dispatch_get();
    int epilogue = bias != NULL || z != NULL || act != NN_ACT_IDENTITY;
    struct NN_T(gemm_args) g = {c, a, b, m, n, k, lda, ldb, ldc, trans_a, trans_b, accumulate,
                                bias, z, ldz, act, alpha, epilogue, b, ldb, 0};
    if (k <= 0) {  // an empty sum: c = 0 (or unchanged), then the epilogue
        for (nn_int i = 0; i < m; i++) {
            if (!accumulate) memset(c + i * ldc, 0, (size_t)n * sizeof(T));
            if (epilogue)
                NN_T(nn_act_tile)(c + i * ldc, ldc, z ? z + i * ldz : NULL, ldz, bias, 1, n,
                                  act, alpha);
        }
        return NN_OK;
    }
    if (m * n * k <= NN_GEMM_TINY) return NN_T(gemm_tiny)(&g);
    const int mr = d->NN_T(gemm).mr, nr = d->NN_T(gemm).nr;
    const int direct = NN_T(use_direct)(m, n, k);
    nn_int m_tiles = (m + mr - 1) / mr, n_tiles = (n + nr - 1) / nr;
    if (direct && trans_b) {  // op(b) = b^T: one zero-padded row-major copy, shared by threads
        nn_int n_pad = n_tiles * nr;
        T *bt = (T *)nn_workspace(3, (size_t)(k * n_pad) * sizeof(T));
        if (!bt) return NN_ERR_NOMEM;
        for (nn_int j = 0; j < n; j++)  // read b's rows in order, write the columns of bt
            for (nn_int p = 0; p < k; p++) bt[p * n_pad + j] = b[j * ldb + p];
        for (nn_int p = 0; p < k; p++)
            for (nn_int j = n; j < n_pad; j++) bt[p * n_pad + j] = 0;
        g.bd = bt, g.ldbd = n_pad, g.b_padded = 1;
    }
    int (*block)(const struct NN_T(gemm_args) *, const struct nn_dispatch *, nn_int, nn_int,
                 nn_int, nn_int) = direct ? NN_T(gemm_block_direct) : NN_T(gemm_block_packed);
    int nt = nn_threads_for(n_threads, m * n * k, NN_PAR_MIN_FLOPS);
    if (nt > m_tiles * n_tiles) nt = (int)(m_tiles * n_tiles);
    if (nt <= 1) return block(&g, d, 0, m, 0, n);

    int tm = 1, tn = nt, status = NN_OK;
    NN_T(split)(m_tiles, n_tiles, nt, &tm, &tn);
#pragma omp parallel num_threads(nt)
    {
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
            int s = block(&g, d, m0, m1, n0, n1);
            if (s != NN_OK) {
                // critical, not atomic write: MSVC's OpenMP is 2.0, which has no atomic write
                // (and this runs only on an error).
#pragma omp critical(nn_gemm_status)
                status = s;
            }
        }
    }
    return status;
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
