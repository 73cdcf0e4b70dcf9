// gemm_isa_impl.h - instantiates one path's GEMM kernels for one dtype: the packed
// micro-kernel, the six direct forms, the stream kernel, the inner-product kernel and the
// transpose, named nn_<form>_<ISA>_<SUF>. The including kernels/*.c defines ISA, TARGET, T,
// SUF, MR_MAIN, NR_MAIN (a multiple of VL), DOT_N and the vector macros:
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

// One row of A against a B that comes from L3 or memory (a one-sample predict of a layer over
// 1 MiB): m is 1, n a multiple of VL (rs_a, ldc unused). B's rows are read whole,
// NN_STREAM_ROWS at a time and in order - a few streams the prefetchers follow - into a row
// of partial sums in L1, with the next group's lines fetched while this one is read. Same
// sums as the other kernels: each column's products added in k order from zero, then to c
// (with accumulate). Where it pays: gemm_block_direct.
#ifndef NN_STREAM_ROWS
#define NN_STREAM_ROWS 4  // 8 rows at a time: 1.4x slower (1x1024x1024 f32)
#endif
TARGET void NN_KNAME(stream)(nn_int k, const T *NN_RESTRICT a, nn_int rs_a, nn_int cs_a,
                             const T *NN_RESTRICT b, nn_int ldb, T *NN_RESTRICT c, nn_int ldc,
                             int m, int n, int accumulate) {
    (void)rs_a, (void)ldc, (void)m;
    enum { G = NN_STREAM_ROWS, CHUNK = 4096 / (int)sizeof(T) };  // partial sums: 4 KiB
    T t[CHUNK];
    for (nn_int j0 = 0; j0 < n; j0 += CHUNK) {
        const int w = n - j0 < CHUNK ? (int)(n - j0) : CHUNK;
        for (nn_int p = 0; p < k; p += G) {
            const int rows = k - p < G ? (int)(k - p) : G, first = p == 0, last = p + rows >= k;
            const T *br = b + p * ldb + j0, *ahead = br + G * ldb;
            const int fetch = p + rows + G <= k;  // a whole next group
            V av[G];
            for (int q = 0; q < rows; q++) av[q] = VSET1(a[(p + q) * cs_a]);
            for (int j = 0; j < w; j += VL) {
                if (fetch && (j * (int)sizeof(T)) % 64 == 0)
                    for (int q = 0; q < G; q++) NN_PREFETCH(ahead + q * ldb + j);
                V s = first ? VZERO() : VLOAD(t + j);
                if (rows == G)  // a constant count, unrolled
                    for (int q = 0; q < G; q++) s = VFMA(av[q], VLOAD(br + q * ldb + j), s);
                else
                    for (int q = 0; q < rows; q++) s = VFMA(av[q], VLOAD(br + q * ldb + j), s);
                T *cj = c + j0 + j;
                if (!last) VSTORE(t + j, s);
                else VSTORE(cj, accumulate ? VADD(VLOAD(cj), s) : s);
            }
        }
    }
}

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
