// checks.c - input checks: finiteness.
#include "internal/port.h"

#define NN_IMPL "ops/checks_impl.h"
#include "internal/instantiate.h"
