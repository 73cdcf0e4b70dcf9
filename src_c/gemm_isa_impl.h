// gemm_isa_impl.h - instantiates one path's GEMM kernels for one dtype: the packed
// micro-kernel, the six direct forms and the inner-product kernel, named
// nn_<form>_<ISA>_<SUF>. The including gemm_kernels_*.c defines ISA, TARGET, T, SUF,
// MR_MAIN, NR_MAIN (a multiple of VL), DOT_N and the vector macros:
//   V, VL (lanes), VM (a lane mask), VZERO(), VSET1(x), VLOAD(p), VSTORE(p, v),
//   VMASK(n) (the first n lanes, 0 <= n <= VL), VLOADM(p, mk) (masked-off lanes are 0 and
//   never read), VSTOREM(p, mk, v), VFMA(a, b, c) (a * b + c), VADD(a, b), VHSUM(v);
// this file undefines the per-dtype ones at its end.

#define NN_KNAME__(f, i, s) nn_##f##_##i##_##s
#define NN_KNAME_(f, i, s) NN_KNAME__(f, i, s)
#define NN_KNAME(f) NN_KNAME_(f, ISA, SUF)

#define MR MR_MAIN
#define NR NR_MAIN
#define PACKED 1
#define UKR NN_KNAME(packed)
#include "gemm_ukr_impl.h"
#undef UKR
#undef PACKED

#define PACKED 0
#define UKR NN_KNAME(direct)
#include "gemm_ukr_impl.h"
#undef UKR

// One vector wide, for narrow column edges (an output layer of 10).
#undef NR
#define NR VL
#define UKR NN_KNAME(direct_narrow)
#include "gemm_ukr_impl.h"
#undef UKR

// NN_MR_SHORT rows, for a small batch (1 to 4): B streamed once without MR-row waste.
#undef MR
#define MR NN_MR_SHORT
#define UKR NN_KNAME(direct_short_narrow)
#include "gemm_ukr_impl.h"
#undef UKR
#undef NR
#define NR NR_MAIN
#define UKR NN_KNAME(direct_short)
#include "gemm_ukr_impl.h"
#undef UKR

// One row, four times as wide, for batch 1: enough independent accumulators to hide the FMA
// latency without computing copies of the row.
#undef MR
#undef NR
#define MR 1
#define NR (4 * NR_MAIN)
#define UKR NN_KNAME(direct_row)
#include "gemm_ukr_impl.h"
#undef UKR
#undef NR
#define NR VL
#define UKR NN_KNAME(direct_row_narrow)
#include "gemm_ukr_impl.h"
#undef UKR
#undef PACKED
#undef MR
#undef NR

#define DOT NN_KNAME(dot)
#include "gemm_dot_impl.h"
#undef DOT

#undef T
#undef SUF
#undef V
#undef VL
#undef VM
#undef VZERO
#undef VSET1
#undef VLOAD
#undef VSTORE
#undef VMASK
#undef VLOADM
#undef VSTOREM
#undef VFMA
#undef VADD
#undef VHSUM
#undef MR_MAIN
#undef NR_MAIN
#undef DOT_N
