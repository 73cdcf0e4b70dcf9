// losses.c - the losses of nn_loss_f32 / _f64 (nncore.h), value and gradient in one pass.
#include "internal/port.h"
#include "internal/fastmath.h"
#include "internal/threads.h"
#include "internal/isa.h"
#include "internal/memory.h"

#define NN_LOSS_CHUNK_ELEMS 8192  // rows per chunk ~ this many elements / row length

#define NN_IMPL "ops/losses_impl.h"
#include "internal/instantiate.h"
