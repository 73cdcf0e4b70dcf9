// activations.c - element-wise activations, row-wise softmax, and the GEMM tile epilogue.
#include <math.h>

#include "common.h"

int nn_activation_needs_z(int act, double alpha) { return nn_act_needs_z(act, alpha); }

#define NN_IMPL "activations_impl.h"
#include "instantiate.h"
