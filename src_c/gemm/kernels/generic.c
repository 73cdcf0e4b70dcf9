// generic.c - the portable GEMM kernels: the same bodies as the SIMD paths with
// one-lane "vectors" (plain C, auto-vectorised for the baseline ISA where the compiler can):
// 4 x 8 floats, 4 x 4 doubles; inner products 4 x 4.
#include "internal/port.h"
#include "internal/dispatch.h"

#define ISA generic
#define TARGET

#define T float
#define SUF f32
#define V float
#define VL 1
#define VM int
#define VZERO() 0.0f
#define VSET1(x) (x)
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VMASK(n) ((n) > 0)
#define VLOADM(p, mk) ((mk) ? *(p) : 0.0f)
#define VMASK_HI(n) ((n) > 0)
#define VROTATE(v, s) (v)
#define VSTOREM(p, mk, v) ((mk) ? (void)(*(p) = (v)) : (void)0)
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VADD(a, b) ((a) + (b))
#define VHSUM(v) (v)
#define VTRANSPOSE(r) ((void)(r))
#define MR_MAIN 4
#define NR_MAIN 8
#define DOT_N 4
#include "gemm/gemm_isa_impl.h"

#define T double
#define SUF f64
#define V double
#define VL 1
#define VM int
#define VZERO() 0.0
#define VSET1(x) (x)
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VMASK(n) ((n) > 0)
#define VLOADM(p, mk) ((mk) ? *(p) : 0.0)
#define VMASK_HI(n) ((n) > 0)
#define VROTATE(v, s) (v)
#define VSTOREM(p, mk, v) ((mk) ? (void)(*(p) = (v)) : (void)0)
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VADD(a, b) ((a) + (b))
#define VHSUM(v) (v)
#define VTRANSPOSE(r) ((void)(r))
#define MR_MAIN 4
#define NR_MAIN 4
#define DOT_N 4
#include "gemm/gemm_isa_impl.h"
