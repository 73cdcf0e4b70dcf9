// gemm_isa_impl.h - instantiates one path's GEMM kernels for one dtype: the packed
// micro-kernel, the six direct forms, the inner-product kernel and the transpose, named
// nn_<form>_<ISA>_<SUF>. The including gemm_kernels_*.c defines ISA, TARGET, T, SUF,
// MR_MAIN, NR_MAIN (a multiple of VL), DOT_N and the vector macros:
//   V, VL (lanes), VM (a lane mask), VZERO(), VSET1(x), VLOAD(p), VSTORE(p, v),
//   VMASK(n) (the first n lanes, 0 <= n <= VL), VLOADM(p, mk) (masked-off lanes are 0 and
//   never read), VSTOREM(p, mk, v), VFMA(a, b, c) (a * b + c), VADD(a, b), VHSUM(v),
//   VTRANSPOSE(r) (transposes the VL x VL tile of the vectors r[0..VL-1] in place),
//   VMASK_HI(n) (the last n lanes), VROTATE(v, s) (lane i of the result is lane (i + s) % VL
//   of v, 0 <= s < VL);
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

// dst(c, r) = src(r, c) for r < rows, c < cols: the packing of a transposed operand.
#if VL > 1
// VL x VL tiles transposed in registers, edges with masks.
TARGET void NN_KNAME(transpose)(T *NN_RESTRICT dst, nn_int ldd, const T *NN_RESTRICT src,
                                nn_int lds, nn_int rows, nn_int cols) {
    for (nn_int r0 = 0; r0 < rows; r0 += VL) {
        int nrow = rows - r0 < VL ? (int)(rows - r0) : VL;
        VM mrow = VMASK(nrow);
        for (nn_int c0 = 0; c0 < cols; c0 += VL) {
            int ncol = cols - c0 < VL ? (int)(cols - c0) : VL;
            VM mcol = VMASK(ncol);
            V r[VL];
            const T *s = src + r0 * lds + c0;
            for (int i = 0; i < VL; i++)
                r[i] = i >= nrow ? VZERO() : ncol == VL ? VLOAD(s + i * lds) : VLOADM(s + i * lds, mcol);
            VTRANSPOSE(r);
            T *d = dst + c0 * ldd + r0;
            for (int j = 0; j < ncol; j++) {
                if (nrow == VL) VSTORE(d + j * ldd, r[j]);
                else VSTOREM(d + j * ldd, mrow, r[j]);
            }
        }
    }
}
#else
// A cache line of each source row at a time: rows a page apart all map to one cache set, and
// reading an element of each per step would evict the lines before their next elements are
// used.
void NN_KNAME(transpose)(T *NN_RESTRICT dst, nn_int ldd, const T *NN_RESTRICT src, nn_int lds,
                         nn_int rows, nn_int cols) {
    const nn_int line = 64 / (nn_int)sizeof(T);
    for (nn_int c0 = 0; c0 < cols; c0 += line) {
        nn_int c1 = cols - c0 < line ? cols : c0 + line;
        for (nn_int r = 0; r < rows; r++)
            for (nn_int c = c0; c < c1; c++) dst[c * ldd + r] = src[r * lds + c];
    }
}
#endif

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
#undef VTRANSPOSE
#undef VMASK_HI
#undef VROTATE
#undef MR_MAIN
#undef NR_MAIN
#undef DOT_N
