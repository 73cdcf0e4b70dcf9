// gemm.c - the packed, cache-blocked GEMM driver for float and double.
#include "common.h"

#define T float
#define SUF f32
#define UKR_T nn_ukr_f32_t
#include "gemm_impl.h"
#undef T
#undef SUF
#undef UKR_T

#define T double
#define SUF f64
#define UKR_T nn_ukr_f64_t
#include "gemm_impl.h"
#undef T
#undef SUF
#undef UKR_T
