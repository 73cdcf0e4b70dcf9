// fma_peak.c - this core's float32 FMA peak, for reading GEMM figures against: 24 independent
// AVX-512 FMA chains in registers (no memory traffic), timed. x86-64 with AVX-512 only.
//   gcc -O2 tools/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    const long iters = 100000000;  // 24 FMAs of 16 floats each
    double best = 0;
    for (int r = 0; r < 5; r++) {
        long it = iters;
        double t = now();
        __asm__ volatile(
            "vxorps %%zmm0, %%zmm0, %%zmm0\n vmovaps %%zmm0, %%zmm1\n"
            "1:\n"
            ".irp r,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25\n"
            " vfmadd231ps %%zmm0, %%zmm1, %%zmm\\r\n"
            ".endr\n"
            "sub $1, %0\n jnz 1b"
            : "+r"(it)::"memory");
        double gflops = iters * 24.0 * 32 / (now() - t) / 1e9;
        if (gflops > best) best = gflops;
    }
    printf("float32 FMA peak, one core: %.0f GFLOP/s (best of 5)\n", best);
    return 0;
}
