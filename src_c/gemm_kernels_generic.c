// gemm_kernels_generic.c - the portable micro-kernels (plain C, auto-vectorised for the
// baseline ISA): 4 x 8 floats, 4 x 4 doubles; packed and in-place forms as in
// gemm_ukr_impl.h (A(i, p) = a[i * rs_a + p * cs_a], B row p at b + p * ldb).

#include "common.h"

#define GENERIC_UKR(T, NAME, MR, NR)                                                          \
    void NAME(nn_int k, const T *NN_RESTRICT a, nn_int rs_a, nn_int cs_a,                     \
              const T *NN_RESTRICT b, nn_int ldb, T *NN_RESTRICT c, nn_int ldc, int m,         \
              int accumulate) {                                                                \
        T acc[MR][NR] = {{0}};                                                                 \
        const T *ar[MR];                                                                       \
        for (int i = 0; i < MR; i++) ar[i] = a + (i < m ? i : m - 1) * rs_a;                   \
        for (nn_int p = 0, off = 0; p < k; p++, off += cs_a, b += ldb)                         \
            for (int i = 0; i < MR; i++)                                                       \
                for (int j = 0; j < NR; j++) acc[i][j] += ar[i][off] * b[j];                   \
        for (int i = 0; i < MR; i++)                                                           \
            for (int j = 0; j < NR; j++)                                                       \
                c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];          \
    }

// One body serves both forms: the packed panels are the in-place form with rs_a = 1,
// cs_a = MR, ldb = NR.
GENERIC_UKR(float, nn_ukr_generic_f32, 4, 8)
GENERIC_UKR(double, nn_ukr_generic_f64, 4, 4)
