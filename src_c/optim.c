// optim.c - optimizer updates: SGD (momentum, dampening, Nesterov, weight decay), Adam, AdamW.
#include "common.h"

#define NN_IMPL "optim_impl.h"
#include "instantiate.h"
