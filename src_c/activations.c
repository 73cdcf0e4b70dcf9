// activations.c - element-wise activations, row-wise softmax, and the GEMM tile epilogue.
#include <math.h>

#include "common.h"

int nn_activation_needs_z(int act, double alpha) {
    return act == NN_ACT_GELU || (act == NN_ACT_LEAKY_RELU && alpha < 0);
}

#define NN_IMPL "activations_impl.h"
#include "instantiate.h"
