// checks_impl.h - input checks for T = float / double.

nn_int NN_T(nn_first_nonfinite)(const T *x, nn_int n) {
    // x (n)
    // x - x is 0 for a finite x and NaN otherwise; OR-ing the comparisons over a block
    // vectorises (no branch per element), and only a bad block is searched.
    const nn_int block = 256;
    for (nn_int lo = 0; lo < n; lo += block) {
        nn_int hi = n - lo < block ? n : lo + block;
        int bad = 0;
        for (nn_int i = lo; i < hi; i++) {
            T d = x[i] - x[i];
            bad |= d != d;
        }
        if (bad)
            for (nn_int i = lo; i < hi; i++)
                if (x[i] - x[i] != 0) return i;
    }
    return -1;
}
