// optim.c - optimizer updates: SGD (momentum, dampening, Nesterov, weight decay), Adam, AdamW;
// gradient clipping.
#include "internal/port.h"
#include "internal/memory.h"
#include "internal/fastmath.h"
#include "internal/threads.h"
#include "internal/isa.h"
#include "internal/update.h"

#define NN_IMPL "ops/optim_impl.h"
#include "internal/instantiate.h"
