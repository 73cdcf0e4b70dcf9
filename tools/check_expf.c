// check_expf.c - nn_expz_f32 (src_c/internal/fastmath.h) against exp in double at every float
// where it is not flushed to 0 or inf: the worst error in ulp, and how often it differs from
// libm's expf.
//   gcc -O2 -ffp-contract=off -Isrc_c tools/check_expf.c -lm -o /tmp/check_expf && /tmp/check_expf
#include "internal/fastmath.h"
#include <stdio.h>

int main(void) {
    double worst = 0;
    float worst_x = 0;
    long n = 0, differ = 0;
    for (float x = -87.336544f; x < 88.72f; x = nextafterf(x, 100.f), n++) {
        float y = nn_expz_f32(x);
        double e = exp((double)x);
        float r = (float)e;
        double err = fabs((double)y - e) / ((double)nextafterf(r, INFINITY) - r);
        if (err > worst) worst = err, worst_x = x;
        differ += y != expf(x);
    }
    printf("%ld floats: worst %.4f ulp (at %a); another float than expf for %ld\n", n, worst,
           worst_x, differ);
    printf("specials: exp(-inf) %g, exp(inf) %g, exp(nan) %g\n", nn_expz_f32(-INFINITY),
           nn_expz_f32(INFINITY), nn_expz_f32(NAN));
    return worst < 0.51 && nn_expz_f32(-INFINITY) == 0 && isinf(nn_expz_f32(INFINITY)) &&
                   isnan(nn_expz_f32(NAN))
               ? 0
               : 1;
}
