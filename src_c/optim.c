// optim.c - optimizer updates: SGD (momentum, dampening, Nesterov, weight decay), Adam, AdamW.
#include "common.h"

#define T float
#define SUF f32
#include "optim_impl.h"
#undef T
#undef SUF

#define T double
#define SUF f64
#include "optim_impl.h"
#undef T
#undef SUF
