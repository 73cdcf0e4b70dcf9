// norm.c - batch and layer normalisation (torch.nn.BatchNorm1d, torch.nn.LayerNorm).
#include <math.h>

#include "internal/port.h"
#include "internal/threads.h"
#include "internal/isa.h"

#define NN_NORM_BLOCK 256  // most columns a call sums: its sums (2 KiB of doubles) stay in L1
#define NN_NORM_LANES 32   // partial sums of a row: 4 vectors of doubles, 4 chains of adds
#define NN_NORM_ROWS 16    // rows a layer-norm chunk takes

// run(&args, j0, j1) over column blocks [j0, j1) of the d columns, as many blocks as threads
// (each at most NN_NORM_BLOCK wide, in whole 64-byte lines): no two threads sum into one
// column, and a column's sums run down the rows in order, so they do not depend on the
// blocks or the thread count.
#define NN_NORM_COLUMNS(run, args, n, d, n_threads)                                          \
    do {                                                                                     \
        int nt_ = nn_threads_for((n_threads), (n) * (d), NN_PAR_MIN_ELEMS);                  \
        nn_int w_ = ((d) + nt_ - 1) / nt_;                                                   \
        w_ = (w_ + 15) / 16 * 16;                                                            \
        if (w_ > NN_NORM_BLOCK) w_ = NN_NORM_BLOCK;                                          \
        const nn_int blocks_ = ((d) + w_ - 1) / w_;                                          \
        if (nt_ > blocks_) nt_ = (int)blocks_;                                               \
        NN_PARALLEL_FOR(nt_, b_, blocks_, {                                                  \
            const nn_int j0_ = b_ * w_;                                                      \
            run(&(args), j0_, j0_ + w_ < (d) ? j0_ + w_ : (d));                              \
        });                                                                                  \
    } while (0)

#define NN_IMPL "ops/norm_impl.h"
#include "internal/instantiate.h"
