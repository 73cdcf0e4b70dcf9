// gemm_kernels_generic.c - the portable micro-kernels (plain C, auto-vectorised for the
// baseline ISA): 4 x 8 floats, 4 x 4 doubles.
#include "common.h"

#define GENERIC_UKR(T, NAME, MR, NR)                                                          \
    void NAME(nn_int k, const T *NN_RESTRICT a, const T *NN_RESTRICT b, T *NN_RESTRICT c,      \
              nn_int ldc, int accumulate) {                                                    \
        T acc[MR][NR] = {{0}};                                                                 \
        for (nn_int p = 0; p < k; p++, a += MR, b += NR)                                       \
            for (int i = 0; i < MR; i++)                                                       \
                for (int j = 0; j < NR; j++) acc[i][j] += a[i] * b[j];                         \
        for (int i = 0; i < MR; i++)                                                           \
            for (int j = 0; j < NR; j++)                                                       \
                c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];          \
    }

GENERIC_UKR(float, nn_ukr_generic_f32, 4, 8)
GENERIC_UKR(double, nn_ukr_generic_f64, 4, 4)
