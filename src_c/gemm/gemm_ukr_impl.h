// gemm_ukr_impl.h - one micro-kernel body (the broadcast form), instantiated per ISA, dtype
// and tile by gemm_isa_impl.h. PACKED 1 reads packed panels (a: MR values per k step, b: NR
// values per k step, zero-padded); PACKED 0 reads the operands in place (a(i, p) at
// a[i * rs_a + p * cs_a], b row p at b + p * ldb) for problems where packing costs more than it
// saves. Edges are handled in the kernel: rows i >= m of A are read from row m - 1 (valid
// memory, never stored), columns j >= n of B are masked off (never read in place) and rows
// >= m / columns >= n of C are never written - so no scratch tile and no padded copy of B.
// Uses T, UKR, TARGET, MR, NR, PACKED and the vector macros of gemm_isa_impl.h.
//
// c (MR, NR; row stride ldc) (+)= A (MR, k) . B (k, NR): MR x NR/VL accumulators stay in
// registers for the whole k loop; each step loads NR/VL vectors of B and broadcasts MR of A.
// With accumulate the sum is formed first and then added to c.

#ifndef NN_PF_STEPS
#define NN_PF_STEPS 16
#endif

NN_INLINE TARGET void NN_CAT(UKR, body)(nn_int k, const T *NN_RESTRICT a, nn_int rs_a,
                                         nn_int cs_a, const T *NN_RESTRICT b, nn_int ldb,
                                         T *NN_RESTRICT c, nn_int ldc, int m, int n,
                                         int accumulate, const int edge) {
    V acc[MR][NR / VL];
    VM mk[NR / VL];
NN_UNROLL(32)
    for (int i = 0; i < MR; i++) {
NN_UNROLL(8)
        for (int j = 0; j < NR / VL; j++) acc[i][j] = VZERO();
        // The tile of C is needed only after the k loop: ask for it now, so that a C too large
        // for the caches (read and written once per k block) does not stall each store.
        if (i < m) {
            NN_PREFETCH_W(c + i * ldc);
            if (NR > VL) NN_PREFETCH_W(c + i * ldc + NR - 1);
        }
    }
NN_UNROLL(8)
    for (int j = 0; j < NR / VL; j++) {
        int left = n - j * VL;
        mk[j] = VMASK(left < 0 ? 0 : left > VL ? VL : left);
    }
#if PACKED
    (void)rs_a, (void)cs_a, (void)ldb;
    for (nn_int p = 0; p < k; p++, a += MR, b += NR) {
        // B's panel streams from L2, a k step's NR values at a time: fetch it NN_PF_STEPS
        // steps ahead, which the hardware prefetcher alone does not keep up with.
        NN_PREFETCH(b + NN_PF_STEPS * NR);
        if (NR * sizeof(T) > 64) NN_PREFETCH(b + NN_PF_STEPS * NR + 64 / sizeof(T));
#define A_AT(i) a[i]
#define B_AT(j) VLOAD(b + (j) * VL)
#else
    const T *ar[MR];
    for (int i = 0; i < MR; i++) ar[i] = a + (i < m ? i : m - 1) * rs_a;
    for (nn_int p = 0, off = 0; p < k; p++, off += cs_a, b += ldb) {
#define A_AT(i) ar[i][off]
#define B_AT(j) (edge ? VLOADM(b + (j) * VL, mk[j]) : VLOAD(b + (j) * VL))
        // Rows of B in place are a row stride apart (often a page): the hardware prefetcher
        // does not follow them, so fetch a few rows ahead (a prefetch never faults).
        NN_PREFETCH(b + 8 * ldb);
        if (NR > VL) NN_PREFETCH(b + 8 * ldb + NR - 1);
#endif
        V bv[NR / VL];
NN_UNROLL(8)
        for (int j = 0; j < NR / VL; j++) bv[j] = B_AT(j);
NN_UNROLL(32)
        for (int i = 0; i < MR; i++) {
            V av = VSET1(A_AT(i));
NN_UNROLL(8)
            for (int j = 0; j < NR / VL; j++) acc[i][j] = VFMA(av, bv[j], acc[i][j]);
        }
    }
#undef A_AT
#undef B_AT
NN_UNROLL(32)
    for (int i = 0; i < MR; i++) {
        if (i >= m) break;
NN_UNROLL(8)
        for (int j = 0; j < NR / VL; j++) {
            T *cp = c + i * ldc + j * VL;
            if (edge)
                VSTOREM(cp, mk[j], accumulate ? VADD(VLOADM(cp, mk[j]), acc[i][j]) : acc[i][j]);
            else
                VSTORE(cp, accumulate ? VADD(VLOAD(cp), acc[i][j]) : acc[i][j]);
        }
    }
}

TARGET void UKR(nn_int k, const T *NN_RESTRICT a, nn_int rs_a, nn_int cs_a,
                const T *NN_RESTRICT b, nn_int ldb, T *NN_RESTRICT c, nn_int ldc, int m, int n,
                int accumulate) {
    if (n >= NR)  // full width: plain loads and stores
        NN_CAT(UKR, body)(k, a, rs_a, cs_a, b, ldb, c, ldc, m, n, accumulate, 0);
    else
        NN_CAT(UKR, body)(k, a, rs_a, cs_a, b, ldb, c, ldc, m, n, accumulate, 1);
}
