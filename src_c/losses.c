// losses.c - mean squared error, binary cross-entropy from logits, softmax cross-entropy.
#include "common.h"

#define NN_LOSS_CHUNK_ELEMS 8192  // rows per chunk ~ this many elements / row length

#define NN_IMPL "losses_impl.h"
#include "instantiate.h"
