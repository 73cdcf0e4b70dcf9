// norm.c - batch and layer normalisation (torch.nn.BatchNorm1d, torch.nn.LayerNorm).
#include <math.h>

#include "internal/port.h"
#include "internal/threads.h"
#include "internal/isa.h"

#define NN_NORM_BLOCK 64  // columns a thread owns: its sums stay in registers and L1
#define NN_NORM_LANES 8   // partial sums of a row: one vector of doubles
#define NN_NORM_ROWS 16   // rows a layer-norm chunk takes

// run(&args, j0, j1) over the column blocks [j0, j1) of d columns, a block to a thread: no
// two threads sum into one column, so the sums do not depend on the thread count.
#define NN_NORM_COLUMNS(run, args, n, d, n_threads)                                          \
    do {                                                                                     \
        const nn_int blocks_ = ((d) + NN_NORM_BLOCK - 1) / NN_NORM_BLOCK;                    \
        int nt_ = nn_threads_for((n_threads), (n) * (d), NN_PAR_MIN_ELEMS);                  \
        if (nt_ > blocks_) nt_ = (int)blocks_;                                               \
        NN_PARALLEL_FOR(nt_, b_, blocks_, {                                                  \
            const nn_int j0_ = b_ * NN_NORM_BLOCK;                                           \
            run(&(args), j0_, j0_ + NN_NORM_BLOCK < (d) ? j0_ + NN_NORM_BLOCK : (d));        \
        });                                                                                  \
    } while (0)

#define NN_IMPL "ops/norm_impl.h"
#include "internal/instantiate.h"
