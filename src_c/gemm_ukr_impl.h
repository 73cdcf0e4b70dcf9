// gemm_ukr_impl.h - one SIMD micro-kernel body, instantiated per ISA and dtype by the
// gemm_kernels_*.c files, which define:
//   T, UKR (the function name), TARGET (the ISA attribute), MR, NR,
//   V (vector type), VL (lanes), VZERO(), VSET1(x), VLOAD(p), VSTORE(p, v), VFMA(a, b, c)
//   (a * b + c, fused), VADD(a, b).
// c (MR, NR; row stride ldc) (+)= a (k, MR)^T . b (k, NR): MR x NR/VL accumulators stay in
// registers for the whole k loop; each step loads NR/VL vectors of B and broadcasts MR of A.

TARGET void UKR(nn_int k, const T *NN_RESTRICT a, const T *NN_RESTRICT b, T *NN_RESTRICT c,
                nn_int ldc, int accumulate) {
    V acc[MR][NR / VL];
#pragma GCC unroll 32
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NR / VL; j++) acc[i][j] = VZERO();
    for (nn_int p = 0; p < k; p++) {
        V bv[NR / VL];
#pragma GCC unroll 8
        for (int j = 0; j < NR / VL; j++) bv[j] = VLOAD(b + j * VL);
#pragma GCC unroll 32
        for (int i = 0; i < MR; i++) {
            V av = VSET1(a[i]);
#pragma GCC unroll 8
            for (int j = 0; j < NR / VL; j++) acc[i][j] = VFMA(av, bv[j], acc[i][j]);
        }
        a += MR;
        b += NR;
    }
#pragma GCC unroll 32
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NR / VL; j++) {
            T *cp = c + i * ldc + j * VL;
            VSTORE(cp, accumulate ? VADD(VLOAD(cp), acc[i][j]) : acc[i][j]);
        }
}
