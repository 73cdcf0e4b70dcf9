// dropout.c - inverted dropout with counter-based masks.
#include "common.h"

#define NN_DROPOUT_CHUNK 4096

#define T float
#define SUF f32
#include "dropout_impl.h"
#undef T
#undef SUF

#define T double
#define SUF f64
#include "dropout_impl.h"
#undef T
#undef SUF
