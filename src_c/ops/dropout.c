// dropout.c - inverted dropout with counter-based masks.
#include <math.h>

#include "internal/port.h"
#include "internal/threads.h"

#define NN_DROPOUT_CHUNK 4096

#define NN_IMPL "ops/dropout_impl.h"
#include "internal/instantiate.h"
