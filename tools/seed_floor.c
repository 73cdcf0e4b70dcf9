// seed_floor.c - the floor of the seed network's training step: one SGD-momentum step of the
// 2-3-1 network (relu, BCE from logits, batch 1) written straight for this one network, with
// nncore's arithmetic (no FMA, nn_expz_f32, the momentum buffer's flush, the loss value by
// nn_log1p_unit_f32 as fit keeps it for History). The compiled plan's tiny step does the same
// operations through per-layer functions of any width; the difference is its generality.
//   gcc -O3 -ffp-contract=off -fno-math-errno -fno-trapping-math -Isrc_c
//       tools/seed_floor.c -lm -o /tmp/seed_floor && /tmp/seed_floor 1   (0: no loss value)
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "internal/fastmath.h"

#define N 20000  // samples an epoch, as benchmarks/bench_training.py

static float X[N][2], Y[N];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    const int with_loss = argc > 1 ? atoi(argv[1]) : 1;
    srand(1);
    for (int i = 0; i < N; i++) {
        X[i][0] = rand() / (float)RAND_MAX * 2 - 1;
        X[i][1] = rand() / (float)RAND_MAX * 2 - 1;
        Y[i] = 0.7f * X[i][0] - 1.3f * X[i][1] > 0;
    }
    float W1[6] = {0.3f, -0.2f, 0.5f, 0.1f, 0.4f, -0.6f}, b1[3] = {0};
    float W2[3] = {0.5f, -0.4f, 0.3f}, b2 = 0;
    float m1[6] = {0}, mb1[3] = {0}, m2[3] = {0}, mb2 = 0;  // momentum buffers
    const float lr = 0.01f, mom = 0.9f;
    double best = 1e9, loss_sum = 0;
    for (int rep = 0; rep < 30; rep++) {
        const double t0 = now();
        for (int s = 0; s < N; s++) {
            const float x0 = X[s][0], x1 = X[s][1], t = Y[s];
            float h[3], dh[3];
            for (int j = 0; j < 3; j++) {  // the kernels' sums: s = 0, s += x w in k order
                float a = 0;
                a += x0 * W1[j];
                a += x1 * W1[3 + j];
                a += b1[j];
                h[j] = a < 0 ? 0 : a;
            }
            float o = 0;
            for (int j = 0; j < 3; j++) o += h[j] * W2[j];
            o += b2;
            const float e = nn_expz_f32(-(o < 0 ? -o : o));
            if (with_loss)
                loss_sum += (double)((o > 0 ? o : 0) - o * t + nn_log1p_unit_f32(e));
            const float g = (o >= 0 ? 1 / (1 + e) : e / (1 + e)) - t;
            for (int j = 0; j < 3; j++) {
                float a = 0;
                a += g * W2[j];
                dh[j] = h[j] > 0 ? a : 0;
            }
            for (int j = 0; j < 3; j++) {
                const float b = nn_flush_f32(mom * m2[j] + (0 + h[j] * g));
                m2[j] = b;
                W2[j] -= lr * b;
            }
            mb2 = nn_flush_f32(mom * mb2 + (0 + g));
            b2 -= lr * mb2;
            for (int j = 0; j < 3; j++) {
                const float c0 = nn_flush_f32(mom * m1[j] + (0 + x0 * dh[j]));
                const float c1 = nn_flush_f32(mom * m1[3 + j] + (0 + x1 * dh[j]));
                const float c2 = nn_flush_f32(mom * mb1[j] + (0 + dh[j]));
                m1[j] = c0, m1[3 + j] = c1, mb1[j] = c2;
                W1[j] -= lr * c0, W1[3 + j] -= lr * c1, b1[j] -= lr * c2;
            }
        }
        const double dt = (now() - t0) / N;
        best = dt < best ? dt : best;
    }
    printf("seed step%s: %.1f ns a sample (%.2f M samples/s); loss sum %g, W1[0] %g\n",
           with_loss ? "" : " without the loss value", best * 1e9, 1e-6 / best, loss_sum,
           (double)W1[0]);
    return 0;
}
