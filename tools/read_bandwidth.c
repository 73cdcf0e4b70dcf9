// read_bandwidth.c - how fast one or more cores can only read a buffer that stays in cache:
// the floor under a one-sample predict, which reads every weight once (README, issue 5's
// predict target). Each thread sums its share of the buffer with AVX-512 loads; best of 200.
// x86-64 with AVX-512 and OpenMP only.
//   gcc -O2 -mavx512f -fopenmp tools/read_bandwidth.c -o /tmp/read_bandwidth
//   OMP_PROC_BIND=true /tmp/read_bandwidth 950000 1    # bytes, threads
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s BYTES THREADS\n", argv[0]);
        return 2;
    }
    size_t bytes = (size_t)atol(argv[1]) / 256 * 256;
    int nt = atoi(argv[2]);
    float *buf = aligned_alloc(64, bytes);
    if (buf == NULL || nt < 1) return 2;
    for (size_t i = 0; i < bytes / 4; i++) buf[i] = (float)i;
    double best = 1e9;
    float sink = 0;
    for (int rep = 0; rep < 200; rep++) {
        double t0 = omp_get_wtime();
#pragma omp parallel num_threads(nt) reduction(+ : sink)
        {
            size_t n = bytes / 4 / (size_t)nt, lo = n * (size_t)omp_get_thread_num();
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t i = lo; i + 64 <= lo + n; i += 64) {
                a0 = _mm512_add_ps(a0, _mm512_load_ps(buf + i));
                a1 = _mm512_add_ps(a1, _mm512_load_ps(buf + i + 16));
                a2 = _mm512_add_ps(a2, _mm512_load_ps(buf + i + 32));
                a3 = _mm512_add_ps(a3, _mm512_load_ps(buf + i + 48));
            }
            sink += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1),
                                                       _mm512_add_ps(a2, a3)));
        }
        double t = omp_get_wtime() - t0;
        if (t < best) best = t;
    }
    printf("%zu bytes, %d thread%s: %.1f us, %.0f GB/s (checksum %g)\n", bytes, nt,
           nt == 1 ? "" : "s", best * 1e6, bytes / best / 1e9, sink);
    free(buf);
    return 0;
}
