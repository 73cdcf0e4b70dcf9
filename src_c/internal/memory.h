// memory.h - aligned allocation and the per-thread scratch buffers (runtime.c).
#ifndef NN_INTERNAL_MEMORY_H
#define NN_INTERNAL_MEMORY_H

#include "internal/port.h"

void *nn_aligned_alloc(size_t bytes);
void nn_aligned_free(void *p);

// The per-thread scratch buffers: one slot for each use, so that no two buffers a call holds
// at once can be the same memory.
enum nn_ws_slot {
    NN_WS_GEMM_A,       // packed blocks of A (gemm_impl.h, gemm_block_packed)
    NN_WS_GEMM_B,       // packed panels of B
    NN_WS_GEMM_CT,      // C^T, for a product formed transposed (gemm_as_transpose)
    NN_WS_GEMM_BT,      // a row-major copy of b^T for the direct path
    NN_WS_DENSE_SPLIT,  // the second half-k product of a split dense forward (dense_impl.h)
    NN_WS_GEMM_PANEL,   // a panel of dW stepped by the optimizer without being written out
    NN_WS_LOSS_CHUNKS,  // a loss's per-chunk partial sums (losses_impl.h)
    NN_WS_CLIP_CHUNKS,  // gradient clipping's per-chunk sums of squares (optim_impl.h)
    NN_WS_SLOTS
};

// A per-thread scratch buffer, kept and grown across calls. Returns NULL when it cannot be
// allocated. Valid until the same thread asks again for the same slot.
void *nn_workspace(enum nn_ws_slot slot, size_t bytes);

#endif  // NN_INTERNAL_MEMORY_H
