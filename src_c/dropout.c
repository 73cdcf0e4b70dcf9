// dropout.c - inverted dropout with counter-based masks.
#include "common.h"

#define NN_DROPOUT_CHUNK 4096

#define NN_IMPL "dropout_impl.h"
#include "instantiate.h"
