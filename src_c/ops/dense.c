// dense.c - the dense layer: fused forward (GEMM + bias + activation) and backward.
#include "internal/port.h"
#include "internal/threads.h"
#include "internal/memory.h"
#include "internal/dispatch.h"
#include "internal/update.h"
#include "gemm/gemm.h"
#include "ops/ops.h"

#define NN_IMPL "ops/dense_impl.h"
#include "internal/instantiate.h"
