// dropout_impl.h - inverted dropout for T = float / double.

void NN_T(nn_dropout_forward)(T *y, uint8_t *mask, const T *x, nn_int n, double p,
                              uint64_t seed, uint64_t offset, int n_threads) {
    // x, y, mask (n)
    const T scale = (T)(1 / (1 - p));
    // Keep element i when u_i >= p, u_i = top 53 bits of its hash times 2^-53: compare the
    // integers instead, exactly: u >= p  <=>  h >> 11 >= ceil(p 2^53).
    const uint64_t cut = (uint64_t)ceil(p * NN_TWO_POW_53);
    nn_int n_chunks = (n + NN_DROPOUT_CHUNK - 1) / NN_DROPOUT_CHUNK;
    int nt = nn_threads_for(n_threads, n, NN_PAR_MIN_ELEMS / 4);
    NN_PARALLEL_FOR(nt, c, n_chunks, {
        nn_int i1 = (c + 1) * NN_DROPOUT_CHUNK < n ? (c + 1) * NN_DROPOUT_CHUNK : n;
        for (nn_int i = c * NN_DROPOUT_CHUNK; i < i1; i++) {
            uint8_t keep = (nn_rng_hash(seed, offset + (uint64_t)i) >> 11) >= cut;
            mask[i] = keep;
            y[i] = x[i] * (keep ? scale : 0);
        }
    });
}

void NN_T(nn_dropout_backward)(T *dx, const T *dy, const uint8_t *mask, nn_int n, double p,
                               int n_threads) {
    // dx, dy, mask (n)
    const T scale = (T)(1 / (1 - p));
    int nt = nn_threads_for(n_threads, n, NN_PAR_MIN_ELEMS);
    NN_PARALLEL_FOR(nt, i, n, dx[i] = dy[i] * (mask[i] ? scale : 0););
}
