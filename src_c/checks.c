// checks.c - input checks: finiteness.
#include "common.h"

#define NN_IMPL "checks_impl.h"
#include "instantiate.h"
