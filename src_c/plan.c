// plan.c - the compiled training plan: many mini-batches of a whole model per call.
#include <math.h>

#include "common.h"

#define NN_IMPL "plan_impl.h"
#include "instantiate.h"
