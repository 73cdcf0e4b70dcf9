// activations.c - element-wise activations, row-wise softmax, and the GEMM tile epilogue.
#include <math.h>

#include "internal/port.h"
#include "internal/fastmath.h"
#include "internal/threads.h"
#include "internal/isa.h"
#include "ops/ops.h"

int nn_activation_needs_z(int act, double alpha) { return nn_act_needs_z(act, alpha); }

#define NN_IMPL "ops/activations_impl.h"
#include "internal/instantiate.h"
