// norm.c - batch and layer normalisation (torch.nn.BatchNorm1d, torch.nn.LayerNorm).
#include <math.h>

#include "internal/port.h"
#include "internal/threads.h"
#include "internal/isa.h"

#define NN_NORM_BLOCK 64  // columns a thread owns: its sums stay in registers and L1
#define NN_NORM_LANES 8   // partial sums of a row: one vector of doubles
#define NN_NORM_ROWS 16   // rows a layer-norm chunk takes

#define NN_IMPL "ops/norm_impl.h"
#include "internal/instantiate.h"
