// gemm.c - the packed, cache-blocked GEMM driver for float and double.
#include "common.h"

#define T float
#define SUF f32
#include "gemm_impl.h"
#undef T
#undef SUF

#define T double
#define SUF f64
#include "gemm_impl.h"
#undef T
#undef SUF
