// gemm_dot_impl.h - the inner-product kernel, instantiated per ISA and dtype by
// gemm_isa_impl.h: c (m, n) (+)= a (m, k) . b (n, k)^T for m <= NN_MR_SHORT, n <= DOT_N, with
// the rows of both operands contiguous along k (dX = dZ . W^T at batch 1 to 4: W's rows are
// streamed once, in order, with no transposed copy). Vectors run along k; each output is one
// horizontal sum at the end, so its value does not depend on the thread count.
// Uses T, DOT, TARGET, DOT_N and the vector macros of gemm_isa_impl.h.

// Rows of b a whole number of vectors long but not starting on a vector boundary (NumPy
// aligns large arrays to 16 bytes): every load of b would straddle two cache lines. The first
// `head` elements are then loaded as the last lanes of the vector ending there, and every later
// load of b is aligned. Lane i holds the elements p = head + i (mod VL), in the order lane
// (head + i) % VL holds them without this: rotated back before the sums, each output is
// bitwise what it is unaligned. 0 when not so.
NN_INLINE int NN_CAT(DOT, head)(const T *b, nn_int ldb, nn_int k) {
    const nn_int vb = VL * (nn_int)sizeof(T);
    if (VL == 1 || (ldb * (nn_int)sizeof(T)) % vb != 0) return 0;
    int head = (int)((vb - (nn_int)((uintptr_t)b % (uintptr_t)vb)) % vb / (nn_int)sizeof(T));
    return head < k ? head : 0;
}

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
    const int head = NN_CAT(DOT, head)(b, ldb, k);
    nn_int p = 0;
    if (head) {
        VM mh = VMASK_HI(head);
        V av[NN_MR_SHORT];
        for (int i = 0; i < rows; i++) av[i] = VLOADM(ar[i] + head - VL, mh);
        for (int j = 0; j < DOT_N; j++) {
            V bv = VLOADM(br[j] + head - VL, mh);
            for (int i = 0; i < rows; i++) acc[i][j] = VFMA(av[i], bv, acc[i][j]);
        }
        p = head;
    }
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
            T s = VHSUM(head ? VROTATE(acc[i][j], VL - head) : acc[i][j]);
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + s : s;
        }
}

#if VL > 1
// Batch 1, n <= VL outputs at a time: one accumulator per output (VL independent chains of
// FMAs) and all their horizontal sums at once - the VL x VL tile of accumulators transposed,
// its rows added - instead of one horizontal sum per output, and no copy of B^T for a short
// k either. Each output is summed the same way wherever it is in its group, so the thread
// count does not change it; rows are aligned as in the body above (DOT head).
NN_INLINE TARGET void NN_CAT(DOT, row)(nn_int k, const T *NN_RESTRICT a,
                                        const T *NN_RESTRICT b, nn_int ldb, T *NN_RESTRICT c,
                                        int n, int accumulate) {
    V acc[VL];
    const T *br[VL];
NN_UNROLL(16)
    for (int j = 0; j < VL; j++) {
        br[j] = b + (j < n ? j : n - 1) * ldb;
        acc[j] = VZERO();
    }
    const int head = NN_CAT(DOT, head)(b, ldb, k);
    nn_int p = 0;
    if (head) {
        VM mh = VMASK_HI(head);
        V av = VLOADM(a + head - VL, mh);
NN_UNROLL(16)
        for (int j = 0; j < VL; j++) acc[j] = VFMA(av, VLOADM(br[j] + head - VL, mh), acc[j]);
        p = head;
    }
    for (; p + VL <= k; p += VL) {
        V av = VLOAD(a + p);
NN_UNROLL(16)
        for (int j = 0; j < VL; j++) acc[j] = VFMA(av, VLOAD(br[j] + p), acc[j]);
    }
    if (p < k) {
        VM mk = VMASK((int)(k - p));
        V av = VLOADM(a + p, mk);
NN_UNROLL(16)
        for (int j = 0; j < VL; j++) acc[j] = VFMA(av, VLOADM(br[j] + p, mk), acc[j]);
    }
    if (head)
NN_UNROLL(16)
        for (int j = 0; j < VL; j++) acc[j] = VROTATE(acc[j], VL - head);
    VTRANSPOSE(acc);
    V sum = acc[0];
NN_UNROLL(16)
    for (int i = 1; i < VL; i++) sum = VADD(sum, acc[i]);
    VM mn = VMASK(n);
    VSTOREM(c, mn, accumulate ? VADD(VLOADM(c, mn), sum) : sum);
}
#endif

TARGET void DOT(nn_int k, const T *NN_RESTRICT a, nn_int lda, const T *NN_RESTRICT b,
                nn_int ldb, T *NN_RESTRICT c, nn_int ldc, int m, int n, int accumulate) {
#if VL > 1
    if (m == 1)  // batch 1: up to VL outputs (gemm_block_dot), a row of sums at once
        NN_CAT(DOT, row)(k, a, b, ldb, c, n, accumulate);
    else
#endif
        NN_CAT(DOT, body)(k, a, lda, b, ldb, c, ldc, m, n, accumulate, NN_MR_SHORT);
}
