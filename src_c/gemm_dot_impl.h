// gemm_dot_impl.h - the inner-product kernel, instantiated per ISA and dtype by
// gemm_isa_impl.h: c (m, n) (+)= a (m, k) . b (n, k)^T for m <= NN_MR_SHORT, n <= DOT_N, with
// the rows of both operands contiguous along k (dX = dZ . W^T at batch 1 to 4: W's rows are
// streamed once, in order, with no transposed copy). Vectors run along k; each output is one
// horizontal sum at the end, so its value does not depend on the thread count.
// Uses T, DOT, TARGET, DOT_N and the vector macros of gemm_isa_impl.h.

NN_INLINE TARGET void NN_CAT(DOT, body)(nn_int k, const T *NN_RESTRICT a, nn_int lda,
                                         const T *NN_RESTRICT b, nn_int ldb, T *NN_RESTRICT c,
                                         nn_int ldc, int m, int n, int accumulate,
                                         const int rows) {
    V acc[NN_MR_SHORT][DOT_N];
    const T *ar[NN_MR_SHORT], *br[DOT_N];
    for (int i = 0; i < rows; i++) ar[i] = a + (i < m ? i : m - 1) * lda;
    for (int j = 0; j < DOT_N; j++) br[j] = b + (j < n ? j : n - 1) * ldb;
NN_UNROLL(4)
    for (int i = 0; i < rows; i++)
NN_UNROLL(4)
        for (int j = 0; j < DOT_N; j++) acc[i][j] = VZERO();
    nn_int p = 0;
    for (; p + VL <= k; p += VL) {
        V av[NN_MR_SHORT];
NN_UNROLL(4)
        for (int i = 0; i < rows; i++) av[i] = VLOAD(ar[i] + p);
NN_UNROLL(4)
        for (int j = 0; j < DOT_N; j++) {
            V bv = VLOAD(br[j] + p);
NN_UNROLL(4)
            for (int i = 0; i < rows; i++) acc[i][j] = VFMA(av[i], bv, acc[i][j]);
        }
    }
    if (p < k) {  // the tail of k, masked: nothing is read past the rows' ends
        VM mk = VMASK((int)(k - p));
        V av[NN_MR_SHORT];
        for (int i = 0; i < rows; i++) av[i] = VLOADM(ar[i] + p, mk);
        for (int j = 0; j < DOT_N; j++) {
            V bv = VLOADM(br[j] + p, mk);
            for (int i = 0; i < rows; i++) acc[i][j] = VFMA(av[i], bv, acc[i][j]);
        }
    }
    for (int i = 0; i < m && i < rows; i++)
        for (int j = 0; j < n; j++) {
            T s = VHSUM(acc[i][j]);
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + s : s;
        }
}

TARGET void DOT(nn_int k, const T *NN_RESTRICT a, nn_int lda, const T *NN_RESTRICT b,
                nn_int ldb, T *NN_RESTRICT c, nn_int ldc, int m, int n, int accumulate) {
    if (m == 1)  // batch 1: one row of accumulators, not NN_MR_SHORT copies of it
        NN_CAT(DOT, body)(k, a, lda, b, ldb, c, ldc, m, n, accumulate, 1);
    else
        NN_CAT(DOT, body)(k, a, lda, b, ldb, c, ldc, m, n, accumulate, NN_MR_SHORT);
}
