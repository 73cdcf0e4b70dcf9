// fma_peak.c - this core's float32 FMA peak and, where the CPU has AVX512_BF16, its VDPBF16PS
// peak (bfloat16 pairs multiplied and added into float32), for reading GEMM figures against:
// 24 independent AVX-512 chains in registers (no memory traffic), timed. x86-64 with AVX-512.
//   gcc -O2 tools/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// 24 chains of one instruction; each does 16 lanes x `flops` floating-point operations.
#define PEAK(name, insn, flops)                                                               \
    static double name(void) {                                                                \
        const long iters = 100000000;                                                         \
        double best = 0;                                                                      \
        for (int r = 0; r < 5; r++) {                                                         \
            long it = iters;                                                                  \
            double t = now();                                                                 \
            __asm__ volatile(                                                                 \
                "vxorps %%zmm0, %%zmm0, %%zmm0\n vmovaps %%zmm0, %%zmm1\n"                    \
                "1:\n"                                                                        \
                ".irp r,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25\n"    \
                " " insn " %%zmm0, %%zmm1, %%zmm\\r\n"                                        \
                ".endr\n"                                                                     \
                "sub $1, %0\n jnz 1b"                                                         \
                : "+r"(it)::"memory");                                                        \
            double gflops = iters * 24.0 * 16 * (flops) / (now() - t) / 1e9;                  \
            if (gflops > best) best = gflops;                                                 \
        }                                                                                     \
        return best;                                                                          \
    }

PEAK(fma_f32, "vfmadd231ps", 2)   // a multiply and an add per lane
PEAK(dp_bf16, "vdpbf16ps", 4)     // two multiplies and two adds per lane

int main(void) {
    printf("float32 FMA peak, one core: %.0f GFLOP/s (best of 5)\n", fma_f32());
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bf16"))
        printf("bfloat16 VDPBF16PS peak, one core: %.0f GFLOP/s (best of 5)\n", dp_bf16());
    else
        printf("bfloat16 VDPBF16PS: this CPU lacks AVX512_BF16\n");
    return 0;
}
