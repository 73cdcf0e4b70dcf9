// fastmath.h - the type-generic libm the kernels call (NN_T(nn_exp)(x): expf or exp), with
// exact-enough inline versions where libm is the bottleneck.
#ifndef NN_INTERNAL_FASTMATH_H
#define NN_INTERNAL_FASTMATH_H

#include <float.h>
#include <math.h>

#include "internal/port.h"

// ---- type-generic libm: NN_T(nn_exp)(x) is expf for float, exp for double -------------------

NN_INLINE float nn_exp_f32(float x) { return expf(x); }
NN_INLINE double nn_exp_f64(double x) { return exp(x); }
// exp that returns 0 instead of a subnormal (x < log of the smallest normal number):
// subnormals change nothing a network computes but cost a slow path in exp and in every
// later multiplication.
// float: inline and branch-free, so that a row of them (softmax) is vectorised, where libm's
// expf is a call per element through the PLT. In double: 2^(x log2 e) = 2^k 2^r, k the
// nearest integer (by the 1.5 2^52 rounding trick), |r| <= 1/2, 2^r by its Taylor series to
// degree 8 (relative error below 3e-10), 2^k put into the exponent bits, then rounded once to
// float: within 0.504 ulp
// (tools/check_expf.c, against exp in double at every float in [-87.34, 88.72]; glibc's expf
// gives another float for 1 in 12,000 of them).
// -inf and x < -87.34 give 0, +inf and x > 88.72 give inf, NaN gives NaN.
NN_INLINE float nn_expz_f32(float x) {
    double t = (double)x * 1.4426950408889634;
    t = t < -150.0 ? -150.0 : t;  // 2^-150 rounds to 0 in float, 2^150 to inf
    t = t > 150.0 ? 150.0 : t;    // (NaN passes both)
    double kd = t + 6755399441055744.0;  // 1.5 2^52: the low bits now hold round(t)
    uint64_t bits;
    memcpy(&bits, &kd, sizeof bits);
    kd -= 6755399441055744.0;
    const double u = (t - kd) * 0.6931471805599453;  // r ln 2, |u| <= 0.347
    // Estrin's scheme: 4 steps of dependent arithmetic instead of Horner's 16; its float
    // result is Horner's at every input (all 2^32 compared)
    const double u2 = u * u, u4 = u2 * u2;
    const double p01 = 1.0 + u, p23 = 0.5 + u * (1.0 / 6), p45 = 1.0 / 24 + u * (1.0 / 120);
    const double p67 = 1.0 / 720 + u * (1.0 / 5040);
    const double p = (p01 + u2 * p23) + u4 * ((p45 + u2 * p67) + u4 * (1.0 / 40320));
    bits = (bits + 1023) << 52;  // 2^k: k + 1023 in the exponent field
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = (float)(p * scale);
    return x < -87.336544f ? 0.0f : y;
}
NN_INLINE double nn_expz_f64(double x) { return x < -708.39641853226408 ? 0.0 : exp(x); }
// x, or 0 when x is subnormal (NaN passes): for state that decays geometrically, like a
// momentum buffer whose gradient is 0 (a dead relu unit): 0.9^n x reaches the subnormals
// after ~800 steps and stays there for ~200 more, each multiply on the slow path.
// FLT_MIN and DBL_MIN are the smallest normal numbers, 2^-126 and 2^-1022. (fabs, not a pair
// of comparisons joined by &&: that is control flow, which stops the compiler from
// vectorising the loop around it.)
#define nn_min_normal_f32 FLT_MIN
#define nn_min_normal_f64 DBL_MIN
NN_INLINE float nn_flush_f32(float x) { return fabsf(x) < FLT_MIN ? 0.0f : x; }
NN_INLINE double nn_flush_f64(double x) { return fabs(x) < DBL_MIN ? 0.0 : x; }
NN_INLINE float nn_fabs_f32(float x) { return fabsf(x); }
NN_INLINE double nn_fabs_f64(double x) { return fabs(x); }
NN_INLINE float nn_log1p_f32(float x) { return log1pf(x); }
NN_INLINE double nn_log1p_f64(double x) { return log1p(x); }
// log1p(e) for 0 <= e <= 1 (NaN passes): the softplus term log1p(exp(-|x|)) of the BCE loss.
// float: inline, in double: s = e / (2 + e) <= 1/3, log1p(e) = 2 atanh(s) = 2 s (1 + s^2/3 +
// s^4/5 + ... + s^14/15) (relative error below 2e-9), rounded once to float: within 0.52 ulp
// (checked against log1p in double at every 7th float in [0, 1]). Inline because it is on
// the loss's dependency chain and a tiny network's step is bound by its chains' latency
// (hence Estrin's scheme below, not Horner's), where glibc's log1pf is a call. double:
// glibc's log1p.
NN_INLINE float nn_log1p_unit_f32(float e) {
    double d = e, s = d / (2 + d), s2 = s * s, s4 = s2 * s2;
    // 1 + s2/3 + ... + s14/15 by Estrin's scheme: a short dependency chain
    double p01 = 1 + s2 * (1.0 / 3), p23 = 1.0 / 5 + s2 * (1.0 / 7);
    double p45 = 1.0 / 9 + s2 * (1.0 / 11), p67 = 1.0 / 13 + s2 * (1.0 / 15);
    double p = (p01 + s4 * p23) + (s4 * s4) * (p45 + s4 * p67);
    return (float)(2 * s * p);
}
NN_INLINE double nn_log1p_unit_f64(double e) { return log1p(e); }
NN_INLINE float nn_log_f32(float x) { return logf(x); }
NN_INLINE double nn_log_f64(double x) { return log(x); }
NN_INLINE float nn_tanh_f32(float x) { return tanhf(x); }
NN_INLINE double nn_tanh_f64(double x) { return tanh(x); }
NN_INLINE float nn_erf_f32(float x) { return erff(x); }
NN_INLINE double nn_erf_f64(double x) { return erf(x); }
NN_INLINE float nn_sqrt_f32(float x) { return sqrtf(x); }
NN_INLINE double nn_sqrt_f64(double x) { return sqrt(x); }

// nn_activation_needs_z, inline (activations.c exports it).
NN_INLINE int nn_act_needs_z(int act, double alpha) {
    return act == NN_ACT_GELU || act == NN_ACT_SILU || act == NN_ACT_GELU_TANH ||
           (act == NN_ACT_LEAKY_RELU && alpha < 0);
}

#endif  // NN_INTERNAL_FASTMATH_H
