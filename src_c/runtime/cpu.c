// cpu.c - CPU feature detection and the one dispatch table, chosen at run time.
// The environment variable NNCORE_CPU=generic|avx2|avx512 forces a path; avx512_bf16 and
// avx512_amx force avx512 with VDPBF16PS or AMX for the bfloat16 products (a path named
// alone emulates them).
#include "internal/port.h"
#include "internal/dispatch.h"

#if defined(_MSC_VER) && defined(NN_X86_64)
#include <intrin.h>
#include <immintrin.h>
#endif

// Blocking (tuned with benchmarks/bench_gemm.py on a 48 KiB L1, 2 MiB L2 core): a kc x nc
// block of packed B stays in L2 (about 1 MiB), an mr x kc micro-panel of packed A in L1
// (12-24 KiB; up to 28 KiB when a k of up to 1.5 kc is one block, gemm_impl.h k_block); the
// mc x kc block of A comes from L3. Multiples of the micro-tile.
// NN_GEMM_ENTRY(isa, dtype, mr, nr, nr_narrow, dot_n, mc, kc, nc)
static const struct nn_dispatch table[NN_CPU_N_PATHS] = {
    {NN_CPU_GENERIC, NN_GEMM_ENTRY(generic, f32, 4, 8, 1, 4, 256, 256, 1024),
     NN_GEMM_ENTRY(generic, f64, 4, 4, 1, 4, 256, 256, 512)},
#ifdef NN_X86_64
    {NN_CPU_AVX2, NN_GEMM_ENTRY(avx2, f32, 6, 16, 8, 2, 480, 384, 768),
     NN_GEMM_ENTRY(avx2, f64, 6, 8, 4, 2, 480, 256, 512)},
    {NN_CPU_AVX512, NN_GEMM_ENTRY(avx512, f32, 12, 32, 16, 4, 480, 384, 768),
     NN_GEMM_ENTRY(avx512, f64, 12, 16, 8, 4, 480, 256, 512)},
#else
    // Not x86-64: the SIMD paths are absent (NULL kernels; nn_cpu_compiled says 0).
    {NN_CPU_AVX2},
    {NN_CPU_AVX512},
#endif
};

static const char *names[NN_CPU_N_PATHS] = {"generic", "avx2", "avx512"};

static int current = -1;  // the selected path; -1 until nn_cpu_init

#ifdef NN_X86_64
#if defined(_MSC_VER) && !defined(__clang__)
static int os_saves(unsigned long long mask) { return (_xgetbv(0) & mask) == mask; }
static int has_avx2(void) {
    int r[4];
    __cpuid(r, 1);
    int fma = (r[2] >> 12) & 1, osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1;
    if (!(fma && osxsave && avx) || !os_saves(0x6)) return 0;
    __cpuidex(r, 7, 0);
    return (r[1] >> 5) & 1;
}
static int has_avx512(void) {
    int r[4];
    if (!has_avx2() || !os_saves(0xe6)) return 0;
    __cpuidex(r, 7, 0);
    int f = (r[1] >> 16) & 1, dq = (r[1] >> 17) & 1, bw = (r[1] >> 30) & 1, vl = (r[1] >> 31) & 1;
    return f && dq && bw && vl;
}
static int has_avx512_bf16(void) {
    int r[4];
    if (!has_avx512()) return 0;
    __cpuidex(r, 7, 1);
    return (r[0] >> 5) & 1;
}
#else
// libgcc's and compiler-rt's checks include the OS's support for the wider register state.
static int has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static int has_avx512(void) {
    __builtin_cpu_init();
    return has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw");
}
static int has_avx512_bf16(void) { return has_avx512() && __builtin_cpu_supports("avx512bf16"); }
#endif
#endif

// AMX with bfloat16: the CPU's AMX-TILE and AMX-BF16, and the OS's leave to use the tile
// data (Linux grants it per process on request: arch_prctl ARCH_REQ_XCOMP_PERM).
#if defined(NN_X86_64) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
static int has_amx_bf16(void) {
    static int known = -1;
    if (known >= 0) return known;
    unsigned a, b, c, d;
    known = 0;
    if (!has_avx512() || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!((d >> 22) & 1) || !((d >> 24) & 1)) return 0;  // AMX-BF16, AMX-TILE
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return 0;  // XTILECFG and XTILEDATA state
    known = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
    return known;
}
#else
static int has_amx_bf16(void) { return 0; }
#endif

static const char *bf16_names[NN_BF16_N_KERNELS] = {"emulated", "avx512_bf16", "amx"};
static int bf16_kernel = -1;  // the bfloat16 products' kernel; -1 until nn_cpu_init

int nn_cpu_bf16_supported(int kernel) {
    switch (kernel) {
    case NN_BF16_EMULATED: return 1;
#ifdef NN_X86_64
    case NN_BF16_AVX512: return has_avx512_bf16();
    case NN_BF16_AMX: return has_amx_bf16();
#endif
    default: return 0;
    }
}

const char *nn_bf16_kernel_name(int kernel) {
    return kernel >= 0 && kernel < NN_BF16_N_KERNELS ? bf16_names[kernel] : NULL;
}

int nn_cpu_set_bf16_kernel(int kernel) {
    if (current < 0) nn_cpu_init();
    if (kernel < 0 || kernel >= NN_BF16_N_KERNELS) return NN_ERR_ARG;
    if (!nn_cpu_bf16_supported(kernel)) return NN_ERR_CPU;
    bf16_kernel = kernel;
    return NN_OK;
}

int nn_cpu_bf16_kernel(void) {
    if (bf16_kernel < 0) nn_cpu_init();
    return nn_cpu_get_path() == NN_CPU_AVX512 ? bf16_kernel : NN_BF16_EMULATED;
}

static int bf16_best(void) {
    for (int k = NN_BF16_N_KERNELS - 1; k > 0; k--)
        if (nn_cpu_bf16_supported(k)) return k;
    return NN_BF16_EMULATED;
}

int nn_cpu_compiled(int path) {
    return path >= 0 && path < NN_CPU_N_PATHS && table[path].gemm_f32.packed != NULL;
}

int nn_cpu_supported(int path) {
    switch (path) {
    case NN_CPU_GENERIC: return 1;
#ifdef NN_X86_64
    case NN_CPU_AVX2: return has_avx2();
    case NN_CPU_AVX512: return has_avx512();
#endif
    default: return 0;
    }
}

int nn_cpu_best(void) {
    for (int p = NN_CPU_N_PATHS - 1; p > 0; p--)
        if (nn_cpu_supported(p)) return p;
    return NN_CPU_GENERIC;
}

const char *nn_cpu_path_name(int path) {
    return (path >= 0 && path < NN_CPU_N_PATHS) ? names[path] : NULL;
}

int nn_cpu_set_path(int path) {
    if (path < 0 || path >= NN_CPU_N_PATHS) return NN_ERR_ARG;
    if (!nn_cpu_supported(path)) return NN_ERR_CPU;
    current = path;
    return NN_OK;
}

int nn_cpu_init(void) {
    current = nn_cpu_best();
    bf16_kernel = bf16_best();
    const char *env = getenv("NNCORE_CPU");
    if (env == NULL || env[0] == '\0') return NN_OK;
    for (int k = NN_BF16_AVX512; k < NN_BF16_N_KERNELS; k++) {  // avx512_bf16, avx512_amx
        const char *name = k == NN_BF16_AMX ? "avx512_amx" : bf16_names[k];
        if (strcmp(env, name) != 0) continue;
        if (!nn_cpu_bf16_supported(k)) return NN_ERR_CPU;
        bf16_kernel = k;
        return nn_cpu_set_path(NN_CPU_AVX512);
    }
    bf16_kernel = NN_BF16_EMULATED;  // a path named: the bfloat16 products emulated
    for (int p = 0; p < NN_CPU_N_PATHS; p++)
        if (strcmp(env, names[p]) == 0) return nn_cpu_set_path(p);
    return NN_ERR_ARG;
}

int nn_cpu_get_path(void) {
    if (current < 0) nn_cpu_init();
    return current;
}

const struct nn_dispatch *nn_dispatch_get(void) { return &table[nn_cpu_get_path()]; }
