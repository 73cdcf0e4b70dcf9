// rng.c - counter-based random numbers: value i of a stream is a hash of (seed, i), so any
// element can be drawn alone, in any order, by any thread.
#include "internal/port.h"

// The splitmix64 finaliser (Steele, Lea, Flood 2014): a bijection of 64-bit words with full
// avalanche.
static inline uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// mix(mix(seed + golden) ^ counter): for one seed, distinct counters give distinct values.
uint64_t nn_rng_hash(uint64_t seed, uint64_t counter) {
    return mix(mix(seed + 0x9E3779B97F4A7C15ULL) ^ counter);
}

void nn_rng_uniform_f64(double *u, nn_int n, uint64_t seed, uint64_t offset) {
    // u (n)
    uint64_t key = mix(seed + 0x9E3779B97F4A7C15ULL);
    for (nn_int i = 0; i < n; i++)
        u[i] = (double)(mix(key ^ (offset + (uint64_t)i)) >> 11) * (1.0 / NN_TWO_POW_53);
}
