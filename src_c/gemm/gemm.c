// gemm.c - the packed, cache-blocked GEMM driver for float and double.
#include "internal/port.h"
#include "internal/threads.h"
#include "internal/memory.h"
#include "internal/dispatch.h"
#include "internal/update.h"
#include "gemm/gemm.h"
#include "ops/ops.h"

// UKR_T: the micro-kernel pointer type of T (nn_ukr_f32_t, nn_ukr_f64_t); KERNELS_T: the
// path's kernel table for T (struct nn_gemm_kernels_f32 / _f64)
#define UKR_T NN_CAT(NN_T(nn_ukr), t)
#define KERNELS_T struct NN_T(nn_gemm_kernels)
#define NN_IMPL "gemm/gemm_impl.h"
#include "internal/instantiate.h"
