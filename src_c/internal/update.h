// update.h - an optimizer step applied to blocks of parameters as their gradients are
// final (nn_update), and the optimizers' block functions (ops/optim.c).
#ifndef NN_INTERNAL_UPDATE_H
#define NN_INTERNAL_UPDATE_H

#include "internal/port.h"

// An optimizer step applied to a block of parameters as soon as its gradient is final: the
// compiled plan's dW tiles update W while they are still in L1, instead of a pass over all the
// parameters after the backward pass (which re-reads every gradient from memory).
// fn(args, off, rows, cols, ld, grad, ldg) updates the elements off + r * ld + [0, cols) for
// r < rows; offsets count elements from origin, the start of the gradient buffer (parameters,
// their gradients and the optimizer state share offsets). Row r's gradients are read at
// grad + r * ldg, or with grad NULL from the gradient buffer itself.
// With scratch set, the gradient buffer need not receive the gradients the step reads: a GEMM
// may then form a panel of dW in a small buffer of its own and step from there, so that dW
// is never written out and does not pass through the caches beside W and its momentum. The
// plan sets it except on the last batch of a call (the model's grads are then the last
// batch's when it returns) and under the NaN guard.
// arrays lists what the step reads and writes at the same offsets (the parameters and the
// optimizer's state; NULL-terminated, may be empty): a GEMM may fetch the rows of its next
// block ahead (see gemm_block_packed).
typedef struct {
    void (*fn)(const void *args, nn_int off, nn_int rows, nn_int cols, nn_int ld,
               const void *grad, nn_int ldg);
    const void *args;
    const void *origin;
    int scratch;
    const void *arrays[5];
} nn_update;

// The range functions for nn_update (optim.c): args is a struct sgd_args / adam_args of
// optim_body_impl.h for the dtype; the update of the selected CPU path.
void nn_sgd_tile_f32(const void *args, nn_int off, nn_int rows, nn_int cols, nn_int ld,
                     const void *grad, nn_int ldg);
void nn_sgd_tile_f64(const void *args, nn_int off, nn_int rows, nn_int cols, nn_int ld,
                     const void *grad, nn_int ldg);
void nn_adam_tile_f32(const void *args, nn_int off, nn_int rows, nn_int cols, nn_int ld,
                      const void *grad, nn_int ldg);
void nn_adam_tile_f64(const void *args, nn_int off, nn_int rows, nn_int cols, nn_int ld,
                      const void *grad, nn_int ldg);

#endif  // NN_INTERNAL_UPDATE_H
