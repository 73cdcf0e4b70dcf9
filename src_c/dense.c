// dense.c - the dense layer: fused forward (GEMM + bias + activation) and backward.
#include "common.h"

#define NN_IMPL "dense_impl.h"
#include "instantiate.h"
