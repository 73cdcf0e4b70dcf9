// dense.c - the dense layer: fused forward (GEMM + bias + activation) and backward.
#include "common.h"

#define T float
#define SUF f32
#include "dense_impl.h"
#undef T
#undef SUF

#define T double
#define SUF f64
#include "dense_impl.h"
#undef T
#undef SUF
