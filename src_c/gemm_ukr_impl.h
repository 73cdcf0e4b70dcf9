// gemm_ukr_impl.h - one SIMD micro-kernel body, instantiated per ISA and dtype by the
// gemm_kernels_*.c files, twice each: PACKED 1 reads packed panels (a: MR values per k step,
// b: NR values per k step); PACKED 0 reads the operands in place (a(i, p) at
// a[i * rs_a + p * cs_a], b row p at b + p * ldb), for small problems where packing costs
// more than it saves. Rows i >= m of A are read from row m - 1 (valid memory; the results of
// those rows are never stored by the caller).
// The including file defines T, UKR, TARGET, MR, NR, V, VL, VZERO(), VSET1(x), VLOAD(p),
// VSTORE(p, v), VFMA(a, b, c) (a * b + c, fused), VADD(a, b), PACKED.
//
// c (MR, NR; row stride ldc) (+)= A (MR, k) . B (k, NR): MR x NR/VL accumulators stay in
// registers for the whole k loop; each step loads NR/VL vectors of B and broadcasts MR of A.
// With accumulate the sum is formed first and then added to c.

TARGET void UKR(nn_int k, const T *NN_RESTRICT a, nn_int rs_a, nn_int cs_a,
                const T *NN_RESTRICT b, nn_int ldb, T *NN_RESTRICT c, nn_int ldc, int m,
                int accumulate) {
    V acc[MR][NR / VL];
    NN_UNROLL(32)
    for (int i = 0; i < MR; i++)
        NN_UNROLL(8)
        for (int j = 0; j < NR / VL; j++) acc[i][j] = VZERO();
#if PACKED
    (void)rs_a, (void)cs_a, (void)ldb, (void)m;
    for (nn_int p = 0; p < k; p++, a += MR, b += NR) {
#define A_AT(i) a[i]
#else
    const T *ar[MR];
    for (int i = 0; i < MR; i++) ar[i] = a + (i < m ? i : m - 1) * rs_a;
    for (nn_int p = 0, off = 0; p < k; p++, off += cs_a, b += ldb) {
#define A_AT(i) ar[i][off]
#endif
#if !PACKED
        // Rows of B in place are a row stride apart (often a page): the hardware prefetcher
        // does not follow them, so fetch a few rows ahead.
        NN_PREFETCH(b + 8 * ldb);
        NN_PREFETCH(b + 8 * ldb + NR - 1);
#endif
        V bv[NR / VL];
        NN_UNROLL(8)
        for (int j = 0; j < NR / VL; j++) bv[j] = VLOAD(b + j * VL);
        NN_UNROLL(32)
        for (int i = 0; i < MR; i++) {
            V av = VSET1(A_AT(i));
            NN_UNROLL(8)
            for (int j = 0; j < NR / VL; j++) acc[i][j] = VFMA(av, bv[j], acc[i][j]);
        }
    }
#undef A_AT
    NN_UNROLL(32)
    for (int i = 0; i < MR; i++)
        NN_UNROLL(8)
        for (int j = 0; j < NR / VL; j++) {
            T *cp = c + i * ldc + j * VL;
            VSTORE(cp, accumulate ? VADD(VLOAD(cp), acc[i][j]) : acc[i][j]);
        }
}
