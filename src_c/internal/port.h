// port.h - portability macros (compilers, ISA target attributes, unrolling, prefetch) and
// the dtype templating every *_impl.h body uses (T, SUF, NN_T). Private to the C core.
#ifndef NN_INTERNAL_PORT_H
#define NN_INTERNAL_PORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nncore.h"

// ---- portability ----------------------------------------------------------------------------

#if defined(_MSC_VER) && !defined(__clang__)
#define NN_RESTRICT __restrict
#define NN_THREAD_LOCAL __declspec(thread)
#define NN_INLINE static __forceinline
#else
#define NN_RESTRICT __restrict__
#define NN_THREAD_LOCAL __thread
#define NN_INLINE static inline __attribute__((always_inline))
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64)
#define NN_X86_64 1
#endif

// Per-function ISA targets: the SIMD kernels are compiled for their ISA with a target
// attribute, the rest of the library for the baseline, and cpu.c picks at run time.
// MSVC needs no attribute to emit AVX intrinsics.
#if defined(__GNUC__) || defined(__clang__)
#define NN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define NN_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")))
#else
#define NN_TARGET_AVX2
#define NN_TARGET_AVX512
#endif

#define NN_ALIGNMENT 64

// 2^53, the numbers a double holds exactly (a decimal literal: older MSVC C has no hex floats).
#define NN_TWO_POW_53 9007199254740992.0

#if defined(_MSC_VER) && !defined(__clang__)
#define NN_PRAGMA(x) __pragma(x)
#else
#define NN_PRAGMA(x) _Pragma(#x)
#endif

// Unroll the next loop n times. GCC and clang spell it differently; other compilers (MSVC)
// warn about pragmas they do not know, so they get none and unroll on their own.
#if defined(__clang__)
#define NN_UNROLL(n) NN_PRAGMA(unroll n)
#elif defined(__GNUC__)
#define NN_UNROLL(n) NN_PRAGMA(GCC unroll n)
#else
#define NN_UNROLL(n)
#endif

// NN_PREFETCH: for reading; NN_PREFETCH_W: for writing.
#if defined(__GNUC__) || defined(__clang__)
#define NN_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#define NN_PREFETCH_W(p) __builtin_prefetch((p), 1, 3)
#elif defined(NN_X86_64)
#include <xmmintrin.h>
#define NN_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define NN_PREFETCH_W(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#else
#define NN_PREFETCH(p) ((void)(p))
#define NN_PREFETCH_W(p) ((void)(p))
#endif

// ---- dtype templating -----------------------------------------------------------------------
// A body is written once in a *_impl.h that uses T (the scalar type) and NN_T(name); its .c
// file compiles it for both types with  #define NN_IMPL "x_impl.h"  #include "instantiate.h"
// (T = float, SUF = f32, then T = double, SUF = f64).

#define NN_CAT_(a, b) a##_##b
#define NN_CAT(a, b) NN_CAT_(a, b)
#define NN_T(name) NN_CAT(name, SUF)

#endif  // NN_INTERNAL_PORT_H
