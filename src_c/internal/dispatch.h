// dispatch.h - the one dispatch table: each CPU path's GEMM kernels and blocking (cpu.c).
#ifndef NN_INTERNAL_DISPATCH_H
#define NN_INTERNAL_DISPATCH_H

#include "internal/port.h"

// ---- the dispatch table (filled in cpu.c) ---------------------------------------------------

// A GEMM micro-kernel computes one MR x NR tile, edges included:
//   c (m, n; row stride ldc)  (+)=  A (m, k) . B (k, n),   m <= MR, n <= NR
// with A(i, p) = a[i * rs_a + p * cs_a] and row p of B at b + p * ldb. Two forms per path:
// the packed one reads zero-padded panels (rs_a = 1, cs_a = MR, ldb = NR) and ignores the
// strides; the direct one reads the operands in place, takes rows i >= m from row m - 1
// and masks the columns j >= n of B (no read past them). Rows >= m and columns >= n of c are
// never written. With accumulate the sum is formed first and then added to c.
typedef void (*nn_ukr_f32_t)(nn_int k, const float *a, nn_int rs_a, nn_int cs_a,
                             const float *b, nn_int ldb, float *c, nn_int ldc, int m, int n,
                             int accumulate);
typedef void (*nn_ukr_f64_t)(nn_int k, const double *a, nn_int rs_a, nn_int cs_a,
                             const double *b, nn_int ldb, double *c, nn_int ldc, int m, int n,
                             int accumulate);
// The inner-product form, for c = A . B^T with both operands contiguous along k and few rows
// (dX = dZ . W^T at batch 1 to 4):  c (m, n) (+)= a (m, k) . b (n, k)^T, m <= NN_MR_SHORT,
// n <= dot_n (the path's), rows of a at a + i * lda, rows of b at b + j * ldb.
typedef void (*nn_dot_f32_t)(nn_int k, const float *a, nn_int lda, const float *b, nn_int ldb,
                             float *c, nn_int ldc, int m, int n, int accumulate);
typedef void (*nn_dot_f64_t)(nn_int k, const double *a, nn_int lda, const double *b,
                             nn_int ldb, double *c, nn_int ldc, int m, int n, int accumulate);

#define NN_MR_SHORT 4  // rows of the short kernels and of the inner-product kernel

// One dtype's GEMM kernels on one path. direct[s][w]: s = 0 for mr rows, 1 for the short form
// (NN_MR_SHORT rows), 2 for the row form (1 row, nr_row columns); w = 1 for the narrow form
// (one vector, nr_narrow columns, instead of nr or nr_row). stream: one row against a B that
// comes from L3 or memory, n a multiple of one vector (gemm_isa_impl.h).
// Where the GEMM's paths take over (gemm_select in gemm/gemm_impl.h, which explains each
// rule), and the sizes its blocks work in: multiply-adds, rows, columns, k, or bytes of an
// operand. Part of each path's table entry, so that a path's kernels can move them; every
// choice depends on the shape alone, never on the thread count.
struct nn_gemm_rules {
    nn_int direct_rows;                 // m <= this: B read in place (direct path)
    nn_int direct_k, direct_work;       // k <= and m n k <= these: direct
    nn_int thin_rows, thin_k;           // m <= and k <= these, B not transposed: direct
    nn_int read_rows, read_cols, read_b_bytes;  // m, n and B's bytes at most these: direct
    nn_int xt_rows, xt_work;            // x^T.dZ at least this tall and large: packed
    nn_int dot_min_k;                   // A.B^T at batch 1-4: inner products from this k
    nn_int bt_min_k, bt_min_cols;       // A.B^T at batch 5-32 formed transposed from these,
    nn_int bt_rows, bt_wide_rows, bt_wide_work;  // up to bt_rows, or bt_wide_rows from work
    nn_int k_one_block_bytes;           // packed: a k of up to 1.5 kc is one block if its
                                        // mr x k panel of A is at most this (in L1)
    nn_int a_keep_bytes;                // packed: a whole packed A kept, at most this
    nn_int upd_prefetch_bytes;          // packed: the step's next rows fetched beyond this
    nn_int kb_short;                    // direct, 1-4 rows: B streamed in blocks of k rows
};

// The values of every x86-64 path and the portable one.
#define NN_GEMM_RULES                                                                         \
    {16, 512, (nn_int)1 << 22, 32, 1024, 128, 512, (nn_int)1 << 20, 256, (nn_int)1 << 21, 32, \
     128, 256, 16, 32, (nn_int)1 << 24, (nn_int)28 << 10, (nn_int)4 << 20, (nn_int)1 << 20, 64}

#define NN_GEMM_KERNELS(T, SUF)                                                               \
    struct nn_gemm_kernels_##SUF {                                                            \
        int mr, nr, nr_row;    /* micro-tile; the row form's width */                         \
        int nr_narrow, dot_n;  /* the narrow form's width (one vector); the dot kernel's n */ \
        nn_int mc, kc, nc;     /* cache blocks: B kc x nc in L2, A mc x kc from L3 */        \
        nn_ukr_##SUF##_t packed, direct[3][2], stream;                                        \
        nn_dot_##SUF##_t dot;                                                                 \
        void (*transpose)(T *dst, nn_int ldd, const T *src, nn_int lds, nn_int rows,          \
                          nn_int cols); /* dst(c, r) = src(r, c) */                           \
        struct nn_gemm_rules rules;                                                           \
    };
NN_GEMM_KERNELS(float, f32)
NN_GEMM_KERNELS(double, f64)

struct nn_dispatch {
    int path;
    struct nn_gemm_kernels_f32 gemm_f32;
    struct nn_gemm_kernels_f64 gemm_f64;
};

const struct nn_dispatch *nn_dispatch_get(void);

// The kernels of each path (gemm/kernels/*.c), named nn_<form>_<isa>_<dtype>: forms packed,
// direct, direct_short, direct_narrow, direct_short_narrow, direct_row, direct_row_narrow and
// stream (nn_ukr_*_t), dot (nn_dot_*_t) and transpose.
#define NN_DECLARE_GEMM_KERNELS_T(isa, T, SUF)                                                \
    void nn_packed_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *, nn_int, T *,   \
                                 nn_int, int, int, int);                                      \
    void nn_direct_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *, nn_int, T *,   \
                                 nn_int, int, int, int);                                      \
    void nn_direct_short_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *, nn_int,  \
                                       T *, nn_int, int, int, int);                           \
    void nn_direct_narrow_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *, nn_int, \
                                        T *, nn_int, int, int, int);                          \
    void nn_direct_short_narrow_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *,   \
                                              nn_int, T *, nn_int, int, int, int);            \
    void nn_direct_row_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *, nn_int,    \
                                     T *, nn_int, int, int, int);                             \
    void nn_direct_row_narrow_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *,     \
                                            nn_int, T *, nn_int, int, int, int);              \
    void nn_stream_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *, nn_int, T *,   \
                                 nn_int, int, int, int);                                      \
    void nn_dot_##isa##_##SUF(nn_int, const T *, nn_int, const T *, nn_int, T *, nn_int, int, \
                              int, int);                                                      \
    void nn_transpose_##isa##_##SUF(T *, nn_int, const T *, nn_int, nn_int, nn_int);
#define NN_DECLARE_GEMM_KERNELS(isa)                                                          \
    NN_DECLARE_GEMM_KERNELS_T(isa, float, f32) NN_DECLARE_GEMM_KERNELS_T(isa, double, f64)
// The table entry of one dtype on one path (blocking mc, kc, nc from cpu.c).
#define NN_GEMM_ENTRY(isa, SUF, mr, nr, nr_narrow, dot_n, mc, kc, nc)                         \
    {mr, nr, 4 * (nr), nr_narrow, dot_n, mc, kc, nc, nn_packed_##isa##_##SUF,                 \
     {{nn_direct_##isa##_##SUF, nn_direct_narrow_##isa##_##SUF},                              \
      {nn_direct_short_##isa##_##SUF, nn_direct_short_narrow_##isa##_##SUF},                  \
      {nn_direct_row_##isa##_##SUF, nn_direct_row_narrow_##isa##_##SUF}},                     \
     nn_stream_##isa##_##SUF, nn_dot_##isa##_##SUF, nn_transpose_##isa##_##SUF, NN_GEMM_RULES}

NN_DECLARE_GEMM_KERNELS(generic)
#ifdef NN_X86_64
NN_DECLARE_GEMM_KERNELS(avx2)
NN_DECLARE_GEMM_KERNELS(avx512)
#endif

#endif  // NN_INTERNAL_DISPATCH_H
