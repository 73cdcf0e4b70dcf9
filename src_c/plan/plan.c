// plan.c - the compiled training plan: many mini-batches of a whole model per call.
#include <math.h>

#include "internal/port.h"
#include "internal/fastmath.h"
#include "internal/threads.h"
#include "internal/update.h"
#include "gemm/gemm.h"
#include "ops/ops.h"

#define NN_IMPL "plan/plan_impl.h"
#include "internal/instantiate.h"
